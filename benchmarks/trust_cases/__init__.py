"""The cases of ``benchmarks/trust_cases.py``, one module per area; importing the package
registers them all in :data:`harness.CASES`.

* :mod:`.harness`: run a CLI, judge its output (one error line, no traceback), the registry;
* :mod:`.world`: the shared tiny dataset and runs, made once, copied per case;
* :mod:`.data`, :mod:`.training`, :mod:`.evaluation`, :mod:`.api`, :mod:`.faults`: the cases.

Cases 1-39 are a tester's report of bad input and faults (verbatim numbers); 40-59 are
more that a fastMRI user plausibly hits.
"""

from . import api, data, evaluation, faults, training  # noqa: F401  (registers the cases)
from .harness import CASES, SetupError, Verdict
from .world import Ctx, World

__all__ = ["CASES", "Ctx", "SetupError", "Verdict", "World"]

"""``python -m apslib.evaluate`` (see :mod:`apslib.evaluate.cli`)."""

import sys

from .cli import main

sys.exit(main())

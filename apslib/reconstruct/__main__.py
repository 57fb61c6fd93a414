"""``python -m apslib.reconstruct`` (see :mod:`apslib.reconstruct.cli`)."""

import sys

from .cli import main

sys.exit(main())

"""``python -m apslib.data`` (see :mod:`apslib.data.cli`)."""

import sys

from .cli import main

sys.exit(main())

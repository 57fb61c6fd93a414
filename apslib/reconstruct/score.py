"""``python -m apslib.reconstruct.score``: fastMRI's evaluation of a folder of reconstructions.

The flags of ``python -m fastmri.evaluate`` (``--target-path``, ``--predictions-path``,
``--challenge``, ``--acquisition``); prints fastmri's line (mean +/- 2 standard deviations
over volumes) and, with ``--per-volume FILE``, writes one CSV row per volume. Errors are
one line (``error: ...``, exit status 1).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys

from ..data import ACQUISITIONS, DataError
from ..io import atomic_write_text
from .scoring import METRICS, TARGET_KEYS, score_reconstructions

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m apslib.reconstruct.score",
        description="Score reconstructions with fastmri.evaluate (its flags; it prints mean +/- 2 sd).",
    )
    ap.add_argument("--target-path", required=True, help="the split's folder, e.g. DATA/singlecoil_val")
    ap.add_argument("--predictions-path", required=True, help="the reconstructions' folder")
    ap.add_argument("--challenge", required=True, choices=list(TARGET_KEYS))
    ap.add_argument("--acquisition", choices=list(ACQUISITIONS), help="only volumes of this acquisition")
    ap.add_argument("--per-volume", metavar="CSV", help="also write one row per volume to this CSV file")
    return ap


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        r = score_reconstructions(
            args.target_path, args.predictions_path, challenge=args.challenge, acquisition=args.acquisition
        )
        if args.per_volume:
            text = io.StringIO()
            writer = csv.DictWriter(text, fieldnames=["fname", "acquisition", *METRICS], lineterminator="\n")
            writer.writeheader()
            writer.writerows(r.per_volume)
            atomic_write_text(args.per_volume, text.getvalue())
    except (DataError, OSError, ValueError) as err:
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        return 1
    print(r.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())

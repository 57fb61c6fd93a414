"""The command line of :mod:`apslib.data` (run by ``python -m apslib.data``).

``python -m apslib.data synth --out DIR [--size 128] [--train-volumes 24] ...`` writes the
embedded dataset (:func:`apslib.data.synthesize_dataset`); ``python -m apslib.data info
ROOT`` prints one line per split and acquisition of a fastMRI single-coil data root
(:func:`apslib.data.dataset_summary`).

Conventions: exit status 0 on success; 1 on bad input (a missing or unreadable data
folder, a file the validator refuses, a bad argument value, an ``--out`` that is a file,
another dataset in ``--out`` without ``--force``, ...), reported as one line ``error: ...``
on stderr, not a traceback; 2 for arguments argparse rejects. Warnings (skipped files,
constant slices) are one line each, ``warning: ...`` on stderr.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from .common import DataError, DataWarning
from .folders import check_data_root
from .inspect import dataset_summary
from .synth import SynthParams, synthesize_dataset

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    defaults = SynthParams()
    ap = argparse.ArgumentParser(
        prog="python -m apslib.data", description="The embedded fastMRI-format dataset."
    )
    sub = ap.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("synth", help="write DIR/singlecoil_train and DIR/singlecoil_val")
    sp.add_argument("--out", required=True, type=Path, help="data root to write")
    sp.add_argument("--train-volumes", type=int, default=defaults.train_volumes)
    sp.add_argument("--val-volumes", type=int, default=defaults.val_volumes)
    sp.add_argument(
        "--slices", "--slices-per-volume", dest="slices", type=int, default=defaults.slices_per_volume
    )
    sp.add_argument("--size", type=int, default=defaults.size, help="target size (square)")
    sp.add_argument("--seed", type=int, default=defaults.seed)
    sp.add_argument(
        "--force",
        action="store_true",
        help="rewrite even if up to date; replace a dataset written with other arguments",
    )
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    ip = sub.add_parser("info", help="summarise a fastMRI single-coil data root")
    ip.add_argument("root", type=Path)
    return ap


def main(argv=None) -> int:
    """Run the CLI on ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = _parser().parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        status = _run(args)
    for w in caught:
        if issubclass(w.category, DataWarning):
            print(f"warning: {' '.join(str(w.message).split())}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return status


def _run(args) -> int:
    try:
        if args.command == "synth":
            res = synthesize_dataset(
                args.out,
                size=args.size,
                train_volumes=args.train_volumes,
                val_volumes=args.val_volumes,
                slices_per_volume=args.slices,
                seed=args.seed,
                progress=not args.quiet,
                force=args.force,
            )
            state = "wrote" if res["written"] else "up to date:"
            print(
                f"{state} {len(res['files'])} volumes, {res['bytes'] / 2**20:.1f} MB in "
                f"{args.out} ({res['seconds']:.1f} s)"
            )
        else:
            check_data_root(args.root)
            for row in dataset_summary(args.root):
                print("  ".join(f"{k}={v}" for k, v in row.items()))
    except (DataError, ValueError, OSError) as err:  # FileNotFoundError is an OSError
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    return 0

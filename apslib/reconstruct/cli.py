"""``python -m apslib.reconstruct``: a split reconstructed by a trained run, in fastMRI's format.

An error the user can fix (a missing run or data folder, an output folder that is a file, a
test split without masks, a bad value) prints one line ``error: ...`` on stderr and exits
with status 1; usage errors exit with 2 (argparse).
"""

from __future__ import annotations

import argparse
import sys

from ..data import DataError
from ..training.errors import TrainingError
from .core import RECONSTRUCT_SPLITS, reconstruct_split

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m apslib.reconstruct",
        description="Reconstruct a fastMRI single-coil split with a trained run and write the volumes in "
        "fastMRI's format (one .h5 per volume, dataset 'reconstruction'); score them with "
        "python -m apslib.reconstruct.score. Reruns skip finished volumes.",
    )
    ap.add_argument("--run", required=True, help="a run folder, e.g. runs/aps (config.json + checkpoint.pt)")
    ap.add_argument("--data", required=True, help="data root that holds singlecoil_val/ or singlecoil_test/")
    ap.add_argument(
        "--split",
        required=True,
        choices=RECONSTRUCT_SPLITS,
        help="val: fully sampled, masked as apslib's evaluation does; test: undersampled, with its mask",
    )
    ap.add_argument("--out", required=True, help="output folder (created)")
    ap.add_argument("--batch-size", type=int, default=8, help="slices per forward pass (default: 8)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    ap.add_argument(
        "--seed", type=int, default=0, help="evaluation seed, as python -m apslib.evaluate's (default: 0)"
    )
    ap.add_argument(
        "--center-fractions", type=float, nargs="+", help="val masks' centre fractions (default: the run's)"
    )
    ap.add_argument(
        "--accelerations", type=int, nargs="+", help="val masks' accelerations (default: the run's)"
    )
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers (default: 0)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        r = reconstruct_split(
            args.run,
            args.data,
            args.split,
            args.out,
            batch_size=args.batch_size,
            device=args.device,
            seed=args.seed,
            center_fractions=args.center_fractions,
            accelerations=args.accelerations,
            workers=args.workers,
            progress=not args.no_progress,
        )
    except (DataError, TrainingError, OSError, ValueError) as err:  # OSError: FileNotFoundError, ...
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        return 1
    skipped = f", {len(r.skipped)} already complete" if r.skipped else ""
    print(
        f"{r.run} ({r.split}): {len(r.written)} volumes written{skipped} in {r.out_dir} ({r.seconds:.1f} s)"
    )
    return 0

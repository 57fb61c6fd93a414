"""``python -m apslib.evaluate``: the evaluation of notebooks 03 and 04 from a shell.

``--data DATA`` runs the in-distribution evaluation (:func:`~apslib.evaluate.evaluate_runs`),
``--ood`` the out-of-distribution one (:func:`~apslib.evaluate.evaluate_runs_ood`); both
write into ``--results-dir`` and print one line per table written, saying whether every
run was evaluated on the data it was trained on (``in distribution``) or not (``other
data``). An error the user can fix (a missing or unreadable data file, a missing run, a
results folder that is a file, a bad value) prints one line ``error: ...`` on stderr and
exits with status 1; usage errors (an unknown option, ``abc`` for a number) print one line
and exit with 2. Warnings (an unfinished run, a run trained on other data, constant slices)
are one line each, ``warning: ...``.
"""

from __future__ import annotations

import sys
import warnings

from ..data import DataError
from ..training.config import OneLineParser
from ..training.errors import TrainingError
from .pipeline import evaluate_runs, evaluate_runs_ood

__all__ = ["main"]

DESCRIPTION = (
    "Evaluate trained runs: equivariance NMSE/PSNR/SSIM under random shifts and every "
    "shift modulo 2**depth, reconstruction quality, decline in PSNR, grid flips; tidy "
    "result tables."
)


def _parser() -> OneLineParser:
    from ..names import PAPER_MODELS

    ap = OneLineParser(prog="python -m apslib.evaluate", description=DESCRIPTION)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--data", help="data root (in-distribution evaluation)")
    ap.add_argument("--results-dir", required=True)
    ap.add_argument("--models", nargs="+", default=list(PAPER_MODELS))
    ap.add_argument("--seed", type=int, default=0, help="seed of the random shifts and noise images")
    ap.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0],
        help="training seeds whose runs are evaluated (run folders <slug>, <slug>-seed1, ...)",
    )
    ap.add_argument("--max-shift", type=int, default=16)
    ap.add_argument(
        "--sweep-slices", type=int, default=8, help="slices (evenly spaced) for the exhaustive protocol"
    )
    ap.add_argument(
        "--example-index",
        type=int,
        help="validation slice of the examples figure (default: the middle slice of the first volume)",
    )
    ap.add_argument("--ood", action="store_true", help="also evaluate the out-of-distribution sets")
    ap.add_argument("--ood-size", type=int, default=128)
    ap.add_argument("--image-dir", help="a folder of images (e.g. ImageNet val) as one more OOD set")
    ap.add_argument("--image-limit", type=int, help="at most this many images of --image-dir (by path)")
    ap.add_argument("--device", default="auto")
    return ap


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print("warning: " + " ".join(str(message).split()), file=sys.stderr)


def main(argv=None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    if not args.data and not args.ood:
        ap.error("nothing to evaluate: give --data DATA (in distribution) and/or --ood")
    with warnings.catch_warnings():
        warnings.showwarning = _print_warning  # one line per warning, no source excerpt
        return _run(args)


def _run(args) -> int:
    try:
        if args.data:
            r = evaluate_runs(
                args.run_dir,
                args.data,
                args.models,
                args.results_dir,
                seed=args.seed,
                seeds=args.seeds,
                max_shift=args.max_shift,
                sweep_slices=args.sweep_slices,
                device=args.device,
                example_index=args.example_index,
            )
            label = "in distribution" if r.in_distribution else "other data (see the warnings)"
            print(f"{label}: {r.paths['table']} ({r.seconds:.1f} s)")
        if args.ood:
            r = evaluate_runs_ood(
                args.run_dir,
                args.models,
                args.results_dir,
                size=args.ood_size,
                image_dir=args.image_dir,
                image_limit=args.image_limit,
                seed=args.seed,
                seeds=args.seeds,
                max_shift=args.max_shift,
                device=args.device,
            )
            print(f"out of distribution: {r.paths['table']} ({r.seconds:.1f} s)")
    except (
        DataError,
        TrainingError,
        OSError,
        ValueError,
        IndexError,
    ) as err:  # OSError: FileNotFoundError, ...
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        return 1
    return 0

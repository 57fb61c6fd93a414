"""The training CLI, ``python -m apslib.training`` (options generated from
:class:`~apslib.training.config.TrainConfig` by :func:`apslib.training.config.cli_parser`).

Exit status: 0 trained or already finished; 1 bad input (missing data, sizes the U-Net
cannot take, another configuration or another process in the run folder, a damaged
checkpoint, a run folder of another apslib version, a folder that cannot be written); 3
the loss became NaN/inf (the last good checkpoint is kept); 130 interrupted (rerun the
same command to resume). Every expected error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import os
import sys
import warnings

import torch

from ..data import DataError
from .config import parse_cli
from .errors import NonFiniteLossError, TrainingError, TrainingInterrupted
from .loop import train

__all__ = ["main"]


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main(argv=None) -> int:
    """Run the command line ``argv`` (``sys.argv[1:]`` by default); returns the exit status."""
    with warnings.catch_warnings():
        warnings.showwarning = _print_warning  # one line per warning, no source excerpt
        try:
            config, args = parse_cli(argv)
            if args.threads:
                torch.set_num_threads(args.threads)
            result = train(config, retrain=args.retrain, progress=not args.no_progress)
        except TrainingInterrupted as err:
            print(err, file=sys.stderr)
            return 130
        except KeyboardInterrupt:
            print("interrupted; rerun the same command to start", file=sys.stderr)
            return 130
        except NonFiniteLossError as err:
            print(f"error: {err}", file=sys.stderr)
            return 3
        except (TrainingError, ValueError, FileNotFoundError, DataError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    if int(os.environ.get("RANK", "0")) == 0:
        f = result.final
        state = "already finished, skipped (--retrain to train again)" if result.skipped else "done"
        print(
            f"{result.name}: {state}; {len(result.history)} epochs in {result.path}"
            + (
                f"; val loss {f['val_loss']:.4g}, equivariance MSE {f['val_equiv_mse']:.3g}, "
                f"PSNR {f['val_psnr']:.2f} dB"
                if f
                else ""
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

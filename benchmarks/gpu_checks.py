"""The GPU checks to run when a GPU is lent (one short script; prints everything to record).

    python benchmarks/gpu_checks.py            # ~3-5 minutes on one H100

1. Equivariance of random APS and Baseline U-Nets on CUDA at the paper's size (320x320,
   depth 4, channels 64..1024), float32, with cuDNN autotuning off (deterministic
   algorithms) and on (cudnn.benchmark, TF32 allowed): the max relative error over a set of
   shifts, and the smallest top-2 polyphase gap. Autotuned algorithms (Winograd, FFT) are
   not exactly shift covariant, which the APS choice cannot undo at near-ties.
2. bench_unet at the paper's size (forward and train-step ratio APS/Baseline, bf16,
   channels_last) and bench_train throughput of the paper's config.
Record the output in benchmarks/RESULTS.md with the card's name.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from apslib import build_unet, calibrate_batchnorm, equivariance_errors, phase_margins

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling benchmark scripts
import bench_train  # noqa: E402
import bench_unet  # noqa: E402

PAPER = ["64", "128", "256", "512", "1024"]


def equivariance_on_cuda(device: torch.device) -> None:
    shifts = [(1, 0), (0, 1), (1, 1), (3, 5), (7, 2), (15, 15), (-16, 9), (5, -11)]
    for benchmark in (False, True):
        torch.backends.cudnn.benchmark = benchmark
        torch.backends.cudnn.allow_tf32 = benchmark
        torch.backends.cuda.matmul.allow_tf32 = benchmark
        for variant, j in [("baseline", 1), ("aps", 1), ("aps", 3)]:
            torch.manual_seed(0)
            model = build_unet(variant, depth=4, filter_size=j).to(device)
            x = torch.randn(4, 1, 320, 320, device=device)
            calibrate_batchnorm(model, x)
            err = equivariance_errors(model, x, shifts, chunk=2)
            margins = phase_margins(model, x)
            gap = min(float(m.min()) for m in margins) if margins else float("nan")
            print(
                f"cudnn.benchmark={benchmark!s:5} tf32={benchmark!s:5} {model.config.name:8} "
                f"max rel. error {float(err.max()):.2e}  min top-2 gap {gap:.2e}",
                flush=True,
            )


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: these checks are for a lent GPU")
    device = torch.device("cuda")
    print("device:", torch.cuda.get_device_name(device), "torch", torch.__version__, flush=True)
    equivariance_on_cuda(device)
    bench_unet.main(
        [
            "--device",
            "cuda",
            "--channels",
            *PAPER,
            "--size",
            "320",
            "--batch",
            "16",
            "--amp",
            "--channels-last",
            "--rounds",
            "10",
        ]
    )
    bench_unet.main(
        ["--device", "cuda", "--channels", *PAPER, "--size", "320", "--batch", "16", "--rounds", "10"]
    )
    bench_train.main(
        [
            "--device",
            "cuda",
            "--channels",
            *PAPER,
            "--size",
            "320",
            "--batch",
            "16",
            "--amp",
            "--channels-last",
        ]
    )


if __name__ == "__main__":
    main()

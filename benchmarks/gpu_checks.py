"""The GPU checks to run when a GPU is lent (one short script; prints everything to record).

    python benchmarks/gpu_checks.py            # ~3-5 minutes on one H100

1. Equivariance of random APS and Baseline U-Nets on CUDA at the paper's size (320x320,
   depth 4, channels 64..1024), float32, with cuDNN autotuning off (deterministic
   algorithms) and on (cudnn.benchmark, TF32 allowed): the max relative error over a set of
   shifts, and the smallest top-2 polyphase gap. Autotuned algorithms (Winograd, FFT) are
   not exactly shift covariant, which the APS choice cannot undo at near-ties.
2. The fast forms (apslib.fastpaths) against the literal forms on CUDA: every paper model
   at depth 4 (channels 16..256, 128x128, float64 and float32), eval and train mode: the
   largest output difference, and whether every level chose the same grids.
3. bench_unet at the paper's size (forward and train-step ratio APS/Baseline, bf16,
   channels_last) and bench_train throughput of the paper's config.
4. The alias-free U-Nets (AF, AF-ReLU) on CUDA at the paper's size, float32: the largest
   relative equivariance error under sub-pixel and integer Fourier shifts (random weights,
   BatchNorm calibrated), and bench_alias_free (forward and train-step ratios against the
   Baseline and APS-3).
5. Learnable polyphase sampling (LPS, LPS-3) on CUDA at the paper's size, eval mode, float32,
   cuDNN autotuning off and on: the max relative equivariance error over integer shifts and
   the smallest top-2 gap of the learned scores; then bench_lps (forward and train-step
   ratios against APS and APS-3).
Record the output in benchmarks/RESULTS.md with the card's name.

    python benchmarks/gpu_checks.py --only alias_free   # one section: equivariance,
                                                        # fast_paths, bench_unet, bench_train,
                                                        # alias_free or lps
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from apslib import build_unet, calibrate_batchnorm, equivariance_errors, phase_margins

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling benchmark scripts

PAPER = ["64", "128", "256", "512", "1024"]


def equivariance_on_cuda(
    device: torch.device,
    specs=(("baseline", 1), ("aps", 1), ("aps", 3)),
    *,
    batch: int = 4,
    size: int = 320,
    channels=None,
) -> None:
    """Random U-Nets of ``specs`` ((variant, filter size) pairs) at ``size`` on ``device``."""
    channels = channels or [int(c) for c in PAPER]
    shifts = [(1, 0), (0, 1), (1, 1), (3, 5), (7, 2), (15, 15), (-16, 9), (5, -11)]
    for benchmark in (False, True):
        torch.backends.cudnn.benchmark = benchmark
        torch.backends.cudnn.allow_tf32 = benchmark
        torch.backends.cuda.matmul.allow_tf32 = benchmark
        for variant, j in specs:
            torch.manual_seed(0)
            model = build_unet(variant, depth=len(channels) - 1, channels=channels, filter_size=j).to(device)
            x = torch.randn(batch, 1, size, size, device=device)
            calibrate_batchnorm(model, x)
            err = equivariance_errors(model, x, shifts, chunk=2)
            margins = phase_margins(model, x)
            gap = min(float(m.min()) for m in margins) if margins else float("nan")
            print(
                f"cudnn.benchmark={benchmark!s:5} tf32={benchmark!s:5} {model.config.name:8} "
                f"max rel. error {float(err.max()):.2e}  min top-2 gap {gap:.2e}",
                flush=True,
            )


def fast_vs_literal_on_cuda(device: torch.device) -> None:
    from apslib.fastpaths import disabled

    torch.backends.cudnn.benchmark = False
    for dtype in (torch.float64, torch.float32):
        for variant, j in [("baseline", 1), ("lpf", 2), ("lpf", 3), ("aps", 1), ("aps", 2), ("aps", 3)]:
            torch.manual_seed(0)
            model = build_unet(variant, depth=4, channels=[16, 32, 64, 128, 256], filter_size=j)
            model = model.to(device, dtype)
            x = torch.randn(4, 1, 128, 128, device=device, dtype=dtype)
            calibrate_batchnorm(model, x)
            line = []
            for train in (False, True):
                model.train(train)
                with torch.set_grad_enabled(train):
                    y, p = model(x, return_phases=True)
                    with disabled():
                        y0, p0 = model(x, return_phases=True)
                same = all((a is None and b is None) or bool(torch.equal(a, b)) for a, b in zip(p, p0))
                rel = float((y - y0).abs().max() / y0.abs().max())
                line.append(f"{'train' if train else 'eval'}: rel. diff {rel:.1e}, same grids {same}")
            print(f"fast vs literal {str(dtype)[6:]:8} {model.config.name:8} " + "; ".join(line), flush=True)


def section(fn, *args) -> None:
    """Run one check; a failure is printed and the next check still runs."""
    import traceback

    try:
        fn(*args)
    except Exception:  # noqa: BLE001 (report and go on: device time is scarce)
        traceback.print_exc(limit=3)


def benchmarks() -> None:
    import bench_unet

    paper = ["--device", "cuda", "--channels", *PAPER, "--size", "320", "--batch", "16"]
    bench_unet.main([*paper, "--amp", "--channels-last", "--rounds", "10"])
    bench_unet.main([*paper, "--rounds", "10"])


def training_throughput() -> None:
    import bench_train  # the training stack (imports fastmri's data transforms)

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


def alias_free_on_cuda(device: torch.device) -> None:
    import bench_alias_free

    from apslib.subpixel import fourier_shift

    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    shifts = [(0.5, 0.0), (0.25, 0.75), (-1.3, 2.6), (1.0, 0.0), (3.0, -5.0)]
    for activation in ("af-poly", "af-relu"):
        torch.manual_seed(0)
        model = build_unet("af", depth=4, activation=activation).to(device)
        x = torch.randn(2, 1, 320, 320, device=device)
        calibrate_batchnorm(model, x)
        with torch.no_grad():
            y = model(x)
            errs = []
            for d in shifts:
                ref = fourier_shift(y, d)
                errs.append(float((model(fourier_shift(x, d)) - ref).abs().max() / ref.abs().max()))
        print(
            f"{model.config.name:8} float32 cuda: rel. error per shift "
            + ", ".join(f"{d}: {e:.1e}" for d, e in zip(shifts, errs)),
            flush=True,
        )
    args = ["--device", "cuda", "--channels", *PAPER, "--size", "320", "--batch", "8", "--rounds", "5"]
    bench_alias_free.main(args)


def lps_on_device(device: torch.device, size: int = 320, channels=None, rounds: int = 5) -> None:
    """LPS and LPS-3 (random scorers, eval mode) exact at integer shifts; bench_lps's ratios."""
    import bench_lps

    channels = channels or [int(c) for c in PAPER]
    equivariance_on_cuda(device, (("lps", 1), ("lps", 3)), batch=2, size=size, channels=channels)
    args = ["--device", str(device), "--size", str(size), "--batch", "8", "--rounds", str(rounds)]
    bench_lps.main([*args, "--channels", *map(str, channels)])


SECTIONS = {
    "equivariance": equivariance_on_cuda,
    "fast_paths": fast_vs_literal_on_cuda,
    "bench_unet": lambda _device: benchmarks(),
    "bench_train": lambda _device: training_throughput(),
    "alias_free": alias_free_on_cuda,
    "lps": lps_on_device,
}


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    only = argv[argv.index("--only") + 1] if "--only" in argv[:-1] else None
    if only is not None and only not in SECTIONS:
        sys.exit(f"--only takes one of {', '.join(SECTIONS)}; got {only!r}")
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: these checks are for a lent GPU")
    device = torch.device("cuda")
    print("device:", torch.cuda.get_device_name(device), "torch", torch.__version__, flush=True)
    for name, fn in SECTIONS.items():
        if only in (None, name):
            section(fn, device)


if __name__ == "__main__":
    main()

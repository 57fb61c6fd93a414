"""APS U-Net vs Baseline U-Net (same channels): forward and train-step times and ratios.

Both models (and the bare sampling layers) are timed interleaved in one process, the order
alternating every round, so a noisy shared machine slows both alike; the ratios of the
medians are what to read.

    python benchmarks/bench_unet.py                       # CPU target config
    python benchmarks/bench_unet.py --device cuda --channels 64 128 256 512 1024 \
        --size 320 --batch 16 --amp --channels-last       # the paper's size on a GPU
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from apslib import build_unet
from apslib.device import resolve_device
from apslib.layers import FixedGrid, NormSelection, PolyphaseDown, PolyphaseUp


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved(cases: dict, rounds: int, warmup: int, device) -> dict:
    """Median seconds per call of each case, timed round-robin."""
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times = {k: [] for k in cases}
    names = list(cases)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            sync(device)
            t0 = time.perf_counter()
            cases[name]()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--filter-size", type=int, default=1, help="APS-j blur (1 = plain APS)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--amp", action="store_true", help="bf16 autocast (GPU)")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch threads on CPU (0: default)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    depth = len(args.channels) - 1
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp)

    torch.manual_seed(0)
    models = {
        "Baseline": build_unet("baseline", depth=depth, channels=args.channels),
        "APS" if args.filter_size == 1 else f"APS-{args.filter_size}": build_unet(
            "aps", depth=depth, channels=args.channels, filter_size=args.filter_size
        ),
    }
    for m in models.values():
        m.to(device, memory_format=fmt)
    x = torch.randn(args.batch, 1, args.size, args.size, device=device).to(memory_format=fmt)
    target = torch.randn_like(x)

    def forward(model):
        def run():
            model.eval()
            with torch.no_grad(), amp:
                model(x)

        return run

    def train_step(model):
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def run():
            model.train()
            opt.zero_grad(set_to_none=True)
            with amp:
                loss = F.mse_loss(model(x).float(), target)
            loss.backward()
            opt.step()

        return run

    # The sampling layers alone, at the first level: pool + upsample back, forward+backward.
    c = args.channels[0]
    feat = torch.randn(args.batch, c, args.size, args.size, device=device).relu()
    feat = feat.to(memory_format=fmt).requires_grad_()
    layers = {
        "maxpool+convT": (
            PolyphaseDown(1, FixedGrid()),
            PolyphaseUp(c, c, up_pad="top_left", layout="transposed"),
        ),
        "APS-D+APS-U": (
            PolyphaseDown(args.filter_size, NormSelection()),
            PolyphaseUp(c, c, args.filter_size),
        ),
    }
    for d, u in layers.values():
        d.to(device)
        u.to(device, memory_format=fmt)

    def layer_step(down, up):
        def run():
            with amp:
                y, idx = down(feat)
                z = up(y, idx)
            z.float().sum().backward()
            feat.grad = None

        return run

    names = list(models)
    cases = {}
    for n, m in models.items():
        cases[f"{n} forward"] = forward(m)
    for n, m in models.items():
        cases[f"{n} train step"] = train_step(m)
    for n, (d, u) in layers.items():
        cases[n] = layer_step(d, u)
    med = interleaved(cases, args.rounds, args.warmup, device)

    base, aps = names
    ratios = {
        "forward": med[f"{aps} forward"] / med[f"{base} forward"],
        "train step": med[f"{aps} train step"] / med[f"{base} train step"],
        "sampling layers": med["APS-D+APS-U"] / med["maxpool+convT"],
    }
    dev = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine()
    )
    print(f"device: {device} ({dev}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(
        f"config: channels {args.channels}, depth {depth}, batch {args.batch}, "
        f"{args.size}x{args.size}, amp={args.amp}, channels_last={args.channels_last}, "
        f"rounds {args.rounds}"
    )
    for k, v in med.items():
        print(f"  {k:<22} {v * 1e3:9.2f} ms   ({args.batch / v:8.1f} images/s)")
    for k, v in ratios.items():
        print(f"ratio {aps}/{base} {k:<16} {v:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "device": dev, "median_s": med, "ratios": ratios}, f, indent=2)
    return ratios


if __name__ == "__main__":
    main()

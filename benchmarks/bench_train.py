"""Training throughput (images/second) of the paper's models, APS against the Baseline.

Each model runs full training steps of :func:`apslib.training.steps.train_step` (bf16 autocast if
``--amp``, MSE of the clamped output, backward, gradient clipping, Adam) on a fixed random
batch, so data loading is not measured. The models are timed interleaved in one process,
the order alternating every round, so a noisy shared machine slows all alike; medians over
rounds are reported, and the APS/Baseline throughput ratio.

    python benchmarks/bench_train.py                                    # CPU, the default profile's sizes
    python benchmarks/bench_train.py --models Baseline LPF-3 APS APS-3  # more models
    python benchmarks/bench_train.py --device cuda --channels 64 128 256 512 1024 \
        --size 320 --batch 16 --amp --channels-last                     # the paper's config on a GPU
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from apslib.device import resolve_device
from apslib.training.config import config_for
from apslib.training.steps import build_model, train_step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_case(name: str, args, device: torch.device):
    cfg = config_for(
        name,
        depth=len(args.channels) - 1,
        channels=args.channels,
        device=str(device),
        amp=args.amp,
        channels_last=args.channels_last,
    )
    model = build_model(cfg).to(device)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 1, args.size, args.size, generator=g).to(device)
    x = x.contiguous(memory_format=fmt)
    y = (0.5 * x + 0.1 * torch.randn(x.shape, generator=g).to(device)).clamp(-6, 6)

    def step():
        train_step(model, opt, x, y, loss=cfg.loss, clamp=cfg.clamp, grad_clip=cfg.grad_clip, amp=cfg.amp)

    return step


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--models",
        nargs="+",
        default=["Baseline", "APS"],
        help="paper names (Baseline, LPF-3, APS, APS-3, ...)",
    )
    ap.add_argument("--channels", type=int, nargs="+", default=[8, 16, 32, 64])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3, help="training steps per model and round")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per model first")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    cases = {name: make_case(name, args, device) for name in args.models}
    for step in cases.values():
        for _ in range(args.warmup):
            step()
    sync(device)
    times = {name: [] for name in cases}
    names = list(cases)
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            sync(device)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                cases[name]()
            sync(device)
            times[name].append((time.perf_counter() - t0) / args.steps)
    per_step = {k: statistics.median(v) for k, v in times.items()}
    ips = {k: args.batch / v for k, v in per_step.items()}

    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(
        f"device {device} ({dev}), torch {torch.__version__}, threads {torch.get_num_threads()}; "
        f"size {args.size}, batch {args.batch}, channels {args.channels}, amp {args.amp}, "
        f"channels_last {args.channels_last}; median of {args.rounds} rounds x {args.steps} steps"
    )
    for name in names:
        print(f"  {name:<14} {ips[name]:9.1f} images/s   {1e3 * per_step[name]:9.1f} ms/step")
    result = {
        "device": str(device),
        "device_name": dev,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "size": args.size,
        "batch": args.batch,
        "channels": args.channels,
        "amp": args.amp,
        "channels_last": args.channels_last,
        "images_per_s": ips,
        "seconds_per_step": per_step,
    }
    if "Baseline" in ips and "APS" in ips:
        ratio = ips["APS"] / ips["Baseline"]
        result["aps_over_baseline"] = ratio
        print(
            f"APS/Baseline throughput ratio: {ratio:.3f} (an APS step takes {1 / ratio:.2f}x the Baseline's)"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()

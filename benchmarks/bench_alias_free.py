"""The alias-free U-Nets (AF, AF-ReLU) against the Baseline and APS-3 at equal widths:
forward and train-step times and ratios, and what the alias-free models' time is made of.

Timed interleaved in one process (``bench_unet.interleaved``), order alternating each round;
the ratios of medians are what to read. The default sizes are the default notebook
profile's (128x128, batch 4, depth 3, widths 8..64).

    python benchmarks/bench_alias_free.py            # the default profile's sizes
    python benchmarks/bench_alias_free.py --quick    # seconds: a smoke run, not a measurement

The components table: one profiled train step per alias-free model (``torch.profiler``),
the self time of the FFT operators (forward and backward), the convolutions, and the rest
(the pointwise work of the activations at 2x, normalisation, copies), as shares of the step.
"""

from __future__ import annotations

import argparse
import platform

import torch
import torch.nn.functional as F
from bench_unet import interleaved  # the same timing loop as the other benchmarks

from apslib import build_unet
from apslib.device import resolve_device

MODELS = {
    "Baseline": dict(variant="baseline"),
    "APS-3": dict(variant="aps", filter_size=3),
    "AF": dict(variant="af", activation="af-poly"),
    "AF-ReLU": dict(variant="af", activation="af-relu"),
}


def _kind(name: str) -> str:
    if "fft" in name:
        return "FFT (forward and backward)"
    if "conv" in name:
        return "convolutions"
    return "the rest"


def components(model, x, y) -> dict:
    """Shares of one train step's operator self time: FFTs, convolutions, the rest."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        F.mse_loss(model(x), y).backward()
    shares: dict[str, float] = {}
    for e in prof.key_averages():
        shares[_kind(e.key)] = shares.get(_kind(e.key), 0.0) + e.self_cpu_time_total
    total = sum(shares.values())
    return {k: v / total for k, v in sorted(shares.items())}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--channels", type=int, nargs="+", default=[8, 16, 32, 64])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, 2 rounds")
    args = ap.parse_args(argv)
    if args.quick:
        args.channels, args.size, args.batch, args.rounds, args.warmup = [4, 8, 16], 32, 2, 2, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    depth = len(args.channels) - 1
    torch.manual_seed(0)
    x = torch.randn(args.batch, 1, args.size, args.size, device=device)
    y = torch.randn_like(x)
    models = {
        name: build_unet(depth=depth, channels=args.channels, **kw).to(device).train()
        for name, kw in MODELS.items()
    }

    def forward(m):
        def run():
            with torch.no_grad():
                m(x)

        return run

    def step(m):
        opt = torch.optim.Adam(m.parameters(), lr=1e-4)

        def run():
            opt.zero_grad(set_to_none=True)
            F.mse_loss(m(x), y).backward()
            opt.step()

        return run

    fwd = interleaved({n: forward(m) for n, m in models.items()}, args.rounds, args.warmup, device)
    train = interleaved({n: step(m) for n, m in models.items()}, args.rounds, args.warmup, device)
    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device {device}; batch {args.batch}, "
        f"{args.size}x{args.size}, widths {args.channels}"
    )
    print(f"{'model':<10} {'forward ms':>11} {'x Baseline':>11} {'train ms':>10} {'x Baseline':>11}")
    for n in models:
        print(
            f"{n:<10} {fwd[n] * 1e3:11.1f} {fwd[n] / fwd['Baseline']:11.2f} "
            f"{train[n] * 1e3:10.1f} {train[n] / train['Baseline']:11.2f}"
        )
    parts = {}
    if device.type == "cpu":
        print("\nshare of one train step's operator time")
        for n in ("AF", "AF-ReLU"):
            parts[n] = components(models[n], x, y)
            print(f"{n:<10} " + ", ".join(f"{k} {v:.0%}" for k, v in parts[n].items()))
    return {"forward": fwd, "train": train, "components": parts}


if __name__ == "__main__":
    main()

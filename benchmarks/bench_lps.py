"""Learnable polyphase sampling (LPS, LPS-3) against APS and APS-3 at equal widths:
forward (eval: argmax choice) and train-step (Gumbel-softmax choice) times and their ratios
to APS, and the parameters the scorers add.

Timed interleaved in one process (``bench_unet.interleaved``), order alternating each round;
the ratios of medians are what to read. The default sizes are the default notebook
profile's (128x128, batch 4, depth 3, widths 8..64).

    python benchmarks/bench_lps.py            # the default profile's sizes
    python benchmarks/bench_lps.py --quick    # seconds: a smoke run, not a measurement
"""

from __future__ import annotations

import argparse
import platform

import torch
import torch.nn.functional as F
from bench_unet import interleaved  # the same timing loop as the other benchmarks

from apslib import build_unet
from apslib.device import resolve_device
from apslib.learned import set_sampling

MODELS = {
    "Baseline": dict(variant="baseline"),
    "APS": dict(variant="aps"),
    "LPS": dict(variant="lps"),
    "APS-3": dict(variant="aps", filter_size=3),
    "LPS-3": dict(variant="lps", filter_size=3),
}


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
        name: build_unet(depth=depth, channels=args.channels, **kw).to(device) for name, kw in MODELS.items()
    }
    for m in models.values():  # the training run's sampling at its first epoch
        set_sampling(m, temperature=1.0, generator=torch.Generator(device).manual_seed(0))

    def forward(m):
        def run():
            m.eval()
            with torch.no_grad():
                m(x)

        return run

    def step(m):
        opt = torch.optim.Adam(m.parameters(), lr=1e-4)

        def run():
            m.train()
            opt.zero_grad(set_to_none=True)
            F.mse_loss(m(x), y).backward()
            opt.step()

        return run

    fwd = interleaved({n: forward(m) for n, m in models.items()}, args.rounds, args.warmup, device)
    train = interleaved({n: step(m) for n, m in models.items()}, args.rounds, args.warmup, device)
    params = {n: sum(p.numel() for p in m.parameters()) for n, m in models.items()}
    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device {device}; batch {args.batch}, "
        f"{args.size}x{args.size}, widths {args.channels}"
    )
    print(f"{'model':<9} {'params':>8} {'forward ms':>11} {'x APS':>7} {'train ms':>9} {'x APS':>7}")
    for n in models:
        print(
            f"{n:<9} {params[n]:8d} {fwd[n] * 1e3:11.1f} {fwd[n] / fwd['APS']:7.2f} "
            f"{train[n] * 1e3:9.1f} {train[n] / train['APS']:7.2f}"
        )
    print(
        f"train step LPS / APS {train['LPS'] / train['APS']:.2f}, "
        f"LPS-3 / APS-3 {train['LPS-3'] / train['APS-3']:.2f}; "
        f"scorer parameters {params['LPS'] - params['APS']}"
    )
    return {"forward": fwd, "train": train, "params": params}


if __name__ == "__main__":
    main()

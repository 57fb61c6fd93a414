"""Random stress check of exact equivariance: many random float32 U-Nets, eval mode.

Each case draws a depth (1-4), a blur size (1, 2, 3 or 5), a non-square size (2-5 periods of
``2**depth`` per side), widths, a batch (1-3), an input scale (1e-3, 1 or 100), calibrates
BatchNorm on the input and measures ``equivariance_errors`` at four random integer circular
shifts in [-50, 50]. It prints, per variant, the number of cases, the worst relative error
and the cases above 0, for as long as ``--seconds`` allows.

    python benchmarks/stress_equivariance.py                    # aps and lps, 100 s each
    python benchmarks/stress_equivariance.py --variants lps --seconds 20 --seed 1
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from apslib import build_unet, calibrate_batchnorm, equivariance_errors


def random_case(rng: random.Random, variant: str) -> tuple[torch.nn.Module, torch.Tensor, list, dict]:
    depth, j, seed = rng.randint(1, 4), rng.choice([1, 2, 3, 5]), rng.randint(0, 10**6)
    period = 2**depth
    h, w = period * rng.randint(2, 5), period * rng.randint(2, 5)
    channels = [rng.choice([2, 4, 8]) * 2**i for i in range(depth + 1)]
    batch, scale = rng.randint(1, 3), rng.choice([1e-3, 1.0, 100.0])
    torch.manual_seed(seed)
    model = build_unet(variant, depth=depth, channels=channels, filter_size=j)
    x = torch.randn(batch, 1, h, w) * scale
    calibrate_batchnorm(model, x)
    shifts = [(rng.randint(-50, 50), rng.randint(-50, 50)) for _ in range(4)]
    case = dict(
        depth=depth, filter_size=j, seed=seed, size=(h, w), channels=channels, batch=batch, scale=scale
    )
    return model.eval(), x, shifts, case


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", nargs="+", default=["aps", "lps"])
    ap.add_argument("--seconds", type=float, default=100.0, help="time per variant")
    ap.add_argument("--seed", type=int, default=123, help="seed of the case generator")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    summary = {}
    for variant in args.variants:
        rng = random.Random(args.seed)
        cases, worst, nonzero = 0, 0.0, []
        start = time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            model, x, shifts, case = random_case(rng, variant)
            with torch.no_grad():
                err = float(equivariance_errors(model, x, shifts).max())
            cases, worst = cases + 1, max(worst, err)
            if err > 0:
                nonzero.append({**case, "error": err})
        summary[variant] = dict(cases=cases, worst=worst, nonzero=len(nonzero))
        print(
            f"{variant}: {cases} random float32 U-Nets, "
            f"worst relative error {worst:.2e}, {len(nonzero)} above 0"
        )
        for c in nonzero[:5]:
            print("   ", c)
    return summary


if __name__ == "__main__":
    main()

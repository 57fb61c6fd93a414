"""Circular padding: apslib's concatenation (filters.circular_pad) against torch's
F.pad(mode="circular"), alone and inside a full U-Net training step.

Both give the same values; this measures the cost. Runs are interleaved (A, B, A, B, ...)
and the minimum over repeats is kept, so the ratio is fair on a shared machine.

    python benchmarks/bench_padding.py [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager

import torch
import torch.nn.functional as F

import apslib.fastpaths as fastpaths
import apslib.filters as filters
import apslib.layers as layers
from apslib import build_unet


def torch_pad(x, pads):
    return F.pad(x, tuple(pads), mode="circular")


@contextmanager
def padding(impl):
    """Route every circular pad of apslib (convs, blur, stride-1 pool) through ``impl``."""
    mods = (filters, layers, fastpaths)
    saved = [m.circular_pad for m in mods]
    for m in mods:
        m.circular_pad = impl
    try:
        yield
    finally:
        for m, f in zip(mods, saved):
            m.circular_pad = f


def best(fn, repeats, inner):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t) / inner)
    return min(times)


def pad_alone(shape, repeats):
    x = torch.randn(shape, requires_grad=True)
    up = torch.randn(*shape[:2], shape[2] + 2, shape[3] + 2)

    def run(impl):
        def step():
            impl(x, (1, 1, 1, 1)).backward(up)
            x.grad = None

        return step

    res = {"F.pad": [], "cat": []}
    for _ in range(repeats):
        res["F.pad"].append(best(run(torch_pad), 1, 10))
        res["cat"].append(best(run(filters.circular_pad), 1, 10))
    return {k: min(v) for k, v in res.items()}


def train_step(variant, depth, channels, batch, size, repeats, filter_size=1):
    torch.manual_seed(0)
    model = build_unet(variant, depth=depth, channels=channels, filter_size=filter_size)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.randn(batch, 1, size, size)
    y = torch.randn(batch, 1, size, size)

    def step():
        opt.zero_grad(set_to_none=True)
        F.mse_loss(model(x), y).backward()
        opt.step()

    step()  # warm-up
    res = {"F.pad": [], "cat": []}
    for _ in range(repeats):
        with padding(torch_pad):
            res["F.pad"].append(best(step, 1, 3))
        res["cat"].append(best(step, 1, 3))
    return {k: min(v) for k, v in res.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, repeats {args.repeats}")
    print("pad alone (forward + backward), ms:")
    for shape in [(4, 16, 128, 128), (4, 64, 64, 64), (16, 64, 128, 128)]:
        r = pad_alone(shape, args.repeats)
        print(
            f"  {str(shape):22s} F.pad {1e3 * r['F.pad']:8.2f}  cat {1e3 * r['cat']:8.2f}  "
            f"ratio cat/F.pad {r['cat'] / r['F.pad']:.2f}"
        )
    print("U-Net training step (Adam, MSE), ms:")
    cases = [
        ("baseline", 3, [8, 16, 32, 64], 4, 128, 1),
        ("aps", 3, [8, 16, 32, 64], 4, 128, 1),
        ("aps", 3, [8, 16, 32, 64], 4, 128, 3),
        ("baseline", 4, [16, 32, 64, 128, 256], 4, 128, 1),
        ("aps", 4, [16, 32, 64, 128, 256], 4, 128, 1),
    ]
    for variant, depth, ch, batch, size, j in cases:
        r = train_step(variant, depth, ch, batch, size, args.repeats, j)
        name = f"{variant}{'-' + str(j) if j > 1 else ''} depth {depth} ch {ch[0]}..{ch[-1]}"
        print(
            f"  {name:34s} F.pad {1e3 * r['F.pad']:8.1f}  cat {1e3 * r['cat']:8.1f}  "
            f"ratio cat/F.pad {r['cat'] / r['F.pad']:.3f}"
        )


if __name__ == "__main__":
    main()

"""fastMRI's U-Net against its APS conversion (:func:`apslib.convert.aps_unet_from_fastmri`,
same weights): forward and train-step times and their ratios.

Timed interleaved in one process (``bench_unet.interleaved``), the order alternating every
round; the ratios of medians are what to read.

    python benchmarks/bench_convert.py            # chans 16, 4 levels, batch 4, 128x128, 2 threads
    python benchmarks/bench_convert.py --quick    # a few seconds: a smoke run, not a measurement
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from bench_unet import interleaved  # the same timing loop as the other benchmarks
from fastmri.models import Unet

from apslib.convert import aps_unet_from_fastmri
from apslib.device import resolve_device


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chans", type=int, default=16)
    ap.add_argument("--levels", type=int, default=4)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--filter-size", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2, help="torch threads on CPU")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, 2 rounds")
    args = ap.parse_args(argv)
    if args.quick:
        args.chans, args.levels, args.size, args.batch, args.rounds, args.warmup = 4, 2, 32, 2, 2, 1
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    fm = Unet(1, 1, chans=args.chans, num_pool_layers=args.levels).to(device)
    models = {"fastMRI": fm, "APS": aps_unet_from_fastmri(fm, filter_size=args.filter_size)}
    x = torch.randn(args.batch, 1, args.size, args.size, device=device)
    target = torch.randn_like(x)
    cases = {}
    for name, model in models.items():
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def forward(model=model):
            model.eval()
            with torch.no_grad():
                model(x)

        def step(model=model, opt=opt):
            model.train()
            opt.zero_grad(set_to_none=True)
            F.mse_loss(model(x), target).backward()
            opt.step()

        cases[f"{name} forward"], cases[f"{name} train step"] = forward, step
    med = interleaved(cases, args.rounds, args.warmup, device)
    ratios = {kind: med[f"APS {kind}"] / med[f"fastMRI {kind}"] for kind in ("forward", "train step")}
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"chans {args.chans}, levels {args.levels}, batch {args.batch}, {args.size}x{args.size}")
    for k, v in med.items():
        print(f"  {k:<22} {v * 1e3:9.2f} ms")
    for k, v in ratios.items():
        print(f"ratio APS/fastMRI {k:<12} {v:.3f}")
    return ratios


if __name__ == "__main__":
    main()

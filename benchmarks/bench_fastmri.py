"""apslib's Baseline and APS U-Nets, and fastmri's U-Net converted to APS
(:func:`apslib.convert.aps_unet_from_fastmri`, the same weights), against the U-Net fastMRI
users run today (``fastmri.models.Unet``), equal widths: forward and train-step times and
ratios.

fastmri's U-Net with ``chans=C, num_pool_layers=L`` has widths ``C .. C * 2**L`` (average
pooling, transposed-conv upsampling, zero padding, InstanceNorm, LeakyReLU); apslib's
``channels=[C, ..., C * 2**L]`` has the same widths (max-pool / APS, BatchNorm, ReLU,
circular padding). Timed interleaved in one process (``bench_unet.interleaved``), order
alternating each round; the ratios of medians are what to read.

    python benchmarks/bench_fastmri.py                 # 16..256, 4 levels, batch 4, 128x128
    python benchmarks/bench_fastmri.py --quick         # seconds: a smoke run, not a measurement
"""

from __future__ import annotations

import argparse
import platform

import torch
import torch.nn.functional as F
from bench_unet import interleaved  # the same timing loop as the other benchmarks
from fastmri.models import Unet

from apslib import build_unet
from apslib.convert import aps_unet_from_fastmri
from apslib.device import resolve_device


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chans", type=int, default=16)
    ap.add_argument("--levels", type=int, default=4)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, 2 rounds")
    args = ap.parse_args(argv)
    if args.quick:
        args.chans, args.levels, args.size, args.batch, args.rounds, args.warmup = 4, 2, 32, 2, 2, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    channels = [args.chans * 2**k for k in range(args.levels + 1)]
    torch.manual_seed(0)
    fastmri_unet = Unet(1, 1, chans=args.chans, num_pool_layers=args.levels, drop_prob=0.0)
    models = {
        "fastMRI U-Net": fastmri_unet,
        "Baseline": build_unet("baseline", depth=args.levels, channels=channels),
        "APS": build_unet("aps", depth=args.levels, channels=channels),
        "fastMRI U-Net as APS": aps_unet_from_fastmri(fastmri_unet),
    }
    x = torch.randn(args.batch, 1, args.size, args.size, device=device)
    target = torch.randn_like(x)
    cases = {}
    for name, model in models.items():
        model.to(device)
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

        cases[f"{name} forward"] = forward
        cases[f"{name} train step"] = step
    med = interleaved(cases, args.rounds, args.warmup, device)
    ref = "fastMRI U-Net"
    ratios = {
        f"{n}/{ref} {kind}": med[f"{n} {kind}"] / med[f"{ref} {kind}"]
        for n in ("Baseline", "APS", "fastMRI U-Net as APS")
        for kind in ("forward", "train step")
    }
    dev = platform.processor() or platform.machine()
    print(f"device: {device} ({dev}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"widths {channels}, batch {args.batch}, {args.size}x{args.size}, rounds {args.rounds}")
    for k, v in med.items():
        print(f"  {k:<28} {v * 1e3:9.2f} ms")
    for k, v in ratios.items():
        print(f"ratio {k:<36} {v:.3f}")
    return ratios


if __name__ == "__main__":
    main()

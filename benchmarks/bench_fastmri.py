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
    python benchmarks/bench_fastmri.py --profile       # also: what each model's time is made of

``--profile`` adds two tables. Components: one profiled forward and train step per model
(``torch.profiler``, after the timing), each operator's own time credited to the layer it
ran in (backward operators to the layer of their forward operator), sampling layers split
by operator (stride-1 map, phase norms, shift/select, stride-2 pool). Ablations: the APS
models timed interleaved with zero-padded convolutions, with fixed grids (plain stride-2
pools, no shifts), and with both: the differences are what circular padding and the
adaptive grids cost in place (the ablated models compute other functions; timing only).
"""

from __future__ import annotations

import argparse
import copy
import platform

import torch
import torch.nn.functional as F
from bench_unet import interleaved  # the same timing loop as the other benchmarks
from fastmri.models import Unet

from apslib import build_unet
from apslib.convert import aps_unet_from_fastmri
from apslib.device import resolve_device
from apslib.layers import Conv2d


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
    ap.add_argument("--profile", action="store_true", help="also the components and ablation tables")
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
        cases[f"{name} forward"], cases[f"{name} train step"] = forward_and_step(model, x, target)
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
    if args.profile:
        print_components(models, x, target)
        print_ablations(models, x, target, med, args, device)
    return ratios


def forward_and_step(model, x, target):
    """The two timed cases: an eval forward without gradients, an Adam train step."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def forward():
        model.eval()
        with torch.no_grad():
            model(x)

    def step():
        model.train()
        opt.zero_grad(set_to_none=True)
        F.mse_loss(model(x), target).backward()
        opt.step()

    return forward, step


# --- components ------------------------------------------------------------------------

_SAMPLING_OPS = {  # the first operator under a sampling layer (or (layer, op)) -> its part
    "aten::maximum": "stride-1 map",
    "aten::add": "stride-1 map",
    "aten::mul_": "stride-1 map",
    "aten::cat": "stride-1 map",
    "aten::linalg_vecdot": "phase norms",
    "aten::sum": "phase norms",
    "aten::argmax": "phase norms",
    "aten::abs": "phase norms",
    "aten::amax": "phase norms",
    "_PhaseShift": "shift/select",
    "_ChosenAverage": "shift/select",  # the converted average pool's chosen component
    "aten::index": "shift/select",
    "aten::avg_pool2d": "stride-2 pool",
    "aten::max_pool2d": "stride-2 pool",
    "aten::max_pool2d_with_indices": "stride-2 pool",
    "aten::empty_like": "stride-1 map",  # the out= results
    "aten::slice": "stride-1 map",
    "aten::reshape": "phase norms",
    "aten::unflatten": "phase norms",
    "aten::unsqueeze": "phase norms",
    "aten::arange": "shift/select",  # phase offsets, index checks
    "aten::remainder": "shift/select",
    "aten::div": "shift/select",
    "aten::item": "shift/select",
    "aten::min": "shift/select",
    "aten::max": "shift/select",
    "aten::conv_transpose2d": "transposed conv",
    ("up", "aten::div"): "transposed conv",  # the kernel and bias, prepared
    ("up", "aten::flip"): "transposed conv",
    ("up", "aten::transpose"): "transposed conv",
}


def _layer_name(m: torch.nn.Module) -> str | None:
    """The component a module's own operators count for (None: look inside it)."""
    from apslib.layers import PolyphaseDown, PolyphaseUp

    nn = torch.nn
    if isinstance(m, PolyphaseDown):
        return "down"
    if isinstance(m, (PolyphaseUp, nn.ConvTranspose2d)):
        return "up"
    if isinstance(m, nn.Conv2d):
        if m.kernel_size == (1, 1):
            return "1x1 conv"
        if m.padding_mode == "circular":
            return "3x3 conv, circular pad" + (" (apslib)" if isinstance(m, Conv2d) else "")
        return "3x3 conv, zero pad"
    for kind in (nn.BatchNorm2d, nn.InstanceNorm2d, nn.ReLU, nn.LeakyReLU, nn.Dropout2d):
        if isinstance(m, kind):
            return kind.__name__
    return None


def components(fn, model) -> dict:
    """Seconds of one call of ``fn`` per component (see the module docstring)."""
    from torch.profiler import profile, record_function

    scopes = []

    def enter(mod, _inputs, name):
        scopes.append(record_function(f"layer::{name}"))
        scopes[-1].__enter__()

    def leave(*_):
        scopes.pop().__exit__(None, None, None)

    hooks = []
    for m in model.modules():
        name = _layer_name(m)
        if name:
            hooks.append(m.register_forward_pre_hook(lambda mod, i, name=name: enter(mod, i, name)))
            hooks.append(m.register_forward_hook(leave))
    try:
        fn()  # warm
        with profile() as prof:
            fn()
    finally:
        for h in hooks:
            h.remove()
    events = prof.events()

    def part(e) -> str | None:
        """The component of a forward operator: its layer (split by operator for the
        sampling layers), or what it is outside the layers."""
        chain = []
        while e is not None:
            chain.append(e)
            e = e.cpu_parent
        for k, a in enumerate(chain):
            if a.name.startswith("layer::"):
                layer = a.name[len("layer::") :]
                if layer in ("down", "up"):
                    op = chain[k - 1].name if k else None
                    sub = _SAMPLING_OPS.get((layer, op), _SAMPLING_OPS.get(op, "other")) if op else "python"
                    return f"{layer}: {sub}"
                return layer
        for a in reversed(chain):
            if a.name.startswith("Optimizer."):
                return "optimizer (Adam)"
            if a.name in ("aten::avg_pool2d", "aten::max_pool2d"):
                return "down: stride-2 pool"
            if a.name == "aten::cat":
                return "skip concat"
            if a.name in ("aten::mse_loss",):
                return "loss"
        return None

    def node_of(e):  # the autograd node a backward operator runs in, else None
        while e is not None and not e.name.startswith("autograd::engine::evaluate_function: "):
            e = e.cpu_parent
        return e

    nodes = {id(e): node_of(e) for e in events}
    # An operator records the sequence number of the next autograd node even when it makes
    # none: the node's forward operator is the last one started with that number.
    by_seq = {}
    for e in events:
        if e.sequence_nr >= 0 and nodes[id(e)] is None and not e.name.startswith("autograd::"):
            last = by_seq.get(e.sequence_nr)
            if last is None or e.time_range.start >= last.time_range.start:
                by_seq[e.sequence_nr] = e
    out: dict = {}
    for e in events:
        node = nodes[id(e)]
        if node is not None:
            fwd = by_seq.get(node.sequence_nr)
            name = part(fwd) if fwd is not None else None
            if name is None and "CopySlices" in node.name:
                # fastmri's in-place LeakyReLU on InstanceNorm's output (a view)
                name = "LeakyReLU (in place on a view)"
            elif name is None:
                name = "grad accumulation" if "AccumulateGrad" in node.name else "other"
            key = (name, "backward")
        else:
            key = (part(e) or "other", "forward")
        out[key] = out.get(key, 0.0) + e.self_cpu_time_total * 1e-6
    return out


def print_components(models: dict, x, target) -> None:
    print("\ncomponents, ms per call: operators' own time under torch.profiler (its overhead")
    print("inflates the many small operators: read the shares); forward = eval forward without")
    print("gradients, train = train step (fwd: its forward, bwd: its backward)")
    for name, model in models.items():
        forward, step = forward_and_step(model, x, target)
        fwd, train = components(forward, model), components(step, model)
        total_f, total_t = sum(fwd.values()), sum(train.values())
        names = sorted(
            {k[0] for k in (*fwd, *train)},
            key=lambda n: -train.get((n, "forward"), 0.0) - train.get((n, "backward"), 0.0),
        )
        print(f"\n{name}: forward {total_f * 1e3:.1f} ms, train step {total_t * 1e3:.1f} ms (profiled)")
        print(
            f"  {'component':<34} {'forward':>8} {'%':>5} {'train fwd':>9} {'bwd':>8} {'train':>8} {'%':>5}"
        )
        for n in names:
            f = fwd.get((n, "forward"), 0.0) + fwd.get((n, "backward"), 0.0)
            tf, tb = train.get((n, "forward"), 0.0), train.get((n, "backward"), 0.0)
            print(
                f"  {n:<34} {f * 1e3:8.2f} {100 * f / total_f:5.1f} {tf * 1e3:9.2f} {tb * 1e3:8.2f} "
                f"{(tf + tb) * 1e3:8.2f} {100 * (tf + tb) / total_t:5.1f}"
            )


# --- ablations -------------------------------------------------------------------------


def _zero_padded(model):
    """A copy whose circularly padded convolutions pad with zeros (nn.Conv2d's own)."""
    model = copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d) and m.padding_mode == "circular":
            m.padding_mode = "zeros"
            if type(m) is Conv2d:
                m.__class__ = torch.nn.Conv2d
    return model


def _fixed_grid(model):
    """A copy with plain stride-2 pools and unshifted upsampling (no phase choice)."""
    from apslib.layers import FixedGrid, PolyphaseDown, PolyphaseUp

    model = copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, PolyphaseDown):
            m.selection = FixedGrid()  # the stride-2 pool; no phase: no shift in the decoder
        elif isinstance(m, PolyphaseUp):
            m.up_pad = "top_left"  # the transposed conv, unshifted
    return model


def print_ablations(models: dict, x, target, med: dict, args, device) -> None:
    ref = "fastMRI U-Net"
    variants = {}
    for name in ("APS", "fastMRI U-Net as APS"):
        m = models[name]
        zero = _zero_padded(m)
        variants[name] = {
            "as is": m,
            "zero-padded convs": zero,
            "fixed grids": _fixed_grid(m),
            "both": _fixed_grid(zero),
        }
    cases = {}
    for name, vs in variants.items():
        for v, m in vs.items():
            f, s = forward_and_step(m, x, target)
            cases[(name, v, "forward")], cases[(name, v, "train step")] = f, s
    for kind in ("forward", "train step"):
        f, s = forward_and_step(models[ref], x, target)
        cases[(ref, "as is", kind)] = f if kind == "forward" else s
    t = interleaved(cases, args.rounds, args.warmup, device)
    print("\nablations, ms (median, interleaved) and ratio to fastMRI's U-Net; the ablated models")
    print("compute other functions (timing only)")
    for kind in ("forward", "train step"):
        r = t[(ref, "as is", kind)]
        print(f"  {kind}: {ref} {r * 1e3:.1f} ms")
        for name, vs in variants.items():
            full = t[(name, "as is", kind)]
            row = "  ".join(f"{v} {t[(name, v, kind)] * 1e3:6.1f} ({t[(name, v, kind)] / r:.3f})" for v in vs)
            pad = full - t[(name, "zero-padded convs", kind)]
            grid = full - t[(name, "fixed grids", kind)]
            rest = t[(name, "both", kind)] - r
            print(f"    {name:<22} {row}")
            print(
                f"    {'':<22} circular padding {pad * 1e3:+.1f} ms ({100 * pad / r:+.1f}%), adaptive "
                f"grids {grid * 1e3:+.1f} ms ({100 * grid / r:+.1f}%), the rest {rest * 1e3:+.1f} ms "
                f"({100 * rest / r:+.1f}%)"
            )


if __name__ == "__main__":
    main()

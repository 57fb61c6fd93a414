"""Generic U-Nets (pooling and transposed-conv *modules*) made APS / LPF-j (see
:mod:`apslib.convert`)."""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.modules.utils import _pair

from ..layers import check_aps_criterion
from .fastmri import _is_fastmri_unet
from .layers import (
    ConversionError,
    PhaseConvTranspose2d,
    PhasePool2d,
    PhaseStack,
    _circular_convs,
    check_options,
    sampling_layers,
)

__all__ = ["make_equivariant"]

_POOLS = (nn.MaxPool2d, nn.AvgPool2d)
_UPSAMPLERS = (nn.Upsample, nn.PixelShuffle, nn.MaxUnpool2d, nn.ConvTranspose1d, nn.ConvTranspose3d)
_DOWNSAMPLERS = (nn.FractionalMaxPool2d, nn.LPPool2d, nn.PixelUnshuffle)
_ADAPTIVE = (nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d)


def _one_line(m: nn.Module) -> str:
    """``repr(m)`` on one line (a container's repr spans several)."""
    return " ".join(repr(m).split())


def _why_not(m: nn.Module) -> str | None:
    """Why the module ``m`` keeps the model from being converted, or ``None``."""
    if isinstance(m, _POOLS):
        ok = _pair(m.kernel_size) == _pair(m.stride) == (2, 2) and _pair(m.padding) == (0, 0)
        if isinstance(m, nn.MaxPool2d):
            ok = ok and _pair(m.dilation) == (1, 1) and not m.return_indices
        else:
            ok = ok and m.divisor_override is None
        return None if ok else "only 2x2 pools at stride 2 without padding are converted; use nn.MaxPool2d(2)"
    if isinstance(m, nn.ConvTranspose2d):
        ok = _pair(m.kernel_size) == _pair(m.stride) == (2, 2) and _pair(m.dilation) == (1, 1)
        ok = ok and _pair(m.padding) == _pair(m.output_padding) == (0, 0)
        return None if ok else "only ConvTranspose2d(kernel_size=2, stride=2) without padding is converted"
    if isinstance(m, _UPSAMPLERS):
        return "this upsampler has no polyphase form here; use nn.ConvTranspose2d(c_in, c_out, 2, stride=2)"
    if isinstance(m, _DOWNSAMPLERS) or (isinstance(m, _ADAPTIVE) and _pair(m.output_size) != (1, 1)):
        return "this downsampler has no polyphase form here; use nn.MaxPool2d(2) or nn.AvgPool2d(2)"
    if isinstance(m, nn.Conv2d) and _pair(m.stride) != (1, 1):
        return "a strided conv samples a fixed grid; use a stride-1 conv followed by nn.MaxPool2d(2)"
    if isinstance(m, nn.Conv2d):
        return _size_change(m)
    return None


def _size_change(m: nn.Conv2d) -> str | None:
    """Why a stride-1 conv that does not keep its input's size cannot be converted: with
    circular padding a conv commutes with shifts only if it maps an ``H x W`` map to
    ``H x W`` (padding ``dilation * (kernel - 1) / 2`` per side, or ``padding="same"``)."""
    if m.padding == "same":
        return None
    pad = (0, 0) if m.padding == "valid" else _pair(m.padding)
    change = [2 * p - d * (k - 1) for p, d, k in zip(pad, _pair(m.dilation), _pair(m.kernel_size))]
    if not any(change):
        return None
    what = " x ".join(f"{c:+d}" for c in change)
    return (
        f"it changes the map's size ({what} pixels: kernel {tuple(_pair(m.kernel_size))}, padding "
        f"{tuple(pad)}), and a conv that shrinks or grows the map does not commute with shifts; "
        "pad it to keep the size "
        "(padding=(kernel_size - 1) // 2 for odd kernels, or padding='same')"
    )


def make_equivariant(
    module: nn.Module,
    *,
    variant: str = "aps",
    filter_size: int = 1,
    criterion: str = "l2",
    inplace: bool = False,
    strict_pairs: bool = True,
) -> nn.Module:
    """Convert a U-Net built from pooling and transposed-conv *modules* to APS / LPF-j.

    Replaces every ``nn.MaxPool2d(2)`` / ``nn.AvgPool2d(2)`` by a :class:`PhasePool2d` and
    every ``nn.ConvTranspose2d(k=2, s=2)`` by a :class:`PhaseConvTranspose2d` (same
    parameter objects, same state-dict keys), all sharing one :class:`PhaseStack`; padded
    convolutions pad circularly. Hooks on the returned root clear the stack before each
    forward and check after it that every grid was used (else ``RuntimeError``).

    Args:
        module: the U-Net (not a ``fastmri.models.Unet``: see :func:`aps_unet_from_fastmri`).
        variant, filter_size, criterion: as in :func:`aps_unet_from_fastmri`.
        inplace: convert ``module`` itself rather than a deep copy.
        strict_pairs: require as many pool modules as transposed-conv modules; ``False``
            when a pool module is called at several levels (then checked at forward time).

    Raises:
        ConversionError: in one line, naming each module that cannot be converted (by its
            path in the model) and what to use instead (a strided conv, an upsampler with no
            polyphase form, a stride-1 conv that changes the map's size), or saying that
            pooling is functional, or that the levels are unpaired.
    """
    check_options(variant, filter_size, criterion)
    if _is_fastmri_unet(module):
        raise ConversionError(
            "fastmri.models.Unet pools with F.avg_pool2d inside its forward, which no module "
            "replacement can reach: convert it with apslib.convert.aps_unet_from_fastmri(model) "
            "(the same state_dict keys)"
        )
    if sampling_layers(module):
        raise ConversionError(
            "the model is already converted, or built from apslib's layers: it has polyphase "
            "sampling layers (PolyphaseDown/PolyphaseUp)"
        )
    named = list(module.named_modules())
    bad = [f"{name or '<root>'}: {_one_line(m)}: {why}" for name, m in named if (why := _why_not(m))]
    if bad:
        raise ConversionError("cannot convert these modules to shift-equivariant ones: " + "; ".join(bad))
    pools = [name for name, m in named if isinstance(m, _POOLS)]
    ups = [name for name, m in named if isinstance(m, nn.ConvTranspose2d)]
    if not pools:
        raise ConversionError(
            f"no nn.MaxPool2d / nn.AvgPool2d module in {type(module).__name__} ({len(ups)} upsampler "
            "module(s)): its pooling is presumably functional (F.max_pool2d / F.avg_pool2d inside "
            "forward), which this converter cannot see. Make each pool an nn.MaxPool2d(2) module"
        )
    if not ups or (strict_pairs and len(pools) != len(ups)):
        raise ConversionError(
            f"unpaired levels: {len(pools)} pooling module(s) {pools} but {len(ups)} upsampling "
            f"module(s) {ups}; each level needs one nn.MaxPool2d/AvgPool2d(2) and one "
            "nn.ConvTranspose2d(k=2, s=2) module (F.interpolate in forward cannot be converted). "
            "If a module is called at several levels, pass strict_pairs=False (pairs are then "
            "checked at each forward)"
        )
    if variant == "aps" and any(isinstance(m, nn.MaxPool2d) for _, m in named):
        check_aps_criterion(criterion, filter_size)  # before anything is changed
    model = module if inplace else copy.deepcopy(module)
    stack = PhaseStack()
    converted: dict[int, tuple[nn.Module, nn.Module]] = {}  # id -> (old, new): old kept alive
    for prefix, parent in list(model.named_modules()):
        for name, old in list(parent._modules.items()):
            label = f"{prefix}.{name}" if prefix else name
            if isinstance(old, nn.ConvTranspose2d) and id(old) not in converted:
                converted[id(old)] = (
                    old,
                    PhaseConvTranspose2d.from_transposed(
                        old, label=label, filter_size=filter_size, stack=stack
                    ),
                )
            elif isinstance(old, _POOLS) and id(old) not in converted:
                mode = "max" if isinstance(old, nn.MaxPool2d) else "avg"
                converted[id(old)] = (
                    old,
                    PhasePool2d(
                        mode,
                        variant=variant,
                        filter_size=filter_size,
                        criterion=criterion,
                        stack=stack,
                        label=label,
                    ),
                )
            if id(old) in converted:
                parent._modules[name] = converted[id(old)][1].train(old.training)
    _circular_convs(model)
    model.register_forward_pre_hook(stack.begin)
    model.register_forward_hook(stack.end)
    return model

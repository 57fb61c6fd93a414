"""Weight-compatible conversion of U-Nets to APS (truly shift equivariant) or LPF-j.

:func:`aps_unet_from_fastmri` converts ``fastmri.models.Unet`` (whose ``forward`` pools
with ``F.avg_pool2d``) into :class:`EquivariantFastMRIUnet`: fastMRI's own modules, the same
``state_dict`` keys and shapes. :func:`make_equivariant` converts a U-Net built from
``nn.MaxPool2d`` / ``nn.AvgPool2d`` and ``nn.ConvTranspose2d`` *modules* (kernel 2, stride 2).
The conversion changes only this:

* padded convolutions pad circularly (:class:`apslib.layers.Conv2d`);
* a 2x2 pool at stride 2 -> :class:`PhasePool2d`: the pool at stride 1 on the map padded
  circularly by one pixel at the bottom/right (the average is ``blur`` of size 2), a
  binomial blur if ``filter_size = j >= 2``, then APS-D (``variant="aps"``: per sample the
  polyphase component of largest norm) or the grid ``(0, 0)`` (``"lpf"``: LPF-j). On
  ``(0, 0)`` without blur this is the stride-2 pool (that component never reads the pad);
* ``ConvTranspose2d(k=2, s=2)`` -> :class:`PhaseConvTranspose2d`: APS-U on the grid
  ``(i, j)`` of its encoder level, then the k=2 conv. The transposed conv is zero insertion
  on ``(0, 0)`` then a k=2 conv (flipped kernel, padded top/left), so this is its output
  shifted circularly by ``(i, j)`` (then the blur, gain 1): ``PolyphaseUp``'s fast path
  with ``up_pad="top_left"``. ``PolyphaseUp`` stores a ``Conv2d`` weight ``[out, in, 2, 2]``
  and always a bias; this ``ConvTranspose2d`` subclass keeps the original ``weight``
  ``[in, out, 2, 2]`` (and optional ``bias``) under its key.

The converted layers of one model share a :class:`PhaseStack`: each pool pushes its
``(B,)`` phase indices (order of ``apslib.polyphase.PHASES``; ``None`` for LPF), each
upsampler pops the latest (the decoder meets the levels in reverse order); unpaired levels
raise ``RuntimeError``. :func:`forced_phase` forces the grids, e.g. to ``(0, 0)``: the
original model with circular padding (and blurs). InstanceNorm, BatchNorm (eval), pointwise
activations and dropout (eval) commute with circular shifts, so in eval mode a converted APS
model is equivariant to every integer circular shift (Proposition 2 of Chaman & Dokmanic
2021), an LPF one to multiples of ``2 ** levels``. Input sides must be multiples of
``2 ** levels``: fastMRI's reflect padding of odd sizes is refused, not converted.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

from .filters import blur, check_filter_size
from .layers import Conv2d, _pool_stride1, check_aps_criterion
from .polyphase import PHASES, _check_even_4d, aps_down, check_criterion, phase_shift, polyphase_norms
from .unet import UNetConfig, check_size

__all__ = [
    "CONVERT_VARIANTS",
    "ConversionError",
    "PhaseStack",
    "PhasePool2d",
    "PhaseConvTranspose2d",
    "EquivariantFastMRIUnet",
    "aps_unet_from_fastmri",
    "make_equivariant",
    "forced_phase",
    "phase_stacks",
]

CONVERT_VARIANTS = ("aps", "lpf")
FASTMRI_UNET_ARGS = ("in_chans", "out_chans", "chans", "num_pool_layers", "drop_prob")


class ConversionError(ValueError):
    """A model (or a part of it) that the converter cannot make shift equivariant."""


def _check_options(variant: str, filter_size: int, criterion: str) -> tuple[str, int, str]:
    if variant not in CONVERT_VARIANTS:
        raise ValueError(f"variant must be one of {CONVERT_VARIANTS}, got {variant!r}")
    return variant, check_filter_size(filter_size), check_criterion(criterion)


class PhaseStack:
    """The grids chosen by one model's pools during one forward, last in first out.

    ``force``: ``None`` (choose) or the phase index 0..3 of every APS pool (see
    :func:`forced_phase`). ``phases``: the last forward's phase indices, encoder order.
    ``begin`` / ``end`` (forward pre-hook / hook signatures) clear it / check it is empty.
    """

    def __init__(self) -> None:
        self._items: list[tuple[torch.Tensor | None, tuple[int, int], str]] = []
        self.phases: list[torch.Tensor | None] = []
        self.force: int | None = None

    def begin(self, *_) -> None:
        self._items.clear()
        self.phases = []

    def push(self, idx: torch.Tensor | None, size: tuple[int, int], who: str) -> None:
        self._items.append((idx, size, who))
        self.phases.append(idx)

    def pop(self, size: tuple[int, int], who: str) -> torch.Tensor | None:
        if not self._items:
            raise RuntimeError(
                f"{who}: no phase to upsample with: more upsamplers than pools ran in this forward "
                "(unpaired levels); pool with nn.MaxPool2d/nn.AvgPool2d modules, not F.max_pool2d"
            )
        idx, pooled, by = self._items.pop()
        if pooled != size:
            raise RuntimeError(
                f"{who} upsamples to {size[0]}x{size[1]} but the phase it took comes from {by}, "
                f"which pooled a {pooled[0]}x{pooled[1]} map: the levels are not paired in "
                "last-in-first-out order (the k-th last pool pairs with the k-th upsampler)"
            )
        return idx

    def end(self, *_) -> None:
        if self._items:
            left = ", ".join(who for _, _, who in self._items)
            self._items.clear()
            raise RuntimeError(
                f"unpaired levels: the grids chosen by {left} were not used by any upsampler in this "
                "forward. Every pool needs a matching nn.ConvTranspose2d(k=2, s=2) module in the "
                "decoder (upsampling with F.interpolate or nn.Upsample cannot be converted)"
            )


class PhasePool2d(nn.Module):
    """2x2 max or average pool made shift equivariant; drop-in for ``nn.MaxPool2d(2)`` /
    ``nn.AvgPool2d(2)``: ``forward(x) -> y`` (half the size), the phase goes on ``stack``.

    Pool at stride 1 (circular, bottom/right), blur of size ``filter_size``, then APS-D
    (``variant="aps"``) or the grid ``(0, 0)`` (``"lpf"``).
    """

    def __init__(
        self,
        mode: str = "max",
        *,
        variant: str = "aps",
        filter_size: int = 1,
        criterion: str = "l2",
        stack: PhaseStack | None = None,
        label: str = "PhasePool2d",
    ):
        super().__init__()
        if mode not in ("max", "avg"):
            raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
        self.variant, self.filter_size, self.criterion = _check_options(variant, filter_size, criterion)
        if mode == "max" and variant == "aps":
            check_aps_criterion(criterion, self.filter_size)  # ties made by the max-pool
        self.mode, self.stack, self.label = mode, stack or PhaseStack(), label

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """The stride-1 pooled, blurred map whose polyphase components are the candidates."""
        z = _pool_stride1(x, "circular") if self.mode == "max" else blur(x, 2)
        return blur(z, self.filter_size)

    def _pool2(self, x: torch.Tensor) -> torch.Tensor:  # component (0, 0) of ``pooled(x)``
        if self.filter_size > 1:
            return self.pooled(x)[..., ::2, ::2]
        return F.max_pool2d(x, 2) if self.mode == "max" else F.avg_pool2d(x, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_even_4d(x, f"the input of {self.label}")
        fast = self.filter_size == 1 and torch.is_grad_enabled() and x.requires_grad
        if self.variant == "lpf":
            idx, y = None, self._pool2(x)
        elif self.stack.force is None and not fast:
            y, idx = aps_down(self.pooled(x), self.criterion)
        else:
            if self.stack.force is not None:
                idx = torch.full((x.shape[0],), self.stack.force, dtype=torch.long, device=x.device)
            else:  # choose without gradients, pool the shifted input: a plain pool's backward
                with torch.no_grad():
                    idx = polyphase_norms(self.pooled(x), self.criterion).argmax(1)
            # component (i, j) of pooled(x) == component (0, 0) of pooled(T_(-i,-j) x)
            y = self._pool2(phase_shift(x, idx, inverse=True))
        self.stack.push(idx, (x.shape[-2], x.shape[-1]), self.label)
        return y

    def extra_repr(self) -> str:
        return (
            f"{self.mode!r}, {self.variant!r}, filter_size={self.filter_size}, criterion={self.criterion!r}"
        )


class PhaseConvTranspose2d(nn.ConvTranspose2d):
    """``ConvTranspose2d(k=2, s=2)`` whose output is shifted circularly by the grid its
    encoder level chose (= APS-U, then the k=2 conv), then blurred (``filter_size >= 2``,
    gain 1). Same parameters and state dict as the ``nn.ConvTranspose2d``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        variant: str = "aps",
        filter_size: int = 1,
        stack: PhaseStack | None = None,
        label: str = "PhaseConvTranspose2d",
        **kwargs,
    ):
        """``kwargs``: ``nn.ConvTranspose2d``'s ``bias``, ``groups``, ``device``, ``dtype``."""
        super().__init__(in_channels, out_channels, 2, stride=2, **kwargs)
        self.variant, self.filter_size, _ = _check_options(variant, filter_size, "l2")
        self.stack, self.label = stack or PhaseStack(), label

    @classmethod
    def from_module(cls, m: nn.ConvTranspose2d, **options) -> PhaseConvTranspose2d:
        """The converted ``m``, sharing its parameter objects (an optimizer keeps working)."""
        new = cls(
            m.in_channels, m.out_channels, bias=m.bias is not None, groups=m.groups, device="meta", **options
        )
        new.weight, new.bias = m.weight, m.bias
        return new.train(m.training)

    def forward(self, y: torch.Tensor, output_size=None) -> torch.Tensor:
        if output_size is not None:
            raise ValueError(f"{self.label}: output_size is not supported (the output is 2x the input)")
        u = F.conv_transpose2d(y, self.weight, self.bias, stride=2, groups=self.groups)
        idx = self.stack.pop((u.shape[-2], u.shape[-1]), self.label)
        if idx is not None:
            u = phase_shift(u, idx)
        return blur(u, self.filter_size)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, variant={self.variant!r}, filter_size={self.filter_size}"


def phase_stacks(model: nn.Module) -> list[PhaseStack]:
    """The phase stacks of the converted layers in ``model`` (one per converted model)."""
    stacks: dict[int, PhaseStack] = {}
    for m in model.modules():
        if isinstance(m, (PhasePool2d, PhaseConvTranspose2d)):
            stacks.setdefault(id(m.stack), m.stack)
    return list(stacks.values())


@contextmanager
def forced_phase(model: nn.Module, phase: int | tuple[int, int] = 0) -> Iterator[nn.Module]:
    """Within the block, every APS pool of ``model`` keeps the phase ``phase`` (an index
    0..3 or a pair ``(i, j)``) instead of choosing one: a fixed-grid model, e.g. to compare a
    converted model at ``(0, 0)`` with the original."""
    p = PHASES.index(tuple(phase)) if isinstance(phase, (tuple, list)) else int(phase)
    if p not in range(4):
        raise ValueError(f"phase must be an index 0..3 or one of {PHASES}, got {phase!r}")
    stacks = phase_stacks(model)
    if not stacks:
        raise ValueError("the model has no converted pools (see aps_unet_from_fastmri, make_equivariant)")
    saved = [s.force for s in stacks]
    for s in stacks:
        s.force = p
    try:
        yield model
    finally:
        for s, f in zip(stacks, saved):
            s.force = f


def _circular_convs(model: nn.Module) -> None:
    """Make every padded ``Conv2d`` pad circularly, in place (same parameters, hooks)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and any(m._reversed_padding_repeated_twice):
            m.padding_mode = "circular"
            if type(m) is nn.Conv2d:  # apslib's subclass: the same function, a faster pad
                m.__class__ = Conv2d


def _is_fastmri_unet(model) -> bool:
    return any(c.__module__.startswith("fastmri.") and c.__name__ == "Unet" for c in type(model).__mro__)


class EquivariantFastMRIUnet(nn.Module):
    """``fastmri.models.Unet`` with APS (or LPF-j) sampling and circular padding.

    Takes fastMRI's constructor arguments; its modules are fastMRI's own (same
    ``state_dict``), with ``PhaseConvTranspose2d`` in ``up_transpose_conv.*.layers.0``
    and the pools in ``pools`` (no parameters). ``forward(image, return_phases=False)``;
    ``return_phases=True`` also returns the per-level phase indices (encoder order).
    """

    def __init__(
        self,
        in_chans: int,
        out_chans: int,
        chans: int = 32,
        num_pool_layers: int = 4,
        drop_prob: float = 0.0,
        *,
        variant: str = "aps",
        filter_size: int = 1,
        criterion: str = "l2",
    ):
        super().__init__()
        from fastmri.models import Unet  # imported here: fastmri pulls in torchvision

        base = Unet(in_chans, out_chans, chans, num_pool_layers, drop_prob)
        self.in_chans, self.out_chans, self.chans = in_chans, out_chans, chans
        self.num_pool_layers, self.drop_prob = num_pool_layers, drop_prob
        self.variant, self.filter_size, self.criterion = _check_options(variant, filter_size, criterion)
        self.phase_stack = PhaseStack()
        self._size_config = UNetConfig(variant, num_pool_layers, (1,) * (num_pool_layers + 1))
        # fastMRI's registration order, so that the state_dict keys come in the same order
        self.down_sample_layers = base.down_sample_layers
        self.conv = base.conv
        self.up_conv = base.up_conv
        self.up_transpose_conv = base.up_transpose_conv
        opts = dict(variant=variant, filter_size=filter_size, stack=self.phase_stack)
        pools = [
            PhasePool2d("avg", criterion=criterion, label=f"pools.{k}", **opts)
            for k in range(num_pool_layers)
        ]
        self.pools = nn.ModuleList(pools)
        for k, block in enumerate(self.up_transpose_conv):
            label = f"up_transpose_conv.{k}.layers.0"
            block.layers[0] = PhaseConvTranspose2d.from_module(block.layers[0], label=label, **opts)
        _circular_convs(self)

    def check_input(self, image: torch.Tensor) -> None:
        if not isinstance(image, torch.Tensor) or image.dim() != 4:
            raise ValueError(f"input must be a (N, C, H, W) tensor, got {tuple(getattr(image, 'shape', ()))}")
        if image.shape[1] != self.in_chans:
            raise ValueError(f"input has {image.shape[1]} channels, the model expects {self.in_chans}")
        check_size(tuple(image.shape[-2:]), self._size_config)

    def forward(self, image: torch.Tensor, return_phases: bool = False):
        self.check_input(image)
        self.phase_stack.begin()
        skips, output = [], image
        for layer, pool in zip(self.down_sample_layers, self.pools):
            output = layer(output)
            skips.append(output)
            output = pool(output)
        output = self.conv(output)
        for transpose_conv, conv in zip(self.up_transpose_conv, self.up_conv):
            output = conv(torch.cat([transpose_conv(output), skips.pop()], dim=1))
        self.phase_stack.end()
        return (output, list(self.phase_stack.phases)) if return_phases else output


def aps_unet_from_fastmri(
    model_or_kwargs, *, variant: str = "aps", filter_size: int = 1, criterion: str = "l2"
) -> EquivariantFastMRIUnet:
    """Convert a ``fastmri.models.Unet`` (or build one from its constructor kwargs).

    Args:
        model_or_kwargs: a ``fastmri.models.Unet`` (left untouched; its weights, device,
            dtype and train/eval mode are copied) or a mapping of its constructor arguments.
        variant: ``"aps"`` (adaptive grids, exactly equivariant) or ``"lpf"`` (grid (0, 0)).
        filter_size: binomial blur size ``j`` in 1..7 after pooling and upsampling (1: none).
        criterion: APS-D norm, ``"l2"`` (the paper's), ``"l1"`` or ``"linf"``.

    Returns:
        :class:`EquivariantFastMRIUnet`, whose ``state_dict`` has fastMRI's keys and shapes.
    """
    if isinstance(model_or_kwargs, Mapping):
        model, kwargs = None, dict(model_or_kwargs)
    elif _is_fastmri_unet(model_or_kwargs):
        model = model_or_kwargs
        kwargs = {k: getattr(model, k) for k in FASTMRI_UNET_ARGS}
    else:
        raise TypeError(
            "aps_unet_from_fastmri takes a fastmri.models.Unet or its constructor kwargs, got "
            f"{type(model_or_kwargs).__name__}; for other U-Nets use make_equivariant"
        )
    new = EquivariantFastMRIUnet(**kwargs, variant=variant, filter_size=filter_size, criterion=criterion)
    if model is not None:
        p = next(model.parameters())
        new.to(device=p.device, dtype=p.dtype).load_state_dict(model.state_dict())
        new.train(model.training)
    return new


_POOLS = (nn.MaxPool2d, nn.AvgPool2d)
_UPSAMPLERS = (nn.Upsample, nn.PixelShuffle, nn.MaxUnpool2d, nn.ConvTranspose1d, nn.ConvTranspose3d)
_DOWNSAMPLERS = (nn.FractionalMaxPool2d, nn.LPPool2d, nn.PixelUnshuffle)
_ADAPTIVE = (nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d)


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
    return None


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
        ConversionError: naming each module that cannot be converted and what to use
            instead, or saying that pooling is functional, or that the levels are unpaired.
    """
    _check_options(variant, filter_size, criterion)
    if _is_fastmri_unet(module):
        raise ConversionError(
            "fastmri.models.Unet pools with F.avg_pool2d inside its forward, which no module "
            "replacement can reach: convert it with apslib.convert.aps_unet_from_fastmri(model) "
            "(the same state_dict keys)"
        )
    if phase_stacks(module):
        raise ConversionError("the model is already converted (it has PhasePool2d/PhaseConvTranspose2d)")
    named = list(module.named_modules())
    bad = [f"  {name or '<root>'}: {m!r}: {why}" for name, m in named if (why := _why_not(m))]
    if bad:
        raise ConversionError("cannot convert these modules to shift-equivariant ones:\n" + "\n".join(bad))
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
    opts = dict(variant=variant, filter_size=filter_size, stack=stack)
    converted: dict[int, tuple[nn.Module, nn.Module]] = {}  # id -> (old, new): old kept alive
    for prefix, parent in list(model.named_modules()):
        for name, old in list(parent._modules.items()):
            label = f"{prefix}.{name}" if prefix else name
            if isinstance(old, nn.ConvTranspose2d) and id(old) not in converted:
                converted[id(old)] = (old, PhaseConvTranspose2d.from_module(old, label=label, **opts))
            elif isinstance(old, _POOLS) and id(old) not in converted:
                mode = "max" if isinstance(old, nn.MaxPool2d) else "avg"
                converted[id(old)] = (old, PhasePool2d(mode, criterion=criterion, label=label, **opts))
            if id(old) in converted:
                parent._modules[name] = converted[id(old)][1].train(old.training)
    _circular_convs(model)
    model.register_forward_pre_hook(stack.begin)
    model.register_forward_hook(stack.end)
    return model

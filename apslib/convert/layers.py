"""The converted sampling layers: :class:`PhaseStack`, :class:`PhasePool2d`,
:class:`PhaseConvTranspose2d`, :func:`forced_phase` (see :mod:`apslib.convert`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from ..filters import blur, check_filter_size
from ..layers import Conv2d, _avg_stride1, _pool_stride1, check_aps_criterion
from ..polyphase import (
    PHASES,
    _check_even_4d,
    _select,
    aps_down,
    check_criterion,
    phase_shift,
    polyphase_norms,
)

CONVERT_VARIANTS = ("aps", "lpf")


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
        # avg: the same map as blur(x, 2), as pair sums (about half the cost)
        z = _pool_stride1(x, "circular") if self.mode == "max" else _avg_stride1(x)
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
        elif self.stack.force is None and self.mode == "avg":
            # choose without gradients, keep the chosen component of the map chosen on
            with torch.no_grad():
                z = self.pooled(x)
                idx = polyphase_norms(z, self.criterion).argmax(1)
            y = _ChosenAverage.apply(x, z, idx)
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


class _ChosenAverage(torch.autograd.Function):
    """APS-D of the stride-1 average-pooled map ``z`` of ``x`` (already computed, to choose
    the grid): the chosen component of ``z`` (a quarter of its size), differentiable in
    ``x``. The backward is the 2x2 average pool's, on the chosen grid: each gradient value,
    divided by 4, to its window ``(2a + i, 2b + j) + {0, 1}^2`` (circularly). Saves the
    full-size shift and pool of the input that ``avg_pool2d(phase_shift(x, idx, inverse=True),
    2)`` costs (the same values up to rounding)."""

    @staticmethod
    def forward(ctx, x, z, idx):
        ctx.save_for_backward(idx)
        return _select(z, idx)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (idx,) = ctx.saved_tensors
        spread = F.interpolate(grad * 0.25, scale_factor=2, mode="nearest")  # = avg_pool2d's backward
        return phase_shift(spread, idx), None, None


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

"""The layers of a converted U-Net: the sampling family of :mod:`apslib.layers` in the
place of a pool / transposed-conv module, and :class:`PhaseStack`, which carries each
level's chosen grid from its pool to its upsampler through a forward the converter does not
own (see :mod:`apslib.convert`)."""

from __future__ import annotations

import torch
from torch import nn

from ..filters import check_filter_size
from ..layers import Conv2d, FixedGrid, NormSelection, PolyphaseDown, PolyphaseUp
from ..polyphase import check_criterion, check_even_4d

__all__ = [
    "CONVERT_VARIANTS",
    "ConversionError",
    "PhaseConvTranspose2d",
    "PhasePool2d",
    "PhaseStack",
    "sampling_layers",
]

CONVERT_VARIANTS = ("aps", "lpf")


class ConversionError(ValueError):
    """A model (or a part of it) that the converter cannot make shift equivariant."""


def check_options(variant: str, filter_size: int, criterion: str) -> tuple[str, int, str]:
    """Validate a conversion's options (one message for each bad value)."""
    if variant not in CONVERT_VARIANTS:
        raise ValueError(f"variant must be one of {CONVERT_VARIANTS}, got {variant!r}")
    return variant, check_filter_size(filter_size), check_criterion(criterion)


def selection_for(variant: str, criterion: str = "l2"):
    """The selection rule of a converted level: APS (largest norm) or LPF (grid (0, 0))."""
    return NormSelection(criterion) if variant == "aps" else FixedGrid()


class PhaseStack:
    """The grids chosen by one model's pools during one forward, last in first out.

    ``phases``: the last forward's phase indices, encoder order.
    ``begin`` / ``end`` (forward pre-hook / hook signatures) clear it / check it is empty.
    """

    def __init__(self) -> None:
        self._items: list[tuple[torch.Tensor | None, tuple[int, int], str]] = []
        self.phases: list[torch.Tensor | None] = []

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


class PhasePool2d(PolyphaseDown):
    """:class:`~apslib.layers.PolyphaseDown` in the place of ``nn.MaxPool2d(2)`` /
    ``nn.AvgPool2d(2)``: ``forward(x) -> y`` (half the size); the chosen phase goes on
    ``stack`` for the upsampler of the same level. Circular padding."""

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
        if mode not in ("max", "avg"):
            raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
        variant, filter_size, criterion = check_options(variant, filter_size, criterion)
        super().__init__(filter_size, selection_for(variant, criterion), pool=mode)
        self.stack, self.label = stack or PhaseStack(), label

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        check_even_4d(x, f"the input of {self.label}")
        y, idx = super().forward(x)
        self.stack.push(idx, (x.shape[-2], x.shape[-1]), self.label)
        return y


class PhaseConvTranspose2d(PolyphaseUp):
    """:class:`~apslib.layers.PolyphaseUp` (``layout="transposed"``, top/left, gain 1) in
    the place of ``nn.ConvTranspose2d(k=2, s=2)``: its output shifted circularly by the grid
    its encoder level chose (taken from ``stack``), then blurred. Same parameters and state
    dict as the ``nn.ConvTranspose2d``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        filter_size: int = 1,
        stack: PhaseStack | None = None,
        label: str = "PhaseConvTranspose2d",
        **kwargs,
    ):
        """``kwargs``: ``bias``, ``groups``, ``device``, ``dtype`` (as ``nn.ConvTranspose2d``);
        :meth:`~apslib.layers.PolyphaseUp.from_transposed` converts an existing module."""
        kwargs = {"up_pad": "top_left", "layout": "transposed", **kwargs}
        super().__init__(in_channels, out_channels, filter_size, **kwargs)
        self.stack, self.label = stack or PhaseStack(), label

    def forward(self, y: torch.Tensor, output_size=None) -> torch.Tensor:
        if output_size is not None:
            raise ValueError(f"{self.label}: output_size is not supported (the output is 2x the input)")
        idx = self.stack.pop((2 * y.shape[-2], 2 * y.shape[-1]), self.label)
        return super().forward(y, idx)


def sampling_layers(model: nn.Module) -> list[nn.Module]:
    """The sampling layers of the family in ``model`` (native or converted)."""
    return [m for m in model.modules() if isinstance(m, (PolyphaseDown, PolyphaseUp))]


def _circular_convs(model: nn.Module) -> None:
    """Make every padded ``Conv2d`` pad circularly, in place (same parameters, hooks)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and any(m._reversed_padding_repeated_twice):
            m.padding_mode = "circular"
            if type(m) is nn.Conv2d:  # apslib's subclass: the same function, a faster pad
                m.__class__ = Conv2d

"""The layers of the U-Net family, in their literal (readable) form.

One sampling-layer family serves every model, native (:mod:`apslib.unet`) and converted
(:mod:`apslib.convert`):

* :class:`PolyphaseDown` — a 2x2 pool at stride 1 (max, average, or none), a low-pass,
  then one polyphase component per sample, picked by a *selection rule*.
  ``forward(x) -> (y, idx)``; ``phase_norms(x)`` gives the norms of the four candidates.
* :class:`PolyphaseUp` — the low-resolution map back on the grid its encoder level chose
  (zeros elsewhere: APS-U, or zero insertion on (0, 0)), the low-pass, then a k=2
  convolution padded by one pixel on the bottom/right or the top/left.
  ``forward(y, idx) -> u``.

Low-pass strategies (``lowpass``): ``"binomial"``, a binomial blur of size ``filter_size``
(1: none; the paper's LPF-j and APS-j), and ``"ideal"``, the ideal low-pass to half the band
computed in the Fourier domain (:func:`~apslib.fourier.half_band`; the alias-free U-Net):
on the grid (0, 0) the down layer is then :func:`~apslib.fourier.fourier_down` and the up
layer :func:`~apslib.fourier.fourier_up` followed by the k=2 conv, and both commute with
sub-pixel (Fourier) shifts, not only integer ones.

Selection rules (strategies, :class:`Selection`): :class:`NormSelection` (APS: the
component of largest norm), :class:`FixedGrid` (the Baseline's and LPF-j's grid (0, 0);
another grid to force a choice) and :class:`apslib.learned.LearnedSelection` (LPS: the
component of largest learned score). ``idx`` is a ``(B,)`` int64 tensor of phase indices
(:data:`apslib.polyphase.PHASES`), ``None`` for the grid (0, 0), or, while a learned rule
trains, a ``(B, 4)`` float tensor of weights (a soft choice: the down layer keeps the
weighted sum of the components, the up layer spreads its input over the grids with the same
weights).

With the pool and no blur, the grid (0, 0) is the plain stride-2 pool (the Baseline);
without a pool, :class:`PolyphaseDown` is APS-D (:func:`~apslib.polyphase.aps_down`) or
Zhang's BlurPool. The faster forms of these layers (same values) live in
:mod:`apslib.fastpaths`; each layer asks it first through its one dispatch point.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import fastpaths
from .filters import blur, check_filter_size, check_padding_mode, circular_pad, zero_insert
from .fourier import AliasFreeActivation, half_band
from .polyphase import (
    PHASES,
    aps_up,
    check_criterion,
    check_even_4d,
    mix_phases,
    polyphase_norms,
    select_phase,
    spread_phases,
)

__all__ = [
    "POOLS",
    "UP_PADS",
    "Conv2d",
    "ACTIVATIONS",
    "DoubleConv",
    "NORMS",
    "activation_layer",
    "norm_layer",
    "FixedGrid",
    "LOWPASSES",
    "NormSelection",
    "PolyphaseDown",
    "PolyphaseUp",
    "Selection",
    "check_aps_criterion",
    "forced_phase",
    "pool_stride1",
]

POOLS = ("max", "avg", None)
LOWPASSES = ("binomial", "ideal")
ACTIVATIONS = ("relu", "af-relu", "af-poly")
NORMS = ("batch", "instance", "layer")
UP_PADS = ("bottom_right", "top_left")


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` whose circular padding is ``F.pad(..., mode="circular")`` (computed
    faster by :mod:`apslib.fastpaths`); other padding modes are ``nn.Conv2d``'s own. Same
    parameters and state dict."""

    def _conv_forward(self, input, weight, bias):  # noqa: A002 (nn.Conv2d's signature)
        if self.padding_mode != "circular":
            return super()._conv_forward(input, weight, bias)
        fast = fastpaths.dispatch("conv", self, input, weight, bias)
        if fast is not None:
            return fast
        padded = F.pad(input, self._reversed_padding_repeated_twice, mode="circular")
        return F.conv2d(padded, weight, bias, self.stride, 0, self.dilation, self.groups)


def _check_choice(value, allowed: tuple, what: str):
    if value not in allowed:
        raise ValueError(f"{what} must be one of {allowed}, got {value!r}")
    return value


def norm_layer(kind: str, channels: int) -> nn.Module:
    """``"batch"``: BatchNorm2d; ``"instance"``: per sample and channel over (H, W) (affine);
    ``"layer"``: per sample over (C, H, W) (GroupNorm with one group, a scale and bias per
    channel). All three commute with circular and Fourier shifts: their statistics are
    spatial means, the mean is the DC bin and the variance the spectrum's energy (Parseval),
    which a shift leaves unchanged (for a map without Nyquist content, when it is sub-pixel)."""
    _check_choice(kind, NORMS, "norm")
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.GroupNorm(1, channels)


def activation_layer(kind: str, channels: int) -> nn.Module:
    """``"relu"``; ``"af-poly"`` / ``"af-relu"``: :class:`~apslib.fourier.AliasFreeActivation`
    (a learnable degree-2 polynomial per channel, or ReLU, applied at twice the resolution)."""
    _check_choice(kind, ACTIVATIONS, "activation")
    if kind == "relu":
        return nn.ReLU(inplace=True)
    return AliasFreeActivation(channels, kind="poly" if kind == "af-poly" else "relu")


class DoubleConv(nn.Sequential):
    """(3x3 conv, norm, activation) twice; the convs have no bias (the norm has one).
    Default: BatchNorm and ReLU (the paper's); see :func:`norm_layer`, :func:`activation_layer`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        padding_mode: str = "circular",
        *,
        norm: str = "batch",
        activation: str = "relu",
    ):
        mode: Any = check_padding_mode(padding_mode)  # nn.Conv2d types it as a Literal
        layers: list[nn.Module] = []
        for cin in (in_channels, out_channels):
            layers += [
                Conv2d(cin, out_channels, 3, padding=1, bias=False, padding_mode=mode),
                norm_layer(norm, out_channels),
                activation_layer(activation, out_channels),
            ]
        super().__init__(*layers)


def pool_stride1(x: torch.Tensor, pool: str = "max", padding_mode: str = "circular") -> torch.Tensor:
    """The 2x2 max or average pool at stride 1 of ``x`` padded by one pixel at the bottom
    and right (the same size as ``x``): the maxima (sums) of horizontal pairs, then of
    vertical ones (times 1/4 for the average). Its component (0, 0) is the stride-2 pool."""
    fast = fastpaths.dispatch("stride1", x, pool, padding_mode)
    if fast is not None:
        return fast
    if padding_mode == "zeros":  # after a ReLU (>= 0) zero padding equals -inf padding
        xp = F.pad(x, (0, 1, 0, 1))
    elif padding_mode == "circular":
        xp = circular_pad(x, (0, 1, 0, 1))
    else:
        xp = F.pad(x, (0, 1, 0, 1), mode=padding_mode)
    if pool == "max":
        m = torch.maximum(xp[..., :, :-1], xp[..., :, 1:])
        return torch.maximum(m[..., :-1, :], m[..., 1:, :])
    m = xp[..., :, :-1] + xp[..., :, 1:]
    return (m[..., :-1, :] + m[..., 1:, :]) * 0.25


class Selection(nn.Module):
    """A selection rule: which polyphase component of a map each sample keeps.

    ``choose(z)`` takes the ``(B, C, H, W)`` map whose components are the candidates and
    returns ``(B,)`` int64 phase indices, or ``None`` for the grid (0, 0); a learned rule
    in training mode returns ``(B, 4)`` float weights instead (a soft choice).
    ``scores(z)``: the ``(B, 4)`` float64 values an adaptive rule takes the argmax of.
    ``adaptive``: the choice depends on the signal (then it must move with a shift of the
    input); ``differentiable``: the choice needs gradients (a learned rule). A subclass is a
    module, so a learned rule's parameters live in the model's state dict.
    """

    adaptive = False
    differentiable = False
    criterion = "l2"  # the norm that phase_norms reports

    def choose(self, z: torch.Tensor) -> torch.Tensor | None:
        raise NotImplementedError

    def scores(self, z: torch.Tensor) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} does not score the components: its grid is fixed")


class NormSelection(Selection):
    """APS: per sample the component of largest norm (``"l2"``, ``"l1"`` or ``"linf"``),
    ties to the lowest phase index (:func:`~apslib.polyphase.aps_down`)."""

    adaptive = True

    def __init__(self, criterion: str = "l2"):
        super().__init__()
        self.criterion = check_criterion(criterion)

    def scores(self, z: torch.Tensor) -> torch.Tensor:
        return polyphase_norms(z, self.criterion)

    def choose(self, z: torch.Tensor) -> torch.Tensor:
        return self.scores(z).argmax(dim=1)

    def extra_repr(self) -> str:
        return f"criterion={self.criterion!r}"


class FixedGrid(Selection):
    """The same grid for every input: ``phase`` 0 is (0, 0), the Baseline's and LPF-j's."""

    def __init__(self, phase: int = 0):
        super().__init__()
        if phase not in range(4):
            raise ValueError(f"phase must be a phase index 0..3, got {phase!r}")
        self.phase = int(phase)

    def choose(self, z: torch.Tensor) -> torch.Tensor | None:
        if self.phase == 0:
            return None
        return torch.full((z.shape[0],), self.phase, dtype=torch.long, device=z.device)

    def extra_repr(self) -> str:
        return f"phase={self.phase}"


def check_aps_criterion(criterion: str, filter_size: int) -> None:
    """Refuse the criteria that tie by construction after a stride-1 max-pool.

    - ``"l1"`` after a blur: a binomial blur of size >= 2 zeroes the Nyquist frequency, so
      the four polyphase components have exactly equal sums; on non-negative maps these
      sums are the l1 norms.
    - ``"linf"`` without a blur: the stride-1 max-pool copies the map's largest value into
      every window that covers it, i.e. into all four polyphase components.
    In both cases the grid would be chosen by rounding noise and equivariance lost.
    """
    if criterion == "l1" and filter_size >= 2:
        raise ValueError(
            f"criterion='l1' with filter_size={filter_size} is ill-posed: a binomial blur of "
            "size >= 2 zeroes the Nyquist frequency, so the four polyphase components of the "
            "blurred map have exactly equal sums, and on the non-negative maps after ReLU and "
            "max-pool their l1 norms tie; the grid would be chosen by rounding noise and "
            "equivariance would be lost. Use criterion='l2' (the paper's) or 'linf', or "
            "filter_size=1."
        )
    if criterion == "linf" and filter_size == 1:
        raise ValueError(
            "criterion='linf' with filter_size=1 is ill-posed: the stride-1 max-pool before "
            "APS-D copies the map's largest value into all four polyphase components, so "
            "their l-infinity norms tie and the grid would be chosen by the tie rule, not by "
            "the signal; equivariance would be lost. Use criterion='l2' (the paper's) or "
            "'l1', or a blur (filter_size >= 2)."
        )


class PolyphaseDown(nn.Module):
    """Pool at stride 1, low-pass, keep the polyphase component the selection rule picks.

    Args:
        filter_size: binomial blur size 1..7 after the pool (1: none).
        selection: a :class:`Selection` (default :class:`FixedGrid`, the grid (0, 0)).
        pool: ``"max"``, ``"avg"`` or ``None`` (no pool: APS-D or BlurPool of ``x``).
        padding_mode: of the pool and the blur; ``"circular"`` for exact equivariance.
        lowpass: ``"binomial"`` (the blur of ``filter_size``) or ``"ideal"`` (half the band,
            in the Fourier domain; ``filter_size`` must be 1, sides multiples of 4).

    ``forward(x) -> (y, idx)``: ``y`` of half the size, ``idx`` the ``(B,)`` phases (or
    ``None`` for the grid (0, 0)). No parameters (a learned rule brings its own).
    """

    def __init__(
        self,
        filter_size: int = 1,
        selection: Selection | None = None,
        *,
        pool: str | None = "max",
        padding_mode: str = "circular",
        lowpass: str = "binomial",
    ):
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        self.filter_size = check_filter_size(filter_size)
        self.lowpass = _check_lowpass(lowpass, self.filter_size, padding_mode)
        self.selection = FixedGrid() if selection is None else selection
        self.pool = pool
        self.padding_mode = check_padding_mode(padding_mode)
        if pool == "max" and isinstance(self.selection, NormSelection):
            check_aps_criterion(self.selection.criterion, self.filter_size)
        if self.lowpass == "ideal" and isinstance(self.selection, NormSelection):
            raise ValueError(
                "an APS choice after the ideal low-pass is ill-posed: every polyphase component of "
                "a map low-passed to half the band is the same band-limited signal sampled at another "
                "offset, so the four components have equal norms (Parseval) and the grid would be "
                "chosen by rounding. Keep the grid fixed (the alias-free U-Net is equivariant to "
                "every shift without a choice), or use the binomial low-pass for APS."
            )

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """The map whose polyphase components are the candidates: pooled at stride 1, blurred."""
        z = x if self.pool is None else pool_stride1(x, self.pool, self.padding_mode)
        if self.lowpass == "ideal":
            return half_band(z)
        return blur(z, self.filter_size, padding_mode=self.padding_mode)

    def phase_norms(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 4)`` float64 norms (the rule's criterion, else l2) of the four candidates."""
        return polyphase_norms(self.pooled(x), self.selection.criterion)

    def phase_scores(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 4)`` float64 scores the adaptive rule takes the argmax of (APS: the norms,
        LPS: the learned logits)."""
        return self.selection.scores(self.pooled(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        check_even_4d(x, "the input of PolyphaseDown")
        fast = fastpaths.dispatch("down", self, x)
        if fast is not None:
            return fast
        z = self.pooled(x)
        idx = self.selection.choose(z)
        if idx is None:
            return z[..., ::2, ::2], idx
        return (mix_phases(z, idx) if idx.is_floating_point() else select_phase(z, idx)), idx

    def extra_repr(self) -> str:
        low = f"lowpass={self.lowpass!r}" if self.lowpass == "ideal" else f"filter_size={self.filter_size}"
        return f"pool={self.pool!r}, {low}, padding_mode={self.padding_mode!r}"


def _check_lowpass(lowpass: str, filter_size: int, padding_mode: str) -> str:
    _check_choice(lowpass, LOWPASSES, "lowpass")
    if lowpass == "ideal" and filter_size != 1:
        raise ValueError(
            f"lowpass='ideal' replaces the binomial blur: leave filter_size at 1, got {filter_size}"
        )
    if lowpass == "ideal" and padding_mode != "circular":
        raise ValueError(
            f"lowpass='ideal' is computed in the Fourier domain, which is periodic: it needs "
            f"padding_mode='circular', got {padding_mode!r}"
        )
    return lowpass


class PolyphaseUp(nn.Module):
    """Back on the encoder's grid, blur, conv k=2: the decoder half of the family.

    The map ``y`` goes onto the grid ``idx`` (APS-U; ``None``: zero insertion on (0, 0)),
    is blurred (size ``filter_size``, gain ``blur_gain``: 1 lets the conv absorb the scale,
    4 = stride**2 keeps the mean) or, with ``lowpass="ideal"``, low-passed to half the band
    with gain 4 (the band-limited interpolation, :func:`~apslib.fourier.fourier_up`), then
    convolved with a 2x2 kernel padded by one pixel on
    ``up_pad``: ``"bottom_right"`` (output pixel ``p`` combines ``p`` and ``p + 1``) or
    ``"top_left"`` (``p - 1`` and ``p``; with grid (0, 0) and no blur this is exactly
    ``nn.ConvTranspose2d(k=2, s=2)``). With the same weights the two sides differ by a
    one-pixel roll; both are exactly shift equivariant.

    ``layout``: how the kernel is stored. ``"conv"``: an ``nn.Conv2d`` weight
    ``(out, in, 2, 2)``; ``"transposed"``: an ``nn.ConvTranspose2d`` weight
    ``(in, out // groups, 2, 2)`` (the same function with the kernel flipped), so that a
    converted model keeps its ``state_dict``. Parameters are initialised like the module
    whose layout they have (``nn.Conv2d`` / ``nn.ConvTranspose2d``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        filter_size: int = 1,
        *,
        up_pad: str = "bottom_right",
        blur_gain: float = 1.0,
        padding_mode: str = "circular",
        layout: str = "conv",
        bias: bool = True,
        groups: int = 1,
        lowpass: str = "binomial",
        device=None,
        dtype=None,
    ):
        super().__init__()
        if up_pad not in UP_PADS:
            raise ValueError(f"up_pad must be one of {UP_PADS}, got {up_pad!r}")
        if layout not in ("conv", "transposed"):
            raise ValueError(f"layout must be 'conv' or 'transposed', got {layout!r}")
        if groups != 1 and layout != "transposed":
            raise ValueError("groups > 1 needs layout='transposed'")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.filter_size = check_filter_size(filter_size)
        self.lowpass = _check_lowpass(lowpass, self.filter_size, padding_mode)
        self.blur_gain = 4.0 if lowpass == "ideal" else float(blur_gain) if self.filter_size > 1 else 1.0
        self.up_pad, self.layout = up_pad, layout
        self.padding_mode = check_padding_mode(padding_mode)
        shape = (out_channels, in_channels) if layout == "conv" else (in_channels, out_channels // groups)
        factory = dict(device=device, dtype=dtype)
        self.weight = nn.Parameter(torch.empty(*shape, 2, 2, **factory))
        self.bias = nn.Parameter(torch.empty(out_channels, **factory)) if bias else None
        self.reset_parameters()

    @classmethod
    def from_transposed(cls, m: nn.ConvTranspose2d, **options) -> PolyphaseUp:
        """``m`` (a ``ConvTranspose2d(k=2, s=2)``) as this layer: ``layout="transposed"``,
        ``up_pad="top_left"`` (its own function on the grid (0, 0)), sharing its parameter
        objects (an optimizer keeps working, the ``state_dict`` keeps its keys)."""
        options = {"up_pad": "top_left", "layout": "transposed", **options}
        new = cls(
            m.in_channels, m.out_channels, bias=m.bias is not None, groups=m.groups, device="meta", **options
        )
        new.weight, new.bias = m.weight, m.bias  # type: ignore[assignment]
        return new.train(m.training)

    def reset_parameters(self) -> None:
        """``nn.Conv2d``'s / ``nn.ConvTranspose2d``'s initialisation (fan-in from dim 1)."""
        if self.weight.is_meta:
            return
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight.shape[1] * 4)
            nn.init.uniform_(self.bias, -bound, bound)

    def conv_weight(self) -> torch.Tensor:
        """The k=2 conv's kernel, ``(out, in // groups, 2, 2)``."""
        if self.layout == "conv":
            return self.weight
        g, cin = self.groups, self.in_channels
        w = self.weight.reshape(g, cin // g, self.out_channels // g, 2, 2).transpose(1, 2)
        return w.reshape(self.out_channels, cin // g, 2, 2).flip(-2, -1)

    def transposed_weight(self) -> torch.Tensor:
        """The kernel as a transposed conv's, ``(in, out // groups, 2, 2)``."""
        if self.layout == "transposed":
            return self.weight
        return self.weight.flip(-2, -1).transpose(0, 1)

    def forward(self, y: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        fast = fastpaths.dispatch("up", self, y, idx)
        if fast is not None:
            return fast
        if idx is None:
            z = zero_insert(y)
        else:
            z = spread_phases(y, idx) if idx.is_floating_point() else aps_up(y, idx)
        if self.lowpass == "ideal":
            z = half_band(z) * self.blur_gain
        else:
            z = blur(z, self.filter_size, gain=self.blur_gain, padding_mode=self.padding_mode)
        mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
        pad = (0, 1, 0, 1) if self.up_pad == "bottom_right" else (1, 0, 1, 0)
        return F.conv2d(F.pad(z, pad, mode=mode), self.conv_weight(), self.bias, groups=self.groups)

    def extra_repr(self) -> str:
        low = f"lowpass={self.lowpass!r}" if self.lowpass == "ideal" else f"filter_size={self.filter_size}"
        return (
            f"{self.in_channels}, {self.out_channels}, {low}, "
            f"up_pad={self.up_pad!r}, blur_gain={self.blur_gain:g}, layout={self.layout!r}, "
            f"padding_mode={self.padding_mode!r}"
        )


@contextmanager
def forced_phase(model: nn.Module, phase: int | tuple[int, int] = 0) -> Iterator[nn.Module]:
    """Within the block, every adaptive :class:`PolyphaseDown` of ``model`` keeps the grid
    ``phase`` (an index 0..3 or a pair ``(i, j)``) instead of choosing one (its selection
    rule is swapped for :class:`FixedGrid`): a fixed-grid model. At ``(0, 0)`` an APS model
    computes the LPF model with the same weights and the same decoder form (a converted
    model: its LPF conversion; a native APS U-Net decodes bottom/right, native LPF top/left)."""
    p = PHASES.index(tuple(phase)) if isinstance(phase, (tuple, list)) else int(phase)
    if p not in range(4):
        raise ValueError(f"phase must be an index 0..3 or one of {PHASES}, got {phase!r}")
    downs = [m for m in model.modules() if isinstance(m, PolyphaseDown) and m.selection.adaptive]
    if not downs:
        raise ValueError("the model has no adaptive polyphase downsampler (no APS level) to force")
    saved = [m.selection for m in downs]
    for m in downs:
        m.selection = FixedGrid(p)
    try:
        yield model
    finally:
        for m, selection in zip(downs, saved):
            m.selection = selection

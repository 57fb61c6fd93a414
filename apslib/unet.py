"""One U-Net family, parameterised by its down- and up-sampling strategy.

===========  ==========================================  ================================================
variant      downsampling (per level)                    upsampling (per level)
===========  ==========================================  ================================================
baseline     max-pool 2x2, stride 2                      transposed conv k=2, s=2
lpf          max-pool 2x2 stride 1, blur j, keep (0, 0)   zero insertion on (0, 0), blur j (gain 4), conv k=2
aps          max-pool 2x2 stride 1, blur j, APS-D         APS-U on encoder's grid, blur j (gain 4), conv k=2
===========  ==========================================  ================================================

``lpf`` with ``filter_size=1`` computes the same function class as ``baseline``; ``aps``
differs from ``lpf`` only in choosing the grid adaptively. With circular padding
(default) the ``aps`` U-Net is equivariant to every circular shift (Proposition 2).

The k=2 convolution after zero insertion pads one pixel at the top and left (circularly).
Implementation: APS-U followed by that convolution equals a transposed convolution (k=2,
s=2, with the kernel flipped) of the low-resolution map followed by a per-sample circular
shift by the chosen phase. The layers use that form (4x fewer multiply-adds than the
zero-inserted convolution, no scatter); :meth:`PolyphaseUp.reference_forward` keeps the
literal form, and the tests check that the two agree.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .filters import Blur, check_filter_size, check_padding_mode, circular_pad, zero_insert
from .names import model_name
from .polyphase import aps_down, aps_up, check_criterion, phase_shift, polyphase_norms

__all__ = [
    "VARIANTS",
    "PAPER_CHANNELS",
    "UNetConfig",
    "check_size",
    "DoubleConv",
    "MaxPoolDown",
    "BlurPoolDown",
    "APSPoolDown",
    "TransposedUp",
    "PolyphaseUp",
    "UNet",
    "build_unet",
    "calibrate_batchnorm",
]

VARIANTS = ("baseline", "lpf", "aps")
PAPER_CHANNELS = (64, 128, 256, 512, 1024)


def _pool_stride1(x: torch.Tensor, padding_mode: str) -> torch.Tensor:
    """2x2 max-pool with stride 1, padded by one pixel at the bottom and right.

    Written as two pairwise maxima of slices of the padded map: the same values as
    ``max_pool2d(pad(x), 2, stride=1)`` at about half its cost on CPU (forward+backward).
    """
    if padding_mode == "zeros":
        # Values here follow a ReLU (>= 0), so zero padding equals -inf padding.
        xp = F.pad(x, (0, 1, 0, 1))
    elif padding_mode == "circular":
        xp = circular_pad(x, (0, 1, 0, 1))
    else:
        xp = F.pad(x, (0, 1, 0, 1), mode=padding_mode)
    m = torch.maximum(xp[..., :, :-1], xp[..., :, 1:])
    return torch.maximum(m[..., :-1, :], m[..., 1:, :])


def check_aps_criterion(criterion: str, filter_size: int) -> None:
    """Refuse the criteria that tie by construction on the maps APS-D sees in the U-Net.

    APS-D there follows a ReLU, a stride-1 max-pool and (for ``filter_size >= 2``) a blur:
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


def check_size(shape, config: UNetConfig, what: str = "input size") -> None:
    """The one size rule of this U-Net family, with one message.

    ``shape`` = ``(H, W)`` (or a single side). Each side must be a multiple of
    ``2 ** depth`` (``config.multiple``) and at least ``config.min_size`` (a 2x2 bottleneck
    for the stride-1-pooling variants). Raises ``ValueError`` naming sizes that work.
    """
    shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
    m, depth, smallest = config.multiple, config.depth, config.min_size
    size = "x".join(map(str, shape))
    if all(n % m == 0 for n in shape) and min(shape) >= smallest:
        return
    # the deepest U-Net of this variant that takes the shape as it is, if any
    fits = [d for d in range(1, 16) if all(n % 2**d == 0 and n >= 2**d * (smallest // m) for n in shape)]
    lower = f", or a depth of at most {max(fits)}" if fits else ""
    bad = [n for n in dict.fromkeys(shape) if n % m]
    if bad:
        works = "; ".join(
            f"{' or '.join(map(str, sorted({max(n - n % m, smallest), max(n - n % m + m, smallest)})))}"
            f" for {n}"
            for n in bad
        )
        raise ValueError(
            f"{what} {size} is not divisible by 2**depth = {m} (depth={depth}): the U-Net "
            f"needs sides that are multiples of {m}. Sizes that work: {works} (crop or pad)"
            f"{lower}"
        )
    raise ValueError(
        f"{what} {size} is too small for the {config.variant} U-Net of depth {depth}: it "
        f"needs at least {smallest}x{smallest}"
        + (
            " (a bottleneck of 2x2 pixels: with a 1-pixel bottleneck the last stride-1 "
            "max-pool sees a 2-pixel map, makes its two rows (or columns) identical, and "
            "the polyphase choice ties)"
            if config.variant != "baseline"
            else ""
        )
        + f". Use larger images{lower or ' or a lower depth'}"
    )


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` whose circular padding is :func:`~apslib.filters.circular_pad` (the
    same values as ``F.pad(..., mode="circular")``, about half its cost forward + backward
    on CPU); other padding modes are ``nn.Conv2d``'s own. Same parameters and state dict."""

    def _conv_forward(self, input, weight, bias):  # noqa: A002 (nn.Conv2d's signature)
        if self.padding_mode == "circular":
            return F.conv2d(
                circular_pad(input, self._reversed_padding_repeated_twice),
                weight,
                bias,
                self.stride,
                0,
                self.dilation,
                self.groups,
            )
        return super()._conv_forward(input, weight, bias)


class DoubleConv(nn.Sequential):
    """(3x3 conv, BatchNorm, ReLU) twice; the convs have no bias (BatchNorm has one)."""

    def __init__(self, in_channels: int, out_channels: int, padding_mode: str = "circular"):
        layers = []
        for cin in (in_channels, out_channels):
            layers += [
                Conv2d(cin, out_channels, 3, padding=1, bias=False, padding_mode=padding_mode),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
        super().__init__(*layers)


class MaxPoolDown(nn.Module):
    """Baseline: 2x2 max-pool with stride 2 (fixed grid). ``forward(x) -> (y, None)``."""

    def forward(self, x: torch.Tensor):
        return F.max_pool2d(x, 2), None


class BlurPoolDown(nn.Module):
    """LPF-j: max-pool stride 1, binomial blur, keep the fixed grid (0, 0)."""

    def __init__(self, channels: int, filter_size: int = 3, padding_mode: str = "circular"):
        super().__init__()
        self.padding_mode = padding_mode
        self.blur = Blur(channels, filter_size, padding_mode=padding_mode)

    def forward(self, x: torch.Tensor):
        return self.blur(_pool_stride1(x, self.padding_mode))[..., ::2, ::2], None


class APSPoolDown(nn.Module):
    """APS(-j): max-pool stride 1, optional binomial blur, APS-D. ``-> (y, idx)``.

    When gradients are needed (training), without a blur and with circular padding, the
    output is computed as a stride-2 max-pool of the input shifted back by the chosen
    phase: the same values, and its backward is the plain max-pool's, about half the cost
    of back-propagating through the stride-1 pool and the selection. The grid is chosen
    without recording gradients. Without gradients the pooled map's component is read
    directly.
    """

    def __init__(
        self, channels: int, filter_size: int = 1, criterion: str = "l2", padding_mode: str = "circular"
    ):
        super().__init__()
        self.criterion = check_criterion(criterion)
        check_aps_criterion(criterion, check_filter_size(filter_size))
        self.padding_mode = padding_mode
        self.blur = Blur(channels, filter_size, padding_mode=padding_mode)

    def phase_norms(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 4)`` float64 norms of the four polyphase components of the map this layer
        chooses on (the stride-1-pooled, blurred ``x``); ``argmax`` is its choice."""
        return polyphase_norms(self.blur(_pool_stride1(x, self.padding_mode)), self.criterion)

    def forward(self, x: torch.Tensor):
        if (
            self.blur.filter_size == 1
            and self.padding_mode == "circular"
            and torch.is_grad_enabled()
            and x.requires_grad
        ):
            with torch.no_grad():
                idx = polyphase_norms(_pool_stride1(x, self.padding_mode), self.criterion).argmax(1)
            return F.max_pool2d(phase_shift(x, idx, inverse=True), 2), idx
        return aps_down(self.blur(_pool_stride1(x, self.padding_mode)), self.criterion)

    def extra_repr(self) -> str:
        return f"criterion={self.criterion!r}"


class TransposedUp(nn.ConvTranspose2d):
    """Baseline: transposed conv k=2, s=2. ``forward(y, idx)`` ignores ``idx``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, kernel_size=2, stride=2)

    def forward(self, y: torch.Tensor, idx=None) -> torch.Tensor:  # type: ignore[override]
        return super().forward(y)


class PolyphaseUp(nn.Module):
    """Zero insertion on a grid (adaptive: the encoder's; else (0, 0)), blur (gain 4), conv k=2.

    The conv k=2 pads one pixel at the top and left; its weight has the usual ``Conv2d``
    shape ``(out, in, 2, 2)``. With ``filter_size == 1`` there is no blur and no gain.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        filter_size: int = 1,
        *,
        adaptive: bool = True,
        padding_mode: str = "circular",
    ):
        super().__init__()
        self.adaptive = bool(adaptive)
        self.padding_mode = padding_mode
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, 2, 2))
        self.bias = nn.Parameter(torch.empty(out_channels))
        # Same initialisation as nn.Conv2d(in, out, 2).
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        bound = 1 / math.sqrt(in_channels * 4)
        nn.init.uniform_(self.bias, -bound, bound)
        # A blur after zero insertion needs gain stride**2 = 4 to keep the mean; without a
        # blur (filter_size 1) the k=2 conv alone interpolates, as in the paper's APS.
        gain = 4.0 if check_filter_size(filter_size) > 1 else 1.0
        self.blur = Blur(out_channels, filter_size, gain=gain, padding_mode=padding_mode)
        self.blur_in = Blur(in_channels, filter_size, gain=gain, padding_mode=padding_mode)

    def forward(self, y: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        if self.padding_mode != "circular":
            return self.reference_forward(y, idx)
        # ConvTranspose with the flipped kernel == zero insertion on (0, 0) + conv k=2
        # padded top/left. Circular shift and blur commute with it.
        # The bias is a constant map: shifting leaves it alone and the blur multiplies it
        # by its gain, so it goes into the transposed conv divided by that gain (exact:
        # the gain is 1 or 4).
        w = self.weight.flip(-2, -1).transpose(0, 1)
        u = F.conv_transpose2d(y, w, self.bias / self.blur.gain, stride=2)
        if self.adaptive:
            u = phase_shift(u, self._need_idx(idx))
        return self.blur(u)

    def reference_forward(self, y: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """The literal definition: APS-U (or zero insertion), blur with gain 4, conv k=2."""
        z = aps_up(y, self._need_idx(idx)) if self.adaptive else zero_insert(y)
        z = self.blur_in(z)
        mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
        return F.conv2d(F.pad(z, (1, 0, 1, 0), mode=mode), self.weight, self.bias)

    def _need_idx(self, idx):
        if self.adaptive and idx is None:
            raise ValueError("adaptive PolyphaseUp needs the phase indices of its encoder level")
        return idx

    def extra_repr(self) -> str:
        o, i = self.weight.shape[:2]
        return f"{i}, {o}, adaptive={self.adaptive}, padding_mode={self.padding_mode!r}"


@dataclass(frozen=True)
class UNetConfig:
    """Everything that defines a U-Net of this family (stored in checkpoints)."""

    variant: str = "aps"
    depth: int = 4
    channels: tuple[int, ...] = field(default_factory=lambda: PAPER_CHANNELS)
    filter_size: int = 1
    criterion: str = "l2"
    in_channels: int = 1
    out_channels: int = 1
    padding_mode: str = "circular"

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; choose one of {VARIANTS}")
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 1:
            raise ValueError(f"depth must be an integer >= 1, got {self.depth!r}")
        check_filter_size(self.filter_size)
        check_criterion(self.criterion)
        check_padding_mode(self.padding_mode)
        if self.variant == "baseline" and self.filter_size != 1:
            raise ValueError(
                "variant='baseline' has no blur; use variant='lpf' (or 'aps') for "
                f"filter_size={self.filter_size}"
            )
        if self.variant == "aps":
            check_aps_criterion(self.criterion, self.filter_size)
        channels = tuple(int(c) for c in self.channels)
        if len(channels) != self.depth + 1:
            raise ValueError(
                f"channels needs depth + 1 = {self.depth + 1} entries (one per level), got "
                f"{len(channels)}: {list(channels)}"
            )
        if any(c < 1 for c in channels):
            raise ValueError(f"channels must be positive, got {list(channels)}")
        for name in ("in_channels", "out_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        object.__setattr__(self, "channels", channels)

    @property
    def multiple(self) -> int:
        """Input height and width must be multiples of this (``2 ** depth``)."""
        return 2**self.depth

    @property
    def min_size(self) -> int:
        """Smallest input side: ``2 ** depth`` (baseline), twice that with stride-1 pooling."""
        return self.multiple if self.variant == "baseline" else 2 * self.multiple

    @property
    def name(self) -> str:
        """Paper-style name: ``Baseline``, ``LPF-3``, ``APS``, ``APS-3``."""
        return model_name(self.variant, self.filter_size)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d


class UNet(nn.Module):
    """U-Net with ``depth`` stride-2 levels; output has the input's spatial shape.

    ``forward(x, return_phases=True)`` also returns the list of per-level phase indices
    (``None`` entries for fixed-grid variants), e.g. to count grid flips under shifts.
    """

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        c, mode = config.channels, config.padding_mode
        self.inc = DoubleConv(config.in_channels, c[0], mode)
        self.downs = nn.ModuleList()
        self.encoders = nn.ModuleList()
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in range(config.depth):
            self.downs.append(self._make_down(c[level]))
            self.encoders.append(DoubleConv(c[level], c[level + 1], mode))
            self.ups.append(self._make_up(c[level + 1], c[level]))
            self.decoders.append(DoubleConv(2 * c[level], c[level], mode))
        self.outc = nn.Conv2d(c[0], config.out_channels, kernel_size=1)

    def _make_down(self, channels: int) -> nn.Module:
        cfg = self.config
        if cfg.variant == "baseline":
            return MaxPoolDown()
        if cfg.variant == "lpf":
            return BlurPoolDown(channels, cfg.filter_size, cfg.padding_mode)
        return APSPoolDown(channels, cfg.filter_size, cfg.criterion, cfg.padding_mode)

    def _make_up(self, cin: int, cout: int) -> nn.Module:
        cfg = self.config
        if cfg.variant == "baseline":
            return TransposedUp(cin, cout)
        return PolyphaseUp(
            cin, cout, cfg.filter_size, adaptive=cfg.variant == "aps", padding_mode=cfg.padding_mode
        )

    def check_input(self, x: torch.Tensor) -> None:
        cfg = self.config
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ValueError(
                f"input must be a (B, C, H, W) tensor, got shape {tuple(getattr(x, 'shape', ()))}"
            )
        if x.shape[1] != cfg.in_channels:
            raise ValueError(f"input has {x.shape[1]} channels, the model expects {cfg.in_channels}")
        check_size(tuple(x.shape[-2:]), cfg)

    def forward(self, x: torch.Tensor, return_phases: bool = False):
        self.check_input(x)
        x = self.inc(x)
        skips, phases = [], []
        for down, enc in zip(self.downs, self.encoders):
            skips.append(x)
            x, idx = down(x)
            phases.append(idx)
            x = enc(x)
        for level in reversed(range(self.config.depth)):
            u = self.ups[level](x, phases[level])
            x = self.decoders[level](torch.cat([skips[level], u], dim=1))
        out = self.outc(x)
        return (out, phases) if return_phases else out


def build_unet(
    variant: str,
    *,
    depth: int = 4,
    channels=None,
    filter_size: int = 1,
    criterion: str = "l2",
    in_channels: int = 1,
    out_channels: int = 1,
    padding_mode: str = "circular",
) -> UNet:
    """Build a U-Net of the family.

    Args:
        variant: ``"baseline"``, ``"lpf"`` or ``"aps"``.
        depth: number of stride-2 levels; inputs must be multiples of ``2 ** depth``.
        channels: ``depth + 1`` widths; default the paper's ``[64, 128, 256, 512, 1024]``
            cut to ``depth + 1`` entries (doubling on past 1024 if ``depth > 4``).
        filter_size: binomial blur size 1..7 (1 = no blur). Needs ``lpf`` or ``aps``.
        criterion: APS norm, ``"l2"`` (default), ``"l1"`` or ``"linf"``.
        padding_mode: ``"circular"`` (default; needed for exact equivariance), ``"zeros"``,
            ``"reflect"`` or ``"replicate"``.
    """
    if channels is None:
        if isinstance(depth, int) and not isinstance(depth, bool) and depth >= 1:
            channels = [64 * 2**k for k in range(depth + 1)]
        else:
            channels = ()
    cfg = UNetConfig(
        variant=variant,
        depth=depth,
        channels=tuple(channels),
        filter_size=filter_size,
        criterion=criterion,
        in_channels=in_channels,
        out_channels=out_channels,
        padding_mode=padding_mode,
    )
    return UNet(cfg)


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Set every BatchNorm's running statistics to the exact statistics of batch ``x``.

    Useful for untrained models: with the initial running statistics (mean 0, variance
    1) activations are not normalised, and a randomly initialised network is nearly
    linear. Leaves the model in eval mode.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one batch gives its exact statistics
    model.train()
    model(x)
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    return model.eval()

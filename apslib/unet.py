"""One U-Net family, parameterised by its down- and up-sampling strategy.

===========  ==========================================  ================================================
variant      downsampling (per level)                    upsampling (per level)
===========  ==========================================  ================================================
baseline     max-pool 2x2, stride 2                      transposed conv k=2, s=2
lpf          max-pool 2x2 stride 1, blur j, keep (0, 0)   zero insertion on (0, 0), blur j, conv k=2
aps          max-pool 2x2 stride 1, blur j, APS-D         APS-U on encoder's grid, blur j, conv k=2
===========  ==========================================  ================================================

``aps`` differs from ``lpf`` only in choosing the grid adaptively. With circular padding
(default) the ``aps`` U-Net is equivariant to every circular shift (Proposition 2).

The decoder of ``lpf``/``aps`` comes in the authors' form by default: the k=2 conv after
zero insertion is padded at the bottom/right (``up_pad="bottom_right"``) and the blur after
zero insertion has gain 1 (``up_blur_gain=1``); ``"top_left"`` / 4 is the other form
(apslib before 0.2; checkpoints without the keys load with it). The layers live in
:mod:`apslib.layers`; here: the configuration, the size rule (:func:`check_size`), the
U-Net, :func:`build_unet`, :func:`unet_from_config` and :func:`calibrate_batchnorm`.

``architecture="fastmri"`` is the other family a :class:`UNetConfig` can describe:
``fastmri.models.Unet``'s layers (average pooling, transposed conv, InstanceNorm, LeakyReLU)
with its own sampling (``baseline``, zero padding unless told otherwise) or converted to
``lpf``/``aps`` (:class:`apslib.convert.EquivariantFastMRIUnet`, circular padding); the
same ``state_dict`` as fastMRI's model in every variant.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import ClassVar

import torch
from torch import nn

from .filters import check_filter_size, check_padding_mode
from .layers import (  # re-exported: the layers of the family
    UP_PADS,
    APSPoolDown,
    BlurPoolDown,
    Conv2d,
    DoubleConv,
    MaxPoolDown,
    PolyphaseUp,
    TransposedUp,
    check_aps_criterion,
)
from .names import model_name
from .polyphase import check_criterion

__all__ = [
    "VARIANTS",
    "ARCHITECTURES",
    "PAPER_CHANNELS",
    "UNetConfig",
    "check_size",
    "check_aps_criterion",
    "UP_PADS",
    "Conv2d",
    "DoubleConv",
    "MaxPoolDown",
    "BlurPoolDown",
    "APSPoolDown",
    "TransposedUp",
    "PolyphaseUp",
    "UNet",
    "build_unet",
    "unet_from_config",
    "calibrate_batchnorm",
]

VARIANTS = ("baseline", "lpf", "aps")
ARCHITECTURES = ("apslib", "fastmri")  # this family's layers, or fastmri.models.Unet's
PAPER_CHANNELS = (64, 128, 256, 512, 1024)


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


@dataclass(frozen=True)
class UNetConfig:
    """Everything that defines a U-Net of this family (stored in checkpoints).

    ``architecture="fastmri"``: ``fastmri.models.Unet`` (``chans = channels[0]``,
    ``num_pool_layers = depth``; its widths double per level, so ``channels`` must too);
    its decoder is the transposed conv (shifted by the encoder's grid for ``aps``), i.e.
    ``up_pad="top_left"`` with gain 1. ``padding_mode=None`` / ``up_pad=None`` take the
    architecture's form: circular and the authors' bottom/right decoder for apslib; zeros
    (fastMRI's own) for the fastmri baseline, circular for its lpf/aps.
    """

    variant: str = "aps"
    depth: int = 4
    channels: tuple[int, ...] = field(default_factory=lambda: PAPER_CHANNELS)
    filter_size: int = 1
    criterion: str = "l2"
    in_channels: int = 1
    out_channels: int = 1
    padding_mode: str | None = None
    # The decoder of lpf/aps: side of the k=2 conv's padding and gain of the blur after
    # zero insertion. The defaults are the authors' code; "top_left" / 4.0 is the form
    # apslib used before 0.2 (checkpoints without these keys load with it).
    up_pad: str | None = None
    up_blur_gain: float = 1.0
    architecture: str = "apslib"

    LEGACY_UP: ClassVar[dict] = {"up_pad": "top_left", "up_blur_gain": 4.0}

    @classmethod
    def from_dict(cls, d: dict) -> UNetConfig:
        """The config stored in a checkpoint; keys it lacks take the form it was trained
        with (before ``up_pad`` / ``up_blur_gain`` existed: top-left padding, gain 4)."""
        d = {**cls.LEGACY_UP, **d}
        return cls(**{**d, "channels": tuple(d["channels"])})

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; choose one of {VARIANTS}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.architecture!r}; choose one of {ARCHITECTURES}")
        fastmri = self.architecture == "fastmri"
        if self.padding_mode is None:
            own = fastmri and self.variant == "baseline"  # fastMRI's own U-Net pads zeros
            object.__setattr__(self, "padding_mode", "zeros" if own else "circular")
        if self.up_pad is None:
            object.__setattr__(self, "up_pad", "top_left" if fastmri else "bottom_right")
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
        if self.variant == "aps" and not fastmri:  # fastMRI's average pool does not tie so
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
        if self.up_pad not in UP_PADS:
            raise ValueError(
                f"up_pad must be one of {UP_PADS} (the side of the decoder's k=2 "
                f"conv padding), got {self.up_pad!r}"
            )
        if self.up_blur_gain not in (1.0, 4.0):
            raise ValueError(
                "up_blur_gain must be 1 (the authors' code) or 4 (mean-preserving), "
                f"got {self.up_blur_gain!r}"
            )
        object.__setattr__(self, "up_blur_gain", float(self.up_blur_gain))
        object.__setattr__(self, "channels", channels)
        if fastmri:
            self._check_fastmri()

    def _check_fastmri(self) -> None:
        c = self.channels
        if any(c[k] != c[0] * 2**k for k in range(len(c))):
            raise ValueError(
                f"fastmri.models.Unet doubles its width per level: channels must be "
                f"{[c[0] * 2**k for k in range(len(c))]} for chans={c[0]}, got {list(c)}"
            )
        if (self.up_pad, self.up_blur_gain) != ("top_left", 1.0):
            raise ValueError(
                "the fastmri architecture keeps fastMRI's transposed conv (top/left, gain 1): "
                f"leave up_pad / up_blur_gain unset, got {self.up_pad!r} / {self.up_blur_gain:g}"
            )
        if self.variant != "baseline" and self.padding_mode != "circular":
            raise ValueError(
                f"the {self.variant} fastMRI U-Net pads circularly (its equivariance needs it); "
                f"got padding_mode={self.padding_mode!r}"
            )

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
        """Paper-style name: ``Baseline``, ``LPF-3``, ``APS``, ``APS-3``, ``fastMRI U-Net``."""
        return model_name(self.variant, self.filter_size, architecture=self.architecture)

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
        if config.architecture != "apslib":
            raise ValueError(f"UNet builds apslib's layers; for {config.architecture!r} use unet_from_config")
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
            cin,
            cout,
            cfg.filter_size,
            adaptive=cfg.variant == "aps",
            padding_mode=cfg.padding_mode,
            up_pad=cfg.up_pad,
            blur_gain=cfg.up_blur_gain,
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
    up_pad: str = "bottom_right",
    up_blur_gain: float = 1.0,
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
        up_pad, up_blur_gain: the lpf/aps decoder's k=2 conv padding side and blur gain
            (defaults: the authors' code, ``"bottom_right"`` and 1; see :class:`PolyphaseUp`).
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
        up_pad=up_pad,
        up_blur_gain=up_blur_gain,
    )
    return UNet(cfg)


def unet_from_config(config: UNetConfig) -> nn.Module:
    """The U-Net a :class:`UNetConfig` describes: :class:`UNet`, or for
    ``architecture="fastmri"`` :class:`apslib.convert.EquivariantFastMRIUnet` (both take
    ``forward(x, return_phases=False)`` and carry ``.config``)."""
    if config.architecture == "fastmri":
        from .convert import EquivariantFastMRIUnet  # imports fastmri (and torchvision)

        return EquivariantFastMRIUnet.from_config(config)
    return UNet(config)


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

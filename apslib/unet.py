"""One U-Net family, parameterised by its sampling layers (:mod:`apslib.layers`).

========  =========================================  ====================================================
variant   downsampling (per level)                   upsampling (per level)
========  =========================================  ====================================================
baseline  max-pool 2x2, stride 2                     transposed conv k=2, s=2
lpf       max-pool 2x2 stride 1, blur j, keep (0,0)  zero insertion on (0,0), blur j, conv k=2 (top/left)
aps       max-pool 2x2 stride 1, blur j, APS-D       APS-U on encoder's grid, blur j, conv k=2 (bot./right)
lps       max-pool 2x2 stride 1, blur j, LPD         LPU on encoder's grid, blur j, conv k=2 (bot./right)
af        ideal low-pass to half the band, keep      ideal (band-limited) upsampling, conv k=2 (top/left)
          (0, 0) (Fourier-domain, no pool)
========  =========================================  ====================================================

``af`` is the alias-free U-Net: every sampling step is ideal (:mod:`apslib.fourier`), the
input's Nyquist row and column are removed first, and the activations are
:class:`~apslib.fourier.AliasFreeActivation` (``activation="af-poly"``: a learnable
degree-2 polynomial at twice the resolution, exactly alias-free, the model "AF";
``"af-relu"``: ReLU at twice the resolution, nearly so, "AF-ReLU"). Every normalisation of
:func:`~apslib.layers.norm_layer` commutes with Fourier shifts (its statistics are spatial
means: the mean is the DC bin, the variance the spectrum's energy, which a shift leaves
unchanged). "AF" normalises per sample over (C, H, W) (``norm="layer"``): with BatchNorm's
fixed eval-mode statistics an input of larger amplitude than the training data's is
squared again at every polynomial layer and overflows (NaN on every out-of-distribution
set here), while the per-sample norm makes the model invariant to the input's scale.
"AF-ReLU" keeps BatchNorm. The whole model then commutes with every
real (sub-pixel) Fourier shift, not only integer ones, up to float rounding for "AF".

``lps`` is learnable polyphase sampling (Rojas-Gomez et al. 2022): the ``aps`` U-Net with
the grid chosen by a learned score instead of the largest norm
(:class:`~apslib.learned.LearnedSelection`, one small scoring network per level; Gumbel-softmax
while training, the argmax in eval mode). In eval mode it is exactly equivariant to every
circular shift, like ``aps``, for any scorer weights.

Every level is a :class:`~apslib.layers.PolyphaseDown` / :class:`~apslib.layers.PolyphaseUp`
pair; the variants differ in the selection rule (a fixed grid, the largest norm, or a learned
score) and the decoder's form. ``aps`` differs from ``lpf`` only in choosing the grid adaptively: with
circular padding (the default) the ``aps`` U-Net is equivariant to every circular shift
(Proposition 2 of Chaman & Dokmanic 2021).

The decoders are the authors' by default: for ``lpf`` the k=2 conv after zero insertion is
padded at the top/left (zero insertion, blur, conv == transposed conv, then blur); for
``aps`` at the bottom/right (output pixel ``p`` combines ``p`` and ``p + 1``); the blur
after zero insertion has gain 1. ``up_pad`` / ``up_blur_gain`` choose another form.

``architecture="fastmri"`` is the other family a :class:`UNetConfig` describes:
``fastmri.models.Unet``'s layers with its own sampling (``baseline``) or converted to
``lpf``/``aps`` (:class:`apslib.convert.EquivariantFastMRIUnet`); :func:`apslib.models.unet_from_config`
builds either.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from numbers import Integral

import torch
from torch import nn

from .filters import check_filter_size, check_padding_mode
from .fourier import remove_nyquist
from .layers import (
    ACTIVATIONS,
    NORMS,
    UP_PADS,
    DoubleConv,
    FixedGrid,
    NormSelection,
    PolyphaseDown,
    PolyphaseUp,
    Selection,
    check_aps_criterion,
)
from .learned import LearnedSelection
from .names import model_name
from .polyphase import check_criterion

__all__ = [
    "ARCHITECTURES",
    "EQUIVARIANT_VARIANTS",
    "PAPER_CHANNELS",
    "VARIANTS",
    "UNet",
    "UNetConfig",
    "build_unet",
    "calibrate_batchnorm",
    "check_size",
]

VARIANTS = ("baseline", "lpf", "aps", "af", "lps")
# the variants whose name promises shift-equivariance (circular padding, refused otherwise)
EQUIVARIANT_VARIANTS = ("lpf", "aps", "lps", "af")
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

    ``padding_mode=None`` and ``up_pad=None`` mean "the form of this architecture and
    variant"; :meth:`resolve` returns the config with those filled in (models keep the
    resolved config): circular padding (zeros for fastMRI's own U-Net), and the authors'
    decoders (``lpf``: top/left, ``aps``: bottom/right; the Baseline's transposed conv and
    fastMRI's are top/left). ``architecture="fastmri"``: ``fastmri.models.Unet``
    (``chans = channels[0]``, ``num_pool_layers = depth``; its widths double per level).
    """

    variant: str = "aps"
    depth: int = 4
    channels: tuple[int, ...] = field(default_factory=lambda: PAPER_CHANNELS)
    filter_size: int = 1
    criterion: str = "l2"
    in_channels: int = 1
    out_channels: int = 1
    padding_mode: str | None = None
    up_pad: str | None = None
    up_blur_gain: float = 1.0
    architecture: str = "apslib"
    activation: str | None = None
    norm: str | None = None

    @classmethod
    def from_dict(cls, d: dict) -> UNetConfig:
        """The config stored by :meth:`to_dict` (a checkpoint's); unknown keys are refused."""
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(
                f"unknown U-Net config field(s) {unknown}: written by another version of apslib? "
                "Upgrade apslib, or retrain the model"
            )
        return cls(**d)  # channels (a JSON list) are checked and made a tuple by __post_init__

    def resolve(self) -> UNetConfig:
        """This config with ``padding_mode`` and ``up_pad`` set to the architecture's and
        variant's form where they are ``None``."""
        fastmri = self.architecture == "fastmri"
        own = fastmri and self.variant == "baseline"  # fastMRI's own U-Net pads zeros
        padding = self.padding_mode or ("zeros" if own else "circular")
        adaptive = self.variant in ("aps", "lps")
        up_pad = self.up_pad or ("bottom_right" if adaptive and not fastmri else "top_left")
        af = self.variant == "af"
        activation = self.activation or ("af-poly" if af else "relu")
        norm = self.norm or ("layer" if activation == "af-poly" else "batch")
        return replace(self, padding_mode=padding, up_pad=up_pad, activation=activation, norm=norm)

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; choose one of {VARIANTS}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.architecture!r}; choose one of {ARCHITECTURES}")
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 1:
            raise ValueError(f"depth must be an integer >= 1, got {self.depth!r}")
        check_filter_size(self.filter_size)
        check_criterion(self.criterion)
        if self.padding_mode is not None:
            check_padding_mode(self.padding_mode)
        if self.variant == "baseline" and self.filter_size != 1:
            raise ValueError(
                "variant='baseline' has no blur; use variant='lpf' (or 'aps') for "
                f"filter_size={self.filter_size}"
            )
        fastmri = self.architecture == "fastmri"
        if self.variant == "aps" and not fastmri:  # fastMRI's average pool does not tie so
            check_aps_criterion(self.criterion, self.filter_size)
        c, n = self.channels, self.depth + 1  # refused: a str ("4, 8, 16"), floats, True
        widths = () if isinstance(c, (str, bytes)) or not isinstance(c, Iterable) else tuple(c)
        if len(widths) != n or not all(isinstance(w, Integral) and w > 0 and w is not True for w in widths):
            raise ValueError(
                f"channels needs depth + 1 = {n} entries (one width per level), a list of "
                f"positive ints such as {[8 * 2**k for k in range(n)]}; got {c!r}"
            )
        channels = tuple(int(w) for w in widths)
        for name in ("in_channels", "out_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.up_pad is not None and self.up_pad not in UP_PADS:
            raise ValueError(
                f"up_pad must be one of {UP_PADS} (the side of the decoder's k=2 "
                f"conv padding), got {self.up_pad!r}"
            )
        if self.up_blur_gain not in (1.0, 4.0):
            raise ValueError(
                "up_blur_gain must be 1 (the authors' code) or 4 (mean-preserving), "
                f"got {self.up_blur_gain!r}"
            )
        if self.variant == "baseline" and (self.up_pad or "top_left") != "top_left":
            raise ValueError("the baseline's decoder is the transposed conv (top_left): leave up_pad unset")
        self._check_layers()
        self._check_padding()
        # normalise the types (a list of widths, an integer gain), so that equal configs compare equal
        object.__setattr__(self, "channels", channels)
        object.__setattr__(self, "up_blur_gain", float(self.up_blur_gain))
        if fastmri:
            self._check_fastmri()

    def _check_layers(self) -> None:
        """The activation and norm, and what the alias-free variant needs."""
        if self.activation is not None and self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.norm is not None and self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if self.variant == "lps" and self.architecture != "apslib":
            raise ValueError(
                "variant='lps' (learnable polyphase sampling) is built from apslib's layers: use "
                "architecture='apslib' (a converted fastMRI U-Net would need new, trained scorers)"
            )
        if self.variant == "lps" and self.criterion != "l2":
            raise ValueError(
                f"criterion is APS's norm; LPS learns its score instead: leave criterion at 'l2', "
                f"got {self.criterion!r}"
            )
        af = self.variant == "af"
        if not af and self.activation not in (None, "relu"):
            raise ValueError(
                f"activation={self.activation!r} is the alias-free U-Net's: use variant='af' "
                "(the models 'AF' and 'AF-ReLU')"
            )
        if not af:
            return
        if self.activation not in (None, "af-poly", "af-relu"):
            raise ValueError(
                f"the alias-free U-Net applies its activation at twice the resolution: "
                f"activation must be 'af-poly' or 'af-relu', got {self.activation!r}"
            )
        if self.architecture != "apslib":
            raise ValueError("variant='af' is built from apslib's layers: use architecture='apslib'")
        if self.filter_size != 1:
            raise ValueError(
                f"variant='af' low-passes ideally (in the Fourier domain): it has no binomial blur, "
                f"leave filter_size at 1 (got {self.filter_size})"
            )
        if self.padding_mode not in (None, "circular"):
            raise ValueError(
                f"variant='af' computes in the Fourier domain, which is periodic: it pads circularly, "
                f"got padding_mode={self.padding_mode!r}"
            )

    def _check_padding(self) -> None:
        """The variants named for their shift-equivariance pad circularly: ``lpf`` (exact
        for shifts by multiples of ``2 ** depth``), ``aps`` and ``lps`` (every shift,
        Proposition 2); ``af`` and the fastMRI variants say so themselves. Another padding
        would make a model that is not equivariant under a name that says it is."""
        if self.architecture != "apslib" or self.variant not in EQUIVARIANT_VARIANTS:
            return
        if self.padding_mode in (None, "circular"):
            return
        name = model_name(self.variant, self.filter_size)
        raise ValueError(
            f"variant={self.variant!r} pads circularly: with padding_mode={self.padding_mode!r} "
            f"the model would not be shift-equivariant, yet carry the {name} name; leave "
            "padding_mode unset (circular). For a padding ablation build the model from the "
            "layers, which take padding_mode (PolyphaseDown, PolyphaseUp, DoubleConv)"
        )

    def _check_fastmri(self) -> None:
        c = self.channels
        if any(c[k] != c[0] * 2**k for k in range(len(c))):
            raise ValueError(
                f"fastmri.models.Unet doubles its width per level: channels must be "
                f"{[c[0] * 2**k for k in range(len(c))]} for chans={c[0]}, got {list(c)}"
            )
        if (self.up_pad or "top_left", self.up_blur_gain) != ("top_left", 1.0):
            raise ValueError(
                "the fastmri architecture keeps fastMRI's transposed conv (top/left, gain 1): "
                f"leave up_pad / up_blur_gain unset, got {self.up_pad!r} / {self.up_blur_gain:g}"
            )
        if self.variant != "baseline" and self.padding_mode not in (None, "circular"):
            raise ValueError(
                f"the {self.variant} fastMRI U-Net pads circularly (its equivariance needs it); "
                f"got padding_mode={self.padding_mode!r}"
            )

    @property
    def multiple(self) -> int:
        """Input height and width must be multiples of this: ``2 ** depth``, or
        ``2 ** (depth + 1)`` for ``af`` (its Fourier-domain layers need even sides down to
        the bottleneck)."""
        return 2 ** (self.depth + (self.variant == "af"))

    @property
    def min_size(self) -> int:
        """Smallest input side: ``2 ** depth`` (baseline), twice that with stride-1 pooling
        (and for ``af``): a bottleneck of 2x2 pixels."""
        return 2 ** (self.depth + (self.variant != "baseline"))

    @property
    def name(self) -> str:
        """Paper-style name: ``Baseline``, ``LPF-3``, ``APS``, ``APS-3``, ``AF``, ``AF-ReLU``,
        ``LPS``, ``LPS-3``, ``fastMRI U-Net``."""
        return model_name(
            self.variant, self.filter_size, architecture=self.architecture, activation=self.activation
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d


class UNet(nn.Module):
    """U-Net with ``depth`` stride-2 levels; output has the input's spatial shape.

    ``forward(x, return_phases=True)`` also returns the list of per-level phase indices
    (``None`` entries for fixed grids), e.g. to count grid flips under shifts.
    ``config`` is the resolved :class:`UNetConfig`.
    """

    def __init__(self, config: UNetConfig):
        super().__init__()
        if config.architecture != "apslib":
            raise ValueError(
                f"UNet builds apslib's layers; for {config.architecture!r} use apslib.models.unet_from_config"
            )
        self.config = config = config.resolve()
        c, mode, up_pad = config.channels, str(config.padding_mode), str(config.up_pad)
        af = config.variant == "af"
        layer = {"norm": str(config.norm), "activation": str(config.activation)}
        self.inc = DoubleConv(config.in_channels, c[0], mode, **layer)
        self.downs = nn.ModuleList()
        self.encoders = nn.ModuleList()
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in range(config.depth):
            if config.variant == "aps":
                selection: Selection = NormSelection(config.criterion)
            elif config.variant == "lps":
                selection = LearnedSelection(c[level])
            else:
                selection = FixedGrid()
            self.downs.append(
                PolyphaseDown(
                    config.filter_size,
                    selection,
                    pool=None if af else "max",
                    padding_mode=mode,
                    lowpass="ideal" if af else "binomial",
                )
            )
            self.encoders.append(DoubleConv(c[level], c[level + 1], mode, **layer))
            self.ups.append(
                PolyphaseUp(
                    c[level + 1],
                    c[level],
                    config.filter_size,
                    up_pad=up_pad,
                    blur_gain=config.up_blur_gain,
                    padding_mode=mode,
                    layout="transposed" if config.variant == "baseline" else "conv",
                    lowpass="ideal" if af else "binomial",
                )
            )
            self.decoders.append(DoubleConv(2 * c[level], c[level], mode, **layer))
        self.outc = nn.Conv2d(c[0], config.out_channels, kernel_size=1)

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
        if self.config.variant == "af":  # what a real sub-pixel shift cannot move consistently
            x = remove_nyquist(x)
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
    padding_mode: str | None = None,
    up_pad: str | None = None,
    up_blur_gain: float = 1.0,
    activation: str | None = None,
    norm: str | None = None,
) -> UNet:
    """Build a U-Net of the family (apslib's layers; the one builder from arguments).

    Args:
        variant: ``"baseline"``, ``"lpf"``, ``"aps"``, ``"af"`` (alias-free) or ``"lps"``
            (learnable polyphase sampling).
        depth: number of stride-2 levels; inputs must be multiples of ``2 ** depth``.
        channels: ``depth + 1`` widths; default the paper's ``[64, 128, 256, 512, 1024]``
            cut to ``depth + 1`` entries (doubling on past 1024 if ``depth > 4``).
        filter_size: binomial blur size 1..7 (1 = no blur). Needs ``lpf``, ``aps`` or ``lps``.
        criterion: APS norm, ``"l2"`` (default), ``"l1"`` or ``"linf"``.
        padding_mode: ``"circular"`` (the default, and the only one the equivariant
            variants ``lpf``, ``aps``, ``lps``, ``af`` take: another would break the
            equivariance their names promise); the ``baseline`` also takes ``"zeros"``,
            ``"reflect"`` or ``"replicate"``.
        up_pad, up_blur_gain: the decoder's k=2 conv padding side and blur gain (default:
            the authors' form of the variant; see :class:`~apslib.layers.PolyphaseUp`).
        activation: ``"relu"`` (default), or for ``af`` ``"af-poly"`` (default) / ``"af-relu"``.
        norm: ``"batch"`` (default; ``"layer"`` for ``af`` with ``"af-poly"``), ``"instance"``
            or ``"layer"``.
    """
    if channels is None:
        if isinstance(depth, int) and not isinstance(depth, bool) and depth >= 1:
            channels = [64 * 2**k for k in range(depth + 1)]
        else:
            channels = ()
    cfg = UNetConfig(
        variant=variant,
        depth=depth,
        channels=channels,
        filter_size=filter_size,
        criterion=criterion,
        in_channels=in_channels,
        out_channels=out_channels,
        padding_mode=padding_mode,
        up_pad=up_pad,
        up_blur_gain=up_blur_gain,
        activation=activation,
        norm=norm,
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

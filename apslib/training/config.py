"""The configuration of one training run (the paper's protocol by default), and its CLI.

Conventions: every option is defined once, as a field of :class:`TrainConfig` with its
help text in the field's metadata; the command line of ``python -m apslib.training`` is
generated from the fields (:func:`add_config_arguments`, :func:`config_from_args`): the
flag is ``--<field-name-with-dashes>`` unless the metadata names another (``data_root``
-> ``--data``), the type comes from the annotation (``bool`` -> ``--x/--no-x``, tuples ->
several values, ``X | None`` -> optional). An option the user does not give keeps the
field's default, so the CLI and the Python API build the same :class:`TrainConfig`.
Invalid values raise ``ValueError`` saying what is allowed.

Every default is explicit. A field whose value depends on others is ``None`` ("the
architecture's"): ``channels`` (the paper's widths for ``depth``), ``padding_mode`` and
``up_pad`` (the architecture's and variant's forms); :meth:`TrainConfig.resolve` returns the
copy with them filled in, which is what a run folder stores.
"""

from __future__ import annotations

import argparse
import math
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path

from ..layers import ACTIVATIONS, NORMS, UP_PADS
from ..names import PAPER_MODELS, model_name, parse_model_name, run_slug, slugify
from ..unet import ARCHITECTURES, VARIANTS, UNetConfig

__all__ = [
    "TrainConfig",
    "config_for",
    "LOSSES",
    "RUNTIME_FIELDS",
    "NAME_FIELDS",
    "MAX_LR",
    "add_config_arguments",
    "config_from_args",
    "cli_flag",
    "cli_parser",
    "parse_cli",
    "OneLineParser",
]

LOSSES = ("mse", "l1")
MAX_LR = 10.0  # Adam with a larger step only diverges; a typo (1e38) fails at once

# Fields that may change between the calls of one run (where and how it runs, how long);
# every other field defines the run, and a mismatch is an error.
RUNTIME_FIELDS = ("name", "epochs", "data_root", "run_dir", "device", "workers", "channels_last")

# the fields a paper-style model name sets (:func:`apslib.names.parse_model_name`'s keys)
NAME_FIELDS = ("variant", "filter_size", "shift_augment", "subpixel_augment", "architecture", "activation")


def _opt(default, help: str, **cli):
    """A field with its CLI help; ``cli``: ``flag``, ``choices``, ``required``, ``group``."""
    return field(default=default, metadata={"help": help, **cli})


@dataclass
class TrainConfig:
    """One training run. Defaults: the paper's protocol and model sizes.

    ``criterion`` is the APS norm (``"l2"``, the paper's); ``loss`` the training loss
    (``"mse"``, the paper's, or ``"l1"``). ``channels=None`` means the paper's widths
    ``64 * 2**k`` for ``k = 0..depth``; ``padding_mode=None`` / ``up_pad=None`` the
    architecture's and variant's forms (:meth:`resolve` fills all three in).
    ``clamp=None`` is the variant's output clamp (6, the paper's; off for ``af``), resolved
    to a number (0.0: off); ``grad_clip`` ``None`` (or 0) switches gradient clipping off.
    ``batch_size`` is per process under DDP.
    ``sample_fraction``/``volume_fraction``/``acquisition`` select a deterministic subset
    of both splits (see :func:`apslib.data.make_dataset`).
    """

    variant: str = _opt("aps", "U-Net variant (or --model)", choices=VARIANTS, group="model")
    filter_size: int = _opt(1, "blur size j, 1..7 (1: no blur)")
    depth: int = _opt(4, "stride-2 levels of the U-Net")
    channels: tuple[int, ...] | None = _opt(None, "depth+1 widths (default: 64*2**k)")
    criterion: str = _opt("l2", "APS norm: l2, l1 or linf")
    architecture: str = _opt(
        "apslib",
        "the layers: apslib's U-Net family or fastmri.models.Unet's ('fastMRI U-Net' names)",
        choices=ARCHITECTURES,
    )
    padding_mode: str | None = _opt(
        None,
        "padding of convolutions and blurs (default: circular, the only one the equivariant "
        "variants take; zeros for fastMRI's own U-Net)",
    )
    up_pad: str | None = _opt(
        None,
        "side of the decoder's k=2 conv padding (lpf/aps); default: the authors' form, "
        "top_left for lpf (transposed conv, then blur), bottom_right for aps",
        choices=UP_PADS,
    )
    up_blur_gain: float = _opt(
        1.0, "gain of the decoder's blur after zero insertion (lpf/aps): 1 (the authors') or 4"
    )
    activation: str | None = _opt(
        None,
        "the activation (default: relu; af-poly for variant af, whose af-relu is 'AF-ReLU')",
        choices=ACTIVATIONS,
    )
    norm: str | None = _opt(None, "the normalisation (default: batch; layer for AF)", choices=NORMS)
    temperature: float = _opt(1.0, "LPS: the Gumbel-softmax temperature of the first epoch")
    temperature_min: float = _opt(0.1, "LPS: the temperature's floor")
    temperature_decay: float = _opt(0.8, "LPS: the temperature's factor per epoch, in (0, 1]")
    straight_through: bool = _opt(
        False, "LPS: one-hot choices forward, the Gumbel-softmax weights' gradient backward"
    )
    loss: str = _opt("mse", "training loss", choices=LOSSES)
    lr: float = _opt(1e-3, f"Adam learning rate, in (0, {MAX_LR:g}]")
    epochs: int = _opt(50, "epochs (more than a finished run's continue it)")
    batch_size: int = _opt(16, "batch size per process")
    lr_step: int = _opt(5, "StepLR step (epochs)")
    lr_gamma: float = _opt(0.5, "StepLR factor")
    shift_augment: bool = _opt(False, "random circular shifts of input and target (DA)")
    subpixel_augment: bool = _opt(
        False, "random sub-pixel Fourier shifts in [0, 1) per axis of input and target (SDA)"
    )
    max_shift: int = _opt(16, "shifts in [-M, M-1] (DA and the validation equivariance loss)")
    clamp: float | None = _opt(
        None,
        "output clamp to [-C, C] (0: off; default: 6, the paper's, and off for variant af, "
        "whose sub-pixel equivariance a pointwise clamp would break)",
    )
    grad_clip: float | None = _opt(1.0, "gradient-norm clip (0: off)")
    seed: int = _opt(0, "seed of weights, shuffling, masks and shifts")
    init_from: str | None = _opt(
        None,
        "a run folder (or checkpoint.pt) whose model weights start this run instead of a random "
        "initialisation: fine-tuning, e.g. 'fastMRI U-Net APS' from a 'fastMRI U-Net' run (the same "
        "state_dict keys and shapes are needed)",
    )
    device: str = _opt("auto", "auto, cuda, cuda:1, mps or cpu")
    amp: bool = _opt(False, "bfloat16 autocast")
    channels_last: bool = _opt(False, "channels-last memory format")
    sync_bn: bool = _opt(False, "SyncBatchNorm under DDP (cuda)")
    workers: int = _opt(0, "DataLoader workers")
    data_root: str | None = _opt(
        None, "data root with singlecoil_train/ and singlecoil_val/", flag="--data", required=True
    )
    run_dir: str | None = _opt(
        None, "runs folder; this run goes to RUN_DIR/<slug of name>[-seed<N> for N > 0]", required=True
    )
    name: str | None = _opt(None, "run name (default: the paper-style name)")
    center_fractions: tuple[float, ...] = _opt((0.08,), "mask centre fractions")
    accelerations: tuple[int, ...] = _opt((4,), "mask accelerations")
    acquisition: str | None = _opt(None, "PD or PDFS only (default: both)")
    sample_fraction: float | None = _opt(None, "train and validate on this fraction of the slices")
    volume_fraction: float | None = _opt(None, "... or of the volumes")

    def __post_init__(self):
        # one type per field (a list of widths, a Path, 0 for "off"): equal configs compare equal
        self.center_fractions = tuple(float(c) for c in self.center_fractions)
        self.accelerations = tuple(int(a) for a in self.accelerations)
        for name in ("data_root", "run_dir", "init_from"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, str(value))
        if self.clamp is not None:
            self.clamp = float(self.clamp)
        if not self.grad_clip:
            self.grad_clip = None
        unet = self.unet_config()  # validates variant, depth, channels, filter size, criterion, forms
        if self.channels is not None:  # a tuple of ints, as the U-Net's config has them
            self.channels = unet.channels
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        for name in ("epochs", "batch_size", "lr_step"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr <= MAX_LR):
            raise ValueError(
                f"lr must be a finite number in (0, {MAX_LR:g}], got {self.lr!r} (the paper's is 1e-3)"
            )
        if not (self.lr_gamma > 0 and math.isfinite(self.lr_gamma)):
            raise ValueError(f"lr_gamma must be positive and finite, got {self.lr_gamma!r}")
        if int(self.max_shift) < 1:
            raise ValueError(f"max_shift must be >= 1, got {self.max_shift!r}")
        for name in ("clamp", "grad_clip"):
            value = getattr(self, name)
            if value and not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be positive and finite (0: off), got {value!r}")
        self._check_lps()
        if int(self.seed) < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed!r}")
        if int(self.workers) < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers!r}")
        self.max_shift, self.seed, self.workers = int(self.max_shift), int(self.seed), int(self.workers)
        if self.name is not None:
            slugify(self.name)

    def _check_lps(self) -> None:
        """The Gumbel-softmax schedule (epoch ``e``: ``max(temperature_min, temperature *
        temperature_decay**e)``, :func:`apslib.learned.temperature_at`); LPS's only."""
        for name in ("temperature", "temperature_min"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if not (isinstance(self.temperature_decay, (int, float)) and 0 < self.temperature_decay <= 1):
            raise ValueError(f"temperature_decay must be in (0, 1], got {self.temperature_decay!r}")
        if self.temperature_min > self.temperature:
            raise ValueError(
                f"temperature_min ({self.temperature_min:g}) must not exceed temperature "
                f"({self.temperature:g}): the temperature falls from the one to the other"
            )
        self.temperature, self.temperature_min = float(self.temperature), float(self.temperature_min)
        self.temperature_decay = float(self.temperature_decay)
        defaults = {f.name: f.default for f in fields(self)}
        changed = [
            k
            for k in ("temperature", "temperature_min", "temperature_decay", "straight_through")
            if getattr(self, k) != defaults[k]
        ]
        if changed and self.variant != "lps":
            raise ValueError(
                f"{', '.join(changed)} set the Gumbel-softmax of learnable polyphase sampling: they "
                f"apply to variant 'lps' (LPS, LPS-<j>) only, not to {self.variant!r}; leave them out"
            )

    def unet_config(self) -> UNetConfig:
        """The resolved :class:`~apslib.unet.UNetConfig` of this run's model."""
        channels = self.channels
        if channels is None:  # the paper's widths
            channels = tuple(64 * 2**k for k in range(max(int(self.depth), 0) + 1))
        return UNetConfig(
            variant=self.variant,
            depth=self.depth,
            channels=channels,
            filter_size=self.filter_size,
            criterion=self.criterion,
            padding_mode=self.padding_mode,
            up_pad=self.up_pad,
            up_blur_gain=self.up_blur_gain,
            architecture=self.architecture,
            activation=self.activation,
            norm=self.norm,
        ).resolve()

    def resolve(self) -> TrainConfig:
        """A copy with every value that depends on other fields filled in: ``channels``
        (the paper's widths for ``depth``), ``padding_mode``, ``up_pad``, ``activation`` and
        ``norm`` (the forms of the architecture and variant,
        :meth:`apslib.unet.UNetConfig.resolve`) and ``clamp`` (6.0, or 0.0 (off) for ``af``).
        Values given explicitly are kept; resolving twice changes nothing."""
        unet = self.unet_config()
        clamp = self.clamp if self.clamp is not None else (0.0 if self.variant == "af" else 6.0)
        return replace(
            self,
            channels=unet.channels,
            padding_mode=unet.padding_mode,
            up_pad=unet.up_pad,
            activation=unet.activation,
            norm=unet.norm,
            clamp=clamp,
        )

    @property
    def display_name(self) -> str:
        """``name``, or the paper-style name of the variant, blur and augmentation."""
        return self.name or model_name(
            self.variant,
            self.filter_size,
            self.shift_augment,
            self.subpixel_augment,
            self.architecture,
            self.activation,
        )

    @property
    def slug(self) -> str:
        return slugify(self.display_name)

    @property
    def run_path(self) -> Path:
        """``run_dir/<slug>`` (seed 0) or ``run_dir/<slug>-seed<k>``: :func:`run_slug`."""
        if self.run_dir is None:
            raise ValueError("TrainConfig.run_dir is not set: say where runs are written")
        return Path(self.run_dir).expanduser() / run_slug(self.display_name, self.seed)

    def to_dict(self) -> dict:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """The configuration stored by :meth:`to_dict`; unknown keys are refused."""
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(
                f"unknown training config field(s) {unknown}: written by another version of "
                "apslib? Upgrade apslib, or retrain the run"
            )
        return cls(**d)

    @classmethod
    def from_stored(cls, d: dict) -> TrainConfig:
        """The resolved configuration a run folder stored (:meth:`from_dict`), read the same
        way by every version since: a field added later takes its resolved default, and a
        ``clamp`` of ``None`` (stored resolved, so: off) is 0.0."""
        if d.get("clamp", 0.0) is None:
            d = {**d, "clamp": 0.0}
        return cls.from_dict(d).resolve()

    def identity(self) -> dict:
        """The fields that define the run (everything but :data:`RUNTIME_FIELDS`), resolved."""
        return {k: v for k, v in self.resolve().to_dict().items() if k not in RUNTIME_FIELDS}

    def replace(self, **changes) -> TrainConfig:
        return replace(self, **changes)

    def like(self, model: str, **changes) -> TrainConfig:
        """This configuration (data, sizes, schedule, run folder, seed) for the paper-style
        model name ``model`` (e.g. a candidate trained exactly like a reference run); a
        padding or decoder form that is only its architecture's default (given or resolved)
        takes the new one's."""
        keep = {k: v for k, v in self.to_dict().items() if k not in (*NAME_FIELDS, "name")}
        own = replace(self, padding_mode=None, up_pad=None, norm=None).unet_config()
        for key in ("padding_mode", "up_pad", "norm"):
            if keep[key] == getattr(own, key):
                keep[key] = None
        if keep["clamp"] == replace(self, clamp=None).resolve().clamp:
            keep["clamp"] = None
        return config_for(model, **{**keep, **changes})


def config_for(model: str, /, **overrides) -> TrainConfig:
    """The :class:`TrainConfig` of a paper model name (``"LPF-3"``, ``"Baseline + DA"``),
    with ``overrides`` (e.g. ``depth=3, channels=[8, 16, 32, 64], epochs=10``; ``name``
    renames the run)."""
    spec = parse_model_name(model)
    clash = set(spec) & set(overrides)
    if clash:
        raise ValueError(f"{sorted(clash)} come from the model name {model!r}; do not override them")
    overrides.setdefault("name", model_name(**spec))
    return TrainConfig(**spec, **overrides)


# --------------------------------------------------------------------------------------
# The CLI, generated from the fields
# --------------------------------------------------------------------------------------


def cli_flag(f) -> str:
    """The command-line flag of a :class:`TrainConfig` field (or its name)."""
    name = f if isinstance(f, str) else f.name
    meta = {g.name: g for g in fields(TrainConfig)}[name].metadata
    return meta.get("flag") or "--" + name.replace("_", "-")


def _cli_type(annotation) -> dict:
    """argparse keywords for a field's type: ``bool`` -> ``--x/--no-x``, ``tuple[T, ...]``
    -> one or more ``T``, ``X | None`` -> ``X``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction}
    if typing.get_origin(annotation) is tuple:
        return {"type": typing.get_args(annotation)[0], "nargs": "+"}
    return {"type": annotation}


def _default_text(f) -> str:
    d = f.default if f.default is not MISSING else None
    if d is None or d is False:
        return ""
    shown = " ".join(map(str, d)) if isinstance(d, tuple) else d
    return f" (default: {shown})"


def add_config_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add one option per :class:`TrainConfig` field to ``parser``, and ``--model`` (a paper
    name instead of ``--variant``/``--filter-size``/``--shift-augment``). Options left out
    are absent from the parsed namespace (the field keeps its default)."""
    hints = typing.get_type_hints(TrainConfig)
    model_group = parser.add_mutually_exclusive_group(required=True)
    model_group.add_argument(
        "--model",
        default=argparse.SUPPRESS,
        help="a model name instead of --variant/--filter-size/--shift-augment: the paper's "
        + ", ".join(repr(m) for m in PAPER_MODELS)
        + "; learned grids 'LPS', 'LPS-3'; alias-free 'AF', 'AF-ReLU'"
        + "; fastMRI's U-Net: 'fastMRI U-Net', 'fastMRI U-Net APS', 'fastMRI U-Net LPF-3'",
    )
    for f in fields(TrainConfig):
        meta = f.metadata
        flag = cli_flag(f)
        kwargs = {
            "dest": f.name,
            "default": argparse.SUPPRESS,
            **_cli_type(hints[f.name]),
            "help": meta.get("help", "") + _default_text(f),
        }
        if "action" not in kwargs:
            kwargs["metavar"] = {int: "N", float: "X"}.get(kwargs["type"], flag.lstrip("-").upper())
        if meta.get("choices"):
            kwargs["choices"] = meta["choices"]
            kwargs.pop("metavar", None)
        target = model_group if meta.get("group") == "model" else parser
        if meta.get("required"):
            kwargs["required"] = True
        target.add_argument(flag, **kwargs)
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of a namespace parsed with :func:`add_config_arguments`."""
    known = {f.name for f in fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in known}
    model = getattr(args, "model", None)
    if model is None:
        return TrainConfig(**given)
    clash = [cli_flag(k) for k in NAME_FIELDS if k in given]
    if clash:
        raise ValueError(
            f"--model {model!r} names the variant, blur and augmentation; drop "
            f"{'/'.join(clash)} (or use --variant)"
        )
    return config_for(model, **given)


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors (a missing option, ``abc`` where a number is
    expected) are one line, ``error: ...`` with where to find the options, and exit status
    2, instead of the whole usage text and the error."""

    def error(self, message: str):  # type: ignore[override]
        text = " ".join(message.split())
        self.exit(2, f"error: {text} (`{self.prog} --help` lists the options)\n")


def cli_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m apslib.training``: one option per :class:`TrainConfig`
    field, ``--model``, and the process options ``--threads``, ``--retrain``,
    ``--no-progress``."""
    ap = OneLineParser(
        prog="python -m apslib.training",
        description="Train one U-Net (the paper's Baseline, LPF-j, APS, APS-j, with or "
        "without shift augmentation; LPS-j; AF, AF-ReLU) on a fastMRI single-coil folder. A finished "
        "run is skipped unless --retrain; an unfinished one resumes. Under "
        "`torchrun --nproc_per_node N -m apslib.training ...` it uses DDP.",
        epilog="Exit status: 0 trained or already finished; 1 bad input (missing data, "
        "sizes the U-Net cannot take, another configuration or another process in the "
        "run folder, a damaged checkpoint); 3 the loss became NaN/inf (the last good "
        "checkpoint is kept); 130 interrupted (rerun the same command to resume).",
    )
    add_config_arguments(ap)
    ap.add_argument(
        "--threads", type=int, default=0, metavar="N", help="torch CPU threads (0: torch's default)"
    )
    ap.add_argument("--retrain", action="store_true", help="delete this run's files and start over")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap


def parse_cli(argv=None) -> tuple[TrainConfig, argparse.Namespace]:
    """The :class:`TrainConfig` and the parsed namespace of a command line."""
    args = cli_parser().parse_args(argv)
    return config_from_args(args), args

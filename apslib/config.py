"""The configuration of one training run (the paper's protocol by default)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from .runs import RUNTIME_FIELDS, model_name, parse_model_name, slugify
from .unet import UNetConfig

__all__ = ["TrainConfig", "config_for", "LOSSES", "RUNTIME_FIELDS"]

LOSSES = ("mse", "l1")


@dataclass
class TrainConfig:
    """One training run. Defaults: the paper's protocol and model sizes.

    ``criterion`` is the APS norm (``"l2"``, the paper's); ``loss`` the training loss
    (``"mse"``, the paper's, or ``"l1"``). ``channels=None`` means the paper's widths
    ``64 * 2**k`` for ``k = 0..depth``. ``clamp``/``grad_clip`` ``None`` (or 0) switch the
    output clamp / gradient clipping off. ``batch_size`` is per process under DDP.
    ``sample_fraction``/``volume_fraction``/``acquisition`` select a deterministic subset
    of both splits (see :func:`apslib.data.make_dataset`).
    """

    variant: str = "aps"
    filter_size: int = 1
    depth: int = 4
    channels: tuple[int, ...] | None = None
    criterion: str = "l2"
    padding_mode: str = "circular"
    loss: str = "mse"
    lr: float = 1e-3
    epochs: int = 50
    batch_size: int = 16
    lr_step: int = 5
    lr_gamma: float = 0.5
    shift_augment: bool = False
    max_shift: int = 16
    clamp: float | None = 6.0
    grad_clip: float | None = 1.0
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    channels_last: bool = False
    sync_bn: bool = False
    workers: int = 0
    data_root: str | None = None
    run_dir: str | None = None
    name: str | None = None
    center_fractions: tuple[float, ...] = (0.08,)
    accelerations: tuple[int, ...] = (4,)
    acquisition: str | None = None
    sample_fraction: float | None = None
    volume_fraction: float | None = None

    def __post_init__(self):
        if self.channels is None:
            self.channels = tuple(64 * 2 ** k for k in range(max(int(self.depth), 0) + 1))
        self.channels = tuple(int(c) for c in self.channels)
        self.center_fractions = tuple(float(c) for c in self.center_fractions)
        self.accelerations = tuple(int(a) for a in self.accelerations)
        for name in ("data_root", "run_dir"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, str(value))
        if not self.clamp:
            self.clamp = None
        if not self.grad_clip:
            self.grad_clip = None
        self.unet_config()  # validates variant, depth, channels, filter size, criterion
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        for name in ("epochs", "batch_size", "lr_step"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if not self.lr_gamma > 0:
            raise ValueError(f"lr_gamma must be positive, got {self.lr_gamma!r}")
        if int(self.max_shift) < 1:
            raise ValueError(f"max_shift must be >= 1, got {self.max_shift!r}")
        if self.clamp is not None and self.clamp < 0:
            raise ValueError(f"clamp must be positive (or None), got {self.clamp!r}")
        if self.grad_clip is not None and self.grad_clip < 0:
            raise ValueError(f"grad_clip must be positive (or None), got {self.grad_clip!r}")
        if int(self.seed) < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed!r}")
        if int(self.workers) < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers!r}")
        self.max_shift, self.seed, self.workers = int(self.max_shift), int(self.seed), int(self.workers)
        if self.name is not None:
            slugify(self.name)

    def unet_config(self) -> UNetConfig:
        return UNetConfig(variant=self.variant, depth=self.depth, channels=tuple(self.channels),
                          filter_size=self.filter_size, criterion=self.criterion,
                          padding_mode=self.padding_mode)

    @property
    def display_name(self) -> str:
        """``name``, or the paper-style name of the variant, blur and augmentation."""
        return self.name or model_name(self.variant, self.filter_size, self.shift_augment)

    @property
    def slug(self) -> str:
        return slugify(self.display_name)

    @property
    def run_path(self) -> Path:
        if self.run_dir is None:
            raise ValueError("TrainConfig.run_dir is not set: say where runs are written")
        return Path(self.run_dir).expanduser() / self.slug

    def to_dict(self) -> dict:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def identity(self) -> dict:
        """The fields that define the run (everything but :data:`RUNTIME_FIELDS`)."""
        return {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}

    def replace(self, **changes) -> "TrainConfig":
        return replace(self, **changes)


def config_for(name: str, **overrides) -> TrainConfig:
    """The :class:`TrainConfig` of a paper model name (``"LPF-3"``, ``"Baseline + DA"``),
    with ``overrides`` (e.g. ``depth=3, channels=[8, 16, 32, 64], epochs=10``)."""
    spec = parse_model_name(name)
    clash = set(spec) & set(overrides)
    if clash:
        raise ValueError(f"{sorted(clash)} come from the model name {name!r}; do not override them")
    return TrainConfig(**spec, name=model_name(**spec), **overrides)

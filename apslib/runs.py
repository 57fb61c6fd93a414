"""Run folders: the one home of everything about where a training run lives.

One run = one model trained with one :class:`~apslib.config.TrainConfig`, in
``run_dir/<slug of its name>/`` (``"Baseline + DA"`` -> ``baseline-da``)::

    config.json     the configuration (and the U-Net's)
    history.json    {"name", "done", "epochs_planned", "epochs_completed", "history": [...]}:
                    one record per epoch (epoch, train_loss, val_loss, val_equiv_mse,
                    val_psnr, lr, seconds, world_size)
    checkpoint.pt   the last completed epoch, written atomically (temp file + rename):
                    model, optimizer, scheduler, torch RNG states, epoch, config, history

Here: the model names (:func:`model_name`, :func:`parse_model_name`, :func:`slugify`;
``UNetConfig.name`` uses :func:`model_name` too), the file names, reading a run back
(:func:`read_run`, :func:`load_model`, :func:`history_frame`) and the skip/resume/fresh
plan of :func:`apslib.train.train`.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .device import resolve_device
from .unet import UNet, UNetConfig

if TYPE_CHECKING:
    from .config import TrainConfig

__all__ = [
    "PAPER_MODELS",
    "CONFIG_FILE",
    "HISTORY_FILE",
    "CHECKPOINT_FILE",
    "CHECKPOINT_FORMAT",
    "RUNTIME_FIELDS",
    "TrainingError",
    "RunConflictError",
    "RunResult",
    "model_name",
    "parse_model_name",
    "slugify",
    "read_run",
    "load_model",
    "history_frame",
    "plan_run",
]

PAPER_MODELS = ("Baseline", "LPF-3", "Baseline + DA", "APS", "APS-3")
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_FORMAT = 1

# Fields that may change between the calls of one run (where and how it runs, how long);
# every other field defines the run, and a mismatch is an error.
RUNTIME_FIELDS = ("name", "epochs", "data_root", "run_dir", "device", "workers",
                  "channels_last")


class TrainingError(RuntimeError):
    """A training run cannot go on; the message says why and what to do."""


class RunConflictError(TrainingError, ValueError):
    """The run folder holds a run with another configuration."""


# --------------------------------------------------------------------------------------
# Model names
# --------------------------------------------------------------------------------------

_NAME_RE = re.compile(r"^(baseline|lpf|aps)(?:\s*-?\s*(\d+))?(\s*[-+]\s*da)?$", re.IGNORECASE)


def model_name(variant: str, filter_size: int = 1, shift_augment: bool = False) -> str:
    """Paper-style name: ``Baseline``, ``LPF-3``, ``APS``, ``APS-2``, ``Baseline + DA``."""
    base = {"baseline": "Baseline", "lpf": "LPF", "aps": "APS"}[variant]
    name = f"{base}-{filter_size}" if filter_size > 1 or variant == "lpf" else base
    return f"{name} + DA" if shift_augment else name


def parse_model_name(name: str) -> dict:
    """``"APS-3"`` -> ``{"variant": "aps", "filter_size": 3, "shift_augment": False}``.

    Accepts the paper's names (``Baseline``, ``LPF-j``, ``Baseline + DA``, ``APS``,
    ``APS-j``, and ``+ DA`` after any of them), case-insensitively, and their slugs
    (``baseline-da``, ``aps-3``).
    """
    m = _NAME_RE.match(str(name).strip())
    if not m:
        raise ValueError(
            f"unknown model name {name!r}: use Baseline, LPF-<j>, APS, APS-<j> (j = blur "
            f"size 2..7), optionally followed by ' + DA'; the paper's five are {list(PAPER_MODELS)}")
    variant = m.group(1).lower()
    filter_size = int(m.group(2)) if m.group(2) else 1
    if variant == "baseline" and m.group(2):
        raise ValueError(f"{name!r}: the Baseline has no blur; use LPF-{m.group(2)}")
    if variant == "lpf" and filter_size < 2:
        raise ValueError(f"{name!r}: LPF needs a blur size >= 2, e.g. LPF-3")
    return {"variant": variant, "filter_size": filter_size, "shift_augment": bool(m.group(3))}


def slugify(name: str) -> str:
    """Folder name of a run: ``"Baseline + DA"`` -> ``"baseline-da"``."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")
    if not slug:
        raise ValueError(f"cannot make a folder name from {name!r}")
    return slug


# --------------------------------------------------------------------------------------
# Reading and planning a run folder
# --------------------------------------------------------------------------------------

@dataclass
class RunResult:
    """What :func:`train` did: ``skipped`` (already finished), the history, the folder."""

    name: str
    path: Path
    config: TrainConfig
    history: list = field(default_factory=list)
    done: bool = False
    skipped: bool = False
    seconds: float = 0.0

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}

    @property
    def train_seconds(self) -> float:
        """Wall time of all epochs of the run (over every call that trained it)."""
        return float(sum(r["seconds"] for r in self.history))

    def to_dict(self) -> dict:
        return {"name": self.name, "path": str(self.path), "done": self.done,
                "skipped": self.skipped, "seconds": round(self.seconds, 2),
                "train_seconds": round(self.train_seconds, 2), "final": self.final,
                "config": self.config.to_dict()}


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as err:
        raise TrainingError(f"cannot parse {path}: {err}. Delete the run folder "
                            f"{path.parent} or pass retrain=True (--retrain)") from err


def _normalise(d: dict) -> dict:
    return json.loads(json.dumps(d, default=str))


def read_run(path) -> dict:
    """``{"config": TrainConfig, "history": [...], "done": bool, "path": Path}`` of a run
    folder (config.json + history.json)."""
    from .config import TrainConfig

    path = Path(path)
    cfg = _read_json(path / CONFIG_FILE)
    if cfg is None:
        raise FileNotFoundError(f"no training run in {path} (no {CONFIG_FILE})")
    hist = _read_json(path / HISTORY_FILE) or {}
    return {"path": path, "config": TrainConfig.from_dict(cfg["config"]),
            "history": hist.get("history", []), "done": bool(hist.get("done", False)),
            "name": cfg.get("name", path.name)}


def _diff(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def plan_run(config: TrainConfig, path: Path, retrain: bool) -> str:
    """``"skip"``, ``"resume"`` or ``"fresh"`` for this run folder (all ranks agree: each
    reads the same files)."""
    cfg = _read_json(path / CONFIG_FILE)
    if cfg is None:
        return "fresh"
    if retrain:
        return "fresh"
    old = {k: v for k, v in cfg.get("config", {}).items() if k not in RUNTIME_FIELDS}
    diff = _diff(old, _normalise(config.identity()))
    if diff:
        raise RunConflictError(
            f"{path} holds a run of {cfg.get('name', '?')!r} with another configuration ("
            + "; ".join(diff) + "). Use another run_dir or name, or retrain=True (--retrain) "
            "to delete it and start over")
    old_root, new_root = cfg.get("config", {}).get("data_root"), config.data_root
    if old_root and new_root and Path(old_root).expanduser().resolve() != Path(new_root).expanduser().resolve():
        warnings.warn(f"{path} was trained on data_root {old_root}; now {new_root} is given "
                      "(fine if it is the same data moved; otherwise use another run_dir or "
                      "retrain)", stacklevel=3)
    hist = _read_json(path / HISTORY_FILE) or {}
    if hist.get("done") and len(hist.get("history", [])) >= config.epochs:
        return "skip"
    return "resume" if (path / CHECKPOINT_FILE).is_file() else "fresh"


def _history_doc(name: str, config: TrainConfig, history: list, done: bool,
                 error: str | None = None) -> dict:
    doc = {"name": name, "done": done, "epochs_planned": config.epochs,
           "epochs_completed": len(history), "history": history}
    if error:
        doc["error"] = error
    return doc


def _read_history(path: Path) -> list:
    doc = _read_json(path / HISTORY_FILE) or {}
    return doc.get("history", [])


def load_model(path, device: str | torch.device = "cpu") -> UNet:
    """The trained U-Net of a run folder (or a checkpoint file), in eval mode."""
    path = Path(path)
    ckpt_path = path / CHECKPOINT_FILE if path.is_dir() else path
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"no checkpoint {ckpt_path}: train the model first")
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    model = UNet(UNetConfig(**{**ckpt["unet"], "channels": tuple(ckpt["unet"]["channels"])}))
    model.load_state_dict(ckpt["model"])
    return model.to(resolve_device(device)).eval()


def history_frame(runs):
    """Long table of the histories of ``runs`` (:class:`RunResult`, run folders, or a
    mapping name -> either): one row per model and epoch, column ``model`` first."""
    import pandas as pd

    items = runs.items() if isinstance(runs, dict) else [(None, r) for r in runs]
    rows = []
    for key, run in items:
        if isinstance(run, RunResult):
            name, hist = run.name, run.history
        else:
            info = read_run(run)
            name, hist = info["name"], info["history"]
        rows += [{"model": key or name, **rec} for rec in hist]
    return pd.DataFrame(rows)

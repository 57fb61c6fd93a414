"""Run folders: the files of a training run, read back and verified, and the plan of a call.

One run = one model trained with one :class:`~apslib.training.config.TrainConfig`, in
``run_dir/<slug of its name>/`` (``"Baseline + DA"`` -> ``baseline-da``,
:func:`apslib.names.run_slug`)::

    config.json     format, apslib_version, name, slug, the resolved configuration, the U-Net's
    history.json    name, done, epochs planned/completed, "error" (if it stopped on one),
                    "history": one record per epoch (epoch, train_loss, val_loss,
                    val_equiv_mse, val_equiv_nmse, val_psnr, lr, seconds,
                    world_size)
    checkpoint.pt   the last completed epoch (atomic write): CHECKPOINT_KEYS
    .lock           while a process trains the run: pid, host, since, command

Here: the files (write, read, :func:`load_model`, :func:`history_frame`) and the
skip/resume/fresh plan (:func:`plan_run`); the folder itself and its lock are
:mod:`apslib.training.folder`'s. Every error is a
:class:`~apslib.training.errors.TrainingError` (``FileNotFoundError`` for a run that does
not exist) whose one-line message names the file and says what to do. A checkpoint is
verified wherever it is read (plan, resume, :func:`load_model`): a finished run with a
missing or corrupt checkpoint is an error, never "already finished". A folder whose run
never completed an epoch (no checkpoint, empty history) is replaced without ``retrain``.

``config.json`` and ``checkpoint.pt`` record the layout they follow (``format``,
:data:`RUN_FORMAT`) and the apslib version that wrote them; files of another layout (those
of apslib 0.1.0 record no version) are refused with one line saying to retrain.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import __version__
from ..device import resolve_device
from ..io import atomic_torch_save, atomic_write_json
from ..models import unet_from_config
from ..unet import UNetConfig
from .config import TrainConfig
from .errors import CheckpointError, RunConflictError, RunVersionError, TrainingError
from .folder import check_run_folder, writing

__all__ = [
    "CONFIG_FILE",
    "HISTORY_FILE",
    "CHECKPOINT_FILE",
    "RUN_FORMAT",
    "CHECKPOINT_KEYS",
    "RunResult",
    "prepare_run",
    "write_history",
    "read_history",
    "save_epoch",
    "read_checkpoint",
    "read_run",
    "load_model",
    "history_frame",
    "plan_run",
]

CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
CHECKPOINT_FILE = "checkpoint.pt"
RUN_FORMAT = 2  # the layout of config.json and checkpoint.pt (apslib 0.1.0 wrote 1)
CHECKPOINT_KEYS = (
    "format",
    "apslib_version",
    "epoch",
    "name",
    "config",
    "unet",
    "model",
    "optimizer",
    "scheduler",
    "rng",
    "history",
    "world_size",
)
RETRAIN_HINT = "--retrain (retrain=True)"


# ---- Files of a run folder -----------------------------------------------------------


@dataclass
class RunResult:
    """What :func:`apslib.training.train` did: ``skipped`` (already finished), the history, the folder."""

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
        return {
            "name": self.name,
            "path": str(self.path),
            "done": self.done,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 2),
            "train_seconds": round(self.train_seconds, 2),
            "final": self.final,
            "config": self.config.to_dict(),
        }


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as err:
        raise TrainingError(
            f"cannot parse {path}: {err}. Delete the run folder {path.parent} or pass {RETRAIN_HINT}"
        ) from err


def _check_format(doc, file: Path) -> None:
    """:class:`~apslib.training.errors.RunVersionError` unless ``doc`` (a stored
    ``config.json`` or checkpoint) follows :data:`RUN_FORMAT`; the one-line message names
    the version that wrote it and says to retrain."""
    doc = doc if isinstance(doc, dict) else {}
    version, found = doc.get("apslib_version"), doc.get("format")
    if version is None:
        raise RunVersionError(
            f"{file} was written by apslib 0.1.0, whose run folders apslib {__version__} does "
            f"not read: train the run again with {RETRAIN_HINT}"
        )
    if found != RUN_FORMAT:
        raise RunVersionError(
            f"{file} was written by apslib {version} in format {found!r}; apslib {__version__} "
            f"reads format {RUN_FORMAT}: train the run again with {RETRAIN_HINT}"
        )


def prepare_run(path: Path, config: TrainConfig, fresh: bool, **extra) -> None:
    """Start or continue a run in ``path``: a ``fresh`` run's old files go (the history
    first: a reader never sees a history without its checkpoint); ``config.json`` (format,
    version, name, slug, the resolved configuration, the U-Net's, ``extra``) is (re)written."""
    config = config.resolve()
    with writing(path):
        if fresh:
            for f in (HISTORY_FILE, CHECKPOINT_FILE):
                (path / f).unlink(missing_ok=True)
        atomic_write_json(
            path / CONFIG_FILE,
            {
                "format": RUN_FORMAT,
                "apslib_version": __version__,
                "name": config.display_name,
                "slug": config.slug,
                "config": config.to_dict(),
                "unet": config.unet_config().to_dict(),
                **extra,
            },
        )


def write_history(
    path: Path, config: TrainConfig, history: list, done: bool, error: str | None = None
) -> None:
    """``history.json`` of a run (``error``: why it stopped, when it did)."""
    doc = {
        "name": config.display_name,
        "done": done,
        "epochs_planned": config.epochs,
        "epochs_completed": len(history),
        "history": history,
    }
    if error:
        doc["error"] = error
    with writing(path, "fix it, then rerun the same command to resume"):
        atomic_write_json(path / HISTORY_FILE, doc)


def read_history(path) -> dict:
    """``history.json`` of a run folder (``{}`` when there is none)."""
    return _read_json(Path(path) / HISTORY_FILE) or {}


def save_epoch(path: Path, config: TrainConfig, state: dict, done: bool) -> None:
    """The checkpoint ``state`` (:data:`CHECKPOINT_KEYS` but ``format`` and
    ``apslib_version``, which are added; written atomically), then the history of a
    completed epoch."""
    state = {"format": RUN_FORMAT, "apslib_version": __version__, **state}
    with writing(path, "free space or fix permissions, then rerun the same command to resume"):
        atomic_torch_save(state, path / CHECKPOINT_FILE)
    write_history(path, config, state["history"], done)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    text = text.split(". ")[0]
    return f"{type(err).__name__}: {text[:120]}" if text else type(err).__name__


def read_checkpoint(path, *, mmap: bool = False) -> dict:
    """The verified checkpoint of a run folder (or a checkpoint file), on the CPU.

    ``FileNotFoundError`` when there is none; :class:`~apslib.training.errors.CheckpointError`
    (naming the file and saying to retrain) when it is truncated, corrupt or lacks keys;
    :class:`~apslib.training.errors.RunVersionError` when another version wrote it in
    another format.
    ``mmap=True`` maps the tensors instead of reading them (a cheap check of a large file).
    """
    path = Path(path)
    file = path / CHECKPOINT_FILE if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"no checkpoint {file}: train the model first")
    hint = f"train the run again with {RETRAIN_HINT}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about foreign pickles before failing
            ckpt = torch.load(file, map_location="cpu", weights_only=True, mmap=mmap)
    except MemoryError:
        raise
    except Exception as err:  # torch, zip and pickle errors of a damaged file all differ
        raise CheckpointError(
            f"{file} is unreadable, truncated or corrupt ({_first_line(err)}); {hint}"
        ) from err
    if not isinstance(ckpt, dict) or "format" not in ckpt:
        found = list(ckpt)[:4] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{file} is not an apslib checkpoint (found {found!r}); {hint}")
    _check_format(ckpt, file)
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{file} lacks {missing}; {hint}")
    if not isinstance(ckpt["history"], list) or len(ckpt["history"]) != ckpt["epoch"]:
        raise CheckpointError(f"{file}: its history does not match its epoch ({ckpt['epoch']}); {hint}")
    return ckpt


def read_run(path) -> dict:
    """``{"config": TrainConfig, "history": [...], "done": bool, "path": Path, "name"}`` of a
    run folder (config.json + history.json)."""
    path = Path(path)
    cfg = _read_json(path / CONFIG_FILE)
    if cfg is None:
        raise FileNotFoundError(f"no training run in {path} (no {CONFIG_FILE})")
    _check_format(cfg, path / CONFIG_FILE)
    hist = read_history(path)
    return {
        "path": path,
        "config": TrainConfig.from_stored(cfg["config"]),
        "history": hist.get("history", []),
        "done": bool(hist.get("done", False)),
        "name": cfg.get("name", path.name),
    }


def load_model(path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The trained U-Net of a run folder (or a checkpoint file), in eval mode: a
    :class:`~apslib.unet.UNet`, or for fastMRI's architecture an
    :class:`~apslib.convert.EquivariantFastMRIUnet` (:func:`apslib.models.unet_from_config`)."""
    ckpt = read_checkpoint(path)
    model = unet_from_config(UNetConfig.from_dict(ckpt["unet"]))
    model.load_state_dict(ckpt["model"])
    return model.to(resolve_device(device)).eval()


def history_frame(runs):
    """Long table of the histories of ``runs`` (:class:`RunResult`, run folders, or a
    mapping key -> either; a key is a model name or a ``(name, seed)`` pair): one row per
    model, seed and epoch, columns ``model`` and ``seed`` first."""
    import pandas as pd

    items = runs.items() if isinstance(runs, dict) else [(None, r) for r in runs]
    rows = []
    for key, run in items:
        if isinstance(run, RunResult):
            name, hist, seed = run.name, run.history, run.config.seed
        else:
            info = read_run(run)
            name, hist, seed = info["name"], info["history"], info["config"].seed
        if isinstance(key, tuple):
            key = key[0]
        rows += [{"model": key or name, "seed": seed, **rec} for rec in hist]
    return pd.DataFrame(rows)


# ---- The plan: skip, resume or start fresh -------------------------------------------


def _normalise(d: dict) -> dict:
    return json.loads(json.dumps(d, default=str))


def _diff(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def plan_run(config: TrainConfig, path: Path, retrain: bool, *, quiet: bool = False) -> str:
    """``"skip"``, ``"resume"`` or ``"fresh"`` for this run folder (all ranks agree: each
    reads the same files).

    Fresh: no run, ``retrain``, or a run that never completed an epoch (whatever its
    configuration or version). Otherwise a run of another format is a
    :class:`~apslib.training.errors.RunVersionError`, another configuration a
    :class:`~apslib.training.errors.RunConflictError`, and the checkpoint must verify
    (:func:`read_checkpoint`, tensors mapped, not read): a finished run is skipped, an
    unfinished one resumed. ``quiet`` drops the moved-data warning.
    """
    path = check_run_folder(path)
    cfg = _read_json(path / CONFIG_FILE)
    if cfg is None or retrain:
        return "fresh"
    hist = read_history(path)
    completed = len(hist.get("history", []))
    ckpt_file = path / CHECKPOINT_FILE
    if completed == 0 and not ckpt_file.exists():
        return "fresh"  # nothing to lose: a run that failed before its first epoch
    _check_format(cfg, path / CONFIG_FILE)
    old = _normalise(TrainConfig.from_stored(cfg.get("config", {})).identity())
    diff = _diff(old, _normalise(config.identity()))
    if diff:
        raise RunConflictError(
            f"{path} holds a run of {cfg.get('name', '?')!r} with another configuration ("
            + "; ".join(diff)
            + f"). Use another run_dir or name, or {RETRAIN_HINT} "
            "to delete it and start over"
        )
    old_root, new_root = cfg.get("config", {}).get("data_root"), config.data_root
    if (
        not quiet
        and old_root
        and new_root
        and Path(old_root).expanduser().resolve() != Path(new_root).expanduser().resolve()
    ):
        warnings.warn(
            f"{path} was trained on data_root {old_root}; now {new_root} is given "
            "(fine if it is the same data moved; otherwise use another run_dir or "
            "retrain)",
            stacklevel=3,
        )
    finished = bool(hist.get("done")) and completed >= config.epochs
    if not ckpt_file.exists():
        raise CheckpointError(
            f"{path}: {HISTORY_FILE} records {completed} completed epoch(s) but {CHECKPOINT_FILE} "
            f"is missing, so the run cannot be {'reported finished' if finished else 'resumed'}; "
            f"train it again with {RETRAIN_HINT}"
        )
    read_checkpoint(ckpt_file, mmap=True)
    return "skip" if finished else "resume"

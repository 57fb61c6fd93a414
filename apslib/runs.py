"""Run folders: the one home of everything about where a training run lives.

One run = one model trained with one :class:`~apslib.config.TrainConfig`, in
``run_dir/<slug of its name>/`` (``"Baseline + DA"`` -> ``baseline-da``)::

    config.json     the configuration (and the U-Net's)
    history.json    name, done, epochs planned/completed, "error" (if it stopped on one),
                    "history": one record per epoch (epoch, train_loss, val_loss,
                    val_equiv_mse, val_psnr, lr, seconds, world_size)
    checkpoint.pt   the last completed epoch (atomic write): CHECKPOINT_KEYS
    .lock           while a process trains the run: pid, host, since, command

Here: model names (:func:`model_name` <-> :func:`parse_model_name`, :func:`slugify`), the
files (write, read, :func:`load_model`, :func:`history_frame`), the skip/resume/fresh plan
(:func:`plan_run`) and the lock (:class:`RunLock`). Every error is a
:class:`TrainingError` (``FileNotFoundError`` for a run that does not exist) whose one-line
message names the file and says what to do. A checkpoint is verified wherever it is read
(plan, resume, :func:`load_model`): a finished run with a missing or corrupt checkpoint is
an error, never "already finished". A folder whose run never completed an epoch (no
checkpoint, empty history) is replaced without ``retrain``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
import uuid
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .device import resolve_device
from .io import atomic_torch_save, atomic_write_json
from .unet import UNet, UNetConfig

if TYPE_CHECKING:
    from .config import TrainConfig

__all__ = [
    "PAPER_MODELS",
    "CONFIG_FILE",
    "HISTORY_FILE",
    "CHECKPOINT_FILE",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_KEYS",
    "LOCK_FILE",
    "RUNTIME_FIELDS",
    "TrainingError",
    "RunConflictError",
    "RunFolderError",
    "RunLockedError",
    "CheckpointError",
    "RunResult",
    "model_name",
    "parse_model_name",
    "slugify",
    "check_run_folder",
    "prepare_run",
    "write_history",
    "read_history",
    "save_epoch",
    "read_checkpoint",
    "read_run",
    "load_model",
    "history_frame",
    "plan_run",
    "RunLock",
]

PAPER_MODELS = ("Baseline", "LPF-3", "Baseline + DA", "APS", "APS-3")
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
CHECKPOINT_FILE = "checkpoint.pt"
LOCK_FILE = ".lock"
CHECKPOINT_FORMAT = 1
CHECKPOINT_KEYS = (
    "format",
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
_MAX_FILTER = 7  # filters.MAX_FILTER_SIZE; names outside 1..7 are rejected here already

# Fields that may change between the calls of one run (where and how it runs, how long);
# every other field defines the run, and a mismatch is an error.
RUNTIME_FIELDS = ("name", "epochs", "data_root", "run_dir", "device", "workers", "channels_last")


class TrainingError(RuntimeError):
    """A training run cannot go on; the message says why and what to do."""


class RunConflictError(TrainingError, ValueError):
    """The run folder holds a run with another configuration."""


class RunFolderError(TrainingError):
    """The run folder cannot be used: it is a file, or it cannot be written."""


class RunLockedError(TrainingError):
    """Another process trains in this run folder."""


class CheckpointError(TrainingError):
    """A checkpoint is missing where one must be, unreadable, or of an unknown format."""


# ---- Model names ---------------------------------------------------------------------

_BASES = {"baseline": "Baseline", "lpf": "LPF", "aps": "APS"}
_NAME_RE = re.compile(r"^(baseline|lpf|aps)(?:\s*-?\s*(\d+))?(\s*[-+]\s*da)?$", re.IGNORECASE)


def model_name(variant: str, filter_size: int = 1, shift_augment: bool = False) -> str:
    """Paper-style name: ``Baseline``, ``LPF-3``, ``APS``, ``APS-2``, ``Baseline + DA``.

    ``LPF`` always carries its blur size (``LPF-1`` is the unblurred LPF U-Net); ``APS``
    only from 2 on. :func:`parse_model_name` reads every name this returns back.
    """
    if variant not in _BASES:
        raise ValueError(f"unknown variant {variant!r}: use one of {list(_BASES)}")
    base = _BASES[variant]
    name = f"{base}-{int(filter_size)}" if filter_size > 1 or variant == "lpf" else base
    return f"{name} + DA" if shift_augment else name


def parse_model_name(name: str) -> dict:
    """``"APS-3"`` -> ``{"variant": "aps", "filter_size": 3, "shift_augment": False}``.

    Accepts the paper's names (``Baseline``, ``LPF-j``, ``Baseline + DA``, ``APS``,
    ``APS-j``, and ``+ DA`` after any of them), case-insensitively, and their slugs
    (``baseline-da``, ``aps-3``); ``j`` is the blur size, 1..7.
    """
    m = _NAME_RE.match(str(name).strip())
    if not m:
        raise ValueError(
            f"unknown model name {name!r}: use Baseline, LPF-<j>, APS, APS-<j> (j = blur "
            f"size 1..{_MAX_FILTER}), optionally followed by ' + DA'; the paper's five are "
            f"{list(PAPER_MODELS)}"
        )
    variant = m.group(1).lower()
    filter_size = int(m.group(2)) if m.group(2) else 1
    if variant == "baseline" and m.group(2):
        raise ValueError(f"{name!r}: the Baseline has no blur; use LPF-{m.group(2)}")
    if variant == "lpf" and not m.group(2):
        raise ValueError(f"{name!r}: LPF needs its blur size, e.g. LPF-3")
    if not 1 <= filter_size <= _MAX_FILTER:
        raise ValueError(f"{name!r}: the blur size must be in 1..{_MAX_FILTER}")
    return {"variant": variant, "filter_size": filter_size, "shift_augment": bool(m.group(3))}


def slugify(name: str) -> str:
    """Folder name of a run: ``"Baseline + DA"`` -> ``"baseline-da"``."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")
    if not slug:
        raise ValueError(f"cannot make a folder name from {name!r}")
    return slug


# ---- Files of a run folder -----------------------------------------------------------


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


def check_run_folder(path) -> Path:
    """:class:`RunFolderError` if ``path`` or a folder above it is a file (nothing is
    created here)."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists() or p.is_symlink():
            if not p.is_dir():
                raise RunFolderError(
                    f"{p} is a file, not a folder: give --run-dir (run_dir) a "
                    "folder (it is created if missing)"
                )
            break
    return path


@contextmanager
def _writing(path: Path, then: str = "make it writable or choose another --run-dir (run_dir)"):
    """Turn an ``OSError`` of a write into a one-line :class:`RunFolderError`."""
    try:
        yield
    except (NotADirectoryError, FileExistsError) as err:
        raise RunFolderError(
            f"cannot create the run folder {path} ({err.strerror}): give --run-dir (run_dir) a folder"
        ) from err
    except OSError as err:  # permission denied, read-only file system, disk full
        what = err.strerror or type(err).__name__
        if err.filename and Path(err.filename) != path:
            what += f": {err.filename}"
        raise RunFolderError(f"cannot write in the run folder {path} ({what}): {then}") from err


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as err:
        raise TrainingError(
            f"cannot parse {path}: {err}. Delete the run folder {path.parent} or pass {RETRAIN_HINT}"
        ) from err


def prepare_run(path: Path, config: TrainConfig, fresh: bool, **extra) -> None:
    """Start or continue a run in ``path``: a ``fresh`` run's old files go (the history
    first: a reader never sees a history without its checkpoint); ``config.json`` (name,
    slug, the configuration, the U-Net's, ``extra``) is (re)written."""
    with _writing(path):
        if fresh:
            for f in (HISTORY_FILE, CHECKPOINT_FILE):
                (path / f).unlink(missing_ok=True)
        atomic_write_json(
            path / CONFIG_FILE,
            {
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
    with _writing(path, "fix it, then rerun the same command to resume"):
        atomic_write_json(path / HISTORY_FILE, doc)


def read_history(path) -> dict:
    """``history.json`` of a run folder (``{}`` when there is none)."""
    return _read_json(Path(path) / HISTORY_FILE) or {}


def save_epoch(path: Path, config: TrainConfig, state: dict, done: bool) -> None:
    """The checkpoint ``state`` (:data:`CHECKPOINT_KEYS`; written atomically), then the
    history of a completed epoch."""
    with _writing(path, "free space or fix permissions, then rerun the same command to resume"):
        atomic_torch_save(state, path / CHECKPOINT_FILE)
    write_history(path, config, state["history"], done)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    text = text.split(". ")[0]
    return f"{type(err).__name__}: {text[:120]}" if text else type(err).__name__


def read_checkpoint(path, *, mmap: bool = False) -> dict:
    """The verified checkpoint of a run folder (or a checkpoint file), on the CPU.

    ``FileNotFoundError`` when there is none; :class:`CheckpointError` (naming the file and
    saying to retrain) when it is truncated, corrupt, of another format or lacks keys.
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
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"{file} is not an apslib checkpoint of format {CHECKPOINT_FORMAT} (found {found!r}); {hint}"
        )
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{file} lacks {missing}; {hint}")
    if not isinstance(ckpt["history"], list) or len(ckpt["history"]) != ckpt["epoch"]:
        raise CheckpointError(f"{file}: its history does not match its epoch ({ckpt['epoch']}); {hint}")
    return ckpt


def read_run(path) -> dict:
    """``{"config": TrainConfig, "history": [...], "done": bool, "path": Path, "name"}`` of a
    run folder (config.json + history.json)."""
    from .config import TrainConfig

    path = Path(path)
    cfg = _read_json(path / CONFIG_FILE)
    if cfg is None:
        raise FileNotFoundError(f"no training run in {path} (no {CONFIG_FILE})")
    hist = read_history(path)
    return {
        "path": path,
        "config": TrainConfig.from_dict(cfg["config"]),
        "history": hist.get("history", []),
        "done": bool(hist.get("done", False)),
        "name": cfg.get("name", path.name),
    }


def load_model(path, device: str | torch.device = "cpu") -> UNet:
    """The trained U-Net of a run folder (or a checkpoint file), in eval mode."""
    ckpt = read_checkpoint(path)
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
    configuration). Otherwise another configuration is a :class:`RunConflictError`, and the
    checkpoint must verify (:func:`read_checkpoint`, tensors mapped, not read): a finished
    run is skipped, an unfinished one resumed. ``quiet`` drops the moved-data warning.
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
    old = {k: v for k, v in cfg.get("config", {}).items() if k not in RUNTIME_FIELDS}
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


# ---- The lock: one training process per run folder -----------------------------------

_HELD: set[str] = set()  # tokens of the locks this process holds


def _read_lock(file: Path) -> dict:
    try:
        doc = json.loads(file.read_text())
    except (ValueError, OSError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except (OverflowError, ValueError):
        return False
    return True


class RunLock:
    """The lock file ``.lock`` of a run folder, held by one process for a run's life.

    :meth:`acquire` creates it with ``O_CREAT | O_EXCL`` (atomic: of two processes, one
    wins) and writes ``{"pid", "host", "since", "command", "token"}``. A lock held by a
    live process (or one on another host, which cannot be checked) raises
    :class:`RunLockedError` naming it; a lock of a dead process on this host (``os.kill``
    says no such pid), or one this process no longer holds (left by an interrupt), is
    removed with a warning. :meth:`release` removes the file only if it is still this
    lock. Use as ``with RunLock(path): ...``.
    """

    def __init__(self, path, command: str | None = None):
        self.path = Path(path)
        self.file = self.path / LOCK_FILE
        self.command = command if command is not None else " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
        self.token: str | None = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> RunLock:
        check_run_folder(self.path)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "command": self.command,
            "token": uuid.uuid4().hex,
        }
        with _writing(self.path):
            self.path.mkdir(parents=True, exist_ok=True)
            for _ in range(20):  # a stale lock removed: try again (another may win)
                try:
                    fd = os.open(self.file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    self._clear_stale()
                    continue
                with os.fdopen(fd, "w") as f:
                    json.dump(info, f)
                self.token = info["token"]
                _HELD.add(self.token)
                return self
        raise RunLockedError(
            f"cannot take the lock {self.file}: other processes keep taking it; "
            "stop them or use another --run-dir (run_dir)"
        )

    def _read(self) -> dict | None:
        for _ in range(10):  # its owner may be writing it right now
            if not self.file.exists():
                return None
            doc = _read_lock(self.file)
            if "pid" in doc:
                return doc
            time.sleep(0.05)
        raise RunLockedError(
            f"{self.path} is locked by {self.file}, which cannot be read; if no "
            "other training process uses this folder, delete that file and rerun"
        )

    def _clear_stale(self) -> None:
        other = self._read()
        if other is None:
            return  # released meanwhile
        pid, host = int(other.get("pid", -1)), str(other.get("host", "?"))
        ours = pid == os.getpid() and other.get("token") not in _HELD  # left by an interrupt
        if host == socket.gethostname() and (ours or not _pid_alive(pid)):
            state = "this process, no longer training" if ours else "no longer running"
            warnings.warn(
                f"removed the stale lock {self.file} of process {pid} on {host} ({state}; "
                f"it started {other.get('since', '?')})",
                stacklevel=4,
            )
            stale = self.file.with_name(f"{LOCK_FILE}.stale-{uuid.uuid4().hex}")
            try:
                os.replace(self.file, stale)  # atomic: of two recovering processes, one wins
            except FileNotFoundError:
                return
            if _read_lock(stale).get("token") != other.get("token"):
                os.replace(stale, self.file)  # a live lock taken meanwhile: put it back
            stale.unlink(missing_ok=True)
            return
        raise RunLockedError(
            f"{self.path} is in use by another training process (pid {pid} on {host}, since "
            f"{other.get('since', '?')}: {other.get('command', '?')}); wait for it to finish or "
            f"use another --run-dir (run_dir); if that process is gone, delete {self.file}"
        )

    def release(self) -> None:
        if self.token is None:
            return
        if _read_lock(self.file).get("token") == self.token:
            self.file.unlink(missing_ok=True)
        _HELD.discard(self.token)
        self.token = None

"""The plan of a training call: skip the run, resume it, or start it fresh.

Fresh: no run, ``retrain``, or a run that never completed an epoch (whatever its
configuration or version). Otherwise the run folder's files must be one run's
(:func:`apslib.training.runs.read_run_files`: checkpoint, ``config.json`` and
``history.json`` agree), that run must be the one asked for (the same identity,
:meth:`~apslib.training.config.TrainConfig.identity`) and, where the checkpoint records its
data's fingerprint, trained on the data given; a finished run is then skipped, an
unfinished one resumed. A run imported by :mod:`apslib.published` (weights only) is never
resumed: the refusal points to ``--init-from``. Every refusal is one line naming both sides.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from .config import TrainConfig
from .errors import RETRAIN_HINT, CheckpointError, RunConflictError
from .folder import check_run_folder
from .identity import describe_data, same_data
from .runs import CHECKPOINT_FILE, HISTORY_FILE, read_history, read_run_files

__all__ = ["plan_run"]


def _normalise(d: dict) -> dict:
    return json.loads(json.dumps(d, default=str))


def _diff(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def _same_root(a, b) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def plan_run(
    config: TrainConfig, path: Path, retrain: bool, *, quiet: bool = False, data: dict | None = None
) -> str:
    """``"skip"``, ``"resume"`` or ``"fresh"`` for this run folder (all ranks agree: each
    reads the same files).

    Raises :class:`~apslib.training.errors.RunConflictError` for an imported run, a run of
    another configuration, files of two runs in one folder, or (``data``: the fingerprint of the
    data given, :func:`~apslib.training.identity.data_fingerprint`) a run trained on other
    data; :class:`~apslib.training.errors.CheckpointError` /
    :class:`~apslib.training.errors.RunVersionError` for a damaged or foreign checkpoint (its
    tensors are mapped, not read). ``quiet`` drops the moved-data warning.
    """
    path = check_run_folder(path)
    if retrain:
        return "fresh"
    ckpt_file = path / CHECKPOINT_FILE
    if not ckpt_file.exists():
        hist = read_history(path)
        completed = len(hist.get("history", []))
        if completed == 0:
            return "fresh"  # nothing to lose: no run, or one that failed before its first epoch
        finished = bool(hist.get("done")) and completed >= config.epochs
        raise CheckpointError(
            f"{path}: {HISTORY_FILE} records {completed} completed epoch(s) but {CHECKPOINT_FILE} "
            f"is missing, so the run cannot be {'reported finished' if finished else 'resumed'}; "
            f"train it again with {RETRAIN_HINT}"
        )
    files = read_run_files(path)
    if files.imported is not None:
        source = files.imported.get("source") or "a state-dict file"
        raise RunConflictError(
            f"{path} holds {files.name!r}, imported from {source}: weights only, with no training "
            f"state to continue; to train from these weights, start a new run with --init-from {path} "
            f"(init_from) and another --name or --run-dir, or pass {RETRAIN_HINT} to replace the "
            "import with a run trained from scratch"
        )
    diff = _diff(_normalise(files.config.identity()), _normalise(config.identity()))
    if diff:
        raise RunConflictError(
            f"{path} holds a run of {files.name!r} with another configuration ("
            + "; ".join(diff)
            + f"). Use another run_dir or name, or {RETRAIN_HINT} to delete it and start over"
        )
    old_root, new_root = files.config.data_root, config.data_root
    if data and files.data and not same_data(data, files.data):
        raise RunConflictError(
            f"run {path.name} was trained on {describe_data(files.data)} (data_root {old_root}) but "
            f"{new_root} holds {describe_data(data)}: point --data (data_root) at the data it was "
            f"trained on, or pass {RETRAIN_HINT} to start over on this data"
        )
    if not quiet and not files.data and old_root and new_root and not _same_root(old_root, new_root):
        warnings.warn(
            f"{path} was trained on data_root {old_root}; now {new_root} is given "
            "(fine if it is the same data moved; otherwise use another run_dir or "
            "retrain)",
            stacklevel=3,
        )
    finished = files.done and files.epochs_done >= config.epochs
    return "skip" if finished else "resume"

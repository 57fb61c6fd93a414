"""What a run is: the fields that define it, the data it was trained on, and the one-line
description of two that differ.

A run's identity is its resolved configuration without the fields that may change between
its calls (:meth:`~apslib.training.config.TrainConfig.identity`: the model, seed, schedule,
augmentation, data selection ...) and the fingerprint of its data
(:func:`data_fingerprint`). ``config.json`` and ``checkpoint.pt`` both record it; resume,
skip and evaluation compare them (:func:`check_same_run`, :func:`check_history`, called by
:func:`apslib.training.runs.read_run_files` and :mod:`apslib.training.plan`) and refuse files
of two different runs with one line that names both sides (:func:`describe_difference`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from pathlib import Path

from .config import TrainConfig
from .errors import RETRAIN_HINT, RunConflictError

__all__ = [
    "FINGERPRINT_RECIPE",
    "data_fingerprint",
    "data_image_size",
    "same_data",
    "describe_data",
    "identity_difference",
    "describe_difference",
    "check_same_run",
    "check_history",
    "imported_record",
]

OTHER_RUN = f"pass {RETRAIN_HINT} to start over or point --run-dir at the run it belongs to"

_SHOWN = 4  # differing fields a message names
_SAMPLE = 4096  # bytes of each volume the fingerprint reads, twice
FINGERPRINT_RECIPE = 2  # what data_fingerprint hashes; fingerprints of another compare coarsely


def _datasets(file: Path) -> list:
    """``[name, shape, dtype]`` of every top-level dataset of an HDF5 file (headers only;
    ``["unreadable"]`` for a file h5py cannot open: the fingerprint still works, and the
    data loader names the damage)."""
    import h5py

    try:
        with h5py.File(file, "r") as hf:
            return [
                [name, list(item.shape), str(item.dtype)]
                for name, item in sorted(hf.items())
                if isinstance(item, h5py.Dataset)
            ]
    except (OSError, ValueError, KeyError, RuntimeError):
        return ["unreadable"]


def _sample(file: Path, size: int) -> str:
    """SHA-256 of :data:`_SAMPLE` bytes from the middle and the end of a file."""
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for offset in (size // 2, max(size - _SAMPLE, 0)):
            f.seek(offset)
            digest.update(f.read(_SAMPLE))
    return digest.hexdigest()[:16]


def data_fingerprint(data_root) -> dict:
    """A cheap, stable fingerprint of the fastMRI data under ``data_root``: both splits'
    HDF5 volumes, sorted, each as ``(split/name, size in bytes, its datasets' shapes and
    dtypes, a hash of 4 KiB from its middle and 4 KiB from its end)``, hashed (SHA-256,
    16 hex digits).

    Only names, sizes, HDF5 headers and those samples are read (8 KiB of pixels per
    volume), and no path or time stamp enters it: the same data copied or moved elsewhere
    has the same fingerprint, while another volume, a missing one, another size of image
    or other pixels (in the sampled bytes) change it. Returns ``{"hash", "volumes",
    "bytes", "recipe"}`` (:func:`same_data` compares two)."""
    from ..data import SPLITS, split_dir, split_files

    root = Path(data_root).expanduser()
    entries = []
    for split in SPLITS:
        folder = split_dir(root, split)
        files = split_files(folder, warn=False) if folder.is_dir() else []
        for f in files:
            size = f.stat().st_size
            entries.append([f"{split}/{f.name}", size, _datasets(f), _sample(f, size)])
    digest = hashlib.sha256(json.dumps(entries, separators=(",", ":")).encode()).hexdigest()
    total = int(sum(e[1] for e in entries))
    return {"hash": digest[:16], "volumes": len(entries), "bytes": total, "recipe": FINGERPRINT_RECIPE}


def data_image_size(data_root, split: str = "train") -> list[int]:
    """``[height, width]`` of the images a model sees in ``split`` of ``data_root`` (one
    size per split, :func:`apslib.data.check_split`; cached): what a run records as the
    size it was trained on."""
    from ..data import check_split, split_dir

    info = check_split(split_dir(Path(data_root).expanduser(), split), expect_target=split != "test")
    return [int(v) for v in info.image_size]


def same_data(a: dict, b: dict) -> bool:
    """Whether two recorded fingerprints are of the same data: their hashes when both follow
    one recipe (``"recipe"``), else what every recipe records, the volumes and bytes."""
    if a.get("recipe") == b.get("recipe"):
        return a.get("hash") == b.get("hash")
    return (a.get("volumes"), a.get("bytes")) == (b.get("volumes"), b.get("bytes"))


def describe_data(fingerprint: dict | None) -> str:
    """``"12 volumes, 3.1 MB (fingerprint 0123abcd...)"``."""
    if not fingerprint:
        return "unrecorded data"
    mb = fingerprint.get("bytes", 0) / 1e6
    return f"{fingerprint.get('volumes', '?')} volumes, {mb:.3g} MB (fingerprint {fingerprint.get('hash')})"


def _normalise(d):
    return json.loads(json.dumps(d, default=str))


def identity_difference(a: TrainConfig, b: TrainConfig) -> list[str]:
    """The identity fields in which ``a`` and ``b`` differ, in the order
    :class:`TrainConfig` declares them (the model first); empty: the same run."""
    x, y = _normalise(a.identity()), _normalise(b.identity())
    return [
        f.name for f in fields(TrainConfig) if f.name in x or f.name in y if x.get(f.name) != y.get(f.name)
    ]


def _side(config: TrainConfig, keys: list[str]) -> str:
    """``"LPF-2 (variant 'lpf', filter_size 2)"``: the model's name (not the run's own
    name, which may be anything) and the values of ``keys``."""
    values = _normalise(config.resolve().to_dict())
    shown = ", ".join(f"{k} {values.get(k)!r}" for k in keys[:_SHOWN])
    more = f", and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else ""
    return f"{config.replace(name=None).display_name} ({shown}{more})"


def describe_difference(first: str, a: TrainConfig, second: str, b: TrainConfig) -> str | None:
    """``"<first> is LPF-2 (variant 'lpf', filter_size 2) but <second> asks for APS
    (variant 'aps', filter_size 1)"``, or ``None`` when ``a`` and ``b`` are the same run."""
    keys = identity_difference(a, b)
    if not keys:
        return None
    return f"{first} is {_side(a, keys)} but {second} asks for {_side(b, keys)}"


def check_same_run(run: str, first: str, a: TrainConfig, a_data, second: str, b: TrainConfig, b_data) -> None:
    """:class:`~apslib.training.errors.RunConflictError` (one line naming both sides) unless
    the files ``first`` (a checkpoint, configuration ``a``, data fingerprint ``a_data``) and
    ``second`` (``config.json``: ``b``, ``b_data``) of the run folder ``run`` are one run's:
    the same identity, and the same data where both record a fingerprint."""
    clash = describe_difference(first, a, second, b)
    if clash:
        raise RunConflictError(f"run {run}: {clash}: the checkpoint belongs to another run; {OTHER_RUN}")
    if a_data and b_data and not same_data(a_data, b_data):
        raise RunConflictError(
            f"run {run}: {first} was trained on {describe_data(a_data)} but {second} records "
            f"{describe_data(b_data)}: the checkpoint belongs to another run; {OTHER_RUN}"
        )


def check_history(run: str, history_file: str, records: list, checkpoint_file: str, saved: list) -> None:
    """The records of ``history_file`` must be the start of the checkpoint's history
    ``saved`` (the checkpoint is written first, so the history may be behind it, never
    ahead of it or different): otherwise a one-line
    :class:`~apslib.training.errors.RunConflictError`."""
    ours, theirs = _normalise(records), _normalise(saved)
    for k, (a, b) in enumerate(zip(ours, theirs)):
        if a != b:
            raise RunConflictError(
                f"run {run}: {history_file} and {checkpoint_file} record different training from "
                f"epoch {k + 1} on (validation loss {a.get('val_loss')} vs {b.get('val_loss')}): they "
                f"come from two runs; {OTHER_RUN}"
            )
    if len(ours) > len(theirs):
        raise RunConflictError(
            f"run {run}: {history_file} records {len(ours)} epochs but {checkpoint_file} holds "
            f"{len(theirs)}: the checkpoint is older than the history, and resuming from it would "
            f"drop {len(ours) - len(theirs)} recorded epoch(s); put back the checkpoint of epoch "
            f"{len(ours)}, or {OTHER_RUN}"
        )


def imported_record(ckpt: dict, cfg_doc: dict | None, hist_doc: dict | None) -> dict | None:
    """The ``"imported"`` record of a run :mod:`apslib.published` wrote (weights only), from
    its checkpoint, ``config.json`` or ``history.json``, else ``None``; a checkpoint of
    epoch 0 without optimizer state is one (training saves only after an epoch)."""
    for doc in (ckpt, cfg_doc or {}, hist_doc or {}):
        if isinstance(doc.get("imported"), dict):
            return doc["imported"]
    if int(ckpt["epoch"]) == 0 and ckpt.get("optimizer") is None:
        return {}
    return None

"""Reconstructions of a fastMRI split by a trained run, written in fastMRI's submission format."""

from __future__ import annotations

import os
import re
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch

from ..data import (
    DataError,
    check_data_root,
    denormalize,
    make_dataset,
    model_image_size,
    split_dir,
)
from ..evaluate.models import ModelRun, predict

__all__ = [
    "RECONSTRUCTION_KEY",
    "RECONSTRUCT_SPLITS",
    "ReconstructResult",
    "load_run",
    "reconstruct_split",
    "is_complete",
]

RECONSTRUCTION_KEY = "reconstruction"  # the dataset fastmri.save_reconstructions writes
RECONSTRUCT_SPLITS = ("val", "test")
_TARGET_KEY = "reconstruction_esc"  # single-coil targets
_RUN_HINT = (
    "give --run a run folder (RUN_DIR/<model slug>, with config.json and checkpoint.pt) written by "
    "`python -m apslib.training` or `python -m apslib.published`"
)


@dataclass
class ReconstructResult:
    """What :func:`reconstruct_split` did: the volumes ``written`` and ``skipped`` (already
    complete), by file name, the slices it reconstructed and its wall time."""

    run: str
    split: str
    out_dir: Path
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    slices: int = 0
    seconds: float = 0.0


@dataclass
class _Volume:
    name: str  # the file name, also the output's
    indices: list[int]  # its slices in the dataset, in slice order
    shape: tuple[int, int, int]  # (slices, h, w) of its reconstruction


def _check_run(run) -> Path:
    """``run`` as a ``Path`` if it looks like a run folder; ``FileNotFoundError`` saying
    what one is otherwise (nothing is loaded here)."""
    from ..training.runs import CHECKPOINT_FILE, CONFIG_FILE

    path = Path(run).expanduser()
    if not path.is_dir():
        what = "a file" if path.exists() else "no such folder"
        raise FileNotFoundError(f"no trained run {path} ({what}): {_RUN_HINT}")
    missing = [f for f in (CONFIG_FILE, CHECKPOINT_FILE) if not (path / f).is_file()]
    if missing:
        raise FileNotFoundError(f"no trained run in {path} (no {' or '.join(missing)}): {_RUN_HINT}")
    return path


def load_run(run, device: str | torch.device = "auto") -> ModelRun:
    """The :class:`~apslib.evaluate.ModelRun` of a run folder (its model in eval mode on
    ``device``, its output clamp and configuration); ``FileNotFoundError`` saying what a
    run folder is when ``run`` is not one."""
    from ..device import resolve_device
    from ..training.runs import load_model, read_run

    path = _check_run(run)
    info = read_run(path)
    model = load_model(path, resolve_device(device) if isinstance(device, str) else device)
    return ModelRun(info["name"], model, info["config"].clamp, info["config"], path)


def is_complete(file, shape: Sequence[int]) -> bool:
    """Whether ``file`` is a finished reconstruction: an HDF5 file whose
    ``reconstruction`` dataset is float32 of ``shape`` (a truncated, foreign or
    half-written file is not)."""
    try:
        with h5py.File(file, "r") as hf:
            ds = hf.get(RECONSTRUCTION_KEY)
            return isinstance(ds, h5py.Dataset) and ds.dtype == np.float32 and ds.shape == tuple(shape)
    except (OSError, ValueError):
        return False


def _temp_name(name: str) -> str:
    return f".{name}.{secrets.token_hex(6)}.tmp"


def _remove_stale_temp_files(out_dir: Path, names: set[str]) -> None:
    """Delete the temporary files a killed writer left for the volumes ``names``."""
    pattern = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{12}\.tmp$")
    for p in out_dir.iterdir():
        m = pattern.match(p.name)
        if m and m.group("name") in names and p.is_file():
            p.unlink(missing_ok=True)


def _write_volume(out_dir: Path, name: str, volume: np.ndarray) -> Path:
    """``fastmri.save_reconstructions`` of one volume, atomically: written under a
    temporary name in ``out_dir``, flushed to disk, then renamed to ``name``."""
    from fastmri import save_reconstructions

    tmp = out_dir / _temp_name(name)
    try:
        save_reconstructions({tmp.name: volume}, out_dir)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out_dir / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out_dir / name


def _check_data(data_root, split: str) -> Path:
    root = Path(data_root).expanduser()
    if not root.is_dir():
        what = "a file" if root.exists() else "no such folder"
        raise FileNotFoundError(
            f"no data folder {root} ({what}): give --data a fastMRI single-coil root, the folder "
            f"that holds singlecoil_{split}/"
        )
    # The one data check: the split folder given as the root, a multicoil folder, unusable
    # volumes (the test split needs no target), each in one line (cached per file).
    return check_data_root(root, splits=(split,))


def _check_out_dir(out_dir, folder: Path) -> Path:
    out = Path(out_dir).expanduser()
    for p in (out, *out.parents):
        if p.exists() and not p.is_dir():
            raise NotADirectoryError(f"--out {out}: {p} is a file; give a folder for the reconstructions")
        if p.exists():
            break
    if out.exists() and out.resolve() == folder.resolve():
        raise ValueError(
            f"--out {out} is the data folder itself: reconstructions are named like their inputs "
            "and would overwrite them; give another folder"
        )
    return out


def _volumes(dataset, split: str) -> list[_Volume]:
    """The volumes of ``dataset`` (in file order) with their slice indices and output
    shapes; a file unfit for ``split`` raises :class:`~apslib.data.DataError`."""
    groups: dict[Path, list[int]] = {}
    for i, raw in enumerate(dataset.raw_samples):
        groups.setdefault(Path(raw.fname), []).append(i)
    out = []
    for path, indices in groups.items():
        indices.sort(key=lambda i: dataset.raw_samples[i].slice_ind)
        meta = dataset.raw_samples[indices[0]].metadata
        try:
            with h5py.File(path, "r") as hf:
                width = int(hf["kspace"].shape[-1])
                target = hf[_TARGET_KEY].shape[-2:] if _TARGET_KEY in hf else None
                mask = hf["mask"].shape if "mask" in hf else None
        except (OSError, KeyError) as err:
            raise DataError(f"cannot read fastMRI volume {path}: {type(err).__name__}: {err}") from err
        if split == "test" and mask is None:
            raise DataError(
                f"{path} has no 'mask': a test-split volume holds undersampled k-space and its sampling "
                "mask (as fastMRI's singlecoil_test files); a fully sampled volume belongs to --split val, "
                "which masks it as apslib's evaluation does"
            )
        if split == "test" and mask is not None and mask[-1] != width:
            raise DataError(
                f"{path}: its mask has {mask[-1]} columns but its k-space {width}; the file is damaged"
            )
        if split == "val" and mask is not None:
            raise DataError(
                f"{path} carries a sampling mask: its k-space is undersampled already, so --split val "
                "would mask it twice; reconstruct it with --split test"
            )
        crop = model_image_size(target, meta.get("recon_size", (0, 0)), width)
        out.append(_Volume(path.name, indices, (len(indices), *crop)))
    return out


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="slice", disable=not enabled, file=sys.stderr, leave=False)


def reconstruct_split(
    run,
    data_root,
    split: str,
    out_dir,
    *,
    batch_size: int = 8,
    device: str | torch.device = "auto",
    seed: int = 0,
    center_fractions: Sequence[float] | None = None,
    accelerations: Sequence[int] | None = None,
    workers: int = 0,
    progress: bool = True,
) -> ReconstructResult:
    """Reconstruct every volume of one split of a fastMRI single-coil folder with a
    trained run, and write them in fastMRI's format (``fastmri.save_reconstructions``):
    ``out_dir/<input file name>``, dataset ``reconstruction``, float32
    ``(slices, h, w)``, in image units (the network's output, clamped as in training,
    times the input's ``std`` plus its ``mean``) at the target's size (320x320 for knee).

    Args:
        run: a run folder (anything :func:`apslib.training.load_model` loads: every apslib
            U-Net, a trained ``"fastMRI U-Net"`` and its conversions, the published one
            :mod:`apslib.published` writes) or a loaded :class:`~apslib.evaluate.ModelRun`.
        data_root: the folder that holds ``singlecoil_<split>/``.
        split: ``"val"``: fully sampled k-space, undersampled here with the masks apslib's
            evaluation uses (seeded by the file name, as fastMRI's; the run's
            ``center_fractions``/``accelerations`` unless given), so the numbers are
            apslib's; ``"test"``: fastMRI's test layout, k-space already undersampled and its
            ``mask`` in the file (used as it is, as fastMRI's own inference does).
        out_dir: the output folder (created; must not be the data folder).
        batch_size: slices per forward pass (batches never mix volumes).
        device: ``"auto"`` (cuda, then mps, then cpu), or a device.
        seed: the evaluation seed given to the data pipeline, as ``load_val``'s; the fixed
            validation masks depend on the file name only.
        workers: DataLoader workers.
        progress: a progress bar (tqdm) on stderr.

    Resumable: a volume whose output is already complete (:func:`is_complete`) is skipped,
    and each output is written atomically (temporary name, fsync, rename), so an interrupted
    call leaves whole files only; run one call per output folder at a time.
    """
    start = time.perf_counter()
    if split not in RECONSTRUCT_SPLITS:
        raise ValueError(f"--split must be one of {RECONSTRUCT_SPLITS}, got {split!r}")
    if isinstance(batch_size, bool) or int(batch_size) < 1:
        raise ValueError(f"--batch-size must be an integer >= 1, got {batch_size!r}")
    if not isinstance(run, ModelRun):
        _check_run(run)
    root = _check_data(data_root, split)
    out = _check_out_dir(out_dir, split_dir(root, split))
    model_run = run if isinstance(run, ModelRun) else load_run(run, device)
    cfg = model_run.config
    dataset = make_dataset(
        root,
        split,
        mask=split == "val",
        random_masks=False,
        center_fractions=center_fractions or getattr(cfg, "center_fractions", (0.08,)),
        accelerations=accelerations or getattr(cfg, "accelerations", (4,)),
        seed=seed,
        multiple=2**model_run.depth,
    )
    volumes = _volumes(dataset, split)
    result = ReconstructResult(model_run.name, split, out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(f"cannot create --out {out} ({err.strerror}): give a folder you can write") from err
    _remove_stale_temp_files(out, {v.name for v in volumes})
    pending = []
    for v in volumes:
        if is_complete(out / v.name, v.shape):
            result.skipped.append(v.name)
        else:
            pending.append(v)
    if pending:
        batches = [
            v.indices[i : i + batch_size] for v in pending for i in range(0, len(v.indices), batch_size)
        ]
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=workers)
        by_index = {i: (v, k) for v in pending for k, i in enumerate(v.indices)}
        buffers: dict[str, np.ndarray] = {}
        done: dict[str, int] = {}
        total = sum(len(v.indices) for v in pending)
        with _progress(total, f"{model_run.name} {split}", progress) as bar:
            for indices, batch in zip(batches, loader):
                pred = predict(model_run, batch.image.unsqueeze(1), batch_size=len(indices))
                images = denormalize(pred[:, 0], batch.mean, batch.std).float().numpy()
                for i, image in zip(indices, images):
                    vol, k = by_index[i]
                    buf = buffers.setdefault(vol.name, np.zeros(vol.shape, dtype=np.float32))
                    if image.shape != buf.shape[1:]:
                        raise DataError(f"{vol.name}: slice {k} is {image.shape}, the volume {buf.shape[1:]}")
                    buf[k] = image
                    done[vol.name] = done.get(vol.name, 0) + 1
                    if done[vol.name] == len(vol.indices):
                        _write_volume(out, vol.name, buffers.pop(vol.name))
                        result.written.append(vol.name)
                bar.update(len(indices))
        result.slices = total
    result.seconds = time.perf_counter() - start
    return result

"""A data root: its split folders, the embedded dataset's manifest, its constant slices.

:func:`check_data_root` is the one entry check of the loaders: the root is a folder that
holds ``singlecoil_<split>`` folders (a split folder given in its place is named as such,
and so is a multicoil download), an embedded dataset is complete (its manifest, written
last by :func:`apslib.data.synthesize_dataset`, lists every file at its size), and every
split passes :func:`apslib.data.check_split`. Real fastMRI folders have no manifest and
are checked by their files alone.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from pathlib import Path

from .common import MANIFEST, SPLITS, SYNTH_COMMAND, MissingDataError, split_dir
from .splits import check_split

__all__ = ["check_data_root", "constant_slices", "read_manifest", "manifest_problem", "synth_command"]


def read_manifest(root) -> dict | None:
    """The embedded dataset's manifest in ``root`` (``None``: none, or unreadable)."""
    try:
        content = json.loads((Path(root) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return content if isinstance(content, dict) else None


def manifest_problem(root, manifest: dict | None) -> str | None:
    """Why the embedded dataset in ``root`` is incomplete, or ``None`` if every file its
    manifest lists is there at the size it records."""
    if manifest is None:
        return f"its manifest {MANIFEST} is unreadable"
    if manifest.get("state") == "writing":
        return "its writer stopped before it finished"
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return f"its manifest {MANIFEST} lists no files"
    missing, wrong = [], []
    for rel, nbytes in sorted(files.items()):
        p = Path(root) / rel
        if not p.is_file():
            missing.append(rel)
        elif p.stat().st_size != nbytes:
            wrong.append(rel)
    parts = []
    if missing:
        parts.append(f"{len(missing)} of {len(files)} volumes missing, e.g. {missing[0]}")
    if wrong:
        parts.append(f"{len(wrong)} volumes not as written, e.g. {wrong[0]}")
    return "; ".join(parts) or None


def synth_command(root, manifest: dict | None = None) -> str:
    """The command that (re)writes the embedded dataset in ``root``, with the arguments its
    manifest records."""
    cmd = SYNTH_COMMAND.format(path=shlex.quote(str(root)))
    params = (manifest or {}).get("params")
    if isinstance(params, dict):
        flags = dict(
            size="--size",
            train_volumes="--train-volumes",
            val_volumes="--val-volumes",
            slices_per_volume="--slices",
            seed="--seed",
        )
        cmd += "".join(f" {flag} {params[key]}" for key, flag in flags.items() if key in params)
    return cmd


def _check_manifest(root: Path) -> None:
    if not (root / MANIFEST).exists():
        return
    manifest = read_manifest(root)
    problem = manifest_problem(root, manifest)
    if problem:
        raise MissingDataError(
            f"incomplete embedded dataset in {root} ({problem}): rerun the synth command "
            f"`{synth_command(root, manifest)}`"
        )


def _missing_split(root: Path, split: str) -> str:
    folder = split_dir(root, split)
    if root.is_dir() and root.name.startswith(("singlecoil_", "multicoil_")):
        return (
            f"{root} is a split folder, not a data root (no {folder.name}/ in it): pass the parent "
            f"folder {root.parent}, the one that holds singlecoil_train/ and singlecoil_val/"
        )
    if (root / f"multicoil_{split}").is_dir():
        return (
            f"{root} holds multicoil_{split}/, fastMRI's multicoil data: apslib reads single-coil data "
            f"(singlecoil_{split}/); use fastMRI's single-coil download"
        )
    if root.is_dir() and any(p.suffix == ".h5" for p in root.iterdir()):
        return (
            f"no fastMRI data folder {folder}: {root} holds .h5 files itself; a data root holds them "
            "in singlecoil_train/ and singlecoil_val/ (pass the parent folder if this is one split)"
        )
    return (
        f"no fastMRI data folder {folder}. Create the embedded dataset with "
        f"`{SYNTH_COMMAND.format(path=root)}` (or run notebooks/00_data.ipynb with data_root set to "
        "it), or point data_root at a real fastMRI single-coil folder that holds singlecoil_train/ "
        "and singlecoil_val/."
    )


def check_data_root(path, splits: Sequence[str] = SPLITS) -> Path:
    """Check that ``path`` is a fastMRI single-coil data root whose ``splits`` are usable.

    Raises :class:`MissingDataError` (a ``FileNotFoundError``) for a missing folder (naming
    the command that writes the embedded dataset), a split folder passed as the root, a
    multicoil download, an incomplete embedded dataset or a split without volumes, and
    :class:`DataError` for an unusable volume (:func:`apslib.data.check_split`; train and
    val need targets). Returns ``path`` as an absolute ``Path``.
    """
    root = Path(path).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise MissingDataError(
            f"the data root {root} is a file: give the folder that holds singlecoil_train/ and "
            "singlecoil_val/"
        )
    _check_manifest(root)
    for split in splits:
        folder = split_dir(root, split)
        if not folder.is_dir():
            raise MissingDataError(_missing_split(root, split))
        check_split(folder, expect_target=split != "test")
    return root


def constant_slices(data_root, split: str = "val") -> set[tuple[str, int]]:
    """``(file name, slice index)`` of the slices of a split whose k-space or target is
    constant (all zero, say), where NMSE and PSNR are undefined; the file name is the
    ``fname`` of :class:`apslib.data.MRISample`. Checks the root (cached) on the way."""
    root = check_data_root(data_root, splits=(split,))
    return check_split(split_dir(root, split), expect_target=split != "test").constant_slices

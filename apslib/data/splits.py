"""A split folder checked as a whole: every volume (once, cached), the entries it skips,
the role of each file in the split, one image size across volumes.

:func:`check_split` is what the loaders (:func:`apslib.data.make_dataset`,
:func:`apslib.data.check_data_root`) and ``python -m apslib.data info`` call;
:func:`split_files` lists a split's HDF5 files without checking them. Entries that are not
HDF5 (a README, a sub-folder, a git LFS pointer) are skipped with one :class:`DataWarning`
per folder that counts and names them; constant slices are warned about once per folder.
Every error is one line naming the file and saying what to do.
"""

from __future__ import annotations

import sys
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from . import cache
from .common import SYNTH_COMMAND, DataError, DataWarning, MissingDataError
from .validate import LFS, TARGET_KEY, VolumeInfo, cached_volume, checked_volume, entry_kind, one_line

__all__ = ["SplitInfo", "check_split", "split_files"]

_warned: set[tuple] = set()
_PROGRESS_FROM = 16  # volumes to read before a progress bar is worth showing


@dataclass(frozen=True)
class SplitInfo:
    """What :func:`check_split` found in a split folder: its volumes (sorted by name) and
    the entries it skipped, as ``(name, why)``."""

    folder: Path
    volumes: tuple[VolumeInfo, ...]
    skipped: tuple[tuple[str, str], ...] = ()

    @property
    def slices(self) -> int:
        return sum(v.slices for v in self.volumes)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.volumes[0].image_size

    @property
    def constant_slices(self) -> set[tuple[str, int]]:
        """``(file name, slice index)`` of every constant slice of the split."""
        return {(v.name, i) for v in self.volumes for i in v.constant_slices}


def _scan_folder(folder: Path, strict: bool) -> tuple[list[Path], list[tuple[str, str]]]:
    """The HDF5 files of ``folder`` (sorted) and the skipped entries ``(name, why)``; with
    ``strict``, a broken link or an unreadable file raises instead of being skipped."""
    try:
        entries = sorted(folder.iterdir())
    except OSError as err:
        cause = err.strerror or one_line(err)
        raise DataError(f"cannot list {folder} ({cause}): fix its permissions") from err
    volumes: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for p in entries:
        try:
            why = entry_kind(p)
        except DataError:
            if strict:
                raise
            why = "unreadable"
        if why is None:
            volumes.append(p)
        else:
            skipped.append((p.name, why))
    return volumes, skipped


def _describe_skipped(skipped, limit: int = 5) -> str:
    shown = ", ".join(f"{name} ({why})" for name, why in skipped[:limit])
    return shown + (f" and {len(skipped) - limit} more" if len(skipped) > limit else "")


def _entries(n: int) -> str:
    return f"{n} {'entry' if n == 1 else 'entries'}"


def _lfs_advice(skipped) -> str:
    lfs = sum(why == LFS for _, why in skipped)
    if not lfs:
        return ""
    what = "it is a git LFS pointer" if len(skipped) == 1 else f"{lfs} of them are git LFS pointers"
    return f"; {what}, not the data: run `git lfs pull` in their repository"


def _warn_once(key: tuple, message: str) -> None:
    if key in _warned:
        return
    _warned.add(key)
    warnings.warn(message, DataWarning, stacklevel=4)


def _warn_skipped(folder: Path, skipped) -> None:
    if skipped:
        _warn_once(
            ("skipped", str(folder.resolve()), tuple(skipped)),
            f"skipping {_entries(len(skipped))} of {folder} that {'is' if len(skipped) == 1 else 'are'} "
            f"not an HDF5 volume: "
            f"{_describe_skipped(skipped)}{_lfs_advice(skipped)} (a split folder should hold only "
            "fastMRI .h5 volumes)",
        )


def _no_volumes(folder: Path, skipped) -> str:
    if not skipped:
        return (
            f"no HDF5 volumes in {folder} (the folder is empty): put the split's fastMRI .h5 files "
            f"there, or write the embedded dataset with `{SYNTH_COMMAND.format(path=folder.parent)}`"
        )
    if all(why == LFS for _, why in skipped):
        n = len(skipped)
        what = f"all {n} of its entries are git LFS pointers" if n > 1 else "its entry is a git LFS pointer"
        return (
            f"no HDF5 volumes in {folder}: {what}, not the data; run `git lfs pull` in their repository "
            "to fetch the volumes"
        )
    return (
        f"no HDF5 volumes in {folder}: {_entries(len(skipped))} skipped, {_describe_skipped(skipped)}"
        f"{_lfs_advice(skipped)}; put the split's fastMRI .h5 files there"
    )


def split_files(folder, warn: bool = True) -> list[Path]:
    """The HDF5 files of a split folder, sorted, without checking them; anything else is
    skipped (with ``warn``, one :class:`DataWarning` per folder that names them)."""
    folder = Path(folder)
    volumes, skipped = _scan_folder(folder, strict=False)
    if warn:
        _warn_skipped(folder, skipped)
    return volumes


def _check_role(folder: Path, info: VolumeInfo) -> None:
    """Refuse a volume that cannot serve train/val (no target, or masked k-space)."""
    path = folder / info.name
    test = f"{folder.parent / 'singlecoil_test'} (`python -m apslib.reconstruct --split test` reads it)"
    if info.is_test_file:
        raise DataError(
            f"{path} is a fastMRI test-split file (no target; it carries a sampling mask): it "
            f"belongs in {test}, not in {folder.name}"
        )
    if info.has_mask:
        raise DataError(
            f"{path} carries a sampling mask: its k-space is undersampled already and would be masked "
            f"twice; move it to {test}"
        )
    if info.target_shape is None:
        raise DataError(
            f"{path} has no target ({TARGET_KEY}): {folder.name} needs fully sampled volumes with "
            f"their targets; a file without one belongs in {test}"
        )


def _check_one_size(folder: Path, volumes: list[VolumeInfo], expect_target: bool) -> None:
    sizes = Counter(v.image_size for v in volumes)
    if len(sizes) < 2:
        return
    common, count = sizes.most_common(1)[0]
    odd = [v.name for v in volumes if v.image_size != common]
    others = ", ".join(sorted({"x".join(map(str, v.image_size)) for v in volumes if v.image_size != common}))
    more = f" and {len(odd) - 1} more" if len(odd) > 1 else ""
    what = "target sizes" if expect_target else "image sizes"
    raise DataError(
        f"{what} differ across {folder}: {common[0]}x{common[1]} in {count} volumes but {others} in "
        f"{odd[0]}{more}; a batch holds one size: remove the odd volumes or resize them to "
        f"{common[0]}x{common[1]}"
    )


def _ranges(indices) -> str:
    out, run = [], [indices[0], indices[0]]
    for i in indices[1:]:
        if i == run[1] + 1:
            run[1] = i
        else:
            out.append(run)
            run = [i, i]
    out.append(run)
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in out)


def _warn_constant(folder: Path, volumes: list[VolumeInfo]) -> None:
    flat = [v for v in volumes if v.constant_slices]
    if not flat:
        return
    count = sum(len(v.constant_slices) for v in flat)
    parts = [
        f"{v.name} slice{'s' if len(v.constant_slices) > 1 else ''} {_ranges(v.constant_slices)}"
        + (" (all)" if len(v.constant_slices) == v.slices else "")
        for v in flat
    ]
    shown = "; ".join(parts[:5]) + (f"; and {len(parts) - 5} more volumes" if len(parts) > 5 else "")
    _warn_once(
        ("constant", str(folder.resolve()), tuple((v.name, v.constant_slices) for v in flat)),
        f"{folder}: {count} constant slice{'s' if count > 1 else ''} (all-zero or flat k-space or "
        f"target), where NMSE and PSNR are undefined: {shown}; evaluation leaves them out of its "
        "means, training keeps them (apslib.data.constant_slices lists them)",
    )


def _progress(count: int, folder: Path):
    """A progress bar on a terminal's stderr while many volumes are read (a first check
    reads each volume once); cleared when done or failed."""
    from tqdm import tqdm

    quiet = True if count < _PROGRESS_FROM else None  # None: only on a terminal
    desc = f"checking {folder.name} (once)"
    return tqdm(total=count, desc=desc, unit="vol", file=sys.stderr, leave=False, disable=quiet)


def check_split(folder, expect_target: bool = True) -> SplitInfo:
    """Check every volume of a split folder (:func:`apslib.data.check_volume`, cached) and
    the folder as a whole:

    * entries that are not HDF5 are skipped with one :class:`DataWarning` naming them (git
      LFS pointers as such); no volume at all raises :class:`MissingDataError` saying why;
    * ``expect_target`` (train and val): every volume has its target and unmasked k-space
      (a fastMRI test-split file is refused as one);
    * every volume gives the model one image size (else the sizes and files are named);
    * constant slices are warned about once, naming them (the one warning evaluation gives
      about them too).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingDataError(f"no split folder {folder}: give the folder that holds the split's .h5 files")
    paths, skipped = _scan_folder(folder, strict=True)
    found = {p: cached_volume(folder, p) for p in paths}
    todo = [p for p, info in found.items() if info is None]
    try:
        with _progress(len(todo), folder) as bar:
            for p in todo:
                found[p] = checked_volume(folder, p)
                bar.update()
    finally:
        cache.save(folder)  # what was checked stays checked, even when a later file fails
    volumes = [info for info in found.values() if info is not None]
    if not volumes:
        raise MissingDataError(_no_volumes(folder, skipped))
    _warn_skipped(folder, skipped)
    if expect_target:
        for info in volumes:
            _check_role(folder, info)
    _check_one_size(folder, volumes, expect_target)
    _warn_constant(folder, volumes)
    return SplitInfo(folder, tuple(volumes), tuple(skipped))

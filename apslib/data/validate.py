"""One validator for a fastMRI single-coil volume: every problem named, each file read once.

:func:`check_volume` checks one file and returns its :class:`VolumeInfo` (shapes, header
size, acquisition, constant slices); :func:`apslib.data.check_split` runs it over a split
folder, and the loaders and ``python -m apslib.data info`` go through that. What a check
found is cached per file, keyed by its resolved path, size and ``mtime_ns``
(:mod:`apslib.data.cache`): a large dataset is read once, a changed file is checked again.

What a volume must be (fastMRI's single-coil layout):

* an HDF5 file with ``kspace``: complex, 3-D ``(slices, H, W)``, at least one slice, every
  value finite. 4-D k-space (slices, coils, H, W) is multicoil data, refused as such; 2-D
  k-space is one slice without its slice axis;
* ``ismrmrd_header``: ISMRMRD XML with the fields fastmri's ``SliceDataset`` reads;
* ``reconstruction_esc`` (the target), if present: real ``(slices, h, w)``, one slice per
  k-space slice, finite, no smaller than the crop the model sees, which must fit in the
  k-space. A file with a ``mask`` dataset holds undersampled k-space (fastMRI's test split);
* train and val need the target and unmasked k-space: :func:`apslib.data.check_split`
  checks that role.

Slices whose k-space or target is constant (all zero, say) are kept but recorded
(:attr:`VolumeInfo.constant_slices`): NMSE and PSNR are undefined there. Every error is a
:class:`DataError` whose message is one line naming the file (and slice) and what to do.
"""

from __future__ import annotations

import errno
import os
import stat
import xml.etree.ElementTree as etree
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from . import cache
from .common import HDF5_SIGNATURE, LFS_POINTER_PREFIX, DataError, decode_attr, has_hdf5_signature
from .volumes import ISMRMRD_NS

__all__ = ["TARGET_KEY", "VolumeInfo", "check_volume", "model_image_size"]

TARGET_KEY = "reconstruction_esc"
LFS = "a git LFS pointer"  # why entry_kind skips such a file
# the header fields fastmri's SliceDataset reads (under encoding/)
_HEADER_FIELDS = [
    (space, "matrixSize", axis) for space in ("encodedSpace", "reconSpace") for axis in ("x", "y", "z")
] + [("encodingLimits", "kspace_encoding_step_1", key) for key in ("center", "maximum")]


def model_image_size(target_shape, recon_size, kspace_width: int) -> tuple[int, int]:
    """The ``(h, w)`` crop ``UnetDataTransform`` takes (hence the model's image size): the
    target's shape, or the header's ``reconSpace`` without a target; cut to
    ``(W, W)`` when the k-space is narrower than that (fastmri's "FLAIR 203" rule)."""
    h, w = (int(v) for v in (target_shape if target_shape is not None else recon_size)[:2])
    if kspace_width < w:
        return int(kspace_width), int(kspace_width)
    return h, w


@dataclass(frozen=True)
class VolumeInfo:
    """What :func:`check_volume` found in one volume file.

    ``kspace_shape``: ``(slices, H, W)``; ``target_shape``: ``(slices, h, w)`` of
    ``reconstruction_esc`` or ``None`` (a test-split file); ``recon_size``: the header's
    ``reconSpace`` ``(h, w)``; ``has_mask``: the file carries a sampling ``mask`` (its
    k-space is undersampled); ``constant_slices``: indices of slices whose k-space or target
    is constant (e.g. all zero), where NMSE and PSNR are undefined."""

    name: str
    kspace_shape: tuple[int, int, int]
    target_shape: tuple[int, int, int] | None
    recon_size: tuple[int, int]
    acquisition: str
    has_mask: bool = False
    constant_slices: tuple[int, ...] = ()

    @property
    def slices(self) -> int:
        return self.kspace_shape[0]

    @property
    def image_size(self) -> tuple[int, int]:
        """The image size the model receives from this volume (:func:`model_image_size`)."""
        target = None if self.target_shape is None else self.target_shape[1:]
        return model_image_size(target, self.recon_size, self.kspace_shape[2])

    @property
    def is_test_file(self) -> bool:
        """A fastMRI test-split file: masked k-space and its mask, no target."""
        return self.has_mask and self.target_shape is None

    def to_dict(self) -> dict:
        return dict(
            name=self.name,
            kspace_shape=list(self.kspace_shape),
            target_shape=None if self.target_shape is None else list(self.target_shape),
            recon_size=list(self.recon_size),
            acquisition=self.acquisition,
            has_mask=self.has_mask,
            constant_slices=list(self.constant_slices),
        )

    @classmethod
    def from_dict(cls, d: dict) -> VolumeInfo:
        target = d["target_shape"]
        return cls(
            name=str(d["name"]),
            kspace_shape=tuple(int(v) for v in d["kspace_shape"]),  # type: ignore[arg-type]
            target_shape=None if target is None else tuple(int(v) for v in target),  # type: ignore[arg-type]
            recon_size=tuple(int(v) for v in d["recon_size"]),  # type: ignore[arg-type]
            acquisition=str(d["acquisition"]),
            has_mask=bool(d["has_mask"]),
            constant_slices=tuple(int(v) for v in d["constant_slices"]),
        )


def one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _redo(path: Path) -> str:
    return (
        f"download {path.name} again or re-create it (embedded data: rerun the synth command), "
        "or remove it from the split folder"
    )


# ---------------------------------------------------------------- the entries of a folder


def entry_kind(path: Path) -> str | None:
    """``None`` for an HDF5 file (a volume); otherwise why the entry is skipped. A broken
    link or an unreadable file raises :class:`DataError` (it was meant to be a volume)."""
    try:
        st = path.stat()
    except OSError as err:
        if path.is_symlink():
            if err.errno == errno.ELOOP:
                raise DataError(
                    f"{path} is a symbolic link that loops: point it at the volume or delete it"
                ) from err
            raise DataError(
                f"{path} is a broken symbolic link (to {os.readlink(path)}, which does not exist): "
                "restore its target (a disk not mounted?) or delete the link"
            ) from err
        raise DataError(f"cannot read {path} ({err.strerror or one_line(err)}): fix it or remove it") from err
    if stat.S_ISDIR(st.st_mode):
        return "a folder"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_size == 0:
        return "empty"
    try:
        with open(path, "rb") as f:
            head = f.read(max(len(LFS_POINTER_PREFIX), len(HDF5_SIGNATURE)))
    except OSError as err:
        raise DataError(
            f"cannot read {path} ({err.strerror or one_line(err)}): make it readable "
            "(chmod a+r) or remove it from the split folder"
        ) from err
    if head.startswith(HDF5_SIGNATURE):
        return None
    if head.startswith(LFS_POINTER_PREFIX):
        return LFS
    return None if has_hdf5_signature(path) else "not HDF5"


# ---------------------------------------------------------------- one volume


def _header_recon_size(path: Path, hf: h5py.File) -> tuple[int, int]:
    """The header's ``reconSpace`` ``(h, w)``, after checking every field fastmri reads."""
    from fastmri.data.mri_data import et_query

    if "ismrmrd_header" not in hf:
        raise DataError(
            f"{path} has no 'ismrmrd_header' dataset: fastmri reads the matrix sizes from that "
            "ISMRMRD XML header; write one (apslib.data.ismrmrd_header makes it) or download the file again"
        )
    raw = hf["ismrmrd_header"][()]
    try:
        root = etree.fromstring(raw.item() if isinstance(raw, np.ndarray) else raw)
    except (etree.ParseError, TypeError, ValueError) as err:
        raise DataError(f"{path}: its ismrmrd_header is not XML ({one_line(err)}): {_redo(path)}") from err
    values = {}
    for field in _HEADER_FIELDS:
        where = "encoding/" + "/".join(field)
        try:
            values[field] = int(et_query(root, ["encoding", *field]))
        except RuntimeError as err:  # fastmri's "Element not found"
            raise DataError(
                f"{path}: its ismrmrd_header lacks {where} in the ISMRMRD namespace {ISMRMRD_NS} "
                "(fastmri reads it): write the header with that namespace and field"
            ) from err
        except ValueError as err:
            raise DataError(f"{path}: its ismrmrd_header's {where} is not an integer: {_redo(path)}") from err
    return values[("reconSpace", "matrixSize", "x")], values[("reconSpace", "matrixSize", "y")]


def _check_kspace(path: Path, k) -> tuple[int, int, int]:
    if not isinstance(k, h5py.Dataset):
        raise DataError(f"{path}: its 'kspace' is an HDF5 group, not an array: {_redo(path)}")
    shape = tuple(int(v) for v in k.shape)
    dims = "x".join(map(str, shape))
    if len(shape) == 4:
        raise DataError(
            f"{path} is a multicoil file (k-space {dims}: slices x coils x height x width): apslib reads "
            "single-coil data; use fastMRI's single-coil download (singlecoil_train/, singlecoil_val/)"
        )
    if len(shape) == 2:
        raise DataError(
            f"{path} has 2-D k-space {dims} (one slice without the slice axis): fastMRI volumes are "
            f"(slices, height, width); store it as 1x{dims} (kspace[None]), and its target likewise"
        )
    if len(shape) != 3:
        raise DataError(
            f"{path} has {len(shape)}-D k-space {dims or '(a scalar)'}: a single-coil fastMRI volume "
            "is (slices, height, width)"
        )
    if not np.issubdtype(k.dtype, np.complexfloating):
        kind = "integer" if np.issubdtype(k.dtype, np.integer) else "real"
        raise DataError(
            f"{path} has {kind}-valued k-space (dtype {k.dtype}): fastMRI k-space is complex "
            "(complex64); store the complex k-space, not its magnitude or real part"
        )
    if shape[0] == 0:
        raise DataError(f"{path} has no slices (k-space {dims}): {_redo(path)}")
    if shape[1] == 0 or shape[2] == 0:
        raise DataError(f"{path} has empty slices (k-space {dims}): {_redo(path)}")
    return shape


def _check_target(path: Path, t, slices: int) -> tuple[int, int, int]:
    if not isinstance(t, h5py.Dataset):
        raise DataError(f"{path}: its '{TARGET_KEY}' is an HDF5 group, not an array: {_redo(path)}")
    shape = tuple(int(v) for v in t.shape)
    dims = "x".join(map(str, shape))
    if len(shape) != 3:
        raise DataError(
            f"{path}: its target {TARGET_KEY} is {len(shape)}-D ({dims}): it must be "
            "(slices, height, width) like the k-space"
        )
    if shape[0] != slices:
        raise DataError(
            f"{path}: its target has {shape[0]} slices but its k-space {slices}: the file is damaged; "
            f"{_redo(path)}"
        )
    if not np.issubdtype(t.dtype, np.floating):
        raise DataError(
            f"{path}: its target {TARGET_KEY} has dtype {t.dtype}: fastMRI targets are real "
            "magnitudes (float32); store them as such"
        )
    return shape


def _bad_values(path: Path, what: str, i: int, count: int, values: np.ndarray) -> DataError:
    n = int(values.size - np.count_nonzero(np.isfinite(values)))
    return DataError(
        f"{path}: slice {i} of its {what} holds {n} NaN or infinite values (the first bad slice of "
        f"{count}): training and evaluation would give NaN; {_redo(path)}"
    )


def _scan_slices(path: Path, k, t) -> tuple[int, ...]:
    """Refuse NaN/inf (naming the first bad slice); the indices of constant slices."""
    count = k.shape[0]
    constant = []
    for i in range(count):
        ks = k[i]
        if not np.isfinite(ks).all():
            raise _bad_values(path, "k-space", i, count, ks)
        flat = ks.reshape(-1)
        flat_slice = bool((flat == flat[0]).all())
        if t is not None:
            ts = t[i]
            if not np.isfinite(ts).all():
                raise _bad_values(path, f"target {TARGET_KEY}", i, count, ts)
            flat_slice = flat_slice or bool(ts.size == 0 or ts.max() == ts.min())
        if flat_slice:
            constant.append(i)
    return tuple(constant)


def _inspect(path: Path, hf: h5py.File) -> VolumeInfo:
    if "kspace" not in hf:
        keys = ", ".join(sorted(hf.keys())) or "nothing"
        raise DataError(
            f"{path} has no 'kspace' dataset (it holds {keys}): it is not a fastMRI volume; "
            "remove it from the split folder"
        )
    k = hf["kspace"]
    slices, H, W = _check_kspace(path, k)
    recon = _header_recon_size(path, hf)
    t = hf.get(TARGET_KEY)
    target = None if t is None else _check_target(path, t, slices)
    mask = hf.get("mask")
    if mask is not None and getattr(mask, "shape", None) and mask.shape[-1] != W:
        raise DataError(
            f"{path}: its mask has {mask.shape[-1]} columns but its k-space {W}: the file is damaged; "
            f"{_redo(path)}"
        )
    crop = model_image_size(None if target is None else target[1:], recon, W)
    source = f"target {TARGET_KEY}" if target is not None else "header's reconSpace"
    if crop[0] > H or crop[1] > W or (target is not None and (crop[0] > target[1] or crop[1] > target[2])):
        raise DataError(
            f"{path}: the image is cropped to its {source}, {crop[0]}x{crop[1]}, which is larger than "
            f"its k-space {H}x{W}{'' if target is None else f' or its target {target[1]}x{target[2]}'}: "
            f"{_redo(path)}"
        )
    return VolumeInfo(
        name=path.name,
        kspace_shape=(slices, H, W),
        target_shape=target,
        recon_size=recon,
        acquisition=decode_attr(hf.attrs.get("acquisition", "")),
        has_mask=mask is not None,
        constant_slices=_scan_slices(path, k, t),
    )


def _read_volume(path: Path) -> VolumeInfo:
    try:
        with h5py.File(path, "r") as hf:
            return _inspect(path, hf)
    except DataError:
        raise
    except Exception as err:  # h5py raises OSError, KeyError, ValueError, RuntimeError, ...
        raise DataError(
            f"cannot read fastMRI volume {path} ({type(err).__name__}: {one_line(err)}): it is truncated "
            f"or damaged; {_redo(path)}"
        ) from err


def _stat(path: Path) -> os.stat_result:
    try:
        return path.stat()
    except OSError as err:
        raise DataError(f"cannot read {path} ({err.strerror or one_line(err)}): fix it or remove it") from err


def cached_volume(folder: Path, path: Path) -> VolumeInfo | None:
    """The cached :class:`VolumeInfo` of ``path`` (a file of split folder ``folder``) if it
    was checked at its current resolved path, size and ``mtime_ns``; else ``None``."""
    record = cache.lookup(folder, path, _stat(path))
    if record is not None:
        try:
            info = VolumeInfo.from_dict(record)
            if info.name == path.name:
                return info
        except (KeyError, TypeError, ValueError):
            pass  # an entry of another layout: check the file again
    return None


def checked_volume(folder: Path, path: Path) -> VolumeInfo:
    """:func:`check_volume`'s checks of ``path`` through the cache of split folder ``folder``
    (read only when the cache has no entry for its current size and ``mtime_ns``)."""
    info = cached_volume(folder, path)
    if info is None:
        st = _stat(path)  # before reading: a file changed meanwhile is checked again next time
        info = _read_volume(path)
        cache.remember(folder, path, st, info.to_dict())
    return info


def check_volume(path) -> VolumeInfo:
    """Check one fastMRI single-coil volume file (see the module's list) and return what it
    holds; :class:`DataError` (one line naming the file) for anything unusable. Cached per
    resolved path, size and ``mtime_ns``."""
    path = Path(path)
    why = entry_kind(path)
    if why is not None:
        advice = "run `git lfs pull` in its repository" if why == LFS else _redo(path)
        raise DataError(f"{path} is not an HDF5 volume ({why}): {advice}")
    try:
        return checked_volume(path.parent, path)
    finally:
        cache.save(path.parent)

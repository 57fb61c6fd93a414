"""What every part of :mod:`apslib.data` shares: errors, names, folders, the HDF5 signature.

Conventions:

* **Acquisitions.** :data:`ACQUISITION_NAMES` maps each fastMRI acquisition attr
  (``CORPD_FBK``, ``CORPDFS_FBK``) to the short name of tables and figures (``PD``,
  ``PDFS``). It is the one list of acquisition names: :data:`ACQUISITIONS` and the aliases
  that :func:`apslib.data.resolve_acquisition` accepts are derived from it.
* **Folders.** A data root holds one folder per split, ``singlecoil_<split>``
  (:func:`split_dir`), as the real fastMRI single-coil download does.
* **HDF5 files** are recognised by their signature (:func:`has_hdf5_signature`), not by
  their name, so a truncated volume is still seen as one (and fails loudly).
* **String attrs** of HDF5 files come back as ``str``, ``bytes`` or ``numpy.bytes_``
  depending on how they were written: read every one through :func:`decode_attr`.
* **Errors**: :class:`DataError` for a file or folder that cannot be used (the message
  names it and says what to do, in one line); :class:`MissingDataError`, also a
  ``FileNotFoundError``, when a folder or its volumes are missing; :class:`DataWarning`
  for something skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = [
    "ACQUISITION_NAMES",
    "ACQUISITIONS",
    "SPLITS",
    "HDF5_SIGNATURE",
    "SYNTH_COMMAND",
    "MANIFEST",
    "LFS_POINTER_PREFIX",
    "DataError",
    "MissingDataError",
    "DataWarning",
    "split_dir",
    "has_hdf5_signature",
    "decode_attr",
]

# fastMRI acquisition -> the short name of tables and figures (the one list of both names)
ACQUISITION_NAMES = {"CORPD_FBK": "PD", "CORPDFS_FBK": "PDFS"}
ACQUISITIONS = tuple(ACQUISITION_NAMES)
SPLITS = ("train", "val")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
SYNTH_COMMAND = "python -m apslib.data synth --out {path}"
MANIFEST = "apslib_synth.json"  # the embedded dataset's record, in its data root
LFS_POINTER_PREFIX = b"version https://git-lfs"  # a git LFS pointer file, not the data


class DataError(RuntimeError):
    """A data file or folder that cannot be used; the message names it and says what to do."""


class MissingDataError(DataError, FileNotFoundError):
    """A data folder, or the volumes it should hold, is missing or incomplete (also a
    ``FileNotFoundError``, so callers that catch that keep working)."""


class DataWarning(UserWarning):
    """Something in a data folder was skipped (e.g. a file that is not HDF5)."""


def split_dir(root, split: str) -> Path:
    """The folder of one split under a data root: ``root/singlecoil_<split>``."""
    return Path(root) / f"singlecoil_{split}"


def has_hdf5_signature(path) -> bool:
    """True if ``path`` starts with the HDF5 signature (at 0 or a user-block offset).

    Unlike ``h5py.is_hdf5`` this does not try to open the file, so a truncated HDF5 file
    is still recognised as one (and then fails loudly instead of being skipped)."""
    try:
        with open(path, "rb") as f:
            offset = 0
            size = os.fstat(f.fileno()).st_size
            while offset + 8 <= size:
                f.seek(offset)
                if f.read(8) == HDF5_SIGNATURE:
                    return True
                offset = 512 if offset == 0 else offset * 2
    except OSError:
        return False
    return False


def decode_attr(value) -> str:
    """An HDF5 string attr as ``str``: ``bytes``/``numpy.bytes_`` are decoded as UTF-8
    (undecodable bytes replaced), a 0-d array is unwrapped, anything else goes through
    ``str`` (``None`` -> ``""``)."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value.item()
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):  # numpy.bytes_ is a bytes subclass
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)

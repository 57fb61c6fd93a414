"""One fastMRI single-coil volume file: the layout of the real knee files, written atomically.

* ``kspace``: complex64 ``(slices, H, W)`` with 2x readout oversampling along ``H``
  (:func:`kspace_shape`: 320 -> (640, 368), as in the knee files);
* ``reconstruction_esc``: float32 ``(slices, h, w)``, the target;
* ``ismrmrd_header``: ISMRMRD XML with the fields ``fastmri.data.SliceDataset`` reads, in
  the ISMRMRD default namespace (:func:`ismrmrd_header`);
* attrs ``acquisition``, ``max`` (target volume max), ``norm``, ``patient_id``.

:func:`write_fastmri_volume` builds the file in memory and writes it through
:func:`apslib.io.atomic_open` (temporary file, then rename): no timestamps, so the same
arrays give the same bytes, and a failed write keeps the old file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from ..io import atomic_open

__all__ = ["ISMRMRD_NS", "kspace_shape", "ismrmrd_header", "write_fastmri_volume"]

ISMRMRD_NS = "http://www.ismrm.org/ISMRMRD"


def kspace_shape(size: int) -> tuple[int, int]:
    """k-space ``(H, W)`` for a ``size x size`` target: 2x readout oversampling along H and
    a phase-encoding width about 1.15x the target, made even (320 -> (640, 368), as in
    the real knee files)."""
    width = int(round(size * 1.15))
    width += width % 2
    return 2 * size, width


def ismrmrd_header(
    encoded: Sequence[int],
    recon: Sequence[int],
    *,
    fov_mm: Sequence[float] = (440.0, 253.0, 3.0),
    recon_fov_mm: Sequence[float] = (220.0, 220.0, 3.0),
    num_slices: int = 1,
    protocol: str = "CORPD_FBK",
    vendor: str = "apslib synthetic",
) -> str:
    """An ISMRMRD XML header with the fields ``fastmri.data.SliceDataset`` reads.

    ``encoded`` = k-space ``(H, W)`` (``encodedSpace/matrixSize/x, y``; z = 1), ``recon`` =
    target ``(h, w)`` (``reconSpace/matrixSize``). ``kspace_encoding_step_1`` has
    ``center = W // 2`` and ``maximum = W - 1``, so fastmri computes no column padding.
    The default namespace is the ISMRMRD one, which fastmri's queries require.
    """
    H, W = (int(v) for v in encoded[:2])
    h, w = (int(v) for v in recon[:2])

    def size3(x, y, z):
        return f"<x>{x}</x><y>{y}</y><z>{z}</z>"

    def fov3(v):
        return size3(*(f"{float(a):.4f}" for a in v))

    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<ismrmrdHeader xmlns="{ISMRMRD_NS}" '
        'xmlns:xs="http://www.w3.org/2001/XMLSchema">\n'
        f"  <acquisitionSystemInformation><systemVendor>{vendor}</systemVendor>"
        "<receiverChannels>1</receiverChannels></acquisitionSystemInformation>\n"
        "  <experimentalConditions><H1resonanceFrequency_Hz>127724000"
        "</H1resonanceFrequency_Hz></experimentalConditions>\n"
        "  <encoding>\n"
        f"    <encodedSpace><matrixSize>{size3(H, W, 1)}</matrixSize>"
        f"<fieldOfView_mm>{fov3(fov_mm)}</fieldOfView_mm></encodedSpace>\n"
        f"    <reconSpace><matrixSize>{size3(h, w, 1)}</matrixSize>"
        f"<fieldOfView_mm>{fov3(recon_fov_mm)}</fieldOfView_mm></reconSpace>\n"
        "    <encodingLimits>\n"
        f"      <kspace_encoding_step_1><minimum>0</minimum><maximum>{W - 1}</maximum>"
        f"<center>{W // 2}</center></kspace_encoding_step_1>\n"
        "      <kspace_encoding_step_2><minimum>0</minimum><maximum>0</maximum>"
        "<center>0</center></kspace_encoding_step_2>\n"
        f"      <slice><minimum>0</minimum><maximum>{max(num_slices - 1, 0)}</maximum>"
        f"<center>{num_slices // 2}</center></slice>\n"
        "    </encodingLimits>\n"
        "    <trajectory>cartesian</trajectory>\n"
        "  </encoding>\n"
        f"  <measurementInformation><protocolName>{protocol}</protocolName>"
        "</measurementInformation>\n"
        "</ismrmrdHeader>\n"
    )


def write_fastmri_volume(
    path,
    kspace: np.ndarray,
    target: np.ndarray,
    *,
    acquisition: str,
    patient_id: str,
    header: str | None = None,
    extra_attrs: dict | None = None,
) -> Path:
    """Write one single-coil volume in the fastMRI layout, atomically.

    ``kspace``: complex ``(slices, H, W)``, stored complex64; ``target``: ``(slices, h, w)``,
    stored float32 as ``reconstruction_esc``. Attrs: ``acquisition``, ``max`` (target
    volume max), ``norm`` (its l2 norm), ``patient_id``, plus ``extra_attrs``. The file
    carries no timestamps, so the same arrays give the same bytes, and it is written with
    :func:`apslib.io.atomic_open` (a temporary file, fsync, rename): a reader never sees a
    half-written volume.
    """
    path = Path(path)
    kspace = np.ascontiguousarray(kspace, dtype=np.complex64)
    target = np.ascontiguousarray(target, dtype=np.float32)
    if kspace.ndim != 3 or target.ndim != 3 or kspace.shape[0] != target.shape[0]:
        raise ValueError(
            f"need kspace (slices, H, W) and target (slices, h, w) with the same "
            f"number of slices; got {kspace.shape} and {target.shape}"
        )
    if header is None:
        header = ismrmrd_header(
            kspace.shape[1:], target.shape[1:], num_slices=kspace.shape[0], protocol=acquisition
        )
    # The file is built in memory (HDF5's core driver, no backing file) and its image written
    # through atomic_open. Not h5py.File(fileobj): h5py's file-object driver lays the file
    # out differently from the default (sec2) driver, so the bytes would change; the core
    # driver's image is byte for byte what h5py.File(path, "w") writes.
    with h5py.File(path.name, "w", driver="core", backing_store=False) as hf:
        hf.create_dataset("ismrmrd_header", data=header, track_times=False)
        hf.create_dataset("kspace", data=kspace, track_times=False)
        hf.create_dataset("reconstruction_esc", data=target, track_times=False)
        hf.attrs["acquisition"] = acquisition
        hf.attrs["max"] = float(target.max())
        hf.attrs["norm"] = float(np.linalg.norm(target.astype(np.float64)))
        hf.attrs["patient_id"] = patient_id
        for key, value in (extra_attrs or {}).items():
            hf.attrs[key] = value
        hf.flush()
        image = hf.id.get_file_image()
    with atomic_open(path, "wb") as f:
        f.write(image)
    return path

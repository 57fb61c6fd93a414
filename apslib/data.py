"""Data: fastMRI-format single-coil volumes, loaders, and out-of-distribution image sets.

Three parts, one module:

1. **Embedded dataset.** :func:`synthesize_dataset` (CLI: ``python -m apslib.data synth
   --out DIR``) writes single-coil volumes in the exact HDF5 layout of the real fastMRI
   knee files (``kspace`` complex64 with 2x readout oversampling, ``reconstruction_esc``
   float32 target, an ISMRMRD XML header, attrs ``acquisition``/``max``/``norm``/
   ``patient_id``) into ``DIR/singlecoil_train`` and ``DIR/singlecoil_val``. The anatomy is
   real: the MNI152 brain template and its grey/white-matter maps that ship inside
   nilearn, resampled through random rigid transforms (with a mild scale), a scalp/skull
   shell derived from the brain mask, smooth bias fields, smooth phase and complex noise.
   Two acquisitions as in fastMRI: ``CORPD_FBK`` (proton-density-like) and
   ``CORPDFS_FBK`` (fat-suppressed-like: the fat layer is dark, grey/white contrast
   differs, lower SNR). Train and validation volumes sample disjoint axial bands of the
   template, so no anatomy is shared between the splits.

2. **Loading.** :func:`make_loaders` / :func:`make_dataset` build on fastmri's own
   ``SliceDataset``, ``UnetDataTransform`` and ``RandomMaskFunc``; the same code reads a
   real fastMRI single-coil folder. Samples are :class:`MRISample` (fastmri's
   ``UnetSample`` fields plus ``acquisition``); images are ``(H, W)`` per sample, so a
   batch is ``(B, H, W)``: add the channel axis with ``batch.image.unsqueeze(1)``.

3. **Out-of-distribution sets.** :func:`photographs`, :func:`noise_images`,
   :func:`shepp_logan`, :func:`image_folder` return :class:`ImageSet` iterables of
   ``(1, size, size)`` tensors normalised like the model input.

Bad input fails loudly: a missing data folder names the command that creates it
(:func:`check_data_root`); a file without the HDF5 signature in a split folder (a stray
``.gitkeep`` or ``README``) is **skipped with a** :class:`DataWarning` naming it; a
truncated or malformed HDF5 file raises :class:`DataError` naming it; a target size that
the U-Net cannot take (not a multiple of ``2**depth``) raises ``ValueError`` before any
training starts (:func:`check_multiple`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Sequence

import h5py
import numpy as np
import torch
from fastmri.data import SliceDataset
from fastmri.data.subsample import RandomMaskFunc
from fastmri.data.transforms import UnetDataTransform, normalize_instance

from .io import atomic_write_json

__all__ = [
    "ACQUISITIONS",
    "ACQUISITION_NAMES",
    "denormalize",
    "SPLITS",
    "DataError",
    "DataWarning",
    "SynthParams",
    "synthesize_dataset",
    "synth_volume",
    "write_fastmri_volume",
    "ismrmrd_header",
    "kspace_shape",
    "load_anatomy",
    "check_data_root",
    "split_files",
    "check_multiple",
    "resolve_acquisition",
    "MRISample",
    "SliceTransform",
    "FastMRISliceDataset",
    "make_dataset",
    "make_loaders",
    "seed_mask_worker",
    "inspect_slice",
    "example_targets",
    "dataset_summary",
    "ImageSet",
    "to_model_input",
    "photographs",
    "noise_images",
    "shepp_logan",
    "image_folder",
    "ood_sets",
    "PHOTO_NAMES",
    "main",
]

ACQUISITIONS = ("CORPD_FBK", "CORPDFS_FBK")
# fastMRI acquisition -> the short name of tables and figures (the one list of both names)
ACQUISITION_NAMES = {"CORPD_FBK": "PD", "CORPDFS_FBK": "PDFS"}
_ACQ_ALIASES = {short: full for full, short in ACQUISITION_NAMES.items()}
SPLITS = ("train", "val")
ISMRMRD_NS = "http://www.ismrm.org/ISMRMRD"
MANIFEST = "apslib_synth.json"
SYNTH_PATTERN = "file_synth_{split}_{index:04d}.h5"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
SYNTH_COMMAND = "python -m apslib.data synth --out {path}"
_FORMAT_VERSION = 1


class DataError(RuntimeError):
    """A data file or folder that cannot be used; the message names it and says what to do."""


class DataWarning(UserWarning):
    """Something in a data folder was skipped (e.g. a file that is not HDF5)."""


def _split_dir(root: Path, split: str) -> Path:
    return Path(root) / f"singlecoil_{split}"


# --------------------------------------------------------------------------------------
# 1. The embedded dataset
# --------------------------------------------------------------------------------------

def kspace_shape(size: int) -> tuple[int, int]:
    """k-space ``(H, W)`` for a ``size x size`` target: 2x readout oversampling along H and
    a phase-encoding width about 1.15x the target, made even (320 -> (640, 368), as in
    the real knee files)."""
    width = int(round(size * 1.15))
    width += width % 2
    return 2 * size, width


def ismrmrd_header(encoded: Sequence[int], recon: Sequence[int], *,
                   fov_mm: Sequence[float] = (440.0, 253.0, 3.0),
                   recon_fov_mm: Sequence[float] = (220.0, 220.0, 3.0),
                   num_slices: int = 1, protocol: str = "CORPD_FBK",
                   vendor: str = "apslib synthetic") -> str:
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


def write_fastmri_volume(path, kspace: np.ndarray, target: np.ndarray, *, acquisition: str,
                         patient_id: str, header: str | None = None,
                         extra_attrs: dict | None = None) -> Path:
    """Write one single-coil volume in the fastMRI layout, atomically.

    ``kspace``: complex ``(slices, H, W)``, stored complex64; ``target``: ``(slices, h, w)``,
    stored float32 as ``reconstruction_esc``. Attrs: ``acquisition``, ``max`` (target
    volume max), ``norm`` (its l2 norm), ``patient_id``, plus ``extra_attrs``. The file is
    written to a temporary name in the same folder and renamed, and carries no
    timestamps, so the same arrays give the same bytes.
    """
    path = Path(path)
    kspace = np.ascontiguousarray(kspace, dtype=np.complex64)
    target = np.ascontiguousarray(target, dtype=np.float32)
    if kspace.ndim != 3 or target.ndim != 3 or kspace.shape[0] != target.shape[0]:
        raise ValueError(f"need kspace (slices, H, W) and target (slices, h, w) with the same "
                         f"number of slices; got {kspace.shape} and {target.shape}")
    if header is None:
        header = ismrmrd_header(kspace.shape[1:], target.shape[1:], num_slices=kspace.shape[0],
                                protocol=acquisition)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with h5py.File(tmp, "w") as hf:
            hf.create_dataset("ismrmrd_header", data=header, track_times=False)
            hf.create_dataset("kspace", data=kspace, track_times=False)
            hf.create_dataset("reconstruction_esc", data=target, track_times=False)
            hf.attrs["acquisition"] = acquisition
            hf.attrs["max"] = float(target.max())
            hf.attrs["norm"] = float(np.linalg.norm(target.astype(np.float64)))
            hf.attrs["patient_id"] = patient_id
            for key, value in (extra_attrs or {}).items():
                hf.attrs[key] = value
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


@dataclass(frozen=True)
class Anatomy:
    """Real MRI anatomy from nilearn's MNI152 templates (1 mm, voxel index = mm).

    ``maps``: float32 ``(4, X, Y, Z)`` = T1 template, grey matter, white matter, brain mask.
    ``dist``: float32 distance (mm) from the brain on a 2 mm grid (0 inside).
    ``center``: brain centroid (x, y) in voxels.
    """

    maps: np.ndarray
    dist: np.ndarray
    center: tuple[float, float]


@lru_cache(maxsize=1)
def load_anatomy() -> Anatomy:
    """Load the MNI152 template, GM/WM maps and brain mask that ship with nilearn (offline)."""
    from nilearn import datasets
    from scipy import ndimage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imgs = [datasets.load_mni152_template(resolution=1),
                datasets.load_mni152_gm_template(resolution=1),
                datasets.load_mni152_wm_template(resolution=1),
                datasets.load_mni152_brain_mask(resolution=1)]
    maps = np.stack([np.asarray(img.get_fdata(), dtype=np.float32) for img in imgs])
    mask = maps[3] > 0.5
    coarse = mask[::2, ::2, ::2]
    dist = ndimage.distance_transform_edt(~coarse, sampling=2.0).astype(np.float32)
    xs, ys = np.nonzero(mask.any(axis=2))
    return Anatomy(maps=maps, dist=dist, center=(float(xs.mean()), float(ys.mean())))


# Axial bands (template z, mm) each split samples from; 10 mm gaps between them exceed the
# largest through-plane excursion of a brain point under the +-3 degree tilts used.
_BANDS = {"train": ((26.0, 72.0), (118.0, 150.0)), "val": ((82.0, 108.0),)}
_MAX_TILT_DEG = 3.0
_MAX_INPLANE_DEG = 15.0
_SLICE_SPACING_MM = 2.0
_FOV_MM = 220.0
_SIGNAL_SCALE = 1e-4  # real single-coil knee targets peak around 1e-4

# Tissue signal per acquisition: csf, grey, white, skull, fat, skin, T1-texture weight.
_CONTRAST = {
    "CORPD_FBK": dict(csf=0.92, gm=0.86, wm=0.62, skull=0.04, fat=1.00, skin=0.55, t1=0.15,
                      noise=(0.015, 0.03), gain=1.0),
    "CORPDFS_FBK": dict(csf=1.00, gm=0.70, wm=0.42, skull=0.03, fat=0.07, skin=0.30, t1=-0.10,
                        noise=(0.05, 0.09), gain=0.45),
}


def _rotation(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = (math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay),
                              math.cos(az), math.sin(az))
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rx @ ry @ rz


def _smooth_field(rng: np.random.Generator, coords: np.ndarray, terms: int,
                  wavelength_mm: tuple[float, float], amplitude: float) -> np.ndarray:
    """Sum of ``terms`` random plane cosines with wavelengths in the given range (mm)."""
    out = np.zeros(coords.shape[1:], dtype=np.float64)
    for _ in range(terms):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        k = 2 * np.pi / rng.uniform(*wavelength_mm)
        phase = rng.uniform(0, 2 * np.pi)
        a = rng.uniform(0, amplitude)
        out += a * np.cos(k * np.tensordot(direction, coords, axes=1) + phase)
    return out


def _slab_positions(rng: np.random.Generator, split: str, slices: int) -> np.ndarray:
    """Template z (mm) of ``slices`` parallel slices inside one band of ``split``."""
    bands = _BANDS[split]
    lengths = np.array([b - a for a, b in bands])
    band = bands[rng.choice(len(bands), p=lengths / lengths.sum())]
    spacing = _SLICE_SPACING_MM if slices < 2 else min(_SLICE_SPACING_MM,
                                                       (band[1] - band[0]) / (slices - 1))
    extent = spacing * (slices - 1)
    start = rng.uniform(band[0], band[1] - extent)
    return start + spacing * np.arange(slices)


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def synth_volume(size: int, slices: int, *, acquisition: str, split: str, seed: int,
                 index: int, anatomy: Anatomy | None = None) -> dict:
    """One synthetic volume in memory: ``kspace`` (slices, 2*size, W) complex64, ``target``
    (slices, size, size) float32, ``z_range`` (template z of the brain it samples)."""
    from scipy.ndimage import map_coordinates

    if acquisition not in _CONTRAST:
        raise ValueError(f"acquisition must be one of {ACQUISITIONS}, got {acquisition!r}")
    anatomy = anatomy or load_anatomy()
    con = _CONTRAST[acquisition]
    rng = np.random.default_rng([int(seed), SPLITS.index(split), int(index)])
    H, W = kspace_shape(size)

    # Rigid transform (plus a mild scale): scanner frame -> template voxels (mm).
    fov = _FOV_MM * rng.uniform(0.92, 1.08)
    px = fov / size
    tilt = math.radians(_MAX_TILT_DEG)
    rot = _rotation(rng.uniform(-tilt, tilt), rng.uniform(-tilt, tilt),
                    math.radians(rng.uniform(-_MAX_INPLANE_DEG, _MAX_INPLANE_DEG)))
    shift = rng.uniform(-8.0, 8.0, size=2)
    zs = _slab_positions(rng, split, slices)
    z_mid = zs.mean()
    origin = np.array([anatomy.center[0] + shift[0], anatomy.center[1] + shift[1], z_mid])

    rows = (np.arange(H) - H / 2) * px          # anterior -> posterior (image rows)
    cols = (np.arange(W) - W / 2) * px          # left -> right (image columns)
    u, v = np.meshgrid(rows, cols, indexing="ij")
    scanner = np.stack([np.broadcast_to(v, (slices, H, W)),
                        np.broadcast_to(-u, (slices, H, W)),
                        np.broadcast_to((zs - z_mid)[:, None, None], (slices, H, W))])
    template = np.tensordot(rot, scanner, axes=1) + origin[:, None, None, None]
    flat = template.reshape(3, -1)

    def sample(volume, coords, cval=0.0):
        return map_coordinates(volume, coords, order=1, mode="constant", cval=cval,
                               prefilter=False, output=np.float32).reshape(slices, H, W)

    t1, gm, wm, brain = (sample(m, flat) for m in anatomy.maps)
    dist = sample(anatomy.dist, flat / 2.0, cval=1e3)

    # Tissue mixture: brain from the GM/WM maps (CSF = the rest of the brain mask), then a
    # scalp shell around it: CSF rim, skull (dark), fat (bright unless fat-suppressed), skin.
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    t_rim, t_skull, t_fat, t_skin = (rng.uniform(1.0, 2.5), rng.uniform(4.0, 7.0),
                                     rng.uniform(3.0, 6.0), rng.uniform(1.5, 3.0))
    edges = np.cumsum([t_rim, t_skull, t_fat, t_skin])
    step = [_sigmoid((dist - e) / 0.8) for e in edges]
    outside = 1.0 - brain
    shell = ((1 - step[0]) * con["csf"] + (step[0] - step[1]) * con["skull"]
             + (step[1] - step[2]) * con["fat"] + (step[2] - step[3]) * con["skin"])
    jitter = lambda: rng.uniform(0.92, 1.08)  # noqa: E731 - per-volume contrast variation
    image = (outside * shell + csf * con["csf"] * jitter() + gm * con["gm"] * jitter()
             + wm * con["wm"] * jitter() + con["t1"] * (t1 - 0.7) * brain)
    image = np.clip(image, 0.0, None).astype(np.float64)

    # Scanner effects in the scanner frame: smooth bias field, smooth phase, complex noise.
    bias = np.exp(_smooth_field(rng, scanner, 3, (150.0, 400.0), 0.12))
    phase = rng.uniform(-np.pi, np.pi) + _smooth_field(rng, scanner, 4, (80.0, 250.0), 0.6)
    gain = _SIGNAL_SCALE * con["gain"] * rng.uniform(0.7, 1.4)
    x = gain * image * bias * np.exp(1j * phase)
    ref = gain * float(image[brain > 0.5].mean()) if (brain > 0.5).any() else gain
    sigma = ref * rng.uniform(*con["noise"]) / math.sqrt(2.0)
    x = x + sigma * (rng.standard_normal(x.shape) + 1j * rng.standard_normal(x.shape))

    # Centred orthonormal 2-D FFT (as fastmri.fft2c); the target is the magnitude of the
    # image's centre crop, exactly what UnetDataTransform crops out of ifft2c(kspace).
    kspace = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"),
                             axes=(-2, -1)).astype(np.complex64)
    r0, c0 = (H - size) // 2, (W - size) // 2
    target = np.abs(x[:, r0:r0 + size, c0:c0 + size]).astype(np.float32)
    in_brain = brain.reshape(-1) > 0.5
    zb = flat[2][in_brain]
    z_range = (float(zb.min()), float(zb.max())) if zb.size else (float(z_mid), float(z_mid))
    return dict(kspace=kspace, target=target, z_range=z_range, fov_mm=fov,
                spacing_mm=float(zs[1] - zs[0]) if slices > 1 else _SLICE_SPACING_MM)


@dataclass(frozen=True)
class SynthParams:
    """Arguments of the embedded dataset; the manifest records them."""

    size: int = 128
    train_volumes: int = 24
    val_volumes: int = 8
    slices_per_volume: int = 10
    seed: int = 0

    def validate(self) -> None:
        if self.size < 16 or self.size % 2:
            raise ValueError(f"size must be an even number >= 16, got {self.size}")
        if self.train_volumes < 1 or self.val_volumes < 1:
            raise ValueError("need at least one train and one val volume, got "
                             f"{self.train_volumes} and {self.val_volumes}")
        if self.slices_per_volume < 1:
            raise ValueError(f"slices_per_volume must be >= 1, got {self.slices_per_volume}")

    def volumes(self, split: str) -> int:
        return self.train_volumes if split == "train" else self.val_volumes


def _read_manifest(out: Path) -> dict | None:
    try:
        return json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _manifest_complete(out: Path, manifest: dict) -> bool:
    for rel, nbytes in manifest.get("files", {}).items():
        p = out / rel
        if not p.is_file() or p.stat().st_size != nbytes:
            return False
    return True


def synthesize_dataset(out, *, size: int = 128, train_volumes: int = 24, val_volumes: int = 8,
                       slices_per_volume: int = 10, seed: int = 0, progress: bool = True,
                       force: bool = False) -> dict:
    """Write the embedded dataset into ``out/singlecoil_train`` and ``out/singlecoil_val``.

    Volume ``k`` of a split is ``file_synth_{split}_{k:04d}.h5``; acquisitions alternate
    PD / PDFS. Each volume draws from its own generator seeded by ``(seed, split, k)``, so
    the same arguments give the same bytes. A manifest ``out/apslib_synth.json`` records
    the arguments and files: rerunning with the same arguments is a no-op; different
    arguments delete this writer's files and write the new set. A split folder that holds
    other HDF5 files (e.g. real fastMRI data) is never touched: that raises
    :class:`DataError`. Returns the manifest plus ``written`` (bool) and ``seconds``.
    """
    params = SynthParams(int(size), int(train_volumes), int(val_volumes),
                         int(slices_per_volume), int(seed))
    params.validate()
    out = Path(out)
    start = time.perf_counter()
    old = _read_manifest(out)
    wanted = {"format": _FORMAT_VERSION, "params": asdict(params)}
    if (not force and old is not None and {k: old.get(k) for k in wanted} == wanted
            and _manifest_complete(out, old)):
        return {**old, "written": False, "seconds": time.perf_counter() - start}

    names = {s: [SYNTH_PATTERN.format(split=s, index=k) for k in range(params.volumes(s))]
             for s in SPLITS}
    for split in SPLITS:
        folder = _split_dir(out, split)
        if not folder.is_dir():
            continue
        foreign = [p.name for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(("file_synth_", ".file_synth_"))
                   and _has_hdf5_signature(p)]
        if foreign:
            raise DataError(
                f"refusing to write the embedded dataset into {folder}: it holds other HDF5 "
                f"files ({', '.join(sorted(foreign)[:3])}{', ...' if len(foreign) > 3 else ''}). "
                "Choose an empty --out folder.")
    if (out / MANIFEST).exists():
        (out / MANIFEST).unlink()  # an interrupted rewrite must not look complete
    for split in SPLITS:
        folder = _split_dir(out, split)
        folder.mkdir(parents=True, exist_ok=True)
        keep = set(names[split])
        for p in folder.iterdir():  # stale files of an earlier run with other arguments
            if p.name.startswith(".file_synth_") or (
                    p.name.startswith("file_synth_") and p.name not in keep):
                p.unlink()

    anatomy = load_anatomy()
    files = {}
    total = params.train_volumes + params.val_volumes
    from tqdm import tqdm

    with tqdm(total=total, desc=f"writing {out}", unit="vol", disable=not progress,
              file=sys.stderr) as bar:
        for split in SPLITS:
            for k, name in enumerate(names[split]):
                acq = ACQUISITIONS[k % 2]
                vol = synth_volume(params.size, params.slices_per_volume, acquisition=acq,
                                   split=split, seed=params.seed, index=k, anatomy=anatomy)
                fov = vol["fov_mm"]
                H, W = vol["kspace"].shape[1:]
                header = ismrmrd_header(
                    (H, W), (params.size, params.size), num_slices=params.slices_per_volume,
                    fov_mm=(2 * fov, fov * W / params.size, vol["spacing_mm"]),
                    recon_fov_mm=(fov, fov, vol["spacing_mm"]), protocol=acq)
                pid = hashlib.sha256(f"apslib-synth/{params.seed}/{split}/{k}".encode())
                path = write_fastmri_volume(
                    _split_dir(out, split) / name, vol["kspace"], vol["target"],
                    acquisition=acq, patient_id=pid.hexdigest()[:20], header=header,
                    extra_attrs={"synth_template_z_min": vol["z_range"][0],
                                 "synth_template_z_max": vol["z_range"][1]})
                files[f"{path.parent.name}/{path.name}"] = path.stat().st_size
                bar.update(1)
    manifest = {**wanted, "generator": "apslib.data.synthesize_dataset",
                "kspace_shape": list(kspace_shape(params.size)), "files": files,
                "bytes": sum(files.values())}
    atomic_write_json(out / MANIFEST, manifest, indent=1, sort_keys=True)
    return {**manifest, "written": True, "seconds": time.perf_counter() - start}


# --------------------------------------------------------------------------------------
# 2. Loading through fastmri's classes
# --------------------------------------------------------------------------------------

def _has_hdf5_signature(path: Path) -> bool:
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


def check_data_root(path, splits: Sequence[str] = SPLITS) -> Path:
    """Check that ``path`` holds ``singlecoil_<split>`` folders with HDF5 volumes.

    Raises ``FileNotFoundError`` naming the missing folder and the command that writes
    the embedded dataset there. Returns ``path`` as an absolute ``Path``.
    """
    root = Path(path).expanduser().resolve()
    how = (f"Create the embedded dataset with `{SYNTH_COMMAND.format(path=root)}` (or run "
           "notebooks/00_data.ipynb with data_root set to it), or point data_root at a real "
           "fastMRI single-coil folder that holds singlecoil_train/ and singlecoil_val/.")
    for split in splits:
        folder = _split_dir(root, split)
        if not folder.is_dir():
            raise FileNotFoundError(f"no fastMRI data folder {folder}. {how}")
        if not split_files(folder, warn=False):
            raise FileNotFoundError(f"no HDF5 volumes in {folder}. {how}")
    return root


def split_files(folder, warn: bool = True) -> list[Path]:
    """The HDF5 files of a split folder, sorted; anything else is skipped with a warning."""
    out = []
    for p in sorted(Path(folder).iterdir()):
        if p.is_file() and _has_hdf5_signature(p):
            out.append(p)
        elif warn:
            _warn_skip(p)
    return out


def _warn_skip(path: Path) -> None:
    warnings.warn(f"skipping {path}: not an HDF5 file (a split folder should hold only "
                  "fastMRI .h5 volumes)", DataWarning, stacklevel=3)


def check_multiple(shape, multiple: int | None, what: str = "target size") -> None:
    """Raise ``ValueError`` unless every entry of ``shape`` is a multiple of ``multiple``.

    ``multiple`` is the U-Net's ``2 ** depth`` (``UNetConfig.multiple``); ``None`` skips.
    """
    if multiple is None:
        return
    multiple = int(multiple)
    shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
    bad = [s for s in shape if s % multiple]
    if not bad:
        return
    s = bad[0]
    lo, hi = (s // multiple) * multiple, (s // multiple + 1) * multiple
    depth = int(math.log2(multiple)) if multiple & (multiple - 1) == 0 else None
    fits = [d for d in range(0, 8) if s % (2 ** d) == 0]
    raise ValueError(
        f"{what} {'x'.join(map(str, shape))} is not divisible by "
        f"{'2**depth = ' if depth is not None else ''}{multiple}: the U-Net"
        f"{f' of depth {depth}' if depth is not None else ''} needs sizes that are multiples "
        f"of {multiple}. Sizes that work: {', '.join(str(v) for v in (lo, hi) if v > 0)}; "
        f"or a depth of at most {max(fits)} for size {s}.")


def denormalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """Undo the transform's instance normalisation, per sample: ``x * std + mean`` in
    float64 (``mean``/``std``: ``(B,)``, broadcast over the other axes of ``x``)."""
    shape = (-1,) + (1,) * (x.dim() - 1)
    mean = torch.as_tensor(mean).to(x.device, torch.float64).reshape(shape)
    std = torch.as_tensor(std).to(x.device, torch.float64).reshape(shape)
    return x.double() * std + mean


def resolve_acquisition(acquisition: str | None) -> str | None:
    """``None`` (all), ``"PD"`` / ``"PDFS"`` or the fastMRI names -> the fastMRI name."""
    if acquisition is None:
        return None
    name = _ACQ_ALIASES.get(str(acquisition).upper(), str(acquisition).upper())
    if name not in ACQUISITIONS:
        raise ValueError(f"unknown acquisition {acquisition!r}: use None, 'PD', 'PDFS', "
                         f"or one of {ACQUISITIONS}")
    return name


class MRISample(NamedTuple):
    """fastmri's ``UnetSample`` fields plus the acquisition (``CORPD_FBK`` / ``CORPDFS_FBK``).

    ``image``/``target``: ``(H, W)`` normalised by the input's mean/std and clamped to
    [-6, 6]; de-normalise with ``x * std + mean``. Collates with the default collate.
    """

    image: torch.Tensor
    target: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    fname: str
    slice_num: int
    max_value: float
    acquisition: str


class SliceTransform:
    """fastmri's ``UnetDataTransform`` (single-coil) whose output also carries the
    acquisition attr. ``use_seed=True``: the mask depends on the file name only (fixed
    validation masks); ``False``: drawn from the mask function's own generator."""

    def __init__(self, mask_func=None, use_seed: bool = True):
        self.unet = UnetDataTransform("singlecoil", mask_func=mask_func, use_seed=use_seed)

    @property
    def mask_func(self):
        return self.unet.mask_func

    def __call__(self, kspace, mask, target, attrs, fname, slice_num) -> MRISample:
        s = self.unet(kspace, mask, target, attrs, fname, slice_num)
        acq = attrs.get("acquisition", "")
        if isinstance(acq, bytes):
            acq = acq.decode()
        return MRISample(*s[:6], max_value=float(s.max_value), acquisition=str(acq))


class _AcquisitionFilter:
    """``raw_sample_filter`` keeping one acquisition (a class, so it pickles)."""

    def __init__(self, acquisition: str):
        self.acquisition = acquisition

    def __call__(self, raw_sample) -> bool:
        acq = raw_sample.metadata.get("acquisition", "")
        return (acq.decode() if isinstance(acq, bytes) else acq) == self.acquisition


class FastMRISliceDataset(SliceDataset):
    """fastmri's ``SliceDataset`` with loud, named errors.

    A file without the HDF5 signature (``.gitkeep``, ``README``, a sub-folder) contributes
    no slices and raises a :class:`DataWarning` naming it; an HDF5 file that cannot be
    read (truncated, or missing ``kspace``/``ismrmrd_header``) raises :class:`DataError`
    naming it. Everything else is fastmri's own code.
    """

    def _retrieve_metadata(self, fname):
        fname = Path(fname)
        if not fname.is_file() or not _has_hdf5_signature(fname):
            _warn_skip(fname)
            return {}, 0
        try:
            return super()._retrieve_metadata(fname)
        except Exception as err:  # h5py raises OSError/KeyError, fastmri RuntimeError
            raise DataError(
                f"cannot read fastMRI volume {fname}: {type(err).__name__}: {err}. It is "
                "truncated or not a single-coil fastMRI file (needs kspace, "
                "reconstruction_esc, ismrmrd_header). Delete it and re-create it "
                "(embedded data: rerun `python -m apslib.data synth`) or download it again."
            ) from err

    def __getitem__(self, i: int):
        try:
            return super().__getitem__(i)
        except (OSError, KeyError, ValueError) as err:
            fname, dataslice, _ = self.raw_samples[i]
            raise DataError(f"cannot read slice {dataslice} of {fname}: "
                            f"{type(err).__name__}: {err}") from err


def _subset(raw_samples: list, *, volume_fraction, sample_fraction, seed: int) -> list:
    """Deterministic volume or slice subset (fastmri's own uses the global ``random``)."""
    if volume_fraction is not None and sample_fraction is not None:
        raise ValueError("set volume_fraction or sample_fraction, not both")
    rng = random.Random(seed)
    if volume_fraction is not None:
        if not 0 < volume_fraction <= 1:
            raise ValueError(f"volume_fraction must be in (0, 1], got {volume_fraction}")
        vols = sorted({Path(r.fname).name for r in raw_samples})
        rng.shuffle(vols)
        keep = set(vols[:max(1, round(len(vols) * volume_fraction))])
        return [r for r in raw_samples if Path(r.fname).name in keep]
    if sample_fraction is not None:
        if not 0 < sample_fraction <= 1:
            raise ValueError(f"sample_fraction must be in (0, 1], got {sample_fraction}")
        idx = list(range(len(raw_samples)))
        rng.shuffle(idx)
        keep = sorted(idx[:max(1, round(len(idx) * sample_fraction))])
        return [raw_samples[i] for i in keep]
    return raw_samples


def make_dataset(data_root, split: str, *, mask: bool = True, random_masks: bool | None = None,
                 center_fractions: Sequence[float] = (0.08,), accelerations: Sequence[int] = (4,),
                 acquisition: str | None = None, volume_fraction: float | None = None,
                 sample_fraction: float | None = None, seed: int = 0,
                 multiple: int | None = None) -> FastMRISliceDataset:
    """One split of a fastMRI single-coil folder (real or embedded) as a dataset of
    :class:`MRISample`.

    ``mask=False``: fully sampled input. ``random_masks`` (default: ``split == "train"``):
    masks drawn from the mask function's generator (seeded by ``seed``; reseed it per
    DataLoader worker with :func:`seed_mask_worker`); otherwise a fixed mask per file
    name. ``acquisition``: ``None``, ``"PD"`` or ``"PDFS"``. ``volume_fraction`` /
    ``sample_fraction``: a deterministic subset (by ``seed``). ``multiple``: the U-Net's
    ``2**depth``; every target size must be a multiple (else ``ValueError``).
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    root = check_data_root(data_root, splits=(split,))
    acq = resolve_acquisition(acquisition)
    random_masks = (split == "train") if random_masks is None else bool(random_masks)
    mask_func = None
    if mask:
        mask_func = RandomMaskFunc(list(center_fractions), list(accelerations), seed=seed)
    ds = FastMRISliceDataset(
        root=_split_dir(root, split), challenge="singlecoil",
        transform=SliceTransform(mask_func, use_seed=not random_masks),
        use_dataset_cache=False, raw_sample_filter=_AcquisitionFilter(acq) if acq else None)
    ds.raw_samples = _subset(ds.raw_samples, volume_fraction=volume_fraction,
                             sample_fraction=sample_fraction, seed=seed)
    if not ds.raw_samples:
        raise DataError(f"no slices in {_split_dir(root, split)}"
                        + (f" with acquisition {acq}" if acq else ""))
    if multiple is not None:
        for shape in sorted({tuple(r.metadata["recon_size"][:2]) for r in ds.raw_samples}):
            check_multiple(shape, multiple, what=f"target size in {_split_dir(root, split)}:")
    return ds


def seed_mask_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: give each worker's mask generator its own seed
    (derived from the worker's torch seed, hence from the loader's generator)."""
    info = torch.utils.data.get_worker_info()
    if info is None:
        return
    ds = info.dataset
    while hasattr(ds, "dataset") and not hasattr(ds, "transform"):
        ds = ds.dataset  # Subset and similar wrappers
    mask_func = getattr(getattr(ds, "transform", None), "mask_func", None)
    if mask_func is not None:
        mask_func.rng.seed(info.seed % 2**32)


def make_loaders(data_root, *, batch_size: int = 1, center_fractions: Sequence[float] = (0.08,),
                 accelerations: Sequence[int] = (4,), acquisition: str | None = None,
                 volume_fraction: float | None = None, sample_fraction: float | None = None,
                 num_workers: int = 0, seed: int = 0, multiple: int | None = None,
                 ) -> tuple[torch.utils.data.DataLoader, torch.utils.data.DataLoader]:
    """Train and validation DataLoaders of :class:`MRISample` batches.

    Train: shuffled (by ``seed``), a new random mask per slice and epoch (mask generator
    seeded by ``seed``, reseeded per worker). Val: in order, fixed masks (seeded by file
    name, as fastmri). Fractions and the acquisition filter apply to both splits;
    ``multiple`` (``2**depth``) is checked on every target size before returning.
    """
    common = dict(center_fractions=center_fractions, accelerations=accelerations,
                  acquisition=acquisition, volume_fraction=volume_fraction,
                  sample_fraction=sample_fraction, seed=seed, multiple=multiple)
    check_data_root(data_root)
    train = make_dataset(data_root, "train", **common)
    val = make_dataset(data_root, "val", **common)
    loader = dict(batch_size=batch_size, num_workers=num_workers,
                  worker_init_fn=seed_mask_worker if num_workers else None)
    train_loader = torch.utils.data.DataLoader(
        train, shuffle=True, generator=torch.Generator().manual_seed(seed), **loader)
    val_loader = torch.utils.data.DataLoader(
        val, shuffle=False, generator=torch.Generator().manual_seed(seed), **loader)
    return train_loader, val_loader


def inspect_slice(data_root, split: str = "val", index: int = 0, *,
                  acquisition: str | None = None, center_fractions: Sequence[float] = (0.08,),
                  accelerations: Sequence[int] = (4,)) -> dict:
    """Slice ``index`` of a split (optionally of one acquisition) step by step, with
    fastmri's functions and the validation mask (seeded by the file name).

    Returns numpy arrays ``kspace`` (H, W complex), ``mask`` (W,), ``masked_kspace``,
    ``zero_filled`` (the cropped magnitude of the masked inverse FFT, not normalised),
    ``full`` (the same without the mask), ``target``; and ``fname``, ``slice_num``,
    ``acquisition``, ``max_value``.
    """
    import fastmri
    from fastmri.data.transforms import apply_mask, complex_center_crop, to_tensor

    ds = make_dataset(data_root, split, mask=False, acquisition=acquisition)
    fname, slice_num, meta = ds.raw_samples[index]
    with h5py.File(fname, "r") as hf:
        kspace = hf["kspace"][slice_num]
        target = hf["reconstruction_esc"][slice_num] if "reconstruction_esc" in hf else None
        attrs = dict(hf.attrs)
    k = to_tensor(kspace)
    mask_func = RandomMaskFunc(list(center_fractions), list(accelerations))
    masked, mask, _ = apply_mask(k, mask_func, seed=tuple(map(ord, fname.name)))
    crop = tuple(target.shape) if target is not None else tuple(meta["recon_size"][:2])

    def recon(kk):
        return fastmri.complex_abs(complex_center_crop(fastmri.ifft2c(kk), crop)).numpy()

    acq = attrs.get("acquisition", "")
    return dict(kspace=kspace, mask=mask.reshape(-1).numpy(),
                masked_kspace=masked[..., 0].numpy() + 1j * masked[..., 1].numpy(),
                zero_filled=recon(masked), full=recon(k), target=target, fname=fname.name,
                slice_num=int(slice_num), max_value=float(attrs.get("max", 0.0)),
                acquisition=acq.decode() if isinstance(acq, bytes) else str(acq))


def example_targets(data_root, split: str = "val", *, acquisition: str | None = None,
                    count: int = 4) -> list[tuple[str, int, np.ndarray]]:
    """``(file name, slice, target)`` of the middle slice of the first ``count`` volumes."""
    ds = make_dataset(data_root, split, mask=False, acquisition=acquisition)
    by_file: dict[Path, list[int]] = {}
    for r in ds.raw_samples:
        by_file.setdefault(Path(r.fname), []).append(r.slice_ind)
    out = []
    for fname, slices in list(by_file.items())[:count]:
        mid = slices[len(slices) // 2]
        with h5py.File(fname, "r") as hf:
            out.append((fname.name, int(mid), hf["reconstruction_esc"][mid]))
    return out


def dataset_summary(data_root) -> list[dict]:
    """One row per split and acquisition: volumes, slices, k-space/target shapes, MB."""
    root = Path(data_root)
    rows = {}
    for split in ("train", "val", "test"):
        folder = _split_dir(root, split)
        if not folder.is_dir():
            continue
        for p in split_files(folder, warn=False):
            try:
                with h5py.File(p, "r") as hf:
                    acq = hf.attrs.get("acquisition", "")
                    acq = acq.decode() if isinstance(acq, bytes) else str(acq)
                    kshape = hf["kspace"].shape
                    tshape = hf["reconstruction_esc"].shape if "reconstruction_esc" in hf else None
            except (OSError, KeyError) as err:
                raise DataError(f"cannot read fastMRI volume {p}: {err}") from err
            row = rows.setdefault((split, acq), dict(
                split=split, acquisition=acq, volumes=0, slices=0,
                kspace_shape=f"{kshape[1]}x{kshape[2]}",
                target_shape=f"{tshape[1]}x{tshape[2]}" if tshape else "-", megabytes=0.0))
            row["volumes"] += 1
            row["slices"] += int(kshape[0])
            row["megabytes"] += p.stat().st_size / 2**20
    out = list(rows.values())
    for row in out:
        row["megabytes"] = round(row["megabytes"], 1)
    return out


# --------------------------------------------------------------------------------------
# 3. Out-of-distribution image sets
# --------------------------------------------------------------------------------------

PHOTO_NAMES = ("camera", "astronaut", "coffee", "chelsea", "rocket", "coins", "moon", "page",
               "horse", "clock", "text", "grass", "gravel", "brick", "hubble_deep_field",
               "retina")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
RESIZE_RATIO = 256 / 224  # ImageNet protocol: shorter side to 256, centre crop 224


def to_model_input(image, size: int, *, resize_ratio: float = RESIZE_RATIO,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Any 2-D/RGB(A) image -> a ``(1, size, size)`` model input.

    Grayscale; the shorter side resized to ``round(size * resize_ratio)`` (anti-aliased),
    centre crop ``size x size``; instance-normalised (fastmri's ``normalize_instance``,
    eps 1e-11) and clamped to [-6, 6] like the fastMRI model input.
    """
    from skimage.color import rgb2gray
    from skimage.transform import resize

    img = np.asarray(image)
    if img.ndim == 3:
        if img.shape[-1] == 4:
            img = img[..., :3]
        img = rgb2gray(img) if img.shape[-1] == 3 else img[..., 0]
    if img.ndim != 2:
        raise ValueError(f"expected a 2-D or RGB image, got shape {np.shape(image)}")
    img = img.astype(np.float64)
    h, w = img.shape
    short = max(int(round(size * resize_ratio)), size)
    scale = short / min(h, w)
    nh, nw = max(size, int(round(h * scale))), max(size, int(round(w * scale)))
    if (nh, nw) != (h, w):
        img = resize(img, (nh, nw), order=1, anti_aliasing=scale < 1, preserve_range=True)
    r0, c0 = (nh - size) // 2, (nw - size) // 2
    x = torch.from_numpy(np.ascontiguousarray(img[r0:r0 + size, c0:c0 + size]))[None]
    x, _, _ = normalize_instance(x, eps=1e-11)
    return x.clamp(-6, 6).to(dtype)


class ImageSet:
    """A named, lazily loaded set of model inputs: iterating yields ``(1, size, size)``
    tensors; :meth:`items` yields ``(name, tensor)``; :meth:`stack` gives ``(N, 1, s, s)``.

    ``sources``: ``(name, loader)`` pairs, ``loader()`` returning the raw image.
    ``skip_errors``: a source that fails to load is skipped with a :class:`DataWarning`.
    """

    def __init__(self, name: str, sources: Sequence[tuple[str, Callable[[], np.ndarray]]],
                 size: int, *, resize_ratio: float = RESIZE_RATIO,
                 dtype: torch.dtype = torch.float32, skip_errors: bool = True):
        self.name, self.sources, self.size = name, list(sources), int(size)
        self.resize_ratio, self.dtype, self.skip_errors = resize_ratio, dtype, skip_errors

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.sources]

    def __len__(self) -> int:
        return len(self.sources)

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        for name, load in self.sources:
            try:
                raw = load()
            except Exception as err:  # noqa: BLE001 - any unreadable image is skipped
                if not self.skip_errors:
                    raise DataError(f"cannot load image {name}: {err}") from err
                warnings.warn(f"skipping image {name} of {self.name}: {err}", DataWarning,
                              stacklevel=2)
                continue
            if isinstance(raw, torch.Tensor):
                yield name, raw.to(self.dtype)
            else:
                yield name, to_model_input(raw, self.size, resize_ratio=self.resize_ratio,
                                           dtype=self.dtype)

    def __iter__(self) -> Iterator[torch.Tensor]:
        for _, x in self.items():
            yield x

    def stack(self) -> torch.Tensor:
        return torch.stack(list(self))

    def __repr__(self) -> str:
        return f"ImageSet({self.name!r}, {len(self)} images, size={self.size})"


def photographs(size: int = 128, names: Sequence[str] = PHOTO_NAMES, *,
                dtype: torch.dtype = torch.float32) -> ImageSet:
    """scikit-image's bundled photographs (offline), grayscale, resized and centre-cropped.
    Names that fail to load (e.g. a data file missing from an install) are skipped."""
    import skimage.data

    sources = []
    for n in names:
        fn = getattr(skimage.data, n, None)
        if fn is None:
            warnings.warn(f"skimage.data has no image {n!r}: skipped", DataWarning, stacklevel=2)
            continue
        sources.append((n, fn))
    return ImageSet("photographs", sources, size, dtype=dtype)


def noise_images(size: int = 128, count: int = 8, *, std: float = 1000.0, seed: int = 0,
                 dtype: torch.dtype = torch.float32) -> ImageSet:
    """White Gaussian noise images (std 1000 before normalisation, as in the authors'
    extra OOD test), seeded; then normalised like every model input."""

    def make(i):
        def load():
            g = torch.Generator().manual_seed(int(seed) * 1_000_003 + i)
            x = torch.randn(1, size, size, generator=g, dtype=torch.float64) * std
            x, _, _ = normalize_instance(x, eps=1e-11)
            return x.clamp(-6, 6)
        return load

    return ImageSet("noise", [(f"noise_{i:03d}", make(i)) for i in range(count)], size,
                    dtype=dtype)


def shepp_logan(size: int = 128, *, dtype: torch.dtype = torch.float32) -> ImageSet:
    """The Shepp-Logan phantom (scikit-image, 400x400) resized to ``size``, uncropped."""
    import skimage.data

    return ImageSet("shepp_logan", [("shepp_logan", skimage.data.shepp_logan_phantom)], size,
                    resize_ratio=1.0, dtype=dtype)


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        if img.mode not in ("L", "RGB", "RGBA", "I", "I;16", "F"):
            img = img.convert("RGB")
        return np.asarray(img)


def image_folder(folder, size: int = 224, *, recursive: bool = True, limit: int | None = None,
                 resize_ratio: float = RESIZE_RATIO, dtype: torch.dtype = torch.float32) -> ImageSet:
    """Every PNG/JPEG/BMP/TIFF image under ``folder`` (e.g. ImageNet validation), sorted by
    path, grayscale, shorter side to ``size * 256/224``, centre crop ``size`` (ImageNet's
    protocol at 224). Unreadable files are skipped with a warning."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"no image folder {root}")
    pattern = root.rglob("*") if recursive else root.iterdir()
    paths = sorted(p for p in pattern if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if limit is not None:
        paths = paths[:int(limit)]
    if not paths:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {root}")
    return ImageSet(f"folder:{root}", [(str(p.relative_to(root)), lambda p=p: _read_image(p))
                                       for p in paths], size, resize_ratio=resize_ratio,
                    dtype=dtype)


def ood_sets(size: int = 128, *, image_dir=None, image_limit: int | None = None, noise_count: int = 8,
             seed: int = 0, dtype: torch.dtype = torch.float32) -> dict[str, ImageSet]:
    """All out-of-distribution sets by name; ``image_dir`` adds ``"folder"`` (its first
    ``image_limit`` images by path, all when ``None``: ImageNet's 50 000 validation images
    hold 10 GB at 224x224 in float32, so a limit such as 1000 is usual on one machine)."""
    sets = {"photographs": photographs(size, dtype=dtype),
            "noise": noise_images(size, noise_count, seed=seed, dtype=dtype),
            "shepp_logan": shepp_logan(size, dtype=dtype)}
    if image_dir is not None:
        sets["folder"] = image_folder(image_dir, size, limit=image_limit, dtype=dtype)
    return sets


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------

def main(argv=None) -> int:
    defaults = SynthParams()
    ap = argparse.ArgumentParser(prog="python -m apslib.data",
                                 description="The embedded fastMRI-format dataset.")
    sub = ap.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("synth", help="write DIR/singlecoil_train and DIR/singlecoil_val")
    sp.add_argument("--out", required=True, type=Path, help="data root to write")
    sp.add_argument("--train-volumes", type=int, default=defaults.train_volumes)
    sp.add_argument("--val-volumes", type=int, default=defaults.val_volumes)
    sp.add_argument("--slices", "--slices-per-volume", dest="slices", type=int,
                    default=defaults.slices_per_volume)
    sp.add_argument("--size", type=int, default=defaults.size, help="target size (square)")
    sp.add_argument("--seed", type=int, default=defaults.seed)
    sp.add_argument("--force", action="store_true", help="rewrite even if up to date")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    ip = sub.add_parser("info", help="summarise a fastMRI single-coil data root")
    ip.add_argument("root", type=Path)
    args = ap.parse_args(argv)
    try:
        if args.command == "synth":
            res = synthesize_dataset(args.out, size=args.size, train_volumes=args.train_volumes,
                                     val_volumes=args.val_volumes, slices_per_volume=args.slices,
                                     seed=args.seed, progress=not args.quiet, force=args.force)
            state = "wrote" if res["written"] else "up to date:"
            print(f"{state} {len(res['files'])} volumes, {res['bytes'] / 2**20:.1f} MB in "
                  f"{args.out} ({res['seconds']:.1f} s)")
        else:
            check_data_root(args.root)
            for row in dataset_summary(args.root):
                print("  ".join(f"{k}={v}" for k, v in row.items()))
    except (DataError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

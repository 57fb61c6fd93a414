"""The embedded dataset: single-coil volumes in the exact HDF5 layout of fastMRI's knee files.

:func:`synthesize_dataset` (CLI: ``python -m apslib.data synth --out DIR``) writes
``DIR/singlecoil_train`` and ``DIR/singlecoil_val``; :func:`write_fastmri_volume` writes one
file, :func:`synth_volume` computes one volume in memory.

Conventions:

* **File layout** (as the real knee files): ``kspace`` complex64 ``(slices, H, W)`` with 2x
  readout oversampling along ``H`` (:func:`kspace_shape`), ``reconstruction_esc`` float32
  ``(slices, size, size)``, an ISMRMRD XML header (:func:`ismrmrd_header`), attrs
  ``acquisition``/``max``/``norm``/``patient_id``. ``kspace`` is the centred orthonormal 2-D
  FFT (as ``fastmri.fft2c``) of the complex image, and the target is the magnitude of the
  image's centre crop: exactly what ``UnetDataTransform`` crops out of ``ifft2c(kspace)``.
* **Anatomy is real**: the MNI152 brain template and its grey/white-matter maps that ship
  inside nilearn, resampled through random rigid transforms (with a mild scale), a
  scalp/skull shell derived from the brain mask, smooth bias fields, smooth phase and
  complex noise. Two acquisitions as in fastMRI: ``CORPD_FBK`` (proton-density-like) and
  ``CORPDFS_FBK`` (fat-suppressed-like: the fat layer is dark, grey/white contrast differs,
  lower SNR). Train and validation volumes sample disjoint axial bands of the template, so
  no anatomy is shared between the splits.
* **Reproducible bytes**: volume ``k`` of a split draws from its own generator seeded by
  ``(seed, split, k)``, files carry no timestamps and are written atomically, so the same
  arguments give the same bytes; a manifest makes a rerun with the same arguments a no-op.
* **Complete or refused**: the manifest ``apslib_synth.json`` says "writing" while volumes are
  written and lists every file with its size once the last one is written, so a dataset whose
  writer was killed is refused by the loaders as incomplete (rerun the command). Other
  arguments never replace a complete dataset silently: that needs ``force``.
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..io import atomic_write_json
from .common import ACQUISITIONS, MANIFEST, SPLITS, DataError, has_hdf5_signature, split_dir
from .folders import manifest_problem, read_manifest
from .volumes import ismrmrd_header, kspace_shape, write_fastmri_volume

__all__ = [
    "SYNTH_PATTERN",
    "SynthParams",
    "Anatomy",
    "synthesize_dataset",
    "synth_volume",
    "load_anatomy",
]

SYNTH_PATTERN = "file_synth_{split}_{index:04d}.h5"
_FORMAT_VERSION = 1


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
        imgs = [
            datasets.load_mni152_template(resolution=1),
            datasets.load_mni152_gm_template(resolution=1),
            datasets.load_mni152_wm_template(resolution=1),
            datasets.load_mni152_brain_mask(resolution=1),
        ]
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
    "CORPD_FBK": dict(
        csf=0.92, gm=0.86, wm=0.62, skull=0.04, fat=1.00, skin=0.55, t1=0.15, noise=(0.015, 0.03), gain=1.0
    ),
    "CORPDFS_FBK": dict(
        csf=1.00, gm=0.70, wm=0.42, skull=0.03, fat=0.07, skin=0.30, t1=-0.10, noise=(0.05, 0.09), gain=0.45
    ),
}


def _rotation(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = (
        math.cos(ax),
        math.sin(ax),
        math.cos(ay),
        math.sin(ay),
        math.cos(az),
        math.sin(az),
    )
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rx @ ry @ rz


def _smooth_field(
    rng: np.random.Generator,
    coords: np.ndarray,
    terms: int,
    wavelength_mm: tuple[float, float],
    amplitude: float,
) -> np.ndarray:
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
    spacing = _SLICE_SPACING_MM if slices < 2 else min(_SLICE_SPACING_MM, (band[1] - band[0]) / (slices - 1))
    extent = spacing * (slices - 1)
    start = rng.uniform(band[0], band[1] - extent)
    return start + spacing * np.arange(slices)


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def synth_volume(
    size: int,
    slices: int,
    *,
    acquisition: str,
    split: str,
    seed: int,
    index: int,
    anatomy: Anatomy | None = None,
) -> dict:
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
    rot = _rotation(
        rng.uniform(-tilt, tilt),
        rng.uniform(-tilt, tilt),
        math.radians(rng.uniform(-_MAX_INPLANE_DEG, _MAX_INPLANE_DEG)),
    )
    shift = rng.uniform(-8.0, 8.0, size=2)
    zs = _slab_positions(rng, split, slices)
    z_mid = zs.mean()
    origin = np.array([anatomy.center[0] + shift[0], anatomy.center[1] + shift[1], z_mid])

    rows = (np.arange(H) - H / 2) * px  # anterior -> posterior (image rows)
    cols = (np.arange(W) - W / 2) * px  # left -> right (image columns)
    u, v = np.meshgrid(rows, cols, indexing="ij")
    scanner = np.stack(
        [
            np.broadcast_to(v, (slices, H, W)),
            np.broadcast_to(-u, (slices, H, W)),
            np.broadcast_to((zs - z_mid)[:, None, None], (slices, H, W)),
        ]
    )
    template = np.tensordot(rot, scanner, axes=1) + origin[:, None, None, None]
    flat = template.reshape(3, -1)

    def sample(volume, coords, cval=0.0):
        return map_coordinates(
            volume, coords, order=1, mode="constant", cval=cval, prefilter=False, output=np.float32
        ).reshape(slices, H, W)

    t1, gm, wm, brain = (sample(m, flat) for m in anatomy.maps)
    dist = sample(anatomy.dist, flat / 2.0, cval=1e3)

    # Tissue mixture: brain from the GM/WM maps (CSF = the rest of the brain mask), then a
    # scalp shell around it: CSF rim, skull (dark), fat (bright unless fat-suppressed), skin.
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    t_rim, t_skull, t_fat, t_skin = (
        rng.uniform(1.0, 2.5),
        rng.uniform(4.0, 7.0),
        rng.uniform(3.0, 6.0),
        rng.uniform(1.5, 3.0),
    )
    edges = np.cumsum([t_rim, t_skull, t_fat, t_skin])
    step = [_sigmoid((dist - e) / 0.8) for e in edges]
    outside = 1.0 - brain
    shell = (
        (1 - step[0]) * con["csf"]
        + (step[0] - step[1]) * con["skull"]
        + (step[1] - step[2]) * con["fat"]
        + (step[2] - step[3]) * con["skin"]
    )
    jitter = lambda: rng.uniform(0.92, 1.08)  # noqa: E731 - per-volume contrast variation
    image = (
        outside * shell
        + csf * con["csf"] * jitter()
        + gm * con["gm"] * jitter()
        + wm * con["wm"] * jitter()
        + con["t1"] * (t1 - 0.7) * brain
    )
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
    kspace = np.fft.fftshift(
        np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
    ).astype(np.complex64)
    r0, c0 = (H - size) // 2, (W - size) // 2
    target = np.abs(x[:, r0 : r0 + size, c0 : c0 + size]).astype(np.float32)
    in_brain = brain.reshape(-1) > 0.5
    zb = flat[2][in_brain]
    z_range = (float(zb.min()), float(zb.max())) if zb.size else (float(z_mid), float(z_mid))
    return dict(
        kspace=kspace,
        target=target,
        z_range=z_range,
        fov_mm=fov,
        spacing_mm=float(zs[1] - zs[0]) if slices > 1 else _SLICE_SPACING_MM,
    )


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
            raise ValueError(
                f"need at least one train and one val volume, got {self.train_volumes} and {self.val_volumes}"
            )
        if self.slices_per_volume < 1:
            raise ValueError(f"slices_per_volume must be >= 1, got {self.slices_per_volume}")

    def volumes(self, split: str) -> int:
        return self.train_volumes if split == "train" else self.val_volumes


def _describe(params: dict | None) -> str:
    if not isinstance(params, dict):
        return "unknown arguments"
    return (
        f"size {params.get('size')}, {params.get('train_volumes')} train + {params.get('val_volumes')} "
        f"val volumes of {params.get('slices_per_volume')} slices, seed {params.get('seed')}"
    )


def synthesize_dataset(
    out,
    *,
    size: int = 128,
    train_volumes: int = 24,
    val_volumes: int = 8,
    slices_per_volume: int = 10,
    seed: int = 0,
    progress: bool = True,
    force: bool = False,
) -> dict:
    """Write the embedded dataset into ``out/singlecoil_train`` and ``out/singlecoil_val``.

    Volume ``k`` of a split is ``file_synth_{split}_{k:04d}.h5``; acquisitions alternate
    PD / PDFS. Each volume draws from its own generator seeded by ``(seed, split, k)``, so
    the same arguments give the same bytes. A manifest ``out/apslib_synth.json`` records
    the arguments and files (written last; it says "writing" until then): rerunning with
    the same arguments is a no-op, and completes an incomplete dataset. A complete dataset
    of other arguments raises :class:`DataError` unless ``force`` (then this writer's files
    are deleted and the new set written); ``force`` also rewrites an up-to-date dataset. A
    split folder that holds other HDF5 files (e.g. real fastMRI data) is never touched: that
    raises :class:`DataError`, and so does an ``out`` (or split folder) that is a file.
    Returns the manifest plus ``written`` (bool) and ``seconds``.
    """
    params = SynthParams(int(size), int(train_volumes), int(val_volumes), int(slices_per_volume), int(seed))
    params.validate()
    out = Path(out)
    start = time.perf_counter()
    for folder in (out, *(split_dir(out, s) for s in SPLITS)):
        if folder.exists() and not folder.is_dir():
            raise DataError(
                f"cannot write the embedded dataset into {out}: {folder} is a file, "
                "not a folder. Choose a folder (new or empty) for --out."
            )
    old = read_manifest(out)
    wanted = {"format": _FORMAT_VERSION, "params": asdict(params)}
    if old is not None and manifest_problem(out, old) is None and not force:
        if {k: old.get(k) for k in wanted} == wanted:
            return {**old, "written": False, "seconds": time.perf_counter() - start}
        was = _describe(old.get("params")) if old.get("format") == _FORMAT_VERSION else "an older format"
        raise DataError(
            f"{out} holds an embedded dataset of other arguments ({was}; asked for "
            f"{_describe(wanted['params'])}): pass --force (force=True) to replace it, or choose "
            "another --out"
        )

    names = {s: [SYNTH_PATTERN.format(split=s, index=k) for k in range(params.volumes(s))] for s in SPLITS}
    for split in SPLITS:
        folder = split_dir(out, split)
        if not folder.is_dir():
            continue
        foreign = [
            p.name
            for p in folder.iterdir()
            if p.is_file()
            and not p.name.startswith(("file_synth_", ".file_synth_"))
            and has_hdf5_signature(p)
        ]
        if foreign:
            raise DataError(
                f"refusing to write the embedded dataset into {folder}: it holds other HDF5 "
                f"files ({', '.join(sorted(foreign)[:3])}{', ...' if len(foreign) > 3 else ''}). "
                "Choose an empty --out folder."
            )
    # written first, replaced last: an interrupted write is seen as incomplete, never as done
    planned = [f"{split_dir(out, s).name}/{name}" for s in SPLITS for name in names[s]]
    atomic_write_json(out / MANIFEST, {**wanted, "state": "writing", "planned": planned}, indent=1)
    for split in SPLITS:
        folder = split_dir(out, split)
        folder.mkdir(parents=True, exist_ok=True)
        keep = set(names[split])
        for p in folder.iterdir():  # stale files of an earlier run with other arguments
            if p.name.startswith(".file_synth_") or (p.name.startswith("file_synth_") and p.name not in keep):
                p.unlink()

    anatomy = load_anatomy()
    files = {}
    total = params.train_volumes + params.val_volumes
    from tqdm import tqdm

    with tqdm(total=total, desc=f"writing {out}", unit="vol", disable=not progress, file=sys.stderr) as bar:
        for split in SPLITS:
            for k, name in enumerate(names[split]):
                acq = ACQUISITIONS[k % 2]
                vol = synth_volume(
                    params.size,
                    params.slices_per_volume,
                    acquisition=acq,
                    split=split,
                    seed=params.seed,
                    index=k,
                    anatomy=anatomy,
                )
                fov = vol["fov_mm"]
                H, W = vol["kspace"].shape[1:]
                header = ismrmrd_header(
                    (H, W),
                    (params.size, params.size),
                    num_slices=params.slices_per_volume,
                    fov_mm=(2 * fov, fov * W / params.size, vol["spacing_mm"]),
                    recon_fov_mm=(fov, fov, vol["spacing_mm"]),
                    protocol=acq,
                )
                pid = hashlib.sha256(f"apslib-synth/{params.seed}/{split}/{k}".encode())
                path = write_fastmri_volume(
                    split_dir(out, split) / name,
                    vol["kspace"],
                    vol["target"],
                    acquisition=acq,
                    patient_id=pid.hexdigest()[:20],
                    header=header,
                    extra_attrs={
                        "synth_template_z_min": vol["z_range"][0],
                        "synth_template_z_max": vol["z_range"][1],
                    },
                )
                files[f"{path.parent.name}/{path.name}"] = path.stat().st_size
                bar.update(1)
    manifest = {
        **wanted,
        "generator": "apslib.data.synthesize_dataset",
        "kspace_shape": list(kspace_shape(params.size)),
        "files": files,
        "bytes": sum(files.values()),
    }
    atomic_write_json(out / MANIFEST, manifest, indent=1, sort_keys=True)
    return {**manifest, "written": True, "seconds": time.perf_counter() - start}

"""Loading fastMRI single-coil folders (real or embedded) through fastmri's own classes.

:func:`make_loaders` / :func:`make_dataset` build on fastmri's ``SliceDataset``,
``UnetDataTransform`` and ``RandomMaskFunc``; the same code reads a real fastMRI
single-coil folder and the embedded dataset of :mod:`apslib.data.synth`.

Conventions:

* **Samples** are :class:`MRISample` (fastmri's ``UnetSample`` fields plus
  ``acquisition``); images are ``(H, W)`` per sample, so a batch is ``(B, H, W)``: add the
  channel axis with ``batch.image.unsqueeze(1)``. Input and target are normalised by the
  input's mean/std and clamped to [-6, 6]; :func:`denormalize` undoes it.
* **Masks**: validation masks are seeded by the file name (fixed); training masks come
  from the mask function's own generator, seeded by ``seed`` and reseeded per DataLoader
  worker (:func:`seed_mask_worker`).
* **Image size**: the model sees the centre crop ``UnetDataTransform`` takes, i.e. the
  shape of ``reconstruction_esc`` (or, without a target, the header's ``reconSpace``);
  :func:`check_dataset_size` checks those sizes against the U-Net
  (:func:`apslib.unet.check_size`), never the header alone.
* **Bad input fails loudly, before any slice is loaded**: :func:`make_dataset` checks the
  mask arguments (:func:`check_mask_args`) and the data root and split
  (:func:`apslib.data.check_data_root`, :func:`apslib.data.check_split`: every volume once,
  cached), so a missing folder, a multicoil, test-split, truncated or NaN-holding file, or
  targets of two sizes are one-line errors naming the file; a file without the HDF5
  signature (a stray ``.gitkeep``, a git LFS pointer) is skipped with a :class:`DataWarning`.
"""

from __future__ import annotations

import math
import numbers
import random
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import h5py
import torch
from fastmri.data import SliceDataset
from fastmri.data.subsample import RandomMaskFunc
from fastmri.data.transforms import UnetDataTransform

from ..unet import UNetConfig, check_size
from .common import (
    ACQUISITION_NAMES,
    DataError,
    DataWarning,
    decode_attr,
    has_hdf5_signature,
    split_dir,
)
from .folders import check_data_root
from .splits import check_split
from .validate import model_image_size

__all__ = [
    "check_mask_args",
    "mask_function",
    "check_dataset_size",
    "denormalize",
    "resolve_acquisition",
    "MRISample",
    "SliceTransform",
    "FastMRISliceDataset",
    "make_dataset",
    "make_loaders",
    "seed_mask_worker",
]

# "PD", "PDFS" and the fastMRI names themselves -> the fastMRI name
_ACQ_ALIASES = {
    **{full: full for full in ACQUISITION_NAMES},
    **{short: full for full, short in ACQUISITION_NAMES.items()},
}


def _warn_skip(path: Path) -> None:
    warnings.warn(
        f"skipping {path}: not an HDF5 file (a split folder should hold only fastMRI .h5 volumes)",
        DataWarning,
        stacklevel=3,
    )


def _multiple_config(multiple: int) -> UNetConfig:
    """The smallest U-Net config whose size rule is "a multiple of ``multiple``" (a
    baseline of depth ``log2(multiple)``: its minimum size is ``multiple`` itself)."""
    m = int(multiple)
    if m < 2 or m & (m - 1):
        raise ValueError(f"multiple must be 2**depth (a power of two >= 2), got {multiple!r}")
    depth = m.bit_length() - 1
    return UNetConfig(variant="baseline", depth=depth, channels=(1,) * (depth + 1))


def check_mask_args(center_fractions, accelerations) -> tuple[list[float], list[int]]:
    """The mask arguments as fastmri's ``RandomMaskFunc`` takes them, checked: one or more
    pairs, each centre fraction a number in (0, 1) and each acceleration an integer >= 1.
    ``ValueError`` (one line naming the bad value and the valid range) otherwise."""
    fractions = [center_fractions] if isinstance(center_fractions, numbers.Number) else center_fractions
    accels = [accelerations] if isinstance(accelerations, numbers.Number) else accelerations
    try:
        fractions, accels = list(fractions), list(accels)
    except TypeError as err:
        raise ValueError(
            f"center_fractions and accelerations must be lists of numbers, got {center_fractions!r} "
            f"and {accelerations!r}"
        ) from err
    if not fractions or len(fractions) != len(accels):
        raise ValueError(
            f"center_fractions and accelerations must be pairs of equal, non-zero length, got "
            f"{len(fractions)} centre fractions {fractions} and {len(accels)} accelerations {accels}"
        )
    for cf in fractions:
        ok = isinstance(cf, numbers.Real) and not isinstance(cf, bool) and math.isfinite(cf)
        if not (ok and 0 < cf < 1):
            raise ValueError(
                f"center fraction must be a number in (0, 1) (e.g. 0.08), got {cf!r} in "
                f"center_fractions {fractions}"
            )
    checked = []
    for acc in accels:
        ok = isinstance(acc, numbers.Real) and not isinstance(acc, bool) and math.isfinite(acc)
        if not (ok and float(acc).is_integer() and acc >= 1):
            raise ValueError(
                f"acceleration must be an integer >= 1 (e.g. 4), got {acc!r} in accelerations {accels}"
            )
        checked.append(int(acc))
    return [float(cf) for cf in fractions], checked


def mask_function(center_fractions=(0.08,), accelerations=(4,), seed: int | None = None) -> RandomMaskFunc:
    """fastmri's ``RandomMaskFunc`` of the checked arguments (:func:`check_mask_args`)."""
    fractions, accels = check_mask_args(center_fractions, accelerations)
    return RandomMaskFunc(fractions, accels, seed=seed)


def check_dataset_size(dataset, unet_config: UNetConfig, what: str = "data") -> None:
    """``ValueError`` (:func:`apslib.unet.check_size`) unless every image the model will
    receive from ``dataset`` suits the U-Net of ``unet_config``.

    The sizes are those of the arrays, not of the ISMRMRD header: per file, the shape of
    its target (``reconstruction_esc``; h5py's ``.shape``, nothing is read) or, without a
    target, the crop size the transform uses (see :func:`make_dataset`). ``dataset``: a
    :class:`FastMRISliceDataset` (or any fastmri ``SliceDataset``, or a wrapper with a
    ``.dataset``); ``what`` names it in the message. An unreadable file raises
    :class:`DataError` naming it.
    """
    while not hasattr(dataset, "raw_samples") and hasattr(dataset, "dataset"):
        dataset = dataset.dataset  # Subset and similar wrappers
    recon_key = getattr(dataset, "recon_key", "reconstruction_esc")
    files: dict[Path, dict] = {}
    for r in dataset.raw_samples:
        files.setdefault(Path(r.fname), r.metadata)
    sizes: dict[tuple[int, int], list[str]] = {}
    for fname, meta in files.items():
        try:
            with h5py.File(fname, "r") as hf:
                target = hf[recon_key].shape[-2:] if recon_key in hf else None
                width = hf["kspace"].shape[-1]
                shape = model_image_size(target, meta.get("recon_size", (0, 0)), width)
        except (OSError, KeyError) as err:
            raise DataError(
                f"cannot read the array sizes of fastMRI volume {fname}: {type(err).__name__}: {err}"
            ) from err
        sizes.setdefault(shape, []).append(fname.name)
    for shape, names in sorted(sizes.items()):
        more = f" and {len(names) - 1} more" if len(names) > 1 else ""
        check_size(shape, unet_config, what=f"image size of {what} ({names[0]}{more})")


def denormalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """Undo the transform's instance normalisation, per sample: ``x * std + mean`` in
    float64 (``mean``/``std``: ``(B,)``, broadcast over the other axes of ``x``)."""
    shape = (-1,) + (1,) * (x.dim() - 1)
    mean = torch.as_tensor(mean).to(x.device, torch.float64).reshape(shape)
    std = torch.as_tensor(std).to(x.device, torch.float64).reshape(shape)
    return x.double() * std + mean


def resolve_acquisition(acquisition: str | None) -> str | None:
    """``None`` (all), a short name (``"PD"``, ``"PDFS"``) or a fastMRI name of
    :data:`ACQUISITION_NAMES` (any case) -> the fastMRI name."""
    if acquisition is None:
        return None
    name = _ACQ_ALIASES.get(str(acquisition).upper())
    if name is None:
        shorts = ", ".join(repr(v) for v in ACQUISITION_NAMES.values())
        raise ValueError(
            f"unknown acquisition {acquisition!r}: use None, {shorts}, or one of {tuple(ACQUISITION_NAMES)}"
        )
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
        return MRISample(
            *s[:6], max_value=float(s.max_value), acquisition=decode_attr(attrs.get("acquisition", ""))
        )


class _AcquisitionFilter:
    """``raw_sample_filter`` keeping one acquisition (a class, so it pickles)."""

    def __init__(self, acquisition: str):
        self.acquisition = acquisition

    def __call__(self, raw_sample) -> bool:
        return decode_attr(raw_sample.metadata.get("acquisition", "")) == self.acquisition


class FastMRISliceDataset(SliceDataset):
    """fastmri's ``SliceDataset`` with loud, named errors.

    ``volumes``: the file names to read (those :func:`apslib.data.check_split` checked);
    other entries of the folder contribute no slices, silently. Without it, a file without
    the HDF5 signature (``.gitkeep``, ``README``, a sub-folder) contributes no slices and
    raises a :class:`DataWarning` naming it, and an HDF5 file that cannot be read
    (truncated, or missing ``kspace``/``ismrmrd_header``) raises :class:`DataError` naming
    it. Everything else is fastmri's own code.
    """

    def __init__(self, *args, volumes: Sequence[str] | None = None, **kwargs):
        self.volumes = None if volumes is None else frozenset(volumes)
        super().__init__(*args, **kwargs)

    def _retrieve_metadata(self, fname):
        fname = Path(fname)
        if self.volumes is not None and fname.name not in self.volumes:
            return {}, 0
        if not fname.is_file() or not has_hdf5_signature(fname):
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
            raise DataError(f"cannot read slice {dataslice} of {fname}: {type(err).__name__}: {err}") from err


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
        keep = set(vols[: max(1, round(len(vols) * volume_fraction))])
        return [r for r in raw_samples if Path(r.fname).name in keep]
    if sample_fraction is not None:
        if not 0 < sample_fraction <= 1:
            raise ValueError(f"sample_fraction must be in (0, 1], got {sample_fraction}")
        idx = list(range(len(raw_samples)))
        rng.shuffle(idx)
        keep = sorted(idx[: max(1, round(len(idx) * sample_fraction))])
        return [raw_samples[i] for i in keep]
    return raw_samples


def make_dataset(
    data_root,
    split: str,
    *,
    mask: bool = True,
    random_masks: bool | None = None,
    center_fractions: Sequence[float] = (0.08,),
    accelerations: Sequence[int] = (4,),
    acquisition: str | None = None,
    volume_fraction: float | None = None,
    sample_fraction: float | None = None,
    seed: int = 0,
    multiple: int | None = None,
    exclude_constant: bool = False,
) -> FastMRISliceDataset:
    """One split of a fastMRI single-coil folder (real or embedded) as a dataset of
    :class:`MRISample`.

    ``mask=False``: fully sampled input. ``random_masks`` (default: ``split == "train"``):
    masks drawn from the mask function's generator (seeded by ``seed``; reseed it per
    DataLoader worker with :func:`seed_mask_worker`); otherwise a fixed mask per file
    name. ``acquisition``: ``None``, ``"PD"`` or ``"PDFS"``. ``volume_fraction`` /
    ``sample_fraction``: a deterministic subset (by ``seed``). ``multiple``: the U-Net's
    ``2**depth``; every image size the model will see must be a multiple (else
    ``ValueError``; the sizes of the arrays, see :func:`check_dataset_size`).
    ``exclude_constant``: leave out the slices whose k-space or target is constant (where
    NMSE and PSNR are undefined; :func:`apslib.data.constant_slices`).

    The mask arguments and the split are checked first (:func:`check_mask_args`,
    :func:`apslib.data.check_data_root`): one-line errors, before any slice is read.
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    mask_func = mask_function(center_fractions, accelerations, seed=seed) if mask else None
    acq = resolve_acquisition(acquisition)
    root = check_data_root(data_root, splits=(split,))
    info = check_split(split_dir(root, split), expect_target=split != "test")
    random_masks = (split == "train") if random_masks is None else bool(random_masks)
    ds = FastMRISliceDataset(
        root=split_dir(root, split),
        challenge="singlecoil",
        transform=SliceTransform(mask_func, use_seed=not random_masks),
        use_dataset_cache=False,
        raw_sample_filter=_AcquisitionFilter(acq) if acq else None,
        volumes=[v.name for v in info.volumes],
    )
    if exclude_constant:
        flat = info.constant_slices
        ds.raw_samples = [r for r in ds.raw_samples if (Path(r.fname).name, r.slice_ind) not in flat]
    ds.raw_samples = _subset(
        ds.raw_samples, volume_fraction=volume_fraction, sample_fraction=sample_fraction, seed=seed
    )
    if not ds.raw_samples:
        raise DataError(
            f"no slices in {split_dir(root, split)}" + (f" with acquisition {acq}" if acq else "")
        )
    if multiple is not None:
        check_dataset_size(ds, _multiple_config(multiple), what=str(split_dir(root, split)))
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


def make_loaders(
    data_root,
    *,
    batch_size: int = 1,
    center_fractions: Sequence[float] = (0.08,),
    accelerations: Sequence[int] = (4,),
    acquisition: str | None = None,
    volume_fraction: float | None = None,
    sample_fraction: float | None = None,
    num_workers: int = 0,
    seed: int = 0,
    multiple: int | None = None,
) -> tuple[torch.utils.data.DataLoader, torch.utils.data.DataLoader]:
    """Train and validation DataLoaders of :class:`MRISample` batches.

    Train: shuffled (by ``seed``), a new random mask per slice and epoch (mask generator
    seeded by ``seed``, reseeded per worker). Val: in order, fixed masks (seeded by file
    name, as fastmri). Fractions and the acquisition filter apply to both splits;
    ``multiple`` (``2**depth``) is checked on every image size before returning.
    """
    check_mask_args(center_fractions, accelerations)
    common = dict(
        center_fractions=center_fractions,
        accelerations=accelerations,
        acquisition=acquisition,
        volume_fraction=volume_fraction,
        sample_fraction=sample_fraction,
        seed=seed,
        multiple=multiple,
    )
    check_data_root(data_root)
    train = make_dataset(data_root, "train", **common)
    val = make_dataset(data_root, "val", **common)
    loader = dict(
        batch_size=batch_size,
        num_workers=num_workers,
        worker_init_fn=seed_mask_worker if num_workers else None,
    )
    train_loader = torch.utils.data.DataLoader(
        train, shuffle=True, generator=torch.Generator().manual_seed(seed), **loader
    )
    val_loader = torch.utils.data.DataLoader(
        val, shuffle=False, generator=torch.Generator().manual_seed(seed), **loader
    )
    return train_loader, val_loader

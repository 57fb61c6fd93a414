"""Data: fastMRI-format single-coil volumes, loaders, and out-of-distribution image sets.

One package, one module per concern (each states its own conventions):

* :mod:`~apslib.data.common`: errors, acquisition names (:data:`ACQUISITION_NAMES`, the
  one list), split folders, the HDF5 signature, :func:`decode_attr`.
* :mod:`~apslib.data.synth`: the **embedded dataset**. :func:`synthesize_dataset` (CLI:
  ``python -m apslib.data synth --out DIR``) writes single-coil volumes in the exact HDF5
  layout of the real fastMRI knee files, from the real brain anatomy that ships inside
  nilearn, into ``DIR/singlecoil_train`` and ``DIR/singlecoil_val``.
* :mod:`~apslib.data.fastmri`: **loading** through fastmri's own ``SliceDataset``,
  ``UnetDataTransform`` and ``RandomMaskFunc`` (:func:`make_loaders`,
  :func:`make_dataset`); the same code reads a real fastMRI single-coil folder. Samples
  are :class:`MRISample`, images ``(H, W)`` per sample. :func:`check_dataset_size` checks
  the image sizes the model will receive against the U-Net.
* :mod:`~apslib.data.validate`, :mod:`~apslib.data.splits`, :mod:`~apslib.data.folders`:
  **the one validator**. :func:`check_volume` (one file: keys, complex 3-D single-coil
  k-space, finite values, target and header, constant slices: a :class:`VolumeInfo`),
  :func:`check_split` (a split folder: skipped files named, test-split files refused in
  train/val, one target size), :func:`check_data_root` (the root, a split folder passed in
  its place, an incomplete embedded dataset) and :func:`constant_slices`; results cached per
  file (:mod:`~apslib.data.cache`).
* :mod:`~apslib.data.ood`: **out-of-distribution sets** (:func:`photographs`,
  :func:`noise_images`, :func:`shepp_logan`, :func:`image_folder`, :func:`ood_sets`):
  :class:`ImageSet` iterables of ``(1, size, size)`` tensors normalised like the model input.
* :mod:`~apslib.data.cli`: the CLI (``python -m apslib.data synth|info``).

Bad input fails loudly, in one line, before any training starts: a missing data folder
names the command that creates it (:func:`check_data_root`); a file without the HDF5
signature in a split folder is skipped with a :class:`DataWarning` naming it; every volume
the loaders read passes :func:`check_volume` first (a :class:`DataError` names the file and
what to do); bad mask arguments raise ``ValueError`` (:func:`check_mask_args`); an image
size the U-Net cannot take raises ``ValueError`` (:func:`check_dataset_size`). Nothing here
imports matplotlib: the figures of the data live in :mod:`apslib.plots.data`.
"""

from __future__ import annotations

from .cli import main
from .common import (
    ACQUISITION_NAMES,
    ACQUISITIONS,
    HDF5_SIGNATURE,
    MANIFEST,
    SPLITS,
    SYNTH_COMMAND,
    DataError,
    DataWarning,
    MissingDataError,
    decode_attr,
    has_hdf5_signature,
    split_dir,
)
from .fastmri import (
    FastMRISliceDataset,
    MRISample,
    SliceTransform,
    check_dataset_size,
    check_mask_args,
    denormalize,
    make_dataset,
    make_loaders,
    mask_function,
    resolve_acquisition,
    seed_mask_worker,
)
from .folders import check_data_root, constant_slices
from .inspect import dataset_summary, example_targets, inspect_slice
from .ood import (
    IMAGE_EXTENSIONS,
    PHOTO_NAMES,
    RESIZE_RATIO,
    ImageSet,
    image_folder,
    noise_images,
    ood_sets,
    photographs,
    shepp_logan,
    to_model_input,
)
from .splits import SplitInfo, check_split, split_files
from .synth import (
    SYNTH_PATTERN,
    Anatomy,
    SynthParams,
    load_anatomy,
    synth_volume,
    synthesize_dataset,
)
from .validate import VolumeInfo, check_volume, model_image_size
from .volumes import ISMRMRD_NS, ismrmrd_header, kspace_shape, write_fastmri_volume

__all__ = [
    "ACQUISITIONS",
    "ACQUISITION_NAMES",
    "denormalize",
    "SPLITS",
    "DataError",
    "MissingDataError",
    "DataWarning",
    "decode_attr",
    "split_dir",
    "has_hdf5_signature",
    "HDF5_SIGNATURE",
    "SYNTH_COMMAND",
    "ISMRMRD_NS",
    "MANIFEST",
    "SYNTH_PATTERN",
    "SynthParams",
    "Anatomy",
    "synthesize_dataset",
    "synth_volume",
    "write_fastmri_volume",
    "ismrmrd_header",
    "kspace_shape",
    "load_anatomy",
    "check_data_root",
    "check_volume",
    "check_split",
    "constant_slices",
    "VolumeInfo",
    "SplitInfo",
    "model_image_size",
    "split_files",
    "check_dataset_size",
    "check_mask_args",
    "mask_function",
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
    "IMAGE_EXTENSIONS",
    "RESIZE_RATIO",
    "main",
]

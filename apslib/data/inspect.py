"""Looking into a fastMRI single-coil folder: one slice step by step
(:func:`inspect_slice`), example targets, and a summary per split and acquisition; what
notebook 00 shows and ``python -m apslib.data info`` prints."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from .common import decode_attr, split_dir
from .fastmri import make_dataset, mask_function
from .splits import check_split
from .validate import model_image_size

__all__ = ["inspect_slice", "example_targets", "dataset_summary"]


def inspect_slice(
    data_root,
    split: str = "val",
    index: int = 0,
    *,
    acquisition: str | None = None,
    center_fractions: Sequence[float] = (0.08,),
    accelerations: Sequence[int] = (4,),
) -> dict:
    """Slice ``index`` of a split (optionally of one acquisition) step by step, with
    fastmri's functions and the validation mask (seeded by the file name).

    Returns numpy arrays ``kspace`` (H, W complex), ``mask`` (W,), ``masked_kspace``,
    ``zero_filled`` (the cropped magnitude of the masked inverse FFT, not normalised),
    ``full`` (the same without the mask), ``target``; and ``fname``, ``slice_num``,
    ``acquisition``, ``max_value``.
    """
    import fastmri
    from fastmri.data.transforms import apply_mask, complex_center_crop, to_tensor

    mask_func = mask_function(center_fractions, accelerations)  # checked before the data is read
    ds = make_dataset(data_root, split, mask=False, acquisition=acquisition)
    fname, slice_num, meta = ds.raw_samples[index]
    with h5py.File(fname, "r") as hf:
        kspace = hf["kspace"][slice_num]
        target = hf["reconstruction_esc"][slice_num] if "reconstruction_esc" in hf else None
        attrs = dict(hf.attrs)
    k = to_tensor(kspace)
    masked, mask, _ = apply_mask(k, mask_func, seed=tuple(map(ord, fname.name)))
    crop = model_image_size(None if target is None else target.shape, meta["recon_size"], kspace.shape[-1])

    def recon(kk):
        return fastmri.complex_abs(complex_center_crop(fastmri.ifft2c(kk), crop)).numpy()

    return dict(
        kspace=kspace,
        mask=mask.reshape(-1).numpy(),
        masked_kspace=masked[..., 0].numpy() + 1j * masked[..., 1].numpy(),
        zero_filled=recon(masked),
        full=recon(k),
        target=target,
        fname=fname.name,
        slice_num=int(slice_num),
        max_value=float(attrs.get("max", 0.0)),
        acquisition=decode_attr(attrs.get("acquisition", "")),
    )


def example_targets(
    data_root, split: str = "val", *, acquisition: str | None = None, count: int = 4
) -> list[tuple[str, int, np.ndarray]]:
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
    """One row per split and acquisition: volumes, slices, k-space/target shapes, MB.

    Every split folder present (train, val, test) is checked as the loaders check it
    (:func:`apslib.data.check_split`; cached): an unusable file raises :class:`DataError`.
    Shapes that vary between volumes are listed, separated by ``/``."""
    root = Path(data_root)
    rows: dict[tuple[str, str], dict] = {}
    for split in ("train", "val", "test"):
        folder = split_dir(root, split)
        if not folder.is_dir():
            continue
        for v in check_split(folder, expect_target=split != "test").volumes:
            new = dict(split=split, acquisition=v.acquisition, volumes=0, slices=0, kspace=[], target=[])
            row = rows.setdefault((split, v.acquisition), {**new, "megabytes": 0.0})
            row["volumes"] += 1
            row["slices"] += v.slices
            for key, shape in (("kspace", v.kspace_shape), ("target", v.target_shape)):
                text = "-" if shape is None else f"{shape[1]}x{shape[2]}"
                if text not in row[key]:
                    row[key].append(text)
            row["megabytes"] += (folder / v.name).stat().st_size / 2**20
    out = []
    for row in rows.values():
        out.append(
            dict(
                split=row["split"],
                acquisition=row["acquisition"],
                volumes=row["volumes"],
                slices=row["slices"],
                kspace_shape="/".join(row["kspace"]),
                target_shape="/".join(row["target"]),
                megabytes=round(row["megabytes"], 1),
            )
        )
    return out

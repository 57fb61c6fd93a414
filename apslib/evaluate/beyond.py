"""Shift protocols beyond integer circular shifts (notebook 06): sub-pixel circular shifts of
the network's input, physical shifts made in k-space, and moved fields of view.

Conventions
-----------
Shifts follow :mod:`apslib.subpixel` (``(dy, dx)``, reals, content moves by ``+d``). Each
protocol returns a per-pair frame (one row per model, image and shift) with the columns
:data:`PAIR_COLUMNS`; :func:`shift_summary` turns it into the tidy rows of
:mod:`apslib.evaluate.tables` (mean, median, max and min over images, per shift).

* ``subpixel``: ``x`` is the network's (normalised) input; compare ``F(S_d x)`` with
  ``S_d F(x)``, ``S_d`` = :func:`~apslib.subpixel.fourier_shift` (circular, band-limited:
  at integer ``d`` the integer protocol exactly). Whole image. For adaptive models (APS,
  LPS) also ``grid_flip`` (:func:`neighbour_flips`): 1 where the grids chosen for ``S_d x``
  are those of no integer neighbour of ``d`` (the choice jumped to a grid of its own), else
  0; NaN for the other models and protocols.
* ``physical``: a validation slice's full-field-of-view k-space gets the ramp of
  :func:`~apslib.subpixel.kspace_shift`, then the data pipeline of training runs on it
  unchanged (fastmri's ``UnetDataTransform``: the same seeded mask, zero-filled inverse FFT,
  centre crop, magnitude, instance normalisation by the moved input's own statistics, clamp).
  The target moves the same way (magnitude of the centre crop of the moved full image).
  Outputs are compared de-normalised (physical units): ``F~(x_d)`` with ``S_d F~(x_0)`` on
  :func:`~apslib.subpixel.overlap_mask` (``margin`` pixels from the crop border, and only
  content inside the crop before and after); ``psnr_decline`` = ``|PSNR(F~(x_0), y_0) -
  PSNR(F~(x_d), y_d)|`` on the whole crop, data range the volume's ``max``. Two reference
  rows need no network: ``Target`` (``y_d`` against ``S_d y_0``: the protocol's floor, from
  interpolating a cropped image) and ``Zero-filled`` (the moved input against the shifted
  input).
* ``fov``: any image set (out of distribution included): images larger than the crop are
  moved by :func:`~apslib.subpixel.fourier_shift` and centre-cropped (a field of view moved
  over a larger scene), each crop normalised by its own mean and std; compared as
  ``physical``, without a target.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch

from ..metrics import nmse_from_sums
from ..polyphase import predicted_phases
from ..subpixel import fourier_shift, kspace_shift, overlap_mask
from .models import ModelRun, predict
from .tables import stat_rows, summarise

__all__ = [
    "PAIR_COLUMNS",
    "subpixel_protocol",
    "neighbour_flips",
    "physical_protocol",
    "fov_protocol",
    "read_kspace_slices",
    "physical_samples",
    "shift_summary",
    "beyond_table",
    "frontier_points",
    "target_check",
]

PAIR_COLUMNS = ["model", "dataset", "protocol", "image", "dy", "dx", "eq_nmse", "psnr_decline", "grid_flip"]
REFERENCES = ("Target", "Zero-filled")


def _nmse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> np.ndarray:
    """Per-image ``||a - b||^2 / ||b||^2`` (``(N, 1, H, W)``) on ``mask`` (``(H, W)``)."""
    a, b = a.double(), b.double()
    if mask is not None:
        a, b = a[..., mask], b[..., mask]
    err = (a - b).pow(2).reshape(len(a), -1).sum(1).numpy()
    return nmse_from_sums(err, b.pow(2).reshape(len(b), -1).sum(1).numpy())


def _psnr(pred: torch.Tensor, ref: torch.Tensor, peak: torch.Tensor) -> np.ndarray:
    mse = (pred.double() - ref.double()).pow(2).reshape(len(pred), -1).mean(1)
    with np.errstate(divide="ignore"):
        return (10 * torch.log10(peak.double() ** 2 / mse)).numpy()


def _rows(model, dataset, protocol, ids, shift, nmse, decline=None, flips=None) -> list[dict]:
    decline = [np.nan] * len(ids) if decline is None else decline
    flips = [np.nan] * len(ids) if flips is None else flips
    return [
        dict(
            zip(
                PAIR_COLUMNS,
                (model, dataset, protocol, i, float(shift[0]), float(shift[1]), float(e), float(p), float(f)),
            )
        )
        for i, e, p, f in zip(ids, nmse, decline, flips)
    ]


def neighbour_flips(
    phases_x: Sequence[torch.Tensor], phases_shifted: Sequence[torch.Tensor], shift: tuple[float, float]
) -> np.ndarray:
    """Per image, 1.0 where the grids chosen for ``S_d x`` (``phases_shifted``, level by
    level) are not those that an integer neighbour ``k`` of ``d`` (``floor`` or ``ceil`` on
    each axis) predicts from ``x``'s choice (:func:`apslib.polyphase.predicted_phases`),
    else 0.0. At an integer ``d`` the only neighbour is ``d``: an integer grid flip.

    A sub-pixel shift moves the content between its integer neighbours; a choice that
    follows one of them keeps the kept components shifted copies of that neighbour's, one
    that follows none has jumped to a grid of its own (more aliasing to expose)."""
    if not len(phases_x):
        raise ValueError("neighbour_flips needs the phases of at least one adaptive level")
    dy, dx = (float(v) for v in shift)
    near = {(a, b) for a in {math.floor(dy), math.ceil(dy)} for b in {math.floor(dx), math.ceil(dx)}}
    chosen = [p.long().cpu() for p in phases_shifted]
    follows = torch.zeros(len(chosen[0]), dtype=torch.bool)
    for k in sorted(near):
        predicted, _ = predicted_phases(phases_x, k)
        same = torch.ones_like(follows)
        for expected, c in zip(predicted, chosen):
            same &= c == expected
        follows |= same
    return (~follows).double().numpy()


@torch.no_grad()
def subpixel_protocol(
    runs: dict[str, ModelRun],
    x: torch.Tensor,
    shifts: Sequence[tuple[float, float]],
    *,
    image_ids: Sequence[str] | None = None,
    dataset: str = "val",
    batch_size: int = 32,
) -> pd.DataFrame:
    """Sub-pixel circular shifts of the network input ``x`` (``(N, 1, H, W)``, normalised):
    per model, image and shift the NMSE between ``F(S_d x)`` and ``S_d F(x)``, and for
    adaptive models whether the grid choice followed an integer neighbour of ``d``
    (:func:`neighbour_flips`)."""
    ids = list(image_ids) if image_ids is not None else [str(i) for i in range(len(x))]
    rows = []
    for name, run in runs.items():
        y0, ph0 = predict(run, x, batch_size=batch_size, return_phases=True)
        for d in shifts:
            ys, ph = predict(run, fourier_shift(x, d), batch_size=batch_size, return_phases=True)
            flips = neighbour_flips(ph0, ph, d) if run.is_adaptive else None
            rows += _rows(name, dataset, "subpixel", ids, d, _nmse(ys, fourier_shift(y0, d)), flips=flips)
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def read_kspace_slices(data_root, count: int | None = 16) -> list[dict]:
    """``count`` evenly spaced validation slices of ``data_root``'s ``singlecoil_val``, each
    ``{"kspace", "target", "attrs", "fname", "slice_num"}`` as fastmri's ``SliceDataset``
    hands them to its transform (k-space complex64 ``(H, W)``, the stored target). Constant
    slices (:func:`apslib.data.constant_slices`: NMSE undefined) are not among them."""
    from ..data import check_data_root, constant_slices, split_dir, split_files
    from .protocols import evenly_spaced_indices

    folder = split_dir(check_data_root(data_root, splits=("val",)), "val")
    flat = constant_slices(data_root, "val")
    index = []
    for f in split_files(folder):
        with h5py.File(f, "r") as h:
            index += [(f, s) for s in range(h["kspace"].shape[0]) if (f.name, s) not in flat]
    out = []
    for i in evenly_spaced_indices(len(index), count):
        f, s = index[i]
        with h5py.File(f, "r") as h:
            attrs = dict(h.attrs)
            out.append(
                {
                    "kspace": h["kspace"][s],
                    "target": h["reconstruction_esc"][s] if "reconstruction_esc" in h else None,
                    "attrs": attrs,
                    "fname": Path(f).name,
                    "slice_num": s,
                }
            )
    return out


def _centred_image(kspace: torch.Tensor) -> torch.Tensor:
    """fastmri's ``ifft2c`` on complex tensors: the full field of view's complex image."""
    k = torch.fft.ifftshift(kspace, dim=(-2, -1))
    return torch.fft.fftshift(torch.fft.ifft2(k, norm="ortho"), dim=(-2, -1))


def _crop(x: torch.Tensor, shape) -> torch.Tensor:
    h, w = x.shape[-2:]
    top, left = (h - shape[0]) // 2, (w - shape[1]) // 2  # fastmri's centre crop
    return x[..., top : top + shape[0], left : left + shape[1]]


def physical_samples(item: dict, shift, transform) -> tuple:
    """The training pipeline's sample of slice ``item`` (:func:`read_kspace_slices`) after
    moving the patient by ``shift``, and the moved target (magnitude of the moved full
    image's centre crop, float64): ``(MRISample, target)``."""
    k = kspace_shift(torch.from_numpy(np.asarray(item["kspace"])).to(torch.complex128), shift)
    crop = item["target"].shape if item["target"] is not None else tuple(item["attrs"]["recon_size"][:2])
    target = _crop(_centred_image(k), crop).abs()
    sample = transform(
        k.to(torch.complex64).numpy(),
        None,
        target.float().numpy(),
        item["attrs"],
        item["fname"],
        item["slice_num"],
    )
    return sample, target


@torch.no_grad()
def physical_protocol(
    runs: dict[str, ModelRun],
    items: list[dict],
    shifts: Sequence[tuple[float, float]],
    *,
    center_fractions=(0.08,),
    accelerations=(4,),
    margin: int = 16,
    batch_size: int = 32,
    dataset: str = "val",
    cache: dict | None = None,
) -> pd.DataFrame:
    """Physical shifts (k-space ramps of the full field of view, then the data pipeline) of
    the slices ``items``: per model (and the ``Target`` / ``Zero-filled`` references), slice
    and shift the NMSE on the overlap away from the border and the decline in PSNR.
    ``cache`` (a dict, e.g. shared by the calls for several seeds' runs) keeps the moved
    samples, so the pipeline runs once per shift."""
    from fastmri.data.subsample import RandomMaskFunc

    from ..data.fastmri import SliceTransform

    transform = SliceTransform(RandomMaskFunc(list(center_fractions), list(accelerations)), use_seed=True)
    ids = [f"{Path(it['fname']).stem}:{it['slice_num']}" for it in items]
    peak = torch.tensor([float(it["attrs"].get("max", 0.0)) for it in items], dtype=torch.float64)

    cache = {} if cache is None else cache

    def moved(d):
        key = (float(d[0]), float(d[1]))
        if key not in cache:
            cache[key] = _moved(d)
        return cache[key]

    def _moved(d):
        pairs = [physical_samples(it, d, transform) for it in items]
        s = [p[0] for p in pairs]
        x = torch.stack([t.image for t in s]).unsqueeze(1).float()
        mean = torch.tensor([float(t.mean) for t in s], dtype=torch.float64).view(-1, 1, 1, 1)
        std = torch.tensor([float(t.std) for t in s], dtype=torch.float64).view(-1, 1, 1, 1)
        y = torch.stack([p[1] for p in pairs]).unsqueeze(1)
        return x, mean, std, y

    x0, m0, s0, y0 = moved((0.0, 0.0))
    peak = torch.where(peak > 0, peak, y0.reshape(len(y0), -1).amax(1))
    outs0 = {name: predict(run, x0, batch_size=batch_size).double() * s0 + m0 for name, run in runs.items()}
    rows = []
    for d in shifts:
        xd, md, sd, yd = moved(d)
        mask = overlap_mask(tuple(x0.shape[-2:]), d, margin)
        if not mask.any():
            raise ValueError(
                f"shift {d} with margin {margin} leaves no overlap in a {tuple(x0.shape[-2:])} crop"
            )
        rows += _rows("Target", dataset, "physical", ids, d, _nmse(yd, fourier_shift(y0, d), mask))
        zf0, zfd = x0.double() * s0 + m0, xd.double() * sd + md
        rows += _rows("Zero-filled", dataset, "physical", ids, d, _nmse(zfd, fourier_shift(zf0, d), mask))
        for name, run in runs.items():
            out = predict(run, xd, batch_size=batch_size).double() * sd + md
            decline = np.abs(_psnr(outs0[name], y0, peak) - _psnr(out, yd, peak))
            rows += _rows(
                name, dataset, "physical", ids, d, _nmse(out, fourier_shift(outs0[name], d), mask), decline
            )
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


@torch.no_grad()
def fov_protocol(
    runs: dict[str, ModelRun],
    scenes: dict[str, torch.Tensor],
    crop: int,
    shifts: Sequence[tuple[float, float]],
    *,
    margin: int = 16,
    batch_size: int = 32,
) -> pd.DataFrame:
    """Moved fields of view: each scene ``(N, 1, S, S)`` (``S > crop``) of each set is moved
    by ``d``, centre-cropped to ``crop`` and normalised by its own statistics; per model,
    image and shift the NMSE of the de-normalised outputs on the overlap."""
    rows = []
    for dataset, scene in scenes.items():
        if min(scene.shape[-2:]) < crop:
            raise ValueError(
                f"the {dataset} scenes ({tuple(scene.shape[-2:])}) are smaller than the crop {crop}"
            )
        ids = [str(i) for i in range(len(scene))]

        def view(d, scene=scene):
            x = _crop(fourier_shift(scene.double(), d), (crop, crop))
            mean = x.mean(dim=(-2, -1), keepdim=True)
            std = x.std(dim=(-2, -1), keepdim=True).clamp_min(1e-11)
            return ((x - mean) / std).float(), mean, std

        x0, m0, s0 = view((0.0, 0.0))
        outs0 = {
            name: predict(run, x0, batch_size=batch_size).double() * s0 + m0 for name, run in runs.items()
        }
        for d in shifts:
            xd, md, sd = view(d)
            mask = overlap_mask((crop, crop), d, margin)
            for name, run in runs.items():
                out = predict(run, xd, batch_size=batch_size).double() * sd + md
                rows += _rows(name, dataset, "fov", ids, d, _nmse(out, fourier_shift(outs0[name], d), mask))
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def shift_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Tidy rows of a per-pair frame: per model, dataset, protocol and shift, the mean,
    median, max and min over images of ``eq_nmse`` (and ``psnr_decline`` and ``grid_flip``
    where measured); the shift is written into ``metric`` as ``eq_nmse@dy,dx``."""
    rows = []
    keys = ["model", "dataset", "protocol", "dy", "dx"]
    for (model, dataset, protocol, dy, dx), d in frame.groupby(keys, sort=False):
        for metric in ("eq_nmse", "psnr_decline", "grid_flip"):
            v = d[metric].dropna().to_numpy() if metric in d else np.zeros(0)
            rows += stat_rows(
                v,
                model=model,
                dataset=dataset,
                acquisition="all",
                protocol=protocol,
                metric=f"{metric}@{dy:g},{dx:g}",
            )
    return summarise(rows)


def _kind(dy, dx) -> str:
    if dy == 0 and dx == 0:
        return "none"  # the unshifted pair: 0 for every model, left out of the statistics
    integral = float(dy).is_integer() and float(dx).is_integer()
    return "integer" if integral else "sub-pixel"


def beyond_table(frame: pd.DataFrame, protocol: str, models: Sequence[str] | None = None) -> pd.DataFrame:
    """Per model (and reference) of one ``protocol`` of a per-pair frame: the mean and max
    equivariance NMSE over integer and over sub-pixel shifts (the zero shift left out),
    and the mean decline in PSNR and the grid-flip rate where measured; with several seeds
    the mean over seeds of each, and ``... sd`` columns with the spread over seeds."""
    f = frame[frame.protocol == protocol]
    if "grid_flip" not in f:  # a frame written before grid flips were recorded
        f = f.assign(grid_flip=np.nan)
    if f.empty:
        raise ValueError(f"no {protocol!r} rows in the frame (it has {sorted(set(frame.protocol))})")
    f = f.assign(kind=[_kind(a, b) for a, b in zip(f.dy, f.dx)], seed=f["seed"] if "seed" in f else 0)
    f = f[f.kind != "none"]
    per_seed = f.groupby(["model", "seed", "kind"]).agg(
        mean=("eq_nmse", "mean"),
        max=("eq_nmse", "max"),
        decline=("psnr_decline", "mean"),
        flip=("grid_flip", "mean"),
    )
    wide = per_seed.unstack("kind")
    names = {"decline": "psnr_decline mean", "flip": "grid_flip rate"}
    wide.columns = [f"{names.get(stat, f'eq_nmse {stat}')} ({kind})" for stat, kind in wide.columns]
    wide = wide.dropna(axis=1, how="all")
    g = wide.groupby(level="model", sort=False)
    out = g.mean()
    if f.seed.nunique() > 1:
        out = out.join(g.std().add_suffix(" sd"))
    order = [m for m in (models or []) if m in out.index] + [m for m in out.index if m not in (models or [])]
    return out.loc[order]


def frontier_points(
    frame: pd.DataFrame,
    in_distribution: pd.DataFrame,
    models: Sequence[str],
    *,
    offset: float = 0.5,
) -> pd.DataFrame:
    """Per model: the sub-pixel protocol's mean equivariance NMSE over the shifts with an
    ``offset`` (default: half a pixel) on at least one axis and no integer part, against
    the unshifted reconstruction PSNR of notebook 03's table (acquisition ``all``), each the
    mean over seeds with ``... sd`` over seeds."""
    f = frame[(frame.protocol == "subpixel") & frame.model.isin(models)]
    f = f[((f.dy == offset) & (f.dx.isin([0.0, offset]))) | ((f.dx == offset) & (f.dy == 0.0))]
    f = f.assign(seed=f["seed"] if "seed" in f else 0)
    x = f.groupby(["model", "seed"]).eq_nmse.mean()
    t = in_distribution
    t = t.assign(seed=t["seed"] if "seed" in t else 0)
    t = t[
        (t.metric == "psnr")
        & (t.protocol == "unshifted")
        & (t.acquisition == "all")
        & (t.statistic == "mean")
    ]
    y = t[t.model.isin(models)].groupby(["model", "seed"]).value.first()
    both = pd.DataFrame({"x": x, "y": y}).dropna()
    g = both.groupby(level="model")
    label_x, label_y = f"eq NMSE at {offset:g} px", "PSNR (dB)"
    out = pd.DataFrame(
        {label_x: g.x.mean(), f"{label_x} sd": g.x.std(), label_y: g.y.mean(), f"{label_y} sd": g.y.std()}
    )
    out["seeds"] = g.size()
    return out.loc[[m for m in models if m in out.index]]


def target_check(
    points: pd.DataFrame, candidates: Sequence[str], *, against: str = "LPF-3", baseline: str = "Baseline"
) -> pd.DataFrame:
    """Notebook 06's targets per candidate (rows of :func:`frontier_points`): its
    half-pixel error over ``against``'s (target: at most 1/3), and its PSNR minus
    ``baseline``'s next to the larger of the two seed spreads (no reconstruction cost: the
    difference is within that spread, or positive)."""
    x, y = points.columns[0], "PSNR (dB)"
    rows = []
    for c in [c for c in candidates if c in points.index]:
        ratio = points.loc[c, x] / points.loc[against, x]
        gap = points.loc[c, y] - points.loc[baseline, y]
        spread = np.nanmax(
            [points.loc[c].get(f"{y} sd", np.nan), points.loc[baseline].get(f"{y} sd", np.nan)]
        )
        rows.append(
            {
                "model": c,
                f"{x} / {against}": ratio,
                "target <= 1/3 reached": bool(ratio <= 1 / 3),
                f"PSNR - {baseline} (dB)": gap,
                "PSNR seed sd (dB)": spread,
                "no reconstruction cost": bool(gap >= 0 or (np.isfinite(spread) and -gap <= spread)),
            }
        )
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()

"""Evaluation of trained runs: the paper's metrics, shift protocols and result tables.

Everything the evaluation notebooks (03 in distribution, 04 out of distribution) compute
lives here; :mod:`apslib.metrics` keeps the low-level shift helpers.

Conventions
-----------
``F`` is a trained U-Net followed by the run's output clamp (``[-6, 6]``, as in training),
acting on instance-normalised images. ``T_k`` is the circular shift by ``k = (dy, dx)``.

* **Equivariance metrics** (per image) compare ``a = F(T_k x)`` with the reference
  ``b = T_k F(x)`` in normalised units: ``NMSE = ||a - b||^2 / ||b||^2``;
  ``PSNR = 10 log10(peak^2 / mean((a - b)^2))`` with ``peak = max |b|`` (the reference's
  maximum for non-negative images); ``SSIM`` with :func:`fastmri.evaluate.ssim` on the
  ``(1, H, W)`` pair and ``maxval = peak``. An exactly equivariant model gives NMSE 0 and
  PSNR ``inf``: it is stored as ``inf`` (CSV ``inf``, JSON the string ``"inf"``);
  :func:`format_table` prints it as ``inf`` and the heatmaps floor NMSE at
  :data:`PLOT_FLOOR`.
* **Reconstruction metrics** (per volume, unshifted) use fastmri's own ``nmse``, ``psnr``
  (``maxval`` = the volume's ``max_value``) and ``ssim`` on the de-normalised output
  ``out * std + mean`` against the de-normalised target, averaged over volumes, per
  acquisition (``PD`` = ``CORPD_FBK``, ``PDFS`` = ``CORPDFS_FBK``) and ``all``. The
  zero-filled input is evaluated the same way as the reference row ``"Zero-filled"``.
* **Decline in PSNR** (paper Table 4): per volume
  ``|PSNR(F(x), y) - PSNR(F(T_k x), T_k y)|`` with fastmri's psnr and the volume max.
* **Random protocol** (the paper's): one shift per volume (per image out of
  distribution), each axis uniform in ``[-max_shift, max_shift - 1]``, drawn with a
  ``torch.Generator`` seeded by ``seed`` in volume order.
* **Exhaustive protocol**: every shift modulo ``2**depth`` on both axes (a circular U-Net
  with ``depth`` stride-2 levels is exactly equivariant to shifts by multiples of
  ``2**depth``, so these are all the distinct cases) on ``sweep_slices`` evenly spaced
  slices; reports the worst case (max NMSE, min PSNR, min SSIM) besides the mean.
* **Flips** (APS models): a ``(slice, shift)`` pair flips when some level chooses a grid
  other than the one the shift predicts from the unshifted input's choice (the recursion
  of notebook 01, section 5). Counted by the *first* level that deviates (later levels of
  a flipped pair see a different signal and are not counted again). ``phase_margin``
  ``min`` is the smallest relative top-2 polyphase-norm gap seen on the evaluated inputs.

Tidy tables have one row per ``(model, dataset, acquisition, protocol, metric,
statistic)`` with ``value`` and the sample count ``n``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .data import ACQUISITION_NAMES
from .io import atomic_open, atomic_write_text
from .shifts import roll2d, seeded_shifts, shift_each, shift_grid
from .polyphase import PHASES

__all__ = [
    "COLUMNS", "PLOT_FLOOR", "ACQ_SHORT", "ModelRun", "ValData",
    "image_metrics", "volume_metrics", "predict", "load_runs", "load_val", "volume_shifts",
    "count_flips", "margins", "evaluate_in_distribution", "sweep", "evaluate_ood",
    "evaluate_runs", "summarise", "write_table", "read_table", "table1", "table2",
    "table4", "worst_case_table", "format_table", "Examples", "examples", "write_examples",
    "read_examples", "val_example", "plot_shift_heatmaps", "main",
]

COLUMNS = ["model", "dataset", "acquisition", "protocol", "metric", "statistic", "value", "n"]
ACQ_SHORT = ACQUISITION_NAMES  # the old name
PLOT_FLOOR = 1e-20  # NMSE floor for log-scale plots (exact zeros are drawn at this value)
EQ_METRICS = ("eq_nmse", "eq_psnr", "eq_ssim")
TRAIN_HINT = ("train them with notebooks/02_train.ipynb (`python -m apslib.notebooks --only 02`) "
              "or `python -m apslib.train --data DATA --run-dir {run_dir} --model NAME`")


# --------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------

def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def _scalar(v) -> float:
    """fastmri's metrics return numpy scalars or 1-element arrays."""
    return float(np.asarray(v, dtype=np.float64).reshape(-1)[0])


def _nmse(err_sum: np.ndarray, ref_energy: np.ndarray) -> np.ndarray:
    """``||a - b||^2 / ||b||^2`` from the per-image sums (0 when both are 0)."""
    return err_sum / np.maximum(ref_energy, np.finfo(np.float64).tiny)


def image_metrics(pred, ref) -> dict[str, np.ndarray]:
    """Per-image ``eq_nmse``, ``eq_psnr`` and ``eq_ssim`` of ``pred`` against ``ref``.

    ``pred``/``ref``: ``(N, H, W)`` or ``(N, 1, H, W)``. See the module docstring for the
    definitions (reference = ``ref``; PSNR/SSIM data range = ``max |ref|``; identical
    images give NMSE 0, PSNR ``inf``, SSIM 1).
    """
    from fastmri.evaluate import ssim as fm_ssim

    a, b = _np(pred), _np(ref)
    if a.shape != b.shape:
        raise ValueError(f"pred {a.shape} and ref {b.shape} differ in shape")
    a = a.reshape(-1, *a.shape[-2:])
    b = b.reshape(-1, *b.shape[-2:])
    err = ((a - b) ** 2).reshape(len(a), -1)
    nmse = _nmse(err.sum(1), (b ** 2).reshape(len(b), -1).sum(1))
    peak = np.abs(b).reshape(len(b), -1).max(1)
    mse = err.mean(1)
    with np.errstate(divide="ignore"):
        psnr = np.where(mse > 0, 10 * np.log10(peak ** 2 / np.where(mse > 0, mse, 1)), np.inf)
    ssim = np.array([1.0 if not mse[i] else
                     _scalar(fm_ssim(b[i][None], a[i][None], maxval=float(peak[i]) or 1.0))
                     for i in range(len(a))], dtype=np.float64)
    return {"eq_nmse": nmse, "eq_psnr": psnr, "eq_ssim": ssim}


def volume_metrics(pred, target, maxval: float) -> dict[str, float]:
    """fastmri's ``nmse``, ``psnr`` and ``ssim`` of one ``(S, H, W)`` volume
    (de-normalised) against its target, with data range ``maxval``."""
    from fastmri import evaluate as fe

    gt, pr = _np(target), _np(pred)
    return {"nmse": _scalar(fe.nmse(gt, pr)), "psnr": _scalar(fe.psnr(gt, pr, maxval=maxval)),
            "ssim": _scalar(fe.ssim(gt, pr, maxval=maxval))}


# --------------------------------------------------------------------------------------
# Models and data
# --------------------------------------------------------------------------------------

@dataclass
class ModelRun:
    """A trained run: its display name, model (eval mode), output clamp and config."""

    name: str
    model: torch.nn.Module
    clamp: float | None
    config: object
    path: Path

    @property
    def depth(self) -> int:
        return int(self.model.config.depth)

    @property
    def is_aps(self) -> bool:
        return self.model.config.variant == "aps"


def load_runs(run_dir, models: Sequence[str], device: str | torch.device = "cpu") -> dict[str, ModelRun]:
    """Load ``run_dir/<slug>/`` of each paper name in ``models``; a clear error naming
    ``run_dir`` and how to train them when some are missing."""
    from .device import resolve_device
    from .runs import CHECKPOINT_FILE, load_model, read_run, slugify

    run_dir = Path(run_dir)
    dev = resolve_device(device) if isinstance(device, str) else device
    missing = [m for m in models if not (run_dir / slugify(m) / CHECKPOINT_FILE).is_file()]
    if missing:
        raise FileNotFoundError(
            f"no trained run for {missing} in {run_dir} (looked for "
            f"{', '.join(str(run_dir / slugify(m) / CHECKPOINT_FILE) for m in missing)}): "
            + TRAIN_HINT.format(run_dir=run_dir))
    out = {}
    for name in models:
        path = run_dir / slugify(name)
        run = read_run(path)
        out[name] = ModelRun(name, load_model(path, dev), run["config"].clamp, run["config"], path)
    return out


@torch.no_grad()
def predict(run: ModelRun, x: torch.Tensor, *, batch_size: int = 32,
            return_phases: bool = False, uniform_batches: bool = False):
    """``F(x)`` for ``(N, 1, H, W)`` ``x`` in batches (float32 output on the CPU), and with
    ``return_phases`` the per-level phase indices ``(N,)`` (APS levels only).
    ``uniform_batches`` pads a short last batch (with copies of its first image, dropped
    from the result) so every image goes through a pass of the same batch shape: kernels
    round differently per batch size, not per position in a batch."""
    dev = next(run.model.parameters()).device
    outs, phases = [], []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size].to(dev, torch.float32)
        n = xb.shape[0]
        if uniform_batches and x.shape[0] > batch_size and n < batch_size:
            xb = torch.cat([xb, xb[:1].expand(batch_size - n, *xb.shape[1:])])
        y, ph = run.model(xb, return_phases=True)
        y, ph = y[:n], [p if p is None else p[:n] for p in ph]
        if run.clamp:
            y = y.clamp(-run.clamp, run.clamp)
        outs.append(y.float().cpu())
        phases.append([p.cpu() for p in ph if p is not None])
    out = torch.cat(outs) if outs else torch.zeros(0)
    if not return_phases:
        return out
    levels = len(phases[0]) if phases else 0
    return out, [torch.cat([p[lv] for p in phases]) for lv in range(levels)]


@dataclass
class ValData:
    """The validation slices in memory: normalised ``image``/``target`` ``(N, 1, H, W)``,
    per-slice ``mean``/``std``/``max_value`` ``(N,)``, ``fname``, ``slice_num`` and short
    ``acquisition`` (``PD``/``PDFS``) lists."""

    image: torch.Tensor
    target: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    max_value: torch.Tensor
    fname: list
    slice_num: list
    acquisition: list
    volumes: list = field(default_factory=list)

    def __post_init__(self):
        if not self.volumes:
            self.volumes = sorted(set(self.fname))

    def __len__(self) -> int:
        return self.image.shape[0]

    def denorm(self, x: torch.Tensor, index=None) -> torch.Tensor:
        from .data import denormalize

        idx = slice(None) if index is None else index
        return denormalize(x, self.mean[idx], self.std[idx])

    def volume_index(self, vol: str) -> list[int]:
        return [i for i, f in enumerate(self.fname) if f == vol]


def load_val(data_root, *, center_fractions=(0.08,), accelerations=(4,), seed: int = 0) -> ValData:
    """All validation slices of ``data_root`` (fixed masks per file) as :class:`ValData`."""
    from .data import make_dataset

    ds = make_dataset(data_root, "val", center_fractions=center_fractions,
                      accelerations=accelerations, seed=seed)
    items = [ds[i] for i in range(len(ds))]
    return ValData(
        image=torch.stack([s.image for s in items]).unsqueeze(1).float(),
        target=torch.stack([s.target for s in items]).unsqueeze(1).float(),
        mean=torch.tensor([float(s.mean) for s in items], dtype=torch.float64),
        std=torch.tensor([float(s.std) for s in items], dtype=torch.float64),
        max_value=torch.tensor([float(s.max_value) for s in items], dtype=torch.float64),
        fname=[str(s.fname) for s in items], slice_num=[int(s.slice_num) for s in items],
        acquisition=[ACQ_SHORT.get(s.acquisition, s.acquisition) for s in items])


volume_shifts = seeded_shifts  # the random protocol's shifts, one per volume (apslib.shifts)


# --------------------------------------------------------------------------------------
# Flips and margins
# --------------------------------------------------------------------------------------

def count_flips(phases_x: Sequence[torch.Tensor], phases_shifted: Sequence[torch.Tensor],
                shifts: torch.Tensor) -> torch.Tensor:
    """First level (1-based) at which ``T_k x`` chose a grid other than the one predicted
    from ``x``'s choice, per pair; 0 where every level follows the shift.

    ``phases_x[l]``/``phases_shifted[l]``: ``(N,)`` indices into :data:`PHASES` chosen for
    ``x`` and ``T_k x``; ``shifts``: ``(N, 2)``. Level 1 sees the shift ``k``; if ``x``
    chose ``(i, j)``, ``T_k x`` should choose ``p' = ((i + dy) % 2, (j + dx) % 2)`` and the
    next level sees ``((dy + i - p'_0) / 2, (dx + j - p'_1) / 2)``.
    """
    shifts = torch.as_tensor(shifts, dtype=torch.long).reshape(-1, 2)
    dy, dx = shifts[:, 0].clone(), shifts[:, 1].clone()
    first = torch.zeros(len(shifts), dtype=torch.long)
    for level, (px, ps) in enumerate(zip(phases_x, phases_shifted), start=1):
        px, ps = px.long().cpu(), ps.long().cpu()
        i, j = px // 2, px % 2  # PHASES[idx] == (idx // 2, idx % 2)
        ei, ej = (i + dy) % 2, (j + dx) % 2
        bad = (ps != 2 * ei + ej) & (first == 0)
        first[bad] = level
        dy, dx = torch.div(dy + i - ei, 2, rounding_mode="floor"), torch.div(dx + j - ej, 2, rounding_mode="floor")
    return first


assert all(PHASES[k] == (k // 2, k % 2) for k in range(4))


@torch.no_grad()
def margins(run: ModelRun, x: torch.Tensor, *, batch_size: int = 32) -> torch.Tensor:
    """Smallest relative top-2 polyphase-norm gap over APS levels, per image ``(N,)``
    (``inf`` for models without APS levels)."""
    from .metrics import phase_margins

    dev = next(run.model.parameters()).device
    out = []
    for start in range(0, x.shape[0], batch_size):
        m = phase_margins(run.model, x[start:start + batch_size].to(dev, torch.float32))
        out.append(torch.stack(m).min(0).values if m else
                   torch.full((min(batch_size, x.shape[0] - start),), math.inf, dtype=torch.float64))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


# --------------------------------------------------------------------------------------
# Tidy rows
# --------------------------------------------------------------------------------------

STATS = {"mean": np.mean, "median": np.median, "max": np.max, "min": np.min}


def _stat_rows(values, *, stats=("mean", "median", "max", "min"), **keys) -> list[dict]:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return []
    with np.errstate(invalid="ignore"):
        return [{**keys, "statistic": s, "value": float(STATS[s](v)), "n": int(v.size)}
                for s in stats]


def _flip_rows(first: torch.Tensor, margin_min: float, depth: int, **keys) -> list[dict]:
    n = int(first.numel())
    rows = [{**keys, "metric": "flips", "statistic": "count", "value": float((first > 0).sum()), "n": n}]
    rows += [{**keys, "metric": f"flips_level{lv}", "statistic": "count",
              "value": float((first == lv).sum()), "n": n} for lv in range(1, depth + 1)]
    rows.append({**keys, "metric": "phase_margin", "statistic": "min", "value": float(margin_min), "n": n})
    return rows


def summarise(rows: list[dict]) -> pd.DataFrame:
    """The tidy :data:`COLUMNS` table of ``rows``."""
    return pd.DataFrame(rows, columns=COLUMNS)


def _groups(acqs: Sequence[str]):
    acqs = list(acqs)
    for a in sorted(set(acqs)):
        yield a, np.array([x == a for x in acqs])
    yield "all", np.ones(len(acqs), dtype=bool)


# --------------------------------------------------------------------------------------
# Protocols
# --------------------------------------------------------------------------------------

def evaluate_in_distribution(runs: dict[str, ModelRun], val: ValData, *, max_shift: int = 16,
                             seed: int = 0, batch_size: int = 32, dataset: str = "val",
                             zero_filled: bool = True) -> pd.DataFrame:
    """Random protocol on the validation set: equivariance (per slice), reconstruction
    and decline in PSNR (per volume), flips; tidy rows (see module docstring)."""
    vols = val.volumes
    vshift = volume_shifts(len(vols), max_shift, seed)
    vidx = {v: val.volume_index(v) for v in vols}
    shifts = torch.zeros(len(val), 2, dtype=torch.long)
    for v, k in zip(vols, vshift):
        shifts[vidx[v]] = k
    vol_acq = [val.acquisition[vidx[v][0]] for v in vols]
    y = val.denorm(val.target)
    y_shift = shift_each(y, shifts)
    rows: list[dict] = []

    def recon_rows(name, pred, pred_shift=None):
        per = {"nmse": [], "psnr": [], "ssim": [], "psnr_decline": []}
        for v in vols:
            ix = vidx[v]
            mx = float(val.max_value[ix[0]])
            m = volume_metrics(pred[ix, 0], y[ix, 0], mx)
            for key in ("nmse", "psnr", "ssim"):
                per[key].append(m[key])
            if pred_shift is not None:
                from fastmri.evaluate import psnr as fm_psnr
                ps = _scalar(fm_psnr(_np(y_shift[ix, 0]), _np(pred_shift[ix, 0]), maxval=mx))
                per["psnr_decline"].append(abs(m["psnr"] - ps))
        for acq, mask in _groups(vol_acq):
            keys = dict(model=name, dataset=dataset, acquisition=acq)
            for metric in ("nmse", "psnr", "ssim"):
                rows.extend(_stat_rows(np.array(per[metric])[mask], stats=("mean", "min", "max"),
                                       protocol="unshifted", metric=metric, **keys))
            if pred_shift is not None:
                rows.extend(_stat_rows(np.array(per["psnr_decline"])[mask], stats=("mean", "max"),
                                       protocol="random", metric="psnr_decline", **keys))

    if zero_filled:
        recon_rows("Zero-filled", val.denorm(val.image))
    x_shift = shift_each(val.image, shifts)
    for name, run in runs.items():
        out, ph = predict(run, val.image, batch_size=batch_size, return_phases=True)
        out_s, ph_s = predict(run, x_shift, batch_size=batch_size, return_phases=True)
        eq = image_metrics(out_s, shift_each(out, shifts))
        for acq, mask in _groups(val.acquisition):
            for metric in EQ_METRICS:
                rows.extend(_stat_rows(eq[metric][mask], model=name, dataset=dataset,
                                       acquisition=acq, protocol="random", metric=metric))
        recon_rows(name, val.denorm(out), val.denorm(out_s))
        if run.is_aps:
            first = count_flips(ph, ph_s, shifts)
            rows.extend(_flip_rows(first, float(margins(run, val.image, batch_size=batch_size).min()),
                                   run.depth, model=name, dataset=dataset, acquisition="all",
                                   protocol="random"))
    return summarise(rows)


def sweep_indices(n: int, count: int) -> list[int]:
    """``count`` evenly spaced indices in ``range(n)`` (all of them if ``count >= n``)."""
    if count is None or count >= n:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, max(int(count), 1))})


@torch.no_grad()
def sweep(runs: dict[str, ModelRun], x: torch.Tensor, *, acquisitions: Sequence[str] | None = None,
          dataset: str = "val", batch_size: int = 32, image_ids: Sequence | None = None):
    """Exhaustive protocol: every shift modulo ``2**depth`` of every image of ``x``
    ``(N, 1, H, W)``. Returns ``(tidy rows, per-pair frame)``; the frame has one row per
    ``(model, image, dy, dx)`` with the three equivariance metrics and the flip level.

    The reference ``F(x)`` is the shift ``(0, 0)`` member of the same batched pass as the
    shifted copies: CPU (and GPU) convolutions round differently for different batch sizes
    (a few 1e-7 in float32), which would otherwise show up as a spurious equivariance error
    of an exactly equivariant model."""
    acquisitions = list(acquisitions) if acquisitions is not None else ["all"] * len(x)
    image_ids = list(image_ids) if image_ids is not None else list(range(len(x)))
    rows, frames = [], []
    for name, run in runs.items():
        period = 2 ** run.depth
        grid = torch.tensor(shift_grid(period), dtype=torch.long)
        assert grid[0].tolist() == [0, 0], "the reference is the first (zero) shift"
        per = []
        for b in range(len(x)):
            xs = torch.stack([roll2d(x[b], k) for k in grid.tolist()])
            out_s, ph_s = predict(run, xs, batch_size=batch_size, return_phases=True,
                                  uniform_batches=True)
            ref = torch.stack([roll2d(out_s[0], k) for k in grid.tolist()])
            eq = image_metrics(out_s, ref)
            first = (count_flips([p[0].expand(len(grid)) for p in ph_s], ph_s, grid)
                     if run.is_aps else torch.zeros(len(grid), dtype=torch.long))
            per.append(pd.DataFrame({"model": name, "dataset": dataset, "image": image_ids[b],
                                     "acquisition": acquisitions[b], "dy": grid[:, 0].numpy(),
                                     "dx": grid[:, 1].numpy(), **eq, "flip_level": first.numpy()}))
        frame = pd.concat(per, ignore_index=True)
        frames.append(frame)
        acq_set = sorted(set(acquisitions))
        groups = [(a, frame.acquisition == a) for a in acq_set if a != "all"] + [("all", slice(None))]
        for acq, mask in groups:
            sub = frame[mask]
            for metric in EQ_METRICS:
                rows.extend(_stat_rows(sub[metric].to_numpy(), model=name, dataset=dataset,
                                       acquisition=acq, protocol="exhaustive", metric=metric))
        if run.is_aps:
            rows.extend(_flip_rows(torch.tensor(frame.flip_level.to_numpy(dtype=np.int64)),
                                   float(margins(run, x, batch_size=batch_size).min()), run.depth,
                                   model=name, dataset=dataset, acquisition="all",
                                   protocol="exhaustive"))
    return summarise(rows), (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame())


def evaluate_ood(runs: dict[str, ModelRun], sets: dict, *, max_shift: int = 16, seed: int = 0,
                 sweep_images: int = 4, batch_size: int = 32):
    """Equivariance on each out-of-distribution :class:`~apslib.data.ImageSet`: random
    protocol (one seeded shift per image) and the exhaustive protocol on ``sweep_images``
    evenly spaced images per set. Returns ``(tidy table, per-pair sweep frame)``."""
    rows, frames = [], []
    for set_name, images in sets.items():
        x = images.stack().float()
        names = images.names
        shifts = volume_shifts(len(x), max_shift, seed)
        x_shift = shift_each(x, shifts)
        for name, run in runs.items():
            out, ph = predict(run, x, batch_size=batch_size, return_phases=True)
            out_s, ph_s = predict(run, x_shift, batch_size=batch_size, return_phases=True)
            eq = image_metrics(out_s, shift_each(out, shifts))
            for metric in EQ_METRICS:
                rows.extend(_stat_rows(eq[metric], model=name, dataset=set_name,
                                       acquisition="all", protocol="random", metric=metric))
            if run.is_aps:
                rows.extend(_flip_rows(count_flips(ph, ph_s, shifts),
                                       float(margins(run, x, batch_size=batch_size).min()),
                                       run.depth, model=name, dataset=set_name,
                                       acquisition="all", protocol="random"))
        if sweep_images:
            idx = sweep_indices(len(x), sweep_images)
            t, f = sweep(runs, x[idx], dataset=set_name, batch_size=batch_size,
                         image_ids=[names[i] for i in idx])
            rows.extend(t.to_dict("records"))
            frames.append(f)
    return summarise(rows), (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame())


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------

def _json_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def write_table(df: pd.DataFrame, path) -> Path:
    """Write ``df`` atomically as CSV to ``path`` (``.csv``) and a JSON copy (``.json``,
    records; non-finite values as the strings ``"inf"``/``"-inf"``/``"nan"``)."""
    import json

    path = Path(path).with_suffix(".csv")
    atomic_write_text(path, df.to_csv(index=False))
    records = [{k: _json_value(v.item() if hasattr(v, "item") else v) for k, v in r.items()}
               for r in df.to_dict("records")]
    atomic_write_text(path.with_suffix(".json"), json.dumps(records, indent=1) + "\n")
    return path


def read_table(path) -> pd.DataFrame:
    """Read a table written by :func:`write_table` (``inf`` comes back as ``inf``)."""
    return pd.read_csv(Path(path).with_suffix(".csv"))


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------

@dataclass
class EvalResult:
    table: pd.DataFrame
    sweep: pd.DataFrame
    paths: dict
    seconds: float
    examples: dict = field(default_factory=dict)


def evaluate_runs(run_dir, data_root, models: Sequence[str], results_dir, *, seed: int = 0,
                  max_shift: int = 16, sweep_slices: int = 8, device: str = "auto",
                  batch_size: int = 32, example_index: int | None = None,
                  prefix: str = "in_distribution") -> EvalResult:
    """In-distribution evaluation of the trained ``models`` of ``run_dir`` on the
    validation split of ``data_root``: random protocol + exhaustive sweep on
    ``sweep_slices`` slices. Writes ``results_dir/{prefix}.csv/.json`` (tidy table),
    ``results_dir/{prefix}_sweep.csv`` (per (model, slice, shift)) and
    ``results_dir/{prefix}_examples.npz`` (:class:`Examples` of validation slice
    ``example_index``, default the middle slice of the first volume, under its volume's
    random shift)."""
    start = time.perf_counter()
    runs = load_runs(run_dir, models, device)
    cfg = next(iter(runs.values())).config
    val = load_val(data_root, center_fractions=cfg.center_fractions,
                   accelerations=cfg.accelerations, seed=seed)
    table = evaluate_in_distribution(runs, val, max_shift=max_shift, seed=seed, batch_size=batch_size)
    idx = sweep_indices(len(val), sweep_slices)
    ids = [f"{Path(val.fname[i]).stem}:{val.slice_num[i]}" for i in idx]
    t2, frame = sweep(runs, val.image[idx], acquisitions=[val.acquisition[i] for i in idx],
                      batch_size=batch_size, image_ids=ids)
    table = pd.concat([table, t2], ignore_index=True)
    ex = {"val": val_example(runs, val, example_index, max_shift=max_shift, seed=seed)}
    results_dir = Path(results_dir)
    paths = {"table": write_table(table, results_dir / f"{prefix}.csv"),
             "sweep": write_table(frame, results_dir / f"{prefix}_sweep.csv"),
             "examples": write_examples(results_dir / f"{prefix}_examples.npz", ex)}
    return EvalResult(table, frame, paths, time.perf_counter() - start, ex)


def val_example(runs: dict[str, ModelRun], val: ValData, index: int | None = None, *,
                max_shift: int = 16, seed: int = 0) -> Examples:
    """:class:`Examples` of validation slice ``index`` (default: the middle slice of the
    first volume) with its target, under the random shift its volume gets in the random
    protocol (:func:`volume_shifts`)."""
    if index is None:
        first = val.volume_index(val.volumes[0])
        index = first[len(first) // 2]
    if not -len(val) <= index < len(val):
        raise IndexError(f"example_index {index} is out of range: the validation split has {len(val)} slices")
    index %= len(val)
    k = volume_shifts(len(val.volumes), max_shift, seed)[val.volumes.index(val.fname[index])].tolist()
    label = f"{Path(val.fname[index]).name}, slice {val.slice_num[index]} ({val.acquisition[index]})"
    return examples(runs, val.image[index], k, target=val.target[index], label=label)


def evaluate_runs_ood(run_dir, models: Sequence[str], results_dir, *, size: int = 128,
                      image_dir=None, image_limit: int | None = None, seed: int = 0,
                      max_shift: int = 16, sweep_images: int = 4,
                      noise_count: int = 8, device: str = "auto", batch_size: int = 32,
                      prefix: str = "ood") -> EvalResult:
    """Out-of-distribution evaluation on every set of :func:`apslib.data.ood_sets`; writes
    ``results_dir/{prefix}.csv/.json`` and ``{prefix}_sweep.csv``."""
    from .data import ood_sets

    start = time.perf_counter()
    runs = load_runs(run_dir, models, device)
    sets = ood_sets(size, image_dir=image_dir, image_limit=image_limit, noise_count=noise_count, seed=seed)
    table, frame = evaluate_ood(runs, sets, max_shift=max_shift, seed=seed,
                                sweep_images=sweep_images, batch_size=batch_size)
    ex = {}
    for name, images in sets.items():  # the first (readable) image of each set, its random shift
        k = volume_shifts(len(images), max_shift, seed)[0].tolist()
        first, x0 = next(images.items())  # loads one image, not the whole set again
        ex[name] = examples(runs, x0.float(), k, label=f"{name}: {first}")
    results_dir = Path(results_dir)
    paths = {"table": write_table(table, results_dir / f"{prefix}.csv"),
             "sweep": write_table(frame, results_dir / f"{prefix}_sweep.csv"),
             "examples": write_examples(results_dir / f"{prefix}_examples.npz", ex)}
    return EvalResult(table, frame, paths, time.perf_counter() - start, ex)


# --------------------------------------------------------------------------------------
# Paper-shaped tables
# --------------------------------------------------------------------------------------

def _pick(df, **eq):
    m = np.ones(len(df), dtype=bool)
    for k, v in eq.items():
        m &= (df[k] == v).to_numpy()
    return df[m]


def _order(index, models):
    order = [m for m in (models or []) if m in index]
    return order + [m for m in index if m not in order]


def table1(df: pd.DataFrame, models: Sequence[str] | None = None, *, dataset: str = "val") -> pd.DataFrame:
    """Paper Table 1: equivariance NMSE/SSIM (random protocol, mean over slices) and
    unshifted NMSE/PSNR/SSIM (mean over volumes), PD / PDFS / all."""
    d = _pick(df, dataset=dataset, statistic="mean")
    d = d[((d.protocol == "random") & d.metric.isin(["eq_nmse", "eq_ssim"]))
          | ((d.protocol == "unshifted") & d.metric.isin(["nmse", "psnr", "ssim"]))]
    t = d.pivot_table(index="model", columns=["metric", "acquisition"], values="value", aggfunc="first")
    cols = [(m, a) for m in ("eq_nmse", "eq_ssim", "nmse", "psnr", "ssim")
            for a in ("PD", "PDFS", "all") if (m, a) in t.columns]
    return t.loc[_order(t.index, models), cols]


def table4(df: pd.DataFrame, models: Sequence[str] | None = None, *, dataset: str = "val") -> pd.DataFrame:
    """Paper Table 4: decline in PSNR (dB) under the random shifts, mean and max over
    volumes, PD / PDFS / all."""
    d = _pick(df, dataset=dataset, metric="psnr_decline")
    t = d.pivot_table(index="model", columns=["statistic", "acquisition"], values="value", aggfunc="first")
    cols = [(s, a) for s in ("mean", "max") for a in ("PD", "PDFS", "all") if (s, a) in t.columns]
    return t.loc[_order(t.index, models), cols]


def table2(df: pd.DataFrame, models: Sequence[str] | None = None, *, protocol: str = "random") -> pd.DataFrame:
    """Paper Table 2 on every out-of-distribution set: mean equivariance NMSE and SSIM
    (``protocol="random"``), or worst case (``"exhaustive"``: max NMSE, min SSIM)."""
    stat = {"eq_nmse": "mean", "eq_ssim": "mean"} if protocol == "random" else {"eq_nmse": "max", "eq_ssim": "min"}
    d = _pick(df, protocol=protocol, acquisition="all")
    d = d[d.metric.isin(list(stat)) & (d.statistic == d.metric.map(stat))]
    t = d.pivot_table(index="model", columns=["dataset", "metric"], values="value", aggfunc="first")
    return t.loc[_order(t.index, models)]


def worst_case_table(df: pd.DataFrame, models: Sequence[str] | None = None, *,
                     dataset: str | None = "val") -> pd.DataFrame:
    """Exhaustive protocol per model (and dataset): mean and max NMSE, min PSNR, min SSIM,
    flip count, pairs and smallest phase margin (APS models)."""
    d = _pick(df, protocol="exhaustive") if dataset is None else _pick(df, protocol="exhaustive", dataset=dataset)
    d = d[d.acquisition == "all"]
    wanted = [("eq_nmse", "mean"), ("eq_nmse", "max"), ("eq_psnr", "min"), ("eq_ssim", "min"),
              ("flips", "count"), ("phase_margin", "min")]
    d = d[[(m, s) in wanted for m, s in zip(d.metric, d.statistic)]]
    t = d.assign(col=d.metric + " " + d.statistic).pivot_table(
        index=["dataset", "model"] if dataset is None else "model", columns="col", values="value",
        aggfunc="first")
    n = d[d.metric == "eq_nmse"].groupby(["dataset", "model"] if dataset is None else "model").n.first()
    t["pairs"] = n
    cols = [f"{m} {s}" for m, s in wanted if f"{m} {s}" in t.columns] + ["pairs"]
    t = t[cols]
    if dataset is not None:
        t = t.loc[_order(t.index, models)]
    return t


def format_table(t: pd.DataFrame, digits: int = 4):
    """A display Styler: scientific notation for small numbers, ``inf`` kept as ``inf``,
    missing entries (e.g. flips of non-APS models) as ``-``."""
    def fmt(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        if isinstance(v, float) and math.isinf(v):
            return "inf" if v > 0 else "-inf"
        v = float(v)
        return f"{v:.{digits}g}" if (v == 0 or 1e-3 <= abs(v) < 1e5) else f"{v:.{digits - 1}e}"
    return t.style.format(fmt)


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------

@dataclass
class Examples:
    """One image ``x`` (``(H, W)``), one shift ``k`` and, per model (``models``), ``out``
    ``= F(x)`` and ``out_shifted = F(T_k x)`` as ``(M, H, W)`` float32 arrays; the target
    ``y`` when known. ``ref = T_k F(x)``, ``diff = |F(T_k x) - T_k F(x)|`` and the pair's
    ``nmse`` per model are derived (exact: a circular shift copies values)."""

    input: np.ndarray
    shift: tuple
    models: list
    out: np.ndarray
    out_shifted: np.ndarray
    target: np.ndarray | None = None
    label: str = ""

    def _roll(self, a):
        return np.roll(a, tuple(int(v) for v in self.shift), axis=(-2, -1))

    @property
    def input_shifted(self) -> np.ndarray:
        return self._roll(self.input)

    @property
    def ref(self) -> np.ndarray:
        return self._roll(self.out)

    @property
    def diff(self) -> np.ndarray:
        return np.abs(self.out_shifted.astype(np.float64) - self.ref.astype(np.float64))

    @property
    def nmse(self) -> np.ndarray:
        return _nmse((self.diff ** 2).sum(axis=(-2, -1)),
                     (self.ref.astype(np.float64) ** 2).sum(axis=(-2, -1)))


@torch.no_grad()
def examples(runs: dict[str, ModelRun], x: torch.Tensor, k: Sequence[int], *,
             target: torch.Tensor | None = None, label: str = "") -> Examples:
    """:class:`Examples` for one ``(1, H, W)`` image ``x`` and shift ``k``: each model runs
    ``x`` and ``T_k x`` in one batch of two (the same kernels for both, so rounding cannot
    pose as an equivariance error)."""
    k = tuple(int(v) for v in k)
    if x.dim() != 3 or x.shape[0] != 1:
        raise ValueError(f"examples: x must be one (1, H, W) image, got shape {tuple(x.shape)}")
    outs, outs_s = [], []
    for run in runs.values():
        y = predict(run, torch.stack([x, roll2d(x, k)]))
        outs.append(_np(y[0, 0]))
        outs_s.append(_np(y[1, 0]))
    return Examples(input=_np(x[0]).astype(np.float32), shift=k, models=list(runs),
                    out=np.stack(outs).astype(np.float32), out_shifted=np.stack(outs_s).astype(np.float32),
                    target=None if target is None else _np(target.reshape(x.shape[-2:])).astype(np.float32),
                    label=label)


def write_examples(path, items: dict[str, Examples]) -> Path:
    """Write ``{name: Examples}`` atomically into one ``.npz`` (read it with
    :func:`read_examples`)."""
    path = Path(path)
    arrays = {"names": np.array(list(items), dtype=str)}
    for i, ex in enumerate(items.values()):
        arrays.update({f"{i}_input": ex.input, f"{i}_shift": np.asarray(ex.shift, dtype=np.int64),
                       f"{i}_models": np.array(ex.models, dtype=str), f"{i}_out": ex.out,
                       f"{i}_out_shifted": ex.out_shifted, f"{i}_label": np.array(ex.label)})
        if ex.target is not None:
            arrays[f"{i}_target"] = ex.target
    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    return path


def read_examples(path) -> dict[str, Examples]:
    """The ``{name: Examples}`` written by :func:`write_examples`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no examples file {path}: notebooks 03 and 04 (apslib.evaluate."
                                "evaluate_runs / evaluate_runs_ood) write it next to the result tables")
    with np.load(path, allow_pickle=False) as z:
        out = {}
        for i, name in enumerate(z["names"].tolist()):
            out[name] = Examples(
                input=z[f"{i}_input"], shift=tuple(int(v) for v in z[f"{i}_shift"]),
                models=z[f"{i}_models"].tolist(), out=z[f"{i}_out"], out_shifted=z[f"{i}_out_shifted"],
                target=z[f"{i}_target"] if f"{i}_target" in z.files else None,
                label=str(z[f"{i}_label"]))
    return out


def plot_shift_heatmaps(frame: pd.DataFrame, *, metric: str = "eq_nmse", reduce: str = "max",
                        title: str = "", models: Sequence[str] | None = None):
    """Per model, ``metric`` over all shifts ``(dy, dx)`` modulo ``2**depth`` reduced over
    images (``"max"`` worst case or ``"mean"``), on one shared log colour scale for NMSE
    (zeros drawn at :data:`PLOT_FLOOR`) or a linear one (PSNR capped at 100 dB, SSIM)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm, Normalize

    names = _order(list(dict.fromkeys(frame.model)), models)
    grids = {}
    for name in names:
        sub = frame[frame.model == name]
        g = sub.groupby(["dy", "dx"])[metric].agg(reduce).unstack("dx")
        grids[name] = g.to_numpy(dtype=np.float64)
    allv = np.concatenate([g.ravel() for g in grids.values()])
    if metric == "eq_nmse":
        allv = np.maximum(allv, PLOT_FLOOR)
        norm = LogNorm(vmin=allv.min(), vmax=max(allv.max(), allv.min() * 10))
        grids = {n: np.maximum(g, PLOT_FLOOR) for n, g in grids.items()}
    else:
        if metric == "eq_psnr":
            grids = {n: np.minimum(g, 100.0) for n, g in grids.items()}
            allv = np.minimum(allv, 100.0)
        norm = Normalize(vmin=allv.min(), vmax=allv.max() if allv.max() > allv.min() else allv.min() + 1e-9)
    from .plots import TEXT_WIDTH

    panel = TEXT_WIDTH / (len(names) + 0.5)
    fig, axes = plt.subplots(1, len(names), figsize=(TEXT_WIDTH, panel + 0.7), squeeze=False,
                             layout="constrained")
    im = None
    label = {"eq_nmse": "equivariance NMSE", "eq_psnr": "equivariance PSNR (dB)",
             "eq_ssim": "equivariance SSIM"}.get(metric, metric)
    for c, (ax, name) in enumerate(zip(axes[0], names)):
        im = ax.imshow(grids[name], cmap="viridis", norm=norm)
        ax.set_title(name)
        n = grids[name].shape[-1]
        ticks = list(range(0, n, max(n // 4, 1)))
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        ax.grid(False)
        ax.set_xlabel("dx (pixels)")
        if c == 0:
            ax.set_ylabel("dy (pixels)")
    if im is not None:
        fig.colorbar(im, ax=axes[0].tolist(), shrink=0.9, label=f"{label}, {reduce} over images")
    fig.suptitle(title or f"Equivariance {metric} over all shifts")
    return fig


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------

def main(argv=None) -> int:
    from .runs import PAPER_MODELS

    ap = argparse.ArgumentParser(prog="python -m apslib.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--data", help="data root (in-distribution evaluation)")
    ap.add_argument("--results-dir", required=True)
    ap.add_argument("--models", nargs="+", default=list(PAPER_MODELS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-shift", type=int, default=16)
    ap.add_argument("--sweep-slices", type=int, default=8)
    ap.add_argument("--example-index", type=int, help="validation slice of the examples figure "
                    "(default: the middle slice of the first volume)")
    ap.add_argument("--ood", action="store_true", help="also evaluate the out-of-distribution sets")
    ap.add_argument("--ood-size", type=int, default=128)
    ap.add_argument("--image-dir", help="a folder of images (e.g. ImageNet val) as one more OOD set")
    ap.add_argument("--image-limit", type=int, help="at most this many images of --image-dir (by path)")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    try:
        if args.data:
            r = evaluate_runs(args.run_dir, args.data, args.models, args.results_dir, seed=args.seed,
                              max_shift=args.max_shift, sweep_slices=args.sweep_slices, device=args.device,
                              example_index=args.example_index)
            print(f"in distribution: {r.paths['table']} ({r.seconds:.1f} s)")
        if args.ood:
            r = evaluate_runs_ood(args.run_dir, args.models, args.results_dir, size=args.ood_size,
                                  image_dir=args.image_dir, image_limit=args.image_limit, seed=args.seed,
                                  max_shift=args.max_shift,
                                  device=args.device)
            print(f"out of distribution: {r.paths['table']} ({r.seconds:.1f} s)")
    except (FileNotFoundError, ValueError, IndexError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

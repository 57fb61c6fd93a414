"""The paper's shift protocols: random shifts (in and out of distribution), every shift
modulo ``2**depth``, grid flips and phase margins of the APS models.

Conventions
-----------
``F`` is a run's U-Net with its output clamp (:func:`apslib.evaluate.models.predict`),
``T_k`` the circular shift by ``k = (dy, dx)`` (:mod:`apslib.shifts`). The metrics are
:func:`apslib.metrics.image_metrics` (equivariance, per image, ``F(T_k x)`` against
``T_k F(x)`` in normalised units) and :func:`apslib.metrics.volume_metrics`
(reconstruction, per volume, de-normalised). Every function returns a tidy table
(:mod:`apslib.evaluate.tables`).

* **Random protocol** (the paper's): one shift per volume (per image out of
  distribution), each axis uniform in ``[-max_shift, max_shift - 1]``, drawn by
  :func:`apslib.shifts.seeded_shifts` with ``seed`` in volume order.
  :func:`evaluate_in_distribution` reports per acquisition (``PD``, ``PDFS``, ``all``):
  the equivariance metrics per slice; the unshifted reconstruction ``nmse``/``psnr``/
  ``ssim`` per volume (fastmri's, data range = the volume's ``max_value``), the zero-filled
  input as the reference row ``"Zero-filled"``; the **decline in PSNR** (paper Table 4)
  ``|PSNR(F(x), y) - PSNR(F(T_k x), T_k y)|`` per volume.
* **Exhaustive protocol** (:func:`exhaustive_shifts`): every shift modulo ``2**depth`` on
  both axes. A circular U-Net with ``depth`` stride-2 levels is exactly equivariant to
  shifts by multiples of ``2**depth``, so these are all the distinct cases. Reports the
  worst case (max NMSE, min PSNR, min SSIM) besides the mean; the per-pair frame keeps
  every ``(model, image, dy, dx)``.
* **Flips** (APS models, :func:`count_flips`): a ``(image, shift)`` pair flips when some
  level chooses a grid other than the one :func:`apslib.polyphase.predicted_phases`
  predicts from the unshifted input's choices. Counted by the *first* level that deviates
  (later levels of a flipped pair see a different signal and are not counted again).
  ``phase_margin min`` (:func:`smallest_phase_margin`) is the smallest relative top-2
  polyphase-norm gap on the evaluated (unshifted) inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from ..metrics import decline_bound, image_metrics, phase_margins, volume_metrics, volume_psnr
from ..polyphase import predicted_phases
from ..shifts import roll2d, seeded_shifts, shift_each, shift_grid
from .models import ModelRun, ValData, predict
from .tables import flip_rows, stat_rows, summarise

__all__ = [
    "EQ_METRICS",
    "count_flips",
    "smallest_phase_margin",
    "evaluate_in_distribution",
    "evenly_spaced_indices",
    "exhaustive_shifts",
    "evaluate_ood",
]

EQ_METRICS = ("eq_nmse", "eq_psnr", "eq_ssim")


# --------------------------------------------------------------------------------------
# Flips and margins
# --------------------------------------------------------------------------------------


def count_flips(
    phases_x: Sequence[torch.Tensor], phases_shifted: Sequence[torch.Tensor], shifts: torch.Tensor
) -> torch.Tensor:
    """First level (1-based) at which ``T_k x`` chose a grid other than the one predicted
    from ``x``'s choice (:func:`apslib.polyphase.predicted_phases`), per pair; 0 where every
    level follows the shift.

    ``phases_x[l]``/``phases_shifted[l]``: ``(N,)`` indices into
    :data:`apslib.polyphase.PHASES` chosen for ``x`` and ``T_k x``; ``shifts``: ``(N, 2)``.
    """
    shifts = torch.as_tensor(shifts, dtype=torch.long).reshape(-1, 2)
    predicted, _ = predicted_phases(phases_x, shifts)
    first = torch.zeros(len(predicted[0]) if predicted else len(shifts), dtype=torch.long)
    for level, (expected, chosen) in enumerate(zip(predicted, phases_shifted), start=1):
        first[(chosen.long().cpu() != expected) & (first == 0)] = level
    return first


@torch.no_grad()
def smallest_phase_margin(run: ModelRun, x: torch.Tensor, *, batch_size: int = 32) -> torch.Tensor:
    """Smallest relative top-2 polyphase-norm gap over the APS levels
    (:func:`apslib.metrics.phase_margins`), per image ``(N,)`` (``inf`` for models without
    APS levels)."""
    dev = next(run.model.parameters()).device
    out = []
    for start in range(0, x.shape[0], batch_size):
        m = phase_margins(run.model, x[start : start + batch_size].to(dev, torch.float32))
        out.append(
            torch.stack(m).min(0).values
            if m
            else torch.full((min(batch_size, x.shape[0] - start),), math.inf, dtype=torch.float64)
        )
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def _margin_min(run: ModelRun, x: torch.Tensor, batch_size: int) -> float:
    return float(smallest_phase_margin(run, x, batch_size=batch_size).min())


# --------------------------------------------------------------------------------------
# Random protocol
# --------------------------------------------------------------------------------------


def _groups(acqs: Sequence[str]):
    """``(acquisition, mask)`` per acquisition present, then ``("all", every sample)``."""
    acqs = list(acqs)
    for a in sorted(set(acqs)):
        yield a, np.array([x == a for x in acqs])
    yield "all", np.ones(len(acqs), dtype=bool)


def evaluate_in_distribution(
    runs: dict[str, ModelRun],
    val: ValData,
    *,
    max_shift: int = 16,
    seed: int = 0,
    batch_size: int = 32,
    dataset: str = "val",
    zero_filled: bool = True,
) -> pd.DataFrame:
    """Random protocol on the validation set: equivariance (per slice), reconstruction
    and decline in PSNR (per volume), flips; tidy rows (see the module docstring)."""
    vols = val.volumes
    vshift = seeded_shifts(len(vols), max_shift, seed)
    vidx = {v: val.volume_index(v) for v in vols}
    shifts = torch.zeros(len(val), 2, dtype=torch.long)
    for v, k in zip(vols, vshift):
        shifts[vidx[v]] = k
    vol_acq = [val.acquisition[vidx[v][0]] for v in vols]
    y = val.denorm(val.target)
    y_shift = shift_each(y, shifts)
    rows: list[dict] = []

    def recon_rows(name, pred, pred_shift=None):
        per = {"nmse": [], "psnr": [], "ssim": [], "psnr_decline": [], "psnr_decline_bound": []}
        pred_moved = shift_each(pred, shifts) if pred_shift is not None else None
        for v in vols:
            ix = vidx[v]
            mx = float(val.max_value[ix[0]])
            m = volume_metrics(pred[ix, 0], y[ix, 0], mx)
            for key in ("nmse", "psnr", "ssim"):
                per[key].append(m[key])
            if pred_shift is not None:
                shifted = volume_psnr(pred_shift[ix, 0], y_shift[ix, 0], mx)
                per["psnr_decline"].append(abs(m["psnr"] - shifted))
                # how large the decline could be, from this volume's two errors
                eq = float((pred_shift[ix] - pred_moved[ix]).norm())
                rec = float((pred[ix] - y[ix]).norm())
                per["psnr_decline_bound"].append(float(decline_bound(eq / rec if rec else np.inf)))
        for acq, mask in _groups(vol_acq):
            keys = dict(model=name, dataset=dataset, acquisition=acq)
            for metric in ("nmse", "psnr", "ssim"):
                rows.extend(
                    stat_rows(
                        np.array(per[metric])[mask],
                        stats=("mean", "min", "max"),
                        protocol="unshifted",
                        metric=metric,
                        **keys,
                    )
                )
            if pred_shift is not None:
                for metric in ("psnr_decline", "psnr_decline_bound"):
                    rows.extend(
                        stat_rows(
                            np.array(per[metric])[mask],
                            stats=("mean", "max"),
                            protocol="random",
                            metric=metric,
                            **keys,
                        )
                    )

    if zero_filled:
        recon_rows("Zero-filled", val.denorm(val.image))
    x_shift = shift_each(val.image, shifts)
    for name, run in runs.items():
        out, ph = predict(run, val.image, batch_size=batch_size, return_phases=True)
        out_s, ph_s = predict(run, x_shift, batch_size=batch_size, return_phases=True)
        eq = image_metrics(out_s, shift_each(out, shifts))
        for acq, mask in _groups(val.acquisition):
            for metric in EQ_METRICS:
                rows.extend(
                    stat_rows(
                        eq[metric][mask],
                        model=name,
                        dataset=dataset,
                        acquisition=acq,
                        protocol="random",
                        metric=metric,
                    )
                )
        recon_rows(name, val.denorm(out), val.denorm(out_s))
        if run.is_adaptive:
            rows.extend(
                flip_rows(
                    count_flips(ph, ph_s, shifts),
                    _margin_min(run, val.image, batch_size),
                    run.depth,
                    model=name,
                    dataset=dataset,
                    acquisition="all",
                    protocol="random",
                )
            )
    return summarise(rows)


# --------------------------------------------------------------------------------------
# Exhaustive protocol
# --------------------------------------------------------------------------------------


def evenly_spaced_indices(n: int, count: int | None) -> list[int]:
    """``count`` evenly spaced indices in ``range(n)`` (all of them if ``count`` is None or
    ``>= n``): the slices / images the exhaustive protocol runs on."""
    if count is None or count >= n:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, max(int(count), 1))})


@torch.no_grad()
def exhaustive_shifts(
    runs: dict[str, ModelRun],
    x: torch.Tensor,
    *,
    acquisitions: Sequence[str] | None = None,
    dataset: str = "val",
    batch_size: int = 32,
    image_ids: Sequence | None = None,
):
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
        grid = torch.tensor(shift_grid(2**run.depth), dtype=torch.long)
        assert grid[0].tolist() == [0, 0], "the reference is the first (zero) shift"
        per = []
        for b in range(len(x)):
            xs = torch.stack([roll2d(x[b], k) for k in grid.tolist()])
            out_s, ph_s = predict(run, xs, batch_size=batch_size, return_phases=True, uniform_batches=True)
            ref = torch.stack([roll2d(out_s[0], k) for k in grid.tolist()])
            eq = image_metrics(out_s, ref)
            first = (
                count_flips([p[0].expand(len(grid)) for p in ph_s], ph_s, grid)
                if run.is_adaptive
                else torch.zeros(len(grid), dtype=torch.long)
            )
            per.append(
                pd.DataFrame(
                    {
                        "model": name,
                        "dataset": dataset,
                        "image": image_ids[b],
                        "acquisition": acquisitions[b],
                        "dy": grid[:, 0].numpy(),
                        "dx": grid[:, 1].numpy(),
                        **eq,
                        "flip_level": first.numpy(),
                    }
                )
            )
        frame = pd.concat(per, ignore_index=True)
        frames.append(frame)
        groups = [(a, frame.acquisition == a) for a in sorted(set(acquisitions)) if a != "all"]
        for acq, mask in groups + [("all", slice(None))]:
            sub = frame[mask]
            for metric in EQ_METRICS:
                rows.extend(
                    stat_rows(
                        sub[metric].to_numpy(),
                        model=name,
                        dataset=dataset,
                        acquisition=acq,
                        protocol="exhaustive",
                        metric=metric,
                    )
                )
        if run.is_adaptive:
            rows.extend(
                flip_rows(
                    torch.tensor(frame.flip_level.to_numpy(dtype=np.int64)),
                    _margin_min(run, x, batch_size),
                    run.depth,
                    model=name,
                    dataset=dataset,
                    acquisition="all",
                    protocol="exhaustive",
                )
            )
    return summarise(rows), (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame())


# --------------------------------------------------------------------------------------
# Out of distribution
# --------------------------------------------------------------------------------------


def evaluate_ood(
    runs: dict[str, ModelRun],
    sets: dict,
    *,
    max_shift: int = 16,
    seed: int = 0,
    sweep_images: int = 4,
    batch_size: int = 32,
):
    """Equivariance on each out-of-distribution :class:`~apslib.data.ImageSet`: random
    protocol (one seeded shift per image) and the exhaustive protocol on ``sweep_images``
    evenly spaced images per set. Returns ``(tidy table, per-pair frame)``."""
    rows, frames = [], []
    for set_name, images in sets.items():
        x = images.stack().float()
        names = images.names
        shifts = seeded_shifts(len(x), max_shift, seed)
        x_shift = shift_each(x, shifts)
        for name, run in runs.items():
            out, ph = predict(run, x, batch_size=batch_size, return_phases=True)
            out_s, ph_s = predict(run, x_shift, batch_size=batch_size, return_phases=True)
            eq = image_metrics(out_s, shift_each(out, shifts))
            for metric in EQ_METRICS:
                rows.extend(
                    stat_rows(
                        eq[metric],
                        model=name,
                        dataset=set_name,
                        acquisition="all",
                        protocol="random",
                        metric=metric,
                    )
                )
            if run.is_adaptive:
                rows.extend(
                    flip_rows(
                        count_flips(ph, ph_s, shifts),
                        _margin_min(run, x, batch_size),
                        run.depth,
                        model=name,
                        dataset=set_name,
                        acquisition="all",
                        protocol="random",
                    )
                )
        if sweep_images:
            idx = evenly_spaced_indices(len(x), sweep_images)
            t, f = exhaustive_shifts(
                runs, x[idx], dataset=set_name, batch_size=batch_size, image_ids=[names[i] for i in idx]
            )
            rows.extend(t.to_dict("records"))
            frames.append(f)
    return summarise(rows), (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame())

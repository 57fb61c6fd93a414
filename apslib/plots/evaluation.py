"""Figures of the exhaustive-shift protocol: heatmaps over every shift modulo ``2**depth``.

Conventions
-----------
``frame`` is a per-pair table of :func:`apslib.evaluate.exhaustive_shifts` (the
``*_sweep.csv`` result files): one row per ``(model, image, dy, dx)`` with ``eq_nmse``,
``eq_psnr`` and ``eq_ssim``. Each heatmap shows one model, ``dy`` down and ``dx`` across,
the metric reduced over the images. NMSE uses one log colour scale for all models with an
exact 0 drawn at :data:`apslib.plots.EXACT_ZERO_FLOOR`; PSNR (capped at 100 dB, since an
exact pair has ``inf``) and SSIM use a linear one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .style import EXACT_ZERO_FLOOR, TEXT_WIDTH

__all__ = ["plot_shift_heatmaps"]

PSNR_CAP = 100.0  # dB: an exact pair's inf is drawn here
LABELS = {"eq_nmse": "equivariance NMSE", "eq_psnr": "equivariance PSNR (dB)", "eq_ssim": "equivariance SSIM"}


def plot_shift_heatmaps(
    frame,
    *,
    metric: str = "eq_nmse",
    reduce: str = "max",
    title: str = "",
    models: Sequence[str] | None = None,
    floor: float = EXACT_ZERO_FLOOR,
):
    """Per model, ``metric`` over all shifts ``(dy, dx)`` modulo ``2**depth`` reduced over
    images (``"max"`` worst case or ``"mean"``), on one shared log colour scale for NMSE
    (zeros drawn at ``floor``) or a linear one (PSNR capped at 100 dB, SSIM). ``models``
    come first, in that order, then any other model of ``frame``."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm, Normalize

    from ..evaluate.tables import order_models

    names = order_models(list(dict.fromkeys(frame.model)), models)
    grids = {}
    for name in names:
        sub = frame[frame.model == name]
        g = sub.groupby(["dy", "dx"])[metric].agg(reduce).unstack("dx")
        grids[name] = g.to_numpy(dtype=np.float64)
    allv = np.concatenate([g.ravel() for g in grids.values()])
    if metric == "eq_nmse":
        allv = np.maximum(allv, floor)
        norm = LogNorm(vmin=allv.min(), vmax=max(allv.max(), allv.min() * 10))
        grids = {n: np.maximum(g, floor) for n, g in grids.items()}
    else:
        if metric == "eq_psnr":
            grids = {n: np.minimum(g, PSNR_CAP) for n, g in grids.items()}
            allv = np.minimum(allv, PSNR_CAP)
        norm = Normalize(vmin=allv.min(), vmax=allv.max() if allv.max() > allv.min() else allv.min() + 1e-9)
    panel = TEXT_WIDTH / (len(names) + 0.5)
    fig, axes = plt.subplots(
        1, len(names), figsize=(TEXT_WIDTH, panel + 0.7), squeeze=False, layout="constrained"
    )
    im = None
    label = LABELS.get(metric, metric)
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

"""Figures of notebook 07: fastMRI's U-Net before and after its conversion to APS.

Conventions
-----------
``table`` is :func:`apslib.evaluate.conversion.conversion_table` (one row per stage, in
stage order), ``sd`` the same with ``value="sd"`` (the spread over training seeds; ``None``
or NaN for one seed). ``ex`` is the :class:`apslib.evaluate.Examples` of the conversion's
evaluation (one column per stage). Log axes draw an exact 0 at ``floor``.
"""

from __future__ import annotations

import numpy as np

from .style import (
    COLUMN_WIDTH,
    EXACT_ZERO_FLOOR,
    TEXT_WIDTH,
    draw_floor_line,
    draw_model_axis,
    draw_seed_bars,
    image_range,
    wrap_label,
)

__all__ = ["plot_conversion", "plot_stage_differences"]


def plot_conversion(table, sd=None, *, floor: float = EXACT_ZERO_FLOOR, title: str = ""):
    """Two panels per stage: reconstruction PSNR (dB) and equivariance NMSE under random
    circular shifts (log; exact zeros at ``floor``), markers at the mean over seeds with
    ± sd bars."""
    import matplotlib.pyplot as plt

    names = list(table.index)
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, 2, figsize=(2 * COLUMN_WIDTH, 2.7), layout="constrained")
    for ax, col, log in ((axes[0], "PSNR dB", False), (axes[1], "eq NMSE", True)):
        mean = table[col].to_numpy(float)
        spread = (
            sd[col].reindex(table.index).to_numpy(float) if sd is not None else np.full_like(mean, np.nan)
        )
        low = np.maximum(mean - spread, mean / 10) if log else mean - spread
        draw_seed_bars(ax, x, mean, low, mean + spread, floor=floor, log=log, color="C0", label="mean ± sd")
        if log:
            ax.set_yscale("log")
            if np.nanmin(np.maximum(mean, 0)) <= floor:
                draw_floor_line(ax, floor)
        draw_model_axis(ax, names)
        ax.set_xlabel("")
    axes[0].set_ylabel("PSNR (dB), unshifted")
    axes[0].set_title("reconstruction")
    axes[1].set_ylabel("NMSE of F(T x) against T F(x)")
    axes[1].set_title("equivariance (random circular shifts)")
    fig.suptitle(title)
    return fig


def plot_stage_differences(ex, reference: str | None = None, *, title: str = ""):
    """One column per stage: ``F(x)``, ``|F(x) - F_ref(x)|`` (what the stage changes against
    ``reference``, default the first stage: the trained model) and ``|F(x) - y|`` (its
    error against the target); one grey scale for the images, one colour scale for the
    difference maps."""
    import matplotlib.pyplot as plt

    if ex.target is None:
        raise ValueError("these examples have no target: use the validation examples of evaluate_conversion")
    names = list(ex.models)
    ref = names.index(reference) if reference is not None else 0
    out = ex.out.astype(np.float64)
    change = np.abs(out - out[ref])
    error = np.abs(out - ex.target.astype(np.float64))
    vmin, vmax = image_range(ex.target)
    dmax = max(float(change.max()), float(error.max()), 1e-12)
    fig, axes = plt.subplots(3, len(names), figsize=(TEXT_WIDTH, 3.9), squeeze=False, layout="constrained")
    im_diff = None
    for c, name in enumerate(names):
        axes[0, c].imshow(out[c], vmin=vmin, vmax=vmax)
        axes[0, c].set_title(wrap_label(name, TEXT_WIDTH / len(names), 6), fontsize=6)
        im_diff = axes[1, c].imshow(change[c], cmap="magma", vmin=0, vmax=dmax)
        axes[1, c].set_title(f"max {change[c].max():.2g}", fontsize=6)
        axes[2, c].imshow(error[c], cmap="magma", vmin=0, vmax=dmax)
        axes[2, c].set_title(f"mean {error[c].mean():.2g}", fontsize=6)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    axes[0, 0].set_ylabel("F(x)")
    axes[1, 0].set_ylabel(f"|F(x) - {names[ref]}(x)|", fontsize=6)
    axes[2, 0].set_ylabel("|F(x) - target|")
    fig.colorbar(im_diff, ax=axes[1:, -1].tolist(), shrink=0.9, aspect=20, label="|difference|")
    fig.suptitle(title or (f"{ex.label}: " if ex.label else "") + "what the conversion changes")
    return fig

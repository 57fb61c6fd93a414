"""One figure style for every notebook, atomic figure files, and the examples figure.

* :func:`set_style` is seaborn's ``paper`` theme with font sizes that stay readable when a
  figure is printed at the width of one column (:data:`COLUMN_WIDTH`) or of the text
  (:data:`TEXT_WIDTH`) of a two-column paper (the Asilomar/IEEE format of the paper);
  every notebook calls it once, so all figures look alike.
* :func:`save_figure` writes PNG (and PDF) atomically (a temporary file, then a rename:
  an interrupted save keeps the previous figure) with reproducible bytes (no creation date
  in the PDF), so the same result tables give byte-identical figure files.
* :func:`plot_examples` draws an :class:`apslib.evaluate.Examples`: the input, the target,
  ``F(x)``, ``F(T_k x)``, ``T_k F(x)`` and ``|F(T_k x) - T_k F(x)|`` per model, all images on
  one grey scale and all differences on one colour scale.
* :data:`EXACT_ZERO_FLOOR`: where every log-scale plot draws an exact 0 (an exactly
  equivariant model's error), unless given another ``floor``.

Every other figure has its module here, each re-exported: :mod:`~apslib.plots.training`
(:func:`plot_training_curves`), :mod:`~apslib.plots.evaluation`
(:func:`plot_shift_heatmaps`), :mod:`~apslib.plots.paper` (:func:`plot_side_by_side`,
:func:`plot_ood`, :func:`plot_distribution`) and :mod:`~apslib.plots.beyond`
(:func:`plot_subpixel_curves`, :func:`plot_frontier`; notebook 06). matplotlib is
imported only when a figure is drawn.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..io import atomic_open

__all__ = [
    "COLUMN_WIDTH",
    "TEXT_WIDTH",
    "EXACT_ZERO_FLOOR",
    "STYLE_RC",
    "set_style",
    "save_figure",
    "image_range",
    "wrap_label",
    "plot_examples",
    "plot_training_curves",
    "plot_equivariance_curves",
    "plot_shift_heatmaps",
    "plot_side_by_side",
    "plot_ood",
    "plot_distribution",
    "plot_subpixel_curves",
    "plot_frontier",
    "plot_grid_choice",
    "plot_conversion",
    "plot_stage_differences",
]

COLUMN_WIDTH = 3.5  # inches: one column of a two-column IEEE paper
TEXT_WIDTH = 7.16  # inches: the full text width of the same format
EXACT_ZERO_FLOOR = 1e-20  # log-scale plots draw an exact 0 here

STYLE_RC = {
    "font.size": 7,
    "axes.titlesize": 7.5,
    "axes.labelsize": 7,
    "xtick.labelsize": 6,
    "ytick.labelsize": 6,
    "legend.fontsize": 6,
    "legend.title_fontsize": 6,
    "figure.titlesize": 8.5,
    "axes.linewidth": 0.6,
    "grid.linewidth": 0.4,
    "lines.linewidth": 1.0,
    "lines.markersize": 4,
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.02,
    "image.interpolation": "nearest",
    "image.cmap": "gray",
    "pdf.fonttype": 42,
    "ps.fonttype": 42,  # TrueType in PDFs: the text stays editable
}


def set_style(**overrides) -> None:
    """Apply the project's figure style (seaborn ``paper`` context, ``whitegrid``,
    :data:`STYLE_RC`; keyword arguments override single rc entries)."""
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", rc={**STYLE_RC, **overrides})


def save_figure(
    fig, folder, name: str, formats: Sequence[str] = ("png",), *, dpi: float | None = None
) -> list[Path]:
    """Write ``fig`` as ``folder/name.<ext>`` for each format, atomically and with
    reproducible bytes; returns the paths. ``dpi`` defaults to the style's 200."""
    folder = Path(folder)
    if not formats:
        raise ValueError("save_figure: give at least one format, e.g. formats=('png', 'pdf')")
    paths = []
    for ext in formats:
        ext = ext.lstrip(".").lower()
        metadata = {"CreationDate": None} if ext == "pdf" else None
        buf = io.BytesIO()  # render first: a failing render leaves the old file untouched
        fig.savefig(buf, format=ext, dpi=dpi, bbox_inches="tight", metadata=metadata)
        path = folder / f"{name}.{ext}"
        with atomic_open(path, "wb") as f:
            f.write(buf.getvalue())
        paths.append(path)
    return paths


def image_range(*images, percentiles=(0.5, 99.5)) -> tuple[float, float]:
    """``(vmin, vmax)`` for a shared grey scale: robust percentiles over all pixels of
    ``images`` (``None`` entries skipped); never an empty range."""
    values = np.concatenate([np.asarray(im, dtype=np.float64).ravel() for im in images if im is not None])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, percentiles)
    if not hi > lo:
        lo, hi = float(values.min()), float(values.max())
    if not hi > lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def wrap_label(text: str, width_in: float, fontsize: float = 7.5) -> str:
    """``text`` broken at spaces into lines that fit a panel ``width_in`` inches wide (a
    long model name over one image of a row of images)."""
    import textwrap

    return textwrap.fill(str(text), max(8, int(width_in * 72 / (0.55 * fontsize))), break_long_words=False)


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    return f"{v:.2g}" if 1e-2 <= abs(v) < 1e3 else f"{v:.1e}".replace("e-0", "e-").replace("e+0", "e+")


def plot_examples(
    ex,
    models: Sequence[str] | None = None,
    *,
    width: float = TEXT_WIDTH,
    title: str | None = None,
    diff_vmax: float | None = None,
):
    """The examples figure of an :class:`apslib.evaluate.Examples`.

    Columns: the inputs (``x``, ``T_k x`` and, when known, the target ``y``), then one
    column per model; rows: ``F(x)``, ``F(T_k x)``, ``T_k F(x)`` and the difference
    ``|F(T_k x) - T_k F(x)|``. Every image shares one grey scale (robust range of the
    target, or of the input without one); every difference map shares one colour scale
    (``diff_vmax``: default the largest difference over the models, at least 1e-12), so an
    exactly equivariant model shows a black map. Each difference panel states its max and
    the NMSE of the pair."""
    import matplotlib.pyplot as plt

    names = list(models) if models is not None else list(ex.models)
    unknown = [m for m in names if m not in ex.models]
    if unknown:
        raise ValueError(f"models {unknown} are not in these examples; they hold {list(ex.models)}")
    idx = [ex.models.index(m) for m in names]
    diff, nmse = ex.diff, ex.nmse
    vmin, vmax = image_range(ex.target if ex.target is not None else ex.input)
    dmax = diff_vmax or max(float(diff[idx].max()) if idx else 0.0, 1e-12)
    ncol = len(names) + 1
    panel = width / (ncol + 0.35)
    fig, axes = plt.subplots(4, ncol, figsize=(width, 4 * panel + 0.6), squeeze=False, layout="constrained")
    k = tuple(int(v) if float(v).is_integer() else float(v) for v in ex.shift)
    kind = "circular" if all(isinstance(v, int) for v in k) else "circular, Fourier\n(sub-pixel)"
    gray = dict(cmap="gray", vmin=vmin, vmax=vmax)
    left = [
        (ex.input, "input x"),
        (ex.input_shifted, "shifted input T_k x"),
        (ex.target, "target y"),
        (None, None),
    ]
    im_gray = im_diff = None
    for r, (image, label) in enumerate(left):
        ax = axes[r, 0]
        if image is None:
            ax.axis("off")
            if r < 3:  # no target: an empty panel
                continue
            ax.text(
                0.0,
                0.5,
                f"shift k = {k}\n(dy, dx) in pixels,\n{kind}\n\nbottom row:\n"
                "|F(T_k x) - T_k F(x)|\nper model",
                transform=ax.transAxes,
                va="center",
                fontsize=6,
            )
            continue
        im_gray = ax.imshow(image, **gray)
        ax.set_title(label)
    rows = [("F(x)", ex.out), ("F(T_k x)", ex.out_shifted), ("T_k F(x)", ex.ref)]
    for c, (name, i) in enumerate(zip(names, idx), start=1):
        for r, (label, stack) in enumerate(rows):
            axes[r, c].imshow(stack[i], **gray)
            axes[r, c].set_title(f"{wrap_label(name, panel)}\n{label}" if r == 0 else label)
        im_diff = axes[3, c].imshow(diff[i], cmap="magma", vmin=0.0, vmax=dmax)
        axes[3, c].set_title(f"max {_fmt(float(diff[i].max()))}\nNMSE {_fmt(float(nmse[i]))}")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    h, w = ex.input.shape[-2:]
    axes[3, 1].set_xlabel(f"{w} px")
    axes[0, 0].set_ylabel(f"{h} px")
    if im_gray is not None:
        fig.colorbar(
            im_gray, ax=axes[:3, -1].tolist(), shrink=0.8, aspect=30, label="intensity (normalised units)"
        )
    if im_diff is not None:
        fig.colorbar(im_diff, ax=axes[3, -1], shrink=0.9, aspect=12, label="|difference|")
    fig.suptitle(
        title
        if title is not None
        else (f"{ex.label}: " if ex.label else "")
        + f"outputs under the shift k = {k} and the equivariance error"
    )
    return fig


# The figure modules import the constants above from this package: import them last.
from .beyond import plot_frontier, plot_grid_choice, plot_subpixel_curves  # noqa: E402
from .conversion import plot_conversion, plot_stage_differences  # noqa: E402
from .data import plot_kspace_mask, plot_targets, plot_zero_filled  # noqa: E402, F401
from .evaluation import plot_shift_heatmaps  # noqa: E402
from .paper import plot_distribution, plot_ood, plot_side_by_side  # noqa: E402
from .training import plot_equivariance_curves, plot_training_curves  # noqa: E402

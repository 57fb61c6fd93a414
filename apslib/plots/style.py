"""The one figure style, atomic figure files, and the drawing helpers the figures share.

* :func:`set_style` is seaborn's ``paper`` theme with font sizes that stay readable when a
  figure is printed at the width of one column (:data:`COLUMN_WIDTH`) or of the text
  (:data:`TEXT_WIDTH`) of a two-column paper (the Asilomar/IEEE format of the paper);
  every notebook calls it once, so all figures look alike.
* :func:`save_figure` writes PNG (and PDF) atomically (a temporary file, then a rename:
  an interrupted save keeps the previous figure) with reproducible bytes (no creation date
  in the PDF), so the same result tables give byte-identical figure files.
* :data:`EXACT_ZERO_FLOOR`: where every log-scale plot draws an exact 0 (an exactly
  equivariant model's error), unless given another ``floor``; :func:`floored` moves values
  there and :func:`draw_floor_line` marks it.
* :func:`image_range` (one grey scale for several images), :func:`wrap_label` (a long name
  over a narrow panel), :func:`draw_seed_bars` (the mean over seeds with the seeds' range)
  and :func:`draw_model_axis` (one x position per model).

matplotlib and seaborn are imported only when a figure is drawn.
"""

from __future__ import annotations

import io
import textwrap
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
    "floored",
    "draw_floor_line",
    "draw_seed_bars",
    "draw_model_axis",
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
    return textwrap.fill(str(text), max(8, int(width_in * 72 / (0.55 * fontsize))), break_long_words=False)


def floored(values, floor: float) -> np.ndarray:
    """``values`` as float64 with everything below ``floor`` (an exact 0 included) drawn
    at ``floor``; NaN stays NaN (no value)."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(np.isnan(values), np.nan, np.maximum(values, floor))


def draw_floor_line(ax, floor: float) -> None:
    """A dotted line at ``floor`` that says exact zeros are drawn there."""
    ax.axhline(floor, color="0.5", ls=":", lw=0.8)
    ax.annotate(
        f"exact 0 (drawn at {floor:.0e})",
        (0.01, floor),
        xycoords=("axes fraction", "data"),
        xytext=(0, 2),
        textcoords="offset points",
        fontsize=6,
        color="0.4",
        va="bottom",
    )


def draw_seed_bars(ax, x, mean, low, high, *, floor: float, log: bool, color: str, label: str) -> None:
    """Mean markers at ``x`` with bars from ``low`` to ``high`` (the seeds' range); on a
    log axis every value is :func:`floored`."""
    mean, low, high = (np.asarray(v, dtype=np.float64) for v in (mean, low, high))
    if log:
        mean, low, high = (floored(v, floor) for v in (mean, low, high))
    bars = np.isfinite(low) & np.isfinite(high) & (high > low)
    if bars.any():
        ax.vlines(x[bars], low[bars], high[bars], color=color, lw=1.2, alpha=0.8)
    ax.plot(x, mean, "o", color=color, label=label, ms=5)


def draw_model_axis(ax, names: Sequence[str]) -> None:
    """One x position per model, labelled with its name."""
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=35, ha="right")
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.set_xlabel("model")

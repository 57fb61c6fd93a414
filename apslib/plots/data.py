"""The figures of the data (notebook 00): targets, k-space and mask, zero-filled input.

Conventions:

* Inputs are what :mod:`apslib.data` returns, unchanged: :func:`plot_targets` takes
  ``{acquisition: data.example_targets(...)}``, :func:`plot_kspace_mask` one
  ``data.inspect_slice(...)`` dict, :func:`plot_zero_filled` ``{acquisition:
  data.inspect_slice(...)}``. Acquisitions are fastMRI names (``CORPD_FBK``) shown by their
  short names (``PD``, :data:`apslib.data.ACQUISITION_NAMES`); another key is shown as it is.
* Images are drawn in their own units (not normalised), k-space as ``log10`` magnitude; no
  ticks, sizes in pixels on the axis labels. Widths are the paper's :data:`TEXT_WIDTH` (or
  :data:`COLUMN_WIDTH` for a narrow targets figure); call :func:`apslib.plots.set_style`
  first and save with :func:`apslib.plots.save_figure`.
* Each function returns the matplotlib figure; matplotlib is imported only when drawing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .style import COLUMN_WIDTH, TEXT_WIDTH

__all__ = ["plot_targets", "plot_kspace_mask", "plot_zero_filled"]


def _short_names(names: Mapping[str, str] | None) -> Mapping[str, str]:
    if names is not None:
        return names
    from ..data.common import ACQUISITION_NAMES  # the one list of acquisition names

    return ACQUISITION_NAMES


def _check_rows(rows: Mapping, what: str) -> None:
    if not rows:
        raise ValueError(f"{what}: nothing to draw (no acquisition present)")


def plot_targets(
    examples: Mapping[str, Sequence[tuple[str, int, np.ndarray]]], *, names: Mapping[str, str] | None = None
):
    """Targets, one row per acquisition: ``examples`` maps an acquisition to its
    ``(file name, slice, target)`` triples (:func:`apslib.data.example_targets`).

    Each panel on its own grey scale, titled ``"<short name> · <volume> · slice <k>"``.
    Text width for 3 or more panels a row (at most 4 panel widths), column width otherwise.
    ``names``: acquisition -> label (default :data:`apslib.data.ACQUISITION_NAMES`)."""
    import matplotlib.pyplot as plt

    _check_rows(examples, "plot_targets")
    names = _short_names(names)
    ncols = max(len(v) for v in examples.values())
    h, w = next(iter(examples.values()))[0][2].shape
    wide = ncols >= 3  # up to 4 panels a row at text width; fewer at column width
    panel = TEXT_WIDTH / max(ncols, 4)
    fig, axes = plt.subplots(
        len(examples),
        ncols,
        squeeze=False,
        layout="constrained",
        figsize=(TEXT_WIDTH if wide else COLUMN_WIDTH, len(examples) * (panel * h / w + 0.25) + 0.4),
    )
    for row, (acq, items) in zip(axes, examples.items()):
        for ax in row[len(items) :]:
            ax.axis("off")
        for ax, (fname, sl, target) in zip(row, items):
            ax.imshow(target, cmap="gray")
            volume = Path(fname).stem.replace("file_synth_", "")
            ax.set(title=f"{names.get(acq, acq)} · {volume} · slice {sl}", xticks=[], yticks=[])
            ax.grid(False)
        row[0].set_ylabel(f"{h} px")
    axes[-1, 0].set_xlabel(f"{w} px")
    fig.suptitle(
        "reconstruction_esc targets (validation split),"
        + (" " if wide else "\n")
        + "each panel on its own grey scale"
    )
    return fig


def _log_magnitude(k: np.ndarray) -> np.ndarray:
    """``log10 |k|`` with a floor 1e-3 of the maximum (no log of zero)."""
    return np.log10(np.abs(k) + 1e-3 * np.abs(k).max())


def plot_kspace_mask(example: Mapping, *, acceleration: float, center_fraction: float):
    """One slice's k-space magnitude (log10), its column mask, and the masked k-space, side
    by side at text width; ``example``: :func:`apslib.data.inspect_slice`'s dict.
    ``acceleration`` and ``center_fraction`` (of the mask function that made the mask)
    label the third panel."""
    import matplotlib.pyplot as plt

    kspace, mask = example["kspace"], example["mask"]
    fig, axes = plt.subplots(1, 3, figsize=(TEXT_WIDTH, 3.0), sharey=True, layout="constrained")
    axes[0].imshow(_log_magnitude(kspace), cmap="gray", aspect="auto")
    axes[0].set_title(f"|k-space| (log10), {kspace.shape[0]}x{kspace.shape[1]}")
    axes[1].imshow(np.broadcast_to(mask, kspace.shape), cmap="gray", aspect="auto")
    axes[1].set_title(f"mask: {int(mask.sum())} of {mask.size} columns kept")
    axes[2].imshow(_log_magnitude(example["masked_kspace"]), cmap="gray", aspect="auto")
    axes[2].set_title(f"masked k-space ({acceleration}x, centre {center_fraction:.0%})")
    for ax in axes:
        ax.set_xlabel("k-space column (phase encoding)")
        ax.grid(False)
    axes[0].set_ylabel("k-space row (readout, 2x oversampled)")
    fig.suptitle(f"{example['fname']} slice {example['slice_num']} ({example['acquisition']})")
    return fig


def plot_zero_filled(
    rows: Mapping[str, Mapping], *, acceleration: float, names: Mapping[str, str] | None = None
):
    """Zero-filled input, target and ``|difference|`` (at 4x contrast), one row per
    acquisition, all on the target's grey scale ``[0, max]`` of the row; ``rows`` maps an
    acquisition to :func:`apslib.data.inspect_slice`'s dict. ``acceleration`` labels the
    title; ``names``: acquisition -> label (default :data:`apslib.data.ACQUISITION_NAMES`)."""
    import matplotlib.pyplot as plt

    _check_rows(rows, "plot_zero_filled")
    names = _short_names(names)
    fig, axes = plt.subplots(
        len(rows),
        3,
        squeeze=False,
        layout="constrained",
        figsize=(TEXT_WIDTH, len(rows) * (TEXT_WIDTH / 3 + 0.2) + 0.3),
    )
    for row, (acq, ex) in zip(axes, rows.items()):
        vmax = ex["target"].max()
        err = np.abs(ex["zero_filled"] - ex["target"])
        for ax, img, title, vm in zip(
            row,
            (ex["zero_filled"], ex["target"], err),
            ("zero-filled input", "target", "|difference| (4x contrast)"),
            (vmax, vmax, vmax / 4),
        ):
            ax.imshow(img, cmap="gray", vmin=0, vmax=vm)
            ax.set(title=f"{names.get(acq, acq)}: {title}", xticks=[], yticks=[])
            ax.grid(False)
        row[0].set_ylabel(f"{ex['target'].shape[0]} px")
    axes[-1, 0].set_xlabel(f"{ex['target'].shape[1]} px")
    fig.suptitle(
        f"Zero-filled input ({acceleration}x random mask) next to its target, on the target's grey scale"
    )
    return fig

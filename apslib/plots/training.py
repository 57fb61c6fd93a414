"""Training curves: one panel per metric against the epoch, one line per model.

Conventions
-----------
``frame`` is :func:`apslib.runs.history_frame`'s: one row per ``(model, seed, epoch)`` with
the history's metrics (``train_loss``, ``val_loss``, ``val_equiv_mse``, ``val_psnr``). Losses
and the equivariance MSE are drawn on log axes, PSNR on a linear one. On a log axis an
exact 0 (an exactly equivariant model's equivariance MSE) is drawn at ``floor``
(:data:`apslib.plots.EXACT_ZERO_FLOOR` unless given), and the panel's title says so. A log
axis spanning less than a decade gets its minor ticks labelled too, as plain numbers. A model
trained with several seeds is drawn as the mean over seeds per epoch with a band from the
lowest to the highest seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import EXACT_ZERO_FLOOR, TEXT_WIDTH

__all__ = ["plot_training_curves"]

TITLES = {
    "train_loss": "training loss",
    "val_loss": "validation loss",
    "val_equiv_mse": "validation equivariance MSE\n$\\|F(T_k x) - T_k F(x)\\|^2$",
    "val_equiv_nmse": "validation equivariance NMSE\n$\\|F(T_k x) - T_k F(x)\\|^2 / \\|T_k F(x)\\|^2$",
    "val_psnr": "validation PSNR (dB)",
}
YLABELS = {
    "train_loss": "MSE (normalised units)",
    "val_loss": "MSE (normalised units)",
    "val_equiv_mse": "MSE (normalised units)",
    "val_equiv_nmse": "NMSE (unitless)",
    "val_psnr": "PSNR (dB)",
}
LINESTYLES = ["-", "--", "-.", ":"]  # models drawn on top of each other stay visible


def _label_short_log_axis(ax) -> None:
    """A log axis spanning less than a decade gets one or no major label: label the minor
    ticks too (plain numbers), so the values can be read."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator

    lo, hi = ax.dataLim.intervaly
    if lo > 0 and hi / lo < 10:
        ax.yaxis.set_minor_locator(LogLocator(subs=tuple(range(1, 10))))
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%.2g"))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))


def _recorded(frame, metric: str) -> str:
    if metric in frame and frame[metric].notna().any():
        return metric
    if metric == "val_equiv_nmse" and "val_equiv_mse" in frame:
        return "val_equiv_mse"
    raise ValueError(f"the histories have no {metric!r}; they have {sorted(frame.columns)}")


def plot_training_curves(
    frame,
    metrics: Sequence[str] = ("train_loss", "val_loss", "val_equiv_nmse"),
    order: Sequence[str] | None = None,
    floor: float = EXACT_ZERO_FLOOR,
):
    """One panel per metric (log scale, PSNR linear) against the epoch, one line per model
    (``order``: the models and their order; default: as they appear in ``frame``).

    On log scales values below ``floor`` (an exactly equivariant model's 0) are drawn at
    ``floor``, and the panel's title says so. Runs trained before ``val_equiv_nmse`` was
    recorded have ``val_equiv_mse`` only: that panel then shows the MSE.
    """
    import matplotlib.pyplot as plt

    metrics = [_recorded(frame, m) for m in metrics]

    models = list(order) if order is not None else list(dict.fromkeys(frame["model"]))
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(TEXT_WIDTH * len(metrics) / 3, 2.6), layout="constrained", squeeze=False
    )
    for ax, metric in zip(axes[0], metrics):
        log = metric != "val_psnr"
        floored = False
        for n, m in enumerate(models):
            sub = frame[frame["model"] == m]
            seeds = sub["seed"].nunique() if "seed" in sub else 1
            g = sub.groupby("epoch")[metric]
            epochs, values = g.mean().index.to_numpy(), g.mean().to_numpy(dtype=float)
            low, high = g.min().to_numpy(dtype=float), g.max().to_numpy(dtype=float)
            if log:
                floored |= bool((low < floor).any())
                values, low, high = (np.maximum(v, floor) for v in (values, low, high))
            (line,) = ax.plot(
                epochs,
                values,
                marker="o",
                ms=3,
                label=m if seeds < 2 else f"{m} ({seeds} seeds)",
                linestyle=LINESTYLES[n % len(LINESTYLES)],
                zorder=len(models) - n,
            )
            if seeds > 1:
                ax.fill_between(epochs, low, high, color=line.get_color(), alpha=0.15, lw=0)
        if log:
            ax.set_yscale("log")
            _label_short_log_axis(ax)
        ax.set_xlabel("epoch")
        ax.set_ylabel(YLABELS.get(metric, metric))
        title = TITLES.get(metric, metric)
        ax.set_title(title + (f"\n(exact 0 drawn at {floor:g})" if floored else ""))
        ax.grid(alpha=0.3, which="both")
    axes[0][0].legend()
    return fig

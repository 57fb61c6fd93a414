"""Training curves: one panel per metric against the epoch, one line per model.

Conventions
-----------
``frame`` is :func:`apslib.training.history_frame`'s: one row per ``(model, seed, epoch)`` with
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

from .style import EXACT_ZERO_FLOOR, TEXT_WIDTH

__all__ = ["plot_training_curves", "plot_equivariance_curves"]

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


def plot_equivariance_curves(
    frame,
    order: Sequence[str] | None = None,
    *,
    reference: str = "Baseline",
    metric: str = "val_equiv_nmse",
    marks: Sequence[float] = (1 / 2, 1 / 3, 1 / 10),
):
    """The validation equivariance error against training length, readable: left, every
    model that is not exactly equivariant (log axis over their range; the exact ones are
    named in the title, not drawn at a floor); right, each model's error over
    ``reference``'s at the same epoch and seed (mean over seeds, band min-max), with lines
    at ``marks`` (1/2, 1/3 and the paper's 1/10 for shift augmentation)."""
    import matplotlib.pyplot as plt

    metric = _recorded(frame, metric)
    frame = frame.assign(seed=frame["seed"] if "seed" in frame else 0)
    models = list(order) if order is not None else list(dict.fromkeys(frame["model"]))
    exact = [m for m in models if (frame.loc[frame.model == m, metric] == 0).all()]
    shown = [m for m in models if m not in exact and m in set(frame.model)]
    fig, axes = plt.subplots(1, 2, figsize=(TEXT_WIDTH * 2 / 3, 2.6), layout="constrained")
    ref = frame[frame.model == reference].set_index(["seed", "epoch"])[metric]
    for n, m in enumerate(shown):
        sub = frame[frame.model == m]
        style = dict(marker="o", ms=2.5, lw=1, linestyle=LINESTYLES[n % len(LINESTYLES)], color=f"C{n}")
        for ax, values in (
            (axes[0], sub.set_index(["seed", "epoch"])[metric]),
            (axes[1], sub.set_index(["seed", "epoch"])[metric] / ref),
        ):
            if ax is axes[1] and m == reference:
                continue
            g = values.dropna().groupby(level="epoch")
            ax.plot(g.mean().index, g.mean().to_numpy(), label=m, **style)
            if values.index.get_level_values("seed").nunique() > 1:
                ax.fill_between(
                    g.mean().index, g.min().to_numpy(), g.max().to_numpy(), color=f"C{n}", alpha=0.15, lw=0
                )
    for ax in axes:
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3, which="both")
    for v in marks:
        axes[1].axhline(v, color="0.4", ls=":", lw=0.8)
        axes[1].annotate(
            f"{v:.2g}", (1.0, v), xycoords=("axes fraction", "data"), fontsize=5, ha="right", va="bottom"
        )
    axes[0].set_ylabel(YLABELS.get(metric, metric))
    axes[0].set_title(
        TITLES.get(metric, metric).split("\n")[0]
        + (f"\n(exactly 0 at every epoch: {', '.join(exact)})" if exact else "")
    )
    axes[1].set_ylabel(f"over {reference}'s (same seed, epoch)")
    axes[1].set_title(f"relative to {reference}")
    axes[0].legend(fontsize=5)
    return fig

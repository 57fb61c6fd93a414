"""Figures of this run next to the paper's numbers (notebook 05).

Conventions
-----------
The inputs are :func:`apslib.paper.side_by_side` frames (one row per model, columns
``(quantity, "ours" | "ours sd" | "paper")``), tidy result tables
(:mod:`apslib.evaluate.tables`) and the per-pair tables of the exhaustive protocol. This run
is drawn as filled circles (the mean over training seeds) with bars for the spread over seeds
(several seeds), the paper as open diamonds, one x position per model (matched by name only:
a model on one side only has no marker on the other). Values are drawn on log axes; an exact 0 (an exactly
equivariant model) is drawn at ``floor`` (:data:`apslib.plots.style.EXACT_ZERO_FLOOR` unless
given), on a dotted line that says so.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from .style import COLUMN_WIDTH, EXACT_ZERO_FLOOR, draw_floor_line, draw_model_axis, draw_seed_bars, floored

__all__ = ["plot_side_by_side", "plot_ood", "plot_distribution"]


def plot_side_by_side(
    t,
    quantities: Sequence[str],
    *,
    ylabel: str,
    title: str,
    log: bool = True,
    floor: float = EXACT_ZERO_FLOOR,
    panel_titles: Sequence[str] | None = None,
):
    """One panel per quantity of a :func:`apslib.paper.side_by_side` frame: this run (filled
    circles: the mean over seeds, bars: ± the standard deviation over seeds, clipped at a
    tenth of the mean on log axes) and the paper (open diamonds) per model; on a log axis
    zeros are drawn at ``floor``."""
    import matplotlib.pyplot as plt

    names = list(t.index)
    fig, axes = plt.subplots(
        1,
        len(quantities),
        figsize=(COLUMN_WIDTH * len(quantities), 2.6),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    x = np.arange(len(names))
    for i, (ax, q) in enumerate(zip(axes[0], quantities)):
        ours, paper = t[(q, "ours")].to_numpy(float), t[(q, "paper")].to_numpy(float)
        sd = t[(q, "ours sd")].to_numpy(float) if (q, "ours sd") in t else np.full_like(ours, np.nan)
        low = np.maximum(ours - sd, ours / 10) if log else ours - sd
        seeds = t.attrs.get("seeds", 1)
        label = f"this run (mean ± sd, {seeds} seeds)" if seeds > 1 else "this run (1 seed)"
        draw_seed_bars(ax, x - 0.1, ours, low, ours + sd, floor=floor, log=log, color="C0", label=label)
        if log:
            ours, paper = floored(ours, floor), floored(paper, floor)
            ax.set_yscale("log")
        ax.plot(x + 0.1, paper, "D", mfc="none", color="C3", label="paper", ms=5)
        if log and np.nanmin(np.concatenate([ours, paper, [np.inf]])) <= floor:
            draw_floor_line(ax, floor)
        draw_model_axis(ax, names)
        ax.set_title(panel_titles[i] if panel_titles else q)
        if i == 0:
            ax.set_ylabel(ylabel)
    axes[0, -1].legend(loc="center left")
    fig.suptitle(title)
    return fig


def plot_ood(
    ours,
    models: Sequence[str],
    *,
    floor: float = EXACT_ZERO_FLOOR,
    title: str = "Out-of-distribution equivariance NMSE",
):
    """Mean equivariance NMSE (random protocol) per model and OOD set of this run (tidy
    table ``ours``; several training seeds: their mean, bars from the lowest to the highest
    seed), with the paper's ImageNet values (open diamonds); log axis, zeros at ``floor``."""
    import matplotlib.pyplot as plt

    from ..evaluate.tables import seed_summary
    from ..paper import paper_numbers

    ours = seed_summary(ours)
    d = ours[
        (ours.metric == "eq_nmse")
        & (ours.protocol == "random")
        & (ours.statistic == "mean")
        & (ours.acquisition == "all")
    ]
    paper = paper_numbers().query("table == '2' and metric == 'eq_nmse'")
    names = list(dict.fromkeys([*models, *paper.model]))
    sets = list(dict.fromkeys(d.dataset))
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.8), layout="constrained")
    width = 0.7 / max(len(sets) + 1, 1)
    low = np.inf
    for j, s in enumerate(sets):
        r = d[d.dataset == s].set_index("model").reindex(names)
        v = floored(r.value.to_numpy(float), floor)
        low = min(low, np.nanmin(np.append(v, np.inf)))
        draw_seed_bars(
            ax,
            np.arange(len(names)) + (j - len(sets) / 2) * width,
            r.value,
            r["min"],
            r["max"],
            floor=floor,
            log=True,
            color=f"C{j}",
            label=f"this run: {s}",
        )
    pv = floored(paper.set_index("model").value.reindex(names).to_numpy(float), floor)
    ax.plot(
        np.arange(len(names)) + (len(sets) / 2) * width,
        pv,
        "D",
        mfc="none",
        ms=5,
        color="C3",
        label="paper: ImageNet val",
    )
    ax.set_yscale("log")
    if low <= floor:
        draw_floor_line(ax, floor)
    draw_model_axis(ax, names)
    ax.set_ylabel("equivariance NMSE (mean, unitless)")
    ax.legend(loc="best")
    ax.set_title(title)
    return fig


def plot_distribution(
    sweeps: dict,
    models: Sequence[str],
    *,
    metric: str = "eq_nmse",
    floor: float = EXACT_ZERO_FLOOR,
    title: str = "",
    seed: int = 0,
):
    """Distribution of per-(image, shift) ``metric`` over the exhaustive-protocol tables
    (``{panel title: per-pair frame}``), one box + strip per model, coloured by dataset;
    log axis for NMSE with zeros at ``floor``."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(
        1,
        len(sweeps),
        figsize=(COLUMN_WIDTH * len(sweeps), 2.8),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    for i, (ax, (name, sw)) in enumerate(zip(axes[0], sweeps.items())):
        sw = sw[sw.model.isin(models)].copy()
        sw["plotted"] = floored(sw[metric], floor) if metric == "eq_nmse" else sw[metric]
        order = [m for m in models if m in set(sw.model)]
        hue = "dataset" if sw.dataset.nunique() > 1 else None
        with warnings.catch_warnings():
            # seaborn 0.13 passes `vert`, which matplotlib 3.11 deprecates, to its boxplot
            warnings.filterwarnings("ignore", message="vert: bool", module="seaborn")
            sns.boxplot(
                data=sw,
                x="model",
                y="plotted",
                order=order,
                ax=ax,
                color="0.9",
                fliersize=0,
                linewidth=0.6,
                log_scale=metric == "eq_nmse",
            )
        state = np.random.get_state()  # seaborn jitters with the global RNG: fix it so the
        np.random.seed(seed + i)  # same tables give the same figure
        try:
            sns.stripplot(
                data=sw,
                x="model",
                y="plotted",
                order=order,
                hue=hue,
                ax=ax,
                size=1.5,
                alpha=0.5,
                jitter=0.25,
                dodge=False,
                legend=bool(hue),
            )
        finally:
            np.random.set_state(state)
        if metric == "eq_nmse" and (sw["plotted"] <= floor).any():
            draw_floor_line(ax, floor)
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels(order, rotation=35, ha="right")
        ax.set_xlabel("model")
        ax.set_ylabel("equivariance NMSE per (image, shift)" if metric == "eq_nmse" else metric)
        ax.set_title(f"{name} ({sw.groupby('model').size().max() if len(sw) else 0} pairs per model)")
        if hue and ax.get_legend() is not None:
            sns.move_legend(ax, "best", fontsize=5, title=None, markerscale=3)
    fig.suptitle(title or "Equivariance error over every shift mod 2**depth")
    return fig

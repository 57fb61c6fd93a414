"""Figures of notebook 06: equivariance error against sub-pixel offset, and the frontier of
half-pixel error against reconstruction quality.

Conventions
-----------
The inputs are the per-pair frames of :mod:`apslib.evaluate.beyond` (columns ``model``,
``dataset``, ``protocol``, ``image``, ``dy``, ``dx``, ``eq_nmse``, ``psnr_decline``,
``grid_flip``, and
``seed`` when several training seeds were evaluated). Errors are drawn on log axes; an
exact 0 (APS at an integer shift) is left out, or drawn at ``floor`` when one is given.
With several seeds a curve is the mean over seeds of the per-seed mean over images, with a
band from the lowest to the highest seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .style import COLUMN_WIDTH

__all__ = [
    "DIRECTIONS",
    "plot_subpixel_curves",
    "plot_flip_rates",
    "plot_frontier",
    "plot_grid_choice",
    "plot_choice_rules",
]

# the three directions of a grid of offsets: (title, selector of the frame's rows, x value)
DIRECTIONS = {
    "y": ("along y: shift (d, 0)", lambda f: f.dx == 0, "dy"),
    "x": ("along x: shift (0, d)", lambda f: f.dy == 0, "dx"),
    "diagonal": ("diagonal: shift (d, d)", lambda f: f.dy == f.dx, "dy"),
}
MARKERS = "osD^vP*Xh<>"


def _direction_panels(plt, directions, height: float):
    """One row of panels sharing y, one per direction."""
    return plt.subplots(
        1,
        len(directions),
        figsize=(COLUMN_WIDTH * len(directions), height),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )


def _per_seed(frame):
    return frame.assign(seed=frame["seed"] if "seed" in frame else 0)


def plot_subpixel_curves(
    frame,
    models: Sequence[str],
    *,
    directions: Sequence[str] = ("y", "x", "diagonal"),
    stat: str = "mean",
    floor: float | None = None,
    title: str = "",
):
    """One panel per direction: ``stat`` (``mean`` or ``max`` over images) of the
    equivariance NMSE against the offset ``d``, one line per model (in ``models``' order).
    Exact zeros (every model at ``d = 0``, APS models at ``d = 1``) are left out so the
    axis spans the errors (the panel says so), or drawn at ``floor`` when one is given
    (e.g. :data:`apslib.plots.EXACT_ZERO_FLOOR`)."""
    import matplotlib.pyplot as plt

    frame = _per_seed(frame)
    fig, axes = _direction_panels(plt, directions, 2.7)
    floored = False
    for ax, direction in zip(axes[0], directions):
        label, pick, xcol = DIRECTIONS[direction]
        sub = frame[pick(frame)]
        for n, m in enumerate(models):
            d = sub[sub.model == m]
            if d.empty:
                continue
            per_seed = d.groupby(["seed", xcol]).eq_nmse.agg(stat).unstack(0)
            x = per_seed.index.to_numpy(float)
            mean, low, high = (
                v.to_numpy(float) for v in (per_seed.mean(axis=1), per_seed.min(axis=1), per_seed.max(axis=1))
            )
            if floor is None:
                mean, low, high = (np.where(v > 0, v, np.nan) for v in (mean, low, high))
                floored |= bool((per_seed.to_numpy() <= 0).any())
            else:
                floored |= bool((per_seed.to_numpy() < floor).any())
                mean, low, high = (np.maximum(v, floor) for v in (mean, low, high))
            (line,) = ax.plot(x, mean, marker=MARKERS[n % len(MARKERS)], ms=3, lw=1, label=m)
            if per_seed.shape[1] > 1:
                ax.fill_between(x, low, high, color=line.get_color(), alpha=0.15, lw=0)
        ax.set_yscale("log")
        ax.set_xlabel("offset d (pixels)")
        ax.set_title(label)
        ax.grid(alpha=0.3, which="major")
    axes[0, 0].set_ylabel(f"equivariance NMSE ({stat} over images)")
    if floored and floor is not None:
        for ax in axes[0]:
            ax.axhline(floor, color="0.5", ls=":", lw=0.8)
        axes[0, 0].annotate(
            f"exact 0 (drawn at {floor:.0e})", (0.02, floor), xycoords=("axes fraction", "data"), fontsize=6
        )
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=6, loc="outside right upper")
    note = (
        "\n(exact zeros, at d = 0 and for APS models at d = 1, are not drawn)"
        if floored and floor is None
        else ""
    )
    fig.suptitle((title or "Equivariance error against the sub-pixel offset") + note)
    return fig


def plot_flip_rates(
    frame, models: Sequence[str], *, directions: Sequence[str] = ("y", "x", "diagonal"), title=""
):
    """One panel per direction: the fraction of images whose adaptive grid choice for
    ``S_d x`` follows no integer neighbour of ``d`` (the sub-pixel protocol's
    ``grid_flip``) against the offset ``d``, one line per model of ``models`` that has
    grid choices (the others are skipped), mean over seeds with a band from the lowest to
    the highest seed."""
    import matplotlib.pyplot as plt

    frame = _per_seed(frame)
    if "grid_flip" not in frame:
        raise ValueError("the frame has no grid_flip column: rerun the sub-pixel protocol to record it")
    frame = frame[(frame.protocol == "subpixel") & frame.grid_flip.notna()]
    fig, axes = _direction_panels(plt, directions, 2.5)
    for ax, direction in zip(axes[0], directions):
        label, pick, xcol = DIRECTIONS[direction]
        sub = frame[pick(frame)]
        for n, m in enumerate(models):
            d = sub[sub.model == m]
            if d.empty:
                continue
            per_seed = d.groupby(["seed", xcol]).grid_flip.mean().unstack(0)
            x = per_seed.index.to_numpy(float)
            (line,) = ax.plot(x, per_seed.mean(axis=1), marker=MARKERS[n % len(MARKERS)], ms=3, lw=1, label=m)
            if per_seed.shape[1] > 1:
                ax.fill_between(
                    x, per_seed.min(axis=1), per_seed.max(axis=1), color=line.get_color(), alpha=0.15, lw=0
                )
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("offset d (pixels)")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("grid-flip rate (fraction of images)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=6, loc="outside right upper")
    fig.suptitle(title or "Grid choices that follow neither integer neighbour of the offset")
    return fig


def plot_frontier(points, *, x: str = "half-pixel eq NMSE", y: str = "PSNR (dB)", title: str = ""):
    """Each model as a point (``x``, ``y``) of ``points`` (a frame indexed by model with
    columns ``x``, ``y`` and, when several seeds were measured, ``x sd`` / ``y sd`` drawn
    as error bars): the frontier of sub-pixel robustness against reconstruction quality.
    Lower left is not better here: lower ``x`` and higher ``y`` is."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH * 1.4, 3.0), layout="constrained")
    for n, (model, r) in enumerate(points.iterrows()):
        xerr = r.get(f"{x} sd", np.nan)
        yerr = r.get(f"{y} sd", np.nan)
        ax.errorbar(
            r[x],
            r[y],
            xerr=None if not np.isfinite(xerr) else xerr,
            yerr=None if not np.isfinite(yerr) else yerr,
            fmt=MARKERS[n % len(MARKERS)],
            ms=5,
            capsize=2,
            label=model,
        )
    ax.set_xscale("log")
    ax.set_xlabel(f"{x} (mean over images; lower is better)")
    ax.set_ylabel(f"{y} (higher is better)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6, loc="best", ncol=2)
    ax.set_title(title or "Sub-pixel robustness against reconstruction quality")
    return fig


def plot_grid_choice(offsets, norms, *, title: str = ""):
    """The four polyphase norms (:func:`apslib.subpixel.norms_under_shift`) against the
    offset: where the largest changes, APS-D changes its grid; between integers no
    component is a shifted copy of one of the unshifted image."""
    import matplotlib.pyplot as plt

    from ..polyphase import PHASES

    norms = np.asarray(norms, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.4), layout="constrained")
    for j, phase in enumerate(PHASES):
        ax.plot(offsets, norms[:, j], marker=MARKERS[j], ms=3, lw=1, label=f"component {phase}")
    winner = norms.argmax(1)
    lo, hi = float(norms.min()), float(norms.max())
    ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.3 * (hi - lo))
    for o, w in zip(offsets, winner):
        ax.annotate(
            "".join(map(str, PHASES[w])),
            (o, hi + 0.08 * (hi - lo)),
            fontsize=5,
            ha="center",
            va="bottom",
            rotation=90,
        )
    ax.set_xlabel("offset along x (pixels)")
    ax.set_ylabel("squared l2 norm of the component")
    ax.legend(fontsize=6, loc="lower left")
    ax.set_title(
        title or "APS-D's grid choice under a sub-pixel shift\n(the chosen component, written ij, on top)"
    )
    return fig


def plot_choice_rules(rules: dict, *, title: str = ""):
    """APS's rule and the learned rule on one feature map (:func:`apslib.learned.choice_rules`):
    the map (mean over channels, one panel per polyphase component), then one bar panel per
    rule over the four components, the component each rule picks (its largest score) in
    dark."""
    import matplotlib.pyplot as plt

    from ..polyphase import PHASES, polyphase_components

    comps = polyphase_components(rules["map"][None])[0].mean(1).numpy()  # (4, h, w)
    scores = rules["scores"]
    fig = plt.figure(figsize=(COLUMN_WIDTH * 3, 2.3), layout="constrained")
    grid = fig.add_gridspec(2, 2 + len(scores), width_ratios=[1, 1] + [1.6] * len(scores))
    lo, hi = float(comps.min()), float(comps.max())
    labels = ["".join(map(str, p)) for p in PHASES]
    for k in range(4):
        ax = fig.add_subplot(grid[k // 2, k % 2])
        ax.imshow(comps[k], cmap="gray", vmin=lo, vmax=hi)
        ax.set_title(f"component {labels[k]}", fontsize=6)
        ax.set_xticks([])
        ax.set_yticks([])
    for n, (name, v) in enumerate(scores.items()):
        ax = fig.add_subplot(grid[:, 2 + n])
        v = np.asarray(v, dtype=np.float64)
        colors = ["0.25" if j == int(v.argmax()) else "0.75" for j in range(4)]
        ax.bar(labels, v, color=colors)
        ax.set_title(name, fontsize=7)
        ax.set_xlabel("component ij")
        ax.axhline(0, color="0.5", lw=0.5)
    fig.suptitle(
        title or "One feature map, two rules: the grid APS keeps and the grid the learned scorer keeps"
    )
    return fig

"""The paper's published numbers, and this run's result tables next to them.

:func:`paper_numbers` loads ``paper_numbers.json`` (Chaman & Dokmanić, Asilomar 2021,
arXiv:2105.04040, poster Tables 1, 2 and 4) as a tidy frame with columns ``table``,
``model``, ``dataset``, ``acquisition``, ``metric`` and ``value``.
:func:`side_by_side` puts the values of a tidy result table of :mod:`apslib.evaluate`
(notebooks 03 and 04) next to the paper's, one row per model, matched by model name only:
a model on one side only (the paper's ``LPF-2``/``APS-2`` rows of Tables 2 and 4, this
run's ``LPF-3``/``APS-3`` or the ``Zero-filled`` reference) gets ``NaN`` on the other side.
Nothing is substituted.

The plotting helpers draw per-model values on a log axis; exact zeros (an exactly
equivariant model) are drawn at :data:`apslib.evaluate.PLOT_FLOOR` (1e-20) with a dotted
line marking that floor.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .evaluate import PLOT_FLOOR
from .plots import COLUMN_WIDTH

__all__ = ["PAPER_FILE", "QUANTITIES", "paper_numbers", "paper_source", "side_by_side",
           "flatten", "to_markdown", "plot_side_by_side", "plot_ood", "plot_distribution"]

PAPER_FILE = Path(__file__).resolve().parent / "paper_numbers.json"
SOURCES = ("ours", "paper")

# Per table: the quantities (column labels) and how each is picked from a tidy result table:
# (metric, acquisition, protocol, statistic).
QUANTITIES = {
    "1": {f"{m} {a}": (m, a, "random" if m.startswith("eq_") else "unshifted", "mean")
          for m in ("eq_nmse", "eq_ssim", "nmse", "psnr", "ssim") for a in ("PD", "PDFS")},
    "2": {"eq_nmse": ("eq_nmse", "all", "random", "mean"),
          "eq_ssim": ("eq_ssim", "all", "random", "mean")},
    "4": {"psnr_decline mean": ("psnr_decline", "all", "random", "mean")},
}


def _load() -> dict:
    return json.loads(PAPER_FILE.read_text(encoding="utf-8"))


def paper_source() -> str:
    """The citation of the numbers in ``paper_numbers.json``."""
    return _load()["source"]


def paper_numbers() -> pd.DataFrame:
    """The paper's Tables 1, 2 and 4 as tidy rows (``table`` is ``"1"``, ``"2"`` or ``"4"``;
    ``attrs["source"]`` names the paper)."""
    doc = _load()
    df = pd.DataFrame(doc["rows"], columns=["table", "model", "dataset", "acquisition", "metric", "value"])
    df["table"] = df["table"].astype(str)
    df["value"] = df["value"].astype(float)
    df.attrs["source"] = doc["source"]
    return df


def _table_key(table) -> str:
    key = str(table).lower().replace("table", "").strip()
    if key not in QUANTITIES:
        raise ValueError(f"unknown table {table!r}: use one of 1, 2, 4 (the paper's Tables 1, 2, 4)")
    return key


def _ood_dataset(ours: pd.DataFrame) -> str:
    sets = set(ours.dataset) if "dataset" in ours else set()
    for name in ("folder", "photographs"):
        if name in sets:
            return name
    raise ValueError(f"no out-of-distribution image set in the table (have {sorted(sets)}); "
                     "Table 2 compares with 'photographs' or an image folder ('folder'): "
                     "pass dataset=... or run notebook 04")


def side_by_side(ours: pd.DataFrame, table, *, models: Sequence[str] | None = None,
                 dataset: str | None = None) -> pd.DataFrame:
    """This run's values next to the paper's for paper Table ``table`` (1, 2 or 4).

    ``ours``: a tidy result table (columns ``model, dataset, acquisition, protocol, metric,
    statistic, value``). Table 1 and 4 use ``dataset="val"`` (the default), Table 2 the
    out-of-distribution ``dataset`` (default ``"folder"`` when an image folder was
    evaluated, else ``"photographs"``; the paper's is ImageNet). Returns one row per model
    (``models`` first, in that order, then the paper's, then the rest) and columns
    ``(quantity, "ours" | "paper")``; a model missing on one side is ``NaN`` there.
    ``attrs``: ``table``, ``dataset`` (ours) and ``paper_dataset``.
    """
    key = _table_key(table)
    if dataset is None:
        dataset = _ood_dataset(ours) if key == "2" else "val"
    paper = paper_numbers()
    paper = paper[paper.table == key]
    rows = []
    for label, (metric, acq, protocol, stat) in QUANTITIES[key].items():
        d = ours[(ours.dataset == dataset) & (ours.metric == metric) & (ours.acquisition == acq)
                 & (ours.protocol == protocol) & (ours.statistic == stat)]
        rows += [{"model": m, "quantity": label, "source": "ours", "value": float(v)}
                 for m, v in d.groupby("model", sort=False).value.first().items()]
        p = paper[(paper.metric == metric) & (paper.acquisition == acq)]
        rows += [{"model": m, "quantity": label, "source": "paper", "value": float(v)}
                 for m, v in zip(p.model, p.value)]
    long = pd.DataFrame(rows, columns=["model", "quantity", "source", "value"])
    order = list(dict.fromkeys([*(models or []), *paper.model, *long.model]))
    cols = pd.MultiIndex.from_product([list(QUANTITIES[key]), SOURCES], names=["quantity", "source"])
    wide = long.pivot_table(index="model", columns=["quantity", "source"], values="value",
                            aggfunc="first", dropna=False) if len(long) else pd.DataFrame()
    wide = wide.reindex(index=pd.Index(order, name="model"), columns=cols)
    wide.attrs.update(table=key, dataset=dataset, paper_dataset=", ".join(dict.fromkeys(paper.dataset)))
    return wide


def flatten(t: pd.DataFrame) -> pd.DataFrame:
    """``(quantity, source)`` columns as ``"quantity (source)"`` strings, model as a column."""
    out = t.copy()
    out.columns = [f"{q} ({s})" for q, s in t.columns]
    return out.reset_index()


def _fmt(v, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    v = float(v)
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}g}" if (v == 0 or 1e-3 <= abs(v) < 1e5) else f"{v:.{digits - 1}e}"


def to_markdown(t: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub markdown table of a :func:`side_by_side` frame (missing values as ``-``)."""
    flat = flatten(t)
    head = "| " + " | ".join(flat.columns) + " |"
    rule = "|" + "---|" * len(flat.columns)
    body = ["| " + " | ".join([str(r[0])] + [_fmt(v, digits) for v in r[1:]]) + " |"
            for r in flat.itertuples(index=False)]
    return "\n".join([head, rule, *body]) + "\n"


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------

def _floored(v, floor: float):
    v = np.asarray(v, dtype=np.float64)
    return np.where(np.isnan(v), np.nan, np.maximum(v, floor))


def _floor_line(ax, floor: float):
    ax.axhline(floor, color="0.5", ls=":", lw=0.8)
    ax.annotate(f"exact 0 (drawn at {floor:.0e})", (0.01, floor), xycoords=("axes fraction", "data"),
                xytext=(0, 2), textcoords="offset points", fontsize=6, color="0.4", va="bottom")


def _model_axis(ax, names):
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=35, ha="right")
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.set_xlabel("model")


def plot_side_by_side(t: pd.DataFrame, quantities: Sequence[str], *, ylabel: str, title: str,
                      log: bool = True, floor: float = PLOT_FLOOR, panel_titles: Sequence[str] | None = None):
    """One panel per quantity of a :func:`side_by_side` frame: this run (filled circles)
    and the paper (open diamonds) per model; on a log axis zeros are drawn at ``floor``."""
    import matplotlib.pyplot as plt

    names = list(t.index)
    fig, axes = plt.subplots(1, len(quantities), figsize=(COLUMN_WIDTH * len(quantities), 2.6), squeeze=False,
                             sharey=True, layout="constrained")
    x = np.arange(len(names))
    for i, (ax, q) in enumerate(zip(axes[0], quantities)):
        ours, paper = t[(q, "ours")].to_numpy(float), t[(q, "paper")].to_numpy(float)
        if log:
            ours, paper = _floored(ours, floor), _floored(paper, floor)
            ax.set_yscale("log")
        ax.plot(x - 0.1, ours, "o", color="C0", label="this run", ms=5)
        ax.plot(x + 0.1, paper, "D", mfc="none", color="C3", label="paper", ms=5)
        if log and np.nanmin(np.concatenate([ours, paper, [np.inf]])) <= floor:
            _floor_line(ax, floor)
        _model_axis(ax, names)
        ax.set_title(panel_titles[i] if panel_titles else q)
        if i == 0:
            ax.set_ylabel(ylabel)
    axes[0, -1].legend(loc="center left")
    fig.suptitle(title)
    return fig


def plot_ood(ours: pd.DataFrame, models: Sequence[str], *, floor: float = PLOT_FLOOR,
             title: str = "Out-of-distribution equivariance NMSE"):
    """Mean equivariance NMSE (random protocol) per model and OOD set of this run, with the
    paper's ImageNet values (open diamonds); log axis, zeros at ``floor``."""
    import matplotlib.pyplot as plt

    d = ours[(ours.metric == "eq_nmse") & (ours.protocol == "random") & (ours.statistic == "mean")
             & (ours.acquisition == "all")]
    paper = paper_numbers().query("table == '2' and metric == 'eq_nmse'")
    names = list(dict.fromkeys([*models, *paper.model]))
    sets = list(dict.fromkeys(d.dataset))
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.8), layout="constrained")
    width = 0.7 / max(len(sets) + 1, 1)
    low = np.inf
    for j, s in enumerate(sets):
        v = d[d.dataset == s].groupby("model").value.first().reindex(names).to_numpy(float)
        v = _floored(v, floor)
        low = min(low, np.nanmin(np.append(v, np.inf)))
        ax.plot(np.arange(len(names)) + (j - len(sets) / 2) * width, v, "o", ms=4, color=f"C{j}",
                label=f"this run: {s}")
    pv = _floored(paper.set_index("model").value.reindex(names).to_numpy(float), floor)
    ax.plot(np.arange(len(names)) + (len(sets) / 2) * width, pv, "D", mfc="none", ms=5, color="C3",
            label="paper: ImageNet val")
    ax.set_yscale("log")
    if low <= floor:
        _floor_line(ax, floor)
    _model_axis(ax, names)
    ax.set_ylabel("equivariance NMSE (mean, unitless)")
    ax.legend(loc="best")
    ax.set_title(title)
    return fig


def plot_distribution(sweeps: dict[str, pd.DataFrame], models: Sequence[str], *,
                      metric: str = "eq_nmse", floor: float = PLOT_FLOOR, title: str = "",
                      seed: int = 0):
    """Distribution of per-(image, shift) ``metric`` over the exhaustive sweep tables
    (``{panel title: sweep frame}``), one box + strip per model, coloured by dataset;
    log axis for NMSE with zeros at ``floor``."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, len(sweeps), figsize=(COLUMN_WIDTH * len(sweeps), 2.8), squeeze=False,
                             sharey=True, layout="constrained")
    for i, (ax, (name, sw)) in enumerate(zip(axes[0], sweeps.items())):
        sw = sw[sw.model.isin(models)].copy()
        sw["plotted"] = _floored(sw[metric], floor) if metric == "eq_nmse" else sw[metric]
        order = [m for m in models if m in set(sw.model)]
        hue = "dataset" if sw.dataset.nunique() > 1 else None
        sns.boxplot(data=sw, x="model", y="plotted", order=order, ax=ax, color="0.9", fliersize=0,
                    linewidth=0.6, log_scale=metric == "eq_nmse")
        state = np.random.get_state()  # seaborn jitters with the global RNG: fix it so the
        np.random.seed(seed + i)          # same tables give the same figure
        try:
            sns.stripplot(data=sw, x="model", y="plotted", order=order, hue=hue, ax=ax, size=1.5,
                          alpha=0.5, jitter=0.25, dodge=False, legend=bool(hue))
        finally:
            np.random.set_state(state)
        if metric == "eq_nmse" and (sw["plotted"] <= floor).any():
            _floor_line(ax, floor)
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels(order, rotation=35, ha="right")
        ax.set_xlabel("model")
        ax.set_ylabel("equivariance NMSE per (image, shift)" if metric == "eq_nmse" else metric)
        ax.set_title(f"{name} ({sw.groupby('model').size().max() if len(sw) else 0} pairs per model)")
        if hue and ax.get_legend() is not None:
            sns.move_legend(ax, "best", fontsize=5, title=None, markerscale=3)
    fig.suptitle(title or "Equivariance error over every shift mod 2**depth")
    return fig

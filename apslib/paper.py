"""The paper's published numbers, and this run's result tables next to them.

:func:`paper_numbers` loads ``paper_numbers.json`` (Chaman & Dokmanić, Asilomar 2021,
arXiv:2105.04040, poster Tables 1, 2 and 4) as a tidy frame with columns ``table``,
``model``, ``dataset``, ``acquisition``, ``metric`` and ``value``.
:func:`side_by_side` puts the values of a tidy result table of :mod:`apslib.evaluate`
(notebooks 03 and 04) next to the paper's, one row per model, matched by model name only:
a model on one side only (the paper's ``LPF-2``/``APS-2`` rows of Tables 2 and 4, this
run's ``LPF-3``/``APS-3`` or the ``Zero-filled`` reference) gets ``NaN`` on the other side.
Nothing is substituted. :func:`to_markdown` prints every number with
:func:`apslib.evaluate.format_value`, the formatter of every result table.

The figures of these frames are :func:`apslib.plots.plot_side_by_side`,
:func:`apslib.plots.plot_ood` and :func:`apslib.plots.plot_distribution`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .evaluate.tables import epochs_caption, epochs_note, format_value, format_with_spread, seed_summary

__all__ = [
    "decline_consistency",
    "PAPER_FILE",
    "QUANTITIES",
    "paper_numbers",
    "paper_source",
    "side_by_side",
    "flatten",
    "to_markdown",
]

PAPER_FILE = Path(__file__).resolve().parent / "paper_numbers.json"
SOURCES = ("ours", "ours sd", "paper")

# Per table: the quantities (column labels) and how each is picked from a tidy result table:
# (metric, acquisition, protocol, statistic).
QUANTITIES = {
    "1": {
        f"{m} {a}": (m, a, "random" if m.startswith("eq_") else "unshifted", "mean")
        for m in ("eq_nmse", "eq_ssim", "nmse", "psnr", "ssim")
        for a in ("PD", "PDFS")
    },
    "2": {"eq_nmse": ("eq_nmse", "all", "random", "mean"), "eq_ssim": ("eq_ssim", "all", "random", "mean")},
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
    raise ValueError(
        f"no out-of-distribution image set in the table (have {sorted(sets)}); "
        "Table 2 compares with 'photographs' or an image folder ('folder'): "
        "pass dataset=... or run notebook 04"
    )


def side_by_side(
    ours: pd.DataFrame, table, *, models: Sequence[str] | None = None, dataset: str | None = None
) -> pd.DataFrame:
    """This run's values next to the paper's for paper Table ``table`` (1, 2 or 4).

    ``ours``: a tidy result table (columns ``model, dataset, acquisition, protocol, metric,
    statistic, value``). Table 1 and 4 use ``dataset="val"`` (the default), Table 2 the
    out-of-distribution ``dataset`` (default ``"folder"`` when an image folder was
    evaluated, else ``"photographs"``; the paper's is ImageNet). Returns one row per model
    (``models`` first, in that order, then the paper's, then the rest) and columns
    ``(quantity, "ours" | "ours sd" | "paper")``: the mean over the table's training seeds,
    their standard deviation (NaN for one seed) and the paper's value; a model missing on one
    side is ``NaN`` there. ``attrs``: ``table``, ``dataset`` (ours), ``paper_dataset``,
    ``seeds`` (training seeds per model, the fewest) and ``n`` (samples per seed, the fewest),
    and ``epochs`` (``{model: "3 of 10"}``) when some run is unfinished
    (:func:`apslib.evaluate.tables.epochs_note`): :func:`to_markdown` and :func:`flatten`
    then show them.
    """
    key = _table_key(table)
    if dataset is None:
        dataset = _ood_dataset(ours) if key == "2" else "val"
    paper = paper_numbers()
    paper = paper[paper.table == key]
    summary = seed_summary(ours)
    rows, used = [], []
    for label, (metric, acq, protocol, stat) in QUANTITIES[key].items():
        d = summary[
            (summary.dataset == dataset)
            & (summary.metric == metric)
            & (summary.acquisition == acq)
            & (summary.protocol == protocol)
            & (summary.statistic == stat)
        ]
        used.append(d)
        rows += [
            {"model": m, "quantity": label, "source": src, "value": float(v)}
            for m, v, sd in zip(d.model, d.value, d.sd)
            for src, v in (("ours", v), ("ours sd", sd))
        ]
        p = paper[(paper.metric == metric) & (paper.acquisition == acq)]
        rows += [
            {"model": m, "quantity": label, "source": "paper", "value": float(v)}
            for m, v in zip(p.model, p.value)
        ]
    long = pd.DataFrame(rows, columns=["model", "quantity", "source", "value"])
    order = list(dict.fromkeys([*(models or []), *paper.model, *long.model]))
    cols = pd.MultiIndex.from_product([list(QUANTITIES[key]), SOURCES], names=["quantity", "source"])
    wide = (
        long.pivot_table(
            index="model", columns=["quantity", "source"], values="value", aggfunc="first", dropna=False
        )
        if len(long)
        else pd.DataFrame()
    )
    wide = wide.reindex(index=pd.Index(order, name="model"), columns=cols)
    used = pd.concat(used) if used else summary.iloc[:0]
    wide.attrs.update(
        table=key,
        dataset=dataset,
        paper_dataset=", ".join(dict.fromkeys(paper.dataset)),
        seeds=int(used.seeds.min()) if len(used) else 0,
        n=int(used.n.min()) if len(used) else 0,
    )
    note = epochs_note(ours)
    if note:
        wide.attrs["epochs"] = note
    return wide


def flatten(t: pd.DataFrame) -> pd.DataFrame:
    """Two-level columns ``(quantity, source)`` as ``"quantity (source)"`` strings, the
    index (model, ...) as leading columns; a last column ``epochs`` when some run is
    unfinished (``attrs["epochs"]``)."""
    out = t.copy()
    if isinstance(t.columns, pd.MultiIndex):
        out.columns = [f"{q} ({s})" for q, s in t.columns]
    out = out.reset_index()
    note = t.attrs.get("epochs")
    if note:
        out["epochs"] = [note.get(str(m), "") for m in t.index.get_level_values(-1)]
    return out


def to_markdown(t: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub markdown table of a :func:`side_by_side` frame (``ours`` as ``mean ± sd``
    over seeds where the spread is known), or any table indexed by model (missing values as
    ``-``); when some run is unfinished (``attrs["epochs"]``), a line under it gives each
    run's epochs."""
    note = t.attrs.get("epochs")
    if isinstance(t.columns, pd.MultiIndex) and "ours sd" in t.columns.get_level_values(-1):
        t = t.copy()
        for q in dict.fromkeys(t.columns.get_level_values(0)):
            t[(q, "ours")] = [
                format_with_spread(v, sd, digits) for v, sd in zip(t[(q, "ours")], t[(q, "ours sd")])
            ]
        t = t.drop(columns=[c for c in t.columns if c[-1] == "ours sd"])
    flat, keys = flatten(t), t.index.nlevels
    if note and "epochs" not in t.columns:  # the epochs go under the table, not in a column
        flat = flat.drop(columns="epochs", errors="ignore")
    head = "| " + " | ".join(map(str, flat.columns)) + " |"
    rule = "|" + "---|" * len(flat.columns)
    body = [
        "| "
        + " | ".join(
            [str(v) for v in r[:keys]]
            + [v if isinstance(v, str) else format_value(v, digits) for v in r[keys:]]
        )
        + " |"
        for r in flat.itertuples(index=False)
    ]
    foot = [f"\n_{epochs_caption(note)}._"] if note else []
    return "\n".join([head, rule, *body, *foot]) + "\n"


def decline_consistency() -> pd.DataFrame:
    """Is the paper's Table 4 (decline in PSNR) consistent with its Table 1?

    Per model in both tables and per acquisition (PD, PDFS): ``ratio =
    sqrt(eq NMSE / reconstruction NMSE)`` (the equivariance error over the reconstruction
    error, taking ``||F(x)|| ~ ||y||``), the one-sided bound ``20 log10(1 + ratio)`` (a
    drop), the two-sided :func:`apslib.metrics.decline_bound`, and the paper's decline.
    A bound from means is approximate (the paper gives no per-volume values); the
    derivation is in :func:`apslib.metrics.decline_bound` and notebook 05.
    """
    from .metrics import decline_bound

    p = paper_numbers()
    t1, t4 = p[p.table == "1"], p[(p.table == "4") & (p.metric == "psnr_decline")]
    rows = []
    for model in [m for m in dict.fromkeys(t4.model) if m in set(t1.model)]:
        decline = float(t4[t4.model == model].value.iloc[0])
        for acq in ("PD", "PDFS"):
            pick = t1[(t1.model == model) & (t1.acquisition == acq)].set_index("metric").value
            ratio = math.sqrt(pick["eq_nmse"] / pick["nmse"])
            rows.append(
                {
                    "model": model,
                    "acquisition": acq,
                    "eq_nmse": pick["eq_nmse"],
                    "nmse": pick["nmse"],
                    "ratio": ratio,
                    "bound_drop_db": 20 * math.log10(1 + ratio),
                    "bound_db": float(decline_bound(ratio)),
                    "paper_decline_db": decline,
                }
            )
    return pd.DataFrame(rows).set_index(["model", "acquisition"])

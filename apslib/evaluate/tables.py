"""Tidy result tables: rows, files, the paper-shaped pivots and the one number formatter.

Conventions
-----------
A tidy table has the columns :data:`COLUMNS`: one row per ``(model, seed, dataset,
acquisition, protocol, metric, statistic)`` with its ``value`` and the sample count ``n``.

* ``seed``: the training seed of the run (:func:`apslib.names.run_slug`); a table of several
  seeds is summarised by :func:`seed_summary` (mean over seeds, ``sd``: their sample
  standard deviation, ``seeds``: how many) or pooled by :func:`pool_seeds` (worst cases over
  all seeds). The paper-shaped tables below do that themselves: ``value="value"`` gives the
  mean over seeds, ``value="sd"`` the spread.

* ``dataset``: ``"val"`` (notebook 03) or an out-of-distribution set (notebook 04).
* ``acquisition``: ``PD``, ``PDFS`` or ``all`` (OOD sets: ``all`` only).
* ``protocol``: ``unshifted`` (reconstruction), ``random`` (one seeded shift per volume /
  image) or ``exhaustive`` (every shift modulo ``2**depth``).
* ``statistic``: ``mean``, ``median``, ``max``, ``min`` over the samples, or ``count``
  (flips).

Non-finite values are values: an exactly equivariant model has PSNR ``inf``. CSV writes
``inf``; the JSON copy writes the strings ``"inf"``, ``"-inf"`` and ``"nan"``;
:func:`read_table` gives ``inf`` back. An undefined value (NaN) is never averaged:
:func:`stat_rows` leaves it out of the statistics with a warning, and ``n`` counts the
values used. :func:`format_value` prints every number of every table (here and in
:mod:`apslib.paper`): 4 significant digits, scientific notation below 1e-3 or from 1e5 on,
``inf`` as ``inf`` and missing entries as ``-``.

The JSON copy is also the CSV's record: :func:`read_table` refuses a CSV with another number
of rows than its JSON copy (a truncated or partly copied table) in one line
(:class:`TableError`); a CSV without its JSON copy is read unchecked.

When some evaluated run is unfinished, a tidy table has one more column, ``epochs``
(``"3 of 10"``, :mod:`apslib.evaluate.provenance`); every paper-shaped table made from it
then carries ``attrs["epochs"]`` (:func:`epochs_note`), which :func:`format_table` shows
as a caption and :func:`apslib.paper.to_markdown` as a line under the table.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..io import atomic_write_text

__all__ = [
    "COLUMNS",
    "STATS",
    "stat_rows",
    "flip_rows",
    "summarise",
    "seed_summary",
    "pool_seeds",
    "write_table",
    "read_table",
    "TableError",
    "epochs_note",
    "epochs_text",
    "epochs_caption",
    "order_models",
    "table1",
    "table2",
    "table4",
    "decline_bound_table",
    "worst_case_table",
    "format_value",
    "format_with_spread",
    "format_table",
]

COLUMNS = ["model", "seed", "dataset", "acquisition", "protocol", "metric", "statistic", "value", "n"]
KEYS = ["model", "dataset", "acquisition", "protocol", "metric", "statistic"]
STATS = {"mean": np.mean, "median": np.median, "max": np.max, "min": np.min}


# --------------------------------------------------------------------------------------
# Tidy rows
# --------------------------------------------------------------------------------------


def stat_rows(values, *, stats=("mean", "median", "max", "min"), **keys) -> list[dict]:
    """One row per statistic of ``values`` (none for no values); ``keys`` fill the other
    columns (``model``, ``dataset``, ``acquisition``, ``protocol``, ``metric``). NaN values
    (undefined) are left out, with one warning naming how many; ``inf`` stays a value."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    undefined = np.isnan(v)
    if undefined.any():
        named = ("model", "dataset", "acquisition", "metric")
        where = ", ".join(f"{k} {keys[k]}" for k in named if k in keys)
        warnings.warn(
            f"{int(undefined.sum())} of {v.size} values of {where or 'a metric'} are undefined (NaN): "
            "left out of its statistics",
            stacklevel=2,
        )
        v = v[~undefined]
    if v.size == 0:
        return []
    with np.errstate(invalid="ignore"):
        return [{**keys, "statistic": s, "value": float(STATS[s](v)), "n": int(v.size)} for s in stats]


def flip_rows(first: torch.Tensor, margin_min: float, depth: int, **keys) -> list[dict]:
    """The flip rows of an APS model: pairs that flip (``flips``), by the first level that
    deviates (``flips_level1`` ... ``flips_level{depth}``), and the smallest phase margin."""
    n = int(first.numel())
    rows = [{**keys, "metric": "flips", "statistic": "count", "value": float((first > 0).sum()), "n": n}]
    rows += [
        {
            **keys,
            "metric": f"flips_level{lv}",
            "statistic": "count",
            "value": float((first == lv).sum()),
            "n": n,
        }
        for lv in range(1, depth + 1)
    ]
    rows.append({**keys, "metric": "phase_margin", "statistic": "min", "value": float(margin_min), "n": n})
    return rows


def summarise(rows: list[dict]) -> pd.DataFrame:
    """The tidy :data:`COLUMNS` table of ``rows``."""
    return pd.DataFrame(rows, columns=COLUMNS)


# --------------------------------------------------------------------------------------
# Seeds
# --------------------------------------------------------------------------------------


def _with_seed(df: pd.DataFrame) -> pd.DataFrame:
    if "seed" not in df or df["seed"].isna().all():  # tables written before seeds existed
        df = df.assign(seed=0)
    return df


def seed_summary(df: pd.DataFrame) -> pd.DataFrame:
    """One row per ``(model, dataset, acquisition, protocol, metric, statistic)`` of a tidy
    table over its seeds: ``value`` = mean over seeds of the per-seed value, ``sd`` = their
    sample standard deviation (ddof 1; NaN for one seed), ``min``/``max`` over seeds,
    ``seeds`` = how many seeds and ``n`` = samples per seed (the smallest, if they differ).
    Non-finite values stay: an ``inf`` in any seed gives a mean of ``inf``."""
    df = _with_seed(df)
    if df.empty:
        return pd.DataFrame(columns=[*KEYS, "value", "sd", "min", "max", "seeds", "n"])
    g = df.groupby(KEYS, sort=False, dropna=False)
    with np.errstate(invalid="ignore"):
        out = g.agg(
            value=("value", "mean"),
            sd=("value", "std"),
            min=("value", "min"),
            max=("value", "max"),
            seeds=("seed", "nunique"),
            n=("n", "min"),
        )
    return out.reset_index()


_POOL = {"max": "max", "min": "min", "count": "sum", "mean": "mean", "median": "mean"}


def pool_seeds(df: pd.DataFrame) -> pd.DataFrame:
    """The tidy table of all seeds taken as one sample: ``max`` rows the max over seeds,
    ``min`` the min, ``count`` (flips) the sum, ``mean`` the mean (equal sample counts per
    seed), ``median`` the mean of the medians; ``n`` summed; column ``seeds`` counts
    them. For worst cases over every run."""
    df = _with_seed(df)
    if df.empty:
        return pd.DataFrame(columns=[*KEYS, "value", "n", "seeds"])
    parts = []
    for stat, d in df.groupby("statistic", sort=False):
        g = d.groupby(KEYS, sort=False, dropna=False)
        parts.append(
            g.agg(value=("value", _POOL.get(stat, "mean")), n=("n", "sum"), seeds=("seed", "nunique"))
        )
    return pd.concat(parts).reset_index()


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------


def _json_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def write_table(df: pd.DataFrame, path) -> Path:
    """Write ``df`` atomically as CSV to ``path`` (``.csv``) and a JSON copy (``.json``,
    records; non-finite values as the strings ``"inf"``/``"-inf"``/``"nan"``)."""
    path = Path(path).with_suffix(".csv")
    atomic_write_text(path, df.to_csv(index=False))
    records = [
        {k: _json_value(v.item() if hasattr(v, "item") else v) for k, v in r.items()}
        for r in df.to_dict("records")
    ]
    atomic_write_text(path.with_suffix(".json"), json.dumps(records, indent=1) + "\n")
    return path


class TableError(ValueError):
    """A result table that cannot be read as written: truncated, damaged, or at odds with
    its JSON copy. The message is one line naming the file and what to do."""


def _recorded_rows(record: Path, csv: Path) -> int | None:
    """The row count of the JSON copy ``record`` of ``csv`` (``None``: no copy)."""
    try:
        doc = json.loads(record.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise TableError(
            f"{record}, the JSON copy written with {csv.name}, is unreadable ({type(err).__name__}): "
            f"rerun the evaluation that wrote them, or delete {record.name} to read {csv.name} unchecked"
        ) from None
    return len(doc) if isinstance(doc, list) else None


def read_table(path) -> pd.DataFrame:
    """Read a table written by :func:`write_table` (``inf`` comes back as ``inf``), checked
    against its JSON copy: :class:`TableError` when the CSV is empty, damaged or holds
    another number of rows (a truncated copy, say). A CSV without a JSON copy is read as
    it is."""
    csv = Path(path).with_suffix(".csv")
    redo = "rerun the evaluation that wrote it (or copy it again)"
    try:
        df = pd.read_csv(csv)
    except pd.errors.EmptyDataError:
        raise TableError(f"result table {csv} is empty: {redo}") from None
    except pd.errors.ParserError as err:
        cause = " ".join(str(err).split())[:120]
        raise TableError(f"result table {csv} is damaged or truncated ({cause}): {redo}") from None
    rows = _recorded_rows(csv.with_suffix(".json"), csv)
    if rows is not None and rows != len(df):
        raise TableError(
            f"result table {csv} has {len(df)} rows but its JSON copy {csv.with_suffix('.json').name}, "
            f"written with it, has {rows}: the CSV is truncated or from another evaluation; {redo}"
        )
    return df


def epochs_text(done: int | None, planned: int | None) -> str:
    """``"3 of 10"``: the epochs a run trained of those it planned (``""`` when unknown)."""
    return "" if done is None or planned is None else f"{done} of {planned}"


def epochs_note(df: pd.DataFrame) -> dict[str, str]:
    """``{model: "3 of 10"}`` from the ``epochs`` column of a tidy table (written when some
    run is unfinished; several seeds with different epochs: ``"1 of 3 (seed 0), 3 of 3
    (seed 1)"``); ``{}`` for a table without that column: every run finished."""
    if "epochs" not in df:
        return {}
    d = _with_seed(df)
    d = d[d["epochs"].notna() & (d["epochs"].astype(str) != "")]
    out = {}
    for model, g in d.groupby("model", sort=False):
        per = list(dict.fromkeys(zip(g["seed"], g["epochs"].astype(str))))
        texts = list(dict.fromkeys(e for _, e in per))
        out[str(model)] = texts[0] if len(texts) == 1 else ", ".join(f"{e} (seed {s})" for s, e in per)
    return out


def epochs_caption(note: dict[str, str]) -> str:
    """The line under (or above) a table whose runs are not all finished."""
    runs = "; ".join(f"{m}: {e}" for m, e in note.items())
    return f"Epochs trained (some runs are unfinished, each evaluated as it stands): {runs}"


def _noted(t: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    """``t`` with ``attrs["epochs"]`` from the tidy table ``df`` when some run is unfinished."""
    note = epochs_note(df)
    if note:
        t.attrs["epochs"] = note
    return t


# --------------------------------------------------------------------------------------
# Paper-shaped tables
# --------------------------------------------------------------------------------------


def _pick(df, **eq):
    m = np.ones(len(df), dtype=bool)
    for k, v in eq.items():
        m &= (df[k] == v).to_numpy()
    return df[m]


def _pivot(d: pd.DataFrame, index, columns, value: str) -> pd.DataFrame:
    if value not in d:
        raise ValueError(f"value must be one of 'value', 'sd', 'min', 'max', got {value!r}")
    return d.pivot_table(index=index, columns=columns, values=value, aggfunc="first", dropna=False)


def order_models(index, models: Sequence[str] | None) -> list:
    """The names of ``index``: those in ``models`` first (in that order), then the rest."""
    order = [m for m in (models or []) if m in index]
    return order + [m for m in index if m not in order]


def table1(
    df: pd.DataFrame, models: Sequence[str] | None = None, *, dataset: str = "val", value: str = "value"
) -> pd.DataFrame:
    """Paper Table 1: equivariance NMSE/SSIM (random protocol, mean over slices) and
    unshifted NMSE/PSNR/SSIM (mean over volumes), PD / PDFS / all; ``value``: ``"value"``
    (mean over seeds) or ``"sd"`` / ``"min"`` / ``"max"`` over seeds (:func:`seed_summary`)."""
    d = _pick(seed_summary(df), dataset=dataset, statistic="mean")
    d = d[
        ((d.protocol == "random") & d.metric.isin(["eq_nmse", "eq_ssim"]))
        | ((d.protocol == "unshifted") & d.metric.isin(["nmse", "psnr", "ssim"]))
    ]
    t = _pivot(d, "model", ["metric", "acquisition"], value)
    cols = [
        (m, a)
        for m in ("eq_nmse", "eq_ssim", "nmse", "psnr", "ssim")
        for a in ("PD", "PDFS", "all")
        if (m, a) in t.columns
    ]
    return _noted(t.loc[order_models(t.index, models), cols], df)


def table4(
    df: pd.DataFrame, models: Sequence[str] | None = None, *, dataset: str = "val", value: str = "value"
) -> pd.DataFrame:
    """Paper Table 4: decline in PSNR (dB) under the random shifts, mean and max over
    volumes, PD / PDFS / all (``value`` as in :func:`table1`)."""
    d = _pick(seed_summary(df), dataset=dataset, metric="psnr_decline")
    t = _pivot(d, "model", ["statistic", "acquisition"], value)
    cols = [(s, a) for s in ("mean", "max") for a in ("PD", "PDFS", "all") if (s, a) in t.columns]
    return _noted(t.loc[order_models(t.index, models), cols], df)


def decline_bound_table(
    df: pd.DataFrame, models: Sequence[str] | None = None, *, dataset: str = "val"
) -> pd.DataFrame:
    """Per model (acquisition ``all``): the mean and max decline in PSNR (dB) next to the
    mean and max of its per-volume bound :func:`apslib.metrics.decline_bound`, over all
    seeds (:func:`pool_seeds`); the decline never exceeds the bound volume by volume."""
    d = _pick(pool_seeds(df), dataset=dataset, acquisition="all")
    d = d[d.metric.isin(["psnr_decline", "psnr_decline_bound"])]
    t = _pivot(d, "model", ["metric", "statistic"], "value")
    cols = [
        (m, s) for m in ("psnr_decline", "psnr_decline_bound") for s in ("mean", "max") if (m, s) in t.columns
    ]
    return _noted(t.loc[order_models(t.index, models), cols], df)


def table2(
    df: pd.DataFrame, models: Sequence[str] | None = None, *, protocol: str = "random", value: str = "value"
) -> pd.DataFrame:
    """Paper Table 2 on every out-of-distribution set: mean equivariance NMSE and SSIM
    (``protocol="random"``; ``value`` as in :func:`table1`), or worst case over every seed
    (``"exhaustive"``: max NMSE, min SSIM)."""
    stat = (
        {"eq_nmse": "mean", "eq_ssim": "mean"}
        if protocol == "random"
        else {"eq_nmse": "max", "eq_ssim": "min"}
    )
    pooled = protocol != "random"
    d = _pick(pool_seeds(df) if pooled else seed_summary(df), protocol=protocol, acquisition="all")
    d = d[d.metric.isin(list(stat)) & (d.statistic == d.metric.map(stat))]
    t = _pivot(d, "model", ["dataset", "metric"], "value" if pooled else value)
    return _noted(t.loc[order_models(t.index, models)], df)


def worst_case_table(
    df: pd.DataFrame, models: Sequence[str] | None = None, *, dataset: str | None = "val"
) -> pd.DataFrame:
    """Exhaustive protocol per model (and dataset), over every seed (:func:`pool_seeds`):
    mean and max NMSE, min PSNR, min SSIM, flip count, pairs and smallest phase margin (APS
    models)."""
    d = _pick(pool_seeds(df), protocol="exhaustive", **({} if dataset is None else {"dataset": dataset}))
    d = d[d.acquisition == "all"]
    wanted = [
        ("eq_nmse", "mean"),
        ("eq_nmse", "max"),
        ("eq_psnr", "min"),
        ("eq_ssim", "min"),
        ("flips", "count"),
        ("phase_margin", "min"),
    ]
    d = d[[(m, s) in wanted for m, s in zip(d.metric, d.statistic)]]
    t = d.assign(col=d.metric + " " + d.statistic).pivot_table(
        index=["dataset", "model"] if dataset is None else "model",
        columns="col",
        values="value",
        aggfunc="first",
    )
    n = d[d.metric == "eq_nmse"].groupby(["dataset", "model"] if dataset is None else "model").n.first()
    t["pairs"] = n
    cols = [f"{m} {s}" for m, s in wanted if f"{m} {s}" in t.columns] + ["pairs"]
    t = t[cols]
    if dataset is not None:
        t = t.loc[order_models(t.index, models)]
    return _noted(t, df)


# --------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------


def format_value(v, digits: int = 4) -> str:
    """One table entry as text: ``digits`` significant digits, scientific notation below
    1e-3 or from 1e5 on (0 stays ``0``), ``inf``/``-inf`` as such, missing (None, NaN) as
    ``-``, booleans as ``yes``/``no``."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    v = float(v)
    if math.isnan(v):
        return "-"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}g}" if (v == 0 or 1e-3 <= abs(v) < 1e5) else f"{v:.{digits - 1}e}"


def format_table(t: pd.DataFrame, digits: int = 4, sd: pd.DataFrame | None = None):
    """A display Styler of ``t`` with every entry through :func:`format_value` (e.g. the
    missing flips of non-APS models as ``-``); with ``sd`` (the same table with
    ``value="sd"``) each entry reads ``mean ± sd`` where the spread is known. A table of
    runs that are not all finished (``attrs["epochs"]``) gets the epochs as its caption."""
    if sd is None:
        styler = t.style.format(lambda v: format_value(v, digits))
    else:
        sd = sd.reindex(index=t.index, columns=t.columns)
        text = t.copy().astype(object)
        for i in range(t.shape[0]):
            for j in range(t.shape[1]):
                text.iat[i, j] = format_with_spread(t.iat[i, j], sd.iat[i, j], digits)
        styler = text.style
    note = t.attrs.get("epochs")
    return styler.set_caption(epochs_caption(note)) if note else styler


def format_with_spread(v, sd, digits: int = 4) -> str:
    """``mean ± sd`` (the spread with 2 significant digits), or the mean alone when the
    spread is missing (one seed) or the mean is not finite."""
    if sd is None or not np.isfinite(float(sd)) or not np.isfinite(float(v if v is not None else np.nan)):
        return format_value(v, digits)
    return f"{format_value(v, digits)} ± {format_value(sd, 2)}"

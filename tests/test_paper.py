"""The paper's numbers (apslib/paper_numbers.json) and the side-by-side tables."""

import math

import pandas as pd
import pytest

from apslib import paper


def _value(df, table, model, metric, acquisition="all"):
    row = df[
        (df.table == table) & (df.model == model) & (df.metric == metric) & (df.acquisition == acquisition)
    ]
    assert len(row) == 1, (table, model, metric, acquisition)
    return float(row.value.iloc[0])


def test_json_loads_with_source():
    df = paper.paper_numbers()
    assert list(df.columns) == ["table", "model", "dataset", "acquisition", "metric", "value"]
    assert set(df.table) == {"1", "2", "4"}
    assert len(df) == 5 * 10 + 5 * 2 + 5
    assert "Chaman" in df.attrs["source"] and "2105.04040" in df.attrs["source"]
    assert df.value.notna().all()


def test_spot_check_against_paper_md():
    df = paper.paper_numbers()
    assert _value(df, "1", "Baseline", "eq_nmse", "PD") == 0.0014
    assert _value(df, "1", "APS", "eq_nmse", "PDFS") == 7.37e-15
    assert _value(df, "1", "APS-3", "psnr", "PD") == 33.95
    assert _value(df, "1", "Baseline + DA", "ssim", "PDFS") == 0.6272
    assert _value(df, "2", "APS", "eq_nmse") == 3.09e-14
    assert _value(df, "2", "LPF-2", "eq_ssim") == 0.9816
    assert _value(df, "4", "Baseline + DA", "psnr_decline") == 0.037
    assert _value(df, "4", "APS-2", "psnr_decline") == 5.87e-4
    assert set(df[df.table == "1"].model) == {"Baseline", "LPF-3", "Baseline + DA", "APS", "APS-3"}
    assert set(df[df.table == "4"].model) == {"Baseline", "LPF-2", "Baseline + DA", "APS", "APS-2"}


def _tidy(rows):
    cols = ["model", "dataset", "acquisition", "protocol", "metric", "statistic", "value", "n"]
    return pd.DataFrame([dict(zip(cols, r)) for r in rows], columns=cols)


OURS = _tidy(
    [
        ("Baseline", "val", "all", "random", "psnr_decline", "mean", 1.5, 4),
        ("Baseline", "val", "all", "random", "psnr_decline", "max", 9.0, 4),
        ("APS-3", "val", "all", "random", "psnr_decline", "mean", 0.0, 4),
        ("Baseline", "val", "PD", "random", "eq_nmse", "mean", 2e-3, 4),
        ("Baseline", "val", "PDFS", "random", "eq_nmse", "mean", 1e-3, 4),
        ("Baseline", "val", "PD", "unshifted", "psnr", "mean", 30.0, 2),
        ("Baseline", "photographs", "all", "random", "eq_nmse", "mean", 5e-3, 16),
        ("Baseline", "photographs", "all", "random", "eq_ssim", "mean", 0.97, 16),
        ("APS", "photographs", "all", "random", "eq_nmse", "mean", 0.0, 16),
        ("APS", "noise", "all", "random", "eq_nmse", "mean", 7.0, 16),
    ]
)


def test_side_by_side_table4_nan_for_missing_models():
    t = paper.side_by_side(OURS, "4", models=["Baseline", "APS-3"])
    assert list(t.columns) == [
        ("psnr_decline mean", "ours"),
        ("psnr_decline mean", "ours sd"),
        ("psnr_decline mean", "paper"),
    ]
    assert t.attrs["seeds"] == 1 and math.isnan(t.loc["Baseline", ("psnr_decline mean", "ours sd")])
    assert list(t.index[:2]) == ["Baseline", "APS-3"]
    assert set(t.index) == {"Baseline", "APS-3", "LPF-2", "Baseline + DA", "APS", "APS-2"}
    assert t.loc["Baseline", ("psnr_decline mean", "ours")] == 1.5  # the mean, not the max
    assert t.loc["Baseline", ("psnr_decline mean", "paper")] == 4.03
    assert t.loc["APS-3", ("psnr_decline mean", "ours")] == 0.0
    assert math.isnan(t.loc["APS-3", ("psnr_decline mean", "paper")])  # no APS-3 in Table 4
    assert math.isnan(t.loc["APS-2", ("psnr_decline mean", "ours")])  # not substituted by APS-3
    assert math.isnan(t.loc["APS", ("psnr_decline mean", "ours")])


def test_side_by_side_table1_columns_and_values():
    t = paper.side_by_side(OURS, 1)
    quantities = list(dict.fromkeys(q for q, _ in t.columns))
    assert quantities == [
        f"{m} {a}" for m in ("eq_nmse", "eq_ssim", "nmse", "psnr", "ssim") for a in ("PD", "PDFS")
    ]
    assert {s for _, s in t.columns} == {"ours", "ours sd", "paper"}
    assert t.loc["Baseline", ("eq_nmse PD", "ours")] == 2e-3
    assert t.loc["Baseline", ("eq_nmse PD", "paper")] == 0.0014
    assert t.loc["Baseline", ("psnr PD", "ours")] == 30.0
    assert math.isnan(t.loc["LPF-3", ("eq_nmse PD", "ours")])
    assert "LPF-2" not in t.index


def test_side_by_side_table2_uses_photographs_and_flattens():
    t = paper.side_by_side(OURS, "table2")
    assert t.attrs["dataset"] == "photographs"
    assert t.loc["APS", ("eq_nmse", "ours")] == 0.0  # not the noise set's 7.0
    assert t.loc["APS", ("eq_nmse", "paper")] == 3.09e-14
    assert math.isnan(t.loc["LPF-2", ("eq_ssim", "ours")])
    flat = paper.flatten(t)
    assert list(flat.columns) == [
        "model",
        "eq_nmse (ours)",
        "eq_nmse (ours sd)",
        "eq_nmse (paper)",
        "eq_ssim (ours)",
        "eq_ssim (ours sd)",
        "eq_ssim (paper)",
    ]
    md = paper.to_markdown(t)
    assert md.startswith("| model |") and "| LPF-2 | - | 0.00465 | - | 0.9816 |" in md
    assert paper.side_by_side(OURS, "2", dataset="noise").loc["APS", ("eq_nmse", "ours")] == 7.0


def test_side_by_side_errors():
    with pytest.raises(ValueError, match="unknown table"):
        paper.side_by_side(OURS, "3")
    with pytest.raises(ValueError, match="out-of-distribution"):
        paper.side_by_side(OURS[OURS.dataset == "val"], "2")

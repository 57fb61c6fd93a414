"""Training seeds: one run folder per model and seed, evaluation over seeds, mean and spread
in every table and figure."""

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest

from apslib import evaluate as ev
from apslib import paper, plots
from apslib.names import PAPER_MODELS, run_slug, slugify
from apslib.training import config_for, history_frame, train
from apslib.training.config import NAME_FIELDS

matplotlib.use("Agg")

TINY = dict(depth=2, channels=[4, 8, 16], epochs=1, batch_size=2, lr=1e-3, device="cpu")


@pytest.mark.parametrize("name", [*PAPER_MODELS, "LPF-1", "APS-7 + DA"])
@pytest.mark.parametrize("seed", [0, 1, 2, 17])
def test_run_slug_keeps_seed_zero_and_separates_the_others(name, seed, tmp_path):
    slug = run_slug(name, seed)
    assert slug == slugify(name) if seed == 0 else slug == f"{slugify(name)}-seed{seed}"
    cfg = config_for(name, run_dir=tmp_path, seed=seed)
    assert cfg.run_path == tmp_path / slug
    others = {run_slug(n, s) for n in PAPER_MODELS for s in range(4)}
    assert len(others) == len(PAPER_MODELS) * 4  # no two (model, seed) share a folder


def test_run_slug_rejects_negative_seeds():
    with pytest.raises(ValueError, match="seed must be >= 0"):
        run_slug("APS", -1)


def _tidy(values_by_seed, metric="eq_nmse", statistic="mean", model="Baseline", n=8):
    return pd.DataFrame(
        [
            {
                "model": model,
                "seed": s,
                "dataset": "val",
                "acquisition": a,
                "protocol": "random",
                "metric": metric,
                "statistic": statistic,
                "value": v + (0.5 if a == "PDFS" else 0.0),
                "n": n,
            }
            for s, v in enumerate(values_by_seed)
            for a in ("PD", "PDFS", "all")
        ],
        columns=ev.COLUMNS,
    )


@pytest.mark.parametrize("seed", range(5))
def test_seed_summary_is_mean_and_sample_sd_over_seeds(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 6))
    vals = rng.random(k)
    s = ev.seed_summary(_tidy(vals))
    row = s[s.acquisition == "PD"].iloc[0]
    assert math.isclose(row.value, vals.mean()) and math.isclose(row.sd, vals.std(ddof=1))
    assert (row.seeds, row.n, row["min"], row["max"]) == (k, 8, vals.min(), vals.max())
    one = ev.seed_summary(_tidy(vals[:1]))
    assert one.seeds.eq(1).all() and one.sd.isna().all()  # one seed: no spread, not 0
    t1 = ev.table1(_tidy(vals))
    assert math.isclose(t1.loc["Baseline", ("eq_nmse", "PDFS")], vals.mean() + 0.5)
    assert math.isclose(
        ev.table1(_tidy(vals), value="sd").loc["Baseline", ("eq_nmse", "PD")], vals.std(ddof=1)
    )
    with pytest.raises(ValueError, match="value must be one of"):
        ev.table1(_tidy(vals), value="median")


def test_tables_without_a_seed_column_are_one_seed():
    df = _tidy([0.25]).drop(columns="seed")
    s = ev.seed_summary(df)
    assert s.seeds.eq(1).all() and s.value.iloc[0] == 0.25


def test_pool_seeds_takes_worst_cases_over_every_seed():
    df = pd.concat(
        [
            _tidy([1.0, 3.0, 2.0], statistic="max"),
            _tidy([0.2, 0.1, 0.3], metric="eq_ssim", statistic="min"),
            _tidy([1, 0, 2], metric="flips", statistic="count"),
        ]
    )
    p = ev.pool_seeds(df).set_index(["metric", "acquisition"])
    assert p.loc[("eq_nmse", "PD"), "value"] == 3.0 and p.loc[("eq_nmse", "PD"), "n"] == 24
    assert math.isclose(p.loc[("eq_ssim", "PD"), "value"], 0.1)
    assert p.loc[("flips", "PD"), "value"] == 3 and p.loc[("flips", "PD"), "seeds"] == 3


def test_format_with_spread():
    assert ev.format_with_spread(1.5e-4, 2.24e-5) == "1.500e-04 ± 2.2e-05"
    assert ev.format_with_spread(23.6912, 0.31) == "23.69 ± 0.31"
    assert ev.format_with_spread(23.6912, float("nan")) == "23.69"  # one seed
    assert ev.format_with_spread(float("inf"), 0.0) == "inf"


def test_side_by_side_reports_spread_and_counts():
    vals = [1e-3, 2e-3, 4e-3]
    t = paper.side_by_side(_tidy(vals), "1")
    assert math.isclose(t.loc["Baseline", ("eq_nmse PD", "ours")], np.mean(vals))
    assert math.isclose(t.loc["Baseline", ("eq_nmse PD", "ours sd")], np.std(vals, ddof=1))
    assert t.attrs["seeds"] == 3 and t.attrs["n"] == 8
    md = paper.to_markdown(t)
    assert "| Baseline | 0.002333 ± 0.0015 | 0.0014 |" in md
    fig = plots.plot_side_by_side(t, ["eq_nmse PD"], ylabel="y", title="t")
    assert fig.axes[0].collections, "the spread over seeds is drawn as bars"
    assert "3 seeds" in fig.axes[0].get_legend_handles_labels()[1][0]


def test_training_curves_draw_a_band_over_seeds():
    frame = pd.DataFrame(
        [
            {"model": m, "seed": s, "epoch": e, "val_equiv_mse": 1e-3 * (1 + s) * e, "val_psnr": 20 + e}
            for m in ("Baseline", "APS")
            for s in range(3)
            for e in (1, 2, 3)
        ]
    )
    fig = plots.plot_training_curves(frame, metrics=["val_equiv_mse", "val_psnr"])
    ax = fig.axes[0]
    assert len(ax.collections) == 2  # one band per model
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [2e-3, 4e-3, 6e-3])  # the mean over seeds
    assert ax.get_legend_handles_labels()[1][0] == "Baseline (3 seeds)"


@pytest.fixture(scope="module")
def seeded_runs(tmp_path_factory):
    from apslib import data

    root = tmp_path_factory.mktemp("seeddata")
    data.synthesize_dataset(
        root, size=32, train_volumes=2, val_volumes=2, slices_per_volume=2, progress=False
    )
    run_dir = root / "runs"
    for seed in (0, 1):
        for name in ("Baseline", "APS"):
            train(config_for(name, data_root=root, run_dir=run_dir, seed=seed, **TINY), progress=False)
    return root, run_dir


def test_evaluate_over_seeds(seeded_runs, tmp_path):
    root, run_dir = seeded_runs
    assert {p.name for p in run_dir.iterdir()} == {"baseline", "aps", "baseline-seed1", "aps-seed1"}
    res = ev.evaluate_runs(
        run_dir, root, ["Baseline", "APS"], tmp_path, sweep_slices=1, device="cpu", seeds=[0, 1]
    )
    df = ev.read_table(res.paths["table"])
    assert list(df.columns) == ev.COLUMNS and set(df.seed) == {0, 1}
    assert set(res.sweep.seed) == {0, 1}
    # the two seeds are different networks evaluated on the same slices and shifts
    psnr = df[(df.metric == "psnr") & (df.acquisition == "all") & (df.statistic == "mean")]
    base = psnr[psnr.model == "Baseline"].set_index("seed").value
    assert base[0] != base[1]
    zf = psnr[psnr.model == "Zero-filled"].set_index("seed").value
    assert zf[0] == zf[1]
    t1 = ev.table1(df)
    assert t1.loc["Baseline", ("psnr", "all")] == pytest.approx(base.mean())
    assert ev.table1(df, value="sd").loc["APS", ("eq_nmse", "all")] < 1e-12  # exact in every seed
    worst = ev.worst_case_table(df, ["Baseline", "APS"])
    assert worst.loc["APS", "pairs"] == 2 * 16 and worst.loc["APS", "flips count"] == 0
    ood = ev.evaluate_runs_ood(
        run_dir, ["APS"], tmp_path, size=32, sweep_images=1, noise_count=1, device="cpu", seeds=[1, 0]
    )
    assert set(ood.table.seed) == {0, 1} and ood.examples["noise"].nmse[0] == 0
    with pytest.raises(FileNotFoundError, match="seed 2") as err:
        ev.evaluate_runs(run_dir, root, ["APS"], tmp_path, device="cpu", seeds=[0, 2])
    assert "--seed 2" in str(err.value) and "aps-seed2" in str(err.value)
    with pytest.raises(ValueError, match="distinct training seeds"):
        ev.evaluate_runs(run_dir, root, ["APS"], tmp_path, device="cpu", seeds=[0, 0])


def test_history_records_seed_and_equivariance_nmse(seeded_runs):
    _, run_dir = seeded_runs
    frame = history_frame([run_dir / "baseline", run_dir / "aps-seed1"])
    assert frame.seed.tolist() == [0, 1]
    base, aps = frame.val_equiv_nmse.tolist()
    assert base > 1e-8 and aps < 1e-10  # the Baseline is not equivariant, APS is exactly


def test_evaluate_cli_takes_seeds(seeded_runs, tmp_path, capsys):
    root, run_dir = seeded_runs
    rc = ev.main(
        ["--run-dir", str(run_dir), "--data", str(root), "--results-dir", str(tmp_path), "--models", "APS"]
        + ["--seeds", "0", "1", "--sweep-slices", "1", "--device", "cpu"]
    )
    assert rc == 0 and set(ev.read_table(tmp_path / "in_distribution.csv").seed) == {0, 1}
    assert (
        ev.main(
            ["--run-dir", str(run_dir), "--data", str(root), "--results-dir", str(tmp_path)]
            + ["--models", "APS", "--seeds", "5", "--device", "cpu"]
        )
        == 1
    )
    assert "seed 5" in capsys.readouterr().err


def test_like_trains_a_candidate_exactly_like_a_reference(tmp_path):
    ref = config_for("APS-3", run_dir=tmp_path, seed=2, epochs=7, depth=2, channels=[4, 8, 16])
    cand = ref.like("APS-5 + SDA")
    assert (cand.variant, cand.filter_size, cand.subpixel_augment, cand.name) == (
        "aps",
        5,
        True,
        "APS-5 + SDA",
    )
    assert (cand.seed, cand.epochs, cand.depth, cand.channels) == (2, 7, 2, (4, 8, 16))
    assert cand.run_path == tmp_path / "aps-5-sda-seed2"
    assert ref.like("Baseline", seed=0).run_path == tmp_path / "baseline"


def test_equivariance_curves_name_exact_models_and_draw_ratios():
    frame = pd.DataFrame(
        [
            {"model": m, "seed": s, "epoch": e, "val_equiv_nmse": v * (1 + s) * e}
            for m, v in (("Baseline", 1e-3), ("Baseline + DA", 3e-4), ("APS", 0.0))
            for s in range(2)
            for e in (1, 2, 3)
        ]
    )
    fig = plots.plot_equivariance_curves(frame, ["Baseline", "Baseline + DA", "APS"])
    left, right = fig.axes
    assert "APS" in left.get_title() and [ln.get_label() for ln in left.lines] == [
        "Baseline",
        "Baseline + DA",
    ]
    ratio = [ln for ln in right.lines if ln.get_label() == "Baseline + DA"][0]
    np.testing.assert_allclose(ratio.get_ydata(), [0.3, 0.3, 0.3])  # same seed, same epoch
    assert len(left.collections) == 2  # seed bands


def test_name_fields_are_what_a_model_name_sets():
    from apslib.names import parse_model_name

    assert set(parse_model_name("Baseline + DA + SDA")) == set(NAME_FIELDS)

"""Tests of the evaluation layer (apslib.evaluate): metrics, protocols, flips, tables, CLI."""

import json
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from apslib import build_unet, calibrate_batchnorm, data, metrics, training
from apslib import evaluate as ev
from apslib.shifts import seeded_shifts

TINY = dict(depth=2, channels=[4, 8, 16], epochs=1, batch_size=2, lr=1e-3, device="cpu")


def _run(model, name):
    return ev.ModelRun(name, model.eval(), None, None, None)


def _random_models(seed=0):
    torch.manual_seed(seed)
    x = torch.randn(4, 1, 32, 32)
    out = {}
    for variant in ("baseline", "aps"):
        torch.manual_seed(seed)
        model = build_unet(variant, depth=2, channels=[4, 8, 16])
        calibrate_batchnorm(model, x)
        out[variant] = _run(model, variant)
    return out


# -- metrics on known cases ------------------------------------------------------------


def test_identical_images_give_zero_nmse_inf_psnr_unit_ssim():
    b = torch.rand(3, 1, 24, 24) + 0.1
    m = metrics.image_metrics(b.clone(), b)
    assert np.all(m["eq_nmse"] == 0)
    assert np.all(np.isinf(m["eq_psnr"]))
    assert np.allclose(m["eq_ssim"], 1.0)


def test_known_perturbation_gives_known_nmse_and_psnr():
    from fastmri.evaluate import ssim

    g = torch.Generator().manual_seed(1)
    b = torch.rand(2, 16, 16, generator=g, dtype=torch.float64) + 0.5
    a = 1.1 * b  # relative error 0.1 everywhere: NMSE = 0.01
    m = metrics.image_metrics(a, b)
    assert np.allclose(m["eq_nmse"], 0.01, rtol=1e-10)
    bn = b.numpy()
    expected_psnr = 10 * np.log10(bn.reshape(2, -1).max(1) ** 2 / (0.01 * (bn**2).reshape(2, -1).mean(1)))
    assert np.allclose(m["eq_psnr"], expected_psnr)
    assert m["eq_ssim"][0] == pytest.approx(float(ssim(bn[:1], 1.1 * bn[:1], maxval=bn[0].max())[0]))
    assert np.all(m["eq_ssim"] < 1)


def test_volume_metrics_are_fastmris():
    from fastmri import evaluate as fe

    g = np.random.default_rng(0)
    gt = g.random((3, 16, 16)) + 1
    pred = gt + 0.05 * g.standard_normal(gt.shape)
    m = metrics.volume_metrics(pred, gt, gt.max())
    assert m["nmse"] == pytest.approx(fe.nmse(gt, pred))
    assert m["psnr"] == pytest.approx(fe.psnr(gt, pred, maxval=gt.max()))
    assert m["ssim"] == pytest.approx(float(fe.ssim(gt, pred, maxval=gt.max())[0]))


def test_random_shifts_honour_the_range_and_the_seed():
    s = seeded_shifts(20000, 16, seed=3)
    assert s.shape == (20000, 2)
    assert int(s.min()) == -16 and int(s.max()) == 15
    assert torch.equal(s, seeded_shifts(20000, 16, seed=3))
    assert not torch.equal(s, seeded_shifts(20000, 16, seed=4))


# -- equivariance of random-init models ------------------------------------------------


def test_exhaustive_shifts_exact_for_aps_and_not_for_baseline():
    runs = _random_models()
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(5))
    table, frame = ev.exhaustive_shifts(runs, x)
    assert len(frame) == 2 * 2 * 16  # models x images x shifts mod 4
    aps, base = frame[frame.model == "aps"], frame[frame.model == "baseline"]
    # exact: the reference F(x) is the zero shift of the same batched passes
    assert aps.eq_nmse.max() == 0 and aps.eq_ssim.min() == pytest.approx(1.0, abs=1e-12)
    assert (aps.flip_level == 0).all()
    assert base.eq_nmse.max() > 1e-6
    # shift (0, 0) is always exact up to batch rounding, and multiples of 2**depth are exact too
    assert base[(base.dy == 0) & (base.dx == 0)].eq_nmse.max() < 1e-10
    worst = table[(table.model == "baseline") & (table.metric == "eq_nmse") & (table.statistic == "max")]
    assert worst.value.iloc[0] == pytest.approx(base.eq_nmse.max())
    flips = table[(table.model == "aps") & (table.metric == "flips")]
    assert flips.value.iloc[0] == 0 and flips.n.iloc[0] == 32


@pytest.mark.parametrize("seed,batch_size", [(0, 3), (1, 5), (2, 16), (3, 7)])
def test_exhaustive_shifts_aps_exact_whatever_the_batch_size(seed, batch_size):
    # kernels round differently per batch size: a batch size that does not divide the 16
    # shifts leaves a short last batch, which uniform_batches pads to the same shape
    runs = _random_models(seed)
    x = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(seed + 10))
    _, frame = ev.exhaustive_shifts({"aps": runs["aps"]}, x, batch_size=batch_size)
    assert len(frame) == 16 and frame.eq_nmse.max() == 0 and np.isinf(frame.eq_psnr).all()


def test_predict_uniform_batches_keeps_results_and_order():
    run = _random_models()["baseline"]
    x = torch.randn(7, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    plain = ev.predict(run, x, batch_size=3)
    padded, phases = ev.predict(run, x, batch_size=3, uniform_batches=True, return_phases=True)
    assert padded.shape == plain.shape == (7, 1, 32, 32) and phases == []
    assert torch.allclose(padded, plain, atol=1e-5)
    # each image of the padded passes equals the same image in a full batch of 3
    assert torch.equal(padded[6:7], ev.predict(run, torch.cat([x[6:7]] * 3), batch_size=3)[:1])


# -- examples --------------------------------------------------------------------------


@pytest.mark.parametrize("k", [(0, 0), (1, 0), (3, -5), (-16, 15), (33, 2)])
def test_examples_exact_for_aps_not_for_baseline(k, tmp_path):
    runs = _random_models(1)
    x = torch.randn(1, 32, 32, generator=torch.Generator().manual_seed(sum(k) + 100))
    ex = ev.compute_examples(runs, x, k, target=x * 0.5, label="random")
    assert ex.models == ["baseline", "aps"] and ex.out.shape == (2, 32, 32)
    assert np.array_equal(ex.input_shifted, np.roll(ex.input, k, axis=(0, 1)))
    assert np.array_equal(ex.ref, np.roll(ex.out, k, axis=(1, 2)))
    aps = ex.models.index("aps")
    assert ex.diff[aps].max() == 0 and ex.nmse[aps] == 0
    if k[0] % 4 or k[1] % 4:  # multiples of 2**depth are exact for every circular U-Net
        assert ex.nmse[0] > 1e-8
    # the NMSE is the definition's, on the stored arrays
    ref = ex.ref[0].astype(np.float64)
    assert ex.nmse[0] == pytest.approx(((ex.out_shifted[0] - ref) ** 2).sum() / (ref**2).sum())
    path = ev.write_examples(
        tmp_path / "ex.npz",
        {"val": ex, "other": ev.Examples(ex.input, (1, 2), ["aps"], ex.out[1:], ex.out_shifted[1:])},
    )
    back = ev.read_examples(path)
    assert list(back) == ["val", "other"] and back["other"].target is None
    b = back["val"]
    assert b.shift == tuple(k) and b.models == ex.models and b.label == "random"
    for field in ("input", "out", "out_shifted", "target"):
        assert np.array_equal(getattr(b, field), getattr(ex, field))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ex.npz"]  # no temp file left


def test_examples_errors_say_what_to_do(tmp_path):
    runs = _random_models()
    with pytest.raises(ValueError, match=r"\(1, H, W\)"):
        ev.compute_examples(runs, torch.zeros(2, 1, 32, 32), (1, 1))
    with pytest.raises(FileNotFoundError, match="notebooks 03 and 04"):
        ev.read_examples(tmp_path / "missing.npz")


# -- flip counting ---------------------------------------------------------------------


def test_count_flips_follows_the_recursion():
    # x chose (1, 0) at level 1 and (0, 1) at level 2; shift (1, 3).
    # level 1: expected ((1+1)%2, (0+3)%2) = (0, 1) -> idx 1; next shift ((1+1-0)/2, (3+0-1)/2) = (1, 1)
    # level 2: expected ((0+1)%2, (1+1)%2) = (1, 0) -> idx 2
    px = [torch.tensor([2, 2, 2]), torch.tensor([1, 1, 1])]
    ps = [torch.tensor([1, 3, 1]), torch.tensor([2, 2, 0])]
    first = ev.count_flips(px, ps, torch.tensor([[1, 3]] * 3))
    assert first.tolist() == [0, 1, 2]
    # negative shifts use the same recursion (floor division of an even number)
    assert ev.count_flips([torch.tensor([0])], [torch.tensor([3])], torch.tensor([[-1, -3]])).tolist() == [0]


def test_flip_counter_reports_a_constructed_tie():
    run = _random_models()["aps"]
    x = torch.full((1, 1, 32, 32), 0.7)  # constant: every polyphase norm ties exactly
    table, frame = ev.exhaustive_shifts({"aps": run}, x)
    by_level = frame.flip_level.value_counts().to_dict()
    # ties pick grid 0 for x and for T_k x: odd shifts flip at level 1, the even ones not
    # divisible by 4 at level 2, shift (0, 0) never
    assert by_level == {1: 12, 2: 3, 0: 1}
    row = lambda metric: table[(table.metric == metric)].value.iloc[0]  # noqa: E731
    assert row("flips") == 15 and row("flips_level1") == 12 and row("flips_level2") == 3
    assert row("phase_margin") == 0


# -- tables and files ------------------------------------------------------------------


def test_tidy_table_schema_and_atomic_write(tmp_path):
    rows = ev.stat_rows(
        [1.0, 3.0, math.inf], model="m", dataset="val", acquisition="PD", protocol="random", metric="eq_psnr"
    )
    df = ev.summarise(rows)
    assert list(df.columns) == ev.COLUMNS
    assert set(df.statistic) == {"mean", "median", "max", "min"} and (df.n == 3).all()
    path = ev.write_table(df, tmp_path / "t.csv")
    back = ev.read_table(path)
    assert list(back.columns) == ev.COLUMNS
    assert math.isinf(back[back.statistic == "max"].value.iloc[0])
    records = json.loads((tmp_path / "t.json").read_text())
    assert {r["statistic"]: r["value"] for r in records}["max"] == "inf"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.json"]  # no temp files left


# -- end to end on tiny trained runs ---------------------------------------------------


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaldata")
    data.synthesize_dataset(
        root, size=32, train_volumes=2, val_volumes=2, slices_per_volume=2, progress=False
    )
    run_dir = root / "runs"
    for name in ("Baseline", "APS"):
        training.train(training.config_for(name, data_root=root, run_dir=run_dir, **TINY), progress=False)
    return root, run_dir


def test_evaluate_runs_end_to_end(tiny_runs, tmp_path):
    root, run_dir = tiny_runs
    res = ev.evaluate_runs(
        run_dir, root, ["Baseline", "APS"], tmp_path / "results", sweep_slices=2, device="cpu"
    )
    for key in ("table", "sweep"):
        assert res.paths[key].is_file() and res.paths[key].with_suffix(".json").is_file()
    ex = ev.read_examples(res.paths["examples"])["val"]
    assert ex.models == ["Baseline", "APS"] and ex.target is not None and ex.label.endswith(")")
    assert ex.nmse[1] == 0 and ex.target.shape == ex.input.shape == (32, 32)
    with pytest.raises(IndexError, match="out of range"):
        ev.evaluate_runs(
            run_dir, root, ["APS"], tmp_path / "r2", sweep_slices=1, device="cpu", example_index=99
        )
    df = ev.read_table(res.paths["table"])
    assert list(df.columns) == ev.COLUMNS
    t1 = ev.table1(df, ["Baseline", "APS", "Zero-filled"])
    assert list(t1.index) == ["Baseline", "APS", "Zero-filled"]
    assert {"PD", "PDFS", "all"} <= {a for _, a in t1.columns}
    assert t1.loc["APS", ("eq_nmse", "all")] < 1e-10
    t4 = ev.table4(df)
    assert t4.loc["APS", ("max", "all")] < 1e-6
    worst = ev.worst_case_table(df, ["Baseline", "APS"])
    assert worst.loc["APS", "pairs"] == 2 * 16 and worst.loc["APS", "flips count"] == 0
    assert worst.loc["Baseline", "eq_nmse max"] > 0
    n_vol = df[(df.metric == "nmse") & (df.model == "APS") & (df.acquisition == "all")].n.iloc[0]
    assert n_vol == 2
    ood_res = ev.evaluate_runs_ood(
        run_dir,
        ["Baseline", "APS"],
        tmp_path / "results",
        size=32,
        sweep_images=1,
        noise_count=2,
        device="cpu",
    )
    t2 = ev.table2(ood_res.table, ["Baseline", "APS"])
    assert {"noise", "photographs", "shepp_logan"} == {d for d, _ in t2.columns}
    assert (t2.loc["APS"].xs("eq_nmse", level="metric") < 1e-10).all()
    ood_ex = ev.read_examples(ood_res.paths["examples"])
    assert set(ood_ex) == {"noise", "photographs", "shepp_logan"}
    assert all(e.target is None and e.nmse[1] == 0 for e in ood_ex.values())
    sw = ood_res.sweep
    assert (sw[sw.model == "APS"].eq_nmse == 0).all()  # exact, Shepp-Logan included


def test_missing_run_names_run_dir_and_how_to_train(tmp_path):
    with pytest.raises(FileNotFoundError, match="02_train") as err:
        ev.load_runs(tmp_path, ["APS-3"])
    assert str(tmp_path) in str(err.value)


def test_count_flips_agrees_with_predicted_phases():
    from apslib.polyphase import predicted_phases

    g = torch.Generator().manual_seed(7)
    px = [torch.randint(0, 4, (50,), generator=g) for _ in range(3)]
    shifts = torch.randint(-16, 16, (50, 2), generator=g)
    predicted, _ = predicted_phases(px, shifts)
    assert ev.count_flips(px, predicted, shifts).eq(0).all()  # following the prediction never flips
    ps = [p.clone() for p in predicted]
    ps[1][:5] = (ps[1][:5] + 1) % 4  # deviate at level 2 ...
    ps[2][:10] = (ps[2][:10] + 2) % 4  # ... and at level 3: the first deviation counts
    first = ev.count_flips(px, ps, shifts)
    assert first[:5].eq(2).all() and first[5:10].eq(3).all() and first[10:].eq(0).all()


def test_smallest_phase_margin_is_inf_without_aps_levels():
    runs = _random_models()
    x = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    assert torch.isinf(ev.smallest_phase_margin(runs["baseline"], x)).all()
    m = ev.smallest_phase_margin(runs["aps"], x, batch_size=2)
    assert m.shape == (3,) and (m > 0).all() and (m <= 1).all()


def test_evenly_spaced_indices():
    assert ev.evenly_spaced_indices(10, 3) == [0, 4, 9]  # linspace 0, 4.5, 9 rounded
    assert ev.evenly_spaced_indices(4, 8) == [0, 1, 2, 3] == ev.evenly_spaced_indices(4, None)
    assert ev.evenly_spaced_indices(7, 1) == [0]


@pytest.mark.parametrize(
    "value,text",
    [
        (None, "-"),
        (math.nan, "-"),
        (np.float32("nan"), "-"),
        (math.inf, "inf"),
        (-math.inf, "-inf"),
        (0.0, "0"),
        (0.0014, "0.0014"),
        (7.37e-15, "7.370e-15"),
        (1e5, "1.000e+05"),
        (33.95, "33.95"),
        (3, "3"),
        (True, "yes"),
        (np.bool_(False), "no"),
    ],
)
def test_format_value_is_the_one_table_formatter(value, text):
    from apslib import paper

    assert ev.format_value(value) == text
    t = pd.DataFrame({"x": [value]}, index=["m"], dtype=object)
    assert ev.format_table(t).to_html().count(f">{text}<") == 1
    side = pd.DataFrame({("q", "ours"): [value], ("q", "paper"): [1.0]}, index=pd.Index(["m"], name="model"))
    assert paper.to_markdown(side).splitlines()[-1] == f"| m | {text} | 1 |"


def test_the_package_lists_its_own_names_only():
    assert set(ev.__all__) <= set(dir(ev)) and "evaluate_runs_ood" in ev.__all__
    # the metrics live in apslib.metrics, the figures in apslib.plots, one study's helpers
    # in that study's module
    for elsewhere in (
        "image_metrics",
        "volume_metrics",
        "plot_shift_heatmaps",
        "target_check",
        "stage_names",
    ):
        assert not hasattr(ev, elsewhere), elsewhere
    from apslib.evaluate.beyond import target_check
    from apslib.evaluate.conversion import stage_names

    assert callable(target_check) and stage_names()["trained"] == "fastMRI U-Net"


def _env():
    env = dict(os.environ)
    env["PYTHONWARNINGS"] = "ignore"
    return env


def test_evaluate_and_paper_import_no_matplotlib():
    code = (
        "import sys, apslib.evaluate, apslib.paper, apslib.metrics; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'seaborn')); "
        "assert not bad, bad"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=_env()
    )
    assert res.returncode == 0, res.stderr[-2000:]


# -- CLI errors: one line, exit 1 --------------------------------------------------------


def _cli(capsys, *argv):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = ev.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _corrupt_data_root(tiny_runs, tmp_path):
    root, _ = tiny_runs
    bad = tmp_path / "bad_data"
    (bad / "singlecoil_val").mkdir(parents=True)
    good = sorted((root / "singlecoil_val").glob("*.h5"))[0]
    (bad / "singlecoil_val" / good.name).write_bytes(good.read_bytes()[:2048])  # truncated HDF5
    return bad, good.name


def test_cli_corrupt_validation_file_is_one_error_line(tiny_runs, tmp_path, capsys):
    _, run_dir = tiny_runs
    bad, name = _corrupt_data_root(tiny_runs, tmp_path)
    rc, out, err = _cli(
        capsys,
        "--run-dir",
        run_dir,
        "--data",
        bad,
        "--results-dir",
        tmp_path / "r",
        "--models",
        "APS",
        "--device",
        "cpu",
    )
    assert rc == 1 and out == ""
    assert err.startswith("error: cannot read fastMRI volume") and name in err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("case", ["missing_run", "results_dir_is_file", "missing_data", "bad_size"])
def test_cli_errors_are_one_line(case, tiny_runs, tmp_path, capsys):
    root, run_dir = tiny_runs
    args = ["--run-dir", run_dir, "--results-dir", tmp_path / "r", "--models", "APS", "--device", "cpu"]
    expected = {
        "missing_run": "no trained run for ['APS-3']",
        "results_dir_is_file": "is a file",
        "missing_data": "no fastMRI data folder",
        "bad_size": "OOD image size 30x30 is not divisible",
    }[case]
    if case == "missing_run":
        args += ["--data", root, "--models", "APS-3"]
    elif case == "results_dir_is_file":
        (tmp_path / "r").write_text("not a folder")
        args += ["--data", root]
    elif case == "missing_data":
        args += ["--data", tmp_path / "nowhere"]
    else:
        args += ["--ood", "--ood-size", "30"]  # not a multiple of 2**depth = 4
    rc, out, err = _cli(capsys, *args)
    assert rc == 1, (out, err)
    assert err.startswith("error: ") and expected in err and err.count("\n") == 1, err
    if case == "results_dir_is_file":
        assert (tmp_path / "r").read_text() == "not a folder"


def test_cli_module_prints_one_line_not_a_traceback(tiny_runs, tmp_path):
    _, run_dir = tiny_runs
    bad, _ = _corrupt_data_root(tiny_runs, tmp_path)
    cmd = [
        sys.executable,
        "-m",
        "apslib.evaluate",
        "--run-dir",
        str(run_dir),
        "--data",
        str(bad),
        "--results-dir",
        str(tmp_path / "r"),
        "--models",
        "APS",
        "--device",
        "cpu",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=_env())
    assert res.returncode == 1, res.stdout + res.stderr
    assert res.stderr.startswith("error: cannot read fastMRI volume"), res.stderr
    assert res.stderr.count("\n") == 1, res.stderr
    nothing = subprocess.run(
        [
            sys.executable,
            "-m",
            "apslib.evaluate",
            "--run-dir",
            str(run_dir),
            "--results-dir",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=_env(),
    )
    assert nothing.returncode == 2 and "nothing to evaluate" in nothing.stderr


def test_cli_corrupt_checkpoint_is_one_error_line_naming_the_file(tiny_runs, tmp_path, capsys):
    import shutil

    root, run_dir = tiny_runs
    copy = tmp_path / "runs"
    shutil.copytree(run_dir, copy)
    ckpt = copy / "aps" / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])  # truncated
    rc, out, err = _cli(
        capsys,
        "--run-dir",
        copy,
        "--data",
        root,
        "--results-dir",
        tmp_path / "r",
        "--models",
        "APS",
        "--device",
        "cpu",
    )
    assert rc == 1 and out == ""
    assert err.startswith("error: ") and str(ckpt) in err and "--retrain" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


# -- what is evaluated: finished runs, and one evaluation per results folder -------------


def test_unfinished_runs_are_evaluated_with_a_warning_naming_their_epochs(tiny_runs, tmp_path):
    import shutil

    from apslib.training import runs

    root, run_dir = tiny_runs
    copy = tmp_path / "runs"
    shutil.copytree(run_dir, copy)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # finished runs: no warning
        done = ev.load_runs(copy, ["Baseline", "APS"], "cpu")
    assert (done["APS"].epochs_done, done["APS"].epochs_planned, done["APS"].finished) == (1, 1, True)
    cfg = done["APS"].config.replace(run_dir=str(copy), data_root=str(root), epochs=3)

    def killed_after_epoch_1(record):
        raise KeyboardInterrupt

    with pytest.raises(training.TrainingInterrupted):  # asked for 3, killed after 1
        training.train(cfg, retrain=True, progress=False, callback=killed_after_epoch_1)
    assert runs.read_run(cfg.run_path)["epochs_planned"] == 3
    with pytest.warns(UserWarning, match=r"APS \(seed 0, .*\) is unfinished: 1 of 3 epochs trained"):
        loaded = ev.load_runs(copy, ["Baseline", "APS"], "cpu")
    aps = loaded["APS"]
    assert (aps.epochs_done, aps.epochs_planned, aps.finished) == (1, 3, False)
    assert loaded["Baseline"].finished and _run(build_unet("aps", depth=2), "m").finished


def test_load_runs_refuses_a_checkpoint_of_another_run(tiny_runs, tmp_path):
    import shutil

    from apslib.training.errors import RunConflictError

    _, run_dir = tiny_runs
    copy = tmp_path / "runs"
    shutil.copytree(run_dir, copy)
    shutil.copy(copy / "baseline" / "checkpoint.pt", copy / "aps" / "checkpoint.pt")
    with pytest.raises(RunConflictError) as info:
        ev.load_runs(copy, ["APS"], "cpu")
    msg = str(info.value)
    assert "\n" not in msg and "checkpoint.pt is Baseline (variant 'baseline'" in msg
    assert "config.json asks for APS (variant 'aps'" in msg


HOLDER = """
import sys, time
from apslib.training.folder import RunLock
RunLock(sys.argv[1], command="first evaluation").acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_evaluation_into_the_same_results_folder_is_refused(tiny_runs, tmp_path, capsys):
    root, run_dir = tiny_runs
    results = tmp_path / "results"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(results)], stdout=subprocess.PIPE, text=True, env=_env()
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(training.RunLockedError, match=rf"in use by another evaluation \(pid {proc.pid}"):
            ev.evaluate_runs(run_dir, root, ["APS"], results, sweep_slices=1, device="cpu")
        rc, out, err = _cli(
            capsys, "--run-dir", run_dir, "--data", root, "--results-dir", results, "--models", "APS"
        )
        assert rc == 1 and err.count("\n") == 1 and "first evaluation" in err and "--results-dir" in err
        assert sorted(p.name for p in results.iterdir()) == [".lock"]  # nothing written
    finally:
        proc.kill()
        proc.wait()
    # its process is gone: the lock is stale, and a temporary file it left goes with it
    (results / ".in_distribution.csv.x1y2z3.tmp").write_text("half a table")
    with pytest.warns(UserWarning, match=r"stale lock .*in_distribution\.csv\.x1y2z3\.tmp"):
        res = ev.evaluate_runs(run_dir, root, ["APS"], results, sweep_slices=1, device="cpu")
    assert res.paths["table"].is_file() and not any(p.name.startswith(".") for p in results.iterdir())


def test_results_lock_is_reentrant_in_one_process(tmp_path):
    from apslib.evaluate.pipeline import results_lock

    with results_lock(tmp_path / "r") as path, results_lock(path):
        assert (path / ".lock").is_file()
    assert not (path / ".lock").exists()

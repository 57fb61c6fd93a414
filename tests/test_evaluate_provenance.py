"""What an evaluation says it evaluated (apslib.evaluate.provenance): the data each run was
trained on against the data it is evaluated on ("other data", one warning per run, both
fingerprints and image sizes named), the epochs of unfinished runs in every table, imported
runs (finished, never trained into), constant validation slices left out of every mean."""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from apslib import data, paper, training
from apslib import evaluate as ev
from apslib.training import runs as run_files
from apslib.training.__main__ import main as train_main

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TINY = dict(depth=2, channels=(4, 8, 16), batch_size=2, epochs=1, device="cpu")
MODELS = ["Baseline", "APS"]
KEYS = ["model", "seed", "dataset", "acquisition", "protocol", "metric", "statistic"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``(data root, run dir)``: finished 1-epoch Baseline and APS runs on 32x32 data
    (2 validation volumes of 2 slices). Copy the run dir before changing it."""
    root = tmp_path_factory.mktemp("data")
    data.synthesize_dataset(
        root, size=32, train_volumes=2, val_volumes=2, slices_per_volume=2, progress=False
    )
    run_dir = tmp_path_factory.mktemp("runs")
    for name in MODELS:
        training.train(training.config_for(name, data_root=root, run_dir=run_dir, **TINY), progress=False)
    return root, run_dir


def _evaluate(run_dir, root, results, **kw):
    """``(EvalResult, [warning texts])`` of an in-distribution evaluation."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = ev.evaluate_runs(run_dir, root, MODELS, results, sweep_slices=1, device="cpu", **kw)
    return res, [str(w.message) for w in caught]


def _runs_json(res) -> dict:
    return json.loads(Path(res.paths["runs"]).read_text())


def _edit(path: Path, change) -> None:
    """Apply ``change`` to a run's checkpoint and config.json (dicts)."""
    ckpt = torch.load(path / run_files.CHECKPOINT_FILE, weights_only=True)
    change(ckpt)
    torch.save(ckpt, path / run_files.CHECKPOINT_FILE)
    doc = json.loads((path / run_files.CONFIG_FILE).read_text())
    change(doc)
    (path / run_files.CONFIG_FILE).write_text(json.dumps(doc))


# -- the data a run was trained on ------------------------------------------------------


def test_runs_evaluated_on_their_own_data_are_in_distribution_and_tables_keep_their_columns(
    trained, tmp_path
):
    root, run_dir = trained
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same data, finished runs: not one warning
        res = ev.evaluate_runs(run_dir, root, MODELS, tmp_path / "r", sweep_slices=1, device="cpu")
    assert res.in_distribution and set(res.table.dataset) == {"val"}
    assert list(ev.read_table(res.paths["table"]).columns) == ev.COLUMNS  # no epochs column
    assert "epochs" not in res.sweep
    doc = _runs_json(res)
    assert doc["image_size"] == [32, 32] and doc["constant_slices_left_out"] == 0
    assert [(r["model"], r["data"], r["epochs"], r["trained_size"]) for r in doc["runs"]] == [
        ("Baseline", "in distribution", "1 of 1", [32, 32]),
        ("APS", "in distribution", "1 of 1", [32, 32]),
    ]
    assert all(r["trained_on"]["hash"] == doc["data"]["hash"] for r in doc["runs"])
    side = paper.side_by_side(res.table, "1", models=MODELS)
    assert "epochs" not in side.attrs and "Epochs" not in paper.to_markdown(side)
    assert "epochs" not in paper.flatten(side) and "epochs" not in ev.table1(res.table).attrs


def test_data_replaced_under_the_runs_is_other_data_with_one_warning_per_run(trained, tmp_path, capsys):
    root, run_dir = trained
    other = tmp_path / "other"  # the same number of volumes, re-synthesised at 16x16
    data.synthesize_dataset(
        other, size=16, train_volumes=2, val_volumes=2, slices_per_volume=2, progress=False
    )
    res, texts = _evaluate(run_dir, other, tmp_path / "r")
    trained_on = run_files.read_run_files(run_dir / "aps").data["hash"]
    evaluated = _runs_json(res)["data"]["hash"]
    lines = [t for t in texts if "was trained on" in t]
    assert len(lines) == 2, texts  # once per run
    for name, line in zip(MODELS, lines):
        assert line.startswith(f"{name} (seed 0) was trained on ") and "\n" not in line
        assert trained_on in line and evaluated in line and trained_on != evaluated
        assert "on 32x32 images but is evaluated on 16x16 images" in line and "'other data'" in line
    runs_rows = res.table[res.table.model.isin(MODELS)]
    assert set(runs_rows.dataset) == {"other data"} and set(res.sweep.dataset) == {"other data"}
    assert set(res.table[res.table.model == "Zero-filled"].dataset) == {"val"}  # data only
    assert not res.in_distribution
    assert [r["data"] for r in _runs_json(res)["runs"]] == ["other data"] * 2
    assert list(ev.table1(res.table, MODELS).index) == ["Zero-filled"]  # none shown as in distribution
    assert list(ev.table1(res.table, MODELS, dataset="other data").index) == MODELS
    # the command line: one warning line each, and the label of what was written
    rc = ev.main(
        ["--run-dir", str(run_dir), "--data", str(other), "--results-dir", str(tmp_path / "cli")]
        + ["--models", *MODELS, "--device", "cpu", "--sweep-slices", "1"]
    )
    out, err = capsys.readouterr()
    assert rc == 0 and out.startswith("other data (see the warnings): ")
    trained_lines = [line for line in err.splitlines() if "was trained on" in line]
    assert len(trained_lines) == 2 and all(line.startswith("warning: ") for line in err.splitlines())


def test_runs_that_record_no_data_are_not_recorded_and_not_warned_about(trained, tmp_path):
    root, run_dir = trained
    copy = tmp_path / "runs"
    shutil.copytree(run_dir, copy)
    for slug in ("baseline", "aps"):  # as written before runs recorded their data and size
        _edit(copy / slug, lambda d: [d.pop(k, None) for k in ("data", "image_size")])
    other = tmp_path / "other"
    data.synthesize_dataset(
        other, size=16, train_volumes=2, val_volumes=2, slices_per_volume=2, progress=False
    )
    res, texts = _evaluate(copy, other, tmp_path / "r")
    assert not [t for t in texts if "was trained on" in t], texts
    assert [r.data for r in res.runs] == ["not recorded"] * 2 and res.in_distribution
    assert set(res.table.dataset) == {"val"}


# -- epochs -----------------------------------------------------------------------------


def _unfinished_aps(root, run_dir, tmp_path) -> Path:
    """A copy of ``run_dir`` whose APS run planned 3 epochs and stopped after 1."""
    copy = tmp_path / "runs"
    shutil.copytree(run_dir, copy)
    cfg = training.config_for("APS", data_root=root, run_dir=copy, **{**TINY, "epochs": 3})

    def killed_after_epoch_1(record):
        raise KeyboardInterrupt

    with pytest.raises(training.TrainingInterrupted):
        training.train(cfg, retrain=True, progress=False, callback=killed_after_epoch_1)
    return copy


def test_unfinished_runs_put_their_epochs_in_every_table(trained, tmp_path):
    root, run_dir = trained
    copy = _unfinished_aps(root, run_dir, tmp_path)
    res, texts = _evaluate(copy, root, tmp_path / "r")
    assert any("APS (seed 0" in t and "1 of 3 epochs trained" in t for t in texts)
    table = ev.read_table(res.paths["table"])
    epochs = table.groupby("model", sort=False).epochs.first()
    assert epochs["APS"] == "1 of 3" and epochs["Baseline"] == "1 of 1"
    assert table[table.model == "Zero-filled"].epochs.isna().all()  # a reference, not a run
    assert set(ev.read_table(res.paths["sweep"]).epochs) == {"1 of 3", "1 of 1"}
    note = {"Baseline": "1 of 1", "APS": "1 of 3"}
    assert ev.epochs_note(table) == note
    for pivot in (ev.table1(table, MODELS), ev.table4(table, MODELS), ev.worst_case_table(table, MODELS)):
        assert pivot.attrs["epochs"] == note
    assert "APS: 1 of 3" in ev.format_table(ev.table1(table, MODELS)).to_html()  # the caption
    side = paper.side_by_side(table, "1", models=MODELS)
    md = paper.to_markdown(side).splitlines()
    assert "epochs" not in md[0] and "APS: 1 of 3" in md[-1] and md[-1].startswith("_Epochs trained")
    flat = paper.flatten(side).set_index("model")
    assert flat.loc["APS", "epochs"] == "1 of 3" and flat.loc["Zero-filled", "epochs"] == ""
    assert "APS: 1 of 3" in paper.to_markdown(ev.decline_bound_table(table, MODELS))
    runs = {r["model"]: r for r in _runs_json(res)["runs"]}
    assert (runs["APS"]["epochs_done"], runs["APS"]["epochs_planned"], runs["APS"]["finished"]) == (
        1,
        3,
        False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ood = ev.evaluate_runs_ood(
            copy, MODELS, tmp_path / "r", size=32, sweep_images=1, noise_count=1, device="cpu"
        )
    assert set(ood.table.groupby("model").epochs.first()) == {"1 of 3", "1 of 1"}
    assert {r.data for r in ood.runs} == {"out of distribution"}
    assert ev.table2(ood.table, MODELS).attrs["epochs"] == note


# -- imported runs ----------------------------------------------------------------------


@pytest.fixture
def imported(tmp_path):
    """A run folder of a small fastMRI U-Net (chans 2, 2 pools) written by apslib.published."""
    from fastmri.models import Unet

    from apslib.published import import_fastmri_unet

    torch.manual_seed(0)
    torch.save(Unet(1, 1, 2, 2).state_dict(), tmp_path / "unet.pt")
    (result,) = import_fastmri_unet(
        tmp_path / "unet.pt", tmp_path / "runs", layout={"chans": 2, "num_pool_layers": 2}
    )
    return result.path


def test_imported_runs_are_finished_even_when_their_history_is_lost(imported):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "unfinished" warning
        run = ev.load_runs(imported.parent, ["fastMRI U-Net"], "cpu")["fastMRI U-Net"]
    assert run.finished and run.imported and (run.epochs_done, run.epochs_planned) == (0, 0)
    (imported / run_files.HISTORY_FILE).write_text("{")  # damaged: read from the checkpoint
    (imported / run_files.CONFIG_FILE).unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = ev.load_runs(imported.parent, ["fastMRI U-Net"], "cpu")["fastMRI U-Net"]
    assert run.finished and not [w for w in caught if "unfinished" in str(w.message)]
    with pytest.warns(UserWarning, match="rebuilt"):
        files = run_files.repair_run_files(imported)
    assert (
        files.finished and json.loads((imported / run_files.HISTORY_FILE).read_text())["epochs_planned"] == 0
    )


def test_training_into_an_imported_run_is_refused_in_one_line_pointing_to_init_from(
    imported, trained, capsys
):
    root, _ = trained
    stamp = (imported / run_files.CHECKPOINT_FILE).stat().st_mtime_ns
    common = ["--data", str(root), "--epochs", "2", "--batch-size", "2", "--device", "cpu", "--no-progress"]
    same = ["--run-dir", str(imported.parent), "--model", "fastMRI U-Net", "--depth", "2"]
    same += ["--channels", "2", "4", "8", "--clamp", "0"]
    for argv in (same, same[:4]):  # its own configuration, and another one
        assert train_main(argv + common) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
        assert f"--init-from {imported}" in err and "imported from" in err
    assert (imported / run_files.CHECKPOINT_FILE).stat().st_mtime_ns == stamp
    # what it says works: a new run from the imported weights
    assert train_main(same + common + ["--init-from", str(imported), "--name", "fastMRI U-Net, tuned"]) == 0


# -- constant slices --------------------------------------------------------------------


def _without_manifest(root: Path, to: Path) -> Path:
    shutil.copytree(root, to)
    for manifest in to.glob("*.json"):
        manifest.unlink()  # a folder of volumes edited by hand, as a real fastMRI folder
    return to


def _zero(volume: Path) -> None:
    with h5py.File(volume, "r+") as hf:
        hf["kspace"][...] = 0
        hf["reconstruction_esc"][...] = 0


def test_an_all_zero_validation_volume_is_left_out_of_every_mean(trained, tmp_path):
    root, run_dir = trained
    zero = _without_manifest(root, tmp_path / "zero")
    good = _without_manifest(root, tmp_path / "good")
    first = sorted((zero / "singlecoil_val").glob("*.h5"))[0]
    _zero(first)
    (good / "singlecoil_val" / first.name).unlink()
    with_zero, texts = _evaluate(run_dir, zero, tmp_path / "r1")
    constant = [t for t in texts if "constant" in t]  # one warning: the validator's, naming them
    assert len(constant) == 1 and f"{first.name} slices 0-1 (all)" in constant[0], texts
    assert "2 constant slices" in constant[0] and "evaluation leaves them out" in constant[0], texts
    assert _runs_json(with_zero)["constant_slices_left_out"] == 2
    without, _ = _evaluate(run_dir, good, tmp_path / "r2")
    a, b = with_zero.table, without.table
    finite = a[a.metric != "eq_psnr"]  # APS's eq_psnr is inf: exactly equivariant
    assert np.isfinite(finite.value.to_numpy(dtype=float)).all()
    both = a.merge(b, on=KEYS, suffixes=("", "_other"))
    assert len(both) == len(a) == len(b)
    assert (both.value == both.value_other).all() and (both.n == both.n_other).all()
    _zero(sorted((zero / "singlecoil_val").glob("*.h5"))[1])
    with pytest.raises(data.DataError, match="every slice of .* is constant"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ev.load_val(zero, exclude_constant=True)


def test_undefined_values_are_left_out_of_statistics_with_a_warning():
    with pytest.warns(UserWarning, match=r"1 of 4 values of model m, metric eq_nmse are undefined"):
        rows = ev.stat_rows([1.0, math.nan, 3.0, 5.0], model="m", metric="eq_nmse")
    assert {r["statistic"]: r["value"] for r in rows}["mean"] == 3.0 and rows[0]["n"] == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = ev.stat_rows([1.0, math.inf], model="m", metric="eq_psnr")  # inf is a value
    assert rows[0]["value"] == math.inf and rows[0]["n"] == 2
    with pytest.warns(UserWarning):
        assert ev.stat_rows([math.nan], metric="x") == []

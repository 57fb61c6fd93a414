"""Evaluation inputs a user gets wrong, each refused in one line that says what to do
(``python -m apslib.evaluate``: ``error: ...``, exit status 1, or 2 for a usage error; no
traceback), and result tables that are not what was written (truncated, emptied)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from apslib import data, training
from apslib import evaluate as ev
from apslib.training import runs as run_files
from apslib.training.__main__ import main as train_main

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TINY = dict(depth=2, channels=(4, 8, 16), batch_size=2, epochs=1, device="cpu")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """``(data root, run dir, junk image folder)``: a finished APS run (4x masks) and an
    LPF-2 run trained with 8x masks, on 32x32 data; a folder of files that are no images."""
    root = tmp_path_factory.mktemp("data")
    data.synthesize_dataset(
        root, size=32, train_volumes=2, val_volumes=1, slices_per_volume=2, progress=False
    )
    run_dir = tmp_path_factory.mktemp("runs")
    training.train(training.config_for("APS", data_root=root, run_dir=run_dir, **TINY), progress=False)
    eight = dict(accelerations=(8,), center_fractions=(0.04,))
    training.train(
        training.config_for("LPF-2", data_root=root, run_dir=run_dir, **TINY, **eight), progress=False
    )
    junk = tmp_path_factory.mktemp("junk")
    for name in ("a.jpg", "b.png", "c.tif"):  # image names, other bytes
        (junk / name).write_text("not an image")
    return root, run_dir, junk


def _cli(capsys, *argv) -> tuple[int, str, str]:
    """``(exit status, stdout, stderr)`` of ``python -m apslib.evaluate ARGV`` in-process."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            rc = ev.main([str(a) for a in argv])
        except SystemExit as stop:  # argparse's usage errors
            rc = int(stop.code)
    out, err = capsys.readouterr()
    return rc, out, err


def _newer_checkpoint(run_dir, tmp_path):
    copy = tmp_path / "runs"
    shutil.copytree(run_dir, copy)
    ckpt = torch.load(copy / "aps" / run_files.CHECKPOINT_FILE, weights_only=True)
    ckpt["apslib_version"], ckpt["format"] = "9.0.0", run_files.RUN_FORMAT + 1
    torch.save(ckpt, copy / "aps" / run_files.CHECKPOINT_FILE)
    return copy


# case: (arguments after --run-dir/--results-dir/--device, exit status, phrases of the line)
CASES = {
    "max_shift_0": (
        ["--data", "{root}", "--max-shift", "0"],
        1,
        ["--max-shift (max_shift) must be", "got 0"],
    ),
    "sweep_slices_0": (["--data", "{root}", "--sweep-slices", "0"], 1, ["--sweep-slices (sweep_slices)"]),
    "nothing_decodable_in_image_dir": (
        ["--ood", "--ood-size", "32", "--image-dir", "{junk}"],
        1,
        [
            "none of the 3 images of folder:",
            "(the first, a.jpg:",
            ".png, .jpg, .jpeg, .bmp, .tif, .tiff",
            "Pillow",
        ],
    ),
    "string_for_a_shift": (
        ["--data", "{root}", "--max-shift", "abc"],
        2,
        ["argument --max-shift: invalid int value: 'abc'", "--help"],
    ),
    "string_for_a_seed": (
        ["--data", "{root}", "--seeds", "0", "x"],
        2,
        ["argument --seeds: invalid int value"],
    ),
    # five more a fastMRI user meets at evaluation time
    "model_without_a_run": (
        ["--data", "{root}", "--models", "APPS"],
        1,
        ["no trained run for ['APPS']", "holds the runs aps, lpf-2", "--run-dir"],
    ),
    "seed_without_a_run": (
        ["--data", "{root}", "--seeds", "1"],
        1,
        ["(seed 1)", "holds the runs aps, lpf-2"],
    ),
    "run_dir_is_one_run": (
        ["--data", "{root}", "--run-dir", "{run_dir}/aps"],
        1,
        ["is itself a run folder", "pass its parent {run_dir} as --run-dir"],
    ),
    "runs_of_other_masks_together": (
        ["--data", "{root}", "--models", "APS", "LPF-2"],
        1,
        ["different undersampling masks", "APS (seed 0): 4x, centre fraction 0.08", "LPF-2 (seed 0): 8x"],
    ),
    "image_limit_0": (
        ["--ood", "--ood-size", "32", "--image-dir", "{junk}", "--image-limit", "0"],
        1,
        ["--image-limit (image_limit) must be an integer >= 1"],
    ),
    "checkpoint_of_a_newer_apslib": (
        ["--data", "{root}", "--run-dir", "{newer}"],
        1,
        ["apslib 9.0.0", "upgrade"],
    ),
    "run_dir_is_a_file": (
        ["--data", "{root}", "--run-dir", "{file}"],
        1,
        ["is a file, not a folder of trained runs"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_evaluation_errors_are_one_line_saying_what_to_do(case, setup, tmp_path, capsys):
    root, run_dir, junk = setup
    (tmp_path / "file").write_text("not a folder")
    where = dict(root=root, run_dir=run_dir, junk=junk, file=tmp_path / "file")
    if case == "checkpoint_of_a_newer_apslib":
        where["newer"] = _newer_checkpoint(run_dir, tmp_path)
    extra, status, phrases = CASES[case]
    base = ["--run-dir", run_dir, "--results-dir", tmp_path / "r", "--device", "cpu", "--models", "APS"]
    rc, out, err = _cli(capsys, *base, *[a.format(**where) for a in extra])
    assert rc == status and out == "", (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for phrase in phrases:
        assert phrase.format(**where) in err, err
    assert not (tmp_path / "r" / "in_distribution.csv").exists()  # nothing written


def _env():
    return {**os.environ, "PYTHONWARNINGS": "ignore"}


def test_the_module_refuses_bad_counts_in_one_line(setup, tmp_path):
    root, run_dir, _ = setup
    base = [sys.executable, "-m", "apslib.evaluate", "--run-dir", str(run_dir), "--data", str(root)]
    base += ["--results-dir", str(tmp_path / "r"), "--models", "APS", "--device", "cpu"]
    for extra, status in ((["--max-shift", "0"], 1), (["--max-shift", "sixteen"], 2)):
        res = subprocess.run(base + extra, capture_output=True, text=True, timeout=180, env=_env())
        assert res.returncode == status and res.stderr.startswith("error: "), res.stderr
        assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr, res.stderr


def test_training_usage_errors_are_one_line(setup, capsys):
    root, run_dir, _ = setup
    with pytest.raises(SystemExit) as stop:
        train_main(
            ["--data", str(root), "--run-dir", str(run_dir), "--model", "APS", "--channels", "4", "a", "16"]
        )
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: argument --channels: invalid int value: 'a'") and "--help" in err


def test_the_python_api_refuses_the_same_counts(setup, tmp_path):
    root, run_dir, _ = setup
    with pytest.raises(ValueError, match="max_shift"):
        ev.evaluate_runs(run_dir, root, ["APS"], tmp_path / "r", max_shift=0, device="cpu")
    with pytest.raises(ValueError, match="slices"):
        ev.evaluate_beyond(run_dir, root, ["APS"], tmp_path / "r", slices=0, device="cpu")
    with pytest.raises(ValueError, match="image limit"):
        data.image_folder(tmp_path, limit=0)


@pytest.mark.parametrize("models", [[], (), "APS", None, [""]], ids=repr)
def test_no_models_is_one_line_before_any_folder_is_made(models, tmp_path):
    """``models=[]`` was a bare StopIteration in the data loading, after the results
    folder (and its lock) had been created."""
    runs, root, res = tmp_path / "runs", tmp_path / "data", tmp_path / "res"
    calls = [
        lambda: ev.evaluate_runs(runs, root, models, res, device="cpu"),
        lambda: ev.evaluate_runs_ood(runs, models, res, device="cpu"),
        lambda: ev.evaluate_beyond(runs, root, models, res, device="cpu"),
    ]
    for call in calls:
        with pytest.raises(ValueError) as err:
            call()
        msg = str(err.value)
        assert "\n" not in msg and msg.startswith("models must be a non-empty list of model names"), msg
        assert '["Baseline", "APS"]' in msg and msg.endswith(f"got {models!r}"), msg
        assert not res.exists()
    for all_runs in ({}, {0: {}}):
        with pytest.raises(ValueError, match=r"^all_runs must map each training seed to its runs"):
            ev.evaluate_loaded(all_runs, root, res)
        assert not res.exists()


# -- result tables: what was written, or a one-line refusal ---------------------------------


def _table(rows: int = 146) -> pd.DataFrame:
    rows_ = [
        {"model": f"m{i % 7}", "seed": 0, "dataset": "val", "acquisition": "all", "protocol": "random"}
        | {"metric": "eq_nmse", "statistic": "mean", "value": float(i) / 3, "n": 4}
        for i in range(rows)
    ]
    return ev.summarise(rows_)


def test_a_truncated_results_table_is_refused_not_read_short(tmp_path):
    path = ev.write_table(_table(146), tmp_path / "t.csv")
    assert len(ev.read_table(path)) == 146
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:59]))  # the header and 58 rows
    with pytest.raises(ev.TableError) as info:
        ev.read_table(path)
    msg = str(info.value)
    assert "\n" not in msg and "has 58 rows but its JSON copy t.json, written with it, has 146" in msg
    assert "rerun the evaluation" in msg
    text = "".join(lines)
    path.write_text(text[: len(text) // 2])  # cut inside a row
    with pytest.raises(ev.TableError, match="t.csv"):
        ev.read_table(path)
    path.write_text("")
    with pytest.raises(ev.TableError, match="is empty"):
        ev.read_table(path)
    path.write_text("".join(lines))
    (tmp_path / "t.json").write_text('[{"model": ')  # its copy damaged
    with pytest.raises(ev.TableError, match="delete t.json to read t.csv unchecked"):
        ev.read_table(path)
    (tmp_path / "t.json").unlink()  # a table without its record (e.g. copied alone): read as it is
    path.write_text("".join(lines[:59]))
    back = ev.read_table(path)
    assert len(back) == 58 and list(back.columns) == ev.COLUMNS
    assert np.allclose(back.value, _table(58).value)

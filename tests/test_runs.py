"""Run folders (apslib.training.runs, apslib.training.folder): names that round-trip, the
lock against a second process, checkpoint verification, the skip/resume/fresh plan, and the
format and version a run folder records."""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import apslib
from apslib.names import model_name, parse_model_name, slugify
from apslib.training import runs
from apslib.training.__main__ import main
from apslib.training.config import TrainConfig, config_for
from apslib.training.errors import CheckpointError, RunConflictError, RunLockedError, RunVersionError
from apslib.training.folder import LOCK_FILE, RunLock
from apslib.training.loop import train
from apslib.unet import UNetConfig

TINY = dict(depth=2, channels=(4, 8, 16), batch_size=2, epochs=1, device="cpu")
TINY_NET = ["--depth", "2", "--channels", "4", "8", "16"]  # TINY's network as CLI flags


@pytest.fixture(scope="module")
def finished(tiny_data, tmp_path_factory):
    """A finished 1-epoch APS run (copy it before changing it)."""
    cfg = config_for("APS", data_root=tiny_data, run_dir=tmp_path_factory.mktemp("runs"), **TINY)
    train(cfg, progress=False)
    return cfg


@pytest.fixture
def run_copy(finished, tmp_path):
    """``(config, path)`` of a private copy of the finished run."""
    cfg = finished.replace(run_dir=str(tmp_path))
    shutil.copytree(finished.run_path, cfg.run_path)
    return cfg, cfg.run_path


# --------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    variant=st.sampled_from(["baseline", "lpf", "aps"]),
    j=st.integers(1, 7),
    da=st.booleans(),
    sda=st.booleans(),
    arch=st.sampled_from(["apslib", "fastmri"]),
)
def test_model_names_round_trip(variant, j, da, sda, arch):
    if variant == "baseline":
        j = 1  # the Baseline has no blur
    spec = {"variant": variant, "filter_size": j, "shift_augment": da, "subpixel_augment": sda}
    spec["architecture"] = arch
    spec["activation"] = None  # the variant's ReLU (AF's names: tests/test_alias_free_unet.py)
    name = model_name(variant, j, da, sda, arch)
    assert name.startswith("fastMRI U-Net") == (arch == "fastmri")
    assert parse_model_name(name) == spec
    assert parse_model_name(slugify(name)) == spec
    assert parse_model_name(name.upper()) == spec
    if not da and not sda:
        unet = UNetConfig(variant=variant, filter_size=j, depth=2, channels=(4, 8, 16), architecture=arch)
        assert unet.name == name
    cfg = TrainConfig(**spec, depth=2, channels=(4, 8, 16))
    assert cfg.display_name == name
    assert config_for(name, depth=2, channels=(4, 8, 16)) == cfg.replace(name=name)


@pytest.mark.parametrize(
    "bad",
    ["LPF", "Baseline-3", "APS-8", "LPF-0", "ResNet", "", "APS-3 + XY", "fastMRI U-Net 3", "fastMRI LPF"],
)
def test_bad_model_names_say_what_is_allowed(bad):
    with pytest.raises(ValueError, match=r"LPF|Baseline|blur|model name"):
        parse_model_name(bad)


# --------------------------------------------------------------------------------------
# The lock
# --------------------------------------------------------------------------------------

HOLDER = textwrap.dedent("""
    import sys, time
    from apslib.training.folder import RunLock
    lock = RunLock(sys.argv[1], command="holder process").acquire()
    print("locked", flush=True)
    time.sleep(120)
""")


@pytest.fixture
def holder(tmp_path):
    """A real second process holding the lock of ``tmp_path / 'run'``."""
    path = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc, path
    finally:
        proc.kill()
        proc.wait()


def test_lock_held_by_a_live_process_stops_a_second_one(holder):
    proc, path = holder
    with pytest.raises(RunLockedError) as info:
        RunLock(path).acquire()
    msg = str(info.value)
    assert f"pid {proc.pid} on {socket.gethostname()}" in msg and "holder process" in msg
    assert "since" in msg and "wait for it to finish" in msg and "\n" not in msg
    # the holder's lock is untouched
    assert json.loads((path / LOCK_FILE).read_text())["pid"] == proc.pid


def test_lock_of_a_killed_process_is_recovered_with_a_warning(holder):
    proc, path = holder
    proc.kill()
    proc.wait()
    with pytest.warns(UserWarning, match=rf"stale lock .* process {proc.pid}"):
        lock = RunLock(path).acquire()
    assert json.loads((path / LOCK_FILE).read_text())["pid"] == os.getpid()
    lock.release()
    assert not (path / LOCK_FILE).exists()


@pytest.mark.parametrize("owner", ["dead process", "this process, not holding it"])
def test_stale_lock_file_is_recovered(tmp_path, owner):
    if owner == "dead process":
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        pid = dead.pid
    else:
        pid = os.getpid()  # e.g. an interrupt in a notebook kernel between create and write
    (tmp_path / LOCK_FILE).write_text(
        json.dumps(
            {
                "pid": pid,
                "host": socket.gethostname(),
                "since": "earlier",
                "command": "x",
                "token": "left behind",
            }
        )
    )
    with pytest.warns(UserWarning, match=f"stale lock .* process {pid}"), RunLock(tmp_path):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK_FILE).exists()


def test_lock_on_another_host_is_not_taken(tmp_path):
    (tmp_path / LOCK_FILE).write_text(
        json.dumps({"pid": 1, "host": "elsewhere", "since": "earlier", "command": "x"})
    )
    with pytest.raises(RunLockedError, match=r"pid 1 on elsewhere.*delete .*\.lock"):
        RunLock(tmp_path).acquire()


def test_release_leaves_a_lock_that_is_not_ours(tmp_path):
    lock = RunLock(tmp_path).acquire()
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": 1, "host": "h", "token": "other"}))
    lock.release()
    assert (tmp_path / LOCK_FILE).exists()


def test_training_stops_at_the_lock_of_another_process(tiny_data, holder, capsys):
    """Two identical runs: the second neither trains nor writes; the CLI says why in one line."""
    proc, path = holder
    cfg = config_for("APS", data_root=tiny_data, run_dir=path.parent, name="run", **TINY)
    assert cfg.run_path == path
    with pytest.raises(RunLockedError, match=f"pid {proc.pid}"):
        train(cfg, progress=False)
    for retrain in ([], ["--retrain"]):
        args = [
            "--data",
            str(tiny_data),
            "--run-dir",
            str(path.parent),
            "--model",
            "APS",
            "--name",
            "run",
            *TINY_NET,
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--no-progress",
            *retrain,
        ]
        assert main(args) == 1
        err = capsys.readouterr().err
        assert err.startswith("error:") and f"pid {proc.pid}" in err and err.count("\n") == 1
    assert sorted(p.name for p in path.iterdir()) == [LOCK_FILE]


# --------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------


def _damage(file, how):
    raw = file.read_bytes()
    if how == "truncated":
        file.write_bytes(raw[: len(raw) // 2])
    elif how == "empty":
        file.write_bytes(b"")
    elif how == "garbage":
        file.write_bytes(b"not a checkpoint" * 10)
    elif how == "format":
        ckpt = torch.load(file, weights_only=True)
        torch.save({**ckpt, "format": 99}, file)
    elif how == "keys":
        ckpt = torch.load(file, weights_only=True)
        del ckpt["optimizer"]
        torch.save(ckpt, file)


@pytest.mark.parametrize("how", ["truncated", "empty", "garbage", "format", "keys"])
def test_damaged_checkpoint_is_named_and_never_skipped_as_finished(run_copy, how, capsys):
    cfg, path = run_copy
    ckpt = path / runs.CHECKPOINT_FILE
    _damage(ckpt, how)
    error = RunVersionError if how == "format" else CheckpointError
    for read in (runs.read_checkpoint, runs.load_model):
        with pytest.raises(error, match=r"--retrain") as info:
            read(path)
        assert str(ckpt) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(error):  # finished, but not "already finished"
        train(cfg, progress=False)
    with pytest.raises(error):  # nor resumed from it
        train(cfg.replace(epochs=2), progress=False)
    redo = train(cfg, retrain=True, progress=False)
    assert not redo.skipped and runs.read_checkpoint(path)["epoch"] == 1


def test_missing_checkpoint_of_a_finished_run(run_copy):
    cfg, path = run_copy
    (path / runs.CHECKPOINT_FILE).unlink()
    with pytest.raises(CheckpointError, match=r"1 completed epoch.*missing.*finished.*--retrain"):
        runs.plan_run(cfg, path, retrain=False)
    with pytest.raises(FileNotFoundError, match="train the model first"):
        runs.load_model(path)
    assert runs.plan_run(cfg, path, retrain=True) == "fresh"


def test_resume_from_truncated_checkpoint_is_one_line_from_the_cli(run_copy, capsys):
    cfg, path = run_copy
    _damage(path / runs.CHECKPOINT_FILE, "truncated")
    args = [
        "--data",
        cfg.data_root,
        "--run-dir",
        cfg.run_dir,
        "--model",
        "APS",
        *TINY_NET,
        "--epochs",
        "2",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--no-progress",
    ]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checkpoint.pt is unreadable, truncated or corrupt" in err
    assert "--retrain" in err and "Traceback" not in err
    assert main([*args, "--retrain"]) == 0


def test_plan(run_copy):
    cfg, path = run_copy
    assert runs.plan_run(cfg, path, retrain=False) == "skip"
    assert runs.plan_run(cfg.replace(epochs=3), path, retrain=False) == "resume"
    assert runs.plan_run(cfg, path, retrain=True) == "fresh"
    with pytest.raises(RunConflictError, match="lr"):
        runs.plan_run(cfg.replace(lr=0.5), path, retrain=False)
    # a run that never completed an epoch is replaced, whatever its configuration
    (path / runs.CHECKPOINT_FILE).unlink()
    runs.write_history(path, cfg, [], False, "it failed")
    assert runs.plan_run(cfg.replace(lr=0.5), path, retrain=False) == "fresh"
    assert runs.plan_run(cfg, path.parent / "nothing", retrain=False) == "fresh"


def test_history_frame_and_read_run(run_copy):
    cfg, path = run_copy
    info = runs.read_run(path)
    assert info["config"] == cfg.resolve().replace(run_dir=info["config"].run_dir) and info["done"]
    frame = runs.history_frame([path])
    assert list(frame.columns[:3]) == ["model", "seed", "epoch"] and frame["model"].tolist() == ["APS"]


def test_run_folder_records_its_format_version_and_resolved_config(run_copy):
    cfg, path = run_copy
    stored = json.loads((path / runs.CONFIG_FILE).read_text())
    ckpt = runs.read_checkpoint(path)
    for doc in (stored, ckpt):
        assert (doc["format"], doc["apslib_version"]) == (runs.RUN_FORMAT, apslib.__version__)
    # what was trained, with every value that depends on others written out
    assert cfg.padding_mode is None and cfg.up_pad is None
    resolved = cfg.resolve()
    for doc in (stored, ckpt):
        assert TrainConfig.from_dict(doc["config"]).replace(run_dir=cfg.run_dir) == resolved  # a copy
        assert UNetConfig.from_dict(doc["unet"]) == resolved.unet_config()
    assert (stored["config"]["padding_mode"], stored["config"]["up_pad"]) == ("circular", "bottom_right")


def _as_written_by_0_1_0(path):
    """Make a run folder look like apslib 0.1.0's: no version, checkpoint format 1."""
    doc = json.loads((path / runs.CONFIG_FILE).read_text())
    for key in ("format", "apslib_version"):
        doc.pop(key)
    (path / runs.CONFIG_FILE).write_text(json.dumps(doc))
    ckpt = torch.load(path / runs.CHECKPOINT_FILE, weights_only=True)
    del ckpt["apslib_version"]
    torch.save({**ckpt, "format": 1}, path / runs.CHECKPOINT_FILE)


def test_a_run_folder_of_apslib_0_1_0_is_refused_in_one_line(run_copy, capsys):
    cfg, path = run_copy
    _as_written_by_0_1_0(path)
    reads = {
        runs.CONFIG_FILE: (lambda: runs.plan_run(cfg, path, retrain=False), lambda: runs.read_run(path)),
        runs.CHECKPOINT_FILE: (lambda: runs.read_checkpoint(path), lambda: runs.load_model(path)),
    }
    for file, calls in reads.items():
        for call in calls:
            with pytest.raises(RunVersionError) as info:
                call()
            msg = str(info.value)
            assert "\n" not in msg and str(path / file) in msg, msg
            assert "apslib 0.1.0" in msg and "--retrain" in msg, msg
    args = ["--data", cfg.data_root, "--run-dir", cfg.run_dir, "--model", "APS", *TINY_NET]
    args += ["--epochs", "1", "--batch-size", "2", "--device", "cpu", "--no-progress"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert "apslib 0.1.0" in err and "--retrain" in err
    assert main([*args, "--retrain"]) == 0  # the way out the message names
    assert runs.read_run(path)["done"] and runs.read_checkpoint(path)["apslib_version"] == apslib.__version__


def test_a_0_1_0_folder_that_never_completed_an_epoch_is_replaced(run_copy):
    cfg, path = run_copy
    _as_written_by_0_1_0(path)
    (path / runs.CHECKPOINT_FILE).unlink()
    runs.write_history(path, cfg, [], False, "it failed")
    assert runs.plan_run(cfg, path, retrain=False) == "fresh"

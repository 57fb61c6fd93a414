"""Run folders (apslib.training.runs, .plan, .identity, .folder): names that round-trip, the
lock against a second process, checkpoint verification, the skip/resume/fresh plan, the
format and version a run folder records, and its identity: a checkpoint, config.json and
history.json of one run, trained on one data set (files of two runs are refused in one
line; a damaged history is rebuilt), temporary files of killed writers, a full disk."""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import apslib
import apslib.data
from apslib import evaluate as ev
from apslib.names import model_name, parse_model_name, slugify
from apslib.training import plan, results, runs
from apslib.training.__main__ import main
from apslib.training.config import TrainConfig, config_for
from apslib.training.errors import CheckpointError, RunConflictError, RunLockedError, RunVersionError
from apslib.training.folder import LOCK_FILE, RunLock
from apslib.training.identity import data_fingerprint, same_data
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
    hint = "upgrade apslib" if how == "format" else "--retrain"  # format 99: a newer apslib's
    for read in (runs.read_checkpoint, runs.load_model):
        with pytest.raises(error, match=hint) as info:
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
        plan.plan_run(cfg, path, retrain=False)
    with pytest.raises(FileNotFoundError, match="train the model first"):
        runs.load_model(path)
    assert plan.plan_run(cfg, path, retrain=True) == "fresh"


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
    assert plan.plan_run(cfg, path, retrain=False) == "skip"
    assert plan.plan_run(cfg.replace(epochs=3), path, retrain=False) == "resume"
    assert plan.plan_run(cfg, path, retrain=True) == "fresh"
    with pytest.raises(RunConflictError, match="lr"):
        plan.plan_run(cfg.replace(lr=0.5), path, retrain=False)
    # a run that never completed an epoch is replaced, whatever its configuration
    (path / runs.CHECKPOINT_FILE).unlink()
    runs.write_history(path, cfg, [], False, "it failed")
    assert plan.plan_run(cfg.replace(lr=0.5), path, retrain=False) == "fresh"
    assert plan.plan_run(cfg, path.parent / "nothing", retrain=False) == "fresh"


def test_history_frame_and_read_run(run_copy):
    cfg, path = run_copy
    info = runs.read_run(path)
    assert info["config"] == cfg.resolve().replace(run_dir=info["config"].run_dir) and info["done"]
    frame = results.history_frame([path])
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
        runs.CONFIG_FILE: (lambda: plan.plan_run(cfg, path, retrain=False), lambda: runs.read_run(path)),
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
    assert plan.plan_run(cfg, path, retrain=False) == "fresh"


# --------------------------------------------------------------------------------------
# A run knows what it is: checkpoint, config.json and history.json of one run
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_lpf(finished, tmp_path_factory):
    """A finished 1-epoch LPF-2 run, trained like ``finished``."""
    cfg = config_for("LPF-2", data_root=finished.data_root, run_dir=tmp_path_factory.mktemp("lpf"), **TINY)
    train(cfg, progress=False)
    return cfg


def _cli(cfg, *extra, model="APS", epochs=1, net=TINY_NET):
    args = ["--data", cfg.data_root, "--run-dir", cfg.run_dir, "--model", model, *net]
    return [*args, "--epochs", str(epochs), "--batch-size", "2", "--device", "cpu", "--no-progress", *extra]


def _one_line(capsys, *needles, start="error: "):
    err = capsys.readouterr().err
    assert err.startswith(start) and err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def _edit_json(file, change):
    doc = json.loads(file.read_text())
    change(doc)
    file.write_text(json.dumps(doc))


def _edit_checkpoint(file, change):
    ckpt = torch.load(file, weights_only=True)
    change(ckpt)
    torch.save(ckpt, file)


def test_checkpoint_of_another_run_is_refused_in_one_line(run_copy, finished_lpf, capsys):
    """An LPF-2 checkpoint copied into an APS run folder: neither resumed nor skipped nor
    evaluated; one line names both sides and the ways out."""
    cfg, path = run_copy
    ckpt = path / runs.CHECKPOINT_FILE
    shutil.copy(finished_lpf.run_path / runs.CHECKPOINT_FILE, ckpt)
    before = ckpt.read_bytes()
    for epochs in (2, 1):  # resume, then skip
        assert main(_cli(cfg, epochs=epochs)) == 1
        _one_line(
            capsys,
            "run aps: checkpoint.pt is LPF-2 (variant 'lpf', filter_size 2",
            "but config.json asks for APS (variant 'aps', filter_size 1",
            "--retrain",
            "--run-dir",
        )
    assert ckpt.read_bytes() == before  # nothing was trained on the other run's weights
    for read in (runs.read_run, runs.load_model, lambda p: ev.load_runs(p.parent, ["APS"])):
        with pytest.raises(RunConflictError, match="checkpoint.pt is LPF-2"):
            read(path)
    assert main([*_cli(cfg, epochs=2), "--retrain"]) == 0  # the way out it names
    assert runs.read_checkpoint(path)["name"] == "APS"


@pytest.mark.parametrize(
    "edit, needles",
    [
        (
            lambda d: d["config"].update(variant="lps"),
            ["checkpoint.pt is APS (variant 'aps')", "LPS (variant 'lps')"],
        ),
        (lambda d: d["config"].update(channels=[4, 8, 32]), ["channels [4, 8, 16]", "channels [4, 8, 32]"]),
        (lambda d: d["config"].update(lr=0.5), ["lr 0.001", "lr 0.5"]),
    ],
)
def test_edited_config_json_is_refused_in_one_line_not_a_size_mismatch(run_copy, capsys, edit, needles):
    cfg, path = run_copy
    _edit_json(path / runs.CONFIG_FILE, edit)
    stored = runs.stored_config(json.loads((path / runs.CONFIG_FILE).read_text())["config"], path)
    asked = stored.replace(run_dir=cfg.run_dir, data_root=cfg.data_root, epochs=2)
    with pytest.raises(RunConflictError) as info:
        plan.plan_run(asked, path, retrain=False)
    msg = str(info.value)
    assert "\n" not in msg and "config.json asks for" in msg and "size mismatch" not in msg
    for needle in needles:
        assert needle in msg, msg
    net = ["--depth", "2", "--channels", *map(str, asked.channels), "--lr", str(asked.lr), "--name", "APS"]
    assert main(_cli(cfg, epochs=2, model=asked.replace(name=None).display_name, net=net)) == 1
    _one_line(capsys, "checkpoint.pt is", "config.json asks for", *needles)


def test_history_of_another_run_or_ahead_of_its_checkpoint_is_refused(run_copy, finished_lpf, capsys):
    cfg, path = run_copy
    hist = path / runs.HISTORY_FILE
    shutil.copy(finished_lpf.run_path / runs.HISTORY_FILE, hist)
    with pytest.raises(RunConflictError, match=r"record different training from epoch 1 on"):
        plan.plan_run(cfg.replace(epochs=2), path, retrain=False)
    original = runs.read_checkpoint(path)["history"]
    runs.write_history(path, cfg.replace(epochs=3), [*original, {**original[0], "epoch": 2}], False)
    assert main(_cli(cfg, epochs=3)) == 1  # resuming would drop the recorded epoch 2
    _one_line(capsys, "history.json records 2 epochs but checkpoint.pt holds 1", "drop 1 recorded epoch")


@pytest.mark.parametrize("how", ["truncated", "missing", "not a record", "behind"])
def test_damaged_history_is_rebuilt_from_the_checkpoint(run_copy, capsys, how):
    cfg, path = run_copy
    hist = path / runs.HISTORY_FILE
    good = json.loads(hist.read_text())
    if how == "truncated":
        hist.write_text(hist.read_text()[:100])
    elif how == "missing":
        hist.unlink()
    elif how == "not a record":
        hist.write_text("[1, 2]")
    else:  # killed between the checkpoint's write and the history's
        runs.write_history(path, cfg, [], False)
    with pytest.warns(UserWarning, match="history.json is .*: the run is read from checkpoint.pt"):
        info = runs.read_run(path)  # evaluation reads it from the checkpoint, writes nothing
    assert info["history"] == good["history"] and info["done"] and info["finished"]
    assert main(_cli(cfg)) == 0  # finished: skipped, and history.json rebuilt
    err = capsys.readouterr()
    assert "skipped" in err.out and err.err.count("\n") == 1
    assert err.err.startswith("warning: ") and "rebuilt from checkpoint.pt (1 epochs)" in err.err
    assert json.loads(hist.read_text()) == good
    hist.unlink()
    assert main(_cli(cfg, epochs=2)) == 0  # and resumed (not an error, not started over)
    assert "rebuilt" in capsys.readouterr().err
    assert [r["epoch"] for r in runs.read_run(path)["history"]] == [1, 2]


def test_missing_config_json_is_rebuilt_not_started_over(run_copy, capsys):
    cfg, path = run_copy
    (path / runs.CONFIG_FILE).unlink()
    stamp = (path / runs.CHECKPOINT_FILE).stat().st_mtime_ns
    assert main(_cli(cfg)) == 0
    assert "skipped" in capsys.readouterr().out
    assert (path / runs.CHECKPOINT_FILE).stat().st_mtime_ns == stamp
    assert json.loads((path / runs.CONFIG_FILE).read_text())["config"]["variant"] == "aps"


@pytest.mark.parametrize("newer", ["format", "field", "unet field"])
def test_files_of_a_newer_apslib_say_upgrade(run_copy, capsys, newer):
    cfg, path = run_copy

    def change(ckpt):
        ckpt["apslib_version"] = "9.0.0"
        if newer == "format":
            ckpt["format"] = runs.RUN_FORMAT + 1
        else:
            ckpt["config" if newer == "field" else "unet"]["dropout"] = 0.1

    _edit_checkpoint(path / runs.CHECKPOINT_FILE, change)
    with pytest.raises(RunVersionError, match="upgrade apslib"):
        runs.load_model(path)
    assert main(_cli(cfg, epochs=2)) == 1
    err = _one_line(capsys, str(path / runs.CHECKPOINT_FILE), "apslib 9.0.0", "upgrade apslib")
    assert "--retrain" not in err and ("'dropout'" in err) == (newer != "format")


def test_init_from_a_corrupt_source_names_the_source(run_copy, tmp_path, capsys):
    cfg, source = run_copy
    ckpt = source / runs.CHECKPOINT_FILE
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    new = cfg.replace(run_dir=str(tmp_path / "new"))
    assert main(_cli(new, "--init-from", str(source), model="APS-2")) == 1
    err = _one_line(capsys, f"init_from {source}", "truncated or corrupt", "--init-from")
    assert "--retrain" not in err
    assert main(_cli(new, "--init-from", str(tmp_path / "nowhere"), model="APS-2")) == 1
    _one_line(capsys, f"init_from {tmp_path / 'nowhere'}", "no checkpoint")


def _dead_pid() -> int:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    return dead.pid


def test_temporary_files_of_a_killed_writer_are_removed_with_its_stale_lock(run_copy):
    """kill -9 during a save leaves the lock and ``.checkpoint.pt.<random>.tmp``."""
    cfg, path = run_copy
    tmp = path / ".checkpoint.pt.k9x_2b.tmp"
    tmp.write_bytes(b"half a checkpoint" * 1000)
    (path / ".history.json.u81zq.tmp").write_text("{")
    pid = _dead_pid()
    lock = {"pid": pid, "host": socket.gethostname(), "since": "earlier", "command": "x", "token": "t"}
    (path / LOCK_FILE).write_text(json.dumps(lock))
    with pytest.warns(UserWarning, match=rf"stale lock .* process {pid}.*\.checkpoint\.pt\.k9x_2b\.tmp"):
        with RunLock(path):
            assert not tmp.exists() and not (path / ".history.json.u81zq.tmp").exists()
    names = sorted(p.name for p in path.iterdir())
    assert names == sorted([runs.CHECKPOINT_FILE, runs.CONFIG_FILE, runs.HISTORY_FILE])


def test_retrain_removes_temporary_files_left_behind(run_copy):
    cfg, path = run_copy
    tmp = path / ".checkpoint.pt.abc123.tmp"
    tmp.write_bytes(b"x")
    train(cfg, progress=False)  # skipped: nothing is removed without the lock
    assert tmp.exists()
    train(cfg, retrain=True, progress=False)
    assert not tmp.exists()


def test_full_disk_during_a_checkpoint_save_is_one_line_and_keeps_the_checkpoint(
    run_copy, monkeypatch, capsys
):
    cfg, path = run_copy
    ckpt = path / runs.CHECKPOINT_FILE
    before = ckpt.read_bytes()

    def full_disk(obj, f, *a, **k):
        f.write(b"PK\x03\x04 part of a checkpoint")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    monkeypatch.setattr(torch, "save", full_disk)
    assert main(_cli(cfg, epochs=2)) == 1  # resume: epoch 2 cannot be saved
    _one_line(capsys, f"cannot write in the run folder {path}", "free space")
    monkeypatch.undo()
    assert ckpt.read_bytes() == before and runs.read_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in path.iterdir()) == sorted(
        [runs.CHECKPOINT_FILE, runs.CONFIG_FILE, runs.HISTORY_FILE]
    )  # no temporary file, no lock
    assert main(_cli(cfg, epochs=2)) == 0  # space freed: the same command resumes


# --------------------------------------------------------------------------------------
# The data a run was trained on
# --------------------------------------------------------------------------------------


def test_data_fingerprint_is_cheap_stable_and_changes_with_the_data(finished, tmp_path):
    root = Path(finished.data_root)
    fp = data_fingerprint(root)
    assert set(fp) == {"hash", "volumes", "bytes", "recipe"} and fp["volumes"] == 3 and len(fp["hash"]) == 16
    moved = tmp_path / "moved"
    shutil.copytree(root, moved)  # new paths and time stamps, the same data
    (moved / "singlecoil_train" / "notes.txt").write_text("not a volume")  # skipped by the loader
    assert data_fingerprint(moved) == fp
    first = sorted((moved / "singlecoil_train").glob("*.h5"))[0]
    raw = bytearray(first.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one byte of pixels
    first.write_bytes(bytes(raw))
    assert data_fingerprint(moved)["hash"] != fp["hash"]
    raw[len(raw) // 2] ^= 0xFF
    first.write_bytes(bytes(raw))
    assert data_fingerprint(moved) == fp
    first.rename(first.with_name("renamed.h5"))
    assert data_fingerprint(moved)["hash"] != fp["hash"]
    first.with_name("renamed.h5").unlink()
    assert data_fingerprint(moved)["volumes"] == 2
    assert runs.read_checkpoint(finished.run_path)["data"] == fp  # recorded by every checkpoint
    assert json.loads((finished.run_path / runs.CONFIG_FILE).read_text())["data"] == fp
    # a fingerprint of another recipe (another version's) is compared on volumes and bytes
    older = {"hash": "0123456789abcdef", "volumes": fp["volumes"], "bytes": fp["bytes"]}
    assert same_data(older, fp) and not same_data({**older, "volumes": 2}, fp)
    assert not same_data({**fp, "hash": "0123456789abcdef"}, fp)


def test_resuming_on_other_data_is_refused_and_moved_data_is_fine(run_copy, tmp_path, capsys):
    cfg, path = run_copy
    moved = tmp_path / "moved"
    shutil.copytree(cfg.data_root, moved)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same data elsewhere: not even a warning
        assert (
            plan.plan_run(cfg.replace(data_root=str(moved)), path, False, data=data_fingerprint(moved))
            == "skip"
        )
    other = tmp_path / "other"  # the same names, sizes and shapes; other pixels
    apslib.data.synthesize_dataset(
        other, size=32, train_volumes=2, val_volumes=1, slices_per_volume=2, seed=1, progress=False
    )
    other_cfg = cfg.replace(data_root=str(other))
    assert main(_cli(other_cfg, epochs=2)) == 1
    _one_line(capsys, "run aps was trained on 3 volumes", f"{other} holds 3 volumes", "--data", "--retrain")


def test_runs_of_older_versions_without_identity_still_work(run_copy):
    """A checkpoint and config.json without a data fingerprint (apslib 0.2.0's) are
    compared on what they record: skipped, resumed, loaded, evaluated."""
    cfg, path = run_copy
    _edit_checkpoint(path / runs.CHECKPOINT_FILE, lambda c: c.pop("data"))
    _edit_json(path / runs.CONFIG_FILE, lambda d: d.pop("data"))
    assert plan.plan_run(cfg, path, retrain=False, data=data_fingerprint(cfg.data_root)) == "skip"
    assert isinstance(runs.load_model(path), torch.nn.Module)
    assert ev.load_runs(path.parent, ["APS"])["APS"].finished
    resumed = train(cfg.replace(epochs=2), progress=False)
    assert not resumed.skipped and len(resumed.history) == 2
    assert runs.read_checkpoint(path)["data"] == data_fingerprint(cfg.data_root)  # recorded from now on

"""Training layer: protocol defaults, model names, exact resume, NaN stop, run-folder rules,
shift augmentation, the generated CLI and its one-line errors, and a 2-process gloo DDP run
(all on a tiny embedded dataset). Run folders themselves: tests/test_runs.py."""

import dataclasses
import errno
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from apslib import metrics, shifts
from apslib.device import resolve_device
from apslib.names import PAPER_MODELS, parse_model_name, slugify
from apslib.training import loop, runs, steps
from apslib.training.__main__ import main
from apslib.training.config import TrainConfig, cli_flag, cli_parser, config_for, parse_cli
from apslib.training.errors import NonFiniteLossError, RunConflictError, RunFolderError, TrainingInterrupted
from apslib.training.folder import LOCK_FILE
from apslib.training.loop import train
from apslib.unet import PAPER_CHANNELS, UNet, UNetConfig

TINY = dict(depth=2, channels=(4, 8, 16), batch_size=2, epochs=1, device="cpu")
TINY_NET = ["--depth", "2", "--channels", "4", "8", "16"]  # TINY's network as CLI flags


def tiny(tiny_data, run_dir, name="APS", **kw):
    return config_for(name, data_root=tiny_data, run_dir=run_dir, **{**TINY, **kw})


def test_defaults_are_the_papers_protocol():
    c = TrainConfig()
    assert (c.lr, c.lr_step, c.lr_gamma, c.loss) == (1e-3, 5, 0.5, "mse")
    assert (c.grad_clip, c.batch_size, c.epochs) == (1.0, 16, 50)
    assert (c.max_shift, c.shift_augment, c.seed, c.device, c.amp) == (16, False, 0, "auto", False)
    assert (c.depth, c.criterion, c.up_blur_gain) == (4, "l2", 1.0)
    # the values that depend on others are filled in by resolve()
    assert (c.channels, c.padding_mode, c.up_pad, c.clamp, c.activation, c.norm) == (None,) * 6
    r = c.resolve()
    assert (r.channels, r.padding_mode, r.up_pad) == (PAPER_CHANNELS, "circular", "bottom_right")
    assert (r.clamp, r.activation, r.norm) == (6.0, "relu", "batch")  # the paper's output clamp
    assert TrainConfig(depth=2).resolve().channels == (64, 128, 256)
    with pytest.raises(ValueError, match="channels"):
        TrainConfig(depth=2, channels=(4, 8))
    with pytest.raises(ValueError, match=r"^channels needs .* got '4, 8, 16'$"):  # not int(",")'s message
        TrainConfig(depth=2, channels="4, 8, 16")
    assert TrainConfig(depth=2, channels=[4, 8, 16]).channels == (4, 8, 16)
    with pytest.raises(ValueError, match="loss"):
        TrainConfig(loss="huber")


@pytest.mark.parametrize(
    "model, padding, up_pad",
    [
        ("Baseline", "circular", "top_left"),
        ("LPF-3", "circular", "top_left"),  # the authors' LPF decoder: transposed conv, then blur
        ("APS-2", "circular", "bottom_right"),
        ("fastMRI U-Net", "zeros", "top_left"),  # fastMRI's own U-Net pads zeros
        ("fastMRI U-Net APS", "circular", "top_left"),
    ],
)
def test_resolve_fills_in_what_depends_on_other_fields(model, padding, up_pad):
    c = config_for(model, depth=2, channels=None)
    r = c.resolve()
    assert (r.channels, r.padding_mode, r.up_pad) == ((64, 128, 256), padding, up_pad)
    assert (c.channels, c.padding_mode, c.up_pad) == (None, None, None)  # a copy; c is unchanged
    assert r.resolve() == r and r != c
    assert c.unet_config() == r.unet_config() == UNetConfig.from_dict(r.unet_config().to_dict())
    assert (
        c.unet_config()
        == UNetConfig(
            variant=r.variant,
            filter_size=r.filter_size,
            depth=2,
            channels=(64, 128, 256),
            architecture=r.architecture,
            padding_mode=padding,
            up_pad=up_pad,
        ).resolve()
    )
    assert c.identity() == r.identity()  # a run is the same run, resolved or not
    assert c.display_name == r.display_name


def test_resolve_keeps_explicit_values():
    c = config_for("Baseline", depth=2, channels=[4, 8, 16], padding_mode="reflect", up_pad="top_left")
    r = c.resolve()
    assert (r.channels, r.padding_mode, r.up_pad) == ((4, 8, 16), "reflect", "top_left")
    assert r == c.replace(clamp=6.0, activation="relu", norm="batch")  # only the unset ones filled
    assert config_for("APS", clamp=0).resolve().clamp == 0.0
    assert config_for("AF", clamp=3).resolve().clamp == 3.0
    assert config_for("LPF-2", up_pad="bottom_right").resolve().up_pad == "bottom_right"
    assert config_for("APS", up_pad="top_left").resolve().up_pad == "top_left"
    with pytest.raises(ValueError, match="up_pad"):
        TrainConfig(up_pad="left")


def test_paper_model_names():
    expect = {
        "Baseline": ("baseline", 1, False),
        "LPF-3": ("lpf", 3, False),
        "Baseline + DA": ("baseline", 1, True),
        "APS": ("aps", 1, False),
        "APS-3": ("aps", 3, False),
        "LPF-2": ("lpf", 2, False),
        "APS-2": ("aps", 2, False),
    }
    assert set(PAPER_MODELS) <= set(expect)
    for name, (variant, j, da) in expect.items():
        c = config_for(name)
        assert (c.variant, c.filter_size, c.shift_augment) == (variant, j, da)
        assert c.display_name == name
        assert parse_model_name(c.slug) == parse_model_name(name)
        assert parse_model_name(name.lower()) == parse_model_name(name)
    assert slugify("Baseline + DA") == "baseline-da"
    assert config_for("APS-2 + DA").slug == "aps-2-da"
    assert TrainConfig(variant="lpf", filter_size=3).display_name == "LPF-3"
    for bad in ("Baseline-3", "LPF", "ResNet", ""):
        with pytest.raises(ValueError):
            parse_model_name(bad)
    with pytest.raises(ValueError, match="model name"):
        config_for("APS", variant="baseline")


def test_shift_augmentation_range_and_same_shift_on_input_and_target():
    g = torch.Generator().manual_seed(0)
    k = shifts.random_shifts(20000, 16, g)
    assert k.shape == (20000, 2)
    for axis in (0, 1):
        assert k[:, axis].min() == -16 and k[:, axis].max() == 15
    x = torch.randn(5, 1, 12, 10, generator=g)
    y = 3 * x + 1
    xs, ys, k = steps.augment_batch(x, y, 4, torch.Generator().manual_seed(1))
    assert k.abs().max() <= 4 and not torch.equal(xs, x)
    torch.testing.assert_close(ys, 3 * xs + 1, rtol=0, atol=0)
    for i, (dy, dx) in enumerate(k.tolist()):
        assert torch.equal(xs[i], torch.roll(x[i], (dy, dx), dims=(-2, -1)))


def test_training_applies_augmentation_only_with_da(tiny_data, tmp_path, monkeypatch):
    seen = []
    original = steps.augment_batch

    def spy(x, y, max_shift, generator=None, subpixel=False):
        xs, ys, k = original(x, y, max_shift, generator, subpixel=subpixel)
        seen.append((x, y, xs, ys, k, max_shift, subpixel))
        return xs, ys, k

    monkeypatch.setattr(loop, "augment_batch", spy)
    train(tiny(tiny_data, tmp_path, "Baseline"), progress=False)
    assert not seen
    train(tiny(tiny_data, tmp_path, "Baseline + DA", max_shift=5), progress=False)
    assert len(seen) == 2  # 4 training slices, batch 2
    for x, y, xs, ys, k, m, sub in seen:
        assert m == 5 and k.min() >= -5 and k.max() <= 4 and not sub
        assert torch.equal(xs, shifts.shift_each(x, k))
        assert torch.equal(ys, shifts.shift_each(y, k))
    seen.clear()
    train(tiny(tiny_data, tmp_path, "Baseline + SDA", max_shift=5), progress=False)
    assert len(seen) == 2 and all(m == 0 and sub for *_, m, sub in seen)  # sub-pixel only


def _states_equal(a, b, path=""):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _states_equal(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (u, v) in enumerate(zip(a, b)):
            _states_equal(u, v, f"{path}/{i}")
    else:
        assert a == b, path


def test_interrupted_then_resumed_run_equals_uninterrupted(tiny_data, tmp_path):
    kw = dict(epochs=3, lr_step=1)
    whole = train(tiny(tiny_data, tmp_path / "a", "APS + DA", **kw), progress=False)
    assert [r["lr"] for r in whole.history] == [1e-3, 5e-4, 2.5e-4]  # StepLR

    def stop_after_first(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    cfg = tiny(tiny_data, tmp_path / "b", "APS + DA", **kw)
    with pytest.raises(TrainingInterrupted, match="interrupted after epoch 1; rerun") as info:
        train(cfg, progress=False, callback=stop_after_first)
    assert isinstance(info.value, KeyboardInterrupt) and info.value.epochs_completed == 1
    assert runs.read_checkpoint(cfg.run_path)["epoch"] == 1
    assert not (cfg.run_path / LOCK_FILE).exists()
    assert not json.loads((cfg.run_path / "history.json").read_text())["done"]
    resumed = train(cfg, progress=False)
    assert not resumed.skipped and resumed.done and len(resumed.history) == 3

    a = torch.load(whole.path / "checkpoint.pt", weights_only=True)
    b = torch.load(resumed.path / "checkpoint.pt", weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    _states_equal(a["optimizer"], b["optimizer"])
    _states_equal(a["scheduler"], b["scheduler"])
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(whole.history) == strip(resumed.history)
    # Same seed, same initial weights: load_model gives the trained network back.
    model = runs.load_model(whole.path)
    assert not model.training and torch.equal(model.outc.weight, a["model"]["outc.weight"])


class _NaNFromEpoch2(UNet):
    """Training forwards return NaN from the third on (2 steps per epoch here)."""

    calls = 0

    def forward(self, x, return_phases=False):
        out = super().forward(x)
        if self.training:
            type(self).calls += 1
            if type(self).calls > 2:
                out = out * float("nan")
        return out


def test_nan_loss_stops_with_clear_error_and_keeps_last_checkpoint(tiny_data, tmp_path, monkeypatch):
    _NaNFromEpoch2.calls = 0

    def build(config):
        torch.manual_seed(config.seed)
        return _NaNFromEpoch2(config.unet_config())

    monkeypatch.setattr(loop, "build_model", build)
    cfg = tiny(tiny_data, tmp_path, "Baseline", epochs=3)
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 1.*learning rate") as info:
        train(cfg, progress=False)
    assert isinstance(info.value, FloatingPointError)
    ckpt = torch.load(cfg.run_path / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    hist = json.loads((cfg.run_path / "history.json").read_text())
    assert not hist["done"] and len(hist["history"]) == 1 and "epoch 2" in hist["error"]


def test_finished_run_is_skipped_extended_or_retrained(tiny_data, tmp_path):
    cfg = tiny(tiny_data, tmp_path)
    first = train(cfg, progress=False)
    assert first.done and not first.skipped and len(first.history) == 1
    ckpt = cfg.run_path / "checkpoint.pt"
    stamp = ckpt.stat().st_mtime_ns
    again = train(cfg, progress=False)
    assert again.skipped and again.history == first.history and ckpt.stat().st_mtime_ns == stamp
    # Asking for more epochs continues the finished run; retrain starts over.
    longer = train(cfg.replace(epochs=2), progress=False)
    assert not longer.skipped and [r["epoch"] for r in longer.history] == [1, 2]
    redo = train(cfg, retrain=True, progress=False)
    assert not redo.skipped and len(redo.history) == 1
    saved = sorted(p.name for p in cfg.run_path.iterdir())
    assert saved == ["checkpoint.pt", "config.json", "history.json"]


def test_other_config_in_run_folder_is_an_error(tiny_data, tmp_path):
    cfg = tiny(tiny_data, tmp_path)
    train(cfg, progress=False)
    with pytest.raises(RunConflictError, match=r"lr: 0\.001 -> 0\.01.*retrain"):
        train(cfg.replace(lr=1e-2), progress=False)
    redo = train(cfg.replace(lr=1e-2), retrain=True, progress=False)
    assert not redo.skipped
    assert json.loads((cfg.run_path / "config.json").read_text())["config"]["lr"] == 1e-2


@pytest.mark.parametrize("depth, match", [(5, "too small"), (6, "not divisible")])
def test_size_check_before_training(tiny_data, tmp_path, depth, match):
    cfg = config_for(
        "APS",
        data_root=tiny_data,
        run_dir=tmp_path,
        depth=depth,
        channels=[2] * (depth + 1),
        epochs=1,
        device="cpu",
    )
    with pytest.raises(ValueError, match=match):
        train(cfg, progress=False)
    assert not cfg.run_path.exists()


def test_gpu_path_options_run_on_cpu(tiny_data, tmp_path):
    """bf16 autocast and channels_last (the GPU options) also run on the CPU."""
    res = train(tiny(tiny_data, tmp_path, "APS-2", amp=True, channels_last=True), progress=False)
    rec = res.final
    assert all(math.isfinite(rec[k]) for k in ("train_loss", "val_loss", "val_psnr"))
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cuda", "mps", "cpu")


def test_zero_filled_psnr_and_psnr(tiny_data):
    zf = steps.zero_filled_psnr(steps.val_loader(config_for("APS", data_root=tiny_data)))
    assert 5 < zf < 60
    t = torch.rand(2, 8, 8)
    assert metrics.psnr(t, t + 0.1, torch.tensor([1.0, 2.0])).tolist() == pytest.approx(
        [20.0, 20 + 20 * math.log10(2)]
    )


def test_cli(tiny_data, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and "--shift-augment" in capsys.readouterr().out
    args = [
        "--data",
        str(tiny_data),
        "--run-dir",
        str(tmp_path),
        "--variant",
        "lpf",
        "--filter-size",
        "2",
        *TINY_NET,
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--no-progress",
    ]
    assert main(args) == 0
    assert "LPF-2: done" in capsys.readouterr().out
    hist = json.loads((tmp_path / "lpf-2" / "history.json").read_text())
    assert hist["done"] and len(hist["history"]) == 1
    assert main(args) == 0
    assert "skipped" in capsys.readouterr().out
    clash = [a for a in args if a not in ("--variant", "lpf")] + ["--model", "LPF-2", "--shift-augment"]
    assert main(clash) == 1
    assert "error:" in capsys.readouterr().err
    bad = ["--data", str(tmp_path / "missing")] + args[2:]
    assert main(bad) == 1
    assert "apslib.data synth" in capsys.readouterr().err


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    return env


def test_module_entry_point_help():
    res = subprocess.run(
        [sys.executable, "-m", "apslib.training", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
    )
    assert res.returncode == 0 and "torchrun" in res.stdout


def test_ddp_two_processes_gloo(tiny_data, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--standalone",
        "-m",
        "apslib.training",
        "--data",
        str(tiny_data),
        "--run-dir",
        str(tmp_path),
        "--model",
        "APS",
        *TINY_NET,
        "--epochs",
        "1",
        "--batch-size",
        "1",
        "--device",
        "cpu",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=_env())
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    run = tmp_path / "aps"
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "config.json", "history.json"]
    hist = json.loads((run / "history.json").read_text())
    assert hist["done"] and len(hist["history"]) == 1
    rec = hist["history"][0]
    assert rec["world_size"] == 2
    assert all(math.isfinite(rec[k]) for k in ("train_loss", "val_loss", "val_equiv_mse", "val_psnr"))
    assert res.stdout.count("APS: done") == 1  # rank 0 alone reports (and writes)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["world_size"] == 2
    assert not any(k.startswith("module.") for k in ckpt["model"])


# --------------------------------------------------------------------------------------
# The CLI, generated from TrainConfig
# --------------------------------------------------------------------------------------

OLD_FLAGS = {
    "--data",
    "--run-dir",
    "--model",
    "--variant",
    "--filter-size",
    "--shift-augment",
    "--max-shift",
    "--name",
    "--depth",
    "--channels",
    "--criterion",
    "--loss",
    "--lr",
    "--epochs",
    "--batch-size",
    "--lr-step",
    "--lr-gamma",
    "--clamp",
    "--grad-clip",
    "--seed",
    "--device",
    "--amp",
    "--channels-last",
    "--sync-bn",
    "--workers",
    "--acquisition",
    "--sample-fraction",
    "--volume-fraction",
    "--threads",
    "--retrain",
    "--no-progress",
}


def test_cli_has_an_option_per_config_field_and_keeps_the_old_flags():
    actions = cli_parser()._actions
    flags = {s for a in actions for s in a.option_strings}
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    assert set(names) <= {a.dest for a in actions}
    assert {cli_flag(n) for n in names} <= flags
    assert OLD_FLAGS <= flags
    assert (cli_flag("data_root"), cli_flag("run_dir")) == ("--data", "--run-dir")


@pytest.mark.parametrize(
    "argv, api",
    [
        (["--variant", "aps"], lambda **p: TrainConfig(variant="aps", **p)),
        (
            [
                "--model",
                "LPF-3",
                *TINY_NET,
                "--lr",
                "3e-3",
                "--clamp",
                "0",
                "--amp",
                "--epochs",
                "6",
            ],
            lambda **p: config_for(
                "LPF-3", depth=2, channels=[4, 8, 16], lr=3e-3, clamp=0.0, amp=True, epochs=6, **p
            ),
        ),
        (
            [
                "--variant",
                "baseline",
                "--shift-augment",
                "--name",
                "my run",
                "--center-fractions",
                "0.08",
                "0.04",
                "--accelerations",
                "4",
                "8",
                "--sample-fraction",
                "0.5",
                "--acquisition",
                "PD",
                "--grad-clip",
                "0",
            ],
            lambda **p: TrainConfig(
                variant="baseline",
                shift_augment=True,
                name="my run",
                center_fractions=(0.08, 0.04),
                accelerations=(4, 8),
                sample_fraction=0.5,
                acquisition="PD",
                grad_clip=None,
                **p,
            ),
        ),
        (
            [
                "--model",
                "APS-2 + DA",
                "--name",
                "mine",
                "--no-amp",
                "--channels-last",
                "--sync-bn",
                "--workers",
                "2",
                "--seed",
                "3",
                "--device",
                "cpu",
                "--max-shift",
                "8",
                "--loss",
                "l1",
                "--lr-step",
                "2",
                "--lr-gamma",
                "0.1",
                "--batch-size",
                "4",
                "--volume-fraction",
                "0.5",
            ],
            lambda **p: config_for(
                "APS-2 + DA",
                name="mine",
                channels_last=True,
                sync_bn=True,
                workers=2,
                seed=3,
                device="cpu",
                max_shift=8,
                loss="l1",
                lr_step=2,
                lr_gamma=0.1,
                batch_size=4,
                volume_fraction=0.5,
                **p,
            ),
        ),
    ],
)
def test_cli_builds_the_same_config_as_the_api(argv, api):
    config, args = parse_cli(["--data", "D", "--run-dir", "R", *argv])
    assert config == api(data_root="D", run_dir="R")
    assert not args.retrain and not args.no_progress and args.threads == 0


@pytest.mark.parametrize("lr", [1e38, float("inf"), float("nan"), 0.0, -1e-3, 11.0])
def test_learning_rate_out_of_range(lr):
    with pytest.raises(ValueError, match=r"lr must be a finite number in \(0, 10\]"):
        TrainConfig(lr=lr)


def _args(tiny_data, run_dir, *extra, model="APS", epochs=1):
    return [
        "--data",
        str(tiny_data),
        "--run-dir",
        str(run_dir),
        "--model",
        model,
        *TINY_NET,
        "--epochs",
        str(epochs),
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--no-progress",
        *extra,
    ]


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def test_cli_one_line_errors(tiny_data, tmp_path, capsys):
    assert main(_args(tiny_data, tmp_path, "--lr", "1e38")) == 1
    _one_line_error(capsys, "error: lr must be a finite number in (0, 10], got 1e+38")
    a_file = tmp_path / "file"
    a_file.write_text("")
    for run_dir in (a_file, a_file / "below"):
        assert main(_args(tiny_data, run_dir)) == 1
        _one_line_error(capsys, f"error: {a_file} is a file, not a folder", "--run-dir")
    with pytest.raises(RunFolderError, match="is a file"):
        train(tiny(tiny_data, a_file), progress=False)


def _deny_writes_under(monkeypatch, folder):
    """A read-only folder, also for root (whom chmod does not stop): ``os.open`` for
    writing and ``os.mkdir`` below ``folder`` fail with EACCES, as they would for a user."""
    folder.chmod(0o555)
    root = os.path.abspath(folder)
    real_open, real_mkdir = os.open, os.mkdir

    def inside(p):
        return os.path.abspath(os.fspath(p)).startswith(root)

    def deny(p):
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(p))

    def fake_open(p, flags, *a, **k):
        if inside(p) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise deny(p)
        return real_open(p, flags, *a, **k)

    def fake_mkdir(p, *a, **k):
        if inside(p):
            raise deny(p)
        return real_mkdir(p, *a, **k)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)


def test_read_only_run_folder_is_one_line(tiny_data, tmp_path, monkeypatch, capsys):
    assert main(_args(tiny_data, tmp_path / "done")) == 0  # a finished run, then read-only
    capsys.readouterr()
    ro = tmp_path / "ro"
    ro.mkdir()
    _deny_writes_under(monkeypatch, ro)
    _deny_writes_under(monkeypatch, tmp_path / "done")
    try:
        assert main(_args(tiny_data, ro)) == 1  # a new run in a read-only run_dir
        _one_line_error(
            capsys, f"error: cannot write in the run folder {ro / 'aps'}", "Permission denied", "--run-dir"
        )
        assert main(_args(tiny_data, tmp_path / "done", epochs=2)) == 1  # resume: no lock
        _one_line_error(capsys, f"cannot write in the run folder {tmp_path / 'done' / 'aps'}")
        assert main(_args(tiny_data, tmp_path / "done")) == 0  # finished: skipped, no write
        assert "skipped" in capsys.readouterr().out
    finally:
        ro.chmod(0o755)
        (tmp_path / "done").chmod(0o755)


def test_ctrl_c_from_the_cli_keeps_the_checkpoint_and_releases_the_lock(
    tiny_data, tmp_path, monkeypatch, capsys
):
    real, calls = steps.train_step, []

    def step(*a, **k):
        calls.append(1)
        if len(calls) in stop_at:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(loop, "train_step", step)
    path = tmp_path / "aps"
    stop_at = {1}  # before the first epoch completes
    assert main(_args(tiny_data, tmp_path, epochs=2)) == 130
    _one_line_error(capsys, "APS: interrupted before the first epoch completed; nothing to resume")
    assert not (path / LOCK_FILE).exists() and not (path / runs.CHECKPOINT_FILE).exists()
    calls.clear()
    stop_at = {3}  # 2 steps per epoch: the first step of epoch 2
    assert main(_args(tiny_data, tmp_path, epochs=2)) == 130
    err = _one_line_error(capsys)
    assert err == "APS: interrupted after epoch 1; rerun the same command to resume\n"
    assert runs.read_checkpoint(path)["epoch"] == 1 and not (path / LOCK_FILE).exists()
    stop_at = set()
    assert main(_args(tiny_data, tmp_path, epochs=2)) == 0
    assert "APS: done; 2 epochs" in capsys.readouterr().out


class _Broken(UNet):
    def forward(self, x, return_phases=False):
        raise RuntimeError("boom in the first forward pass")


def test_run_failing_before_its_first_epoch_does_not_block_the_corrected_one(
    tiny_data, tmp_path, monkeypatch
):
    monkeypatch.setattr(loop, "build_model", lambda c: _Broken(c.unet_config()))
    bad = tiny(tiny_data, tmp_path, lr=5.0)
    with pytest.raises(RuntimeError, match="boom"):
        train(bad, progress=False)
    assert (bad.run_path / runs.CONFIG_FILE).exists() and not (bad.run_path / LOCK_FILE).exists()
    monkeypatch.undo()
    fixed = train(bad.replace(lr=1e-3), progress=False)  # another config, no retrain
    assert fixed.done and not fixed.skipped
    assert runs.read_run(bad.run_path)["config"].lr == 1e-3


def test_nan_in_the_first_epoch_says_nothing_to_resume(tiny_data, tmp_path, monkeypatch):
    _NaNFromEpoch2.calls = 2  # NaN from the first step on

    def build(config):
        torch.manual_seed(config.seed)
        return _NaNFromEpoch2(config.unet_config())

    monkeypatch.setattr(loop, "build_model", build)
    cfg = tiny(tiny_data, tmp_path, "Baseline", epochs=2)
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, step 1") as info:
        train(cfg, progress=False)
    msg = str(info.value)
    assert "no epoch completed; nothing to resume" in msg.lower() and "epoch 0" not in msg
    assert not (cfg.run_path / runs.CHECKPOINT_FILE).exists()
    assert "nothing to resume" in json.loads((cfg.run_path / "history.json").read_text())["error"]
    monkeypatch.undo()
    assert train(cfg.replace(lr=1e-4), progress=False).done  # the corrected run starts over


@pytest.mark.parametrize("model", ["APS", "LPF-2", "LPS", "APS-3 + DA"])
def test_cli_refuses_a_padding_that_breaks_the_models_equivariance(tiny_data, tmp_path, capsys, model):
    assert main(_args(tiny_data, tmp_path, "--padding-mode", "zeros", model=model)) == 1
    _one_line_error(capsys, "error: variant=", "pads circularly", "would not be shift-equivariant")
    assert not tmp_path.joinpath(slugify(model)).exists()  # refused before any folder is made
    config, _ = parse_cli(["--data", "D", "--run-dir", "R", "--model", "Baseline", "--padding-mode", "zeros"])
    assert config.resolve().padding_mode == "zeros"  # the Baseline is not named for equivariance

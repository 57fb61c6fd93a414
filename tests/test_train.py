"""Training layer: protocol defaults, model names, exact resume, NaN stop, run-folder rules,
shift augmentation, CLI and a 2-process gloo DDP run (all on a tiny embedded dataset)."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from apslib import data, train
from apslib.train import NonFiniteLossError, RunConflictError, TrainConfig
from apslib.unet import UNet

TINY = dict(depth=2, channels=(4, 8, 16), batch_size=2, epochs=1, device="cpu")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    data.synthesize_dataset(root, size=32, train_volumes=2, val_volumes=1, slices_per_volume=2,
                            progress=False)
    return root


def tiny(tiny_data, run_dir, name="APS", **kw):
    return train.config_for(name, data_root=tiny_data, run_dir=run_dir, **{**TINY, **kw})


def test_defaults_are_the_papers_protocol():
    c = TrainConfig()
    assert (c.lr, c.lr_step, c.lr_gamma, c.loss) == (1e-3, 5, 0.5, "mse")
    assert (c.clamp, c.grad_clip, c.batch_size, c.epochs) == (6.0, 1.0, 16, 50)
    assert (c.max_shift, c.shift_augment, c.seed, c.device, c.amp) == (16, False, 0, "auto", False)
    assert (c.depth, c.channels) == (4, (64, 128, 256, 512, 1024))
    assert (c.criterion, c.padding_mode) == ("l2", "circular")
    assert TrainConfig(depth=2).channels == (64, 128, 256)
    with pytest.raises(ValueError, match="channels"):
        TrainConfig(depth=2, channels=(4, 8))
    with pytest.raises(ValueError, match="loss"):
        TrainConfig(loss="huber")


def test_paper_model_names():
    expect = {"Baseline": ("baseline", 1, False), "LPF-3": ("lpf", 3, False),
              "Baseline + DA": ("baseline", 1, True), "APS": ("aps", 1, False),
              "APS-3": ("aps", 3, False), "LPF-2": ("lpf", 2, False), "APS-2": ("aps", 2, False)}
    assert set(train.PAPER_MODELS) <= set(expect)
    for name, (variant, j, da) in expect.items():
        c = train.config_for(name)
        assert (c.variant, c.filter_size, c.shift_augment) == (variant, j, da)
        assert c.display_name == name
        assert train.parse_model_name(c.slug) == train.parse_model_name(name)
        assert train.parse_model_name(name.lower()) == train.parse_model_name(name)
    assert train.slugify("Baseline + DA") == "baseline-da"
    assert train.config_for("APS-2 + DA").slug == "aps-2-da"
    assert TrainConfig(variant="lpf", filter_size=3).display_name == "LPF-3"
    for bad in ("Baseline-3", "LPF", "ResNet", ""):
        with pytest.raises(ValueError):
            train.parse_model_name(bad)
    with pytest.raises(ValueError, match="model name"):
        train.config_for("APS", variant="baseline")


def test_shift_augmentation_range_and_same_shift_on_input_and_target():
    g = torch.Generator().manual_seed(0)
    k = train.random_shifts(20000, 16, g)
    assert k.shape == (20000, 2)
    for axis in (0, 1):
        assert k[:, axis].min() == -16 and k[:, axis].max() == 15
    x = torch.randn(5, 1, 12, 10, generator=g)
    y = 3 * x + 1
    xs, ys, shifts = train.augment_batch(x, y, 4, torch.Generator().manual_seed(1))
    assert shifts.abs().max() <= 4 and not torch.equal(xs, x)
    torch.testing.assert_close(ys, 3 * xs + 1, rtol=0, atol=0)
    for i, (dy, dx) in enumerate(shifts.tolist()):
        assert torch.equal(xs[i], torch.roll(x[i], (dy, dx), dims=(-2, -1)))


def test_training_applies_augmentation_only_with_da(tiny_data, tmp_path, monkeypatch):
    seen = []
    original = train.augment_batch

    def spy(x, y, max_shift, generator=None):
        xs, ys, shifts = original(x, y, max_shift, generator)
        seen.append((x, y, xs, ys, shifts, max_shift))
        return xs, ys, shifts

    monkeypatch.setattr(train, "augment_batch", spy)
    train.train(tiny(tiny_data, tmp_path, "Baseline"), progress=False)
    assert not seen
    train.train(tiny(tiny_data, tmp_path, "Baseline + DA", max_shift=5), progress=False)
    assert len(seen) == 2  # 4 training slices, batch 2
    for x, y, xs, ys, shifts, m in seen:
        assert m == 5 and shifts.min() >= -5 and shifts.max() <= 4
        assert torch.equal(xs, train.shift_images(x, shifts))
        assert torch.equal(ys, train.shift_images(y, shifts))


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
    whole = train.train(tiny(tiny_data, tmp_path / "a", "APS + DA", **kw), progress=False)
    assert [r["lr"] for r in whole.history] == [1e-3, 5e-4, 2.5e-4]  # StepLR

    def stop_after_first(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    cfg = tiny(tiny_data, tmp_path / "b", "APS + DA", **kw)
    with pytest.raises(KeyboardInterrupt):
        train.train(cfg, progress=False, callback=stop_after_first)
    assert torch.load(cfg.run_path / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert not json.loads((cfg.run_path / "history.json").read_text())["done"]
    resumed = train.train(cfg, progress=False)
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
    model = train.load_model(whole.path)
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

    monkeypatch.setattr(train, "build_model", build)
    cfg = tiny(tiny_data, tmp_path, "Baseline", epochs=3)
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 1.*learning rate") as info:
        train.train(cfg, progress=False)
    assert isinstance(info.value, FloatingPointError)
    ckpt = torch.load(cfg.run_path / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    hist = json.loads((cfg.run_path / "history.json").read_text())
    assert not hist["done"] and len(hist["history"]) == 1 and "epoch 2" in hist["error"]


def test_finished_run_is_skipped_extended_or_retrained(tiny_data, tmp_path):
    cfg = tiny(tiny_data, tmp_path)
    first = train.train(cfg, progress=False)
    assert first.done and not first.skipped and len(first.history) == 1
    ckpt = cfg.run_path / "checkpoint.pt"
    stamp = ckpt.stat().st_mtime_ns
    again = train.train(cfg, progress=False)
    assert again.skipped and again.history == first.history and ckpt.stat().st_mtime_ns == stamp
    # Asking for more epochs continues the finished run; retrain starts over.
    longer = train.train(cfg.replace(epochs=2), progress=False)
    assert not longer.skipped and [r["epoch"] for r in longer.history] == [1, 2]
    redo = train.train(cfg, retrain=True, progress=False)
    assert not redo.skipped and len(redo.history) == 1
    saved = sorted(p.name for p in cfg.run_path.iterdir())
    assert saved == ["checkpoint.pt", "config.json", "history.json"]


def test_other_config_in_run_folder_is_an_error(tiny_data, tmp_path):
    cfg = tiny(tiny_data, tmp_path)
    train.train(cfg, progress=False)
    with pytest.raises(RunConflictError, match=r"lr: 0\.001 -> 0\.01.*retrain"):
        train.train(cfg.replace(lr=1e-2), progress=False)
    redo = train.train(cfg.replace(lr=1e-2), retrain=True, progress=False)
    assert not redo.skipped
    assert json.loads((cfg.run_path / "config.json").read_text())["config"]["lr"] == 1e-2


@pytest.mark.parametrize("depth, match", [(5, "too small"), (6, "not divisible")])
def test_size_check_before_training(tiny_data, tmp_path, depth, match):
    cfg = train.config_for("APS", data_root=tiny_data, run_dir=tmp_path, depth=depth,
                           channels=[2] * (depth + 1), epochs=1, device="cpu")
    with pytest.raises(ValueError, match=match):
        train.train(cfg, progress=False)
    assert not cfg.run_path.exists()


def test_gpu_path_options_run_on_cpu(tiny_data, tmp_path):
    """bf16 autocast and channels_last (the GPU options) also run on the CPU."""
    res = train.train(tiny(tiny_data, tmp_path, "APS-2", amp=True, channels_last=True),
                      progress=False)
    rec = res.final
    assert all(math.isfinite(rec[k]) for k in ("train_loss", "val_loss", "val_psnr"))
    assert train.resolve_device("cpu").type == "cpu"
    assert train.resolve_device("auto").type in ("cuda", "mps", "cpu")


def test_zero_filled_psnr_and_psnr(tiny_data):
    zf = train.zero_filled_psnr(train.val_loader(train.config_for("APS", data_root=tiny_data)))
    assert 5 < zf < 60
    t = torch.rand(2, 8, 8)
    assert train.psnr(t, t + 0.1, torch.tensor([1.0, 2.0])).tolist() == pytest.approx(
        [20.0, 20 + 20 * math.log10(2)])


def test_cli(tiny_data, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--help"])
    assert exit_info.value.code == 0 and "--shift-augment" in capsys.readouterr().out
    args = ["--data", str(tiny_data), "--run-dir", str(tmp_path), "--variant", "lpf",
            "--filter-size", "2", "--depth", "2", "--channels", "4", "8", "16", "--epochs", "1",
            "--batch-size", "2", "--device", "cpu", "--no-progress"]
    assert train.main(args) == 0
    assert "LPF-2: done" in capsys.readouterr().out
    hist = json.loads((tmp_path / "lpf-2" / "history.json").read_text())
    assert hist["done"] and len(hist["history"]) == 1
    assert train.main(args) == 0
    assert "skipped" in capsys.readouterr().out
    clash = [a for a in args if a not in ("--variant", "lpf")] + ["--model", "LPF-2", "--shift-augment"]
    assert train.main(clash) == 1
    assert "error:" in capsys.readouterr().err
    bad = ["--data", str(tmp_path / "missing")] + args[2:]
    assert train.main(bad) == 1
    assert "apslib.data synth" in capsys.readouterr().err


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    return env


def test_module_entry_point_help():
    res = subprocess.run([sys.executable, "-m", "apslib.train", "--help"], capture_output=True,
                         text=True, timeout=120, env=_env())
    assert res.returncode == 0 and "torchrun" in res.stdout


def test_ddp_two_processes_gloo(tiny_data, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           "-m", "apslib.train", "--data", str(tiny_data), "--run-dir", str(tmp_path),
           "--model", "APS", "--depth", "2", "--channels", "4", "8", "16", "--epochs", "1",
           "--batch-size", "1", "--device", "cpu"]
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


@pytest.mark.parametrize("low,high", [(0.063, 0.17), (0.0525, 0.185), (1.30, 1.31), (2e-3, 5e-3)])
def test_training_curves_label_short_log_axes_and_floor_zeros(low, high):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from apslib import plots

    plots.set_style()
    vals = [high, (high + low) / 2, low * 1.01, low]
    frame = pd.DataFrame({"model": ["APS"] * 4, "epoch": [1, 2, 3, 4], "train_loss": vals,
                          "val_loss": vals, "val_equiv_mse": [0.0] * 4})
    fig = train.plot_curves(frame)
    loss_ax, eq_ax = fig.axes[0], fig.axes[2]
    fig.canvas.draw()
    lo, hi = loss_ax.get_ylim()
    shown = [t.get_text() for t in loss_ax.yaxis.get_majorticklabels() + loss_ax.yaxis.get_minorticklabels()
             if t.get_text() and lo <= t.get_position()[1] <= hi]
    # an axis spanning under a decade is labelled with at least three plain numbers
    # (matplotlib's default gives one or two labels such as "6x10^-2" for these ranges)
    assert len(shown) >= 3 and all(float(t) > 0 for t in shown), shown
    assert "exact 0 drawn" in eq_ax.get_title()
    assert eq_ax.lines[0].get_ydata().min() == 1e-16
    plt.close(fig)

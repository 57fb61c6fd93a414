"""fastMRI's U-Net as a model of the training stack: ``architecture="fastmri"``, the
``"fastMRI U-Net"`` names, building and loading runs, and fine-tuning from another run's
weights (``init_from``): what notebook 07 stands on."""

from __future__ import annotations

import pytest
import torch
from fastmri.models import Unet

from apslib import evaluate as ev
from apslib import training
from apslib.convert import EquivariantFastMRIUnet, aps_unet_from_fastmri
from apslib.evaluate.conversion import stage_names
from apslib.layers import forced_phase
from apslib.models import unet_from_config
from apslib.shifts import roll2d
from apslib.training.config import TrainConfig, config_for, parse_cli
from apslib.training.steps import build_model, init_weights
from apslib.unet import UNet, UNetConfig

TINY = dict(depth=2, channels=(4, 8, 16), batch_size=2, epochs=1, device="cpu")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def fastmri_config(variant="baseline", **kw) -> UNetConfig:
    return UNetConfig(variant=variant, depth=2, channels=(4, 8, 16), architecture="fastmri", **kw)


# --- the configuration -----------------------------------------------------------------


def test_the_architecture_sets_its_own_padding_and_decoder_form():
    base = fastmri_config().resolve()
    assert (base.padding_mode, base.up_pad) == ("zeros", "top_left")
    assert fastmri_config("aps").resolve().padding_mode == "circular"
    assert fastmri_config(padding_mode="circular").resolve().padding_mode == "circular"
    own = UNetConfig(variant="aps", depth=2, channels=(4, 8, 16)).resolve()
    assert (own.padding_mode, own.up_pad, own.architecture) == ("circular", "bottom_right", "apslib")
    assert unet_from_config(fastmri_config()).config == base  # models keep the resolved config
    assert fastmri_config("aps", filter_size=3).name == "fastMRI U-Net APS-3"


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(channels=(4, 8, 12)), r"doubles its width.*\[4, 8, 16\]"),
        (dict(variant="aps", padding_mode="zeros"), "pads circularly"),
        (dict(up_pad="bottom_right"), "transposed conv"),
        (dict(up_blur_gain=4.0), "transposed conv"),
        (dict(architecture="keras"), "unknown architecture"),
    ],
)
def test_bad_fastmri_configurations_say_what_to_do(kw, match):
    args = dict(variant="baseline", depth=2, channels=(4, 8, 16), architecture="fastmri") | kw
    with pytest.raises(ValueError, match=match):
        UNetConfig(**args)


def test_names_set_the_architecture_and_the_cli_takes_them(tmp_path):
    c = config_for("fastMRI U-Net", data_root=tmp_path, run_dir=tmp_path, **TINY)
    r = c.resolve()
    assert (r.architecture, r.variant, r.padding_mode, r.up_pad) == (
        "fastmri",
        "baseline",
        "zeros",
        "top_left",
    )
    assert c.run_path.name == "fastmri-u-net" and c.replace(seed=2).run_path.name == "fastmri-u-net-seed2"
    assert config_for("APS", **TINY).resolve().padding_mode == "circular"  # apslib's defaults unchanged
    assert TrainConfig.from_dict(c.to_dict()) == c and TrainConfig.from_dict(r.to_dict()) == r
    like = r.like("fastMRI U-Net APS-3").resolve()
    assert (like.architecture, like.variant, like.filter_size, like.padding_mode) == (
        "fastmri",
        "aps",
        3,
        "circular",
    )
    assert c.like("APS").architecture == "apslib"
    base = ["--data", str(tmp_path), "--run-dir", str(tmp_path), "--depth", "2", "--channels", "4", "8", "16"]
    cli, _ = parse_cli([*base, "--model", "fastMRI U-Net APS"])
    assert cli == config_for(
        "fastMRI U-Net APS", data_root=tmp_path, run_dir=tmp_path, depth=2, channels=(4, 8, 16)
    )
    cli, _ = parse_cli([*base, "--variant", "aps", "--architecture", "fastmri"])
    assert cli.display_name == "fastMRI U-Net APS"
    cli, _ = parse_cli(
        [*base, "--model", "fastMRI U-Net APS", "--init-from", "runs/fastmri-u-net", "--name", "x"]
    )
    assert (cli.init_from, cli.name, cli.architecture) == ("runs/fastmri-u-net", "x", "fastmri")
    with pytest.raises(ValueError, match="--architecture"):
        parse_cli([*base, "--model", "fastMRI U-Net", "--architecture", "fastmri"])


# --- the model -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_the_baseline_is_fastmris_own_unet(seed):
    torch.manual_seed(seed)
    theirs = Unet(1, 1, chans=4, num_pool_layers=2).double().eval()
    ours = unet_from_config(fastmri_config()).double().eval()
    assert isinstance(ours, EquivariantFastMRIUnet) and list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(3, 1, 32, 24, dtype=torch.float64)
    assert torch.equal(ours(x), theirs(x))  # the same function, to the bit
    out, phases = ours(x, return_phases=True)
    assert phases == [None, None] and torch.equal(out, theirs(x))


def test_circular_baseline_is_the_aps_model_on_grid_zero():
    torch.manual_seed(0)
    circ = unet_from_config(fastmri_config(padding_mode="circular")).double().eval()
    aps = aps_unet_from_fastmri(circ).eval()
    x = torch.randn(2, 1, 32, 32, dtype=torch.float64)
    with forced_phase(aps, 0):
        assert torch.allclose(aps(x), circ(x), rtol=0, atol=1e-12)
    assert aps.config == fastmri_config("aps").resolve() and not torch.allclose(
        aps(roll2d(x, (1, 3))), circ(roll2d(x, (1, 3)))
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", ["fastMRI U-Net APS", "fastMRI U-Net APS-3"])
def test_built_aps_models_are_exactly_equivariant(name, seed):
    model = build_model(config_for(name, **TINY, seed=seed)).double().eval()
    x = torch.randn(2, 1, 32, 32, dtype=torch.float64)
    y = model(x)
    for k in [(1, 0), (0, 3), (5, 7), (-9, 2), (16, 16)]:
        assert torch.allclose(model(roll2d(x, k)), roll2d(y, k), rtol=0, atol=1e-10), k
    assert isinstance(build_model(config_for("APS", **TINY)), UNet)


# --- runs: train, load, evaluate, fine-tune ----------------------------------------------


@pytest.fixture(scope="module")
def study(tiny_data, tmp_path_factory):
    """Notebook 07's three trained runs on the tiny data: the source, its conversion
    fine-tuned from its weights, and the APS model from scratch."""
    common = dict(data_root=tiny_data, run_dir=tmp_path_factory.mktemp("runs"), **TINY)
    source = config_for("fastMRI U-Net", **common).replace(epochs=2, lr_step=1, lr=2e-3)
    tuned, scratch = ev.finetune_config(source, 1), ev.scratch_config(source)
    for cfg in (source, tuned, scratch):
        training.train(cfg, progress=False)
    return source, tuned, scratch


def test_train_load_and_fine_tune_fastmris_unet(study):
    source, tuned_cfg, scratch_cfg = study
    model = training.load_model(source.run_path)
    assert isinstance(model, EquivariantFastMRIUnet) and model.config.padding_mode == "zeros"
    assert not model.training
    # the fine-tuned run starts from the source's weights, converted, at the source's last lr
    assert (tuned_cfg.display_name, tuned_cfg.variant, tuned_cfg.init_from) == (
        "fastMRI U-Net → APS, fine-tuned",
        "aps",
        str(source.run_path),
    )
    assert tuned_cfg.lr == pytest.approx(1e-3) and tuned_cfg.run_path.name == "fastmri-u-net-aps-fine-tuned"
    start = build_model(tuned_cfg)
    for key, value in model.state_dict().items():
        assert torch.equal(start.state_dict()[key], value), key
    assert training.read_run(tuned_cfg.run_path)["config"].init_from == str(source.run_path)
    assert (scratch_cfg.display_name, scratch_cfg.epochs, scratch_cfg.init_from) == (
        "fastMRI U-Net APS",
        2,
        None,
    )

    loaded = ev.load_runs(source.run_dir, ["fastMRI U-Net", "fastMRI U-Net → APS, fine-tuned"])
    assert loaded["fastMRI U-Net → APS, fine-tuned"].is_adaptive and not loaded["fastMRI U-Net"].is_adaptive
    val = ev.load_val(source.data_root)
    out, phases = ev.predict(loaded["fastMRI U-Net → APS, fine-tuned"], val.image, return_phases=True)
    assert out.shape == val.image.shape and len(phases) == 2 and phases[0].shape == (len(val),)
    margin = ev.smallest_phase_margin(loaded["fastMRI U-Net → APS, fine-tuned"], val.image)
    assert torch.isfinite(margin).all() and (margin > 0).all()  # the converted pools are seen


def test_the_conversion_study_table_and_figures(study, tmp_path):
    source = study[0]
    res = ev.evaluate_conversion(source.run_dir, source.data_root, tmp_path, sweep_slices=2, device="cpu")
    names = list(stage_names().values())
    assert set(res.table.model) == {*names, "Zero-filled"} and res.paths["table"].name == "conversion.csv"
    t = ev.conversion_table(res.table, names)
    assert list(t.index) == [*names, "Zero-filled"]
    assert t.loc["Zero-filled", ["eq NMSE", "flips"]].isna().all()  # a reference row, not a model
    aps = [stage_names()[k] for k in ("converted", "fine-tuned", "from scratch")]
    fixed = [stage_names()[k] for k in ("trained", "circular")]
    assert (t.loc[aps, "eq NMSE"] == 0).all() and (t.loc[aps, "eq NMSE max (every shift)"] == 0).all()
    assert (t.loc[aps, "flips"] == 0).all() and t.loc[fixed, "flips"].isna().all()
    assert (t.loc[fixed, "eq NMSE"] > 1e-6).all()
    assert t["PSNR dB"].between(5, 80).all()
    # the conversion changes the function (padding, then grids), the weights are the same
    assert t.loc[names[0], "PSNR dB"] != t.loc[names[2], "PSNR dB"]
    sd = ev.conversion_table(res.table, names, value="sd")
    assert sd["PSNR dB"].isna().all()  # one seed: no spread

    import matplotlib

    matplotlib.use("Agg")
    from apslib import plots

    fig = plots.plot_conversion(t.loc[names], sd)
    assert [ax.get_yscale() for ax in fig.axes] == ["linear", "log"]
    fig = plots.plot_stage_differences(res.examples["val"])
    assert len(fig.axes) == 3 * len(names) + 1  # a colour bar
    with pytest.raises(ValueError, match="not a trained 'fastMRI U-Net' run"):
        ev.converted_runs(ev.load_runs(source.run_dir, ["fastMRI U-Net APS"])["fastMRI U-Net APS"])


def test_init_from_a_model_that_does_not_fit_is_a_clear_error(tiny_data, tmp_path):
    common = dict(data_root=tiny_data, run_dir=tmp_path / "runs", **TINY)
    source = training.train(config_for("Baseline", **common), progress=False)
    with pytest.raises(ValueError, match=r"init_from .* do not fit .*same architecture"):
        build_model(config_for("fastMRI U-Net APS", init_from=source.path, **common))
    with pytest.raises(FileNotFoundError, match="train the model first"):
        init_weights(build_model(config_for("APS", **common)), tmp_path / "nowhere")

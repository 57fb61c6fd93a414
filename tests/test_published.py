"""fastMRI's published U-Net layout: a state-dict file checked key by key, made a run folder
(``python -m apslib.published``), loaded by the training stack, converted to APS.

The exact published layout (chans=256, 4 pools: 496M weights, 1.9 GB in float32) is
tested once, on random weights, with 32x48 inputs; everything else on small layouts."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from fastmri.models import Unet

from apslib import evaluate as ev
from apslib.convert import (
    PUBLISHED_UNET,
    EquivariantFastMRIUnet,
    StateDictError,
    aps_unet_from_fastmri,
    load_fastmri_unet,
    read_fastmri_state_dict,
)
from apslib.published import import_fastmri_unet, main
from apslib.reconstruct import reconstruct_split
from apslib.shifts import roll2d
from apslib.training import load_model, read_run

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SMALL = {"chans": 2, "num_pool_layers": 2}  # fastmri.models.Unet(1, 1, 2, 2): 32x32 data works
SMALL_FLAGS = ["--chans", "2", "--num-pool-layers", "2"]


def random_state_dict(layout: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights of ``fastmri.models.Unet(**layout)`` (uniform, +-1/sqrt(fan-in), as
    torch's default initialisation), without building the model."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in Unet(**layout).state_dict().items()}
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in shapes.items():
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shapes[key.replace("bias", "weight")][1]
        out[key] = torch.empty(shape).uniform_(-(fan_in**-0.5), fan_in**-0.5, generator=g)
    return out


def reference_unet(state_dict: dict, layout: dict) -> Unet:
    """fastmri's own Unet with ``state_dict`` (tensors shared, not copied)."""
    with torch.device("meta"):
        model = Unet(**layout)
    model.load_state_dict(state_dict, assign=True)
    return model.eval()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A state-dict file of fastmri.models.Unet(1, 1, 2, 2) and its weights."""
    folder = tmp_path_factory.mktemp("small")
    sd = random_state_dict({**PUBLISHED_UNET, **SMALL}, seed=1)
    torch.save(sd, folder / "small.pt")
    return folder / "small.pt", sd


def test_the_published_layout_imports_loads_and_converts(tmp_path):
    layout = dict(PUBLISHED_UNET)
    assert layout == {"in_chans": 1, "out_chans": 1, "chans": 256, "num_pool_layers": 4, "drop_prob": 0.0}
    sd = random_state_dict(layout)
    assert sum(v.numel() for v in sd.values()) == 496_372_225
    file = tmp_path / "knee_sc_leaderboard_state_dict.pt"
    torch.save(sd, file)
    results = import_fastmri_unet(file, tmp_path / "runs", to=("fastmri", "aps"))
    assert [(r.name, r.path.name, r.skipped) for r in results] == [
        ("fastMRI U-Net", "fastmri-u-net", False),
        ("fastMRI U-Net → APS", "fastmri-u-net-aps", False),
    ]
    run = read_run(results[0].path)
    assert run["history"] == [] and run["done"] and run["config"].clamp == 0.0
    imported = json.loads((results[0].path / "config.json").read_text())["imported"]
    assert imported["layout"] == layout and len(imported["sha256"]) == 64

    x = torch.randn(1, 1, 32, 48, generator=torch.Generator().manual_seed(0))
    ref = reference_unet(sd, layout)
    with torch.no_grad():
        expected = ref(x)
        model = load_model(results[0].path)
        assert isinstance(model, EquivariantFastMRIUnet) and model.variant == "baseline"
        torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))
        del model
        aps = load_model(results[1].path)
        assert aps.variant == "aps" and not aps.training
        assert all(torch.equal(v, sd[k]) for k, v in aps.state_dict().items())
        shifts = [(1, 0), (3, 5), (-7, 2)]  # none a multiple of 2**4
        y = aps(x)
        ys = aps(torch.cat([roll2d(x, k) for k in shifts]))
    errors = [float((yk - roll2d(y, k)).abs().max() / y.abs().max()) for k, yk in zip(shifts, ys.split(1))]
    assert max(errors) < 1e-5, errors
    # the original is not: the test above can fail
    with torch.no_grad():
        yr = ref(roll2d(x, shifts[0]))
    assert float((yr - roll2d(expected, shifts[0])).abs().max() / expected.abs().max()) > 1e-3


def test_a_lightning_checkpoint_and_a_dataparallel_one_give_the_same_weights(small, tmp_path):
    file, sd = small
    lightning = {"state_dict": {f"unet.{k}": v for k, v in sd.items()}, "epoch": 49, "global_step": 7}
    torch.save(lightning, tmp_path / "lightning.ckpt")
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "dp.pt")
    for f in (file, tmp_path / "lightning.ckpt", tmp_path / "dp.pt"):
        got = read_fastmri_state_dict(f, SMALL)
        assert list(got) == list(sd) and all(torch.equal(got[k], sd[k]) for k in sd)
    # hyper-parameters pickled as Python objects: refused unless trusted
    lightning["hyper_parameters"] = argparse.Namespace(chans=2)
    torch.save(lightning, tmp_path / "objects.ckpt")
    objects = r"pickles the Python object argparse\.Namespace.*--trust-pickle"
    with pytest.raises(StateDictError, match=objects):
        read_fastmri_state_dict(tmp_path / "objects.ckpt", SMALL)
    assert len(read_fastmri_state_dict(tmp_path / "objects.ckpt", SMALL, trust_pickle=True)) == len(sd)


def test_a_small_layout_runs_like_fastmris_own_unet(small, tiny_data, tmp_path):
    """Import, reconstruct: fastMRI's inference (no output clamp), slice by slice."""
    file, sd = small
    (result,) = import_fastmri_unet(file, tmp_path / "runs", layout=SMALL)
    assert reconstruct_split(result.path, tiny_data, "val", tmp_path / "out", progress=False).written
    ref = reference_unet(sd, {**PUBLISHED_UNET, **SMALL})
    val = ev.load_val(tiny_data)
    with torch.no_grad():
        expected = val.denorm(ref(val.image)).float().numpy()[:, 0]
    import h5py

    with h5py.File(tmp_path / "out" / val.volumes[0], "r") as hf:
        np.testing.assert_allclose(hf["reconstruction"][()], expected, rtol=1e-5, atol=1e-9)
    # load_fastmri_unet builds the same models directly
    x = val.image[:1]
    with torch.no_grad():
        torch.testing.assert_close(load_fastmri_unet(file, SMALL)(x), ref(x))
        torch.testing.assert_close(
            load_fastmri_unet(sd, SMALL, variant="aps")(x), aps_unet_from_fastmri(ref)(x)
        )


def _error(capsys, *phrases) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for p in phrases:
        assert p in err, err
    return err


def test_files_that_are_not_the_layout_are_one_line_errors(small, tmp_path, capsys):
    file, sd = small
    runs = str(tmp_path / "runs")

    def call(path, *extra):
        return main(["--state-dict", str(path), "--run-dir", runs, *extra])

    assert call(tmp_path / "missing.pt") == 1
    _error(capsys, "no such file")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    assert call(tmp_path / "text.pt") == 1
    _error(capsys, "not a readable PyTorch state dict")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    assert call(tmp_path / "tensor.pt") == 1
    _error(capsys, "holds a Tensor, not a state dict")
    torch.save(reference_unet(sd, {**PUBLISHED_UNET, **SMALL}), tmp_path / "model.pt")
    assert call(tmp_path / "model.pt") == 1
    _error(capsys, "fastmri.models.unet.Unet", "state_dict()")
    # the small layout where the published one is expected: the keys of the deeper levels miss
    assert call(file) == 1
    deeper = "missing key(s) (first: down_sample_layers.2.layers.0.weight)"
    _error(capsys, deeper, "--chans 2 --num-pool-layers 2")
    # the right keys, other widths: the first key of another shape and the expected layout
    wide = random_state_dict({**PUBLISHED_UNET, "chans": 2})
    torch.save(wide, tmp_path / "wide.pt")
    assert call(tmp_path / "wide.pt") == 1
    _error(
        capsys,
        "down_sample_layers.0.layers.0.weight has shape (2, 1, 3, 3)",
        "Unet(in_chans=1, out_chans=1, chans=256, num_pool_layers=4, drop_prob=0.0) has (256, 1, 3, 3)",
        "--chans 2 --num-pool-layers 4",
    )
    broken = dict(sd)
    del broken["up_conv.1.1.bias"]
    broken["extra.weight"] = torch.zeros(1)
    torch.save(broken, tmp_path / "broken.pt")
    assert call(tmp_path / "broken.pt", *SMALL_FLAGS) == 1
    _error(capsys, "1 missing key(s) (first: up_conv.1.1.bias)", "1 unexpected key(s) (first: extra.weight)")
    torch.save({**sd, "conv.layers.0.weight": sd["conv.layers.0.weight"].long()}, tmp_path / "ints.pt")
    assert call(tmp_path / "ints.pt", *SMALL_FLAGS) == 1
    _error(capsys, "conv.layers.0.weight holds torch.int64")
    assert not (tmp_path / "runs").exists()  # nothing written for a bad file
    with pytest.raises(ValueError, match="single-channel"):
        import_fastmri_unet(file, runs, layout={**SMALL, "in_chans": 2})


def test_an_import_is_idempotent_and_never_overwrites_another_run(small, tmp_path, capsys):
    file, sd = small
    runs = tmp_path / "runs"
    args = ["--state-dict", str(file), "--run-dir", str(runs), *SMALL_FLAGS]
    assert main([*args, "--to", "fastmri", "aps"]) == 0
    out = capsys.readouterr().out
    assert "fastMRI U-Net: " in out and "fastMRI U-Net → APS: " in out and "(written)" in out
    stamp = os.stat(runs / "fastmri-u-net" / "checkpoint.pt").st_mtime_ns
    assert main(args) == 0 and "(already there)" in capsys.readouterr().out
    assert os.stat(runs / "fastmri-u-net" / "checkpoint.pt").st_mtime_ns == stamp
    other = random_state_dict({**PUBLISHED_UNET, **SMALL}, seed=2)
    torch.save(other, tmp_path / "other.pt")
    other_args = ["--state-dict", str(tmp_path / "other.pt"), "--run-dir", str(runs), *SMALL_FLAGS]
    assert main(other_args) == 1
    _error(capsys, "--force")
    key = "conv.layers.0.weight"
    assert torch.equal(load_model(runs / "fastmri-u-net").state_dict()[key], sd[key])
    assert main([*other_args, "--force"]) == 0
    capsys.readouterr()
    assert torch.equal(load_model(runs / "fastmri-u-net").state_dict()[key], other[key])
    digest = hashlib.sha256((tmp_path / "other.pt").read_bytes()).hexdigest()
    assert json.loads((runs / "fastmri-u-net" / "history.json").read_text())["imported"]["sha256"] == digest
    files = sorted(p.name for p in (runs / "fastmri-u-net").iterdir())
    assert files == ["checkpoint.pt", "config.json", "history.json"]  # no lock, no temporary file


def test_the_module_prints_one_line_not_a_traceback(tmp_path):
    (tmp_path / "x.pt").write_text("junk")
    cmd = [sys.executable, "-m", "apslib.published", "--state-dict", str(tmp_path / "x.pt")]
    res = subprocess.run(
        [*cmd, "--run-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=120,
    )
    assert res.returncode == 1 and res.stderr.startswith("error: "), res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]

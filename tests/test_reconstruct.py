"""apslib.reconstruct: reconstructions in fastMRI's format, scored by fastMRI's own evaluation.

Tiny runs (1 epoch, 32x32, depth 2) on a tiny embedded dataset with 2 validation volumes,
and a test split made from them the way fastMRI ships one: undersampled k-space, its mask,
no target."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from apslib import data, training
from apslib import evaluate as ev
from apslib.metrics import volume_metrics
from apslib.reconstruct import cli, is_complete, load_run, reconstruct_split, score_reconstructions
from apslib.reconstruct import score as score_cli

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TINY = dict(depth=2, channels=(4, 8, 16), batch_size=2, epochs=1, device="cpu")
MODELS = ("Baseline", "LPF-2", "APS", "LPS", "AF", "fastMRI U-Net", "fastMRI U-Net APS")
SHAPE = (2, 32, 32)  # (slices, h, w) of every volume


def _make_test_split(root) -> None:
    """``singlecoil_test``: each validation volume undersampled with the mask apslib's
    evaluation draws for it (fastmri's RandomMaskFunc, seeded by the file name), stored
    as fastMRI's test files are: masked k-space, ``mask`` (W,), header, no target."""
    from fastmri.data.subsample import RandomMaskFunc
    from fastmri.data.transforms import apply_mask, to_tensor

    out = data.split_dir(root, "test")
    out.mkdir()
    for f in data.split_files(data.split_dir(root, "val")):
        with h5py.File(f, "r") as hf:
            kspace, header = hf["kspace"][()], hf["ismrmrd_header"][()]
            acquisition, patient = hf.attrs["acquisition"], hf.attrs["patient_id"]
        mask_func = RandomMaskFunc([0.08], [4], seed=0)
        _, mask, _ = apply_mask(to_tensor(kspace[0]), mask_func, seed=tuple(map(ord, f.name)))
        cols = mask.reshape(-1).numpy() > 0
        with h5py.File(out / f.name, "w") as hf:
            hf["kspace"] = np.where(cols, kspace, 0).astype(np.complex64)
            hf["mask"] = cols
            hf["ismrmrd_header"] = header
            hf.attrs.update(acquisition=acquisition, patient_id=patient, acceleration=4)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """``(data root, runs folder)``: 2 validation volumes, a test split, a 1-epoch run per model."""
    root = tmp_path_factory.mktemp("recon")
    data.synthesize_dataset(
        root, size=32, train_volumes=2, val_volumes=2, slices_per_volume=2, progress=False
    )
    _make_test_split(root)
    runs = root / "runs"
    for name in MODELS:
        training.train(training.config_for(name, data_root=root, run_dir=runs, **TINY), progress=False)
    return root, runs


def _run(runs, name):
    from apslib.names import run_slug

    return runs / run_slug(name)


def _reconstruct(args) -> int:
    return cli.main([*map(str, args), "--device", "cpu", "--no-progress"])


def _read(folder) -> dict[str, np.ndarray]:
    out = {}
    for f in sorted(folder.iterdir()):
        with h5py.File(f, "r") as hf:
            assert list(hf) == ["reconstruction"] and not hf.attrs  # fastmri.save_reconstructions' layout
            out[f.name] = hf["reconstruction"][()]
    return out


def _one_error_line(capsys, *phrases) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for phrase in phrases:
        assert phrase in err, err
    return err


@pytest.mark.parametrize("name", MODELS)
def test_reconstructions_are_apslibs_evaluation_in_fastmri_format(tiny, tmp_path, name):
    """Every kind of run: one file per volume named like its input, float32 (slices, h, w),
    equal to apslib's evaluation path (load_val, predict, denormalise)."""
    root, runs = tiny
    assert _reconstruct(["--run", _run(runs, name), "--data", root, "--split", "val", "--out", tmp_path]) == 0
    recons = _read(tmp_path)
    assert sorted(recons) == [f.name for f in data.split_files(data.split_dir(root, "val"))]
    run = ev.load_runs(runs, [name], "cpu")[name]
    val = ev.load_val(root)
    expected = val.denorm(ev.predict(run, val.image)).float().numpy()[:, 0]
    for vol, rec in recons.items():
        assert rec.dtype == np.float32 and rec.shape == SHAPE
        idx = [i for i in val.volume_index(vol)]
        assert [val.slice_num[i] for i in idx] == [0, 1]
        np.testing.assert_allclose(rec, expected[idx], rtol=1e-5, atol=1e-6 * np.abs(expected).max())
    assert np.abs(np.stack(list(recons.values()))).max() > 0


def _fastmri_cli(root, predictions, patched: bool) -> subprocess.CompletedProcess:
    """``python -m fastmri.evaluate`` itself; ``patched``: its running statistics give
    scalars (numpy 2 refuses to format the 1-element array fastmri's SSIM returns)."""
    fix = (
        "import numpy as np, runstats\n"
        "class S(runstats.Statistics):\n"
        "    def mean(self): return float(np.ravel(super().mean())[0])\n"
        "    def stddev(self, ddof=1.0): return float(np.ravel(super().stddev(ddof))[0])\n"
        "runstats.Statistics = S\n"
    )
    run = "import runpy; runpy.run_module('fastmri.evaluate', run_name='__main__')\n"
    code = (fix if patched else "") + run
    argv = [
        "--target-path",
        str(data.split_dir(root, "val")),
        "--predictions-path",
        str(predictions),
        "--challenge",
        "singlecoil",
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120, env=env
    )


def test_fastmris_evaluate_scores_them_as_apslibs_volume_metrics(tiny, tmp_path):
    root, runs = tiny
    out = tmp_path / "aps"
    assert _reconstruct(["--run", _run(runs, "APS"), "--data", root, "--split", "val", "--out", out]) == 0
    scored = score_reconstructions(data.split_dir(root, "val"), out)
    assert scored.count == 2
    for row in scored.per_volume:
        with h5py.File(data.split_dir(root, "val") / row["fname"], "r") as t:
            target, maxval = t["reconstruction_esc"][()], float(t.attrs["max"])
        with h5py.File(out / row["fname"], "r") as p:
            ours = volume_metrics(p["reconstruction"][()], target, maxval)
        # fastmri computes in the files' float32, apslib in float64
        assert row["NMSE"] == pytest.approx(ours["nmse"], rel=1e-6)
        assert row["PSNR"] == pytest.approx(ours["psnr"], abs=1e-6)
        assert row["SSIM"] == pytest.approx(ours["ssim"], abs=1e-6)
    for m in ("NMSE", "PSNR", "SSIM"):  # fastmri.evaluate.evaluate's statistics (float32) are the rows'
        values = [r[m] for r in scored.per_volume]
        assert scored.means[m] == pytest.approx(np.mean(values), rel=1e-6)
        assert scored.stddevs[m] == pytest.approx(np.std(values, ddof=1), rel=1e-6)
    # fastmri's own command line prints the line apslib's prints
    cmd = [sys.executable, "-m", "apslib.reconstruct.score", "--challenge", "singlecoil"]
    cmd += ["--target-path", str(data.split_dir(root, "val")), "--predictions-path", str(out)]
    cmd += ["--per-volume", str(tmp_path / "v.csv")]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    ours = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert ours.returncode == 0 and ours.stdout == scored.summary() + "\n", ours.stderr
    assert ours.stdout.startswith("MSE = ") and " NMSE = " in ours.stdout and " SSIM = " in ours.stdout
    assert (tmp_path / "v.csv").read_text().splitlines()[0] == "fname,acquisition,MSE,NMSE,PSNR,SSIM"
    patched = _fastmri_cli(root, out, patched=True)
    assert patched.returncode == 0 and patched.stdout == ours.stdout, patched.stderr
    plain = _fastmri_cli(root, out, patched=False)  # numpy 2: fails at its print, nowhere else
    numpy2 = "unsupported format string passed to numpy.ndarray.__format__" in plain.stderr
    assert numpy2 or (plain.returncode == 0 and plain.stdout == ours.stdout), plain.stderr


def test_the_test_split_is_read_as_fastmri_ships_it(tiny, tmp_path):
    """Masked k-space + mask, no target: the same reconstructions as the validation split
    under the same masks, at the header's size."""
    root, runs = tiny
    run = load_run(_run(runs, "APS"), "cpu")
    val = reconstruct_split(run, root, "val", tmp_path / "val", progress=False)
    test = reconstruct_split(run, root, "test", tmp_path / "test", progress=False)
    assert sorted(val.written) == sorted(test.written) and len(test.written) == 2
    a, b = _read(tmp_path / "val"), _read(tmp_path / "test")
    for name in a:
        assert b[name].shape == SHAPE
        np.testing.assert_array_equal(a[name], b[name])
    # apslib's masks are another draw than a fastMRI test file's: other inputs, other outputs
    other = reconstruct_split(run, root, "val", tmp_path / "other", accelerations=(8,), progress=False)
    assert other.written and not np.array_equal(_read(tmp_path / "other")[name], a[name])


def test_a_second_call_skips_finished_volumes_and_redoes_broken_ones(tiny, tmp_path):
    root, runs = tiny
    run = load_run(_run(runs, "APS"), "cpu")
    first = reconstruct_split(run, root, "val", tmp_path, progress=False)
    assert len(first.written) == 2 and not first.skipped and first.slices == 4
    good = _read(tmp_path)
    a, b = sorted(good)
    stamp = {n: os.stat(tmp_path / n).st_mtime_ns for n in good}
    again = reconstruct_split(run, root, "val", tmp_path, progress=False)
    assert again.written == [] and sorted(again.skipped) == [a, b] and again.slices == 0
    assert {n: os.stat(tmp_path / n).st_mtime_ns for n in good} == stamp
    # a truncated file at the final name, a stale temporary file of b, and b missing
    raw = (tmp_path / a).read_bytes()
    (tmp_path / a).write_bytes(raw[: len(raw) // 2])
    assert not is_complete(tmp_path / a, SHAPE)
    (tmp_path / b).rename(tmp_path / f".{b}.0123456789ab.tmp")
    (tmp_path / ".notes").write_text("not ours")
    redo = reconstruct_split(run, root, "val", tmp_path, progress=False)
    assert sorted(redo.written) == [a, b] and not redo.skipped
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes", a, b]
    assert all(np.array_equal(v, good[k]) for k, v in _read_h5s(tmp_path, good).items())
    # a complete HDF5 file of another shape is not a finished volume either
    with h5py.File(tmp_path / a, "w") as hf:
        hf["reconstruction"] = np.zeros((2, 16, 16), np.float32)
    assert not is_complete(tmp_path / a, SHAPE) and is_complete(tmp_path / b, SHAPE)
    assert reconstruct_split(run, root, "val", tmp_path, progress=False).written == [a]


def _read_h5s(folder, names) -> dict[str, np.ndarray]:
    out = {}
    for n in names:
        with h5py.File(folder / n, "r") as hf:
            out[n] = hf["reconstruction"][()]
    return out


def test_writes_are_atomic_and_an_interrupted_call_resumes(tiny, tmp_path, monkeypatch):
    """A write that dies half-way leaves no file under the final name and no temporary
    file; the volumes written before stay, and the next call writes only the rest."""
    import fastmri

    root, runs = tiny
    run = load_run(_run(runs, "APS"), "cpu")
    real = fastmri.save_reconstructions
    calls = []

    def dying(recons, out_dir):
        calls.append(list(recons))
        real(recons, out_dir)
        if len(calls) == 2:
            name = next(iter(recons))
            raw = (out_dir / name).read_bytes()
            (out_dir / name).write_bytes(raw[:100])  # half-written, then the process is stopped
            raise KeyboardInterrupt

    monkeypatch.setattr(fastmri, "save_reconstructions", dying)
    with pytest.raises(KeyboardInterrupt):
        reconstruct_split(run, root, "val", tmp_path, progress=False)
    names = [f.name for f in data.split_files(data.split_dir(root, "val"))]
    assert [p.name for p in tmp_path.iterdir()] == [names[0]]  # the first volume only, whole
    assert all(c[0].startswith(".") and c[0].endswith(".tmp") for c in calls)  # written under temp names
    assert is_complete(tmp_path / names[0], SHAPE)
    monkeypatch.setattr(fastmri, "save_reconstructions", real)
    rest = reconstruct_split(run, root, "val", tmp_path, progress=False)
    assert rest.written == [names[1]] and rest.skipped == [names[0]]


def test_errors_are_one_line_saying_what_to_do(tiny, tmp_path, capsys):
    root, runs = tiny
    aps = _run(runs, "APS")
    base = ["--run", aps, "--data", root, "--split", "val", "--out", tmp_path / "out"]

    def call(**changes):
        args = list(base)
        for flag, value in changes.items():
            args[args.index("--" + flag.replace("_", "-")) + 1] = value
        return _reconstruct(args)

    assert call(run=tmp_path / "nothing") == 1
    _one_error_line(capsys, "no trained run", "python -m apslib.training")
    (tmp_path / "half").mkdir()
    shutil.copy(aps / "config.json", tmp_path / "half")
    assert call(run=tmp_path / "half") == 1
    _one_error_line(capsys, "no checkpoint.pt")
    assert call(data=tmp_path / "nodata") == 1
    _one_error_line(capsys, "no data folder", "singlecoil_val")
    (tmp_path / "empty").mkdir()
    assert call(data=tmp_path / "empty") == 1
    _one_error_line(capsys, "no fastMRI data folder", "singlecoil_val")
    (tmp_path / "file").write_text("x")
    assert call(out=tmp_path / "file") == 1
    _one_error_line(capsys, "is a file", "give a folder")
    assert call(out=tmp_path / "file" / "below") == 1
    _one_error_line(capsys, "is a file")
    assert call(out=data.split_dir(root, "val")) == 1
    _one_error_line(capsys, "would overwrite them")
    assert (tmp_path / "file").read_text() == "x"
    assert _reconstruct([*base, "--batch-size", "0"]) == 1
    _one_error_line(capsys, "--batch-size")
    # a test split without masks, and a validation split that is masked already
    bad = tmp_path / "bad"
    shutil.copytree(data.split_dir(root, "val"), data.split_dir(bad, "test"))
    assert call(data=bad, split="test") == 1
    _one_error_line(capsys, "has no 'mask'", "--split val")
    shutil.copytree(data.split_dir(root, "test"), data.split_dir(bad, "val"))
    assert call(data=bad) == 1
    _one_error_line(capsys, "carries a sampling mask", "--split test")
    assert not (tmp_path / "out").exists()  # nothing written by a call that failed


def test_the_module_prints_one_line_not_a_traceback(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "apslib.reconstruct", "--run", str(tmp_path / "r"), "--data", str(tmp_path)]
    cmd += ["--split", "val", "--out", str(tmp_path / "o")]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert res.returncode == 1 and res.stderr.startswith("error: no trained run"), res.stderr
    assert res.stderr.count("\n") == 1
    cmd = [sys.executable, "-m", "apslib.reconstruct.score", "--challenge", "singlecoil"]
    cmd += ["--target-path", str(tmp_path), "--predictions-path", str(tmp_path / "none")]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert res.returncode == 1 and res.stderr.count("\n") == 1, res.stderr
    assert "python -m apslib.reconstruct" in res.stderr and "Traceback" not in res.stderr


def test_scoring_errors_are_one_line(tiny, tmp_path, capsys):
    root, runs = tiny
    out = tmp_path / "out"
    reconstruct_split(load_run(_run(runs, "APS"), "cpu"), root, "val", out, progress=False)
    val = data.split_dir(root, "val")

    def score(target, *extra):
        paths = ["--target-path", str(target), "--predictions-path", str(out)]
        return score_cli.main([*paths, "--challenge", "singlecoil", *extra])

    assert score(val) == 0
    line = capsys.readouterr().out
    assert line.startswith("MSE = ") and line.count("\n") == 1
    assert score(val, "--acquisition", "CORPD_FBK") == 0  # one volume: no spread
    assert "+/- nan" in capsys.readouterr().out
    victim = out / sorted(p.name for p in out.iterdir())[0]
    kept = victim.read_bytes()
    victim.unlink()
    assert score(val) == 1
    _one_error_line(capsys, "no reconstruction of 1 of the 2 volumes", "python -m apslib.reconstruct")
    victim.write_bytes(kept)
    assert score(data.split_dir(root, "test")) == 1
    _one_error_line(capsys, "has no 'reconstruction_esc'", "leaderboard")
    stray = tmp_path / "stray"
    shutil.copytree(val, stray)
    (stray / ".gitkeep").write_text("")
    assert score(stray) == 1
    _one_error_line(capsys, ".gitkeep", "move it out")


def test_a_run_object_and_the_clamp(tiny, tmp_path):
    """A loaded ModelRun works as a folder does; the output clamp of training applies."""
    root, runs = tiny
    run = load_run(_run(runs, "Baseline"), "cpu")
    assert run.clamp == 6.0
    with torch.no_grad():
        run.model.outc.weight.mul_(1e4)  # outputs far beyond the clamp, in normalised units
    reconstruct_split(run, root, "val", tmp_path, progress=False, batch_size=3)
    val = ev.load_val(root)
    recons = _read(tmp_path)
    for vol, rec in recons.items():
        idx = val.volume_index(vol)
        lo = val.denorm(torch.full((len(idx), 1, 1, 1), -6.0), idx).numpy()[:, 0]
        hi = val.denorm(torch.full((len(idx), 1, 1, 1), 6.0), idx).numpy()[:, 0]
        assert np.all(rec >= lo - 1e-6 * np.abs(lo)) and np.all(rec <= hi + 1e-6 * np.abs(hi))
        assert np.isclose(rec, lo, rtol=1e-5).any() or np.isclose(rec, hi, rtol=1e-5).any()

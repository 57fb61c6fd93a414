"""apslib.data's one validator: every bad input a fastMRI user plausibly hits is refused (or
warned about) in one line that names the file and says what to do; the checks run once per
file (cached by resolved path, size and mtime) and are shared by the loaders and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from apslib import data
from apslib.data import cache

SIZE, SLICES = 16, 2
H, W = data.kspace_shape(SIZE)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Each test its own cache folder and an empty memory cache."""
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    cache.forget()
    yield tmp_path / "cache"
    cache.forget()


def _arrays(slices=SLICES, size=SIZE, width=W, seed=0):
    g = np.random.default_rng(seed)
    k = g.standard_normal((slices, 2 * size, width)) + 1j * g.standard_normal((slices, 2 * size, width))
    return k.astype(np.complex64), (g.random((slices, size, size)) + 0.1).astype(np.float32)


def _volume(path: Path, kspace=None, target=None, *, header=None, mask=None, no_target=False, **attrs):
    """A volume written with plain h5py in fastMRI's layout; each part can be replaced
    (``header=False``: no header; ``no_target``: no reconstruction_esc)."""
    k0, t0 = _arrays()
    kspace = k0 if kspace is None else kspace
    target = None if no_target else (t0 if target is None else target)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as hf:
        if header is not False:
            recon = target.shape[-2:] if target is not None and target.ndim >= 2 else (SIZE, SIZE)
            hf["ismrmrd_header"] = header or data.ismrmrd_header(np.shape(kspace)[-2:], recon)
        hf["kspace"] = kspace
        if target is not None:
            hf["reconstruction_esc"] = target
        if mask is not None:
            hf["mask"] = mask
        hf.attrs.update({"acquisition": "CORPD_FBK", "max": 1.0, **attrs})
    return path


@pytest.fixture
def root(tmp_path):
    """A real-fastMRI-like root (no manifest): 2 train and 2 val volumes of 16x16."""
    out = tmp_path / "knee"
    for split in ("train", "val"):
        for i in range(2):
            _volume(data.split_dir(out, split) / f"file{split}{i}.h5")
    return out


def _one_line(err, *needles):
    msg = str(err.value if hasattr(err, "value") else err)
    assert "\n" not in msg, msg
    for needle in needles:
        assert needle in msg, (needle, msg)
    return msg


def _val(root, name="bad.h5"):
    return data.split_dir(root, "val") / name


# ---------------------------------------------------------------- the cases a tester found


def test_nan_in_validation_kspace_names_the_file_and_first_bad_slice(root):
    k, _ = _arrays()
    k[1, 3, 4] = np.nan
    _volume(_val(root), k)
    with pytest.raises(data.DataError) as err:
        data.make_loaders(root)
    _one_line(err, "bad.h5", "slice 1 of its k-space", "NaN or infinite", "download bad.h5 again")


def test_inf_in_training_kspace_fails_before_training(root, tmp_path):
    from apslib import training

    k, _ = _arrays()
    k[0, 0, 0] = np.inf
    _volume(data.split_dir(root, "train") / "bad.h5", k)
    config = training.config_for(
        "Baseline", data_root=root, run_dir=tmp_path / "runs", depth=2, channels=(2, 4, 8), epochs=1
    )
    with pytest.raises(data.DataError) as err:
        training.train(config, progress=False)
    _one_line(err, "bad.h5", "slice 0", "NaN or infinite")


def test_nan_in_target_is_refused_naming_the_slice(root):
    _, t = _arrays()
    t[1, 0, 0] = np.nan
    _volume(_val(root), target=t)
    with pytest.raises(data.DataError) as err:
        data.make_dataset(root, "val")
    _one_line(err, "bad.h5", "slice 1 of its target")


def test_all_zero_volumes_are_warned_once_and_listed(root):
    _volume(_val(root), np.zeros((SLICES, H, W), np.complex64), np.zeros((SLICES, SIZE, SIZE), np.float32))
    _volume(data.split_dir(root, "train") / "zero.h5", np.zeros((SLICES, H, W), np.complex64))
    with pytest.warns(data.DataWarning) as record:
        data.make_loaders(root)
    messages = [str(w.message) for w in record]
    assert len(messages) == 2 and all("\n" not in m for m in messages)
    assert any("bad.h5 slices 0-1 (all)" in m and "NMSE and PSNR are undefined" in m for m in messages)
    assert any("zero.h5" in m for m in messages)
    assert data.constant_slices(root, "val") == {("bad.h5", 0), ("bad.h5", 1)}
    kept = data.make_dataset(root, "val", exclude_constant=True)
    assert {Path(r.fname).name for r in kept.raw_samples} == {"fileval0.h5", "fileval1.h5"}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", data.DataWarning)
        data.make_loaders(root)  # warned once: not again


def test_one_constant_slice_is_named(root):
    k, t = _arrays(slices=4)
    t[2] = 0.5
    _volume(_val(root), k, t)
    with pytest.warns(data.DataWarning, match=r"1 constant slice .* bad.h5 slice 2;"):
        info = data.check_split(data.split_dir(root, "val"))
    assert info.constant_slices == {("bad.h5", 2)}


def test_test_split_file_in_val_is_named_as_one(root):
    k, _ = _arrays()
    _volume(_val(root), k, no_target=True, mask=np.ones(W, bool))
    with pytest.raises(data.DataError) as err:
        data.make_loaders(root)
    _one_line(err, "bad.h5 is a fastMRI test-split file (no target", "singlecoil_test")
    # the test split itself reads it
    _volume(data.split_dir(root, "test") / "t.h5", k, no_target=True, mask=np.ones(W, bool))
    assert len(data.make_dataset(root, "test", mask=False)) == SLICES


def test_val_file_without_target_or_with_a_mask(root):
    _volume(_val(root), no_target=True)
    with pytest.raises(data.DataError) as err:
        data.check_split(data.split_dir(root, "val"))
    _one_line(err, "bad.h5 has no target (reconstruction_esc)", "singlecoil_test")
    _volume(_val(root), mask=np.ones(W, bool))
    with pytest.raises(data.DataError) as err:
        data.check_split(data.split_dir(root, "val"))
    _one_line(err, "bad.h5 carries a sampling mask", "--split test")


def test_targets_of_mixed_sizes_name_the_odd_volume(root):
    k, _ = _arrays()
    _volume(data.split_dir(root, "train") / "small.h5", k, np.ones((SLICES, 8, 8), np.float32))
    with pytest.raises(data.DataError) as err:
        data.make_loaders(root)
    _one_line(err, "target sizes differ", "16x16 in 2 volumes but 8x8 in small.h5", "resize them to 16x16")


def test_two_dimensional_kspace(root):
    k, t = _arrays()
    _volume(_val(root), k[0], t[0])
    with pytest.raises(data.DataError) as err:
        data.make_loaders(root)
    _one_line(err, "bad.h5 has 2-D k-space", "(one slice without the slice axis)", "kspace[None]")


def test_real_valued_and_integer_kspace(root):
    k, _ = _arrays()
    _volume(_val(root), np.abs(k))
    with pytest.raises(data.DataError) as err:
        data.make_dataset(root, "val")
    _one_line(err, "bad.h5 has real-valued k-space (dtype float32)", "complex")
    _volume(_val(root), np.ones((SLICES, H, W), np.int16))
    with pytest.raises(data.DataError) as err:
        data.make_dataset(root, "val")
    _one_line(err, "integer-valued k-space (dtype int16)")


def test_multicoil_file_is_refused_as_one(root):
    k = np.ones((SLICES, 4, H, W), np.complex64)
    _volume(_val(root), k, no_target=True)
    with pytest.raises(data.DataError) as err:
        data.make_loaders(root)
    _one_line(err, "bad.h5 is a multicoil file", f"2x4x{H}x{W}", "single-coil")
    with pytest.raises(data.DataError):
        data.dataset_summary(root)


def _cli(*args):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "apslib.data", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


def test_cli_info_on_a_multicoil_or_2d_file_is_one_line(root):
    _volume(_val(root), np.ones((SLICES, 4, H, W), np.complex64), no_target=True)
    res = _cli("info", root)
    assert res.returncode == 1 and res.stdout == "", res
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr
    assert "multicoil" in res.stderr and "bad.h5" in res.stderr and "Traceback" not in res.stderr
    k, t = _arrays()
    _volume(_val(root), k[0], t[0])
    res = _cli("info", root)
    assert res.returncode == 1 and "2-D k-space" in res.stderr and res.stderr.count("\n") == 1


def test_lfs_pointers_are_named_with_the_fix(root):
    folder = data.split_dir(root, "val")
    for p in folder.iterdir():
        p.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 123\n")
    with pytest.raises(data.MissingDataError) as err:
        data.make_loaders(root)
    _one_line(err, "no HDF5 volumes in", "all 2 of its entries are git LFS pointers", "git lfs pull")
    assert isinstance(err.value, FileNotFoundError)
    _volume(folder / "real.h5")
    with pytest.warns(data.DataWarning, match="skipping 2 entries.*2 of them are git LFS pointers.*lfs pull"):
        data.make_dataset(root, "val")


def test_split_folder_given_as_the_root(root):
    with pytest.raises(data.MissingDataError) as err:
        data.make_loaders(root / "singlecoil_train")
    msg = _one_line(err, "is a split folder, not a data root", f"pass the parent folder {root.resolve()}")
    assert "singlecoil_train/singlecoil_train" not in msg


def _synth(out, **kw):
    args = dict(size=16, train_volumes=1, val_volumes=2, slices_per_volume=1, progress=False)
    return data.synthesize_dataset(out, **{**args, **kw})


def test_synth_killed_half_way_is_incomplete_until_rerun(tmp_path, monkeypatch):
    from apslib.data import synth

    real, calls = synth.write_fastmri_volume, []

    def dies_on_the_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(synth, "write_fastmri_volume", dies_on_the_third)
    out = tmp_path / "emb"
    with pytest.raises(KeyboardInterrupt):
        _synth(out)
    with pytest.raises(data.MissingDataError) as err:
        data.make_loaders(out)
    cmd = f"python -m apslib.data synth --out {out.resolve()} --size 16 --train-volumes 1 --val-volumes 2"
    _one_line(err, "incomplete embedded dataset", "writer stopped", "rerun the synth command", cmd)
    monkeypatch.setattr(synth, "write_fastmri_volume", real)
    assert _synth(out)["written"]  # the same command completes it, no --force needed
    data.make_loaders(out)
    victim = data.split_dir(out, "val") / "file_synth_val_0001.h5"
    victim.write_bytes(victim.read_bytes()[:-10])
    with pytest.raises(data.MissingDataError) as err:
        data.check_data_root(out)
    _one_line(err, "1 volumes not as written, e.g. singlecoil_val/file_synth_val_0001.h5", "rerun")
    victim.unlink()
    with pytest.raises(data.MissingDataError) as err:
        data.check_data_root(out)
    _one_line(err, "1 of 3 volumes missing", "rerun the synth command")


def test_synth_refuses_to_replace_another_dataset_without_force(tmp_path, capsys):
    out = tmp_path / "emb"
    _synth(out)
    with pytest.raises(data.DataError) as err:
        _synth(out, seed=1)
    _one_line(err, "other arguments", "seed 0", "seed 1", "--force")
    args = ["synth", "--out", out, "--size", "16", "--train-volumes", "1", "--val-volumes", "2"]
    args += ["--slices", "1"]
    assert data.main([*map(str, args), "--seed", "1", "--quiet"]) == 1
    err_text = capsys.readouterr().err
    assert err_text.startswith("error: ") and err_text.count("\n") == 1 and "--force" in err_text
    assert data.main([*map(str, args), "--seed", "1", "--quiet", "--force"]) == 0
    assert json.loads((out / data.MANIFEST).read_text())["params"]["seed"] == 1


@pytest.mark.parametrize(
    "fractions, accelerations, needle",
    [
        ([0.08], [0], "acceleration must be an integer >= 1"),
        ([0.08], [4.5], "acceleration must be an integer >= 1"),
        ([1.5], [4], "center fraction must be a number in (0, 1)"),
        ([0.0], [4], "center fraction must be a number in (0, 1)"),
        ([0.08, 0.04], [4], "pairs of equal, non-zero length"),
        ([], [], "pairs of equal, non-zero length"),
    ],
)
def test_mask_arguments_are_checked_where_masks_are_made(root, fractions, accelerations, needle):
    kw = dict(center_fractions=fractions, accelerations=accelerations)
    for call in (
        lambda: data.make_loaders(root / "missing", **kw),  # before any data is looked at
        lambda: data.make_dataset(root, "val", **kw),
        lambda: data.inspect_slice(root, "val", **kw),
        lambda: data.mask_function(fractions, accelerations),
    ):
        with pytest.raises(ValueError) as err:
            call()
        _one_line(err, needle)
    assert data.check_mask_args(0.08, 4.0) == ([0.08], [4])


# ---------------------------------------------------------------- the cache


def _count_opens(monkeypatch) -> list:
    opened, real = [], h5py.File

    def counting(name, *args, **kwargs):
        opened.append(Path(name).name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(h5py, "File", counting)
    return opened


def test_each_file_is_read_once_then_from_the_cache(root, monkeypatch, own_cache):
    folder = data.split_dir(root, "val")
    before = sorted(p.name for p in folder.iterdir())
    opened = _count_opens(monkeypatch)
    first = data.check_split(folder)
    assert sorted(opened) == ["fileval0.h5", "fileval1.h5"]
    opened.clear()
    cache.forget()  # as a new process: the cache file answers
    assert data.check_split(folder) == first and opened == []
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written beside the data
    assert len(list(own_cache.rglob("*.json"))) == 1
    os.utime(folder / "fileval1.h5", ns=(1, 10**18))  # touched: checked again
    data.check_split(folder)
    assert opened == ["fileval1.h5"]
    from apslib.data import validate

    checked, real = [], validate._read_volume
    monkeypatch.setattr(validate, "_read_volume", lambda p: checked.append(p.name) or real(p))
    data.make_loaders(root)  # the loaders share the cache: val from it, train checked once
    data.make_loaders(root)
    data.dataset_summary(root)
    assert sorted(checked) == ["filetrain0.h5", "filetrain1.h5"]


def test_unwritable_or_disabled_cache_stays_in_memory(root, tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv(cache.CACHE_ENV, str(blocker / "cache"))  # cannot be created
    opened = _count_opens(monkeypatch)
    folder = data.split_dir(root, "val")
    data.check_split(folder)
    opened.clear()
    data.check_split(folder)
    assert opened == []  # answered from memory
    monkeypatch.setenv(cache.CACHE_ENV, "off")
    assert cache.cache_file(folder) is None
    cache.forget()
    data.check_split(folder)
    assert opened and not (tmp_path / "cache").exists()


def test_a_changed_file_is_checked_again(root):
    folder = data.split_dir(root, "val")
    data.check_split(folder)
    k, _ = _arrays()
    k[0, 1, 1] = np.nan
    _volume(folder / "fileval0.h5", k)
    with pytest.raises(data.DataError, match="fileval0.h5: slice 0"):
        data.check_split(folder)


def test_check_volume_returns_its_record(root):
    info = data.check_volume(data.split_dir(root, "train") / "filetrain0.h5")
    assert info == data.VolumeInfo(
        name="filetrain0.h5",
        kspace_shape=(SLICES, H, W),
        target_shape=(SLICES, SIZE, SIZE),
        recon_size=(SIZE, SIZE),
        acquisition="CORPD_FBK",
    )
    assert info.image_size == (SIZE, SIZE) and info.slices == SLICES
    assert data.VolumeInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info


# ---------------------------------------------------------------- more that fastMRI users meet


def test_empty_split_folder(root):
    for p in data.split_dir(root, "val").iterdir():
        p.unlink()
    with pytest.raises(data.MissingDataError) as err:
        data.make_loaders(root)
    _one_line(err, "no HDF5 volumes in", "(the folder is empty)", "python -m apslib.data synth --out")


def test_a_volume_with_zero_slices(root):
    _volume(_val(root), np.zeros((0, H, W), np.complex64), np.zeros((0, SIZE, SIZE), np.float32))
    with pytest.raises(data.DataError) as err:
        data.make_dataset(root, "val")
    _one_line(err, "bad.h5 has no slices", "download bad.h5 again or re-create it")


def test_truncated_hdf5_file(root):
    f = data.split_dir(root, "val") / "fileval1.h5"
    f.write_bytes(f.read_bytes()[:3000])
    with pytest.raises(data.DataError) as err:
        data.make_loaders(root)
    _one_line(err, "cannot read fastMRI volume", "fileval1.h5", "truncated or damaged")


def test_target_size_other_than_the_headers_recon_space_is_used_as_is(root):
    for i in range(2):  # fastmri's transform crops to the target: the header only counts without one
        _volume(_val(root, f"fileval{i}.h5"), header=data.ismrmrd_header((H, W), (320, 320)))
    info = data.check_split(data.split_dir(root, "val"))
    assert info.image_size == (SIZE, SIZE) and info.volumes[0].recon_size == (320, 320)
    assert next(iter(data.make_loaders(root, batch_size=2)[1])).image.shape == (2, SIZE, SIZE)


def test_header_missing_malformed_or_without_the_ismrmrd_namespace(root):
    _volume(_val(root), header=False)
    with pytest.raises(data.DataError) as err:
        data.make_dataset(root, "val")
    _one_line(err, "bad.h5 has no 'ismrmrd_header'", "apslib.data.ismrmrd_header")
    _volume(_val(root), header=data.ismrmrd_header((H, W), (SIZE, SIZE)).replace(data.ISMRMRD_NS, "urn:x"))
    with pytest.raises(data.DataError) as err:
        data.make_dataset(root, "val")
    _one_line(err, "lacks encoding/encodedSpace/matrixSize/x in the ISMRMRD namespace")
    _volume(_val(root), header="<ismrmrdHeader><unclosed>")
    with pytest.raises(data.DataError) as err:
        data.make_dataset(root, "val")
    _one_line(err, "bad.h5: its ismrmrd_header is not XML")


def test_kspace_widths_may_differ_between_volumes_as_in_real_data(root):
    k, _ = _arrays(width=W + 4)
    _volume(_val(root), k)
    batch = next(iter(data.make_loaders(root, batch_size=3)[1]))
    assert batch.image.shape == (3, SIZE, SIZE)
    row = next(r for r in data.dataset_summary(root) if r["split"] == "val")
    assert row["kspace_shape"] == f"{H}x{W + 4}/{H}x{W}" and row["target_shape"] == f"{SIZE}x{SIZE}"


def test_symlink_loop_and_broken_link(root):
    loop = _val(root, "loop.h5")
    loop.symlink_to(loop.name)
    with pytest.raises(data.DataError) as err:
        data.make_loaders(root)
    _one_line(err, "loop.h5 is a symbolic link that loops", "delete it")
    loop.unlink()
    _val(root, "gone.h5").symlink_to("/mnt/elsewhere/gone.h5")
    with pytest.raises(data.DataError) as err:
        data.make_loaders(root)
    _one_line(err, "gone.h5 is a broken symbolic link (to /mnt/elsewhere/gone.h5", "restore its target")
    assert len(data.split_files(data.split_dir(root, "val"), warn=False)) == 2  # listing never raises


def test_unreadable_file(root, monkeypatch):
    f = _val(root, "fileval1.h5")
    f.chmod(0)
    if os.geteuid() == 0:  # root reads anything: refuse the open as the kernel would
        real_open = open

        def denied(path, *args, **kwargs):
            if Path(path) == f:
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr("builtins.open", denied)
    try:
        with pytest.raises(data.DataError) as err:
            data.check_split(data.split_dir(root, "val"))
    finally:
        f.chmod(0o644)
    _one_line(err, "cannot read", "fileval1.h5", "Permission denied", "chmod a+r")


def test_a_folder_named_like_a_volume_and_a_failed_download_are_skipped(root):
    (_val(root, "file9.h5")).mkdir()
    _val(root, "file8.h5").write_text("<!DOCTYPE html><html>403 Forbidden</html>")
    with pytest.warns(data.DataWarning) as record:
        data.make_dataset(root, "val")
    (msg,) = [str(w.message) for w in record]
    assert "skipping 2 entries" in msg and "file9.h5 (a folder)" in msg and "file8.h5 (not HDF5)" in msg


def test_a_file_without_kspace(root):
    with h5py.File(_val(root), "w") as hf:  # e.g. a reconstruction written by apslib.reconstruct
        hf["reconstruction"] = np.zeros((SLICES, SIZE, SIZE), np.float32)
    with pytest.raises(data.DataError) as err:
        data.make_dataset(root, "val")
    _one_line(err, "bad.h5 has no 'kspace' dataset (it holds reconstruction)", "not a fastMRI volume")


def test_target_of_other_slice_count_dtype_or_larger_than_the_kspace(root):
    k, t = _arrays()
    _volume(_val(root), k, t[:1])
    with pytest.raises(data.DataError) as err:
        data.make_dataset(root, "val")
    _one_line(err, "bad.h5: its target has 1 slices but its k-space 2", "damaged")
    _volume(_val(root), k, t.astype(np.complex64))
    with pytest.raises(data.DataError) as err:
        data.make_dataset(root, "val")
    _one_line(err, "its target reconstruction_esc has dtype complex64", "float32")
    _volume(_val(root), k, np.ones((SLICES, H + 2, W), np.float32))
    with pytest.raises(data.DataError) as err:
        data.make_dataset(root, "val")
    _one_line(err, f"its target reconstruction_esc, {H + 2}x{W}", f"larger than its k-space {H}x{W}")


def test_test_file_whose_mask_does_not_match_its_kspace(root):
    _volume(data.split_dir(root, "test") / "t.h5", no_target=True, mask=np.ones(W - 2, bool))
    with pytest.raises(data.DataError) as err:
        data.make_dataset(root, "test")
    _one_line(err, f"t.h5: its mask has {W - 2} columns but its k-space {W}", "damaged")


def test_multicoil_download_or_data_root_that_is_a_file(tmp_path):
    (tmp_path / "multicoil_train").mkdir()
    with pytest.raises(data.MissingDataError) as err:
        data.make_loaders(tmp_path)
    _one_line(err, "holds multicoil_train/, fastMRI's multicoil data", "single-coil download")
    (tmp_path / "f").write_text("")
    with pytest.raises(data.MissingDataError) as err:
        data.check_data_root(tmp_path / "f")
    _one_line(err, "is a file", "singlecoil_train/")


def test_volumes_directly_in_the_root(tmp_path):
    _volume(tmp_path / "file1.h5")
    with pytest.raises(data.MissingDataError) as err:
        data.make_loaders(tmp_path)
    _one_line(err, "holds .h5 files itself", "singlecoil_train/ and singlecoil_val/")

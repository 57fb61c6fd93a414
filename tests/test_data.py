"""apslib.data: the embedded fastMRI-format dataset, loading through fastmri's own classes
(real-shaped files too), out-of-distribution image sets, the image-size check against the
U-Net, the CLI, and the bad-input messages."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import time
import xml.etree.ElementTree as etree
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from fastmri.data.mri_data import et_query

from apslib import data
from apslib.unet import UNetConfig

SIZE, SLICES = 32, 3


def _synth(out, **kw):
    args = dict(size=SIZE, train_volumes=2, val_volumes=2, slices_per_volume=SLICES, seed=0, progress=False)
    args.update(kw)
    return data.synthesize_dataset(out, **args)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    _synth(out)
    return out


@pytest.fixture
def root_copy(root, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(root, dst)
    return dst


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- the embedded dataset


def test_kspace_shape_like_real_knee_files():
    assert data.kspace_shape(320) == (640, 368)
    H, W = data.kspace_shape(128)
    assert H == 256 and W % 2 == 0 and W > 128


def test_files_have_the_fastmri_single_coil_layout(root):
    files = sorted(root.glob("singlecoil_*/*.h5"))
    assert [f.parent.name for f in files].count("singlecoil_train") == 2
    assert len({f.name for f in files}) == len(files) == 4  # unique names across splits
    acqs = []
    for f in files:
        with h5py.File(f, "r") as hf:
            k, t = hf["kspace"], hf["reconstruction_esc"]
            assert k.dtype == np.complex64 and k.shape == (SLICES, *data.kspace_shape(SIZE))
            assert t.dtype == np.float32 and t.shape == (SLICES, SIZE, SIZE)
            target = t[()]
            xml = etree.fromstring(hf["ismrmrd_header"][()])
            assert xml.tag == "{http://www.ismrm.org/ISMRMRD}ismrmrdHeader"
            enc = ["encoding", "encodedSpace", "matrixSize"]
            rec = ["encoding", "reconSpace", "matrixSize"]
            lim = ["encoding", "encodingLimits", "kspace_encoding_step_1"]
            assert int(et_query(xml, enc + ["x"])) == k.shape[1]
            assert int(et_query(xml, enc + ["y"])) == k.shape[2]
            assert int(et_query(xml, rec + ["x"])) == int(et_query(xml, rec + ["y"])) == SIZE
            assert int(et_query(xml, lim + ["center"])) == k.shape[2] // 2
            assert int(et_query(xml, lim + ["maximum"])) == k.shape[2] - 1
            attrs = dict(hf.attrs)
        assert attrs["max"] == pytest.approx(float(target.max()))
        assert attrs["norm"] == pytest.approx(float(np.linalg.norm(target)), rel=1e-5)
        assert isinstance(attrs["patient_id"], str) and attrs["patient_id"]
        acqs.append(attrs["acquisition"])
        assert target.max() > 0 and np.isfinite(target).all()
    assert set(acqs) == set(data.ACQUISITIONS)


def test_acquisitions_differ_in_contrast_and_snr(root):
    stats = {}
    for f in sorted(root.glob("singlecoil_train/*.h5")):
        with h5py.File(f, "r") as hf:
            t = hf["reconstruction_esc"][()]
            stats[hf.attrs["acquisition"]] = t
    pd, pdfs = stats["CORPD_FBK"], stats["CORPDFS_FBK"]
    assert not np.allclose(pd / pd.max(), pdfs / pdfs.max(), atol=0.05)


def test_train_and_val_sample_disjoint_anatomy(root):
    ranges = {"train": [], "val": []}
    for split in ranges:
        for f in sorted(root.glob(f"singlecoil_{split}/*.h5")):
            with h5py.File(f, "r") as hf:
                ranges[split].append((hf.attrs["synth_template_z_min"], hf.attrs["synth_template_z_max"]))
    for a0, a1 in ranges["train"]:
        for b0, b1 in ranges["val"]:
            assert a1 < b0 or b1 < a0, (ranges["train"], ranges["val"])


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    kw = dict(size=32, train_volumes=1, val_volumes=1, slices_per_volume=2)
    _synth(tmp_path / "a", **kw)
    time.sleep(1.1)  # HDF5 timestamps, if any were written, would now differ
    _synth(tmp_path / "b", **kw)
    _synth(tmp_path / "c", seed=1, **kw)
    for rel in (
        "singlecoil_train/file_synth_train_0000.h5",
        "singlecoil_val/file_synth_val_0000.h5",
        data.MANIFEST,
    ):
        assert _sha(tmp_path / "a" / rel) == _sha(tmp_path / "b" / rel)
    assert _sha(tmp_path / "a" / "singlecoil_val/file_synth_val_0000.h5") != _sha(
        tmp_path / "c" / "singlecoil_val/file_synth_val_0000.h5"
    )


def test_rerun_is_a_no_op_and_new_arguments_rewrite(tmp_path):
    kw = dict(size=32, train_volumes=2, val_volumes=1, slices_per_volume=2)
    first = _synth(tmp_path, **kw)
    assert first["written"]
    f = tmp_path / "singlecoil_train" / "file_synth_train_0001.h5"
    stamp = f.stat().st_mtime_ns
    again = _synth(tmp_path, **kw)
    assert not again["written"] and again["seconds"] < 0.5
    assert f.stat().st_mtime_ns == stamp
    with pytest.raises(data.DataError, match="other arguments.*--force"):
        _synth(tmp_path, **{**kw, "train_volumes": 1})  # never replaced silently
    smaller = _synth(tmp_path, force=True, **{**kw, "train_volumes": 1})
    assert smaller["written"] and not f.exists()  # stale volume removed
    assert sorted(p.name for p in (tmp_path / "singlecoil_train").iterdir()) == ["file_synth_train_0000.h5"]
    f0 = tmp_path / "singlecoil_train" / "file_synth_train_0000.h5"
    f0.unlink()  # an incomplete folder is rewritten, not trusted
    assert _synth(tmp_path, **{**kw, "train_volumes": 1})["written"] and f0.exists()


def test_cli_synth_writes_both_splits_with_a_progress_bar(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["synth", "--out", str(out), "--train-volumes", "1", "--val-volumes", "1", "--size", "32"]
    args += ["--slices", "2", "--seed", "3"]
    rc = data.main(args)
    assert rc == 0
    captured = capsys.readouterr()
    assert "vol" in captured.err and "wrote 2 volumes" in captured.out
    assert (out / "singlecoil_train" / "file_synth_train_0000.h5").is_file()
    assert (out / "singlecoil_val" / "file_synth_val_0000.h5").is_file()
    assert data.main([*args, "--quiet"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert data.main(["synth", "--out", str(out), "--size", "31", "--quiet"]) == 1
    assert "size must be" in capsys.readouterr().err


def test_refuses_to_write_into_a_folder_with_other_hdf5_files(tmp_path):
    folder = tmp_path / "singlecoil_val"
    folder.mkdir()
    with h5py.File(folder / "file1000000.h5", "w") as hf:
        hf["x"] = 1
    with pytest.raises(data.DataError, match="file1000000.h5"):
        _synth(tmp_path)
    assert (folder / "file1000000.h5").is_file()


# ---------------------------------------------------------------- loading via fastmri


def test_fully_sampled_transform_reproduces_the_target(root):
    for split in ("train", "val"):
        ds = data.make_dataset(root, split, mask=False)
        assert len(ds) == 2 * SLICES
        for i in range(len(ds)):
            s = ds[i]
            fname = root / f"singlecoil_{split}" / s.fname
            with h5py.File(fname, "r") as hf:
                target = torch.from_numpy(hf["reconstruction_esc"][s.slice_num])
            recon = s.image * s.std + s.mean  # de-normalised zero-filled = full recon here
            rel = float((recon - target).norm() / target.norm())
            assert rel < 1e-5, (s.fname, s.slice_num, rel)
            assert float((s.image - s.target).abs().max()) < 1e-3


def test_loaders_give_batches_with_acquisition(root):
    train, val = data.make_loaders(root, batch_size=2, seed=0, multiple=16)
    batch = next(iter(train))
    assert isinstance(batch, data.MRISample)
    assert batch.image.shape == batch.target.shape == (2, SIZE, SIZE)
    assert batch.image.dtype == torch.float32 and batch.mean.shape == (2,)
    assert batch.image.abs().max() <= 6 and len(batch.fname) == 2
    acqs = {a for b in val for a in b.acquisition}
    assert acqs == set(data.ACQUISITIONS)
    assert len(train.dataset) == len(val.dataset) == 2 * SLICES
    # the mask removes information: the input is not the target
    assert float((batch.image - batch.target).abs().mean()) > 1e-3


def test_validation_masks_fixed_training_masks_random(root):
    _, val = data.make_loaders(root, batch_size=3)
    a = torch.cat([b.image for b in val])
    b = torch.cat([b.image for b in val])
    assert torch.equal(a, b)
    train = data.make_dataset(root, "train", seed=0)
    x1, x2 = train[0].image, train[0].image  # same slice, two epochs' masks
    assert not torch.equal(x1, x2)
    again = data.make_dataset(root, "train", seed=0)
    assert torch.equal(again[0].image, x1)  # but reproducible from the seed


def test_acquisition_filter_and_fractions(root):
    pd = data.make_dataset(root, "train", acquisition="PD")
    assert len(pd) == SLICES
    assert {pd[i].acquisition for i in range(len(pd))} == {"CORPD_FBK"}
    pdfs = data.make_dataset(root, "val", acquisition="CORPDFS_FBK")
    assert {pdfs[i].acquisition for i in range(len(pdfs))} == {"CORPDFS_FBK"}
    with pytest.raises(ValueError, match="unknown acquisition"):
        data.make_dataset(root, "train", acquisition="T2")
    half = data.make_dataset(root, "train", volume_fraction=0.5, seed=1)
    assert len({r.fname for r in half.raw_samples}) == 1 and len(half) == SLICES
    same = data.make_dataset(root, "train", volume_fraction=0.5, seed=1)
    assert [r.fname for r in same.raw_samples] == [r.fname for r in half.raw_samples]
    some = data.make_dataset(root, "train", sample_fraction=0.5)
    assert len(some) == SLICES
    with pytest.raises(ValueError, match="not both"):
        data.make_dataset(root, "train", volume_fraction=0.5, sample_fraction=0.5)


def test_worker_init_reseeds_each_workers_mask_generator(root, monkeypatch):
    ds = data.make_dataset(root, "train")

    class Info:
        dataset, seed = ds, 12345

    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: Info)
    data.seed_mask_worker(0)
    a = ds.transform.mask_func.rng.uniform()
    Info.seed = 12346
    data.seed_mask_worker(1)
    b = ds.transform.mask_func.rng.uniform()
    assert a != b
    assert a == np.random.RandomState(12345).uniform()


def test_two_workers_load(root):
    train, _ = data.make_loaders(root, batch_size=2, num_workers=2)
    batches = list(train)
    assert sum(b.image.shape[0] for b in batches) == 2 * SLICES


def _write_real_shaped_file(path: Path, slices: int = 2) -> np.ndarray:
    """A file with the real knee shapes, written with plain h5py (not apslib's writer)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[-1:1:640j, -1:1:368j]
    img = ((xx / 0.5) ** 2 + (yy / 0.4) ** 2 < 1).astype(np.float64) * 3e-5
    vols = [img * np.exp(1j * (s + xx)) + 1e-7 * rng.standard_normal(img.shape) for s in range(slices)]
    x = np.stack(vols)
    k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)).astype(
        np.complex64
    )
    target = np.abs(x[:, 160:480, 24:344]).astype(np.float32)
    header = (
        '<?xml version="1.0" encoding="utf-8"?><ismrmrdHeader '
        'xmlns="http://www.ismrm.org/ISMRMRD"><encoding>'
        "<encodedSpace><matrixSize><x>640</x><y>368</y><z>1</z></matrixSize></encodedSpace>"
        "<reconSpace><matrixSize><x>320</x><y>320</y><z>1</z></matrixSize></reconSpace>"
        "<encodingLimits><kspace_encoding_step_1><minimum>0</minimum><maximum>367</maximum>"
        "<center>184</center></kspace_encoding_step_1></encodingLimits>"
        "</encoding></ismrmrdHeader>"
    )
    with h5py.File(path, "w") as hf:
        hf["ismrmrd_header"] = header
        hf["kspace"] = k
        hf["reconstruction_esc"] = target
        hf.attrs.update(
            acquisition="CORPDFS_FBK",
            max=float(target.max()),
            norm=float(np.linalg.norm(target)),
            patient_id="0" * 64,
        )
    return target


def test_real_fastmri_shaped_file_loads_through_the_same_path(tmp_path):
    for split in ("train", "val"):
        (tmp_path / f"singlecoil_{split}").mkdir()
        target = _write_real_shaped_file(tmp_path / f"singlecoil_{split}" / f"file10{split}.h5")
    train, val = data.make_loaders(tmp_path, batch_size=2, multiple=16)
    batch = next(iter(val))
    assert batch.image.shape == batch.target.shape == (2, 320, 320)
    assert list(batch.acquisition) == ["CORPDFS_FBK"] * 2
    assert torch.allclose(batch.max_value, torch.tensor(float(target.max()), dtype=torch.float64))
    full = data.make_dataset(tmp_path, "val", mask=False)[1]
    recon = full.image * full.std + full.mean
    assert float((recon - torch.from_numpy(target[1])).norm() / np.linalg.norm(target[1])) < 1e-5
    data.make_loaders(tmp_path, multiple=64)  # 320 = 5 * 64
    with pytest.raises(ValueError, match="320x320 is not divisible by 2\\*\\*depth = 128"):
        data.make_loaders(tmp_path, multiple=128)


def test_fastmri_writes_no_files_into_the_working_directory(root, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    train, val = data.make_loaders(root, batch_size=2)
    next(iter(train)), next(iter(val))
    data.inspect_slice(root)
    assert list(cwd.iterdir()) == []


def test_inspect_slice_shows_each_step(root):
    d = data.inspect_slice(root, "val", 0)
    H, W = data.kspace_shape(SIZE)
    assert d["kspace"].shape == (H, W) and d["mask"].shape == (W,)
    assert set(np.unique(d["mask"])) == {0.0, 1.0} and 0.1 < d["mask"].mean() < 0.6
    assert np.abs(d["masked_kspace"][:, d["mask"] == 0]).max() == 0
    assert np.allclose(d["full"], d["target"], rtol=1e-4, atol=1e-6 * d["target"].max())
    assert not np.allclose(d["zero_filled"], d["target"], rtol=1e-2)
    assert d["acquisition"] in data.ACQUISITIONS
    rows = data.dataset_summary(root)
    assert sum(r["volumes"] for r in rows) == 4 and sum(r["slices"] for r in rows) == 4 * SLICES


# ---------------------------------------------------------------- bad input


def test_missing_data_root_names_path_and_command(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as err:
        data.make_loaders(missing)
    msg = str(err.value)
    assert str(missing / "singlecoil_train") in msg
    assert f"python -m apslib.data synth --out {missing}" in msg
    (missing / "singlecoil_train").mkdir(parents=True)
    (missing / "singlecoil_val").mkdir()
    with pytest.raises(FileNotFoundError, match="no HDF5 volumes in .*singlecoil_train"):
        data.check_data_root(missing)


def test_non_hdf5_file_is_skipped_with_a_warning(root_copy):
    folder = root_copy / "singlecoil_train"
    (folder / ".gitkeep").write_text("")
    (folder / "README").write_text("not data")
    (folder / "subdir").mkdir()
    with pytest.warns(data.DataWarning) as record:
        ds = data.make_dataset(root_copy, "train")
    names = " ".join(str(w.message) for w in record)
    assert "README" in names and ".gitkeep" in names and "subdir" in names
    assert len(ds) == 2 * SLICES
    assert ds[0].image.shape == (SIZE, SIZE)


def test_truncated_hdf5_raises_naming_the_file(root_copy):
    f = root_copy / "singlecoil_val" / "file_synth_val_0001.h5"
    raw = f.read_bytes()
    f.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(data.DataError, match="file_synth_val_0001.h5"):
        data.make_dataset(root_copy, "val")


def test_hdf5_without_fastmri_content_raises_naming_the_file(root_copy):
    f = root_copy / "singlecoil_val" / "broken.h5"
    with h5py.File(f, "w") as hf:
        hf["kspace"] = np.zeros((1, 8, 8), np.complex64)  # no ismrmrd_header
    with pytest.raises(data.DataError, match="broken.h5"):
        data.make_loaders(root_copy)


def test_size_check_happens_before_training(root):
    with pytest.raises(ValueError, match="32x32 is not divisible by 2\\*\\*depth = 64"):
        data.make_loaders(root, multiple=64)
    data.make_loaders(root, multiple=32)


# ---------------------------------------------------------------- out-of-distribution sets


def _check_input(x, size):
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float32
    assert x.shape == (1, size, size)
    assert torch.isfinite(x).all() and x.abs().max() <= 6
    assert abs(float(x.mean())) < 0.2 and 0.7 < float(x.std()) < 1.2


def test_photographs():
    photos = data.photographs(48)
    items = list(photos.items())
    assert [n for n, _ in items] == list(data.PHOTO_NAMES)
    for _, x in items:
        _check_input(x, 48)
    assert photos.stack().shape == (len(data.PHOTO_NAMES), 1, 48, 48)
    assert not torch.equal(items[0][1], items[1][1])


def test_photographs_skip_unknown_names():
    with pytest.warns(data.DataWarning, match="no_such_image"):
        photos = data.photographs(32, names=("camera", "no_such_image"))
    assert photos.names == ["camera"] and len(list(photos)) == 1


def test_noise_images_are_seeded():
    a = data.noise_images(40, 3, seed=0).stack()
    b = data.noise_images(40, 3, seed=0).stack()
    c = data.noise_images(40, 3, seed=1).stack()
    assert a.shape == (3, 1, 40, 40) and torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])
    for x in a:
        _check_input(x, 40)


def test_shepp_logan():
    (x,) = list(data.shepp_logan(64))
    assert x.shape == (1, 64, 64) and x.dtype == torch.float32
    assert x.abs().max() <= 6 and abs(float(x.mean())) < 1e-4
    assert float(x[0, 0, 0]) < 0 < float(x[0, 32, 32])  # dark corner, bright inside
    x64 = next(iter(data.shepp_logan(64, dtype=torch.float64)))
    assert x64.dtype == torch.float64


def test_image_folder(tmp_path):
    from PIL import Image

    def imsave(path, array):
        Image.fromarray(array).save(path)

    rng = np.random.default_rng(0)
    sub = tmp_path / "n01440764"
    sub.mkdir()
    imsave(sub / "a.png", rng.integers(0, 255, (60, 90, 3), dtype=np.uint8))
    imsave(tmp_path / "b.PNG", rng.integers(0, 255, (50, 40), dtype=np.uint8))
    imsave(tmp_path / "c.png", rng.integers(0, 255, (40, 40, 4), dtype=np.uint8))
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "d.png").write_bytes(b"not a png")
    images = data.image_folder(tmp_path, 32)
    assert len(images) == 4
    with pytest.warns(data.DataWarning, match="d.png"):
        items = list(images.items())
    assert [n for n, _ in items] == ["b.PNG", "c.png", "n01440764/a.png"]
    for _, x in items:
        _check_input(x, 32)
    assert len(data.image_folder(tmp_path, 32, recursive=False)) == 3
    limited = data.ood_sets(32, image_dir=tmp_path, image_limit=2, noise_count=1)["folder"]
    assert limited.names == ["b.PNG", "c.png"]  # the first ones by path
    with pytest.raises(FileNotFoundError, match="nowhere"):
        data.image_folder(tmp_path / "nowhere", 32)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        data.image_folder(empty, 32)


def test_to_model_input_centre_crops_like_imagenet():
    img = np.zeros((256, 512))
    img[:, 256:] = 1.0  # right half bright: the centre crop holds both halves equally
    x = data.to_model_input(img, 224)
    assert x.shape == (1, 224, 224)
    assert float(x[0, :, :100].mean()) < 0 < float(x[0, :, 124:].mean())


def test_ood_sets_bundle():
    sets = data.ood_sets(32, noise_count=2)
    assert set(sets) == {"photographs", "noise", "shepp_logan"}
    assert len(sets["noise"]) == 2


# ---------------------------------------------------------------- the package's shared pieces


def test_decode_attr_reads_every_kind_of_hdf5_string(tmp_path):
    assert data.decode_attr(b"CORPD_FBK") == "CORPD_FBK"
    assert data.decode_attr(np.bytes_(b"CORPDFS_FBK")) == "CORPDFS_FBK"
    assert data.decode_attr("PD") == "PD" and data.decode_attr(np.str_("PD")) == "PD"
    assert data.decode_attr(np.array(b"x")) == "x" and data.decode_attr(None) == ""
    assert data.decode_attr(b"\xff") == "\ufffd"  # undecodable bytes do not raise
    f = tmp_path / "attrs.h5"
    with h5py.File(f, "w") as hf:
        hf.attrs["vlen"] = "CORPD_FBK"  # variable-length: h5py gives str
        hf.attrs["fixed"] = np.bytes_(b"CORPD_FBK")  # fixed-length: numpy bytes
    with h5py.File(f, "r") as hf:
        assert {data.decode_attr(v) for v in hf.attrs.values()} == {"CORPD_FBK"}


def test_one_list_of_acquisition_names():
    assert data.ACQUISITIONS == tuple(data.ACQUISITION_NAMES) == ("CORPD_FBK", "CORPDFS_FBK")
    for full, short in data.ACQUISITION_NAMES.items():
        for alias in (full, full.lower(), short, short.lower()):
            assert data.resolve_acquisition(alias) == full
    assert data.resolve_acquisition(None) is None
    with pytest.raises(ValueError, match="'PD', 'PDFS'"):
        data.resolve_acquisition("T2")


def test_public_api_is_re_exported():
    for name in data.__all__:
        assert getattr(data, name) is not None, name
    from apslib.data.cli import main

    assert main is data.main


def test_python_m_apslib_data_runs_the_cli_once(tmp_path):
    run = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-m", "apslib.data", "info", str(tmp_path / "none")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1, run.stderr
    assert run.stderr.startswith("error: no fastMRI data folder") and "Traceback" not in run.stderr


def test_apslib_data_imports_no_matplotlib():
    code = "import sys, apslib.data; sys.exit('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ---------------------------------------------------------------- writing one volume


def _arrays(slices=2, size=16, seed=0):
    g = np.random.default_rng(seed)
    H, W = data.kspace_shape(size)
    k = (g.standard_normal((slices, H, W)) + 1j * g.standard_normal((slices, H, W))).astype(np.complex64)
    return k, g.random((slices, size, size)).astype(np.float32)


def test_write_fastmri_volume_bytes_match_a_plain_h5py_file(tmp_path):
    k, t = _arrays()
    kw = dict(acquisition="CORPD_FBK", patient_id="p1", extra_attrs={"z": 1.5})
    a = data.write_fastmri_volume(tmp_path / "a" / "v.h5", k, t, **kw)
    time.sleep(1.1)  # timestamps, if any were written, would now differ
    b = data.write_fastmri_volume(tmp_path / "b" / "v.h5", k, t, **kw)
    assert _sha(a) == _sha(b)
    # the same file h5py writes to a path (how this writer wrote it before atomic_open)
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as hf:
        hf.create_dataset(
            "ismrmrd_header",
            data=data.ismrmrd_header(k.shape[1:], t.shape[1:], num_slices=2, protocol="CORPD_FBK"),
            track_times=False,
        )
        hf.create_dataset("kspace", data=k, track_times=False)
        hf.create_dataset("reconstruction_esc", data=t, track_times=False)
        hf.attrs["acquisition"] = "CORPD_FBK"
        hf.attrs["max"] = float(t.max())
        hf.attrs["norm"] = float(np.linalg.norm(t.astype(np.float64)))
        hf.attrs["patient_id"] = "p1"
        hf.attrs["z"] = 1.5
    assert a.read_bytes() == plain.read_bytes()
    with h5py.File(a, "r") as hf:
        assert np.array_equal(hf["kspace"][()], k) and np.array_equal(hf["reconstruction_esc"][()], t)


def test_write_fastmri_volume_is_atomic_with_plain_permissions(tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    k, t = _arrays()
    folder = tmp_path / "out"
    path = data.write_fastmri_volume(folder / "v.h5", k, t, acquisition="CORPD_FBK", patient_id="p")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    before = path.read_bytes()
    with pytest.raises(TypeError):  # an attr h5py cannot store: the old file stays
        data.write_fastmri_volume(
            path, k, t, acquisition="CORPD_FBK", patient_id="p", extra_attrs={"bad": object()}
        )
    assert path.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["v.h5"]  # no temporary files left
    assert list(cwd.iterdir()) == []  # the in-memory file touches no disk


# ---------------------------------------------------------------- the image size the model sees


def _volume(folder: Path, name: str, *, target: int | None, recon: int, kspace_hw=(64, 38)):
    """A volume whose header says ``recon x recon`` and whose target array is
    ``target x target`` (``None``: no target, as in fastMRI's test split)."""
    folder.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(0)
    k = (g.standard_normal((2, *kspace_hw)) + 1j * g.standard_normal((2, *kspace_hw))).astype(np.complex64)
    header = data.ismrmrd_header(kspace_hw, (recon, recon), num_slices=2)
    if target is not None:
        t = g.random((2, target, target)).astype(np.float32)
        return data.write_fastmri_volume(
            folder / name, k, t, acquisition="CORPD_FBK", patient_id=name, header=header
        )
    with h5py.File(folder / name, "w") as hf:
        hf["ismrmrd_header"] = header
        hf["kspace"] = k
        hf.attrs["acquisition"] = "CORPD_FBK"
    return folder / name


def _unet(depth, variant="baseline"):
    return UNetConfig(variant=variant, depth=depth, channels=(1,) * (depth + 1))


def test_dataset_size_comes_from_the_arrays_not_the_header(tmp_path):
    # header bad (100 is not a multiple of 16), arrays good (32): passes
    _volume(tmp_path / "singlecoil_train", "a.h5", target=32, recon=100)
    ds = data.make_dataset(tmp_path, "train", mask=False)
    assert ds[0].image.shape == (32, 32)  # what the model receives
    data.check_dataset_size(ds, _unet(4))
    data.make_dataset(tmp_path, "train", multiple=16)
    # header good (32), arrays bad (36): fails, naming the size and the file
    _volume(tmp_path / "singlecoil_val", "b.h5", target=36, recon=32, kspace_hw=(72, 42))
    ds = data.make_dataset(tmp_path, "val", mask=False)
    assert ds[0].image.shape == (36, 36)
    with pytest.raises(
        ValueError,
        match=r"image size of val data \(b.h5\) 36x36 is not divisible "
        r"by 2\*\*depth = 16",
    ):
        data.check_dataset_size(ds, _unet(4), what="val data")
    with pytest.raises(ValueError, match="36x36 is not divisible by 2\\*\\*depth = 16"):
        data.make_dataset(tmp_path, "val", multiple=16)
    data.check_dataset_size(ds, _unet(2))  # 36 = 9 * 4


def test_dataset_size_follows_the_unet_configs_whole_rule(root):
    ds = data.make_dataset(root, "train")
    data.check_dataset_size(ds, _unet(4, "aps"))  # 32 >= 2 * 16: a 2x2 bottleneck
    with pytest.raises(ValueError, match="32x32 is too small for the aps U-Net of depth 5"):
        data.check_dataset_size(ds, _unet(5, "aps"))
    data.check_dataset_size(ds, _unet(5))  # the baseline needs only 32
    sub = torch.utils.data.Subset(ds, [0, 1])
    with pytest.raises(ValueError, match=r"\(file_synth_train_0000.h5 and 1 more\) 32x32"):
        data.check_dataset_size(sub, _unet(6))


def test_dataset_size_without_a_target_is_the_transforms_crop(tmp_path):
    folder = tmp_path / "singlecoil_test"
    _volume(folder, "c.h5", target=None, recon=24)
    ds = data.make_dataset(tmp_path, "test", mask=False)
    assert ds[0].image.shape == (24, 24)
    data.check_dataset_size(ds, _unet(3))
    with pytest.raises(ValueError, match="24x24"):
        data.check_dataset_size(ds, _unet(4))
    # header wider than the k-space: fastmri crops to (W, W), and so does the check
    (folder / "c.h5").unlink()
    _volume(folder, "d.h5", target=None, recon=40, kspace_hw=(64, 32))
    ds = data.make_dataset(tmp_path, "test", mask=False)
    assert ds[0].image.shape == (32, 32)
    data.check_dataset_size(ds, _unet(5))
    assert data.inspect_slice(tmp_path, "test", 0)["zero_filled"].shape == (32, 32)


def test_unreadable_volume_in_the_size_check_raises_naming_it(root_copy):
    ds = data.make_dataset(root_copy, "val")
    f = root_copy / "singlecoil_val" / "file_synth_val_0000.h5"
    f.write_bytes(f.read_bytes()[:2000])
    with pytest.raises(data.DataError, match="file_synth_val_0000.h5"):
        data.check_dataset_size(ds, _unet(2))


# ---------------------------------------------------------------- the command line


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    assert data.main(["synth", "--out", str(a_file), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "is a file" in err
    assert a_file.read_text() == "not a folder"
    assert data.main(["synth", "--out", str(a_file / "sub"), "--quiet"]) == 1  # OSError
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert data.main(["info", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no fastMRI data folder") and err.count("\n") == 1


def test_python_m_apslib_data_runs_the_cli(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    res = subprocess.run(
        [sys.executable, "-m", "apslib.data", "synth", "--out", str(a_file)], capture_output=True, text=True
    )
    assert res.returncode == 1, res.stderr
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr
    assert "Traceback" not in res.stderr and "RuntimeWarning" not in res.stderr

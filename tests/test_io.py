import json
import pickle

import pytest
import torch

from apslib.io import atomic_torch_save, atomic_write_json, atomic_write_text


def test_writes_and_replaces(tmp_path):
    p = tmp_path / "sub" / "a.json"
    atomic_write_json(p, {"x": 1})
    atomic_write_json(p, {"x": 2})
    assert json.loads(p.read_text()) == {"x": 2}
    atomic_torch_save({"w": torch.arange(3)}, tmp_path / "c.pt")
    assert torch.equal(torch.load(tmp_path / "c.pt")["w"], torch.arange(3))
    assert sorted(f.name for f in tmp_path.rglob("*")) == ["a.json", "c.pt", "sub"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "a.txt"
    atomic_write_text(p, "old")
    with pytest.raises(TypeError):
        atomic_write_json(p, {"bad": object()}, default=None)
    with pytest.raises((pickle.PicklingError, AttributeError)):  # by Python version
        atomic_torch_save(lambda: 0, tmp_path / "a.txt")  # lambdas do not pickle
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["a.txt"]


def test_new_files_get_the_umask_mode_and_replaced_files_keep_theirs(tmp_path):
    import os
    import stat

    old = os.umask(0o027)
    try:
        p = atomic_write_text(tmp_path / "new.txt", "a")
        assert stat.S_IMODE(p.stat().st_mode) == 0o640  # like open(): 0o666 & ~umask, not 0o600
        q = tmp_path / "kept.txt"
        q.write_text("old")
        os.chmod(q, 0o604)
        atomic_write_text(q, "new")
        assert stat.S_IMODE(q.stat().st_mode) == 0o604 and q.read_text() == "new"
    finally:
        os.umask(old)


# full disk: torch's zip writer raises this RuntimeError (an OSError of the file is its context)
TORCH_FULL_DISK = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")


@pytest.mark.parametrize(
    "error, cause",
    [
        (TORCH_FULL_DISK, "inline_container"),
        (RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed"), "file write"),
        (OSError(28, "No space left on device"), "No space left on device"),
    ],
)
def test_full_disk_during_a_torch_save_is_one_line_and_keeps_the_old_file(
    tmp_path, monkeypatch, error, cause
):
    import errno

    from apslib.io import AtomicWriteError

    path = tmp_path / "checkpoint.pt"
    atomic_torch_save({"epoch": 1}, path)
    old = path.read_bytes()

    def full_disk(obj, f, *a, **k):
        f.write(b"PK\x03\x04 half a checkpoint")  # some bytes reach the temporary file first
        raise error

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(AtomicWriteError) as info:
        atomic_torch_save({"epoch": 2}, path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and "free space" in msg and cause in msg, msg
    assert isinstance(info.value, OSError) and info.value.__cause__ is None  # no chained traceback
    assert info.value.errno in (errno.ENOSPC, errno.EIO) and info.value.filename == str(path)
    assert path.read_bytes() == old  # the previous checkpoint is intact
    assert [f.name for f in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary file left


def test_other_torch_errors_pass_through(tmp_path, monkeypatch):
    def broken(obj, f, *a, **k):
        raise RuntimeError("something else went wrong")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(RuntimeError, match="something else") as info:
        atomic_torch_save({}, tmp_path / "c.pt")
    assert type(info.value) is RuntimeError and list(tmp_path.iterdir()) == []


def test_remove_temp_files_removes_only_those_of_atomic_writes(tmp_path):
    from apslib.io import remove_temp_files

    left = [".checkpoint.pt.k2j_x9a.tmp", ".history.json.abc123.tmp", ".in_distribution.csv.0aB_z.tmp"]
    kept = [".lock", "a.tmp", ".tmp", "checkpoint.pt", ".hidden", "notes.checkpoint.pt.x.tmp"]
    for name in left + kept:
        (tmp_path / name).write_text("x")
    (tmp_path / ".folder.abc.tmp").mkdir()  # not a file: kept
    removed = remove_temp_files(tmp_path)
    assert sorted(p.name for p in removed) == sorted(left)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*kept, ".folder.abc.tmp"])
    assert remove_temp_files(tmp_path / "missing") == []

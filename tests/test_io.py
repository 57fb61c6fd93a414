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

"""Cases of data a fastMRI user has: files that are not single-coil volumes, half-written
datasets, wrong folders; seen through ``python -m apslib.training`` and ``apslib.data``."""

from __future__ import annotations

import re
import shutil
import signal
import time

import numpy as np

from .harness import (
    PYTHON,
    SetupError,
    all_ok,
    bad,
    case,
    cli,
    labelled,
    ok,
    popen,
    refused,
    size,
    warned_or_refused,
)
from .world import SYNTH, Ctx, lfs_pointer, read, replace, train_args, volume

TWO_D = re.compile(r"2-?D|two-dimensional|\(H, W\)|slice axis", re.I)


def _train(ctx: Ctx, data, *extra):
    return cli("training", *train_args("APS", data, ctx.tmp / "runs", 1, *extra))


def _edited(ctx: Ctx, split: str, i: int, key: str, change) -> tuple:
    """A manifest-less copy of the dataset whose volume ``split``/``i`` has ``key`` replaced
    by ``change(old)``; returns the root and the volume's name."""
    root = ctx.data(manifest=False)
    vol = volume(root, split, i)
    replace(vol, key, change(read(vol, key)))
    return root, vol.name


@case(
    9,
    "all-zero training volume",
    "a one-line warning (training goes on) or one error line, naming the volume",
)
def zero_train_volume(ctx: Ctx):
    root = ctx.data(manifest=False)
    vol = volume(root, "train", 0)
    for key in ("kspace", "reconstruction_esc"):
        replace(vol, key, np.zeros_like(read(vol, key)))
    r = _train(ctx, root)
    return warned_or_refused(r, vol.name)


@case(
    12,
    "dataset whose synth was killed half-way",
    "data info and training: exit != 0, one error line mentioning 'synth' (the command to rerun)",
)
def synth_killed(ctx: Ctx):
    out = ctx.tmp / "data"
    args = ["--out", out, "--size", "64", "--train-volumes", "60", "--val-volumes", "2", "--slices", "4"]
    p = popen([PYTHON, "-m", "apslib.data", "synth", *args, "--quiet"])
    deadline = time.monotonic() + 60
    while (
        len(list(out.glob("singlecoil_train/*.h5"))) < 2 and p.poll() is None and time.monotonic() < deadline
    ):
        time.sleep(0.02)
    if p.poll() is not None:
        raise SetupError(f"synth ended (exit {p.returncode}) before it could be killed")
    p.send_signal(signal.SIGKILL)
    p.communicate()
    info = refused(cli("data", "info", out), "synth")
    return all_ok(labelled("data info", info), labelled("training", refused(_train(ctx, out), "synth")))


@case(
    13,
    "data info on a multicoil (4-D) file",
    "exit != 0, one error line naming the file and 'multicoil'",
)
def info_multicoil(ctx: Ctx):
    root, name = _edited(ctx, "val", 0, "kspace", lambda k: np.repeat(k[:, None], 4, axis=1))
    return refused(cli("data", "info", root), name, "multicoil")


@case(
    17,
    "fastMRI test-split file in train",
    "exit != 0, one error line naming the file and 'test'",
)
def test_file_in_train(ctx: Ctx):
    root = ctx.data(manifest=False)
    vol = volume(root, "train", 1)
    width = read(vol, "kspace").shape[-1]
    replace(vol, "reconstruction_esc", None)
    replace(vol, "mask", np.arange(width) % 4 == 0)
    return refused(_train(ctx, root), vol.name, "test")


@case(18, "targets of mixed sizes (32 and 48 px)", "exit != 0, one error line mentioning 32 and 48")
def mixed_sizes(ctx: Ctx):
    root = ctx.data(manifest=False)
    shutil.copy(volume(ctx.world.data48, "train", 0), volume(root, "train", 1))
    return refused(_train(ctx, root), size(32), size(48))


@case(
    19,
    "2-D k-space (training and data info)",
    "both: exit != 0, one error line naming the file and saying 2-D",
)
def two_d_kspace(ctx: Ctx):
    root, name = _edited(ctx, "val", 0, "kspace", lambda k: k[0])
    train = labelled("training", refused(_train(ctx, root), name, TWO_D))
    info = labelled("data info", refused(cli("data", "info", root), name, TWO_D))
    return all_ok(train, info)


@case(
    31,
    "NaN in training k-space",
    "exit != 0, one error line naming the file and NaN; never 'lower the learning rate'",
)
def nan_train_kspace(ctx: Ctx):
    def poke(k):
        k = k.copy()
        k[0, 3, 5] = np.nan
        return k

    root, name = _edited(ctx, "train", 0, "kspace", poke)
    r = _train(ctx, root)
    if "learning rate" in r.text:
        return bad(f"blames the learning rate: {r.seen()}")
    return refused(r, name, "nan")


@case(32, "real-valued k-space", "exit != 0, one error line naming the file and 'real'/'complex'")
def real_kspace(ctx: Ctx):
    root, name = _edited(ctx, "train", 0, "kspace", lambda k: np.abs(k).astype(np.float32))
    return refused(_train(ctx, root), name, re.compile("real|complex", re.I))


@case(33, "multicoil file in train", "exit != 0, one error line naming the file and 'multicoil'")
def multicoil_train(ctx: Ctx):
    root, name = _edited(ctx, "train", 0, "kspace", lambda k: np.repeat(k[:, None], 4, axis=1))
    return refused(_train(ctx, root), name, "multicoil")


@case(
    34,
    "git LFS pointers as the training .h5 files",
    "exit != 0, one error line mentioning LFS and the 2 files skipped",
)
def lfs_pointers(ctx: Ctx):
    root = ctx.data(manifest=False)
    for i in range(2):
        lfs_pointer(volume(root, "train", i))
    return refused(_train(ctx, root), "lfs", re.compile(r"\b2\b"))


@case(
    35,
    "--data DIR/singlecoil_train",
    "exit != 0, one error line naming the parent DIR to pass instead",
)
def split_as_root(ctx: Ctx):
    root = ctx.world.data
    parent = re.compile(re.escape(str(root)) + r"(?!/singlecoil)")
    return refused(_train(ctx, root / "singlecoil_train"), parent)


@case(
    39,
    "synth with other parameters over an earlier dataset",
    "exit != 0, one error line mentioning --force; the dataset unchanged",
)
def synth_other_params(ctx: Ctx):
    root = ctx.data()
    before = {p.name: p.stat().st_size for p in root.rglob("*") if p.is_file()}
    r = cli("data", "synth", "--out", root, "--size", "48", *SYNTH)
    after = {p.name: p.stat().st_size for p in root.rglob("*") if p.is_file()}
    return all_ok(refused(r, "--force"), ok() if after == before else bad("the dataset was rewritten"))


@case(48, "image size 30 for a depth-2 U-Net", "exit != 0, one error line mentioning 30 and 4 (2**depth)")
def odd_size(ctx: Ctx):
    root = ctx.tmp / "data30"
    r = cli("data", "synth", "--out", root, "--size", "30", *SYNTH)
    if r.rc != 0:  # a refusal of an unusable size at synth time is fine too
        return refused(r, size(30))
    return refused(_train(ctx, root), size(30), re.compile(r"\b4\b|multiple"))


@case(53, "--data that does not exist", "exit != 0, one error line naming the path")
def data_missing(ctx: Ctx):
    path = ctx.tmp / "knee_singlecoil"
    return refused(_train(ctx, path), str(path))


@case(54, "--data an empty folder", "exit != 0, one error line naming singlecoil_train")
def data_empty(ctx: Ctx):
    path = ctx.tmp / "empty"
    path.mkdir()
    return refused(_train(ctx, path), "singlecoil_train")

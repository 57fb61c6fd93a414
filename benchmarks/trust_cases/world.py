"""The shared fixtures, made once per script run and copied per case, and the file edits
the cases make to them.

Everything lives under one temporary folder: a tiny synthetic dataset (32 px; 2 training
volumes and 1 validation volume of 2 slices), the same at 48 px, two finished tiny runs
(APS and LPF-2: depth 2, channels 4 8 16, one epoch) and an unfinished APS run (3 epochs
planned, killed with SIGKILL after the first, as ``kill -9`` would). A fixture is made the
first time a case asks for it, so ``--only`` builds only what its cases need.
"""

from __future__ import annotations

import functools
import json
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from . import harness
from .harness import PYTHON, cli, must, py

SIZE = 32
TINY = ["--depth", "2", "--channels", "4", "8", "16", "--batch-size", "2"]
QUIET = ["--device", "cpu", "--threads", "1", "--no-progress"]
EVAL = ["--device", "cpu", "--max-shift", "2", "--sweep-slices", "1"]
SYNTH = ["--train-volumes", "2", "--val-volumes", "1", "--slices-per-volume", "2", "--quiet"]
LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize 53656\n"

# train, but SIGKILL the process once epoch `--kill-after` is saved (a `kill -9` mid-run)
KILLED_RUN = """
import os, signal, sys
import apslib.training.__main__ as cli
after = int(sys.argv[1])
real = cli.train
def train(config, **kw):
    def die(record):
        if record["epoch"] >= after:
            os.kill(os.getpid(), signal.SIGKILL)
    return real(config, **{**kw, "callback": die})
cli.train = train
sys.exit(cli.main(sys.argv[2:]))
"""


def train_args(model: str, data, run_dir, epochs: int = 1, *extra) -> list:
    """The tiny training command's arguments (as ``python -m apslib.training ARGS``)."""
    where = ["--data", data, "--run-dir", run_dir]
    return ["--model", model, *TINY, "--epochs", str(epochs), *QUIET, *where, *extra]


def evaluate(run_dir, results_dir, *extra, models=("APS",)):
    """``python -m apslib.evaluate`` of the tiny runs (cpu, small shifts, one sweep slice)."""
    return cli(
        "evaluate", "--run-dir", run_dir, "--results-dir", results_dir, "--models", *models, *EVAL, *extra
    )


def synth(out, size: int = SIZE, *extra):
    return cli("data", "synth", "--out", out, "--size", str(size), *SYNTH, *extra)


class World:
    """The run's temporary folder and its fixtures (each made on first use)."""

    def __init__(self, root: Path):
        self.root = root
        self.fixtures = root / "fixtures"
        self.fixtures.mkdir(parents=True, exist_ok=True)
        harness.ENV = harness.Env(cache=root / "cache")

    @functools.cached_property
    def data(self) -> Path:
        out = self.fixtures / "data"
        must(synth(out), "synth of the shared dataset")
        return out

    @functools.cached_property
    def data48(self) -> Path:
        out = self.fixtures / "data48"
        must(synth(out, 48), "synth of the 48 px dataset")
        return out

    @functools.cached_property
    def runs(self) -> Path:
        out = self.fixtures / "runs"
        for model in ("APS", "LPF-2"):
            must(cli("training", *train_args(model, self.data, out)), f"training {model}")
        return out

    @functools.cached_property
    def unfinished(self) -> Path:
        """Runs folder with ``aps``: 3 epochs planned, killed (SIGKILL) after epoch 1."""
        out = self.fixtures / "unfinished"
        r = py(KILLED_RUN, "1", *train_args("APS", self.data, out, 3))
        if r.rc != -9 or not (out / "aps" / "checkpoint.pt").is_file():
            raise harness.SetupError(f"the killed run did not die after epoch 1 (exit {r.rc}): {r.seen()}")
        return out


@dataclass
class Ctx:
    """A case's own folder and the shared world; copies of fixtures go into the folder."""

    number: int
    tmp: Path
    world: World

    def copy(self, src: Path, name: str) -> Path:
        dst = self.tmp / name
        shutil.copytree(src, dst)
        return dst

    def data(self, name: str = "data", *, manifest: bool = True) -> Path:
        """A copy of the shared dataset; without its manifest it is a plain fastMRI-like
        root (the volumes edited by a case are then not an incomplete embedded dataset)."""
        root = self.copy(self.world.data, name)
        if not manifest:
            (root / "apslib_synth.json").unlink()
        return root

    def runs(self, name: str = "runs") -> Path:
        return self.copy(self.world.runs, name)

    def unfinished(self, name: str = "runs") -> Path:
        return self.copy(self.world.unfinished, name)


# ---- Volumes ---------------------------------------------------------------------------------


def volume(root: Path, split: str, i: int = 0) -> Path:
    return root / f"singlecoil_{split}" / f"file_synth_{split}_{i:04d}.h5"


def read(path: Path, key: str) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f[key][()]


def replace(path: Path, key: str, value) -> None:
    """Replace dataset ``key`` of ``path`` (``None``: delete it)."""
    with h5py.File(path, "r+") as f:
        if key in f:
            del f[key]
        if value is not None:
            f[key] = value


def lfs_pointer(path: Path) -> None:
    path.write_text(LFS_POINTER.format(f"{abs(hash(path.name)):064d}"[:64]))


# ---- Processes and folders -------------------------------------------------------------------


def dead_pid() -> int:
    """The pid of a process that has exited (a ``kill -9``-ed trainer's, for a stale lock)."""
    p = subprocess.Popen([PYTHON, "-c", "pass"])
    p.wait()
    return p.pid


def stale_lock(folder: Path, command: str = "python -m apslib.training ...") -> Path:
    """A lock as a trainer killed on this host leaves it (its pid is dead)."""
    lock = folder / ".lock"
    info = dict(pid=dead_pid(), host=socket.gethostname(), since="2024-01-01 00:00:00 +0000", command=command)
    lock.write_text(json.dumps({**info, "token": "0" * 32}))
    return lock

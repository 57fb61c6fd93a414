"""What training returns: the result of a call of :func:`apslib.training.train`
(:class:`RunResult`), and the long table of the histories of runs (:func:`history_frame`)
that notebooks plot."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .config import TrainConfig
from .runs import read_run

__all__ = ["RunResult", "history_frame"]


@dataclass
class RunResult:
    """What :func:`apslib.training.train` did: ``skipped`` (already finished), the history, the folder."""

    name: str
    path: Path
    config: TrainConfig
    history: list = field(default_factory=list)
    done: bool = False
    skipped: bool = False
    seconds: float = 0.0

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}

    @property
    def train_seconds(self) -> float:
        """Wall time of all epochs of the run (over every call that trained it)."""
        return float(sum(r["seconds"] for r in self.history))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "path": str(self.path),
            "done": self.done,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 2),
            "train_seconds": round(self.train_seconds, 2),
            "final": self.final,
            "config": self.config.to_dict(),
        }


def history_frame(runs):
    """Long table of the histories of ``runs`` (:class:`RunResult`, run folders, or a
    mapping key -> either; a key is a model name or a ``(name, seed)`` pair): one row per
    model, seed and epoch, columns ``model`` and ``seed`` first."""
    import pandas as pd

    items = runs.items() if isinstance(runs, dict) else [(None, r) for r in runs]
    rows = []
    for key, run in items:
        if isinstance(run, RunResult):
            name, hist, seed = run.name, run.history, run.config.seed
        else:
            info = read_run(run)
            name, hist, seed = info["name"], info["history"], info["config"].seed
        if isinstance(key, tuple):
            key = key[0]
        rows += [{"model": key or name, "seed": seed, **rec} for rec in hist]
    return pd.DataFrame(rows)

"""What an evaluation evaluated: each run's epochs, the data it was trained on next to the
data it is evaluated on, and the image sizes of both; written beside the result tables.

Conventions
-----------
* **Data.** A run records the fingerprint of its training data
  (:func:`apslib.training.identity.data_fingerprint`) and the size of its training images.
  An in-distribution evaluation compares them with the data it evaluates on
  (:func:`check_runs`). Each run gets a label: ``"in distribution"`` (the same data),
  ``"not recorded"`` (a run trained before runs recorded their data: taken as in
  distribution, no warning) or ``"other data"`` (another fingerprint, or another image
  size): one warning per run names both sides, and that run's rows of the tidy tables carry
  ``dataset = "other data"`` instead of ``"val"`` (:data:`OTHER_DATA`,
  :func:`label_tables`), so the paper-shaped tables of ``"val"`` do not show them as in
  distribution. Out of distribution every run is ``"out of distribution"``, whatever its
  image size.
* **Epochs.** When some evaluated run is unfinished (fewer epochs trained than planned),
  the tidy tables get an ``epochs`` column (``"3 of 10"`` on every row of a run, empty on
  reference rows such as ``Zero-filled``), which the paper-shaped tables turn into a note
  (:func:`apslib.evaluate.tables.epochs_note`). Tables of finished runs have no such column:
  they are what they were.
* **``{prefix}_runs.json``** (:func:`write_runs`), written by every evaluation: the data
  evaluated on (fingerprint, image size, constant slices left out) and one record per
  training seed and model (:class:`RunRecord`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import atomic_write_json
from .models import ModelRun
from .tables import epochs_text

__all__ = [
    "IN_DISTRIBUTION",
    "NOT_RECORDED",
    "OTHER_DATA",
    "OUT_OF_DISTRIBUTION",
    "RunRecord",
    "check_runs",
    "check_same_masks",
    "label_tables",
    "write_runs",
]

IN_DISTRIBUTION = "in distribution"
NOT_RECORDED = "not recorded"
OTHER_DATA = "other data"  # also the ``dataset`` of such a run's in-distribution rows
OUT_OF_DISTRIBUTION = "out of distribution"


@dataclass
class RunRecord:
    """One evaluated run: ``model``, training ``seed``, run folder name, epochs (``None``
    where unknown, e.g. a model built in memory), whether it was imported, the data it was
    trained on (``trained_on``: its fingerprint) and at which ``trained_size``, and
    ``data``: its label (``"in distribution"``, ``"not recorded"``, ``"other data"`` or
    ``"out of distribution"``)."""

    model: str
    seed: int
    run: str | None
    epochs_done: int | None
    epochs_planned: int | None
    finished: bool
    imported: bool
    trained_on: dict | None
    trained_size: list[int] | None
    data: str

    @property
    def epochs(self) -> str:
        """``"3 of 10"`` (``"imported"``, ``""`` where unknown)."""
        return "imported" if self.imported else epochs_text(self.epochs_done, self.epochs_planned)


def _size(size) -> str:
    return "x".join(str(int(v)) for v in size)


def _record(name: str, seed: int, run: ModelRun, label: str) -> RunRecord:
    return RunRecord(
        model=name,
        seed=int(seed),
        run=Path(run.path).name if run.path is not None else None,
        epochs_done=run.epochs_done,
        epochs_planned=run.epochs_planned,
        finished=run.finished,
        imported=run.imported,
        trained_on=run.data,
        trained_size=list(run.image_size) if run.image_size else None,
        data=label,
    )


def check_runs(
    all_runs: dict[int, dict[str, ModelRun]],
    *,
    image_size: Iterable[int],
    data_root=None,
    fingerprint: dict | None = None,
) -> list[RunRecord]:
    """Label every run of ``{seed: {name: ModelRun}}`` against the data it is evaluated on:
    ``data_root`` (its fingerprint, computed unless ``fingerprint`` is given) at
    ``image_size``; ``data_root=None``: out of distribution (no comparison). A run trained
    on other data, or on images of another size, is warned about in one line naming both."""
    from ..training.identity import data_fingerprint, describe_data, same_data

    size = [int(v) for v in image_size]
    if data_root is not None and fingerprint is None:
        fingerprint = data_fingerprint(data_root)
    out = []
    for seed, runs in all_runs.items():
        for name, run in runs.items():
            if data_root is None:
                out.append(_record(name, seed, run, OUT_OF_DISTRIBUTION))
                continue
            trained = list(run.image_size) if run.image_size else None
            other = []
            if run.data and fingerprint and not same_data(run.data, fingerprint):
                other.append(f"on {describe_data(run.data)} but is evaluated on {describe_data(fingerprint)}")
            if trained and trained != size:
                other.append(f"on {_size(trained)} images but is evaluated on {_size(size)} images")
            label = OTHER_DATA if other else (IN_DISTRIBUTION if run.data else NOT_RECORDED)
            if other:
                warnings.warn(
                    f"{name} (seed {seed}) was trained {' and '.join(other)} (data root {data_root}): "
                    f"its rows are labelled '{OTHER_DATA}', not in distribution; evaluate it on the data "
                    "it was trained on, or train it on this data",
                    stacklevel=3,
                )
            out.append(_record(name, seed, run, label))
    return out


def check_same_masks(all_runs: dict[int, dict[str, ModelRun]]) -> None:
    """``ValueError`` (one line naming them) unless every run was trained with the same
    undersampling masks: an evaluation makes one set of undersampled inputs (and one
    zero-filled reference) from them."""
    masks: dict[tuple, list[str]] = {}
    for seed, runs in all_runs.items():
        for name, run in runs.items():
            cfg = run.config
            acc, cf = getattr(cfg, "accelerations", None), getattr(cfg, "center_fractions", None)
            if acc is None or cf is None:  # a model built in memory, without a training config
                continue
            key = (tuple(acc), tuple(cf))
            masks.setdefault(key, []).append(f"{name} (seed {seed})")
    if len(masks) > 1:
        groups = "; ".join(
            f"{', '.join(names)}: {'/'.join(f'{a}x' for a in acc)}, centre fraction "
            f"{'/'.join(f'{c:g}' for c in cf)}"
            for (acc, cf), names in masks.items()
        )
        raise ValueError(
            f"the runs were trained with different undersampling masks ({groups}): their inputs "
            "differ, so evaluate each group in its own call (its own --results-dir)"
        )


def label_tables(frame: pd.DataFrame, records: list[RunRecord]) -> pd.DataFrame:
    """``frame`` (a tidy table or per-pair frame with ``model`` and ``seed`` columns) with
    ``dataset`` ``"other data"`` on the ``"val"`` rows of runs labelled so, and an ``epochs``
    column when some run is unfinished (see the module docstring); unchanged otherwise."""
    other = {(r.seed, r.model) for r in records if r.data == OTHER_DATA}
    unfinished = any(not r.finished for r in records)
    if not other and not unfinished:
        return frame
    frame = frame.copy()
    keys = list(zip(frame["seed"], frame["model"])) if len(frame) else []
    if other and "dataset" in frame:
        moved = np.array([k in other for k in keys], dtype=bool) & (frame["dataset"] == "val").to_numpy()
        frame.loc[moved, "dataset"] = OTHER_DATA
    if unfinished:
        text = {(r.seed, r.model): r.epochs for r in records}
        frame["epochs"] = [text.get(k, "") for k in keys]
    return frame


def write_runs(path, records: list[RunRecord], **evaluated) -> Path:
    """``{prefix}_runs.json``: ``evaluated`` (e.g. ``data``: the fingerprint evaluated on,
    ``image_size``, ``constant_slices_left_out``) and ``runs``: one :class:`RunRecord` each
    (with its ``epochs`` text), atomically."""
    runs = [{**asdict(r), "epochs": r.epochs} for r in records]
    return atomic_write_json(Path(path), {**evaluated, "runs": runs}, indent=1)

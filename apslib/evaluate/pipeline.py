"""Whole evaluations of trained runs, as notebooks 03 and 04 (and the CLI) run them.

Conventions
-----------
Each entry point loads the runs of ``run_dir`` (:func:`apslib.evaluate.models.load_runs`),
runs the protocols of :mod:`apslib.evaluate.protocols` and writes, atomically, into
``results_dir``:

* ``{prefix}.csv`` / ``{prefix}.json``: the tidy table (:mod:`apslib.evaluate.tables`);
* ``{prefix}_sweep.csv`` / ``.json``: the exhaustive protocol per ``(model, image, dy, dx)``;
* ``{prefix}_examples.npz``: the examples figure's arrays (:mod:`apslib.evaluate.examples`);
* ``{prefix}_runs.json``: what was evaluated (:mod:`apslib.evaluate.provenance`): each run's
  epochs, the data it was trained on and the data it is evaluated on, the image sizes.

In distribution, each run's recorded data fingerprint and image size are compared with the
data evaluated on: a run trained on other data is warned about once and its rows carry
``dataset = "other data"``; an unfinished run adds an ``epochs`` column to the tables; the
constant validation slices (all zero, say: NMSE and PSNR undefined) are left out (the data
validator's one warning names them). Runs trained with different undersampling masks are refused together.

``prefix`` is ``in_distribution`` (:func:`evaluate_runs`), ``ood``
(:func:`evaluate_runs_ood`) or ``beyond`` (:func:`evaluate_beyond`, notebook 06). ``seeds``
are the training seeds whose runs are evaluated (one run folder per model and seed,
:func:`apslib.names.run_slug`); every table carries a ``seed`` column, and every seed's runs
see the same images and the same shifts (``seed`` seeds the shifts and noise images, not the
runs), so the spread over seeds is the spread of training. The examples are those of the
first seed. A ``results_dir`` that exists as a file is refused before any model runs.

While an entry point runs, it holds the results folder's lock (``results_dir/.lock``, the
run folders' :class:`~apslib.training.folder.RunLock`): a second evaluation into the same
folder, from another process, is refused in one line naming the first; a lock left by a
killed process is recovered with a warning. Within one process the lock is re-entrant (an
entry point that calls another).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path
from typing import TypeVar

import pandas as pd

from ..shifts import seeded_shifts
from .examples import compute_examples, val_example, write_examples
from .models import ModelRun, load_runs, load_val
from .protocols import evaluate_in_distribution, evaluate_ood, evenly_spaced_indices, exhaustive_shifts
from .provenance import (
    IN_DISTRIBUTION,
    NOT_RECORDED,
    RunRecord,
    check_runs,
    check_same_masks,
    label_tables,
    write_runs,
)
from .tables import write_table

__all__ = [
    "EvalResult",
    "results_lock",
    "evaluate_runs",
    "evaluate_loaded",
    "evaluate_runs_ood",
    "evaluate_beyond",
    "PHYSICAL_SHIFTS",
]

# the moves of the physical and field-of-view protocols: integer, half, quarter and mixed
PHYSICAL_SHIFTS = (
    (1.0, 0.0),
    (0.0, 1.0),
    (3.0, 5.0),
    (0.5, 0.0),
    (0.0, 0.5),
    (0.5, 0.5),
    (0.25, 0.0),
    (2.5, -1.5),
)


@dataclass
class EvalResult:
    """The tidy ``table``, the exhaustive protocol's per-pair frame (``sweep``), the files
    written (``paths``: ``table``, ``sweep``, ``examples``, ``runs``), the wall time, the
    ``{name: Examples}`` of the examples figure and what was evaluated (``runs``: one
    :class:`~apslib.evaluate.provenance.RunRecord` per seed and model)."""

    table: pd.DataFrame
    sweep: pd.DataFrame
    paths: dict
    seconds: float
    examples: dict = field(default_factory=dict)
    runs: list[RunRecord] = field(default_factory=list)

    @property
    def in_distribution(self) -> bool:
        """Every run was evaluated on the data it was trained on (or does not record it)."""
        return all(r.data in (IN_DISTRIBUTION, NOT_RECORDED) for r in self.runs)


def _results_folder(results_dir) -> Path:
    results_dir = Path(results_dir)
    if results_dir.exists() and not results_dir.is_dir():
        raise NotADirectoryError(
            f"results_dir {results_dir} is a file: give a folder for the "
            "result tables (it is created if missing)"
        )
    return results_dir


_HELD: dict[Path, int] = {}  # results folders this process holds the lock of (depth)
_F = TypeVar("_F", bound=Callable)


@contextmanager
def results_lock(results_dir) -> Iterator[Path]:
    """Hold the lock of ``results_dir`` (created if missing) while the block writes into it:
    :class:`~apslib.training.errors.RunLockedError` (one line) when another process
    evaluates into it; re-entrant within this process."""
    from ..training.folder import RunLock

    path = _results_folder(results_dir)
    key = path.expanduser().resolve()
    if _HELD.get(key):
        _HELD[key] += 1
        try:
            yield path
        finally:
            _HELD[key] -= 1
        return
    lock = RunLock(path, user="evaluation", option="--results-dir (results_dir)", folder="results folder")
    lock.acquire()
    _HELD[key] = 1
    try:
        yield path
    finally:
        _HELD.pop(key, None)
        lock.release()


def _locked(fn: _F) -> _F:
    """Run the entry point ``fn(..., results_dir, ...)`` under :func:`results_lock`, its
    ``models`` (or ``all_runs``) checked first: nothing to evaluate creates no folder."""
    import inspect

    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        if "models" in bound.arguments:
            bound.arguments["models"] = _check_models(bound.arguments["models"])
        if "all_runs" in bound.arguments:
            _check_loaded(bound.arguments["all_runs"])
        with results_lock(bound.arguments["results_dir"]):
            return fn(*bound.args, **bound.kwargs)

    return wrapper  # type: ignore[return-value]


def _check_models(models) -> list[str]:
    """``models`` as a list, or a one-line ``ValueError`` unless it is a non-empty list of
    model names (a str alone is refused: it is no list of names)."""
    names = list(models) if isinstance(models, Iterable) and not isinstance(models, str) else []
    if not names or not all(isinstance(m, str) and m.strip() for m in names):
        raise ValueError(
            f'models must be a non-empty list of model names such as ["Baseline", "APS"], got {models!r}'
        )
    return names


def _check_loaded(all_runs) -> None:
    """A one-line ``ValueError`` unless ``all_runs`` maps at least one seed to some runs."""
    if not isinstance(all_runs, dict) or not all_runs or not all(all_runs.values()):
        got = {s: list(r) for s, r in all_runs.items()} if isinstance(all_runs, dict) else type(all_runs)
        raise ValueError(
            "all_runs must map each training seed to its runs {name: ModelRun}, none empty, such "
            f'as {{0: load_runs(run_dir, ["Baseline", "APS"])}}; got {got}'
        )


def _check_seeds(seeds) -> list[int]:
    seeds = [int(s) for s in ([seeds] if isinstance(seeds, int) else seeds)]
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct training seeds >= 0, e.g. [0, 1, 2]; got {seeds}")
    return seeds


def _check_counts(**counts) -> None:
    """``ValueError`` (one line naming the option) unless each count is an integer >= 1
    (``None`` allowed for ``sweep_slices``/``slices``: every slice; ``image_limit``: every
    image)."""
    what = {
        "max_shift": "the random shifts are drawn per axis from [-max_shift, max_shift - 1]",
        "sweep_slices": "the exhaustive protocol's slices; None: every slice",
        "slices": "the validation slices of the protocols; None: every slice",
        "image_limit": "images of --image-dir; None: every image",
    }
    for name, value in counts.items():
        if value is None and name != "max_shift":
            continue
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} ({name}) must be an integer >= 1 ({what[name]}), got {value!r}")


def _tagged(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    frame = frame.copy()
    if "seed" in frame:
        frame["seed"] = seed
    else:
        frame.insert(1 if "model" in frame else 0, "seed", seed)
    return frame


def _write(results_dir: Path, prefix: str, table, frame, ex, records: list[RunRecord], **evaluated) -> dict:
    return {
        "table": write_table(table, results_dir / f"{prefix}.csv"),
        "sweep": write_table(frame, results_dir / f"{prefix}_sweep.csv"),
        "examples": write_examples(results_dir / f"{prefix}_examples.npz", ex),
        "runs": write_runs(results_dir / f"{prefix}_runs.json", records, evaluation=prefix, **evaluated),
    }


def _load_val(all_runs: dict[int, dict[str, ModelRun]], data_root, seed: int):
    """``(val, records, evaluated)``: the validation slices of ``data_root`` with the runs'
    masks (the same for every run, checked), constant slices left out; each run's
    :class:`RunRecord` against that data; the data evaluated on, for ``{prefix}_runs.json``."""
    from ..training.identity import data_fingerprint

    check_same_masks(all_runs)
    cfg = next(iter(next(iter(all_runs.values())).values())).config
    val = load_val(
        data_root,
        center_fractions=cfg.center_fractions,
        accelerations=cfg.accelerations,
        seed=seed,
        exclude_constant=True,
    )
    size = [int(v) for v in val.image.shape[-2:]]
    fingerprint = data_fingerprint(data_root)
    records = check_runs(all_runs, image_size=size, data_root=data_root, fingerprint=fingerprint)
    evaluated = {
        "data": fingerprint,
        "image_size": size,
        "slices": len(val),
        "constant_slices_left_out": val.left_out,
    }
    return val, records, evaluated


@_locked
def evaluate_runs(
    run_dir,
    data_root,
    models: Sequence[str],
    results_dir,
    *,
    seed: int = 0,
    max_shift: int = 16,
    sweep_slices: int = 8,
    device: str = "auto",
    batch_size: int = 32,
    example_index: int | None = None,
    prefix: str = "in_distribution",
    seeds: Sequence[int] = (0,),
) -> EvalResult:
    """In-distribution evaluation of the trained ``models`` of ``run_dir`` on the
    validation split of ``data_root``: random protocol + exhaustive protocol on
    ``sweep_slices`` evenly spaced slices. Writes ``results_dir/{prefix}.csv/.json`` (tidy
    table), ``results_dir/{prefix}_sweep.csv`` (per (model, slice, shift)) and
    ``results_dir/{prefix}_examples.npz`` (:class:`Examples` of validation slice
    ``example_index``, default the middle slice of the first volume, under its volume's
    random shift), for each training seed in ``seeds``."""
    start = time.perf_counter()
    results_dir = _results_folder(results_dir)
    seeds = _check_seeds(seeds)
    _check_counts(max_shift=max_shift, sweep_slices=sweep_slices)
    all_runs = {s: load_runs(run_dir, models, device, seed=s) for s in seeds}  # all missing first
    return evaluate_loaded(
        all_runs,
        data_root,
        results_dir,
        seed=seed,
        max_shift=max_shift,
        sweep_slices=sweep_slices,
        batch_size=batch_size,
        example_index=example_index,
        prefix=prefix,
        start=start,
    )


@_locked
def evaluate_loaded(
    all_runs: dict[int, dict[str, ModelRun]],
    data_root,
    results_dir,
    *,
    seed: int = 0,
    max_shift: int = 16,
    sweep_slices: int = 8,
    batch_size: int = 32,
    example_index: int | None = None,
    prefix: str = "in_distribution",
    start: float | None = None,
) -> EvalResult:
    """:func:`evaluate_runs` on runs already in memory, ``{training seed: {name: ModelRun}}``
    (e.g. models converted from a trained run, :mod:`apslib.evaluate.conversion`)."""
    start = time.perf_counter() if start is None else start
    results_dir = _results_folder(results_dir)
    _check_counts(max_shift=max_shift, sweep_slices=sweep_slices)
    seeds = list(all_runs)
    val, records, evaluated = _load_val(all_runs, data_root, seed)
    idx = evenly_spaced_indices(len(val), sweep_slices)
    ids = [f"{Path(val.fname[i]).stem}:{val.slice_num[i]}" for i in idx]
    tables, frames = [], []
    for s, runs in all_runs.items():
        t1 = evaluate_in_distribution(runs, val, max_shift=max_shift, seed=seed, batch_size=batch_size)
        t2, frame = exhaustive_shifts(
            runs,
            val.image[idx],
            acquisitions=[val.acquisition[i] for i in idx],
            batch_size=batch_size,
            image_ids=ids,
        )
        tables += [_tagged(t1, s), _tagged(t2, s)]
        frames.append(_tagged(frame, s))
    table, frame = pd.concat(tables, ignore_index=True), pd.concat(frames, ignore_index=True)
    table, frame = label_tables(table, records), label_tables(frame, records)
    runs = all_runs[seeds[0]]
    ex = {"val": val_example(runs, val, example_index, max_shift=max_shift, seed=seed)}
    paths = _write(results_dir, prefix, table, frame, ex, records, **evaluated)
    return EvalResult(table, frame, paths, time.perf_counter() - start, ex, records)


@_locked
def evaluate_runs_ood(
    run_dir,
    models: Sequence[str],
    results_dir,
    *,
    size: int = 128,
    image_dir=None,
    image_limit: int | None = None,
    seed: int = 0,
    max_shift: int = 16,
    sweep_images: int = 4,
    noise_count: int = 8,
    device: str = "auto",
    batch_size: int = 32,
    prefix: str = "ood",
    seeds: Sequence[int] = (0,),
) -> EvalResult:
    """Out-of-distribution evaluation on every set of :func:`apslib.data.ood_sets`: random
    protocol, exhaustive protocol on ``sweep_images`` images per set, and the first image of
    each set under its random shift as the examples (first seed), for each training seed in
    ``seeds``. Writes ``results_dir/{prefix}.csv/.json``, ``{prefix}_sweep.csv`` and
    ``{prefix}_examples.npz``."""
    from ..data import ood_sets
    from ..unet import check_size

    start = time.perf_counter()
    results_dir = _results_folder(results_dir)
    seeds = _check_seeds(seeds)
    _check_counts(max_shift=max_shift, image_limit=image_limit)
    all_runs = {s: load_runs(run_dir, models, device, seed=s) for s in seeds}
    for runs in all_runs.values():  # before any image is made: the error names sizes that work
        for run in runs.values():
            check_size((size, size), run.model.config, what="OOD image size")
    sets = ood_sets(size, image_dir=image_dir, image_limit=image_limit, noise_count=noise_count, seed=seed)
    if "folder" in sets:
        sets["folder"].first()  # before any model runs: nothing readable is one line
    records = check_runs(all_runs, image_size=(size, size))
    tables, frames = [], []
    for s, runs in all_runs.items():
        t, frame = evaluate_ood(
            runs, sets, max_shift=max_shift, seed=seed, sweep_images=sweep_images, batch_size=batch_size
        )
        tables.append(_tagged(t, s))
        frames.append(_tagged(frame, s))
    table, frame = pd.concat(tables, ignore_index=True), pd.concat(frames, ignore_index=True)
    table, frame = label_tables(table, records), label_tables(frame, records)
    runs = all_runs[seeds[0]]
    ex = {}
    for name, images in sets.items():  # the first (readable) image of each set, its random shift
        k = seeded_shifts(len(images), max_shift, seed)[0].tolist()
        first, x0 = images.first()  # loads one image, not the whole set again
        ex[name] = compute_examples(runs, x0.float(), k, label=f"{name}: {first}")
    evaluated = {"data": None, "image_size": [size, size], "sets": {n: len(i) for n, i in sets.items()}}
    paths = _write(results_dir, prefix, table, frame, ex, records, **evaluated)
    return EvalResult(table, frame, paths, time.perf_counter() - start, ex, records)


@_locked
def evaluate_beyond(
    run_dir,
    data_root,
    models: Sequence[str],
    results_dir,
    *,
    seeds: Sequence[int] = (0,),
    steps: int = 4,
    slices: int = 8,
    shifts: Sequence[tuple[float, float]] = PHYSICAL_SHIFTS,
    margin: int = 16,
    ood_size: int = 128,
    ood_pad: int = 16,
    ood_images: int = 8,
    example_shift: tuple[float, float] = (0.5, 0.5),
    seed: int = 0,
    device: str = "auto",
    batch_size: int = 32,
    prefix: str = "beyond",
) -> EvalResult:
    """Notebook 06's protocols (:mod:`apslib.evaluate.beyond`) for each training seed:
    sub-pixel circular shifts on a grid of ``steps`` offsets per pixel along y, x and the
    diagonal (``slices`` evenly spaced validation slices); physical moves ``shifts`` of the
    same slices through the data pipeline; moved fields of view on the out-of-distribution
    sets without white noise (``ood_images`` scenes per set of ``ood_size + 2 * ood_pad``,
    cropped to ``ood_size``; noise has no band limit, so its sub-pixel moves measure
    interpolation rather than the network). Writes
    ``{prefix}.csv`` (tidy: statistics over images per model, seed, protocol and shift),
    ``{prefix}_sweep.csv`` (one row per model, seed, image and shift) and
    ``{prefix}_examples.npz`` (a validation slice under ``example_shift``, first seed)."""
    from ..data import ood_sets
    from ..subpixel import shift_pairs, subpixel_offsets
    from .beyond import fov_protocol, physical_protocol, read_kspace_slices, shift_summary, subpixel_protocol

    start = time.perf_counter()
    results_dir = _results_folder(results_dir)
    seeds = _check_seeds(seeds)
    _check_counts(slices=slices)
    all_runs = {s: load_runs(run_dir, models, device, seed=s) for s in seeds}
    cfg = next(iter(all_runs[seeds[0]].values())).config
    val, records, evaluated = _load_val(all_runs, data_root, seed)
    idx = evenly_spaced_indices(len(val), slices)
    ids = [f"{Path(val.fname[i]).stem}:{val.slice_num[i]}" for i in idx]
    offsets = subpixel_offsets(steps)
    grid = list(dict.fromkeys(p for a in ("y", "x", "diagonal") for p in shift_pairs(offsets, axes=a)))
    items = read_kspace_slices(data_root, slices)
    scenes = {
        name: images.stack()[evenly_spaced_indices(len(images), ood_images)]
        for name, images in ood_sets(ood_size + 2 * ood_pad, noise_count=1, seed=seed).items()
        if name != "noise"
    }
    frames, moved = [], {}  # the pipeline's moved samples, computed once for every seed
    for s, runs in all_runs.items():
        parts = [
            subpixel_protocol(runs, val.image[idx], grid, image_ids=ids, batch_size=batch_size),
            physical_protocol(
                runs,
                items,
                shifts,
                center_fractions=cfg.center_fractions,
                accelerations=cfg.accelerations,
                margin=margin,
                batch_size=batch_size,
                cache=moved,
            ),
            fov_protocol(runs, scenes, ood_size, shifts, margin=margin, batch_size=batch_size),
        ]
        frames += [_tagged(p, s) for p in parts]
    frame = label_tables(pd.concat(frames, ignore_index=True), records)
    table = pd.concat([_tagged(shift_summary(frame[frame.seed == s]), s) for s in seeds], ignore_index=True)
    table = label_tables(table, records)
    mid = val.default_example()
    ex = {
        "val": compute_examples(
            all_runs[seeds[0]],
            val.image[mid],
            example_shift,
            label=f"{Path(val.fname[mid]).name}, slice {val.slice_num[mid]}",
        )
    }
    paths = _write(results_dir, prefix, table, frame, ex, records, **evaluated)
    return EvalResult(table, frame, paths, time.perf_counter() - start, ex, records)

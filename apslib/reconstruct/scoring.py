"""Scoring a folder of reconstructions with fastMRI's own evaluation (``fastmri.evaluate``)."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data import DataError, decode_attr, has_hdf5_signature
from .core import RECONSTRUCTION_KEY

__all__ = ["TARGET_KEYS", "METRICS", "ScoreResult", "score_reconstructions"]

TARGET_KEYS = {"singlecoil": "reconstruction_esc", "multicoil": "reconstruction_rss"}  # as fastmri.evaluate
METRICS = ("MSE", "NMSE", "PSNR", "SSIM")  # fastmri.evaluate.METRIC_FUNCS, in the order it prints


@dataclass
class ScoreResult:
    """fastMRI's evaluation of a folder: ``means`` and ``stddevs`` (sample standard
    deviation over volumes, as fastmri's ``Metrics``; NaN for one volume) per metric,
    from ``fastmri.evaluate.evaluate`` itself, and ``per_volume`` rows (``fname``,
    ``acquisition`` and each metric) computed with the same functions on the same crops."""

    means: dict[str, float]
    stddevs: dict[str, float]
    per_volume: list[dict] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.per_volume)

    def summary(self) -> str:
        """fastmri's printed line: ``MSE = ... +/- ... NMSE = ... PSNR = ... SSIM = ...``
        (the mean and twice the standard deviation, ``.4g``)."""
        return " ".join(
            f"{m} = {self.means[m]:.4g} +/- {2 * self.stddevs[m]:.4g}" for m in sorted(self.means)
        )


def _scalar(v) -> float:
    return float(np.asarray(v, dtype=np.float64).reshape(-1)[0])


def _check_folders(target_dir: Path, predictions_dir: Path, key: str) -> list[Path]:
    """The target files; one-line errors for what ``fastmri.evaluate`` would crash on."""
    if not target_dir.is_dir():
        raise FileNotFoundError(
            f"--target-path {target_dir} is not a folder: give the split's folder, e.g. DATA/singlecoil_val"
        )
    if not predictions_dir.is_dir():
        raise FileNotFoundError(
            f"--predictions-path {predictions_dir} is not a folder: write the reconstructions with "
            "`python -m apslib.reconstruct` first"
        )
    targets = sorted(target_dir.iterdir())
    for t in targets:
        if not (t.is_file() and has_hdf5_signature(t)):
            raise DataError(
                f"{t} is not an HDF5 volume, and fastmri.evaluate reads every entry of --target-path: "
                "move it out of the folder"
            )
    if not targets:
        raise FileNotFoundError(f"no volumes in --target-path {target_dir}")
    missing = [t.name for t in targets if not (predictions_dir / t.name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"no reconstruction of {len(missing)} of the {len(targets)} volumes in {predictions_dir} "
            f"(first: {missing[0]}): run `python -m apslib.reconstruct` on that split (it resumes)"
        )
    return targets


def _per_volume(targets: list[Path], args: argparse.Namespace, key: str) -> list[dict]:
    """fastmri.evaluate's loop, one row per volume (the same filters, crops and functions)."""
    import h5py
    from fastmri.data import transforms
    from fastmri.evaluate import METRIC_FUNCS

    rows = []
    for t in targets:
        p = args.predictions_path / t.name
        try:
            with h5py.File(t, "r") as target, h5py.File(p, "r") as recons:
                acquisition = decode_attr(target.attrs.get("acquisition", ""))
                if args.acquisition and args.acquisition != acquisition:
                    continue
                if key not in target:
                    raise DataError(
                        f"{t} has no {key!r} (a test-split file?): only a split with targets can be "
                        "scored; test-split reconstructions go to the fastMRI leaderboard"
                    )
                gt, pred = target[key][()], recons[RECONSTRUCTION_KEY][()]
        except (OSError, KeyError) as err:
            raise DataError(
                f"cannot read {p} or {t} ({type(err).__name__}: {err}): rewrite the reconstruction with "
                "`python -m apslib.reconstruct`"
            ) from err
        gt = transforms.center_crop(gt, (gt.shape[-1], gt.shape[-1]))
        pred = transforms.center_crop(pred, (gt.shape[-1], gt.shape[-1]))
        if gt.shape != pred.shape:
            raise DataError(
                f"{p} is {pred.shape} after fastmri's crop, its target {gt.shape}: not a reconstruction "
                "of this volume; rewrite it with `python -m apslib.reconstruct`"
            )
        row = {"fname": t.name, "acquisition": acquisition}
        row.update({m: _scalar(METRIC_FUNCS[m](gt, pred)) for m in METRICS})
        rows.append(row)
    return rows


def score_reconstructions(
    target_dir,
    predictions_dir,
    *,
    challenge: str = "singlecoil",
    acquisition: str | None = None,
) -> ScoreResult:
    """fastMRI's evaluation of the reconstructions in ``predictions_dir`` against the
    targets in ``target_dir`` (e.g. ``DATA/singlecoil_val``): ``fastmri.evaluate.evaluate``
    itself (every volume of ``target_dir``, centre-cropped to its width, NMSE/PSNR/SSIM with
    the target volume's maximum as data range), plus the same metrics per volume.

    ``python -m fastmri.evaluate`` computes the same but, on numpy 2, fails at its final print
    (its ``Metrics.__repr__`` formats an array); :meth:`ScoreResult.summary` prints its line.
    ``acquisition``: fastmri's filter (``CORPD_FBK``, ``CORPDFS_FBK``). A target folder with stray files, a
    missing reconstruction or one of another shape raise one-line errors.
    """
    from fastmri import evaluate as fe

    if challenge not in TARGET_KEYS:
        raise ValueError(f"challenge must be one of {list(TARGET_KEYS)}, got {challenge!r}")
    key = TARGET_KEYS[challenge]
    args = argparse.Namespace(
        target_path=Path(target_dir).expanduser(),
        predictions_path=Path(predictions_dir).expanduser(),
        challenge=challenge,
        acquisition=acquisition,
        acceleration=None,
    )
    targets = _check_folders(args.target_path, args.predictions_path, key)
    rows = _per_volume(targets, args, key)
    if not rows:
        raise ValueError(f"no volume of {args.target_path} passes the filters (acquisition {acquisition!r})")
    metrics = fe.evaluate(args, key)
    means = {m: _scalar(metrics.metrics[m].mean()) for m in METRICS}
    stddevs = {m: _scalar(metrics.metrics[m].stddev()) if len(rows) > 1 else math.nan for m in METRICS}
    return ScoreResult(means, stddevs, rows)

"""Reconstructions in fastMRI's format, and fastMRI's own scoring of them.

* :func:`reconstruct_split` (CLI: ``python -m apslib.reconstruct --run RUN --data DATA
  --split val|test --out OUT``): every volume of a fastMRI single-coil split reconstructed
  by a trained run (any run folder :func:`apslib.training.load_model` loads), written as
  ``fastmri.save_reconstructions`` writes them: one HDF5 file per volume, named like its
  input, dataset ``reconstruction``, float32 ``(slices, h, w)`` in image units at the
  target's size. The validation split is undersampled with the masks apslib's evaluation
  uses; the test split is read as fastMRI ships it (undersampled k-space and its ``mask``).
  Batched, with a progress bar, resumable (complete outputs are skipped) and atomic.
* :func:`score_reconstructions` (CLI: ``python -m apslib.reconstruct.score --target-path
  DATA/singlecoil_val --predictions-path OUT --challenge singlecoil``, the flags of
  ``python -m fastmri.evaluate``): ``fastmri.evaluate.evaluate`` itself, its line printed
  (fastmri's own print fails on numpy 2), and the same metrics per volume.

Errors a user can fix are one line (``error: ...``, exit status 1).
"""

from .core import (
    RECONSTRUCT_SPLITS,
    RECONSTRUCTION_KEY,
    ReconstructResult,
    is_complete,
    load_run,
    reconstruct_split,
)
from .scoring import METRICS, TARGET_KEYS, ScoreResult, score_reconstructions

__all__ = [
    "RECONSTRUCTION_KEY",
    "RECONSTRUCT_SPLITS",
    "ReconstructResult",
    "is_complete",
    "load_run",
    "reconstruct_split",
    "METRICS",
    "TARGET_KEYS",
    "ScoreResult",
    "score_reconstructions",
]

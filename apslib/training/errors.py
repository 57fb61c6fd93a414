"""What can stop a training run: one exception per cause, each with a one-line message
that names the file or value and says what to do.

Every error of a run is a :class:`TrainingError` (the CLI prints it as one line and exits
with status 1; :class:`NonFiniteLossError` with 3). :class:`TrainingInterrupted` is a
``KeyboardInterrupt`` (status 130): the run is saved up to its last epoch.
"""

from __future__ import annotations

from pathlib import Path

RETRAIN_HINT = "--retrain (retrain=True)"  # how a message names starting a run over

__all__ = [
    "RETRAIN_HINT",
    "TrainingError",
    "RunConflictError",
    "RunFolderError",
    "RunLockedError",
    "CheckpointError",
    "RunVersionError",
    "NonFiniteLossError",
    "TrainingInterrupted",
]


class TrainingError(RuntimeError):
    """A training run cannot go on; the message says why and what to do."""


class RunConflictError(TrainingError, ValueError):
    """The run folder holds a run with another configuration."""


class RunFolderError(TrainingError):
    """The run folder cannot be used: it is a file, or it cannot be written."""


class RunLockedError(TrainingError):
    """Another process trains in this run folder."""


class CheckpointError(TrainingError):
    """A checkpoint is missing where one must be, unreadable, or of an unknown format."""


class RunVersionError(TrainingError):
    """A run folder or checkpoint written by an apslib version whose files this one does not read."""


class NonFiniteLossError(TrainingError, FloatingPointError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: ``epochs_completed`` are saved; rerunning resumes."""

    def __init__(self, message: str, epochs_completed: int, path: Path):
        super().__init__(message)
        self.epochs_completed, self.path = epochs_completed, path

"""Training the paper's U-Nets on fastMRI-format data: checkpoints, exact resume, DDP.

=========================================  ================================================
:mod:`~apslib.training.config`             :class:`TrainConfig` (the paper's protocol by
                                           default), :func:`config_for`, the generated CLI
:mod:`~apslib.training.loop`               :func:`train`: set-up, resume, epochs, saving
:mod:`~apslib.training.steps`              the model and data of a config, one optimisation
                                           step, one validation pass
:mod:`~apslib.training.runs`               a run folder's files: write, read back, verify,
                                           check against each other, rebuild
:mod:`~apslib.training.identity`           what a run is: its identity, its data's
                                           fingerprint (:func:`data_fingerprint`)
:mod:`~apslib.training.plan`               the plan of a call: skip, resume or start fresh
:mod:`~apslib.training.results`            what a call returns, the table of histories
:mod:`~apslib.training.folder`             the folder itself: checks and the lock
:mod:`~apslib.training.distributed`        DDP under torchrun
:mod:`~apslib.training.errors`             one exception per cause, one-line messages
``python -m apslib.training``              the CLI (:mod:`apslib.training.__main__`)
=========================================  ================================================

Protocol (the defaults): Adam lr 1e-3, StepLR every 5 epochs x0.5, MSE of the output
clamped to [-6, 6], gradient-norm clip 1, batch 16, 50 epochs. A run lives in
``run_dir/<slug of its name>[-seed<k>]/`` (``config.json``, ``history.json``,
``checkpoint.pt``); a finished run is skipped, an interrupted one resumed.
"""

from .config import TrainConfig, config_for
from .errors import (
    CheckpointError,
    NonFiniteLossError,
    RunConflictError,
    RunFolderError,
    RunLockedError,
    RunVersionError,
    TrainingError,
    TrainingInterrupted,
)
from .loop import train
from .results import RunResult, history_frame
from .runs import load_model, read_checkpoint, read_run
from .steps import build_model, val_loader, zero_filled_psnr

__all__ = [
    "TrainConfig",
    "config_for",
    "train",
    "RunResult",
    "read_run",
    "read_checkpoint",
    "load_model",
    "history_frame",
    "build_model",
    "val_loader",
    "zero_filled_psnr",
    "TrainingError",
    "RunConflictError",
    "RunFolderError",
    "RunLockedError",
    "CheckpointError",
    "RunVersionError",
    "NonFiniteLossError",
    "TrainingInterrupted",
]

"""The training loop: set-up and resume, one training epoch, one validation epoch, saving
(the other parts of training: :mod:`apslib.training`).

Protocol (the defaults): Adam lr 1e-3, StepLR every 5 epochs x0.5, MSE of the output
clamped to [-6, 6], gradient-norm clip 1, batch 16, 50 epochs; ``shift_augment``: the
same random circular shift in ``[-max_shift, max_shift - 1]`` on input and target. Each
epoch records training and validation loss, the validation equivariance MSE and NMSE of
``F(T_k x)`` and ``T_k F(x)`` (one informative shift per slice, the same every epoch), PSNR.
LPS levels sample their grids with a Gumbel-softmax whose temperature falls per epoch
(``temperature * temperature_decay**epoch``, floored at ``temperature_min``); validation
(eval mode) takes the argmax.

**Exact resume.** Every random stream of an epoch (shuffling, training masks, shift
augmentation, the Gumbel noise of LPS levels) is re-derived from ``(seed, epoch)``; the
checkpoint holds the model, optimizer, scheduler and RNG states: on CPU a run stopped after
any epoch and resumed ends with exactly the weights of an uninterrupted run.
**Failure.** A NaN/inf loss raises :class:`NonFiniteLossError` (the last good checkpoint stays); Ctrl-C raises
:class:`TrainingInterrupted` (lock released; the same call resumes); the CLI prints each
expected error as one line.

**GPU and multi-GPU.** ``device="auto"``: cuda, mps, cpu. On cuda: cudnn benchmark, pinned
memory; ``amp`` (bf16 autocast), ``channels_last``. Under torchrun (``WORLD_SIZE > 1``):
DDP (NCCL on cuda, gloo on cpu), a ``DistributedSampler``, ``batch_size`` per process,
sharded validation; rank 0 alone locks, writes and prints (resuming a multi-node run
needs the run folder on a shared file system)::

    torchrun --nproc_per_node 4 -m apslib.training --data DATA --run-dir RUNS --model APS
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..learned import set_sampling, temperature_at
from .config import TrainConfig
from .distributed import DistContext, setup_distributed
from .errors import (
    RETRAIN_HINT,
    CheckpointError,
    NonFiniteLossError,
    RunFolderError,
    RunLockedError,
    TrainingError,
    TrainingInterrupted,
)
from .folder import RunLock, check_run_folder
from .identity import data_fingerprint, data_image_size
from .plan import plan_run
from .results import RunResult
from .runs import (
    CHECKPOINT_FILE,
    prepare_run,
    read_checkpoint,
    read_history,
    read_run_files,
    repair_run_files,
    save_epoch,
    write_history,
)
from .steps import (
    augment_batch,
    build_datasets,
    build_model,
    require_data_root,
    to_device,
    train_step,
    validate,
    worker_init_fn,
)

__all__ = ["train"]


# Purposes of the derived seeds (second entry of the seed sequence).
_SHUFFLE, _MASK, _AUGMENT, _VAL_SHIFT, _LOADER, _GUMBEL = 1, 2, 3, 4, 5, 6


def _derive_seed(*parts: int) -> int:
    """A 32-bit seed for one purpose (and epoch, rank) of a run, from its seed."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


@dataclass
class _Run:
    """Everything one call of :func:`train` trains with (built by :func:`_setup`)."""

    config: TrainConfig
    path: Path
    dist: DistContext
    device: torch.device
    model: nn.Module
    net: nn.Module  # the model, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    train_ds: object
    val_dl: torch.utils.data.DataLoader
    sampler: object
    history: list
    start_epoch: int
    data: dict | None = None  # the fingerprint of the data (stored in each checkpoint)
    image_size: list[int] | None = None  # [height, width] of the training images (likewise)

    @property
    def name(self) -> str:
        return self.config.display_name

    @property
    def fmt(self):
        return torch.channels_last if self.config.channels_last else torch.contiguous_format

    @property
    def steps(self) -> int:
        n = len(self.sampler if self.sampler is not None else self.train_ds)
        return math.ceil(n / self.config.batch_size)

    def loader_args(self) -> dict:
        return dict(
            batch_size=self.config.batch_size,
            num_workers=self.config.workers,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=worker_init_fn(self.config),
        )


def _setup(
    config: TrainConfig,
    path: Path,
    plan: str,
    train_ds,
    val_ds,
    dist: DistContext,
    device: torch.device,
    data: dict | None = None,
    image_size: list[int] | None = None,
) -> _Run:
    """Model, optimizer, scheduler and loaders of a run; its checkpoint loaded on ``resume``."""
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    model = build_model(config).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if dist.active and config.sync_bn:
        if not cuda:
            raise ValueError("sync_bn needs CUDA devices; plain BatchNorm is used on CPU")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=config.lr_gamma)
    sampler = dist.sampler(train_ds, seed=_derive_seed(config.seed, _SHUFFLE))
    net = dist.wrap(model)
    run = _Run(config, path, dist, device, model, net, optimizer, scheduler, train_ds, None, sampler, [], 0)
    run.data, run.image_size = data, image_size
    run.val_dl = torch.utils.data.DataLoader(dist.shard(val_ds), shuffle=False, **run.loader_args())
    if plan == "resume":
        _resume(run)
    return run


def _resume(run: _Run) -> None:
    """Load the verified checkpoint: weights, optimizer, scheduler, RNG, history."""
    ckpt = read_checkpoint(run.path)
    try:
        run.model.load_state_dict(ckpt["model"])
    except RuntimeError as err:  # a checkpoint whose weights were edited: its files agree otherwise
        first = str(err).strip().splitlines()[-1].strip()[:160]
        raise CheckpointError(
            f"{run.path / CHECKPOINT_FILE}: its weights do not fit the {run.name} U-Net of its "
            f"configuration ({first}); train the run again with {RETRAIN_HINT}"
        ) from None
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scheduler.load_state_dict(ckpt["scheduler"])
    _set_rng_state(ckpt["rng"])
    run.history, run.start_epoch = list(ckpt["history"]), int(ckpt["epoch"])


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _set_learned_sampling(run: _Run, epoch: int) -> None:
    """LPS levels: this epoch's temperature, and their Gumbel noise from (seed, epoch, rank)."""
    c = run.config
    gumbel = torch.Generator(device=run.device)
    gumbel.manual_seed(_derive_seed(c.seed, _GUMBEL, epoch, run.dist.rank))
    tau = temperature_at(epoch, c.temperature, c.temperature_min, c.temperature_decay)
    set_sampling(run.model, temperature=tau, straight_through=c.straight_through, generator=gumbel)


def _train_epoch(run: _Run, epoch: int, bar) -> float:
    """One pass over the training set; returns the mean training loss (all ranks)."""
    c, dist = run.config, run.dist
    # Every random stream of this epoch from (seed, epoch): resume needs no more.
    gen = torch.Generator().manual_seed(_derive_seed(c.seed, _LOADER, epoch, dist.rank))
    aug = torch.Generator().manual_seed(_derive_seed(c.seed, _AUGMENT, epoch, dist.rank))
    mask_func = run.train_ds.transform.mask_func
    if mask_func is not None:
        mask_func.rng.seed(_derive_seed(c.seed, _MASK, epoch, dist.rank))
    if run.sampler is not None:
        run.sampler.set_epoch(epoch)
    _set_learned_sampling(run, epoch)
    loader = torch.utils.data.DataLoader(
        run.train_ds, sampler=run.sampler, generator=gen, shuffle=run.sampler is None, **run.loader_args()
    )
    check_every = 25 if run.device.type == "cuda" else 1  # loss checks synchronise the GPU
    run.net.train()
    sums = torch.zeros(2, dtype=torch.float64, device=run.device)
    pending: list[torch.Tensor] = []
    steps = run.steps
    for step, batch in enumerate(loader):
        x, y = to_device(batch, run.device)
        if c.shift_augment or c.subpixel_augment:  # DA: integer shifts; SDA: sub-pixel ones
            x, y, _ = augment_batch(x, y, c.max_shift * c.shift_augment, aug, subpixel=c.subpixel_augment)
        x = x.contiguous(memory_format=run.fmt)
        loss = train_step(
            run.net, run.optimizer, x, y, loss=c.loss, clamp=c.clamp, grad_clip=c.grad_clip, amp=c.amp
        )
        sums[0] += loss.double() * x.shape[0]
        sums[1] += x.shape[0]
        pending.append(loss)
        if len(pending) >= check_every or step == steps - 1:
            _check_finite(run, pending, step, epoch)
            bar.set_postfix(epoch=f"{epoch + 1}/{c.epochs}", loss=f"{float(pending[-1]):.4g}", refresh=False)
            pending = []
        bar.update(1)
    if pending:
        _check_finite(run, pending, steps - 1, epoch)
    dist.all_reduce(sums)
    run.scheduler.step()
    return float(sums[0] / sums[1].clamp_min(1))


def _validate_epoch(run: _Run) -> dict:
    """Validation loss, equivariance MSE / NMSE and PSNR (all ranks, rank 0's BatchNorm stats)."""
    c, dist = run.config, run.dist
    dist.broadcast_buffers(run.model)
    gen = torch.Generator().manual_seed(_derive_seed(c.seed, _VAL_SHIFT, dist.rank))
    sums = dist.all_reduce(
        validate(
            run.model,
            run.val_dl,
            device=run.device,
            clamp=c.clamp,
            loss=c.loss,
            amp=c.amp,
            channels_last=c.channels_last,
            max_shift=c.max_shift,
            period=2**c.depth,
            generator=gen,
        )
    ).cpu()
    n = sums[3].clamp_min(1)
    return {
        "val_loss": float(sums[0] / n),
        "val_equiv_mse": float(sums[1] / n),
        "val_equiv_nmse": float(sums[4] / n),
        "val_psnr": float(sums[2] / n),
    }


def _save(run: _Run, history: list, done: bool) -> None:
    """Checkpoint, then history (rank 0); every rank learns if it failed."""
    state = {
        "epoch": len(history),
        "name": run.name,
        "config": run.config.to_dict(),
        "unet": run.config.unet_config().to_dict(),
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "rng": _rng_state(),
        "history": history,
        "world_size": run.dist.world_size,
        "data": run.data,
        "image_size": run.image_size,
    }
    run.dist.on_main(lambda: save_epoch(run.path, run.config, state, done), "save the checkpoint")


def _failure_tail(run: _Run, completed: int) -> str:
    if completed:
        return (
            f"The checkpoint of the last good epoch ({completed}) stays in {run.path}; fix "
            "the cause and run again to resume, or retrain."
        )
    return "No epoch completed; nothing to resume: fix the cause and run again."


def _check_finite(run: _Run, pending: list, step: int, epoch: int) -> None:
    """Raise :class:`NonFiniteLossError` (on every rank) if a pending loss is NaN/inf."""
    losses = torch.stack(pending).double()
    total = run.dist.all_reduce(losses.sum().reshape(1)).cpu()
    if math.isfinite(float(total)):
        return
    local = losses.cpu()
    bad = [i for i, v in enumerate(local.tolist()) if not math.isfinite(v)]
    first = step - len(pending) + 1 + (bad[0] if bad else 0)
    c = run.config
    raise NonFiniteLossError(
        f"{run.name}: the training loss became "
        f"{local[bad[0]].item() if bad else 'non-finite (on another rank)'} at epoch "
        f"{epoch + 1}, step {first + 1}. Lower the learning rate (lr={c.lr:g}) or keep "
        f"gradient clipping on (grad_clip={c.grad_clip}). " + _failure_tail(run, epoch)
    )


def _loop(run: _Run, progress: bool, callback) -> list:
    """Epochs ``start_epoch .. epochs - 1``: train, validate, save, report."""
    from tqdm import tqdm

    c, dist = run.config, run.dist
    bar = tqdm(
        total=run.steps * max(c.epochs - run.start_epoch, 0),
        desc=run.name,
        unit="step",
        disable=not (progress and dist.main),
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=1.0 if sys.stderr.isatty() else 10.0,
    )
    with bar:
        if 0 < run.start_epoch < c.epochs and dist.main:
            bar.write(f"{run.name}: resuming after epoch {run.start_epoch} from {run.path / CHECKPOINT_FILE}")
        try:
            for epoch in range(run.start_epoch, c.epochs):
                t0 = time.perf_counter()
                lr = run.optimizer.param_groups[0]["lr"]
                record = {
                    "epoch": epoch + 1,
                    "train_loss": _train_epoch(run, epoch, bar),
                    **_validate_epoch(run),
                    "lr": lr,
                    "seconds": round(time.perf_counter() - t0, 3),
                    "world_size": dist.world_size,
                }
                if not all(math.isfinite(record[k]) for k in ("train_loss", "val_loss")):
                    raise NonFiniteLossError(
                        f"{run.name}: non-finite loss at epoch {epoch + 1} (train "
                        f"{record['train_loss']}, validation {record['val_loss']}); lower the "
                        f"learning rate (lr={c.lr:g}). " + _failure_tail(run, epoch)
                    )
                _save(run, [*run.history, record], done=epoch + 1 >= c.epochs)
                run.history.append(record)
                if dist.main:
                    bar.write(
                        f"{run.name} epoch {epoch + 1}/{c.epochs}: train "
                        f"{record['train_loss']:.4g}  val {record['val_loss']:.4g}  equiv "
                        f"{record['val_equiv_mse']:.3g}  PSNR {record['val_psnr']:.2f} dB  "
                        f"({record['seconds']:.1f} s)"
                    )
                    if callback is not None:
                        callback(record)
        except NonFiniteLossError as err:
            if dist.main:
                write_history(run.path, c, run.history, False, str(err))
            raise
    if dist.main and run.history and len(run.history) >= c.epochs:
        write_history(run.path, c, run.history, True)  # a finished run asked for no more
    return run.history


def _repaired_if_needed(path: Path):
    """The files of a finished run; a ``history.json``/``config.json`` that is missing,
    damaged or behind the checkpoint is rebuilt under the lock when it can be taken (the
    run is skipped either way: the checkpoint holds what those files would say)."""
    files = read_run_files(path)
    if not files.repairs:
        return files
    try:
        with RunLock(path):
            return repair_run_files(path)
    except (RunLockedError, RunFolderError) as err:
        warnings.warn(files.notice(f"the run is read (not rebuilt: {err})"), stacklevel=3)
        return files


def _interrupted(config: TrainConfig, path: Path, run: _Run | None) -> TrainingInterrupted:
    try:
        n = len(run.history if run else read_history(path).get("history", []))
    except TrainingError:
        n = 0
    what = (
        f"after epoch {n}; rerun the same command to resume"
        if n
        else "before the first epoch completed; nothing to resume: rerun the same command to start"
    )
    return TrainingInterrupted(f"{config.display_name}: interrupted {what}", n, path)


def train(
    config: TrainConfig,
    *,
    retrain: bool = False,
    progress: bool = True,
    callback: Callable[[dict], None] | None = None,
) -> RunResult:
    """Train (or resume, or skip) the run of ``config`` in ``config.run_path``.

    - Finished (``done`` and at least ``epochs`` epochs, checkpoint verified): skipped,
      unless ``retrain``.
    - A checkpoint of an unfinished run (or a finished one with fewer epochs than asked):
      resumed from its last epoch; the result equals an uninterrupted run on CPU.
    - ``retrain=True``, or a folder whose run never completed an epoch: starts over.
    - A ``history.json`` / ``config.json`` that is missing, damaged or behind the
      checkpoint is rebuilt from it, with a warning.
    - Errors (:mod:`apslib.training.errors`): another configuration in the folder, files
      of two runs in it, or data other than the run's (its fingerprint,
      :func:`~apslib.training.identity.data_fingerprint`), :class:`RunConflictError`;
      another process training there, :class:`RunLockedError`;
      a damaged checkpoint, :class:`CheckpointError`; a run folder of another apslib
      version, :class:`RunVersionError`; a folder that cannot be written,
      :class:`RunFolderError`.

    ``config`` is resolved first (:meth:`TrainConfig.resolve`): the result and the run
    folder hold the resolved configuration. ``callback(record)`` is called after each epoch
    (after its checkpoint is written, on rank 0 only). Raises :class:`NonFiniteLossError`
    on a NaN/inf loss, ``ValueError`` on data the U-Net cannot take, ``FileNotFoundError``
    on a missing data folder, :class:`TrainingInterrupted` on Ctrl-C.
    """
    start_time = time.perf_counter()
    config = config.resolve()
    name = config.display_name

    def elapsed() -> float:
        return time.perf_counter() - start_time

    path = check_run_folder(config.run_path)  # ValueError when run_dir is not set
    require_data_root(config)
    data, size = data_fingerprint(config.data_root), data_image_size(config.data_root)
    dist, device = setup_distributed(config.device)
    lock = run = None
    try:
        plan = plan_run(config, path, retrain, data=data)
        if plan != "skip":
            train_ds, val_ds = build_datasets(config)  # checks the data before anything is written
            lock = dist.on_main(RunLock(path).acquire, "lock the run folder")
            plan = plan_run(config, path, retrain, quiet=True, data=data)  # another may have finished it
            dist.barrier()  # every rank has read the folder before rank 0 changes it
        if plan == "skip":
            files = _repaired_if_needed(path) if dist.main else read_run_files(path)
            return RunResult(name, path, config, files.history, done=True, skipped=True, seconds=elapsed())
        if plan == "resume":
            dist.on_main(lambda: repair_run_files(path), "rebuild the run's files from its checkpoint")
        fresh, where = plan == "fresh", dict(torch=torch.__version__, device=str(device))
        prepare = lambda: prepare_run(  # noqa: E731
            path, config, fresh, data=data, image_size=size, world_size=dist.world_size, **where
        )
        dist.on_main(prepare, "prepare the run folder")
        run = _setup(config, path, plan, train_ds, val_ds, dist, device, data, size)
        history = _loop(run, progress, callback)
        dist.barrier()
        done = len(history) >= config.epochs
        return RunResult(name, path, config, history, done=done, seconds=elapsed())
    except KeyboardInterrupt as err:
        if isinstance(err, TrainingInterrupted):
            raise
        raise _interrupted(config, path, run) from err
    finally:
        if lock is not None:
            lock.release()
        dist.close()

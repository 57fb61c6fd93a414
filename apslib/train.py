"""Training: the paper's U-Nets on fastMRI-format data, with checkpoints, exact resume and DDP.

One run = one model trained with one :class:`TrainConfig`. It lives in
``run_dir/<slug of its name>/`` (``"Baseline + DA"`` -> ``baseline-da``)::

    config.json     the configuration (and the U-Net's), written when the run starts
    history.json    {"name", "done", "epochs_planned", "epochs_completed", "history": [...]}:
                    one record per epoch (epoch, train_loss, val_loss, val_equiv_mse,
                    val_psnr, lr, seconds, world_size)
    checkpoint.pt   the last completed epoch, written atomically (temp file + rename):
                    model, optimizer, scheduler, torch RNG states, epoch, config, history

The paper's protocol is the default (:class:`TrainConfig`): Adam lr 1e-3, StepLR every 5
epochs x0.5, MSE of the output clamped to [-6, 6], gradient-norm clipping at 1, batch 16,
50 epochs; ``shift_augment`` adds random circular shifts in ``[-max_shift, max_shift - 1]``
(16) per sample, applied identically to input and target.

Each epoch records the training loss, the validation loss, a validation **equivariance loss**
``MSE(F(T_k x), T_k F(x))`` (one random shift ``k`` per batch, the same shifts every epoch),
and the validation PSNR of the de-normalised output (``x * std + mean``, data range =
the volume's ``max``, averaged over slices).

**Reproducibility and exact resume.** Every random stream of an epoch is re-derived from
``(seed, epoch)``: the shuffling (a fresh ``torch.Generator`` per epoch, or
``DistributedSampler(seed).set_epoch``), the training masks (the mask function's
generator is reseeded at each epoch start; with workers, each worker's from the loader's
seed) and the shift augmentation (its own generator). Resuming therefore needs only the
epoch number, plus the model, optimizer and scheduler states, which the checkpoint holds
(with the torch RNG states, restored too). On CPU a run stopped after any epoch and resumed
ends with exactly the weights of an uninterrupted run with the same seed. A finished run is
skipped unless ``retrain=True``; raising ``epochs`` continues a finished run; a run folder
holding a different configuration is an error (:class:`RunConflictError`), never mixed.

**Failure.** A non-finite loss stops the run with :class:`NonFiniteLossError` naming the
epoch and step; the checkpoint of the last good epoch stays.

**GPU and multi-GPU.** ``device="auto"`` picks cuda, then mps, then cpu. On cuda:
cudnn benchmark, pinned memory and non-blocking copies; ``amp`` runs the forward pass in
bfloat16 autocast; ``channels_last`` switches the memory format. Launched by torchrun
(``WORLD_SIZE > 1``), the run uses DistributedDataParallel (NCCL on cuda, gloo on cpu)
with a ``DistributedSampler``; ``batch_size`` is per process; validation is sharded and
all-reduced; rank 0 alone writes files and shows progress. Resuming a multi-node run
needs the run folder on a shared file system (every rank reads the checkpoint)::

    torchrun --nproc_per_node 4 -m apslib.train --data DATA --run-dir RUNS --model APS

CLI: ``python -m apslib.train --help``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import data as data_mod
from .config import LOSSES, RUNTIME_FIELDS, TrainConfig, config_for
from .device import resolve_device
from .io import atomic_torch_save, atomic_write_json
from .runs import (
    CHECKPOINT_FILE,
    CHECKPOINT_FORMAT,
    CONFIG_FILE,
    HISTORY_FILE,
    PAPER_MODELS,
    RunConflictError,
    RunResult,
    TrainingError,
    _history_doc,
    _read_history,
    history_frame,
    load_model,
    model_name,
    parse_model_name,
    plan_run,
    read_run,
    slugify,
)
from .metrics import psnr
from .shifts import random_shifts, shift_each
from .unet import UNet, UNetConfig, check_size


class NonFiniteLossError(TrainingError, FloatingPointError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


shift_images = shift_each  # the old name; one definition in apslib.shifts

__all__ = [
    "PAPER_MODELS",
    "TrainConfig",
    "RunResult",
    "TrainingError",
    "NonFiniteLossError",
    "RunConflictError",
    "parse_model_name",
    "model_name",
    "slugify",
    "config_for",
    "resolve_device",
    "build_model",
    "build_datasets",
    "val_loader",
    "check_data_size",
    "random_shifts",
    "shift_images",
    "augment_batch",
    "train_step",
    "psnr",
    "zero_filled_psnr",
    "evaluate",
    "train",
    "read_run",
    "load_model",
    "history_frame",
    "plot_curves",
    "main",
]

# Purposes of the derived seeds (second entry of the seed sequence).
_SHUFFLE, _MASK, _AUGMENT, _VAL_SHIFT, _LOADER = 1, 2, 3, 4, 5


# --------------------------------------------------------------------------------------
# Model names
# --------------------------------------------------------------------------------------

# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------

# --------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------

def build_model(config: TrainConfig) -> UNet:
    """The U-Net of ``config``, initialised from ``torch.manual_seed(config.seed)``."""
    torch.manual_seed(config.seed)
    return UNet(config.unet_config())


def _derive_seed(*parts: int) -> int:
    """A 32-bit seed for one purpose (and epoch, rank) of a run, from its seed."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def check_data_size(dataset, unet_config: UNetConfig, what: str = "data") -> None:
    """``ValueError`` unless every target size in ``dataset`` suits the U-Net
    (:func:`apslib.unet.check_size`)."""
    sizes = sorted({tuple(int(v) for v in r.metadata["recon_size"][:2])
                    for r in dataset.raw_samples})
    for shape in sizes:
        check_size(shape, unet_config, what=f"target size of {what}")


def build_datasets(config: TrainConfig):
    """``(train, val)`` datasets of ``config`` (checked against the U-Net's sizes)."""
    if config.data_root is None:
        raise ValueError("TrainConfig.data_root is not set: point it at a fastMRI single-coil "
                         "folder (singlecoil_train/, singlecoil_val/)")
    common = dict(center_fractions=config.center_fractions, accelerations=config.accelerations,
                  acquisition=config.acquisition, volume_fraction=config.volume_fraction,
                  sample_fraction=config.sample_fraction, seed=config.seed)
    data_mod.check_data_root(config.data_root)
    unet_cfg = config.unet_config()
    out = []
    for split in ("train", "val"):
        ds = data_mod.make_dataset(config.data_root, split, **common)
        check_data_size(ds, unet_cfg, f"{config.data_root} ({split})")
        out.append(ds)
    return tuple(out)


def val_loader(config: TrainConfig, batch_size: int | None = None):
    """The validation DataLoader of ``config`` (in order, fixed masks)."""
    _, val = build_datasets(config)
    return torch.utils.data.DataLoader(val, batch_size=batch_size or config.batch_size,
                                       shuffle=False, num_workers=config.workers,
                                       worker_init_fn=data_mod.seed_mask_worker if config.workers else None)


def augment_batch(x: torch.Tensor, y: torch.Tensor, max_shift: int,
                  generator: torch.Generator | None = None):
    """The same random circular shift per sample on input and target: ``(x, y, shifts)``."""
    shifts = random_shifts(x.shape[0], max_shift, generator)
    return shift_images(x, shifts), shift_images(y, shifts), shifts


def _loss_fn(name: str):
    return F.mse_loss if name == "mse" else F.l1_loss


def _forward(model: nn.Module, x: torch.Tensor, clamp: float | None, amp: bool) -> torch.Tensor:
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        out = model(x)
    out = out.float()
    return out.clamp(-clamp, clamp) if clamp else out


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor, *, loss: str = "mse", clamp: float | None = 6.0,
               grad_clip: float | None = 1.0, amp: bool = False) -> torch.Tensor:
    """One optimisation step on ``(x, y)`` (both ``(B, 1, H, W)``); returns the loss
    (detached, on the device; no synchronisation)."""
    out = _forward(model, x, clamp, amp)
    value = _loss_fn(loss)(out, y.float())
    optimizer.zero_grad(set_to_none=True)
    value.backward()
    if grad_clip:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return value.detach()


def _denorm(x: torch.Tensor, batch) -> torch.Tensor:
    return data_mod.denormalize(x, batch.mean, batch.std)


@torch.no_grad()
def zero_filled_psnr(loader) -> float:
    """Mean PSNR over slices of the zero-filled input (de-normalised) against the target:
    the bar every trained model must clear."""
    values = [psnr(_denorm(b.image, b), _denorm(b.target, b), b.max_value) for b in loader]
    return float(torch.cat(values).mean())


@torch.no_grad()
def evaluate(model: nn.Module, loader, *, device: torch.device, clamp: float | None = 6.0,
             loss: str = "mse", amp: bool = False, channels_last: bool = False,
             max_shift: int = 16, generator: torch.Generator | None = None) -> torch.Tensor:
    """Validation sums ``[loss, equivariance MSE, PSNR, slices]`` (float64, on ``device``).

    Loss and equivariance MSE are summed per batch times its size (divide by the slice
    count for means); the equivariance MSE is ``MSE(F(T_k x), T_k F(x))`` with one random
    shift ``k`` per batch drawn from ``generator``; the PSNR is summed per slice.
    """
    model.eval()
    fn = _loss_fn(loss)
    sums = torch.zeros(4, dtype=torch.float64, device=device)
    non_blocking = device.type == "cuda"
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for batch in loader:
        x = batch.image.unsqueeze(1).to(device, non_blocking=non_blocking)
        y = batch.target.unsqueeze(1).to(device, non_blocking=non_blocking)
        x = x.contiguous(memory_format=fmt)
        out = _forward(model, x, clamp, amp)
        dy, dx = random_shifts(1, max_shift, generator)[0].tolist()
        shifted = _forward(model, torch.roll(x, (dy, dx), dims=(-2, -1)), clamp, amp)
        n = x.shape[0]
        sums[0] += fn(out, y).double() * n
        sums[1] += F.mse_loss(shifted, torch.roll(out, (dy, dx), dims=(-2, -1))).double() * n
        sums[2] += psnr(_denorm(out, batch), _denorm(y, batch), batch.max_value).sum()
        sums[3] += n
    return sums


# --------------------------------------------------------------------------------------
# Distributed context
# --------------------------------------------------------------------------------------

@dataclass
class _Dist:
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    owns_group: bool = False

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self):
        if self.active:
            torch.distributed.barrier()

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        if self.active:
            torch.distributed.all_reduce(t)
        return t

    def close(self):
        if self.owns_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _setup_distributed(device_name: str) -> tuple[_Dist, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist(), resolve_device(device_name)
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local)
    owns = False
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        owns = True
    return _Dist(dist.get_world_size(), dist.get_rank(), local, owns), device


# --------------------------------------------------------------------------------------
# Run folder
# --------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------
# The training loop
# --------------------------------------------------------------------------------------

def train(config: TrainConfig, *, retrain: bool = False, progress: bool = True,
          callback: Callable[[dict], None] | None = None) -> RunResult:
    """Train (or resume, or skip) the run of ``config`` in ``config.run_path``.

    - Finished (``done`` and at least ``epochs`` epochs): skipped, unless ``retrain``.
    - A checkpoint of an unfinished run (or a finished one with fewer epochs than asked):
      resumed from its last epoch; the result equals an uninterrupted run on CPU.
    - ``retrain=True``: the folder's old run is deleted and training starts over.
    - Another configuration in the folder: :class:`RunConflictError`.

    ``callback(record)`` is called after each epoch (after its checkpoint is written, on
    rank 0 only). Raises :class:`NonFiniteLossError` on a NaN/inf loss, ``ValueError`` on
    data the U-Net cannot take, ``FileNotFoundError`` on a missing data folder.
    """
    start_time = time.perf_counter()
    if config.run_dir is None:
        raise ValueError("TrainConfig.run_dir is not set: say where runs are written")
    name, path = config.display_name, config.run_path
    if config.data_root is None:
        raise ValueError("TrainConfig.data_root is not set: point it at a fastMRI single-coil "
                         "folder (singlecoil_train/, singlecoil_val/)")
    data_mod.check_data_root(config.data_root)
    dist, device = _setup_distributed(config.device)
    try:
        plan = plan_run(config, path, retrain)
        if plan == "skip":
            run = read_run(path)
            return RunResult(name, path, config, run["history"], done=True, skipped=True,
                             seconds=time.perf_counter() - start_time)
        train_ds, val_ds = build_datasets(config)  # checks the data before anything is written
        dist.barrier()  # every rank has read the folder before rank 0 changes it
        if dist.main:
            path.mkdir(parents=True, exist_ok=True)
            if plan == "fresh":
                for f in (CHECKPOINT_FILE, HISTORY_FILE):
                    (path / f).unlink(missing_ok=True)
            atomic_write_json(path / CONFIG_FILE, {
                "name": name, "slug": config.slug, "config": config.to_dict(),
                "unet": config.unet_config().to_dict(), "torch": torch.__version__,
                "world_size": dist.world_size, "device": str(device)})
        history = _run(config, name, path, plan, train_ds, val_ds, dist, device, progress,
                       callback)
        dist.barrier()
        return RunResult(name, path, config, history, done=len(history) >= config.epochs,
                         seconds=time.perf_counter() - start_time)
    finally:
        dist.close()


def _run(config, name, path, plan, train_ds, val_ds, dist: _Dist, device, progress, callback):
    from tqdm import tqdm

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
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step,
                                                gamma=config.lr_gamma)
    history: list[dict] = []
    start_epoch = 0
    if plan == "resume":
        ckpt = torch.load(path / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
        if ckpt.get("format") != CHECKPOINT_FORMAT:
            raise TrainingError(f"{path / CHECKPOINT_FILE} has an unknown format; retrain")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        _set_rng_state(ckpt["rng"])
        history, start_epoch = list(ckpt["history"]), int(ckpt["epoch"])
    net = model
    if dist.active:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if cuda else None)

    fmt = torch.channels_last if config.channels_last else torch.contiguous_format
    loader_args = dict(batch_size=config.batch_size, num_workers=config.workers,
                       pin_memory=cuda,
                       worker_init_fn=data_mod.seed_mask_worker if config.workers else None)
    sampler = None
    if dist.active:
        sampler = torch.utils.data.distributed.DistributedSampler(
            train_ds, num_replicas=dist.world_size, rank=dist.rank, shuffle=True,
            seed=_derive_seed(config.seed, _SHUFFLE))
    val_part = val_ds
    if dist.active:
        val_part = torch.utils.data.Subset(val_ds, range(dist.rank, len(val_ds), dist.world_size))
    val_dl = torch.utils.data.DataLoader(val_part, shuffle=False, **loader_args)
    mask_func = train_ds.transform.mask_func
    steps = math.ceil(len(sampler if sampler is not None else train_ds) / config.batch_size)
    check_every = 1 if not cuda else 25  # loss checks synchronise the GPU
    loss_name = config.loss

    bar = tqdm(total=steps * max(config.epochs - start_epoch, 0), desc=name, unit="step",
               disable=not (progress and dist.main), file=sys.stderr,
               mininterval=1.0 if sys.stderr.isatty() else 10.0, dynamic_ncols=True)
    with bar:
        if start_epoch and start_epoch < config.epochs and dist.main:
            bar.write(f"{name}: resuming after epoch {start_epoch} from {path / CHECKPOINT_FILE}")
        for epoch in range(start_epoch, config.epochs):
            t0 = time.perf_counter()
            # Every random stream of this epoch from (seed, epoch): resume needs no more.
            gen = torch.Generator().manual_seed(_derive_seed(config.seed, _LOADER, epoch, dist.rank))
            aug = torch.Generator().manual_seed(_derive_seed(config.seed, _AUGMENT, epoch, dist.rank))
            if mask_func is not None:
                mask_func.rng.seed(_derive_seed(config.seed, _MASK, epoch, dist.rank))
            if sampler is not None:
                sampler.set_epoch(epoch)
            train_dl = torch.utils.data.DataLoader(
                train_ds, sampler=sampler, shuffle=sampler is None, generator=gen, **loader_args)
            lr = optimizer.param_groups[0]["lr"]
            net.train()
            sums = torch.zeros(2, dtype=torch.float64, device=device)
            pending: list[torch.Tensor] = []
            for step, batch in enumerate(train_dl):
                x = batch.image.unsqueeze(1).to(device, non_blocking=cuda)
                y = batch.target.unsqueeze(1).to(device, non_blocking=cuda)
                if config.shift_augment:
                    x, y, _ = augment_batch(x, y, config.max_shift, aug)
                x = x.contiguous(memory_format=fmt)
                loss = train_step(net, optimizer, x, y, loss=loss_name, clamp=config.clamp,
                                  grad_clip=config.grad_clip, amp=config.amp)
                sums[0] += loss.double() * x.shape[0]
                sums[1] += x.shape[0]
                pending.append(loss)
                if len(pending) >= check_every or step == steps - 1:
                    _check_finite(pending, step, epoch, config, path, dist)
                    bar.set_postfix(epoch=f"{epoch + 1}/{config.epochs}",
                                    loss=f"{float(pending[-1]):.4g}", refresh=False)
                    pending = []
                bar.update(1)
            if pending:
                _check_finite(pending, steps - 1, epoch, config, path, dist)
            dist.all_reduce(sums)
            scheduler.step()

            if dist.active:  # validate every shard with rank 0's BatchNorm statistics
                for b in model.buffers():
                    torch.distributed.broadcast(b, 0)
            val_gen = torch.Generator().manual_seed(_derive_seed(config.seed, _VAL_SHIFT, dist.rank))
            vsums = dist.all_reduce(evaluate(
                model, val_dl, device=device, clamp=config.clamp, loss=loss_name, amp=config.amp,
                channels_last=config.channels_last, max_shift=config.max_shift,
                generator=val_gen)).cpu()
            record = {"epoch": epoch + 1,
                      "train_loss": float(sums[0] / sums[1].clamp_min(1)),
                      "val_loss": float(vsums[0] / vsums[3].clamp_min(1)),
                      "val_equiv_mse": float(vsums[1] / vsums[3].clamp_min(1)),
                      "val_psnr": float(vsums[2] / vsums[3].clamp_min(1)),
                      "lr": lr, "seconds": round(time.perf_counter() - t0, 3),
                      "world_size": dist.world_size}
            if not all(math.isfinite(record[k]) for k in ("train_loss", "val_loss")):
                msg = (f"{name}: non-finite loss at epoch {epoch + 1} (train {record['train_loss']}, "
                       f"validation {record['val_loss']}); lower the learning rate (lr="
                       f"{config.lr:g}). The checkpoint of epoch {epoch} is kept in {path}.")
                _record_error(path, name, config, history, msg, dist)
                raise NonFiniteLossError(msg)
            history.append(record)
            done = epoch + 1 >= config.epochs
            if dist.main:
                atomic_torch_save({
                    "format": CHECKPOINT_FORMAT, "epoch": epoch + 1, "name": name,
                    "config": config.to_dict(), "unet": config.unet_config().to_dict(),
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "rng": _rng_state(),
                    "history": history, "world_size": dist.world_size,
                }, path / CHECKPOINT_FILE)
                atomic_write_json(path / HISTORY_FILE, _history_doc(name, config, history, done))
                bar.write(f"{name} epoch {epoch + 1}/{config.epochs}: train {record['train_loss']:.4g}"
                          f"  val {record['val_loss']:.4g}  equiv {record['val_equiv_mse']:.3g}"
                          f"  PSNR {record['val_psnr']:.2f} dB  ({record['seconds']:.1f} s)")
                if callback is not None:
                    callback(record)
    if dist.main and history and len(history) >= config.epochs:
        atomic_write_json(path / HISTORY_FILE, _history_doc(name, config, history, True))
    return history


def _record_error(path, name, config, history, msg, dist: _Dist) -> None:
    if dist.main:
        atomic_write_json(path / HISTORY_FILE, _history_doc(name, config, history, False, msg))


def _check_finite(pending: list, step: int, epoch: int, config: TrainConfig, path: Path,
                  dist: _Dist) -> None:
    """Raise :class:`NonFiniteLossError` (on every rank) if a pending loss is NaN/inf."""
    losses = torch.stack(pending).double()
    total = dist.all_reduce(losses.sum().reshape(1)).cpu()
    if math.isfinite(float(total)):
        return
    local = losses.cpu()
    bad = [i for i, v in enumerate(local.tolist()) if not math.isfinite(v)]
    first = step - len(pending) + 1 + (bad[0] if bad else 0)
    msg = (f"{config.display_name}: the training loss became "
           f"{local[bad[0]].item() if bad else 'non-finite (on another rank)'} at epoch "
           f"{epoch + 1}, step {first + 1}. Lower the learning rate (lr={config.lr:g}) or keep "
           f"gradient clipping on (grad_clip={config.grad_clip}). The checkpoint of the last "
           f"good epoch ({epoch}) stays in {path}; fix the cause and run again to resume, or "
           "retrain.")
    _record_error(path, config.display_name, config, _read_history(path), msg, dist)
    raise NonFiniteLossError(msg)


# --------------------------------------------------------------------------------------
# Reading runs back
# --------------------------------------------------------------------------------------

def _label_short_log_axis(ax) -> None:
    """A log axis spanning less than a decade gets one or no major label: label the minor
    ticks too (plain numbers), so the values can be read."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator

    lo, hi = ax.dataLim.intervaly
    if lo > 0 and hi / lo < 10:
        ax.yaxis.set_minor_locator(LogLocator(subs=tuple(range(1, 10))))
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%.2g"))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))


def plot_curves(frame, metrics: Sequence[str] = ("train_loss", "val_loss", "val_equiv_mse"),
                order: Sequence[str] | None = None, floor: float = 1e-16):
    """One panel per metric (log scale, PSNR linear) against the epoch, one line per model.

    On log scales values below ``floor`` (an exactly equivariant model's 0) are drawn at
    ``floor``, and the panel's title says so.
    """
    import matplotlib.pyplot as plt

    titles = {"train_loss": "training loss", "val_loss": "validation loss",
              "val_equiv_mse": "validation equivariance MSE\n$\\|F(T_k x) - T_k F(x)\\|^2$",
              "val_psnr": "validation PSNR (dB)"}
    ylabels = {"train_loss": "MSE (normalised units)", "val_loss": "MSE (normalised units)",
               "val_equiv_mse": "MSE (normalised units)", "val_psnr": "PSNR (dB)"}
    styles = ["-", "--", "-.", ":"]  # models drawn on top of each other stay visible
    models = list(order) if order is not None else list(dict.fromkeys(frame["model"]))
    from .plots import TEXT_WIDTH

    fig, axes = plt.subplots(1, len(metrics), figsize=(TEXT_WIDTH * len(metrics) / 3, 2.6),
                             layout="constrained", squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        log = metric != "val_psnr"
        floored = False
        for n, m in enumerate(models):
            sub = frame[frame["model"] == m]
            values = sub[metric].to_numpy(dtype=float)
            if log:
                floored |= bool((values < floor).any())
                values = np.maximum(values, floor)
            ax.plot(sub["epoch"], values, marker="o", ms=3, label=m,
                    linestyle=styles[n % len(styles)], zorder=len(models) - n)
        if log:
            ax.set_yscale("log")
            _label_short_log_axis(ax)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabels.get(metric, metric))
        title = titles.get(metric, metric)
        ax.set_title(title + (f"\n(exact 0 drawn at {floor:g})" if floored else ""))
        ax.grid(alpha=0.3, which="both")
    axes[0][0].legend()
    return fig


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    ap = argparse.ArgumentParser(
        prog="python -m apslib.train",
        description="Train one U-Net of the paper (Baseline, LPF-j, APS, APS-j, with or "
                    "without shift augmentation) on a fastMRI single-coil folder. A finished "
                    "run is skipped unless --retrain; an unfinished one resumes. Under "
                    "`torchrun --nproc_per_node N -m apslib.train ...` it uses DDP.",
        epilog="Exit status: 0 trained or already finished; 1 bad input (missing data, "
               "sizes the U-Net cannot take, another configuration in the run folder); "
               "3 the loss became NaN/inf (the last good checkpoint is kept).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--data", required=True, help="data root with singlecoil_train/ and singlecoil_val/")
    ap.add_argument("--run-dir", required=True, help="runs folder; this run goes to RUN_DIR/<slug of name>")
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--variant", choices=("baseline", "lpf", "aps"))
    which.add_argument("--model", help="a paper name instead of --variant/--filter-size/"
                                       "--shift-augment: 'Baseline', 'LPF-3', 'Baseline + DA', 'APS', 'APS-3'")
    ap.add_argument("--filter-size", type=int, default=d.filter_size, help="blur size j (lpf needs >= 2)")
    ap.add_argument("--shift-augment", action="store_true", help="random circular shifts (DA)")
    ap.add_argument("--max-shift", type=int, default=d.max_shift, help="shifts in [-M, M-1]")
    ap.add_argument("--name", help="run name (default: the paper-style name)")
    ap.add_argument("--depth", type=int, default=d.depth)
    ap.add_argument("--channels", type=int, nargs="+", help="depth+1 widths (default 64*2**k)")
    ap.add_argument("--criterion", default=d.criterion, help="APS norm: l2, l1 or linf")
    ap.add_argument("--loss", default=d.loss, choices=LOSSES)
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--epochs", type=int, default=d.epochs)
    ap.add_argument("--batch-size", type=int, default=d.batch_size, help="per process")
    ap.add_argument("--lr-step", type=int, default=d.lr_step, help="StepLR step (epochs)")
    ap.add_argument("--lr-gamma", type=float, default=d.lr_gamma, help="StepLR factor")
    ap.add_argument("--clamp", type=float, default=d.clamp, help="output clamp (0: off)")
    ap.add_argument("--grad-clip", type=float, default=d.grad_clip, help="gradient-norm clip (0: off)")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--device", default=d.device, help="auto, cuda, cuda:1, mps or cpu")
    ap.add_argument("--amp", action="store_true", help="bfloat16 autocast")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm under DDP (cuda)")
    ap.add_argument("--workers", type=int, default=d.workers, help="DataLoader workers")
    ap.add_argument("--acquisition", help="PD or PDFS only (default both)")
    ap.add_argument("--sample-fraction", type=float, help="train on this fraction of the slices")
    ap.add_argument("--volume-fraction", type=float, help="... or of the volumes")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--retrain", action="store_true", help="delete this run's folder content and start over")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        common = dict(depth=args.depth, channels=args.channels, criterion=args.criterion,
                      loss=args.loss, lr=args.lr, epochs=args.epochs, batch_size=args.batch_size,
                      lr_step=args.lr_step, lr_gamma=args.lr_gamma, max_shift=args.max_shift,
                      clamp=args.clamp or None, grad_clip=args.grad_clip or None, seed=args.seed,
                      device=args.device, amp=args.amp, channels_last=args.channels_last,
                      sync_bn=args.sync_bn, workers=args.workers, data_root=args.data,
                      run_dir=args.run_dir, acquisition=args.acquisition,
                      sample_fraction=args.sample_fraction, volume_fraction=args.volume_fraction)
        if args.model:
            if args.shift_augment or args.filter_size != TrainConfig.filter_size:
                raise ValueError("--model names the variant, blur and augmentation; drop "
                                 "--filter-size/--shift-augment (or use --variant)")
            config = config_for(args.model, **common)
            if args.name:
                config = config.replace(name=args.name)
        else:
            config = TrainConfig(variant=args.variant, filter_size=args.filter_size,
                                 shift_augment=args.shift_augment, name=args.name, **common)
        result = train(config, retrain=args.retrain, progress=not args.no_progress)
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    except (TrainingError, ValueError, FileNotFoundError, data_mod.DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) == 0:
        f = result.final
        state = "already finished, skipped (--retrain to train again)" if result.skipped else "done"
        print(f"{result.name}: {state}; {len(result.history)} epochs in {result.path}"
              + (f"; val loss {f['val_loss']:.4g}, equivariance MSE {f['val_equiv_mse']:.3g}, "
                 f"PSNR {f['val_psnr']:.2f} dB" if f else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

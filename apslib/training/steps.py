"""The building blocks of training: the model and datasets of a configuration, one
optimisation step, and the sums of one validation pass.

Conventions: images are ``(B, 1, H, W)`` normalised tensors (``batch.image.unsqueeze(1)``);
the output is cast to float32 and clamped to ``[-clamp, clamp]`` (``None``: no clamp)
before any loss; ``amp`` runs the forward pass in bfloat16 autocast. Shifts come from
:mod:`apslib.shifts`, de-normalisation from :func:`apslib.data.denormalize`, PSNR from
:func:`apslib.metrics.psnr` (per slice, data range = the volume's ``max``). No function
here writes files, derives seeds or starts processes: that is :mod:`apslib.training.loop`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import data as data_mod
from ..metrics import psnr
from ..models import unet_from_config
from ..shifts import informative_shifts, random_shifts, shift_each
from ..subpixel import fourier_shift
from ..unet import UNetConfig
from .config import TrainConfig
from .errors import TrainingError
from .runs import read_checkpoint

__all__ = [
    "build_model",
    "init_weights",
    "build_datasets",
    "check_data_size",
    "require_data_root",
    "val_loader",
    "worker_init_fn",
    "augment_batch",
    "train_step",
    "to_device",
    "zero_filled_psnr",
    "validate",
]


def build_model(config: TrainConfig) -> nn.Module:
    """The U-Net of ``config`` (:func:`apslib.models.unet_from_config`: apslib's or fastMRI's
    layers), initialised from ``torch.manual_seed(config.seed)``."""
    torch.manual_seed(config.seed)
    model = unet_from_config(config.unet_config())
    if config.init_from is not None:
        init_weights(model, config.init_from)
    return model


def init_weights(model: nn.Module, source) -> nn.Module:
    """Load the trained weights of the run folder (or checkpoint file) ``source`` into
    ``model`` (e.g. fastMRI's U-Net trained on its own grid, into its APS conversion:
    the same ``state_dict``). ``ValueError`` naming what does not fit otherwise; a missing,
    damaged or foreign ``source`` is named as the ``init_from`` source (not as this run)."""
    hint = (
        f"point --init-from (init_from) at an intact run folder or checkpoint, or train the run "
        f"{source} again"
    )
    try:
        weights = read_checkpoint(source, hint=hint)["model"]
    except FileNotFoundError as err:
        raise FileNotFoundError(f"init_from {source}: {err}; or point --init-from elsewhere") from None
    except TrainingError as err:
        raise type(err)(f"init_from {source}: {err}") from None
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    extra = [k for k in weights if k not in own]
    shapes = [
        f"{k} {tuple(weights[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in weights and weights[k].shape != v.shape
    ]
    if missing or extra or shapes:
        raise ValueError(
            f"init_from {source}: its weights do not fit this model (missing {missing[:3]}, "
            f"unexpected {extra[:3]}, other shapes {shapes[:3]}): start only from a run of the same "
            "architecture and widths (any fastMRI U-Net variant fits any other)"
        )
    model.load_state_dict(weights)
    return model


def check_data_size(dataset, unet_config: UNetConfig, what: str = "data") -> None:
    """``ValueError`` unless every image the model will see in ``dataset`` suits the U-Net
    (the array sizes, not the header: :func:`apslib.data.check_dataset_size`)."""
    data_mod.check_dataset_size(dataset, unet_config, what=what)


def require_data_root(config: TrainConfig) -> None:
    if config.data_root is None:
        raise ValueError(
            "TrainConfig.data_root is not set: point it at a fastMRI single-coil "
            "folder (singlecoil_train/, singlecoil_val/)"
        )
    data_mod.check_data_root(config.data_root)


def build_datasets(config: TrainConfig):
    """``(train, val)`` datasets of ``config`` (checked against the U-Net's sizes)."""
    require_data_root(config)
    common = dict(
        center_fractions=config.center_fractions,
        accelerations=config.accelerations,
        acquisition=config.acquisition,
        volume_fraction=config.volume_fraction,
        sample_fraction=config.sample_fraction,
        seed=config.seed,
    )
    unet_cfg = config.unet_config()
    out = []
    for split in ("train", "val"):
        ds = data_mod.make_dataset(config.data_root, split, **common)
        check_data_size(ds, unet_cfg, f"{config.data_root} ({split})")
        out.append(ds)
    return tuple(out)


def worker_init_fn(config: TrainConfig):
    return data_mod.seed_mask_worker if config.workers else None


def val_loader(config: TrainConfig, batch_size: int | None = None):
    """The validation DataLoader of ``config`` (in order, fixed masks)."""
    _, val = build_datasets(config)
    return torch.utils.data.DataLoader(
        val,
        batch_size=batch_size or config.batch_size,
        shuffle=False,
        num_workers=config.workers,
        worker_init_fn=worker_init_fn(config),
    )


def augment_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    max_shift: int,
    generator: torch.Generator | None = None,
    *,
    subpixel: bool = False,
):
    """The same random shift per sample on input and target: ``(x, y, shifts)``. Integer
    circular shifts in ``[-max_shift, max_shift - 1]`` (none for ``max_shift=0``); with
    ``subpixel`` plus a Fourier shift by an offset uniform in ``[0, 1)`` per axis
    (:func:`apslib.subpixel.fourier_shift`; ``shifts`` is then float)."""
    n = x.shape[0]
    shifts = random_shifts(n, max_shift, generator) if max_shift > 0 else torch.zeros(n, 2, dtype=torch.int64)
    x, y = shift_each(x, shifts), shift_each(y, shifts)
    if subpixel:
        offsets = torch.rand(n, 2, generator=generator, dtype=torch.float64)
        x, y = fourier_shift(x, offsets.to(x.device)), fourier_shift(y, offsets.to(y.device))
        shifts = shifts + offsets
    return x, y, shifts


def _loss_fn(name: str):
    return F.mse_loss if name == "mse" else F.l1_loss


def _forward(model: nn.Module, x: torch.Tensor, clamp: float | None, amp: bool) -> torch.Tensor:
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        out = model(x)
    out = out.float()
    return out.clamp(-clamp, clamp) if clamp else out


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    loss: str = "mse",
    clamp: float | None = 6.0,
    grad_clip: float | None = 1.0,
    amp: bool = False,
) -> torch.Tensor:
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


def to_device(batch, device: torch.device, fmt=torch.contiguous_format):
    """``(x, y)`` of a batch as ``(B, 1, H, W)`` on ``device``."""
    nb = device.type == "cuda"
    x = batch.image.unsqueeze(1).to(device, non_blocking=nb)
    return x.contiguous(memory_format=fmt), batch.target.unsqueeze(1).to(device, non_blocking=nb)


@torch.no_grad()
def zero_filled_psnr(loader) -> float:
    """Mean PSNR over slices of the zero-filled input (de-normalised) against the target:
    the bar every trained model must clear."""
    values = [psnr(_denorm(b.image, b), _denorm(b.target, b), b.max_value) for b in loader]
    return float(torch.cat(values).mean())


@torch.no_grad()
def validate(
    model: nn.Module,
    loader,
    *,
    device: torch.device,
    clamp: float | None = 6.0,
    loss: str = "mse",
    amp: bool = False,
    channels_last: bool = False,
    max_shift: int = 16,
    period: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Validation sums ``[loss, equivariance MSE, PSNR, slices, equivariance NMSE]``
    (float64, on ``device``).

    Loss, equivariance MSE and NMSE are summed per slice (divide by the slice count for
    means); the equivariance MSE is ``MSE(F(T_k x), T_k F(x))`` and the NMSE
    ``||F(T_k x) - T_k F(x)||^2 / ||T_k F(x)||^2`` (the paper's metric, in normalised units)
    with one random shift ``k`` per
    slice drawn from ``generator``, never a multiple of ``period`` (the model's
    ``2**depth``) on both axes (:func:`apslib.shifts.informative_shifts`: such a shift is
    free for every circular U-Net); the PSNR is summed per slice.
    """
    model.eval()
    fn = _loss_fn(loss)
    sums = torch.zeros(5, dtype=torch.float64, device=device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for batch in loader:
        x, y = to_device(batch, device, fmt)
        out = _forward(model, x, clamp, amp)
        k = informative_shifts(x.shape[0], max_shift, period, generator)
        shifted = _forward(model, shift_each(x, k), clamp, amp)
        n = x.shape[0]
        sums[0] += fn(out, y).double() * n
        sums[1] += F.mse_loss(shifted, shift_each(out, k)).double() * n
        sums[2] += psnr(_denorm(out, batch), _denorm(y, batch), batch.max_value).sum()
        sums[3] += n
        ref = shift_each(out, k).double()
        err = (shifted.double() - ref).pow(2).sum(dim=(1, 2, 3))
        sums[4] += (err / ref.pow(2).sum(dim=(1, 2, 3)).clamp_min(torch.finfo(torch.float64).tiny)).sum()
    return sums

"""Shift-equivariance measurements.

``T_k`` is the circular shift by ``k = (dy, dx)`` pixels (down, right): ``roll2d(x, k)``.
A map ``F`` is shift equivariant when ``F(T_k x) == T_k F(x)``. The helpers here measure the
gap for many shifts at once, batching the shifted inputs through ``F``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch

from .shifts import roll2d, shift_grid

__all__ = [
    "roll2d",
    "shift_grid",
    "relative_error",
    "psnr",
    "equivariance_errors",
    "equivariance_error_map",
    "phase_margins",
]


def psnr(pred: torch.Tensor, target: torch.Tensor, max_value) -> torch.Tensor:
    """Per-sample PSNR (dB, float64) with data range ``max_value`` (shape ``(B,)``)."""
    pred, target = pred.double().flatten(1), target.double().flatten(1)
    mse = (pred - target).pow(2).mean(1).clamp_min(1e-300)
    peak = torch.as_tensor(max_value, dtype=torch.float64, device=mse.device).reshape(-1)
    return 10 * torch.log10(peak ** 2 / mse)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max |a - b| / max |b|`` (0 when both are 0)."""
    scale = b.abs().max()
    diff = (a - b).abs().max()
    if scale == 0:
        return float(diff)
    return float(diff / scale)


@torch.no_grad()
def equivariance_errors(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                        shifts: Iterable[Sequence[int]], *, chunk: int = 16) -> torch.Tensor:
    """Relative equivariance error ``max|F(T_k x) - T_k F(x)| / max|F(x)|`` per shift.

    Args:
        fn: the map ``F``; must treat samples independently (eval mode for BatchNorm).
        x: ``(B, C, H, W)`` input batch.
        shifts: the shifts ``k`` to test.
        chunk: how many shifted copies of ``x`` go through ``fn`` at once.

    Returns:
        float64 tensor of shape ``(len(shifts),)`` on the CPU.
    """
    shifts = [tuple(int(s) for s in k) for k in shifts]
    ref = fn(x)
    scale = ref.abs().max().double().clamp_min(torch.finfo(torch.float64).tiny)
    out = []
    for start in range(0, len(shifts), chunk):
        ks = shifts[start:start + chunk]
        y = fn(torch.cat([roll2d(x, k) for k in ks]))
        for k, yk in zip(ks, y.split(x.shape[0])):
            out.append(((yk - roll2d(ref, k)).abs().max().double() / scale).cpu())
    return torch.stack(out) if out else torch.zeros(0, dtype=torch.float64)


def equivariance_error_map(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                           period: int | tuple[int, int], *, chunk: int = 16) -> torch.Tensor:
    """:func:`equivariance_errors` over every shift modulo ``period``: a ``(py, px)`` map."""
    py, px = (period, period) if isinstance(period, int) else period
    return equivariance_errors(fn, x, shift_grid((py, px)), chunk=chunk).view(py, px)


@torch.no_grad()
def phase_margins(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Per APS level, the relative gap between the two largest polyphase norms, per sample.

    ``(n1 - n2) / n1`` of the map each :class:`~apslib.unet.APSPoolDown` chooses on, as a
    list of ``(B,)`` float64 tensors (one per level, encoder order). A margin of 0 is an
    exact tie: the choice then follows the tie rule, not the signal, and equivariance is
    lost for that sample. Besides constant or 2-periodic inputs, ties arise when the map
    entering the stride-1 max-pool has isolated activity (e.g. one non-zero pixel after a
    ReLU): the pool copies it into two (or four) polyphase components. Models without APS
    levels give an empty list.
    """
    from .unet import APSPoolDown

    margins: list[torch.Tensor] = []

    def hook(module, inputs, _output):
        top = module.phase_norms(inputs[0]).topk(2, dim=1).values
        margins.append(((top[:, 0] - top[:, 1]) / top[:, 0].clamp_min(1e-300)).cpu())

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, APSPoolDown)]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return margins

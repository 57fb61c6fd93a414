"""Every metric: shift equivariance, image and volume quality, APS phase margins.

``T_k`` is the circular shift by ``k = (dy, dx)`` pixels (down, right): ``roll2d(x, k)``.
A map ``F`` is shift equivariant when ``F(T_k x) == T_k F(x)``.

* :func:`equivariance_errors` / :func:`equivariance_error_map` measure the gap for many
  shifts at once, batching the shifted inputs through ``F`` (relative max error).
* :func:`image_metrics` is the paper's per-image equivariance comparison of
  ``a = F(T_k x)`` with the reference ``b = T_k F(x)`` in normalised units:
  ``NMSE = ||a - b||^2 / ||b||^2`` (:func:`nmse_from_sums`);
  ``PSNR = 10 log10(peak^2 / mean((a - b)^2))`` with ``peak = max |b|``; ``SSIM`` with
  :func:`fastmri.evaluate.ssim` on the ``(1, H, W)`` pair and ``maxval = peak``. Identical
  images give NMSE 0, PSNR ``inf`` and SSIM 1 (``inf`` is a value, not an error).
* :func:`volume_metrics` / :func:`volume_psnr` are fastmri's own ``nmse``, ``psnr`` and
  ``ssim`` of one de-normalised ``(S, H, W)`` volume, data range ``maxval`` (the volume's
  ``max_value``): the reconstruction metrics of the paper's Table 1 and the decline in PSNR
  of its Table 4.
* :func:`psnr` is a per-sample torch PSNR (training's validation).
* :func:`phase_margins` says how close each APS choice is to a tie.

Everything computed from arrays is float64; fastmri is imported only when its metrics run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from .layers import PolyphaseDown
from .shifts import roll2d, shift_grid

__all__ = [
    "relative_error",
    "psnr",
    "decline_bound",
    "equivariance_errors",
    "equivariance_error_map",
    "phase_margins",
    "as_float64",
    "nmse_from_sums",
    "image_metrics",
    "volume_metrics",
    "volume_psnr",
]


def as_float64(x) -> np.ndarray:
    """A float64 numpy array of a tensor (detached, on the CPU) or an array-like."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def _scalar(v) -> float:
    """fastmri's metrics return numpy scalars or 1-element arrays."""
    return float(np.asarray(v, dtype=np.float64).reshape(-1)[0])


def nmse_from_sums(err_sum: np.ndarray, ref_energy: np.ndarray) -> np.ndarray:
    """``||a - b||^2 / ||b||^2`` from the per-image sums (0 when both are 0)."""
    return err_sum / np.maximum(ref_energy, np.finfo(np.float64).tiny)


def image_metrics(pred, ref) -> dict[str, np.ndarray]:
    """Per-image ``eq_nmse``, ``eq_psnr`` and ``eq_ssim`` of ``pred`` against ``ref``.

    ``pred``/``ref``: ``(N, H, W)`` or ``(N, 1, H, W)``. See the module docstring for the
    definitions (reference = ``ref``; PSNR/SSIM data range = ``max |ref|``; identical
    images give NMSE 0, PSNR ``inf``, SSIM 1).
    """
    from fastmri.evaluate import ssim as fm_ssim

    a, b = as_float64(pred), as_float64(ref)
    if a.shape != b.shape:
        raise ValueError(f"pred {a.shape} and ref {b.shape} differ in shape")
    a = a.reshape(-1, *a.shape[-2:])
    b = b.reshape(-1, *b.shape[-2:])
    err = ((a - b) ** 2).reshape(len(a), -1)
    nmse = nmse_from_sums(err.sum(1), (b**2).reshape(len(b), -1).sum(1))
    peak = np.abs(b).reshape(len(b), -1).max(1)
    mse = err.mean(1)
    with np.errstate(divide="ignore"):
        psnr = np.where(mse > 0, 10 * np.log10(peak**2 / np.where(mse > 0, mse, 1)), np.inf)
    ssim = np.array(
        [
            1.0 if not mse[i] else _scalar(fm_ssim(b[i][None], a[i][None], maxval=float(peak[i]) or 1.0))
            for i in range(len(a))
        ],
        dtype=np.float64,
    )
    return {"eq_nmse": nmse, "eq_psnr": psnr, "eq_ssim": ssim}


def volume_psnr(pred, target, maxval: float) -> float:
    """fastmri's ``psnr`` of one ``(S, H, W)`` volume (de-normalised) against its target."""
    from fastmri import evaluate as fe

    return _scalar(fe.psnr(as_float64(target), as_float64(pred), maxval=maxval))


def volume_metrics(pred, target, maxval: float) -> dict[str, float]:
    """fastmri's ``nmse``, ``psnr`` and ``ssim`` of one ``(S, H, W)`` volume
    (de-normalised) against its target, with data range ``maxval``."""
    from fastmri import evaluate as fe

    gt, pr = as_float64(target), as_float64(pred)
    return {
        "nmse": _scalar(fe.nmse(gt, pr)),
        "psnr": _scalar(fe.psnr(gt, pr, maxval=maxval)),
        "ssim": _scalar(fe.ssim(gt, pr, maxval=maxval)),
    }


def decline_bound(ratio) -> np.ndarray:
    """The largest change of PSNR (dB) a shift can cause, given ``ratio = ||F(T_k x) -
    T_k F(x)|| / ||F(x) - y||`` (equivariance error over reconstruction error, same units).

    Since ``F(T_k x) - T_k y = (F(T_k x) - T_k F(x)) + T_k (F(x) - y)`` and ``T_k`` keeps
    norms, the triangle inequality puts ``rho = ||F(T_k x) - T_k y|| / ||F(x) - y||`` in
    ``[1 - ratio, 1 + ratio]``; the decline in PSNR is ``20 |log10 rho|``, so at most
    ``20 log10(1 + ratio)`` when the shifted PSNR is lower, ``-20 log10(1 - ratio)`` when
    it is higher. Returns the larger, two-sided bound (``inf`` for ``ratio >= 1``).
    With ``||F(x)|| ~ ||y||``, ``ratio ~ sqrt(eq NMSE / reconstruction NMSE)``.
    """
    r = np.asarray(ratio, dtype=np.float64)
    with np.errstate(divide="ignore"):
        bound = np.where(r < 1, -20 * np.log10(np.clip(1 - r, 1e-300, None)), np.inf)
    return bound + 0.0  # -0.0 (r = 0) as 0.0


def psnr(pred: torch.Tensor, target: torch.Tensor, max_value) -> torch.Tensor:
    """Per-sample PSNR (dB, float64) with data range ``max_value`` (shape ``(B,)``)."""
    pred, target = pred.double().flatten(1), target.double().flatten(1)
    mse = (pred - target).pow(2).mean(1).clamp_min(1e-300)
    peak = torch.as_tensor(max_value, dtype=torch.float64, device=mse.device).reshape(-1)
    return 10 * torch.log10(peak**2 / mse)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max |a - b| / max |b|`` (0 when both are 0)."""
    scale = b.abs().max()
    diff = (a - b).abs().max()
    if scale == 0:
        return float(diff)
    return float(diff / scale)


@torch.no_grad()
def equivariance_errors(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    shifts: Iterable[Sequence[int]],
    *,
    chunk: int = 16,
) -> torch.Tensor:
    """Relative equivariance error ``max|F(T_k x) - T_k F(x)| / max|F(x)|`` per shift.

    ``F(x)`` is computed in the same call as the shifted copies it is compared with: float32
    kernels can round a batch of one differently from a larger batch (measured on the CPU: a
    relative 5e-7 for an APS U-Net), which is not a property of ``F`` under shifts.

    Args:
        fn: the map ``F``; must treat samples independently (eval mode for BatchNorm).
        x: ``(B, C, H, W)`` input batch.
        shifts: the shifts ``k`` to test.
        chunk: how many shifted copies of ``x`` go through ``fn`` at once (with ``x`` itself).

    Returns:
        float64 tensor of shape ``(len(shifts),)`` on the CPU.
    """
    shifts = [tuple(int(s) for s in k) for k in shifts]
    scale = None
    out = []
    for start in range(0, len(shifts), chunk):
        ks = shifts[start : start + chunk]
        ref, *ys = fn(torch.cat([x, *(roll2d(x, k) for k in ks)])).split(x.shape[0])
        if scale is None:
            scale = ref.abs().max().double().clamp_min(torch.finfo(torch.float64).tiny)
        for k, yk in zip(ks, ys):
            out.append(((yk - roll2d(ref, k)).abs().max().double() / scale).cpu())
    return torch.stack(out) if out else torch.zeros(0, dtype=torch.float64)


def equivariance_error_map(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    period: int | tuple[int, int],
    *,
    chunk: int = 16,
) -> torch.Tensor:
    """:func:`equivariance_errors` over every shift modulo ``period``: a ``(py, px)`` map."""
    py, px = (period, period) if isinstance(period, int) else period
    return equivariance_errors(fn, x, shift_grid((py, px)), chunk=chunk).view(py, px)


@torch.no_grad()
def phase_margins(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Per adaptive level, the relative gap between the two largest polyphase scores, per sample.

    ``(s1 - s2) / max(|s1|, |s2|)`` of the scores each adaptive
    :class:`~apslib.layers.PolyphaseDown` (native or converted) chooses by (its
    :meth:`~apslib.layers.PolyphaseDown.phase_scores`: APS's norms, where this is
    ``(n1 - n2) / n1``, or LPS's learned logits),
    as a list of ``(B,)`` float64 tensors (one per level, encoder order). A margin of 0 is an
    exact tie: the choice then follows the tie rule, not the signal, and equivariance is
    lost for that sample. Besides constant or 2-periodic inputs, ties arise when the map
    entering the stride-1 max-pool has isolated activity (e.g. one non-zero pixel after a
    ReLU): the pool copies it into two (or four) polyphase components. Models without
    adaptive levels give an empty list.
    """
    margins: list[torch.Tensor] = []

    def hook(module, inputs, _output):
        top = module.phase_scores(inputs[0]).topk(2, dim=1).values
        scale = torch.maximum(top[:, 0].abs(), top[:, 1].abs()).clamp_min(1e-300)
        margins.append(((top[:, 0] - top[:, 1]) / scale).cpu())

    downs = [m for m in model.modules() if isinstance(m, PolyphaseDown) and m.selection.adaptive]
    handles = [m.register_forward_hook(hook) for m in downs]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return margins

"""Binomial low-pass filters with circular padding, blur-pool and its matching upsampler
(functions; the layers that use them are in :mod:`apslib.layers`).

The binomial filter of size ``j`` is the outer product of row ``j - 1`` of Pascal's
triangle with itself, normalised to sum 1::

    j = 1: [1]          (identity)
    j = 2: [1, 1]
    j = 3: [1, 2, 1]
    j = 5: [1, 4, 6, 4, 1]

Every binomial filter of size ``j >= 2`` has a zero at the Nyquist frequency, so after it
the four polyphase components of a feature map have *exactly* the same sum (see
:mod:`apslib.polyphase` for why this matters to the ``"l1"`` APS criterion).

Padding convention: a filter of size ``j`` is padded with ``(j - 1) // 2`` pixels before
and ``j // 2`` after, on each axis. Even sizes are therefore centred half a pixel after
the origin. Any fixed convention keeps the blur shift equivariant under circular padding.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

__all__ = [
    "MAX_FILTER_SIZE",
    "PADDING_MODES",
    "binomial_filter_1d",
    "binomial_filter_2d",
    "check_filter_size",
    "check_padding_mode",
    "pad2d",
    "circular_pad",
    "blur",
    "blur_pool",
    "zero_insert",
    "blur_upsample",
]

MAX_FILTER_SIZE = 7
PADDING_MODES = ("circular", "zeros", "reflect", "replicate")


def check_filter_size(size: int) -> int:
    """Return ``size`` as an int, or raise a ValueError that says what is allowed."""
    if isinstance(size, bool) or not isinstance(size, numbers.Integral):
        raise ValueError(f"filter_size must be an integer in 1..{MAX_FILTER_SIZE}, got {size!r}")
    size = int(size)
    if not 1 <= size <= MAX_FILTER_SIZE:
        raise ValueError(f"filter_size must be in 1..{MAX_FILTER_SIZE} (1 means no blur), got {size}")
    return size


def check_padding_mode(mode: str) -> str:
    if mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {mode!r}")
    return mode


def binomial_filter_1d(size: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """Normalised row ``size - 1`` of Pascal's triangle, shape ``(size,)``."""
    size = check_filter_size(size)
    coeffs = [math.comb(size - 1, k) for k in range(size)]
    t = torch.tensor(coeffs, dtype=torch.float64, device=device)
    return (t / t.sum()).to(dtype)


def binomial_filter_2d(size: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """Separable 2-D binomial filter, shape ``(size, size)``, sums to 1."""
    f = binomial_filter_1d(size, dtype=torch.float64, device=device)
    return torch.outer(f, f).to(dtype)


def circular_pad(x: torch.Tensor, pads) -> torch.Tensor:
    """``F.pad(x, pads, mode="circular")`` for the last two axes, ``pads = (left, right,
    top, bottom)``, as two concatenations of wrapped slices: the same values, and on CPU
    about half the cost forward + backward (the backward of a concatenation is slicing).
    Pads larger than the axis go to ``F.pad``, which explains what is wrong."""
    left, right, top, bottom = (int(p) for p in pads)
    h, w = x.shape[-2:]
    if min(pads) < 0 or top > h or bottom > h or left > w or right > w:
        return F.pad(x, (left, right, top, bottom), mode="circular")
    if top or bottom:
        x = torch.cat([x[..., h - top :, :], x, x[..., :bottom, :]], dim=-2)
    if left or right:
        x = torch.cat([x[..., w - left :], x, x[..., :right]], dim=-1)
    return x


def pad2d(x: torch.Tensor, kernel_size: int, mode: str = "circular") -> torch.Tensor:
    """Pad the last two axes for a ``kernel_size`` filter: (k-1)//2 before, k//2 after."""
    before, after = (kernel_size - 1) // 2, kernel_size // 2
    if before == after == 0:
        return x
    pads = (before, after, before, after)
    if mode == "zeros":
        return F.pad(x, pads)
    if mode == "circular":
        return circular_pad(x, pads)
    return F.pad(x, pads, mode=mode)


def _depthwise(x: torch.Tensor, kernel2d: torch.Tensor, mode: str) -> torch.Tensor:
    c = x.shape[1]
    k = kernel2d.shape[-1]
    weight = kernel2d.to(dtype=x.dtype, device=x.device).expand(c, 1, k, k)
    return F.conv2d(pad2d(x, k, mode), weight, groups=c)


def blur(x: torch.Tensor, size: int, *, gain: float = 1.0, padding_mode: str = "circular"):
    """Depthwise binomial blur of a ``(B, C, H, W)`` tensor; output has the input's shape."""
    size = check_filter_size(size)
    check_padding_mode(padding_mode)
    if size == 1:
        return x * gain if gain != 1.0 else x
    return _depthwise(x, binomial_filter_2d(size, dtype=torch.float64) * gain, padding_mode)


def blur_pool(x: torch.Tensor, size: int, *, padding_mode: str = "circular") -> torch.Tensor:
    """Blur of size ``size``, then keep the fixed polyphase grid ``(0, 0)`` (stride 2)."""
    return blur(x, size, padding_mode=padding_mode)[..., ::2, ::2]


def zero_insert(y: torch.Tensor) -> torch.Tensor:
    """``U_2``: place ``y`` on grid ``(0, 0)`` of a map twice as large, zeros elsewhere."""
    b, c, h, w = y.shape
    # (B, C, h, 1, w, 1) padded to (B, C, h, 2, w, 2): one op, no scatter into zeros.
    z = F.pad(y.reshape(b, c, h, 1, w, 1), (0, 1, 0, 0, 0, 1))
    return z.view(b, c, 2 * h, 2 * w)


def blur_upsample(y: torch.Tensor, size: int, *, padding_mode: str = "circular") -> torch.Tensor:
    """Zero insertion, then a binomial blur with gain 4 (= stride**2, keeps the mean)."""
    return blur(zero_insert(y), size, gain=4.0, padding_mode=padding_mode)

"""Shifts beyond integer circular ones: sub-pixel (Fourier) shifts, shifts made in k-space
as a moving patient makes them, and the overlap on which a moved field of view can be
compared.

Conventions
-----------
A shift ``(dy, dx)`` moves image content by ``+dy`` rows and ``+dx`` columns: the shifted
image at pixel ``p`` shows what the original showed at ``p - (dy, dx)``, as
:func:`apslib.shifts.roll2d` does for integers. Shifts are real numbers.

* :func:`fourier_shift`: the band-limited (periodic sinc) interpolation of a real image,
  circular: multiply its 2-D DFT by ``exp(-2 pi i (f_y dy + f_x dx))`` and keep the real
  part (for an even side the Nyquist row/column is then scaled by ``cos(pi d)``, the
  symmetric choice). At integer shifts it equals :func:`~apslib.shifts.roll2d` up to
  float rounding. One shift for all images, or one per image (``(N, 2)``).
* :func:`kspace_shift`: the same ramp on a *centred* k-space (fastmri's ``fft2c``
  convention, frequencies ``(j - H // 2) / H``): the complex image of the full field of
  view moves by ``(dy, dx)``, circularly on the full field of view. Masking k-space is a
  pointwise product, so it commutes with this ramp: an undersampled acquisition of a moved
  patient is the moved undersampled acquisition.
* :func:`overlap_mask`: the pixels of a ``(H, W)`` crop that show, before and after a shift
  of the object by ``(dy, dx)``, content from inside the crop and at least ``margin``
  pixels from its border (in both images). Outputs of a moved field of view are compared
  there only: what entered or left the crop, and a band along the border where a network's
  circular padding sees different neighbours, are excluded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "fourier_shift",
    "kspace_shift",
    "overlap_mask",
    "subpixel_offsets",
    "shift_pairs",
    "norms_under_shift",
]


def _shift_tensor(shift, n: int, dtype, device) -> torch.Tensor:
    s = torch.as_tensor(shift, dtype=dtype, device=device)
    if s.ndim == 1:
        if s.numel() != 2:
            raise ValueError(f"a shift is (dy, dx), got {tuple(s.tolist())}")
        s = s.expand(n, 2)
    if s.shape != (n, 2):
        raise ValueError(f"shifts must be (dy, dx) or one per image ({n}, 2), got {tuple(s.shape)}")
    if not torch.isfinite(s).all():
        raise ValueError("shifts must be finite numbers")
    return s


def _ramp(shape: Sequence[int], s: torch.Tensor, centred: bool, dtype, device) -> torch.Tensor:
    """``exp(-2 pi i (f_y dy + f_x dx))`` per image: ``(N, H, W)`` complex."""
    h, w = shape
    fy = torch.fft.fftfreq(h, dtype=dtype, device=device)
    fx = torch.fft.fftfreq(w, dtype=dtype, device=device)
    if centred:
        fy, fx = torch.fft.fftshift(fy), torch.fft.fftshift(fx)
    # the phase in turns, reduced mod 1 before the exponential: exact roots of unity for
    # integer shifts even when the shift is large
    turns = fy.view(1, h, 1) * s[:, 0].view(-1, 1, 1) + fx.view(1, 1, w) * s[:, 1].view(-1, 1, 1)
    turns = turns - torch.round(turns)
    return torch.polar(torch.ones_like(turns), -2 * math.pi * turns)


def fourier_shift(x: torch.Tensor, shift) -> torch.Tensor:
    """Circular, band-limited shift of the real images ``x`` (``(..., H, W)``; with a
    per-image shift ``(N, 2)``, ``x`` is ``(N, ...)``) by ``shift`` = ``(dy, dx)`` pixels
    (reals). Computed in float64 for float inputs and returned in ``x``'s dtype."""
    if x.is_complex() or not x.is_floating_point():
        raise TypeError(f"fourier_shift takes real floating images, got {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"images must be (..., H, W), got shape {tuple(x.shape)}")
    per_image = torch.as_tensor(shift).ndim == 2
    n = x.shape[0] if per_image else 1
    s = _shift_tensor(shift, n, torch.float64, x.device)
    xd = x.to(torch.float64)
    ramp = _ramp(x.shape[-2:], s, False, torch.float64, x.device)
    if per_image:
        ramp = ramp.view(n, *([1] * (x.ndim - 3)), *x.shape[-2:])
    else:
        ramp = ramp[0]
    out = torch.fft.ifft2(torch.fft.fft2(xd) * ramp).real
    return out.to(x.dtype)


def kspace_shift(kspace: torch.Tensor, shift) -> torch.Tensor:
    """Centred k-space ``(..., H, W)`` (complex) of an image moved by ``shift`` = ``(dy, dx)``
    pixels of the full field of view (reals; circular on the full field of view)."""
    if not kspace.is_complex():
        raise TypeError(f"kspace_shift takes complex k-space, got {kspace.dtype}")
    s = _shift_tensor(shift, 1, torch.float64, kspace.device)
    ramp = _ramp(kspace.shape[-2:], s, True, torch.float64, kspace.device)[0]
    return (kspace.to(torch.complex128) * ramp).to(kspace.dtype)


def overlap_mask(shape: tuple[int, int], shift, margin: int = 0) -> torch.Tensor:
    """Boolean ``(H, W)``: pixels ``p`` with ``p`` and ``p - shift`` both at least ``margin``
    pixels inside the crop (sub-pixel shifts round outwards). Empty if the shift is too
    large for the crop."""
    h, w = shape
    out = torch.zeros(h, w, dtype=torch.bool)
    rows = _inside(h, float(shift[0]), margin)
    cols = _inside(w, float(shift[1]), margin)
    if rows and cols:
        out[rows[0] : rows[1], cols[0] : cols[1]] = True
    return out


def _inside(n: int, d: float, margin: int) -> tuple[int, int] | None:
    lo = margin + max(0, math.ceil(d))
    hi = n - margin + min(0, math.floor(d))
    return (lo, hi) if hi > lo else None


def subpixel_offsets(steps: int = 8, *, stop: float = 1.0) -> np.ndarray:
    """``0, 1/steps, ..., stop``: a grid of offsets per axis (``stop`` included)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return np.linspace(0.0, stop, int(round(stop * steps)) + 1)


def shift_pairs(offsets: Sequence[float], *, axes: str = "both") -> list[tuple[float, float]]:
    """The 2-D shifts of a grid of offsets: ``"y"`` ``(o, 0)``, ``"x"`` ``(0, o)``,
    ``"diagonal"`` ``(o, o)`` or ``"both"`` (every pair of the grid)."""
    o = [float(v) for v in offsets]
    if axes == "y":
        return [(v, 0.0) for v in o]
    if axes == "x":
        return [(0.0, v) for v in o]
    if axes == "diagonal":
        return [(v, v) for v in o]
    if axes == "both":
        return [(a, b) for a in o for b in o]
    raise ValueError(f"axes must be 'y', 'x', 'diagonal' or 'both', got {axes!r}")


def norms_under_shift(x: torch.Tensor, offsets: Sequence[float], *, axis: int = -1, criterion: str = "l2"):
    """The four polyphase norms (:func:`apslib.polyphase.polyphase_norms`, order of
    :data:`apslib.polyphase.PHASES`) of ``x`` (``(1, C, H, W)``) moved by each offset along
    ``axis`` (-1: x, -2: y): ``(len(offsets), 4)`` float64. At integer offsets the norms
    are permuted (APS-D follows the shift); in between they change continuously and the
    component APS-D keeps is not a shifted copy of any component of ``x``."""
    from .polyphase import polyphase_norms

    rows = []
    for o in offsets:
        d = (0.0, float(o)) if axis in (-1, 3) else (float(o), 0.0)
        rows.append(polyphase_norms(fourier_shift(x.double(), d), criterion)[0])
    return torch.stack(rows).numpy()

"""Ideal (Fourier-domain) sampling by 2 and alias-free activations, for real images.

Frequencies are those of :func:`torch.fft.fftfreq`: a side of ``n`` pixels has the bins
``k = -n/2 .. n/2 - 1`` (cycles per ``n`` pixels); for an even ``n`` the bin ``k = -n/2``
is the Nyquist bin, whose phase a real sub-pixel shift cannot move consistently
(:func:`apslib.subpixel.fourier_shift` scales it by ``cos(pi d)``). Every function here
therefore leaves the Nyquist bins out (zero), and then commutes exactly with Fourier shifts:

* :func:`remove_nyquist` ``(H, W) -> (H, W)``: the Nyquist row and column zeroed.
* :func:`fourier_down` ``(H, W) -> (H/2, W/2)``: the ideal low-pass to the bins
  ``|k| < H/4`` (``W/4``), then every other pixel; equivalently the spectrum cropped to
  the half-size grid without its Nyquist bins. ``fourier_down(fourier_shift(x, d)) ==
  fourier_shift(fourier_down(x), d / 2)``.
* :func:`half_band` ``(H, W) -> (H, W)``: the ideal low-pass to the bins ``|k| < H/4``
  (``W/4``) at full size; its every other pixel is :func:`fourier_down`'s result, and any of
  its four polyphase components is a (sub-pixel shifted) ideal downsampling. The low-pass
  of the ``"ideal"`` strategy of :class:`~apslib.layers.PolyphaseDown` /
  :class:`~apslib.layers.PolyphaseUp`.
* :func:`fourier_up` ``(h, w) -> (2h, 2w)``: the band-limited (periodic sinc)
  interpolation: the spectrum zero-padded, the input's Nyquist bins left out.
  ``fourier_up(y)[..., ::2, ::2] == y`` and ``fourier_down(fourier_up(y)) == y`` for ``y``
  without Nyquist content; ``fourier_up(fourier_shift(y, d)) == fourier_shift(fourier_up(y),
  2 d)``.
* :class:`AliasFreeActivation`: 2x :func:`fourier_up`, a pointwise function, and
  :func:`fourier_down` back to the original size with the original band. With a
  polynomial of degree 2 the products stay inside the 2x band, so nothing aliases and the
  activation commutes with Fourier shifts exactly; with ReLU it does not (its spectrum has
  no band limit), and the error is what aliases back.

Amplitudes are kept (``norm="forward"``): a cosine of amplitude 1 stays one of amplitude 1.
Sides must be even. Computed in the input's dtype (float64 for the exactness tests).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["POLY_INIT", "AliasFreeActivation", "fourier_down", "fourier_up", "half_band", "remove_nyquist"]

POLY_INIT = (0.0, 0.5, 0.1)  # the polynomial activation's initial (a0, a1, a2)


def _check(x: torch.Tensor, what: str) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.is_complex():
        raise TypeError(f"{what} must be a real floating-point tensor, got {getattr(x, 'dtype', type(x))}")
    if x.dim() < 2 or x.shape[-2] % 2 or x.shape[-1] % 2:
        raise ValueError(
            f"{what} must be (..., H, W) with even H and W, got shape {tuple(x.shape)}; "
            "crop or pad it to even sides"
        )


def _rows(n_out: int, n_in: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """For a side of ``n_out`` bins in fftfreq order taken from one of ``n_in`` bins: the
    source index of each bin, and a mask that is ``False`` on the Nyquist bin of the
    smaller side (left out)."""
    n = min(n_out, n_in)
    k = torch.fft.fftfreq(n_out, 1 / n_out, device=device).round().long()
    keep = k.abs() < n / 2 if n % 2 == 0 else torch.ones_like(k, dtype=torch.bool)
    return torch.remainder(k, n_in), keep


def _resample(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The spectrum of ``x`` (``(..., H, W)``) cropped or zero-padded to ``(h, w)`` bins,
    the smaller grid's Nyquist bins left out, as a real ``(..., h, w)`` image."""
    hi, wi = x.shape[-2:]
    spec = torch.fft.rfft2(x, norm="forward")  # (..., hi, wi // 2 + 1)
    out = spec.new_zeros(*spec.shape[:-2], h, w // 2 + 1)
    rows, keep_r = _rows(h, hi, x.device)
    cols = torch.arange(min(w, wi) // 2 + 1, device=x.device)
    keep_c = cols < min(w, wi) / 2
    sub = spec.index_select(-2, rows[keep_r]).index_select(-1, cols[keep_c])
    out[..., keep_r.nonzero().squeeze(1)[:, None], cols[keep_c][None, :]] = sub
    return torch.fft.irfft2(out, s=(h, w), norm="forward")


def remove_nyquist(x: torch.Tensor) -> torch.Tensor:
    """``x`` (``(..., H, W)``, even sides) with its Nyquist row and column of the 2-D
    spectrum set to zero: what a real sub-pixel shift can move consistently."""
    _check(x, "the input of remove_nyquist")
    return _resample(x, *x.shape[-2:])


def half_band(x: torch.Tensor) -> torch.Tensor:
    """The ideal low-pass of ``x`` (``(..., H, W)``, sides multiples of 4) to the bins
    ``|k| < H/4`` and ``|k| < W/4``, at full size: ``half_band(x)[..., ::2, ::2] ==
    fourier_down(x)``, and ``4 * half_band(zero-inserted y) == fourier_up(y)``."""
    _check(x, "the input of half_band")
    h, w = x.shape[-2:]
    if h % 4 or w % 4:
        raise ValueError(f"half_band needs sides that are multiples of 4, got {h}x{w}")
    spec = torch.fft.rfft2(x, norm="forward")
    ky = torch.fft.fftfreq(h, 1 / h, device=x.device).abs() < h / 4
    kx = torch.arange(w // 2 + 1, device=x.device) < w / 4
    return torch.fft.irfft2(spec * (ky[:, None] & kx[None, :]), s=(h, w), norm="forward")


def fourier_down(x: torch.Tensor) -> torch.Tensor:
    """Ideal downsampling by 2: ``(..., H, W) -> (..., H/2, W/2)``, the bins ``|k| < H/4``
    (and ``< W/4``) kept, every other bin dropped (no aliasing)."""
    _check(x, "the input of fourier_down")
    h, w = x.shape[-2:]
    if h % 4 or w % 4:
        raise ValueError(f"fourier_down needs sides that are multiples of 4 (an even half size), got {h}x{w}")
    return _resample(x, h // 2, w // 2)


def fourier_up(y: torch.Tensor) -> torch.Tensor:
    """Ideal upsampling by 2: ``(..., h, w) -> (..., 2h, 2w)``, the band-limited
    interpolation of ``y`` without its Nyquist bins."""
    _check(y, "the input of fourier_up")
    h, w = y.shape[-2:]
    return _resample(y, 2 * h, 2 * w)


class AliasFreeActivation(nn.Module):
    """A pointwise function applied at twice the resolution, between ideal up- and
    downsampling: ``fourier_down(f(fourier_up(x)))``. The output has the input's size and
    no content at or above the input's Nyquist frequency.

    ``kind="poly"``: ``f(u) = a0 + a1 u + a2 u**2`` with learnable coefficients per channel
    (``(C,)`` each; ``channels`` required), initialised to ``init`` (default
    :data:`POLY_INIT` ``= (0, 1/2, 1/10)``: a gently curved half of ReLU's slope; a larger
    ``a2`` trained worse here, see docs/results.md). Exactly alias-free.
    ``kind="relu"``: ``f = relu`` (approximately alias-free: ReLU's spectrum is not band
    limited, so a little of it aliases back). Inputs are ``(B, C, H, W)`` with sides that
    are multiples of 2 (the 2x grid is cropped back to them).
    """

    def __init__(self, channels: int | None = None, kind: str = "poly", init: tuple = POLY_INIT):
        super().__init__()
        if kind not in ("poly", "relu"):
            raise ValueError(f"kind must be 'poly' or 'relu', got {kind!r}")
        self.kind = kind
        if kind == "poly":
            if channels is None or channels < 1:
                raise ValueError("kind='poly' needs channels >= 1 (one polynomial per channel)")
            if len(init) != 3:
                raise ValueError(f"init must be the three coefficients (a0, a1, a2), got {init!r}")
            self.coefficients = nn.Parameter(torch.tensor([float(a) for a in init]).repeat(channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check(x, "the input of AliasFreeActivation")
        h, w = x.shape[-2:]
        u = _resample(x, 2 * h, 2 * w)
        if self.kind == "relu":
            v = torch.relu(u)
        else:
            a = self.coefficients.to(u.dtype).view(1, -1, 3, 1, 1)
            v = a[:, :, 0] + u * (a[:, :, 1] + a[:, :, 2] * u)
        return _resample(v, h, w)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}"

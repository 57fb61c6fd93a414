"""Ideal Fourier-domain sampling and alias-free activations (apslib.fourier): against their
definitions on the full complex spectrum, and exactly equivariant to real (sub-pixel)
Fourier shifts, gradients included (float64)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from apslib.fourier import AliasFreeActivation, fourier_down, fourier_up, remove_nyquist
from apslib.subpixel import fourier_shift

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SIZES = [(8, 8), (8, 12), (16, 4), (12, 20)]


def rand(*shape, seed=0):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def lowpass_by_definition(x: torch.Tensor, ky: float, kx: float) -> torch.Tensor:
    """Zero every bin with |k_y| >= ky or |k_x| >= kx of the full complex 2-D DFT."""
    h, w = x.shape[-2:]
    fy = torch.fft.fftfreq(h, 1 / h, dtype=torch.float64).abs().view(h, 1)
    fx = torch.fft.fftfreq(w, 1 / w, dtype=torch.float64).abs().view(1, w)
    spec = torch.fft.fft2(x) * ((fy < ky) & (fx < kx))
    return torch.fft.ifft2(spec).real


def rel(a, b) -> float:
    return float((a - b).abs().max().detach() / b.abs().max().detach().clamp_min(1e-300))


@pytest.mark.parametrize("h,w", SIZES)
def test_fourier_down_is_the_ideal_lowpass_then_every_other_pixel(h, w):
    x = rand(3, 2, h, w, seed=h * w)
    assert torch.allclose(fourier_down(x), lowpass_by_definition(x, h / 4, w / 4)[..., ::2, ::2], atol=1e-13)
    assert torch.allclose(remove_nyquist(x), lowpass_by_definition(x, h / 2, w / 2), atol=1e-13)


@pytest.mark.parametrize("h,w", SIZES)
def test_fourier_up_interpolates_and_down_undoes_it(h, w):
    y = remove_nyquist(rand(2, 3, h, w, seed=h + w))
    u = fourier_up(y)
    assert u.shape == (2, 3, 2 * h, 2 * w)
    assert torch.allclose(u[..., ::2, ::2], y, atol=1e-13)  # an interpolation
    assert torch.allclose(fourier_down(u), y, atol=1e-13)
    assert torch.allclose(u, lowpass_by_definition(u, h / 2, w / 2), atol=1e-13)  # band limited
    # a cosine keeps its amplitude: the band-limited interpolation of a sampled cosine is it
    n = torch.arange(2 * h, dtype=torch.float64).view(-1, 1)
    cos = torch.cos(2 * math.pi * 1 * n / (2 * h)).expand(2 * h, 2 * w)
    assert torch.allclose(fourier_up(cos[::2, ::2].contiguous()), cos, atol=1e-13)


@settings(max_examples=40, deadline=None)
@given(
    size=st.sampled_from(SIZES),
    dy=st.floats(-7.0, 7.0),
    dx=st.floats(-7.0, 7.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_sampling_commutes_with_real_shifts(size, dy, dx, seed):
    h, w = size
    x = rand(2, 2, h, w, seed=seed)
    down = fourier_down(fourier_shift(x, (dy, dx)))
    assert rel(down, fourier_shift(fourier_down(x), (dy / 2, dx / 2))) <= 1e-12
    y = remove_nyquist(rand(2, 2, h, w, seed=seed + 1))
    up = fourier_up(fourier_shift(y, (dy, dx)))
    assert rel(up, fourier_shift(fourier_up(y), (2 * dy, 2 * dx))) <= 1e-12
    assert (
        rel(remove_nyquist(fourier_shift(x, (dy, dx))), fourier_shift(remove_nyquist(x), (dy, dx))) <= 1e-12
    )


@pytest.mark.parametrize("h,w", SIZES)
@pytest.mark.parametrize("shift", [(0.5, 0.0), (0.25, -1.75), (3.0, 1.0), (-2.3, 0.7)])
def test_the_polynomial_activation_is_exactly_equivariant_and_relu_nearly(h, w, shift):
    torch.manual_seed(h)
    x = remove_nyquist(rand(2, 3, h, w, seed=w))
    poly = AliasFreeActivation(3).double()
    with torch.no_grad():
        poly.coefficients.add_(0.3 * torch.randn(3, 3, dtype=torch.float64))
    assert rel(poly(fourier_shift(x, shift)), fourier_shift(poly(x), shift)) <= 1e-12
    relu = AliasFreeActivation(kind="relu")
    err = rel(relu(fourier_shift(x, shift)), fourier_shift(relu(x), shift))
    assert err < 0.2  # not exact: ReLU's spectrum aliases back (measured, not zero)
    # without the 2x grid the polynomial aliases: the product doubles the band
    naive = poly.coefficients[:, 0].view(1, -1, 1, 1) + x * poly.coefficients[:, 1].view(1, -1, 1, 1)
    naive = remove_nyquist(naive + x**2 * poly.coefficients[:, 2].view(1, -1, 1, 1))
    shifted = fourier_shift(x, shift)
    naive_k = poly.coefficients[:, 0].view(1, -1, 1, 1) + shifted * poly.coefficients[:, 1].view(1, -1, 1, 1)
    naive_k = remove_nyquist(naive_k + shifted**2 * poly.coefficients[:, 2].view(1, -1, 1, 1))
    if shift[0] % 1 or shift[1] % 1:
        assert rel(naive_k, fourier_shift(naive, shift)) > 1e-6


def test_gradients_are_the_adjoint_and_commute_with_shifts():
    x = remove_nyquist(rand(1, 2, 8, 12, seed=3)).requires_grad_()
    for fn in (fourier_down, fourier_up, remove_nyquist, AliasFreeActivation(2).double()):
        assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-8)
    act = AliasFreeActivation(2).double()
    g = remove_nyquist(rand(1, 2, 8, 12, seed=4))
    (gx,) = torch.autograd.grad(act(x), x, g)
    xs = fourier_shift(x.detach(), (0.5, 1.5)).requires_grad_()
    (gs,) = torch.autograd.grad(act(xs), xs, fourier_shift(g, (0.5, 1.5)))
    assert rel(gs, fourier_shift(gx, (0.5, 1.5))) <= 1e-12


def test_bad_inputs_say_what_to_do():
    with pytest.raises(ValueError, match="even H and W"):
        fourier_down(torch.zeros(1, 1, 7, 8))
    with pytest.raises(ValueError, match="multiples of 4"):
        fourier_down(torch.zeros(1, 1, 6, 8))
    with pytest.raises(TypeError, match="real floating"):
        fourier_up(torch.zeros(1, 1, 4, 4, dtype=torch.complex64))
    with pytest.raises(ValueError, match="channels"):
        AliasFreeActivation()
    with pytest.raises(ValueError, match="kind"):
        AliasFreeActivation(2, kind="gelu")

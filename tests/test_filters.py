import math

import pytest
import torch

from apslib import (
    binomial_filter_1d,
    binomial_filter_2d,
    blur,
    blur_pool,
    blur_upsample,
    polyphase_components,
    roll2d,
    zero_insert,
)
from apslib.filters import check_filter_size

PASCAL = {
    1: [1],
    2: [1, 1],
    3: [1, 2, 1],
    4: [1, 3, 3, 1],
    5: [1, 4, 6, 4, 1],
    6: [1, 5, 10, 10, 5, 1],
    7: [1, 6, 15, 20, 15, 6, 1],
}


@pytest.mark.parametrize("size", range(1, 8))
def test_binomial_rows_of_pascal(size):
    row = torch.tensor(PASCAL[size], dtype=torch.float64)
    assert torch.equal(binomial_filter_1d(size, dtype=torch.float64), row / row.sum())
    f2 = binomial_filter_2d(size, dtype=torch.float64)
    assert f2.shape == (size, size)
    assert math.isclose(float(f2.sum()), 1.0, rel_tol=0, abs_tol=1e-15)
    assert torch.equal(f2, f2.T)


@pytest.mark.parametrize("bad", [0, 8, -1, 2.5, "3", True, None])
def test_filter_size_outside_range_is_refused(bad):
    with pytest.raises(ValueError, match="filter_size"):
        check_filter_size(bad)
    with pytest.raises(ValueError, match="filter_size"):
        blur(torch.zeros(1, 1, 4, 4), bad)


@pytest.mark.parametrize("size", range(1, 8))
def test_blur_is_circularly_shift_equivariant(size):
    g = torch.Generator().manual_seed(size)
    x = torch.randn(2, 3, 10, 14, generator=g, dtype=torch.float64)
    for k in [(1, 0), (0, 1), (3, 5), (-7, 11), (9, 13)]:
        a = blur(roll2d(x, k), size)
        b = roll2d(blur(x, size), k)
        assert torch.allclose(a, b, rtol=0, atol=1e-14)


@pytest.mark.parametrize("size", range(1, 8))
def test_blur_preserves_constants_and_shape(size):
    x = torch.full((1, 2, 8, 12), 3.25, dtype=torch.float64)
    y = blur(x, size)
    assert y.shape == x.shape
    assert torch.allclose(y, x, rtol=0, atol=1e-14)


@pytest.mark.parametrize("size", range(2, 8))
def test_blur_of_size_two_or_more_equalises_polyphase_sums(size):
    # The Nyquist zero of every binomial filter of size >= 2 (why "l1" + blur ties).
    g = torch.Generator().manual_seed(100 + size)
    x = torch.rand(3, 2, 16, 12, generator=g, dtype=torch.float64)
    sums = polyphase_components(blur(x, size)).sum(dim=(2, 3, 4))  # (B, 4)
    assert torch.allclose(sums, sums[:, :1].expand_as(sums), rtol=1e-13, atol=0)
    raw = polyphase_components(x).sum(dim=(2, 3, 4))
    assert (raw.max(1).values - raw.min(1).values).min() > 1e-6  # not true without blur


def test_blur_pool_keeps_grid_zero_of_the_blurred_map():
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64)
    assert torch.equal(blur_pool(x, 3), blur(x, 3)[..., ::2, ::2])
    assert blur_pool(x, 5).shape == (1, 1, 4, 4)


@pytest.mark.parametrize("size", range(1, 8))
def test_blur_upsample_keeps_the_mean(size):
    y = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    z = blur_upsample(y, size)
    assert z.shape == (2, 3, 10, 14)
    assert torch.allclose(z.mean(dim=(-2, -1)), y.mean(dim=(-2, -1)), atol=1e-13)


def test_zero_insert_places_values_on_grid_zero():
    y = torch.arange(1.0, 7.0).view(1, 1, 2, 3)
    z = zero_insert(y)
    assert torch.equal(z[..., ::2, ::2], y)
    z[..., ::2, ::2] = 0
    assert not z.any()


def test_blur_follows_the_dtype():
    for dtype in (torch.float32, torch.float64):
        assert blur(torch.randn(1, 4, 6, 6, dtype=dtype), 3).dtype == dtype


# -- circular padding by concatenation --------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_circular_pad_equals_torch_circular_pad_values_and_gradients(seed):
    from apslib.filters import circular_pad

    g = torch.Generator().manual_seed(seed)
    h, w = (int(v) for v in torch.randint(1, 9, (2,), generator=g))
    pads = [int(torch.randint(0, s + 1, (1,), generator=g)) for s in (w, w, h, h)]
    x = torch.randn(2, 3, h, w, dtype=torch.float64, generator=g, requires_grad=True)
    ref = torch.nn.functional.pad(x, pads, mode="circular")
    got = circular_pad(x, pads)
    assert got.shape == ref.shape and torch.equal(got, ref), (h, w, pads)
    up = torch.randn(ref.shape, dtype=torch.float64, generator=g)
    (gr,) = torch.autograd.grad(ref, x, up)
    (gg,) = torch.autograd.grad(got, x, up)
    assert torch.allclose(gg, gr, rtol=0, atol=1e-12)
    # channels_last and a non-contiguous view pad to the same values
    cl = x.detach().to(memory_format=torch.channels_last)
    assert torch.equal(circular_pad(cl, pads), ref.detach())
    assert torch.equal(
        circular_pad(x.detach().transpose(-1, -2), pads[2:] + pads[:2]),
        torch.nn.functional.pad(x.detach().transpose(-1, -2), pads[2:] + pads[:2], mode="circular"),
    )


def test_circular_pad_larger_than_the_map_fails_like_torch():
    from apslib.filters import circular_pad

    with pytest.raises(Exception) as ours:
        circular_pad(torch.zeros(1, 1, 2, 2), (3, 0, 0, 0))
    with pytest.raises(Exception) as theirs:
        torch.nn.functional.pad(torch.zeros(1, 1, 2, 2), (3, 0, 0, 0), mode="circular")
    assert type(ours.value) is type(theirs.value)


@pytest.mark.parametrize("mode", ["circular", "zeros", "reflect", "replicate"])
def test_unet_conv_equals_torch_conv(mode):
    from apslib.layers import Conv2d

    torch.manual_seed(0)
    ours = Conv2d(3, 5, 3, padding=1, bias=False, padding_mode=mode).double()
    torch.manual_seed(0)
    theirs = torch.nn.Conv2d(3, 5, 3, padding=1, bias=False, padding_mode=mode).double()
    assert torch.equal(ours.weight, theirs.weight)  # same initialisation, same state dict
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = torch.randn(2, 3, 8, 6, dtype=torch.float64, requires_grad=True)
    a, b = ours(x), theirs(x)
    assert torch.equal(a, b)
    ga = torch.autograd.grad(a.sum(), [x, ours.weight])
    gb = torch.autograd.grad(b.sum(), [x, theirs.weight])
    for u, v in zip(ga, gb):
        assert torch.allclose(u, v, rtol=0, atol=1e-12)

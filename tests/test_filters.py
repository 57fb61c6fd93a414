import math

import pytest
import torch

from apslib import (Blur, BlurPool, BlurUpsample, binomial_filter_1d, binomial_filter_2d, blur,
                    blur_pool, blur_upsample, polyphase_components, roll2d, zero_insert)
from apslib.filters import check_filter_size

PASCAL = {1: [1], 2: [1, 1], 3: [1, 2, 1], 4: [1, 3, 3, 1], 5: [1, 4, 6, 4, 1],
          6: [1, 5, 10, 10, 5, 1], 7: [1, 6, 15, 20, 15, 6, 1]}


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
        Blur(3, bad)


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


@pytest.mark.parametrize("size", range(1, 8))
def test_module_matches_functional(size):
    x = torch.randn(2, 5, 12, 8, dtype=torch.float64)
    assert torch.allclose(Blur(5, size).double()(x), blur(x, size), atol=1e-14)
    assert torch.allclose(BlurPool(5, size).double()(x), blur_pool(x, size), atol=1e-14)
    y = torch.randn(2, 5, 6, 4, dtype=torch.float64)
    assert torch.allclose(BlurUpsample(5, size).double()(y), blur_upsample(y, size), atol=1e-14)


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


def test_blur_kernel_is_not_saved_but_follows_dtype():
    m = Blur(4, 3)
    assert "kernel" not in m.state_dict()
    assert m.double().kernel.dtype == torch.float64
    x = torch.randn(1, 4, 6, 6)
    assert m.float()(x).dtype == torch.float32

"""apslib.convert.aps_varnet_from_fastmri: fastMRI's VarNet (single-coil here) with APS U-Nets
is exactly equivariant to integer circular shifts of the full field of view.

The shifted input is the k-space of the rolled image, masked with the same columns (a
circular shift is a phase ramp on centred k-space, which commutes with the mask). Float64,
eval mode, tiny models (chans 2-4, 1-2 cascades, 32x32 and 32x48)."""

from __future__ import annotations

import fastmri
import pytest
import torch
from fastmri.models import Unet, VarNet

from apslib.convert import ConversionError, EquivariantFastMRIUnet, aps_varnet_from_fastmri
from apslib.subpixel import kspace_shift

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# odd shifts, shifts that are not multiples of 2**pools, and large ones
SHIFTS = [(1, 0), (0, 1), (1, 1), (3, 5), (-7, 2), (2, 6), (5, -3), (13, 31), (8, 8), (16, 0), (17, -23)]


def varnet(seed: int, cascades: int = 2, pools: int = 2, sens_pools: int = 2) -> VarNet:
    torch.manual_seed(seed)
    net = VarNet(num_cascades=cascades, sens_chans=2, sens_pools=sens_pools, chans=4, pools=pools)
    return net.double().eval()


def field_of_view(seed: int, size=(32, 32), coils: int = 1, batch: int = 2):
    """A random complex image ``(B, coils, H, W, 2)`` and a fixed column mask ``(1, 1, 1, W, 1)``
    (every third column at random, plus 6 central ones)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, coils, *size, 2, dtype=torch.float64, generator=g)
    w = size[1]
    mask = torch.rand(w, generator=g) < 1 / 3
    mask[w // 2 - 3 : w // 2 + 3] = True
    return x, mask.view(1, 1, 1, w, 1)


def roll(x: torch.Tensor, s, dims=(2, 3)) -> torch.Tensor:
    return torch.roll(x, tuple(s), dims=dims)


def equivariance_errors(model, x, mask, shifts, num_low_frequencies=None) -> list[float]:
    """``||F(S x) - S F(x)|| / ||F(x)||`` per shift, ``F(x) = model(mask * fft2c(x), mask)``."""
    with torch.no_grad():
        y = model(fastmri.fft2c(x) * mask, mask, num_low_frequencies)
        errs = []
        for s in shifts:
            ys = model(fastmri.fft2c(roll(x, s)) * mask, mask, num_low_frequencies)
            errs.append(float((ys - roll(y, s, dims=(1, 2))).norm() / y.norm()))
    return errs


def test_single_coil_varnet_runs_on_the_full_field_of_view():
    x, mask = field_of_view(0)
    with torch.no_grad():
        y = varnet(0)(fastmri.fft2c(x) * mask, mask)
    assert y.shape == (2, 32, 32) and torch.isfinite(y).all()  # rss image, no crop


@pytest.mark.parametrize("cascades", [1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("size", [(32, 32), (32, 48)])
def test_converted_varnet_is_exactly_equivariant(cascades, seed, size):
    model = aps_varnet_from_fastmri(varnet(seed, cascades))
    x, mask = field_of_view(seed, size)
    assert max(equivariance_errors(model, x, mask, SHIFTS)) < 1e-10
    assert max(equivariance_errors(model, x, mask, SHIFTS[:4], num_low_frequencies=4)) < 1e-10


@pytest.mark.parametrize("pools,sens_pools,filter_size", [(1, 3, 1), (3, 1, 3)])
def test_other_depths_blurs_and_several_coils(pools, sens_pools, filter_size):
    """Other depths, a blur, and 3 coils: the statement is about the network as a map
    (all coil images move together), so it does not need one coil."""
    model = aps_varnet_from_fastmri(varnet(3, 2, pools, sens_pools), filter_size=filter_size)
    x, mask = field_of_view(3, (32, 48), coils=3)
    assert max(equivariance_errors(model, x, mask, SHIFTS)) < 1e-10


def test_the_shift_is_a_phase_ramp_on_the_masked_kspace():
    """The shifted input is the original masked k-space times a phase ramp (the mask stays)."""
    model = aps_varnet_from_fastmri(varnet(0))
    x, mask = field_of_view(0)
    k = fastmri.fft2c(x) * mask
    with torch.no_grad():
        y = model(k, mask)
        for s in [(1, 0), (-3, 7), (5, 5)]:
            ramped = torch.view_as_real(kspace_shift(torch.view_as_complex(k), s))
            assert torch.allclose(ramped, fastmri.fft2c(roll(x, s)) * mask, atol=1e-12)
            assert torch.allclose(model(ramped, mask), roll(y, s, dims=(1, 2)), atol=1e-10)


def test_the_original_varnet_is_not_equivariant():
    """The tests above can fail: fastMRI's VarNet is not equivariant, not even to shifts by
    multiples of 16 (its U-Nets pad with zeros; relative errors ~0.2-0.4 on random nets)."""
    x, mask = field_of_view(0, (32, 48))
    assert min(equivariance_errors(varnet(0), x, mask, [(1, 0), (3, 5), (16, 0), (0, 16)])) > 1e-2


def test_lpf_is_equivariant_to_multiples_of_its_deepest_grid_only():
    model = aps_varnet_from_fastmri(varnet(0, pools=2, sens_pools=1), variant="lpf")
    x, mask = field_of_view(0, (32, 48))
    assert max(equivariance_errors(model, x, mask, [(4, 0), (0, 8), (12, -4)])) < 1e-10
    assert min(equivariance_errors(model, x, mask, [(1, 0), (2, 2)])) > 1e-4


def test_state_dict_is_unchanged_and_the_original_untouched():
    fm = varnet(0)
    conv = aps_varnet_from_fastmri(fm)
    a, b = fm.state_dict(), conv.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    other = aps_varnet_from_fastmri(varnet(1))
    other.load_state_dict(a, strict=True)
    x, mask = field_of_view(0)
    k = fastmri.fft2c(x) * mask
    with torch.no_grad():
        assert torch.equal(other(k, mask), conv(k, mask))
    assert sum(isinstance(m, EquivariantFastMRIUnet) for m in conv.modules()) == 3  # 2 cascades + sens
    assert sum(type(m) is Unet for m in fm.modules()) == 3 and not fm.sens_net.norm_unet._forward_pre_hooks
    assert not conv.training and next(conv.parameters()).dtype == torch.float64


@pytest.mark.parametrize("size", [(40, 40), (36, 44)])
def test_normunet_zero_pad_breaks_equivariance_so_such_sizes_are_refused(size):
    """Sides not multiples of 16: NormUnet's zero pad is not empty. It alone breaks
    equivariance (with APS U-Nets); without it the network would be exact again."""
    model = aps_varnet_from_fastmri(varnet(0))
    x, mask = field_of_view(0, size)
    with pytest.raises(ValueError, match=r"multiples of 16\. Sizes that work: 32 or 48 for"):
        model(fastmri.fft2c(x) * mask, mask)
    norm_unets = [m for m in model.modules() if hasattr(m, "unet")]
    for m in norm_unets:
        m._forward_pre_hooks.clear()  # the fastMRI pad, converted U-Nets
    assert max(equivariance_errors(model, x, mask, SHIFTS[:4])) > 1e-2
    for m in norm_unets:
        m.pad = lambda x: (x, ([0, 0], [0, 0], x.shape[-2], x.shape[-1]))  # no pad
    assert max(equivariance_errors(model, x, mask, SHIFTS)) < 1e-10


def test_deeper_unets_need_larger_multiples():
    model = aps_varnet_from_fastmri(varnet(0, cascades=1, pools=5, sens_pools=1))
    x, mask = field_of_view(0, (48, 64), batch=1)
    with pytest.raises(ValueError, match="multiples of 32. Sizes that work: 32 or 64 for 48"):
        model(fastmri.fft2c(x) * mask, mask)


def test_refuses_what_is_not_a_varnet():
    with pytest.raises(TypeError, match="aps_unet_from_fastmri"):
        aps_varnet_from_fastmri(Unet(2, 2, 2, 1))
    with pytest.raises(TypeError, match="holds no fastmri NormUnet"):
        aps_varnet_from_fastmri(torch.nn.Linear(2, 2))
    with pytest.raises(ConversionError, match="outside a NormUnet"):
        aps_varnet_from_fastmri(torch.nn.ModuleList([varnet(0, cascades=1), Unet(2, 2, 2, 1)]))

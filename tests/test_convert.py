"""apslib.convert: fastMRI's U-Net and generic U-Nets made shift equivariant, weights unchanged.

Everything in float64 and eval mode, on tiny models (widths 2..8, 16..32 pixels)."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
import torch.nn.functional as F
from fastmri.models import Unet
from torch import nn

from apslib.convert import (
    ConversionError,
    EquivariantFastMRIUnet,
    PhaseConvTranspose2d,
    PhasePool2d,
    PhaseStack,
    aps_unet_from_fastmri,
    make_equivariant,
)
from apslib.fastpaths import disabled
from apslib.layers import NormSelection, PolyphaseUp, forced_phase
from apslib.shifts import roll2d

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# shifts by 1..31 pixels, most of them not multiples of 2**depth
SHIFTS = [(1, 0), (0, 1), (1, 1), (3, 5), (-7, 2), (2, 6), (5, -3), (13, 31), (8, 8), (16, 0)]


def equivariance_errors(model: nn.Module, x: torch.Tensor, shifts) -> list[float]:
    """``||F(T_k x) - T_k F(x)|| / ||F(x)||`` per shift ``k`` (one batched forward)."""
    with torch.no_grad():
        y = model(x)
        ys = model(torch.cat([roll2d(x, k) for k in shifts])).split(x.shape[0])
    return [float((yk - roll2d(y, k)).norm() / y.norm()) for k, yk in zip(shifts, ys)]


def fastmri_unet(seed: int, **kwargs) -> Unet:
    torch.manual_seed(seed)
    args = dict(in_chans=2, out_chans=1, chans=4, num_pool_layers=2) | kwargs
    return Unet(**args).double().eval()


def with_circular_convs(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose padded convolutions pad circularly; nothing else changed."""
    model = copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.padding != (0, 0):
            m.padding_mode = "circular"  # nn.Conv2d's own circular padding
    return model


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("chans", [2, 4, 8])
@pytest.mark.parametrize("filter_size", [1, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_proposition_2_on_converted_fastmri_unets(depth, chans, filter_size, seed):
    model = aps_unet_from_fastmri(
        fastmri_unet(seed, chans=chans, num_pool_layers=depth), filter_size=filter_size
    )
    x = torch.randn(2, 2, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    assert max(equivariance_errors(model, x, SHIFTS)) < 1e-10


def test_the_original_model_is_not_exactly_equivariant():
    """The test above can fail: fastMRI's U-Net (zero padding, fixed grid) is not equivariant."""
    fm = fastmri_unet(0)
    x = torch.randn(2, 2, 16, 16, dtype=torch.float64)
    assert max(equivariance_errors(fm, x, SHIFTS[:3])) > 1e-3
    assert max(equivariance_errors(with_circular_convs(fm), x, SHIFTS[:3])) > 1e-3


@pytest.mark.parametrize("variant,filter_size", [("aps", 1), ("aps", 3), ("lpf", 3)])
def test_state_dict_round_trip(variant, filter_size):
    fm = fastmri_unet(0, num_pool_layers=3)
    conv = aps_unet_from_fastmri(fm, variant=variant, filter_size=filter_size)
    a, b = fm.state_dict(), conv.state_dict()
    assert list(a) == list(b)  # the same keys, in the same order
    assert all(a[k].shape == b[k].shape and a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)
    assert "up_transpose_conv.0.layers.0.weight" in b and b["up_transpose_conv.0.layers.0.weight"].shape == (
        32,
        16,
        2,
        2,
    )
    back = fastmri_unet(1, num_pool_layers=3)  # other weights
    back.load_state_dict(conv.state_dict())
    assert all(torch.equal(v, back.state_dict()[k]) for k, v in a.items())
    # from kwargs, then the fastMRI weights loaded unchanged
    kwargs = dict(in_chans=2, out_chans=1, chans=4, num_pool_layers=3, drop_prob=0.0)
    fresh = aps_unet_from_fastmri(kwargs, variant=variant, filter_size=filter_size).double().eval()
    fresh.load_state_dict(fm.state_dict())
    x = torch.randn(1, 2, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(fresh(x), conv(x))


def test_the_original_is_left_untouched_and_modes_are_copied():
    fm = fastmri_unet(0).train()
    conv = aps_unet_from_fastmri(fm)
    assert conv.training and next(conv.parameters()).dtype == torch.float64
    assert conv.up_transpose_conv[0].layers[0].weight is not fm.up_transpose_conv[0].layers[0].weight
    assert type(fm.up_transpose_conv[0].layers[0]) is nn.ConvTranspose2d
    assert all(m.padding_mode == "zeros" for m in fm.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("depth,size", [(1, (16, 32)), (2, (32, 16)), (3, (16, 40))])
@pytest.mark.parametrize("seed", [0, 1])
def test_the_conversion_changes_only_what_it_must(depth, size, seed):
    """Grids forced to (0, 0): fastMRI's own forward with circularly padded convs.

    Why this is the right reference: the converted pool is a 2x2 average at stride 1 with
    the map padded by one pixel at the bottom/right, so its component (0, 0) averages
    pixels 2p and 2p + 1: exactly ``F.avg_pool2d(x, 2, stride=2)`` (the padding is never
    read there). APS-U on (0, 0) followed by the k=2 conv is the transposed conv itself.
    """
    fm = fastmri_unet(seed, num_pool_layers=depth)
    conv = aps_unet_from_fastmri(fm)
    x = torch.randn(2, 2, *size, dtype=torch.float64)
    with torch.no_grad():
        ref = with_circular_convs(fm)(x)
        with forced_phase(conv, (0, 0)):
            forced = conv(x)
        free, phases = conv(x, return_phases=True)
    assert (forced - ref).abs().max() <= 1e-12 * ref.abs().max()
    if any(bool((p != 0).any()) for p in phases):  # APS chose other grids somewhere
        assert (free - ref).abs().max() > 1e-6 * ref.abs().max()
    # outside the block the grids are chosen again
    assert all(isinstance(p.selection, NormSelection) for p in conv.pools)


def test_forcing_the_grid_of_aps_gives_lpf():
    fm = fastmri_unet(0, num_pool_layers=2)
    aps, lpf = (aps_unet_from_fastmri(fm, variant=v, filter_size=3) for v in ("aps", "lpf"))
    x = torch.randn(2, 2, 16, 16, dtype=torch.float64)
    with torch.no_grad(), forced_phase(aps, 0):
        assert torch.allclose(aps(x), lpf(x), rtol=0, atol=1e-12)


def test_lpf_is_equivariant_only_to_shifts_by_multiples_of_the_total_stride():
    fm = fastmri_unet(0, num_pool_layers=2)
    lpf = aps_unet_from_fastmri(fm, variant="lpf", filter_size=3)
    assert list(lpf.state_dict()) == list(fm.state_dict())
    x = torch.randn(2, 2, 16, 16, dtype=torch.float64)
    assert max(equivariance_errors(lpf, x, [(1, 0), (0, 1), (3, 5)])) > 1e-6
    assert max(equivariance_errors(lpf, x, [(4, 0), (0, 8), (12, -4), (16, 28)])) < 1e-10


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("filter_size", [1, 2, 3])
def test_pool_paths_agree(mode, filter_size):
    """The no-grad path (APS-D on the stride-1 pooled map), the training path (stride-2 pool
    of the input shifted by the chosen phase) and, at (0, 0), the plain stride-2 pool."""
    x = torch.randn(3, 2, 8, 12, dtype=torch.float64)
    pool = PhasePool2d(mode, filter_size=filter_size, criterion="l2")
    with torch.no_grad():
        y = pool(x)
    y_grad = pool(x.clone().requires_grad_())
    assert torch.allclose(y, y_grad, rtol=0, atol=1e-14)
    plain = F.max_pool2d(x, 2) if mode == "max" else F.avg_pool2d(x, 2)
    if filter_size == 1:
        assert torch.allclose(pool.pooled(x)[..., ::2, ::2], plain, rtol=0, atol=1e-15)


@pytest.mark.parametrize("filter_size", [1, 2, 3])
@pytest.mark.parametrize("bias", [False, True])
def test_upsampler_is_aps_u_then_the_k2_conv(filter_size, bias):
    """Against the literal APS-U, blur, k=2 conv (padded top/left, with the transposed
    conv's kernel flipped: a Conv2d weight)."""
    torch.manual_seed(0)
    up = PhaseConvTranspose2d(4, 3, bias=bias, filter_size=filter_size).double()
    ref = PolyphaseUp(4, 3, filter_size, up_pad="top_left", blur_gain=1.0).double()
    with torch.no_grad():
        ref.weight.copy_(up.weight.flip(-2, -1).transpose(0, 1))
        ref.bias.copy_(up.bias if bias else torch.zeros(3))
    y, idx = torch.randn(4, 4, 5, 6, dtype=torch.float64), torch.tensor([0, 1, 2, 3])
    up.stack.push(idx, (10, 12), "test")
    with disabled():
        literal = ref(y, idx)
    assert torch.allclose(up(y), literal, rtol=0, atol=1e-13)


def test_odd_or_small_sizes_are_refused_with_sizes_that_work():
    conv = aps_unet_from_fastmri(fastmri_unet(0, num_pool_layers=3))
    with pytest.raises(ValueError, match=r"30x32 .* multiples of 8.*24 or 32 for 30"):
        conv(torch.randn(1, 2, 30, 32, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least 16x16"):
        conv(torch.randn(1, 2, 8, 8, dtype=torch.float64))
    with pytest.raises(TypeError, match="make_equivariant"):
        aps_unet_from_fastmri(nn.Conv2d(1, 1, 3))
    with pytest.raises(ValueError, match="variant"):
        EquivariantFastMRIUnet(1, 1, 2, 1, variant="max")


# --- the generic converter -------------------------------------------------------------


def block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class TinyUNet(nn.Module):
    """Two levels; pools and upsamplers as modules (or functional ones, to be refused)."""

    def __init__(self, c: int = 4, pool: str = "max", up: str = "tconv", shared_pool: bool = False):
        super().__init__()
        self.functional_pool = pool == "functional"
        if not self.functional_pool:
            make = nn.MaxPool2d if pool == "max" else nn.AvgPool2d
            self.pool1 = make(2)
            self.pool2 = self.pool1 if shared_pool else make(kernel_size=2, stride=2)
        self.inc, self.enc, self.mid = block(1, c), block(c, 2 * c), block(2 * c, 4 * c)
        if up == "tconv":
            self.up2, self.up1 = (
                nn.ConvTranspose2d(4 * c, 2 * c, 2, stride=2),
                nn.ConvTranspose2d(2 * c, c, 2, 2),
            )
        else:
            self.up2 = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(4 * c, 2 * c, 1))
            self.up1 = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(2 * c, c, 1))
        self.dec2, self.dec1, self.out = block(4 * c, 2 * c), block(2 * c, c), nn.Conv2d(c, 1, 1)

    def down(self, k: int, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, 2) if self.functional_pool else (self.pool1, self.pool2)[k](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = self.inc(x)
        s2 = self.enc(self.down(0, s1))
        m = self.mid(self.down(1, s2))
        d2 = self.dec2(torch.cat([s2, self.up2(m)], 1))
        return self.out(self.dec1(torch.cat([s1, self.up1(d2)], 1)))


@pytest.mark.parametrize("pool,filter_size", [("max", 1), ("max", 3), ("avg", 1), ("avg", 2)])
@pytest.mark.parametrize("shared_pool", [False, True])
def test_generic_converter_makes_a_unet_exactly_equivariant(pool, filter_size, shared_pool):
    torch.manual_seed(0)
    net = TinyUNet(pool=pool, shared_pool=shared_pool).double().eval()
    conv = make_equivariant(net, filter_size=filter_size, strict_pairs=not shared_pool)
    assert list(conv.state_dict()) == list(net.state_dict())
    assert isinstance(net.pool1, nn.MaxPool2d | nn.AvgPool2d)  # a deep copy was converted
    assert isinstance(conv.pool1, PhasePool2d) and isinstance(conv.up2, PhaseConvTranspose2d)
    assert (conv.pool1 is conv.pool2) == shared_pool
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    assert max(equivariance_errors(conv, x, SHIFTS)) < 1e-10
    if filter_size == 1:  # grids at (0, 0): the original with circular padding
        with torch.no_grad(), forced_phase(conv, 0):
            assert torch.allclose(conv(x), with_circular_convs(net)(x), rtol=0, atol=1e-12)


def test_generic_converter_in_place_keeps_the_parameter_objects():
    net = TinyUNet()
    with pytest.raises(ValueError, match="criterion='linf' with filter_size=1 is ill-posed"):
        make_equivariant(net, criterion="linf", inplace=True)
    assert type(net.pool1) is nn.MaxPool2d  # refused before anything was changed
    params = dict(net.named_parameters())
    assert make_equivariant(net, inplace=True) is net
    assert all(p is params[k] for k, p in net.named_parameters())
    with pytest.raises(ConversionError, match="already converted"):
        make_equivariant(net)


@pytest.mark.parametrize(
    "model,match",
    [
        (TinyUNet(up="upsample"), r"up2\.0: Upsample.*nn\.ConvTranspose2d"),
        (TinyUNet(pool="functional"), r"no nn\.MaxPool2d / nn\.AvgPool2d module.*functional.*F\.max_pool2d"),
        (Unet(1, 1, 2, 2), r"F\.avg_pool2d.*aps_unet_from_fastmri"),
        (TinyUNet(shared_pool=True), r"unpaired levels: 1 pooling.*2 upsampling.*strict_pairs=False"),
        (nn.Sequential(nn.Conv2d(1, 2, 3, stride=2), nn.MaxPool2d(2)), r"0: Conv2d.*strided"),
        (nn.Sequential(nn.MaxPool2d(3, 2), nn.ConvTranspose2d(1, 1, 2, 2)), r"only 2x2 pools"),
        (nn.Sequential(nn.Conv2d(1, 1, 3, padding=1)), r"no nn\.MaxPool2d / nn\.AvgPool2d module"),
        (nn.Sequential(nn.Conv2d(1, 1, 3)), r"0: Conv2d.*changes the map's size \(-2 x -2 pixels"),
    ],
)
def test_generic_converter_says_what_it_cannot_convert(model, match):
    with pytest.raises(ConversionError, match=match) as info:
        make_equivariant(model)
    assert "\n" not in str(info.value)


class ShrinkingUNet(TinyUNet):
    """TinyUNet with one conv that shrinks the map (k=5, padding=1)."""

    def __init__(self):
        super().__init__()
        self.enc[0] = nn.Conv2d(4, 8, 5, padding=1)


def test_generic_converter_refuses_convs_that_change_the_size():
    """A stride-1 conv that does not keep the map's size cannot commute with shifts (its
    output is not equivariant): refused in one line naming its path."""
    with pytest.raises(ConversionError) as info:
        make_equivariant(ShrinkingUNet())
    msg = str(info.value)
    assert "\n" not in msg and msg.count("Conv2d(") == 1, msg
    assert "enc.0: Conv2d(4, 8, kernel_size=(5, 5)" in msg and "-2 x -2 pixels" in msg
    assert "padding='same'" in msg
    same = nn.Sequential(
        nn.Conv2d(1, 2, 5, padding=2),
        nn.Conv2d(2, 2, (3, 5), padding=(1, 2)),
        nn.Conv2d(2, 2, 3, padding=2, dilation=2),
        nn.Conv2d(2, 2, 4, padding="same"),
        nn.Conv2d(2, 2, 1),
        nn.MaxPool2d(2),
        nn.ConvTranspose2d(2, 1, 2, 2),
    )
    make_equivariant(same)  # every size-keeping conv is accepted


class Miswired(nn.Module):
    """One pool and one upsampler, but the pool runs ``pools`` times."""

    def __init__(self, pools: int):
        super().__init__()
        self.pools, self.pool, self.up = pools, nn.MaxPool2d(2), nn.ConvTranspose2d(1, 1, 2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.pools):
            x = self.pool(x)
        return self.up(x)


def test_unpaired_levels_at_forward_time_raise_a_runtime_error():
    x = torch.randn(1, 1, 8, 8)
    with pytest.raises(RuntimeError, match=r"unpaired levels: the grids chosen by pool"):
        make_equivariant(Miswired(2))(x)
    net = make_equivariant(Miswired(1))
    half = net.pool(x)
    net.pool(half)  # the decoder must undo this level first, not the level of ``half``
    with pytest.raises(RuntimeError, match=r"upsamples to 8x8 .* pooled a 4x4 map.*last-in-first-out"):
        net.up(half)
    stack = PhaseStack()
    with pytest.raises(RuntimeError, match="no phase to upsample with"):
        stack.pop((2, 2), "up")
    with pytest.raises(ValueError, match="even height and width"):
        make_equivariant(Miswired(1))(torch.randn(1, 1, 7, 8))


def test_all_shift_pairs_small_image():
    """Every shift of an 8x8 period on a depth-3 model at the smallest size (16x16)."""
    conv = aps_unet_from_fastmri(fastmri_unet(2, num_pool_layers=3, chans=2))
    x = torch.randn(1, 2, 16, 16, dtype=torch.float64)
    assert max(equivariance_errors(conv, x, list(itertools.product(range(8), range(8))))) < 1e-10


def test_training_mode_is_equivariant_and_differentiable():
    """Train mode, gradients on: the pools take their training path (grid chosen without
    gradients, stride-2 pool of the shifted input). InstanceNorm has no running stats."""
    conv = aps_unet_from_fastmri(fastmri_unet(0, num_pool_layers=2)).train()
    x = torch.randn(2, 2, 16, 16, dtype=torch.float64, requires_grad=True)
    y = conv(x)
    for k in SHIFTS[:4]:
        assert (conv(roll2d(x, k)) - roll2d(y, k)).norm() < 1e-10 * y.norm()
    y.square().sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in conv.parameters())

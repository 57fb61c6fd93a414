"""The decoder forms of the U-Nets: the k=2 conv padded bottom/right or top/left, and the
blur gain after zero insertion (1, the authors', or 4). Each paper model's default is the
authors' function; every form is exactly equivariant; with the same weights they differ."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from apslib.fastpaths import disabled
from apslib.filters import blur, zero_insert
from apslib.layers import UP_PADS, PolyphaseUp
from apslib.polyphase import aps_up
from apslib.unet import UNetConfig, build_unet, calibrate_batchnorm

FORMS = list(itertools.product(UP_PADS, (1.0, 4.0)))


def authors_lpf_up(y, weight, bias, filter_size):
    """The authors' LPF decoder: ``ConvTranspose2d(k=2, s=2)``, then the blur (gain 1)."""
    t = torch.nn.ConvTranspose2d(weight.shape[1], weight.shape[0], 2, stride=2).double()
    with torch.no_grad():
        t.weight.copy_(weight.flip(-2, -1).transpose(0, 1))
        t.bias.copy_(bias)
    return blur(t(y), filter_size)


def authors_aps_up(y, idx, weight, bias, filter_size):
    """The authors' APS decoder: APS-U, blur (gain 1), k=2 conv padded circularly bottom/right."""
    z = blur(aps_up(y, idx), filter_size)
    return F.conv2d(F.pad(z, (0, 1, 0, 1), mode="circular"), weight, bias)


@pytest.mark.parametrize(
    "name,variant,filter_size",
    [
        ("Baseline", "baseline", 1),
        ("LPF-2", "lpf", 2),
        ("LPF-3", "lpf", 3),
        ("APS", "aps", 1),
        ("APS-2", "aps", 2),
        ("APS-3", "aps", 3),
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_each_paper_model_decodes_with_the_authors_function(name, variant, filter_size, seed):
    torch.manual_seed(seed)
    net = build_unet(variant, depth=2, channels=[3, 4, 5], filter_size=filter_size).double()
    assert net.config.name == name and net.config.up_blur_gain == 1.0
    idx = torch.tensor([0, 1, 2, 3])
    for up in net.ups:
        y = torch.randn(4, up.in_channels, 6, 10, dtype=torch.float64)
        if variant == "baseline":  # the plain transposed conv
            t = torch.nn.ConvTranspose2d(up.in_channels, up.out_channels, 2, stride=2).double()
            t.load_state_dict(up.state_dict())
            assert torch.equal(up(y, None), t(y))
            continue
        w = up.conv_weight().detach()
        if variant == "lpf":
            exp = authors_lpf_up(y, w, up.bias.detach(), filter_size)
            got = up(y, None)
            # the same function written as zero insertion, blur with gain 1, conv padded top/left
            lit = F.conv2d(
                F.pad(blur(zero_insert(y), filter_size), (1, 0, 1, 0), mode="circular"), w, up.bias
            )
            torch.testing.assert_close(lit, exp, rtol=0, atol=1e-12)
        else:
            exp = authors_aps_up(y, idx, w, up.bias.detach(), filter_size)
            got = up(y, idx)
        torch.testing.assert_close(got, exp, rtol=0, atol=1e-12)


def test_the_defaults_resolve_per_variant():
    assert UNetConfig(variant="lpf", filter_size=3).resolve().up_pad == "top_left"
    assert UNetConfig(variant="aps").resolve().up_pad == "bottom_right"
    assert UNetConfig(variant="baseline").resolve().up_pad == "top_left"
    assert UNetConfig(
        variant="aps", architecture="fastmri", channels=(4, 8, 16, 32, 64)
    ).resolve().up_pad == ("top_left")
    cfg = UNetConfig(variant="aps", depth=2, channels=(2, 4, 8))
    assert cfg.up_pad is None and cfg.resolve().resolve() == cfg.resolve()
    assert build_unet("aps", depth=2, channels=[2, 4, 8]).config == cfg.resolve()
    with pytest.raises(ValueError, match="transposed conv"):
        UNetConfig(variant="baseline", up_pad="bottom_right")


def test_a_config_round_trips_and_unknown_fields_are_refused():
    cfg = UNetConfig(variant="lpf", depth=2, channels=(2, 4, 8), filter_size=3).resolve()
    assert UNetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown U-Net config field.*Upgrade"):
        UNetConfig.from_dict({**cfg.to_dict(), "from_the_future": 1})


@pytest.mark.parametrize("bad", [dict(up_pad="left"), dict(up_blur_gain=2.0)])
def test_bad_forms_are_refused(bad):
    with pytest.raises(ValueError, match="up_"):
        UNetConfig(**bad)


@pytest.mark.parametrize("up_pad,gain", FORMS)
@pytest.mark.parametrize("filter_size", [1, 2, 3, 5])
@pytest.mark.parametrize("adaptive", [True, False])
@pytest.mark.parametrize("layout", ["conv", "transposed"])
def test_fast_path_equals_the_literal_definition(up_pad, gain, filter_size, adaptive, layout):
    g = torch.Generator().manual_seed(filter_size)
    m = PolyphaseUp(3, 5, filter_size, up_pad=up_pad, blur_gain=gain, layout=layout).double()
    y = torch.randn(4, 3, 6, 10, generator=g, dtype=torch.float64, requires_grad=True)
    idx = torch.tensor([0, 1, 2, 3]) if adaptive else None
    a = m(y, idx)
    with disabled():
        b = m(y, idx)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    (ga,) = torch.autograd.grad(a.square().sum(), y)
    (gb,) = torch.autograd.grad(b.square().sum(), y)
    torch.testing.assert_close(ga, gb, rtol=0, atol=1e-11)


def test_grouped_transposed_layout_equals_the_grouped_transposed_conv():
    torch.manual_seed(7)
    t = torch.nn.ConvTranspose2d(6, 4, 2, stride=2, groups=2).double()
    m = PolyphaseUp(6, 4, up_pad="top_left", layout="transposed", groups=2).double()
    m.load_state_dict(t.state_dict())
    y = torch.randn(2, 6, 3, 5, dtype=torch.float64)
    torch.testing.assert_close(m(y, None), t(y), rtol=0, atol=1e-13)
    with disabled():
        torch.testing.assert_close(m(y, None), t(y), rtol=0, atol=1e-13)


def test_bottom_right_is_top_left_shifted_by_one_pixel():
    torch.manual_seed(0)
    a = PolyphaseUp(2, 3, 3, up_pad="bottom_right").double()
    b = PolyphaseUp(2, 3, 3, up_pad="top_left").double()
    b.load_state_dict(a.state_dict())
    y, idx = torch.randn(3, 2, 4, 6, dtype=torch.float64), torch.tensor([3, 0, 2])
    # the same weights give different maps: one pixel apart
    assert (a(y, idx) - b(y, idx)).abs().max() > 1e-2
    torch.testing.assert_close(a(y, idx), torch.roll(b(y, idx), (-1, -1), (-2, -1)))


@pytest.mark.parametrize("up_pad,gain", FORMS)
@pytest.mark.parametrize("depth,filter_size,seed", [(2, 1, 0), (3, 3, 1), (3, 2, 2), (2, 5, 3)])
def test_proposition_2_holds_in_every_form(up_pad, gain, depth, filter_size, seed):
    torch.manual_seed(seed)
    net = build_unet(
        "aps",
        depth=depth,
        channels=[6] * (depth + 1),
        filter_size=filter_size,
        up_pad=up_pad,
        up_blur_gain=gain,
    ).double()
    size = 2 ** (depth + 2)
    x = torch.randn(3, 1, size, size, dtype=torch.float64)
    calibrate_batchnorm(net, x).eval()
    period = 2**depth
    with torch.no_grad():
        ref = net(x)
        for dy, dx in itertools.product(range(-period, period + 1, 3), range(period + 1)):
            out = net(torch.roll(x, (dy, dx), (-2, -1)))
            err = (out - torch.roll(ref, (dy, dx), (-2, -1))).abs().max() / ref.abs().max()
            assert err < 1e-12, (dy, dx, float(err))


@pytest.mark.parametrize("up_pad,gain", FORMS)
def test_lpf_forms_are_equivariant_only_to_multiples_of_the_period(up_pad, gain):
    torch.manual_seed(4)
    net = build_unet(
        "lpf", depth=2, channels=[4, 4, 4], filter_size=3, up_pad=up_pad, up_blur_gain=gain
    ).double()
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    calibrate_batchnorm(net, x).eval()
    with torch.no_grad():
        ref = net(x)
        assert torch.allclose(
            net(torch.roll(x, (4, -8), (-2, -1))), torch.roll(ref, (4, -8), (-2, -1)), atol=1e-12
        )
        assert not torch.allclose(
            net(torch.roll(x, (1, 0), (-2, -1))), torch.roll(ref, (1, 0), (-2, -1)), atol=1e-6
        )

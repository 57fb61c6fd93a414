"""The two decoder forms of the lpf/aps U-Nets: the k=2 conv padded bottom/right (the
authors' code, the default) or top/left, and the blur gain after zero insertion (1, the
authors', or 4). Both are exactly equivariant; with the same weights they differ."""

import itertools

import pytest
import torch

from apslib.unet import UP_PADS, PolyphaseUp, UNetConfig, build_unet, calibrate_batchnorm

FORMS = list(itertools.product(UP_PADS, (1.0, 4.0)))


def test_the_default_is_the_authors_form():
    cfg = UNetConfig()
    assert (cfg.up_pad, cfg.up_blur_gain) == ("bottom_right", 1.0)
    up = build_unet("aps", depth=2, channels=[2, 4, 8], filter_size=3).ups[0]
    assert up.up_pad == "bottom_right" and up.blur.gain == 1.0


def test_checkpoints_without_the_keys_load_in_the_form_they_were_trained_with():
    old = UNetConfig(variant="aps", depth=2, channels=(2, 4, 8)).to_dict()
    del old["up_pad"], old["up_blur_gain"]
    cfg = UNetConfig.from_dict(old)
    assert (cfg.up_pad, cfg.up_blur_gain) == ("top_left", 4.0)
    new = UNetConfig(variant="aps", depth=2, channels=(2, 4, 8)).to_dict()
    assert UNetConfig.from_dict(new) == UNetConfig(variant="aps", depth=2, channels=(2, 4, 8))


@pytest.mark.parametrize("bad", [dict(up_pad="left"), dict(up_blur_gain=2.0)])
def test_bad_forms_are_refused(bad):
    with pytest.raises(ValueError, match="up_"):
        UNetConfig(**bad)


@pytest.mark.parametrize("up_pad,gain", FORMS)
@pytest.mark.parametrize("filter_size", [1, 2, 3, 5])
@pytest.mark.parametrize("adaptive", [True, False])
def test_fast_path_equals_the_literal_definition(up_pad, gain, filter_size, adaptive):
    g = torch.Generator().manual_seed(filter_size)
    m = PolyphaseUp(3, 5, filter_size, adaptive=adaptive, up_pad=up_pad, blur_gain=gain).double()
    y = torch.randn(4, 3, 6, 10, generator=g, dtype=torch.float64, requires_grad=True)
    idx = torch.tensor([0, 1, 2, 3]) if adaptive else None
    a, b = m(y, idx), m.reference_forward(y, idx)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    (ga,) = torch.autograd.grad(a.square().sum(), y)
    (gb,) = torch.autograd.grad(b.square().sum(), y)
    torch.testing.assert_close(ga, gb, rtol=0, atol=1e-11)


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

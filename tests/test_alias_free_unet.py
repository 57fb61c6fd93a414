"""The alias-free U-Net ("AF", "AF-ReLU"): the ideal low-pass as a strategy of the one
sampling-layer family, and whole-model equivariance to real (sub-pixel) Fourier shifts."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from apslib import build_unet
from apslib.fastpaths import disabled
from apslib.filters import zero_insert
from apslib.fourier import fourier_down, fourier_up, half_band, remove_nyquist
from apslib.layers import NormSelection, PolyphaseDown, PolyphaseUp
from apslib.names import model_name, parse_model_name
from apslib.subpixel import fourier_shift
from apslib.training import config_for
from apslib.unet import UNetConfig, check_size

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max().detach() / b.abs().max().detach())


def rand(*shape, seed=0):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def random_af(depth, channels, activation="af-poly", norm=None, seed=0):
    """A float64 AF U-Net whose parameters are all random (scales, biases and polynomial
    coefficients included), so that no layer is an identity by initialisation."""
    torch.manual_seed(seed)
    model = build_unet("af", depth=depth, channels=channels, activation=activation, norm=norm).double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith("weight") or p.dim() == 1:  # norms' scales, biases, coefficients
                p.add_(0.2 * torch.randn_like(p))
    return model


# --- the layers ----------------------------------------------------------------------------


@pytest.mark.parametrize("h,w", [(8, 8), (12, 16), (16, 4), (20, 28)])
def test_the_ideal_strategy_is_fourier_sampling(h, w):
    x = rand(2, 3, h, w, seed=h * w)
    down = PolyphaseDown(pool=None, lowpass="ideal").double()
    y, idx = down(x)
    assert idx is None and torch.allclose(y, fourier_down(x), atol=1e-13)
    with disabled():  # the literal form: the half band at full size, every other pixel
        y_lit, _ = down(x)
    assert torch.allclose(y_lit, half_band(x)[..., ::2, ::2], atol=1e-13)
    assert torch.allclose(y_lit, y, atol=1e-13)
    up = PolyphaseUp(3, 3, lowpass="ideal", up_pad="top_left").double()
    v = rand(2, 3, h // 2, w // 2, seed=1)
    expected = torch.nn.functional.conv2d(
        torch.nn.functional.pad(fourier_up(v), (1, 0, 1, 0), mode="circular"), up.conv_weight(), up.bias
    )
    assert torch.allclose(up(v), expected, atol=1e-12)
    with disabled():
        assert torch.allclose(up(v), expected, atol=1e-12)
    assert torch.allclose(4 * half_band(zero_insert(v)), fourier_up(v), atol=1e-13)


@settings(max_examples=25, deadline=None)
@given(
    size=st.sampled_from([(8, 8), (12, 16), (16, 8)]),
    dy=st.floats(-5.0, 5.0),
    dx=st.floats(-5.0, 5.0),
    seed=st.integers(0, 2**20),
)
def test_ideal_layers_commute_with_real_shifts(size, dy, dx, seed):
    h, w = size
    x = remove_nyquist(rand(2, 2, h, w, seed=seed))
    down = PolyphaseDown(pool=None, lowpass="ideal")
    y, _ = down(fourier_shift(x, (dy, dx)))
    assert rel(y, fourier_shift(down(x)[0], (dy / 2, dx / 2))) <= 1e-12
    up = PolyphaseUp(2, 2, lowpass="ideal").double()
    v = remove_nyquist(rand(2, 2, h // 2, w // 2, seed=seed + 1))
    assert rel(up(fourier_shift(v, (dy, dx))), fourier_shift(up(v), (2 * dy, 2 * dx))) <= 1e-12


def test_an_adaptive_grid_after_the_ideal_lowpass_is_refused_because_it_ties():
    """Every polyphase component of a map low-passed to half the band is the same
    band-limited signal sampled at another offset, without aliasing: the four norms are
    equal (Parseval), so an APS choice after it would be made by rounding (APS-AF)."""
    x = rand(3, 2, 16, 24, seed=5)
    norms = PolyphaseDown(pool=None, lowpass="ideal").double().phase_norms(x)
    assert torch.allclose(norms, norms[:, :1].expand_as(norms), rtol=1e-12)
    for pool in (None, "avg"):
        with pytest.raises(ValueError, match="equal norms"):
            PolyphaseDown(pool=pool, lowpass="ideal", selection=NormSelection())


def test_bad_combinations_say_what_to_do():
    with pytest.raises(ValueError, match="filter_size at 1"):
        PolyphaseDown(3, lowpass="ideal")
    with pytest.raises(ValueError, match="circular"):
        PolyphaseUp(2, 2, lowpass="ideal", padding_mode="zeros")
    with pytest.raises(ValueError, match="lowpass must be one of"):
        PolyphaseDown(lowpass="sinc")
    with pytest.raises(ValueError, match="variant='af'"):
        build_unet("aps", activation="af-poly")
    with pytest.raises(ValueError, match="circular"):
        build_unet("af", depth=2, channels=[2, 4, 8], padding_mode="zeros")
    with pytest.raises(ValueError, match="no binomial blur"):
        build_unet("af", depth=2, channels=[2, 4, 8], filter_size=3)
    with pytest.raises(ValueError, match="af-poly' or 'af-relu"):
        build_unet("af", depth=2, channels=[2, 4, 8], activation="relu")
    with pytest.raises(ValueError, match="norm must be one of"):
        build_unet("af", depth=2, channels=[2, 4, 8], norm="group")


def test_the_size_rule_needs_even_sides_down_to_the_bottleneck():
    cfg = UNetConfig("af", depth=3, channels=(2, 4, 8, 16))
    assert cfg.multiple == 16 and cfg.min_size == 16
    check_size((16, 48), cfg)
    with pytest.raises(ValueError, match="multiples of 16"):
        check_size((24, 24), cfg)  # a 3x3 bottleneck: the 2x activation needs even sides


def test_names_and_training_configs():
    assert parse_model_name("AF")["activation"] == "af-poly"
    assert parse_model_name("af-relu")["activation"] == "af-relu"
    assert model_name("af", activation="af-relu") == "AF-ReLU"
    for bad in ("AF-3", "APS-ReLU", "fastMRI U-Net AF"):
        with pytest.raises(ValueError):
            parse_model_name(bad)
    c = config_for("AF-ReLU", data_root="d", run_dir="r", depth=2, channels=[2, 4, 8]).resolve()
    assert (c.variant, c.activation, c.norm, c.clamp, c.padding_mode) == (
        "af",
        "af-relu",
        "batch",
        0.0,
        "circular",
    )
    assert c.display_name == "AF-ReLU" and c.run_path.name == "af-relu"
    aps = config_for("APS", data_root="d", run_dir="r").resolve()
    assert (aps.activation, aps.norm, aps.clamp) == ("relu", "batch", 6.0)
    assert aps.like("AF").resolve().clamp == 0.0  # the clamp is the variant's, not copied
    assert c.like("APS-3").resolve().norm == "batch"
    assert c.replace(norm="instance").like("AF").resolve().norm == "instance"  # an explicit norm is kept
    assert c.like("AF").resolve().norm == "layer"  # the variant's, not copied
    assert config_for("AF", data_root="d", run_dir="r").resolve().norm == "layer"


# --- the whole model -----------------------------------------------------------------------

CASES = [  # depth, widths, input size (odd and even multiples of 2**(depth + 1))
    (1, [3, 5], (8, 12)),
    (2, [2, 4, 6], (24, 16)),
    (3, [2, 3, 4, 5], (16, 48)),
]


@pytest.mark.parametrize("depth,channels,size", CASES)
@pytest.mark.parametrize("norm", ["layer", "instance", "batch"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_the_polynomial_model_commutes_with_every_real_shift(depth, channels, size, norm, mode):
    model = random_af(depth, channels, norm=norm, seed=depth)
    if norm == "batch":  # eval mode with random running statistics
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
    getattr(model, mode)()
    g = torch.Generator().manual_seed(sum(size))
    x = rand(3, 1, *size, seed=depth)
    y = model(x)
    shifts = [(0.5, 0.0), (0.0, 0.5), (1.0, -3.0), (2 ** (depth - 1), 1.0)]
    shifts += [tuple((torch.rand(2, generator=g, dtype=torch.float64) * 8 - 4).tolist()) for _ in range(4)]
    for d in shifts:
        assert rel(model(fourier_shift(x, d)), fourier_shift(y, d)) <= 1e-10, d
    # integer shifts are circular shifts
    assert rel(model(torch.roll(x, (3, -1), (-2, -1))), torch.roll(y, (3, -1), (-2, -1))) <= 1e-10


def test_the_fast_forms_compute_the_literal_model():
    model = random_af(2, [2, 4, 6], seed=3)
    x = rand(2, 1, 16, 24, seed=9).requires_grad_()
    y = model(x)
    (g,) = torch.autograd.grad(y.square().sum(), x)
    with disabled():
        y_lit = model(x)
        (g_lit,) = torch.autograd.grad(y_lit.square().sum(), x)
    assert rel(y, y_lit) <= 1e-12 and rel(g, g_lit) <= 1e-12


def test_relu_at_twice_the_resolution_is_close_but_not_exact():
    model = random_af(2, [4, 6, 8], activation="af-relu", seed=1).eval()
    x = rand(2, 1, 32, 32, seed=2)
    y = model(x)
    half = rel(model(fourier_shift(x, (0.5, 0.5))), fourier_shift(y, (0.5, 0.5)))
    poly = random_af(2, [4, 6, 8], seed=1).eval()
    yp = poly(x)
    exact = rel(poly(fourier_shift(x, (0.5, 0.5))), fourier_shift(yp, (0.5, 0.5)))
    assert exact <= 1e-12 < 1e-6 < half  # ReLU's spectrum is not band limited: it aliases


def test_the_model_has_no_nyquist_content_in_or_out():
    model = random_af(2, [2, 4, 6], seed=4).eval()
    x = rand(1, 1, 16, 16, seed=1)
    nyquist = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    nyquist[..., ::2, :] = 1.0
    nyquist[..., 1::2, :] = -1.0  # the Nyquist row of the spectrum only
    assert torch.allclose(model(x + 5 * nyquist), model(x), atol=1e-12)
    y = model(x)
    assert torch.allclose(remove_nyquist(y), y, atol=1e-12)


def test_the_per_sample_norm_makes_the_polynomial_model_scale_invariant():
    """With BatchNorm's fixed eval statistics an input larger than the training data's is
    squared at every polynomial layer and overflows; AF's per-sample norm removes the
    input's scale at the first layer (its convs have no bias), so no amplitude overflows."""
    torch.manual_seed(0)
    af = build_unet("af", depth=2, channels=[4, 6, 8]).eval()
    assert af.config.norm == "layer"
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        y, big = af(x), af(1e4 * x)
    assert torch.isfinite(big).all() and torch.allclose(big, y, rtol=1e-3, atol=1e-4)
    bn = build_unet("af", depth=2, channels=[4, 6, 8], norm="batch").eval()
    with torch.no_grad():
        assert not torch.isfinite(bn(1e4 * x)).all()  # the failure the default avoids

import itertools
import re

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from apslib import (
    PHASES,
    UNetConfig,
    build_unet,
    calibrate_batchnorm,
    equivariance_error_map,
    equivariance_errors,
    roll2d,
)
from apslib.fastpaths import disabled
from apslib.layers import NormSelection, PolyphaseDown, PolyphaseUp
from apslib.metrics import phase_margins
from apslib.unet import check_size

SMALL = {3: [4, 8, 12, 16], 4: [4, 6, 8, 12, 16]}
# (depth, H, W): non-square, two periods of 2**depth on each axis or more
SIZES = {3: (16, 24), 4: (32, 48)}


def make(variant, depth=3, filter_size=1, criterion="l2", dtype=torch.float64, seed=0, size=None, batch=2):
    torch.manual_seed(seed)
    model = build_unet(
        variant, depth=depth, channels=SMALL[depth], filter_size=filter_size, criterion=criterion
    ).to(dtype)
    h, w = size or SIZES[depth]
    x = torch.randn(batch, 1, h, w, dtype=dtype, generator=torch.Generator().manual_seed(seed + 1))
    calibrate_batchnorm(model, x)
    return model, x


# l2 everywhere; l1 only without blur, linf only with one (the others tie by construction)
APS_CASES = (
    [(d, j, "l2") for d in (3, 4) for j in (1, 3, 5)]
    + [(d, 1, "l1") for d in (3, 4)]
    + [(d, j, "linf") for d in (3, 4) for j in (3, 5)]
)


@pytest.mark.parametrize("depth,filter_size,criterion", APS_CASES)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_proposition_2_aps_unet_is_equivariant_to_every_shift(depth, filter_size, criterion, dtype, tol):
    model, x = make("aps", depth, filter_size, criterion, dtype, seed=depth * 10 + filter_size)
    period = 2**depth
    errors = equivariance_error_map(model, x, period, chunk=32)
    assert errors.shape == (period, period)
    assert errors.max() <= tol, float(errors.max())
    large = equivariance_errors(model, x, [(37, -53), (-101, 7), (SIZES[depth][0] - 1, 1)])
    assert large.max() <= tol


@pytest.mark.parametrize("variant,filter_size", [("baseline", 1), ("lpf", 3), ("lpf", 5)])
def test_fixed_grid_unets_are_not_equivariant(variant, filter_size):
    model, x = make(variant, 3, filter_size, seed=filter_size)
    errors = equivariance_error_map(model, x, 8)
    assert errors.max() > 1e-3
    # ...but every such model is equivariant to shifts by multiples of 2**depth.
    assert equivariance_errors(model, x, [(8, 0), (0, 16), (-8, 8)]).max() <= 1e-12


def test_phases_follow_the_shift_at_the_first_level():
    model, x = make("aps", 3, 3, seed=4)
    with torch.no_grad():
        _, phases = model(x, return_phases=True)
        assert len(phases) == 3 and all(p.shape == (2,) for p in phases)
        for k in [(0, 1), (1, 0), (1, 1), (3, 6)]:
            _, ph = model(roll2d(x, k), return_phases=True)
            for p0, p1 in zip(phases[0].tolist(), ph[0].tolist()):
                i, j = PHASES[p0]
                assert PHASES[p1] == ((i + k[0]) % 2, (j + k[1]) % 2)
        out, none_phases = make("baseline")[0](x, return_phases=True)
        assert none_phases == [None, None, None]


@pytest.mark.parametrize("filter_size", range(1, 8))
@pytest.mark.parametrize("adaptive", [True, False])
def test_fast_upsampler_equals_zero_insert_blur_conv(filter_size, adaptive):
    """APS-U + blur + conv k=2 == transposed conv + per-sample shift + blur (+ its gradient)."""
    torch.manual_seed(filter_size)
    up = PolyphaseUp(6, 3, filter_size).double()
    y = torch.randn(8, 6, 5, 7, dtype=torch.float64, requires_grad=True)
    idx = torch.tensor([0, 1, 2, 3, 3, 2, 1, 0]) if adaptive else None
    fast = up(y, idx)
    with disabled():
        ref = up(y, idx)
    assert fast.shape == (8, 3, 10, 14)
    assert torch.allclose(fast, ref, rtol=0, atol=1e-13)
    g = torch.randn_like(fast)
    grads_fast = torch.autograd.grad(fast, [y, up.weight, up.bias], g)
    grads_ref = torch.autograd.grad(ref, [y, up.weight, up.bias], g)
    for a, b in zip(grads_fast, grads_ref):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "variant,filter_size", [("baseline", 1), ("lpf", 1), ("lpf", 3), ("aps", 1), ("aps", 2), ("aps", 5)]
)
def test_backward_in_train_mode(variant, filter_size):
    torch.manual_seed(0)
    model = build_unet(variant, depth=3, channels=SMALL[3], filter_size=filter_size).train()
    x = torch.randn(3, 1, 16, 24)
    out = model(x)
    assert out.shape == x.shape
    ((out - x) ** 2).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert sum(float(p.grad.abs().sum()) for p in model.parameters()) > 0
    # every level's upsampler gets a gradient
    assert all(float(up.weight.grad.abs().sum()) > 0 for up in model.ups)


@pytest.mark.parametrize("depth,h,w", [(1, 4, 4), (2, 8, 12), (4, 32, 48), (5, 64, 128)])
def test_output_has_input_shape(depth, h, w):
    for variant, fs in [("baseline", 1), ("lpf", 3), ("aps", 3)]:
        model = build_unet(
            variant, depth=depth, channels=[2] * (depth + 1), filter_size=fs, in_channels=2, out_channels=3
        ).eval()
        with torch.no_grad():
            assert model(torch.randn(2, 2, h, w)).shape == (2, 3, h, w)


def test_default_channels_are_the_papers():
    assert build_unet("aps").config.channels == (64, 128, 256, 512, 1024)
    assert build_unet("aps", depth=2).config.channels == (64, 128, 256)
    assert build_unet("lpf", depth=2, filter_size=3).config.name == "LPF-3"
    assert build_unet("aps", depth=2, filter_size=3).config.name == "APS-3"
    assert build_unet("baseline", depth=2).config.name == "Baseline"


def test_same_seed_same_model_and_output():
    outs = []
    for _ in range(2):
        model, x = make("aps", 3, 3, dtype=torch.float32, seed=5)
        with torch.no_grad():
            outs.append(model(x))
    assert torch.equal(outs[0], outs[1])


def test_channels_last_matches_contiguous():
    model, x = make("aps", 3, 3, dtype=torch.float32, seed=2)
    with torch.no_grad():
        ref = model(x)
        model_cl = model.to(memory_format=torch.channels_last)
        out = model_cl(x.to(memory_format=torch.channels_last))
    assert torch.allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_state_dict_round_trip_and_no_filter_buffers():
    model, x = make("aps", 3, 5, seed=3)
    sd = model.state_dict()
    assert not any("kernel" in k for k in sd)
    other = build_unet("aps", depth=3, channels=SMALL[3], filter_size=5).double()
    other.load_state_dict(sd)
    other.eval()
    with torch.no_grad():
        assert torch.equal(model(x), other(x))


@pytest.mark.parametrize("variant", ["aps", "lpf", "lps"])
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate"])
def test_equivariant_variants_refuse_another_padding(variant, mode):
    """A model named APS/LPF/LPS pads circularly; the Baseline (not named for
    equivariance) takes any padding."""
    with pytest.raises(
        ValueError, match=rf"variant='{variant}' pads circularly.*would not be shift-equivariant"
    ):
        build_unet(variant, depth=3, channels=SMALL[3], padding_mode=mode)
    with pytest.raises(ValueError, match="ablation.*PolyphaseDown, PolyphaseUp, DoubleConv"):
        UNetConfig(variant=variant, depth=3, channels=tuple(SMALL[3]), padding_mode=mode)
    assert build_unet("baseline", depth=3, channels=SMALL[3], padding_mode=mode).config.padding_mode == mode


def test_zero_padding_would_break_equivariance():
    """Why it is refused: the same APS U-Net with its convs padding zeros (built as an
    ablation, from the circular one) is far from equivariant."""
    torch.manual_seed(0)
    model = build_unet("aps", depth=3, channels=SMALL[3], filter_size=3).double()
    x = torch.randn(2, 1, 16, 24, dtype=torch.float64)
    calibrate_batchnorm(model, x)
    assert equivariance_error_map(model, x, 8).max() < 1e-10
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d) and m.padding_mode == "circular":
            m.padding_mode = "zeros"
    assert equivariance_error_map(model, x, 8).max() > 1e-3


def test_bad_configurations_have_clear_errors():
    model = build_unet("aps", depth=3, channels=SMALL[3])
    with pytest.raises(
        ValueError, match=r"input size 100x64 is not divisible by 2\*\*depth = 8.*work: 96 or 104"
    ):
        model(torch.randn(1, 1, 100, 64))
    with pytest.raises(ValueError, match="input size 64x4 .*work: 16 "):
        model(torch.randn(1, 1, 64, 4))
    with pytest.raises(ValueError, match="channels"):
        model(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        model(torch.randn(64, 64))
    with pytest.raises(ValueError, match="too small.*at least 16x16.*bottleneck"):
        model(torch.randn(1, 1, 8, 64))
    build_unet("baseline", depth=3, channels=SMALL[3]).eval()(torch.randn(1, 1, 8, 8))
    with pytest.raises(ValueError, match="unknown variant 'apsx'"):
        build_unet("apsx")
    with pytest.raises(ValueError, match="criterion must be one of"):
        build_unet("aps", criterion="l0")
    for fs in (0, 8):
        with pytest.raises(ValueError, match="filter_size must be in 1..7"):
            build_unet("aps", filter_size=fs)
    with pytest.raises(ValueError, match="depth \\+ 1 = 4 entries"):
        build_unet("aps", depth=3, channels=[4, 8, 16])
    with pytest.raises(ValueError, match="depth must be an integer >= 1"):
        build_unet("aps", depth=0)
    with pytest.raises(ValueError, match="baseline' has no blur"):
        build_unet("baseline", filter_size=3)
    with pytest.raises(ValueError, match="padding_mode"):
        build_unet("aps", padding_mode="wrap")


@pytest.mark.parametrize("filter_size", range(2, 8))
def test_l1_after_blur_is_refused(filter_size):
    with pytest.raises(ValueError, match="ill-posed.*Nyquist.*criterion='l2'"):
        build_unet("aps", filter_size=filter_size, criterion="l1")
    with pytest.raises(ValueError, match="ill-posed"):
        PolyphaseDown(filter_size, NormSelection("l1"))
    build_unet("aps", filter_size=filter_size, criterion="linf")  # no identity there
    build_unet("lpf", filter_size=filter_size, criterion="l1")  # no APS: criterion unused


def test_linf_after_max_pool_without_blur_is_refused():
    with pytest.raises(ValueError, match="ill-posed.*max-pool.*all four"):
        build_unet("aps", filter_size=1, criterion="linf")
    with pytest.raises(ValueError, match="ill-posed"):
        PolyphaseDown(1, NormSelection("linf"))
    build_unet("aps", filter_size=1, criterion="l1")


@pytest.mark.parametrize("criterion,filter_size", [("l1", 3), ("linf", 1)])
def test_refused_combinations_really_tie(criterion, filter_size):
    """Why they are refused: on the map APS-D sees, the top two norms tie exactly."""
    from apslib import polyphase_norms
    from apslib.filters import blur
    from apslib.layers import pool_stride1

    x = torch.randn(4, 3, 16, 16, dtype=torch.float64).relu()
    m = blur(pool_stride1(x), filter_size)
    top2 = polyphase_norms(m, criterion).topk(2, dim=1).values
    assert torch.allclose(top2[:, 0], top2[:, 1], rtol=1e-13, atol=0)
    ok = polyphase_norms(m, "l2").topk(2, dim=1).values
    assert ((ok[:, 0] - ok[:, 1]) / ok[:, 0]).min() > 1e-6


def test_config_round_trips_through_dict():
    cfg = UNetConfig(variant="aps", depth=2, channels=(4, 8, 16), filter_size=3)
    assert UNetConfig(**cfg.to_dict()) == cfg
    assert cfg.multiple == 4


# a str is iterable: "123" was built as widths (1, 2, 3), and "4, 8, 16" failed in int(",")
NOT_WIDTHS = ["4, 8, 16", "123", [4, 8.0, 16], [4, True, 16], [4, 0, 16], [4, "8", 16], 16, None]


@pytest.mark.parametrize("channels", NOT_WIDTHS, ids=repr)
def test_channels_other_than_positive_ints_are_one_line_naming_channels(channels):
    builders = [lambda: UNetConfig(depth=2, channels=channels)]
    if channels is not None:  # build_unet's None is the paper's widths
        builders.append(lambda: build_unet("aps", depth=2, channels=channels))
    for build in builders:
        with pytest.raises(ValueError) as err:
            build()
        msg = str(err.value)
        assert "\n" not in msg and msg.startswith("channels needs depth + 1 = 3 entries"), msg
        assert "positive ints such as [8, 16, 32]" in msg and msg.endswith(f"got {channels!r}"), msg


def test_channels_take_any_sequence_of_ints_as_one_tuple():
    import numpy as np

    for channels in ([4, 8, 16], (4, 8, 16), range(4, 20, 6), np.array([4, 8, 16]), iter([4, 8, 16])):
        want = tuple(channels) if isinstance(channels, range) else (4, 8, 16)
        cfg = build_unet("aps", depth=2, channels=channels).config
        assert cfg.channels == want and all(type(c) is int for c in cfg.channels)
    assert UNetConfig.from_dict({**UNetConfig(depth=2, channels=[4, 8, 16]).to_dict()}).channels == (4, 8, 16)


@pytest.mark.parametrize(
    "shift",
    ["12", "1, 2", b"12", (1.0, 2.0), (0.5, 0), 1.0, True, (True, 1), (1, 2, 3), (1,), None]
    + [torch.tensor([1.5, 2.0]), torch.tensor([True, False]), (torch.tensor(1.0), 2), torch.arange(99)],
    ids=lambda k: " ".join(repr(k).split())[:30],
)
def test_roll2d_refuses_a_shift_that_is_not_an_int_pair_in_one_line(shift):
    """A str is iterable: ``roll2d(x, "12")`` shifted by (1, 2) without a word."""
    with pytest.raises(TypeError) as err:
        roll2d(torch.arange(64.0).reshape(1, 1, 8, 8), shift)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("shift must be an int or a pair of ints (dy, dx)"), msg


def test_roll2d_takes_an_int_pair_in_any_form():
    import numpy as np

    x = torch.arange(64.0).reshape(1, 1, 8, 8)
    want = torch.roll(x, (1, -2), (-2, -1))
    pairs = [(1, -2), [1, -2], torch.tensor([1, -2]), np.array([1, -2]), (np.int64(1), -2)]
    for k in pairs + [(torch.tensor(1), torch.tensor(-2)), range(1, -3, -3)]:
        assert torch.equal(roll2d(x, k), want), k
    assert torch.equal(roll2d(x, 3), torch.roll(x, (3, 3), (-2, -1)))  # an int: both axes


def test_all_shift_pairs_modulo_period_are_tested():
    # The shift grid used by the Proposition 2 test covers every (dy, dx) modulo 2**depth.
    from apslib import metrics

    grid = metrics.shift_grid(8)
    assert sorted(grid) == sorted(itertools.product(range(8), range(8)))


VALID = [("l2", j) for j in range(1, 8)] + [("l1", 1)] + [("linf", j) for j in range(2, 8)]


@settings(max_examples=40, deadline=None)
@given(
    depth=st.integers(1, 3),
    hm=st.integers(1, 3),
    wm=st.integers(1, 3),
    combo=st.sampled_from(VALID),
    seed=st.integers(0, 10**6),
    dy=st.integers(-64, 64),
    dx=st.integers(-64, 64),
    batch=st.integers(1, 3),
)
def test_proposition_2_property(depth, hm, wm, combo, seed, dy, dx, batch):
    """Random depth, non-square sizes, criteria, filter sizes, seeds and shifts (float64).

    Prop. 2 assumes a unique largest norm at every level; tiny random nets with dead ReLUs
    occasionally produce exact ties (see phase_margins), which are excluded - and counted
    by test_ties_in_small_random_nets_are_rare_and_detected.
    """
    criterion, filter_size = combo
    torch.manual_seed(seed)
    m = 2**depth
    h, w = m * (hm + 1), m * (wm + 1)  # at least a 2x2 bottleneck
    model = build_unet(
        "aps", depth=depth, channels=[4] * (depth + 1), filter_size=filter_size, criterion=criterion
    ).double()
    x = torch.randn(batch, 1, h, w, dtype=torch.float64)
    calibrate_batchnorm(model, x)
    assume(min(float(mg.min()) for mg in phase_margins(model, x)) > 1e-9)
    err = equivariance_errors(model, x, [(dy, dx), (dy + 1, dx), (dy, dx + 1), (1, 1)])
    assert err.max() <= 1e-12, (float(err.max()), h, w)


def test_ties_in_small_random_nets_are_rare_and_detected():
    """Count exact ties over many tiny random nets; where there is none, Prop. 2 holds."""
    ties = 0
    trials = 30
    for seed in range(trials):
        torch.manual_seed(seed)
        model = build_unet("aps", depth=3, channels=[4] * 4, filter_size=3).double()
        x = torch.randn(3, 1, 24, 16, dtype=torch.float64)
        calibrate_batchnorm(model, x)
        margins = torch.stack([mg for mg in phase_margins(model, x)])  # (levels, B)
        tied = (margins <= 1e-12).any(dim=0)
        ties += int(tied.any())
        err = torch.stack(
            [equivariance_errors(model, x[b : b + 1], [(1, 0), (0, 1), (1, 1)]).max() for b in range(3)]
        )
        assert (err[~tied] <= 1e-12).all()
    assert ties <= trials // 5, ties


def test_phase_margins_flag_a_constructed_tie():
    model, x = make("aps", 3, 1, seed=1)
    assert all(float(mg.min()) > 1e-9 for mg in phase_margins(model, x))
    const = torch.ones_like(x)
    assert float(phase_margins(model, const)[0].max()) == 0.0
    assert phase_margins(make("baseline")[0], x) == []


# --- the one size rule: unet.check_size ----------------------------------------------------


def _named_sizes(message: str) -> list[int]:
    """The sizes a check_size message says work ("Sizes that work: 24 or 32",
    "at least 16x16")."""
    named = re.search(r"Sizes that work: (\d+(?: or \d+)*)", message)
    if named:
        return [int(n) for n in named.group(1).split(" or ")]
    least = re.search(r"at least (\d+)x(\d+)", message)
    return [int(least.group(1))] if least else []


def _size_case(variant, depth, h, w):
    cfg = UNetConfig(variant, depth=depth, channels=[4] * (depth + 1))
    m = 2**depth
    works = h % m == 0 and w % m == 0 and min(h, w) >= cfg.min_size
    try:
        check_size((h, w), cfg)
    except ValueError as err:
        assert not works, (variant, depth, h, w, str(err))
        named = _named_sizes(str(err))
        assert named, str(err)
        for n in named:  # every size the message names is one that works
            check_size((n, n), cfg)
            check_size(n, cfg)
        assert f"{h}x{w}" in str(err)  # names the size it got
    else:
        assert works, (variant, depth, h, w)


@pytest.mark.parametrize("variant", ["baseline", "lpf", "aps"])
@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_check_size_every_square_side(variant, depth):
    """Every side up to four periods: multiples of 2**depth at least min_size pass; every
    other fails naming sizes that work, and those pass."""
    cfg = UNetConfig(variant, depth=depth, channels=[4] * (depth + 1))
    assert cfg.min_size == (1 if variant == "baseline" else 2) * 2**depth
    for n in range(1, 4 * 2**depth + 2):
        _size_case(variant, depth, n, n)


@settings(max_examples=300, deadline=None)
@given(
    variant=st.sampled_from(["baseline", "lpf", "aps"]),
    depth=st.integers(1, 6),
    h=st.integers(1, 400),
    w=st.integers(1, 400),
)
def test_check_size_property(variant, depth, h, w):
    _size_case(variant, depth, h, w)


def test_check_size_is_what_the_model_enforces():
    model = build_unet("aps", depth=2, channels=[2, 2, 2])
    for h, w in [(8, 12), (12, 8), (6, 8), (4, 8)]:
        try:
            check_size((h, w), model.config)
        except ValueError as err:
            with pytest.raises(ValueError) as from_model:
                model(torch.zeros(1, 1, h, w))
            assert str(from_model.value) == str(err)
        else:
            assert model.eval()(torch.zeros(1, 1, h, w)).shape == (1, 1, h, w)


def test_check_size_depth_hint_is_a_depth_that_works():
    for variant, depth, n in [
        ("aps", 3, 33),
        ("aps", 2, 2),
        ("lpf", 1, 3),
        ("aps", 4, 40),
        ("baseline", 5, 48),
        ("lpf", 3, 12),
        ("aps", 3, (30, 17)),
    ]:
        cfg = UNetConfig(variant, depth=depth, channels=[4] * (depth + 1))
        with pytest.raises(ValueError) as err:
            check_size(n if isinstance(n, tuple) else (n, n), cfg)
        hint = re.search(r"a depth of at most (\d+)", str(err.value))
        if hint:
            d = int(hint.group(1))
            assert d >= 1
            check_size(
                n if isinstance(n, tuple) else (n, n), UNetConfig(variant, depth=d, channels=[4] * (d + 1))
            )


# --- PolyphaseDown.phase_norms: its argmax is the grid the layer chooses ----------------------


@pytest.mark.parametrize("filter_size,criterion", [(1, "l2"), (3, "l2"), (1, "l1"), (3, "linf")])
@pytest.mark.parametrize("train", [False, True])
def test_phase_norms_argmax_is_the_chosen_phase(filter_size, criterion, train):
    """In eval mode and in training (where the no-blur layer takes its fast path)."""
    model, x = make("aps", 3, filter_size, criterion, seed=filter_size + 7, batch=4)
    seen = []

    def hook(module, inputs, output):
        norms = module.phase_norms(inputs[0].detach())
        assert norms.shape == (x.shape[0], 4) and norms.dtype == torch.float64
        seen.append((norms.argmax(1), output[1]))

    layers = [m for m in model.modules() if isinstance(m, PolyphaseDown)]
    handles = [m.register_forward_hook(hook) for m in layers]
    try:
        model.train(train)
        with torch.set_grad_enabled(train):
            model(x.clone().requires_grad_(train))
    finally:
        for h in handles:
            h.remove()
    assert len(seen) == len(layers) == 3
    for argmax, chosen in seen:
        assert torch.equal(argmax, chosen)


@pytest.mark.parametrize("variant", ["aps", "lps"])
@pytest.mark.parametrize("seed", range(4))
def test_a_single_float32_image_is_exact_like_a_batch(variant, seed):
    """float32 kernels may round a batch of one differently from a larger batch (a relative
    ~5e-7 on this CPU); equivariance_errors compares F(x) with the shifted copies computed in
    the same call, so one image measures the model's equivariance, not the batch size's."""
    depth = 3 + seed % 2
    size = (2**depth * (2 + seed % 3), 2**depth * (3 - seed % 2))
    model, x = make(variant, depth, 1 + 2 * (seed % 2), dtype=torch.float32, seed=seed, size=size, batch=1)
    x = x * [1e-3, 1.0, 100.0, 7.0][seed]
    shifts = [(1, 0), (0, 1), (3, -5), (-7, 2), (11, 13)]
    assert float(equivariance_errors(model, x, shifts, chunk=2).max()) == 0.0


def test_equivariance_errors_is_the_relative_error_per_shift():
    """A map that is not equivariant (a fixed mask): the error per shift is what the formula
    gives, whatever the chunk; no shifts give an empty result."""
    torch.manual_seed(0)
    mask = torch.rand(1, 1, 6, 8, dtype=torch.float64)
    x = torch.randn(3, 2, 6, 8, dtype=torch.float64)
    fn = lambda t: t * mask  # noqa: E731
    shifts = [(0, 0), (1, 0), (2, 3), (-1, 5)]
    expected = torch.stack(
        [(fn(roll2d(x, k)) - roll2d(fn(x), k)).abs().max() / fn(x).abs().max() for k in shifts]
    )
    for chunk in (1, 3, 16):
        torch.testing.assert_close(equivariance_errors(fn, x, shifts, chunk=chunk), expected, rtol=0, atol=0)
    assert equivariance_errors(fn, x, []).shape == (0,)

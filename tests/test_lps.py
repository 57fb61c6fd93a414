"""Learnable polyphase sampling (LPS, LPS-j): the learned choice as a selection rule of the
family; exact equivariance in eval mode at every circular shift, the training-time choice's
distribution permutes with the shift, gradients reach the scorer, names and configs."""

import itertools

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from apslib import (
    PHASES,
    aps_up,
    build_unet,
    calibrate_batchnorm,
    equivariance_error_map,
    equivariance_errors,
    forced_phase,
    roll2d,
)
from apslib.fastpaths import disabled
from apslib.layers import PolyphaseDown, PolyphaseUp
from apslib.learned import (
    LearnedSelection,
    break_ties,
    scorer_parameters,
    scorer_width,
    set_sampling,
    temperature_at,
)
from apslib.metrics import phase_margins
from apslib.names import model_name, parse_model_name
from apslib.polyphase import (
    mix_phases,
    polyphase_components,
    polyphase_norms,
    select_phase,
    spread_phases,
)
from apslib.training import TrainConfig, config_for, runs, train
from apslib.unet import UNetConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def shifted_phase(p: int, k) -> int:
    """The phase index that component ``p`` of ``z`` has in ``roll2d(z, k)``."""
    i, j = PHASES[p]
    return 2 * ((i + k[0]) % 2) + (j + k[1]) % 2


def make(depth=3, filter_size=1, seed=0, size=(24, 16), batch=3, dtype=torch.float64, channels=None):
    torch.manual_seed(seed)
    model = build_unet(
        "lps", depth=depth, channels=channels or [4, 6, 8, 12][: depth + 1], filter_size=filter_size
    )
    model = model.to(dtype)
    x = torch.randn(batch, 1, *size, dtype=dtype, generator=torch.Generator().manual_seed(seed + 1))
    calibrate_batchnorm(model, x)  # leaves eval mode
    return model, x


def untied(model, x, floor=1e-9) -> bool:
    """No near-tie of the learned scores: every top-2 margin is above ``floor`` or exactly 0
    (an exact tie, which the norm decides: :func:`apslib.learned.break_ties`)."""
    return all(bool(((m > floor) | (m == 0)).all()) for m in phase_margins(model, x))


# --- the scores ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("channels,h,w", [(3, 8, 6), (8, 16, 12), (16, 6, 10), (32, 32, 24)])
def test_scores_permute_exactly_with_the_components(dtype, channels, h, w):
    torch.manual_seed(channels)
    rule = LearnedSelection(channels).to(dtype).eval()
    z = torch.randn(2, channels, h, w, dtype=dtype)
    with torch.no_grad():
        s = rule.scores(z)
        assert s.shape == (2, 4) and s.dtype == torch.float64
        for k in [(1, 0), (0, 1), (1, 1), (3, -5), (h - 1, 2), (-7, w + 1)]:
            moved = rule.scores(roll2d(z, k))
            perm = [shifted_phase(p, k) for p in range(4)]
            # the per-pixel scores are rolled bit for bit; only the order of the float64 sum differs
            torch.testing.assert_close(moved[:, perm], s, rtol=1e-13, atol=0), k


def test_scores_are_the_mean_square_of_the_scorer_on_each_component():
    rule = LearnedSelection(5).double().eval()
    z = torch.randn(2, 5, 8, 12, dtype=torch.float64)
    comps = polyphase_components(z)
    conv = lambda c: rule.project(torch.relu(rule.features(c)))  # noqa: E731 (the GEMM form)
    for p in range(4):
        torch.testing.assert_close(
            rule.score_map(comps[:, p]), conv(comps[:, p])[:, 0], rtol=1e-12, atol=1e-13
        )
        want = conv(comps[:, p]).square().mean(dim=(1, 2, 3))
        torch.testing.assert_close(rule.scores(z)[:, p], want, rtol=1e-12, atol=1e-14)


def test_with_an_identity_scorer_the_choice_is_aps():
    """f = identity on one channel (a delta kernel, no bias, ReLU of a non-negative map):
    the logits are APS's squared l2 norms per pixel, and so is the choice."""
    rule = LearnedSelection(1).double().eval()
    with torch.no_grad():
        rule.features.weight.zero_()
        rule.features.weight[:, 0, 1, 1] = 1.0
        rule.features.bias.zero_()
        rule.project.weight.fill_(1.0 / rule.project.weight.numel())  # f(z) = z
        rule.project.bias.zero_()
    z = torch.rand(5, 1, 8, 10, dtype=torch.float64)
    torch.testing.assert_close(rule.scores(z) * 20, polyphase_norms(z))  # 20 pixels per component
    assert torch.equal(rule.choose(z), polyphase_norms(z).argmax(1))


def test_eval_choice_is_the_argmax_and_exact_ties_go_to_the_norm_then_the_lowest_phase():
    rule = LearnedSelection(4).double().eval()
    z = torch.randn(6, 4, 8, 8, dtype=torch.float64)
    assert torch.equal(rule.choose(z), rule.scores(z).argmax(1))
    const = torch.ones(2, 4, 8, 8, dtype=torch.float64)
    assert rule.choose(const).tolist() == [0, 0]  # four equal scores and four equal norms
    # A dead scorer (its ReLU off everywhere): every component scores exactly bias**2 and
    # the choice is APS's, which follows a shift; the lowest index would not.
    with torch.no_grad():
        rule.features.bias.fill_(-1e6)
    scores = rule.scores(z)
    assert (scores == scores[:, :1]).all()
    assert torch.equal(rule.choose(z), polyphase_norms(z).argmax(1))
    assert not (polyphase_norms(z).argmax(1) == 0).all()
    for k in [(1, 0), (0, 1), (1, 1)]:
        moved = [shifted_phase(int(p), k) for p in rule.choose(z)]
        assert rule.choose(roll2d(z, k)).tolist() == moved


def test_a_partial_tie_is_decided_by_the_norm_among_the_tied_only():
    logits = torch.tensor([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, 5.0]], dtype=torch.float64)
    z = torch.zeros(2, 1, 4, 4, dtype=torch.float64)
    z[0, 0, 1, 1] = 9.0  # phase 3 has the largest norm but is not among the tied
    z[0, 0, 1, 0] = 2.0  # phase 2 beats phase 1 among the tied
    z[1, 0, 0, 1] = 1.0  # phase 1
    assert break_ties(logits, z).tolist() == [2, 1]


def test_scorer_size_and_parameter_count():
    assert [scorer_width(c) for c in (1, 32, 64, 512)] == [8, 8, 16, 128]
    for c in (1, 7, 64, 256):
        assert scorer_parameters(c) == sum(p.numel() for p in LearnedSelection(c).parameters())
    model = build_unet("lps", depth=3, channels=[8, 16, 32, 64])
    aps = build_unet("aps", depth=3, channels=[8, 16, 32, 64])
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(model) - n(aps) == sum(scorer_parameters(c) for c in (8, 16, 32))


# --- eval mode: exact equivariance (Propositions 1 and 2 with a learned choice) ------------


@pytest.mark.parametrize("depth,filter_size", [(1, 1), (2, 1), (2, 3), (3, 1), (3, 3), (3, 5)])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_lps_unet_is_equivariant_to_every_shift_modulo_the_period(depth, filter_size, dtype, tol):
    size = {1: (6, 10), 2: (12, 20), 3: (24, 16)}[depth]
    for seed in range(10 * depth + filter_size, 10 * depth + filter_size + 5):  # an untied net
        model, x = make(depth, filter_size, seed=seed, size=size, dtype=dtype)
        if untied(model, x):
            break
    assert untied(model, x)
    errors = equivariance_error_map(model, x, 2**depth, chunk=32)
    assert errors.max() <= tol, float(errors.max())
    assert equivariance_errors(model, x, [(37, -53), (-101, 7)]).max() <= tol


@settings(max_examples=30, deadline=None)
@given(
    depth=st.integers(1, 3),
    hm=st.integers(1, 3),
    wm=st.integers(1, 3),
    filter_size=st.sampled_from([1, 2, 3, 5]),
    seed=st.integers(0, 10**6),
    dy=st.integers(-64, 64),
    dx=st.integers(-64, 64),
    batch=st.integers(1, 3),
)
def test_lps_equivariance_property(depth, hm, wm, filter_size, seed, dy, dx, batch):
    """Random depths, non-square sizes, blurs, seeds and shifts (float64); exact score ties
    (dead scorers in tiny random nets) included, near-ties short of exact excluded."""
    m = 2**depth
    model, x = make(depth, filter_size, seed, size=(m * (hm + 1), m * (wm + 1)), batch=batch)
    assume(untied(model, x))
    err = equivariance_errors(model, x, [(dy, dx), (dy + 1, dx), (dy, dx + 1), (1, 1)])
    assert err.max() <= 1e-12, float(err.max())


def test_small_random_lps_nets_have_no_near_ties_and_are_exact():
    for seed in range(20):
        model, x = make(3, 3, seed=seed, size=(24, 16))
        assert untied(model, x)
        for b in range(3):
            err = equivariance_errors(model, x[b : b + 1], [(1, 0), (0, 1), (1, 1), (3, 5)])
            assert err.max() <= 1e-12, (seed, b, float(err.max()))


@pytest.mark.parametrize("dead", [(0,), (2,), (0, 1, 2)])
def test_a_u_net_with_dead_scorers_is_exact_at_every_shift(dead):
    """A trained scorer can be off (ReLU) on whole components, deep in the net where maps
    are small: those components tie exactly at bias**2. The norm decides, so the U-Net stays
    exact at every shift modulo the period (with the lowest-index rule it was not)."""
    model, x = make(3, 3, seed=4, size=(24, 16))
    rules = [d.selection for d in model.downs]
    with torch.no_grad():
        for level in dead:
            rules[level].features.bias.fill_(-1e6)
    margins = phase_margins(model, x)
    assert all(bool((margins[level] == 0).all()) for level in dead)
    errors = equivariance_error_map(model, x, 8, chunk=32)
    assert errors.max() <= 1e-12, float(errors.max())


def test_the_chosen_grids_follow_the_shift_level_by_level():
    from apslib.evaluate.protocols import count_flips

    model, x = make(3, 3, seed=5)
    assert untied(model, x)
    with torch.no_grad():
        _, ph = model(x, return_phases=True)
        for k in itertools.product(range(8), repeat=2):
            _, ph_k = model(roll2d(x, k), return_phases=True)
            assert count_flips(ph, ph_k, torch.tensor([k] * len(x))).eq(0).all(), k


def test_forced_phase_fixes_the_learned_grid_and_restores_it():
    model, x = make(2, 1, size=(12, 20))
    rules = [d.selection for d in model.downs]
    with forced_phase(model, 0), torch.no_grad():
        _, ph = model(x, return_phases=True)
        assert all(p is None for p in ph)
    assert [d.selection for d in model.downs] == rules
    assert all(isinstance(r, LearnedSelection) for r in rules)


# --- training mode: the Gumbel-softmax choice ---------------------------------------------


def test_training_choice_distribution_permutes_with_the_shift():
    """Gumbel-max samples the choice from softmax(s) (the temperature only sets how soft the
    weights are): the probabilities permute with the components; sampled choices (fixed
    seeds, 4000 draws per input) have permuted frequencies within sampling error."""
    torch.manual_seed(3)
    rule = LearnedSelection(6).double().train()
    with torch.no_grad():
        rule.project.weight.mul_(12.0)  # logits apart by ~1: a spread-out distribution
    rule.temperature = 0.5
    rule.straight_through = True
    z = torch.randn(1, 6, 12, 8, dtype=torch.float64)
    k = (1, 3)
    perm = [shifted_phase(p, k) for p in range(4)]
    with torch.no_grad():
        s, s_k = rule.scores(z), rule.scores(roll2d(z, k))
        probs, probs_k = (torch.softmax(v, 1) for v in (s, s_k))
        torch.testing.assert_close(probs_k[:, perm], probs, rtol=0, atol=1e-15)
        assert probs.max() < 0.9 and probs.min() > 0.02, probs  # not degenerate

        def frequencies(v, seed):
            rule.generator = torch.Generator().manual_seed(seed)
            w = rule.weights(v.expand(4000, 4).contiguous())
            assert torch.equal(w.sum(1), torch.ones(4000, dtype=w.dtype))  # one-hot forward
            return w.mean(0)

        f, f_k = frequencies(s, 0), frequencies(s_k, 1)
    sd = (probs[0] * (1 - probs[0]) / 4000).sqrt()
    assert ((f_k[perm] - f).abs() <= 5 * sd * 2**0.5 + 1e-12).all(), (f, f_k[perm])
    assert ((f - probs[0]).abs() <= 5 * sd + 1e-12).all(), (f, probs)


def test_soft_weights_at_a_low_temperature_are_nearly_the_argmax():
    rule = LearnedSelection(4).double().train()
    z = torch.randn(8, 4, 8, 8, dtype=torch.float64)
    s = rule.scores(z).detach()
    rule.temperature = 1e-6
    rule.generator = torch.Generator().manual_seed(0)
    w = rule.weights(s * 0 + s)  # noise included: the argmax of s + g
    assert torch.allclose(w.sum(1), torch.ones(8, dtype=w.dtype))
    assert (w.max(1).values > 1 - 1e-6).all()


@pytest.mark.parametrize("straight_through", [False, True])
@pytest.mark.parametrize("filter_size", [1, 3])
def test_gradients_reach_every_scorer(straight_through, filter_size):
    torch.manual_seed(0)
    model = build_unet("lps", depth=2, channels=[4, 6, 8], filter_size=filter_size).double().train()
    assert set_sampling(model, temperature=0.7, straight_through=straight_through) == 2
    x = torch.randn(3, 1, 16, 12, dtype=torch.float64)
    out, ph = model(x, return_phases=True)
    assert all(p.dtype == torch.float64 and p.shape == (3, 4) for p in ph)  # soft choices
    if straight_through:
        assert all(torch.equal(p.detach().max(1).values, torch.ones(3, dtype=p.dtype)) for p in ph)
    out.square().mean().backward()
    for down in model.downs:
        grads = [p.grad for p in down.selection.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert sum(float(g.abs().sum()) for g in grads) > 0


def test_straight_through_forward_is_exactly_the_chosen_component():
    torch.manual_seed(1)
    down = PolyphaseDown(3, LearnedSelection(5), pool="max").train()
    down.selection.straight_through = True
    x = torch.randn(4, 5, 16, 12)
    y, w = down(x)
    idx = w.argmax(1)
    assert torch.equal(y, select_phase(down.pooled(x), idx))


def test_the_decoder_uses_its_encoder_levels_choice():
    """Train mode, straight-through: each up layer spreads onto the grid its level chose
    (its output equals the eval-form APS-U on the argmax)."""
    torch.manual_seed(2)
    model = build_unet("lps", depth=2, channels=[4, 6, 8], filter_size=3).double().train()
    set_sampling(model, straight_through=True, generator=torch.Generator().manual_seed(0))
    seen = []
    hooks = [u.register_forward_hook(lambda m, i, o: seen.append((m, i[0], i[1], o))) for u in model.ups]
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    _, ph = model(x, return_phases=True)
    for h in hooks:
        h.remove()
    for (up, y, w, out), level in zip(seen, (1, 0)):
        assert w is ph[level]
        torch.testing.assert_close(out, up(y, w.argmax(1)), rtol=0, atol=1e-13)


def test_sampling_is_reproducible_with_a_generator():
    torch.manual_seed(0)
    model = build_unet("lps", depth=2, channels=[4, 6, 8]).double().train()
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    outs = []
    for _ in range(2):
        set_sampling(model, generator=torch.Generator().manual_seed(7))
        with torch.no_grad():
            outs.append(model(x))
    assert torch.equal(*outs)


# --- the soft forms and their fast path -----------------------------------------------------


def test_soft_forms_with_one_hot_weights_are_the_hard_ones():
    x = torch.randn(3, 4, 8, 6)
    y = torch.randn(3, 4, 4, 3)
    idx = torch.tensor([0, 3, 2])
    one_hot = torch.nn.functional.one_hot(idx, 4).float()
    assert torch.equal(mix_phases(x, one_hot), select_phase(x, idx))
    assert torch.equal(spread_phases(y, one_hot), aps_up(y, idx))
    w = torch.softmax(torch.randn(3, 4), 1)
    want = sum(w[:, p, None, None, None] * select_phase(x, torch.full((3,), p)) for p in range(4))
    torch.testing.assert_close(mix_phases(x, w), want)
    with pytest.raises(ValueError, match=r"\(3, 4\) float tensor"):
        mix_phases(x, w[:2])


@pytest.mark.parametrize("filter_size,up_pad", [(1, "bottom_right"), (3, "bottom_right"), (2, "top_left")])
def test_fast_up_form_with_soft_weights_equals_the_literal_one(filter_size, up_pad):
    torch.manual_seed(0)
    up = PolyphaseUp(6, 4, filter_size, up_pad=up_pad).double()
    y = torch.randn(3, 6, 5, 4, dtype=torch.float64, requires_grad=True)
    w = torch.softmax(torch.randn(3, 4, dtype=torch.float64), 1).requires_grad_()
    fast = up(y, w)
    g_fast = torch.autograd.grad(fast.square().sum(), (y, w, up.weight))
    with disabled():
        slow = up(y, w)
        g_slow = torch.autograd.grad(slow.square().sum(), (y, w, up.weight))
    torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-12)
    for a, b in zip(g_fast, g_slow):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_train_and_eval_agree_at_a_vanishing_temperature():
    """At tau -> 0 without noise in the way (scores far apart), train mode is eval mode."""
    model, x = make(2, 3, seed=4, size=(12, 20))
    with torch.no_grad():
        want = model(x)
        for down in model.downs:  # scale the logits up: the noise no longer decides
            down.selection.project.weight.mul_(1e4)
            down.selection.project.bias.mul_(1e4)
        assert torch.equal(model(x), want)  # the argmax does not see a scale
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eval()
        for down, up in zip(model.downs, model.ups):
            down.train(), up.train()
        set_sampling(model, temperature=1e-3, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(model(x), want, rtol=0, atol=1e-9)


# --- schedule, names, configs, training ------------------------------------------------------


def test_temperature_schedule():
    assert temperature_at(0) == 1.0
    assert temperature_at(1) == pytest.approx(0.8)
    assert temperature_at(30) == 0.1
    assert [temperature_at(e, 2.0, 0.5, 0.5) for e in range(4)] == [2.0, 1.0, 0.5, 0.5]
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        temperature_at(-1)
    with pytest.raises(ValueError, match="positive finite"):
        LearnedSelection(4, temperature=0)


def test_names_and_configs():
    assert model_name("lps") == "LPS" and model_name("lps", 3) == "LPS-3"
    assert parse_model_name("LPS-3")["variant"] == "lps" and parse_model_name("lps")["filter_size"] == 1
    assert parse_model_name("lps-2-da")["shift_augment"]
    assert build_unet("lps", depth=2, channels=[4, 6, 8], filter_size=3).config.name == "LPS-3"
    cfg = UNetConfig(variant="lps", depth=2, channels=(4, 6, 8)).resolve()
    assert (cfg.up_pad, cfg.padding_mode, cfg.min_size, cfg.multiple) == ("bottom_right", "circular", 8, 4)
    with pytest.raises(ValueError, match="LPS learns its score"):
        UNetConfig(variant="lps", depth=2, channels=(4, 6, 8), criterion="l1")
    with pytest.raises(ValueError, match="apslib's layers"):
        UNetConfig(variant="lps", depth=2, channels=(4, 8, 16), architecture="fastmri")
    with pytest.raises(ValueError, match="apslib's layers"):
        parse_model_name("fastMRI U-Net LPS")
    c = config_for("LPS-3", temperature_decay=0.5, straight_through=True)
    assert (c.variant, c.filter_size, c.clamp) == ("lps", 3, None) and c.resolve().clamp == 6.0
    with pytest.raises(ValueError, match="apply to variant 'lps'"):
        config_for("APS", temperature=0.5)
    with pytest.raises(ValueError, match="temperature_decay must be in"):
        TrainConfig(variant="lps", temperature_decay=1.5)
    with pytest.raises(ValueError, match="must not exceed temperature"):
        TrainConfig(variant="lps", temperature=0.2, temperature_min=0.5)


def test_old_run_folders_read_with_the_schedules_defaults():
    stored = config_for("APS", data_root="d", run_dir="r").resolve().to_dict()
    for key in ("temperature", "temperature_min", "temperature_decay", "straight_through"):
        del stored[key]
    assert TrainConfig.from_stored(stored) == config_for("APS", data_root="d", run_dir="r").resolve()


def test_trained_lps_is_exact_at_every_shift_and_resumes_bit_identically(tiny_data, tmp_path):
    kw = dict(depth=2, channels=(4, 8, 16), batch_size=2, device="cpu", epochs=3, lr_step=1)
    whole = train(config_for("LPS-3", data_root=tiny_data, run_dir=tmp_path / "a", **kw), progress=False)
    short = config_for("LPS-3", data_root=tiny_data, run_dir=tmp_path / "b", **{**kw, "epochs": 1})
    train(short, progress=False)
    resumed = train(short.replace(epochs=3), progress=False)
    a = torch.load(whole.path / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(resumed.path / "checkpoint.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and any("selection.features" in k for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    model = runs.load_model(whole.path)
    assert not model.training and model.config.variant == "lps"
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    assert untied(model, x)
    assert equivariance_error_map(model, x, 4).max() <= 1e-6  # float32 (batch-size rounding)
    assert all(r["val_equiv_nmse"] == 0.0 for r in whole.history)


# --- the two rules on one feature map (notebook 06) ------------------------------------------


@pytest.mark.parametrize("level", [0, 1])
def test_choice_rules_are_the_model_s_own_choice_and_aps_s_on_the_same_map(level):
    from apslib.learned import choice_rules

    model, x = make(depth=2, filter_size=3, seed=level)
    model.train()
    r = choice_rules(model, x, level=level, temperatures=(1.0, 0.25))
    assert model.training  # the mode is restored
    model.eval()
    _, phases = model(x[:1], return_phases=True)
    s = r["scores"]
    assert int(s["LPS: learned score"].argmax()) == int(phases[level][0])  # eval's argmax
    assert torch.allclose(s["APS: squared l2 norm"], polyphase_norms(r["map"][None])[0])
    for t in (1.0, 0.25):
        p = s[f"LPS training, tau={t:g}"]
        assert torch.allclose(p.sum(), torch.tensor(1.0, dtype=p.dtype))
        assert torch.allclose(p, torch.softmax(s["LPS: learned score"] / t, 0))
    # a colder temperature puts more mass on the argmax
    assert s["LPS training, tau=0.25"].max() >= s["LPS training, tau=1"].max()
    with pytest.raises(ValueError, match="learned sampling levels"):
        choice_rules(model, x, level=2)
    with pytest.raises(ValueError, match="learned sampling levels"):
        choice_rules(build_unet("aps", depth=2, channels=[4, 6, 8]), x)


@pytest.mark.parametrize("chans,pools", [(32, 4), (8, 3), (4, 1)])
def test_the_scorer_table_counts_what_an_lps_unet_adds(chans, pools):
    from apslib.evaluate import lps_scorer_table

    t = lps_scorer_table(chans, pools)
    widths = [chans * 2**k for k in range(pools + 1)]
    count = lambda v: sum(p.numel() for p in build_unet(v, depth=pools, channels=widths).parameters())  # noqa: E731
    added = count("lps") - count("aps")
    assert t.loc["total", "scorer parameters"] == added == t["scorer parameters"].iloc[:-1].sum()
    assert list(t.index) == [str(k) for k in range(1, pools + 1)] + ["total"]
    with pytest.raises(ValueError, match=">= 1"):
        lps_scorer_table(0, 4)

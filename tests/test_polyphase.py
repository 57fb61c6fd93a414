import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from apslib import (
    CRITERIA,
    PHASES,
    FixedGrid,
    NormSelection,
    PolyphaseDown,
    aps_down,
    aps_up,
    build_unet,
    calibrate_batchnorm,
    phase_shift,
    polyphase_components,
    polyphase_norms,
    roll2d,
)
from apslib.metrics import phase_margins
from apslib.polyphase import predicted_phases


def numpy_reference_down(x: np.ndarray, criterion: str):
    """Brute force: loop over samples and phases (float64)."""
    ys, idx = [], []
    for xb in x:
        comps = [xb[:, i::2, j::2].astype(np.float64) for i, j in PHASES]
        if criterion == "l2":
            norms = [np.sqrt((c**2).sum()) for c in comps]
        elif criterion == "l1":
            norms = [np.abs(c).sum() for c in comps]
        else:
            norms = [np.abs(c).max() for c in comps]
        p = int(np.argmax(norms))
        ys.append(comps[p])
        idx.append(p)
    return np.stack(ys), np.array(idx)


def spread_batch(b, c, h, w, seed, dtype=torch.float64):
    """Random batch whose samples prefer different phases (sample b boosts phase b % 4)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, h, w, generator=g, dtype=dtype)
    for s in range(b):
        i, j = PHASES[s % 4]
        x[s, :, i::2, j::2] *= 1.5
    return x


def expected_phase(p, shift):
    i, j = PHASES[p]
    return 2 * ((i + shift[0]) % 2) + (j + shift[1]) % 2


@pytest.mark.parametrize("criterion", CRITERIA)
@pytest.mark.parametrize("shape", [(4, 3, 8, 8), (5, 1, 6, 10), (3, 2, 12, 4), (1, 1, 2, 2)])
def test_aps_down_matches_brute_force(criterion, shape):
    x = spread_batch(*shape, seed=sum(shape))
    y, idx = aps_down(x, criterion)
    y_ref, idx_ref = numpy_reference_down(x.numpy(), criterion)
    assert idx.dtype == torch.int64 and idx.shape == (shape[0],)
    assert np.array_equal(idx.numpy(), idx_ref)
    assert np.array_equal(y.numpy(), y_ref)


def test_phase_order_is_documented_order():
    x = torch.zeros(4, 1, 4, 4)
    for p, (i, j) in enumerate(PHASES):
        x[p, 0, i::2, j::2] = 1.0
    _, idx = aps_down(x)
    assert idx.tolist() == [0, 1, 2, 3]
    comps = polyphase_components(x)
    for p in range(4):
        assert comps[p, p].sum() == 4 and comps[p].sum() == 4


def test_aps_up_places_on_chosen_grid_and_zeros_elsewhere():
    y = torch.randn(4, 3, 5, 6, dtype=torch.float64)
    idx = torch.tensor([0, 1, 2, 3])
    z = aps_up(y, idx)
    assert z.shape == (4, 3, 10, 12)
    for b, (i, j) in enumerate(PHASES):
        assert torch.equal(z[b, :, i::2, j::2], y[b])
        rest = z[b].clone()
        rest[:, i::2, j::2] = 0
        assert not rest.any()


@pytest.mark.parametrize("criterion", CRITERIA)
def test_up_down_keeps_exactly_the_chosen_grid(criterion):
    x = spread_batch(6, 2, 8, 6, seed=3)
    y, idx = aps_down(x, criterion)
    z = aps_up(y, idx)
    for b in range(6):
        i, j = PHASES[int(idx[b])]
        mask = torch.zeros(8, 6, dtype=torch.bool)
        mask[i::2, j::2] = True
        assert torch.equal(z[b], torch.where(mask, x[b], torch.zeros(())))


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 0.0), (torch.float32, 1e-6)])
@pytest.mark.parametrize("criterion", CRITERIA)
@pytest.mark.parametrize("shape", [(5, 2, 12, 10), (4, 1, 6, 16)])
def test_proposition_1_every_shift_of_the_map(dtype, tol, criterion, shape):
    """U(D(T_k x)) == T_k U(D(x)) for every shift k of the whole map, plus large ones."""
    x = spread_batch(*shape, seed=7, dtype=dtype)
    ud = aps_up(*aps_down(x, criterion))
    _, idx = aps_down(x, criterion)
    assert len(set(idx.tolist())) > 1, "batch should exercise several phases"
    h, w = shape[-2:]
    shifts = [(a, b) for a in range(h) for b in range(w)] + [(37, -50), (-1001, 999)]
    for k in shifts:
        xs = roll2d(x, k)
        ys, idx_s = aps_down(xs, criterion)
        got = aps_up(ys, idx_s)
        want = roll2d(ud, k)
        err = (got - want).abs().max() / want.abs().max()
        assert err <= tol, (k, float(err))
        assert idx_s.tolist() == [expected_phase(int(p), k) for p in idx]


@settings(max_examples=60, deadline=None)
@given(
    b=st.integers(1, 4),
    c=st.integers(1, 3),
    h2=st.integers(1, 12),
    w2=st.integers(1, 12),
    seed=st.integers(0, 2**31 - 1),
    criterion=st.sampled_from(CRITERIA),
    dy=st.integers(-100, 100),
    dx=st.integers(-100, 100),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_proposition_1_property(b, c, h2, w2, seed, criterion, dy, dx, dtype):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, 2 * h2, 2 * w2, generator=g, dtype=dtype)
    norms = polyphase_norms(x, criterion)
    top2 = norms.topk(2, dim=1).values
    if ((top2[:, 0] - top2[:, 1]) <= 1e-12 * top2[:, 0]).any():
        return  # an exact tie: equivariance is impossible by construction (tested elsewhere)
    got = aps_up(*aps_down(roll2d(x, (dy, dx)), criterion))
    want = roll2d(aps_up(*aps_down(x, criterion)), (dy, dx))
    assert torch.equal(got, want)


def test_near_tie_stays_equivariant():
    """Two phase norms within ~1e-7 relative: float64 accumulation decides consistently."""
    g = torch.Generator().manual_seed(11)
    h = w = 128
    x = torch.randn(1, 4, h, w, generator=g) * 0.01
    a = torch.randn(4, h // 2, w // 2, generator=g)
    perm = torch.randperm(a.numel(), generator=g)
    x[0, :, 0::2, 0::2] = a
    # The same multiset of values, rearranged, scaled up by a hair: a near-tie in l2.
    x[0, :, 1::2, 1::2] = a.flatten()[perm].view_as(a) * (1 + 2.5e-7)
    n = polyphase_norms(x, "l2")[0]
    gap = float((n[3] - n[0]) / n[3])
    assert 0 < gap < 1e-6, gap
    base_up = aps_up(*aps_down(x))
    for k in [(dy, dx) for dy in range(4) for dx in range(4)] + [(17, 45), (-33, 64)]:
        ys, idx = aps_down(roll2d(x, k))
        assert idx.item() == expected_phase(3, k), k
        assert torch.equal(aps_up(ys, idx), roll2d(base_up, k))


@pytest.mark.parametrize("criterion", CRITERIA)
def test_exact_ties_resolve_to_lowest_phase(criterion):
    const = torch.full((2, 3, 6, 8), 0.5)
    zero = torch.zeros(1, 1, 4, 4)
    periodic = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(3, 3).view(1, 1, 6, 6)
    for x in (const, zero, periodic):
        y, idx = aps_down(x, criterion)
        assert idx.tolist() == [0] * x.shape[0]
        assert torch.equal(y, x[..., 0::2, 0::2])
    # ...and on such inputs no single-grid choice is equivariant: U(D(T x)) != T U(D(x)).
    shifted = aps_up(*aps_down(roll2d(const, (0, 1)), criterion))
    assert not torch.equal(shifted, roll2d(aps_up(*aps_down(const, criterion)), (0, 1)))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_norms_are_float64_and_l2_is_squared(dtype):
    x = (torch.randn(3, 5, 16, 12, dtype=torch.float64) * 300).to(dtype)  # 300**2 > fp16 max
    ref_comps = polyphase_components(x.double())
    n = polyphase_norms(x, "l2")
    assert n.dtype == torch.float64 and n.shape == (3, 4)
    assert torch.isfinite(n).all()
    rtol = 1e-12 if dtype == torch.float64 else 1e-5
    assert torch.allclose(n, ref_comps.pow(2).sum(dim=(2, 3, 4)), rtol=rtol)
    assert torch.allclose(polyphase_norms(x, "l1"), ref_comps.abs().sum(dim=(2, 3, 4)), rtol=rtol)
    assert torch.equal(polyphase_norms(x, "linf"), ref_comps.abs().amax(dim=(2, 3, 4)))


@pytest.mark.parametrize("criterion", CRITERIA)
def test_norms_of_a_shifted_map_are_the_permuted_norms(criterion):
    """To float64 rounding: the per-pixel channel sums are exactly shift covariant."""
    x = torch.randn(2, 64, 32, 48)
    n = polyphase_norms(x, criterion)
    for k in [(1, 0), (0, 1), (1, 1), (5, 10), (16, 7)]:
        nk = polyphase_norms(roll2d(x, k), criterion)
        perm = [expected_phase(p, (-k[0], -k[1])) for p in range(4)]
        assert torch.allclose(nk, n[:, perm], rtol=1e-14, atol=0)


def test_gradients_flow_to_chosen_pixels_only():
    x = spread_batch(3, 2, 6, 8, seed=5).requires_grad_()
    y, idx = aps_down(x)
    y.sum().backward()
    for b in range(3):
        i, j = PHASES[int(idx[b])]
        expected = torch.zeros(2, 6, 8, dtype=torch.float64)
        expected[:, i::2, j::2] = 1
        assert torch.equal(x.grad[b], expected)
    yy = torch.randn(3, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: aps_up(t, idx), (yy,))
    assert torch.autograd.gradcheck(lambda t: phase_shift(t, idx), (yy,))


@pytest.mark.parametrize("circular", [True, False])
def test_phase_shift_is_per_sample_shift(circular):
    u = torch.randn(4, 2, 6, 8, dtype=torch.float64)
    idx = torch.tensor([3, 0, 1, 2])
    out = phase_shift(u, idx, circular=circular)
    for b, p in enumerate(idx.tolist()):
        i, j = PHASES[p]
        want = roll2d(u[b], (i, j))
        if not circular:
            want = want.clone()
            if i:
                want[:, 0, :] = 0
            if j:
                want[:, :, 0] = 0
        assert torch.equal(out[b], want)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtypes_and_channels_last(dtype):
    x = spread_batch(4, 3, 8, 10, seed=1).to(dtype)
    y, idx = aps_down(x)
    assert y.dtype == dtype
    y_cl, idx_cl = aps_down(x.to(memory_format=torch.channels_last))
    assert torch.equal(idx, idx_cl) and torch.equal(y, y_cl)
    assert aps_up(y, idx).dtype == dtype


@pytest.mark.parametrize("criterion", CRITERIA)
def test_the_layer_without_a_pool_is_aps_d_and_blur_pool(criterion):
    x = spread_batch(4, 2, 8, 8, seed=9)
    with torch.no_grad():
        y, idx = PolyphaseDown(selection=NormSelection(criterion), pool=None)(x)
    y2, idx2 = aps_down(x, criterion)
    assert torch.equal(y, y2) and torch.equal(idx, idx2)
    assert criterion in repr(PolyphaseDown(selection=NormSelection(criterion), pool=None))
    from apslib import blur_pool

    for size in (1, 3):
        y, idx = PolyphaseDown(size, FixedGrid(), pool=None)(x)
        assert idx is None and torch.equal(y, blur_pool(x, size))


def test_bad_inputs_have_clear_errors():
    with pytest.raises(ValueError, match="even height and width.*6x8"):
        aps_down(torch.randn(1, 1, 7, 8))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        aps_down(torch.randn(8, 8))
    with pytest.raises(TypeError, match="floating-point"):
        aps_down(torch.ones(1, 1, 4, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="criterion must be one of"):
        aps_down(torch.randn(1, 1, 4, 4), "l3")
    with pytest.raises(ValueError, match="criterion must be one of"):
        NormSelection("max")
    y = torch.randn(2, 1, 3, 3)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        aps_up(y, torch.tensor([0]))
    with pytest.raises(ValueError, match="0..3"):
        aps_up(y, torch.tensor([0, 4]))
    with pytest.raises(TypeError, match="integer tensor"):
        aps_up(y, torch.tensor([0.0, 1.0]))


@pytest.mark.parametrize("circular", [True, False])
def test_inverse_phase_shift_undoes_and_aligns_the_chosen_grid(circular):
    x = spread_batch(4, 2, 8, 6, seed=12)
    y, idx = aps_down(x)
    assert torch.equal(phase_shift(x, idx, inverse=True)[..., ::2, ::2], y)
    if circular:
        assert torch.equal(phase_shift(phase_shift(x, idx), idx, inverse=True), x)
    else:
        back = phase_shift(phase_shift(x, idx, circular=False), idx, circular=False, inverse=True)
        for b, p in enumerate(idx.tolist()):
            i, j = PHASES[p]
            h, w = x.shape[-2:]
            assert torch.equal(back[b, :, : h - i, : w - j], x[b, :, : h - i, : w - j])


@pytest.mark.parametrize("inverse", [False, True])
def test_phase_shift_keeps_channels_last_and_matches_roll(inverse):
    u = torch.randn(4, 3, 6, 10, dtype=torch.float64)
    idx = torch.tensor([2, 3, 0, 1])
    sign = -1 if inverse else 1
    want = torch.stack(
        [roll2d(u[b], (sign * PHASES[p][0], sign * PHASES[p][1])) for b, p in enumerate(idx.tolist())]
    )
    assert torch.equal(phase_shift(u, idx, inverse=inverse), want)
    cl = phase_shift(u.to(memory_format=torch.channels_last), idx, inverse=inverse)
    assert cl.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(cl, want)
    g = torch.randn_like(u)
    uu = u.clone().requires_grad_()
    (phase_shift(uu, idx, inverse=inverse) * g).sum().backward()
    assert torch.equal(uu.grad, phase_shift(g, idx, inverse=not inverse))


# --- predicted_phases: the grids an equivariant APS U-Net must choose for T_k x -------------


@pytest.mark.parametrize(
    "depth,filter_size,criterion", [(2, 1, "l2"), (3, 3, "l2"), (3, 1, "l1"), (4, 5, "linf")]
)
def test_predicted_phases_are_the_phases_an_aps_unet_chooses(depth, filter_size, criterion):
    """The shifts of one 2**depth period plus large and negative ones: at every level the
    phases chosen for T_k x are predicted_phases(phases of x, k) (samples with an exact tie
    at some level, which no single-grid rule can follow, are left out)."""
    torch.manual_seed(depth * 10 + filter_size)
    model = build_unet(
        "aps", depth=depth, channels=[4] * (depth + 1), filter_size=filter_size, criterion=criterion
    ).double()
    m = 2**depth
    x = torch.randn(4, 1, 3 * m, 2 * m, generator=torch.Generator().manual_seed(depth), dtype=torch.float64)
    calibrate_batchnorm(model, x)
    keep = torch.stack(phase_margins(model, x)).min(0).values > 1e-9
    assert keep.sum() >= 3
    period = [(dy, dx) for dy in range(m) for dx in range(m)]
    if depth > 3:  # every 5th of the 256 (5 is prime to 16: every dx and dy still occurs)
        period = period[::5]
    shifts = period + [(-1, 0), (0, -3), (37, -53), (-101, 7), (3 * m + 1, -2 * m)]
    with torch.no_grad():  # eval mode: each image's choice is independent of the batch
        _, phases_x = model(x, return_phases=True)
        shifted = torch.cat([roll2d(x, k) for k in shifts])  # shift-major: (S * 4, 1, H, W)
        chosen = [
            torch.cat(levels)
            for levels in zip(*(model(chunk, return_phases=True)[1] for chunk in shifted.split(256)))
        ]
    for k in shifts[:5] + shifts[-5:]:  # one shift for the whole batch
        predicted, seen = predicted_phases(phases_x, k)
        assert len(predicted) == len(seen) == depth
        assert (seen[0] == torch.tensor(k)).all()  # level 1 sees k itself
        i = shifts.index(k) * 4
        for level in range(depth):
            assert predicted[level].shape == (4,) and seen[level].shape == (4, 2)
            assert torch.equal(predicted[level][keep], chosen[level][i : i + 4][keep]), (k, level)
    # All shifts at once: one (dy, dx) per image.
    ks = torch.tensor(shifts).repeat_interleave(4, dim=0)
    predicted, _ = predicted_phases([p.repeat(len(shifts)) for p in phases_x], ks)
    rows = keep.repeat(len(shifts))
    for level in range(depth):
        assert torch.equal(predicted[level][rows], chosen[level][rows]), level


def test_predicted_phases_take_one_shift_per_sample():
    torch.manual_seed(5)
    model = build_unet("aps", depth=3, channels=[4] * 4, filter_size=3).double()
    x = torch.randn(3, 1, 24, 16, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    calibrate_batchnorm(model, x)
    k = torch.tensor([[1, 2], [-3, 5], [7, 0]])
    with torch.no_grad():
        _, phases_x = model(x, return_phases=True)
        shifted = torch.cat([roll2d(x[b : b + 1], tuple(k[b].tolist())) for b in range(3)])
        _, chosen = model(shifted, return_phases=True)
    predicted, seen = predicted_phases(phases_x, k)
    assert torch.equal(seen[0], k)
    for p, q in zip(predicted, chosen):
        assert torch.equal(p, q)
    for b in range(3):  # the same as one shift at a time
        single, _ = predicted_phases([p[b : b + 1] for p in phases_x], tuple(k[b].tolist()))
        assert [int(s) for s in single] == [int(p[b]) for p in predicted]


def test_predicted_phases_first_level_is_proposition_1():
    idx = torch.arange(4)
    for k in [(0, 0), (0, 1), (1, 0), (1, 1), (-3, 6)]:
        (pred,), (seen,) = predicted_phases([idx], k)
        assert pred.tolist() == [expected_phase(p, k) for p in range(4)]
        assert seen.tolist() == [list(k)] * 4

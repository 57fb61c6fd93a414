"""The fast forms of the layers (apslib.fastpaths) against their literal forms (float64): the
same values and gradients up to rounding (bit for bit where a grid is chosen), and exact
shift equivariance kept."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from apslib import fastpaths
from apslib.fastpaths import _CircularConv2d, disabled
from apslib.layers import Conv2d, pool_stride1
from apslib.shifts import roll2d

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def reference_conv(conv: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``nn.Conv2d``'s own circular padding (``F.pad(mode="circular")``)."""
    pads = conv._reversed_padding_repeated_twice
    return F.conv2d(
        F.pad(x, pads, mode="circular"), conv.weight, conv.bias, conv.stride, 0, conv.dilation, conv.groups
    )


CONV_CASES = [
    # (cin, cout, kernel, bias, H, W): the U-Nets' 3x3, a 5x5, 1-pixel-high maps, odd sizes
    (3, 5, 3, False, 8, 8),
    (2, 4, 3, True, 7, 12),
    (4, 3, 5, True, 6, 9),
    (1, 2, 3, False, 1, 4),
    (3, 3, 3, True, 2, 2),
    (2, 2, (3, 5), True, 5, 6),
]


@pytest.mark.parametrize("cin,cout,kernel,bias,h,w", CONV_CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_circular_conv_fast_path_equals_reference(cin, cout, kernel, bias, h, w, seed):
    torch.manual_seed(seed)
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    conv = Conv2d(cin, cout, k, padding=(k[0] // 2, k[1] // 2), bias=bias, padding_mode="circular").double()
    x = torch.randn(3, cin, h, w, dtype=torch.float64, requires_grad=True)
    seen = []
    hook = _record_fast_path(seen)
    try:
        y = conv(x)
    finally:
        hook()
    assert seen == [True]  # the fast path ran
    ref = reference_conv(conv, x)
    assert torch.allclose(y, ref, rtol=0, atol=1e-13)
    g = torch.randn_like(y)
    params = [x, *conv.parameters()]
    for a, b in zip(torch.autograd.grad(y, params, g), torch.autograd.grad(ref, params, g)):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)
    with torch.no_grad():  # the path without autograd
        assert torch.allclose(conv(x), ref, rtol=0, atol=1e-13)
    # only the input, or only the weights, need a gradient
    for wanted in ([x], list(conv.parameters())):
        for p in params:
            p.requires_grad_(any(p is q for q in wanted))
        got = torch.autograd.grad(conv(x), wanted, g)
        exp = torch.autograd.grad(reference_conv(conv, x), wanted, g)
        assert all(torch.allclose(a, b, rtol=0, atol=1e-12) for a, b in zip(got, exp))


def _record_fast_path(seen: list):
    """Record whether ``_CircularConv2d`` ran; returns the function that stops recording."""
    original = _CircularConv2d.forward

    def forward(ctx, *args):
        seen.append(True)
        return original(ctx, *args)

    _CircularConv2d.forward = staticmethod(forward)

    def stop():
        _CircularConv2d.forward = staticmethod(original)

    return stop


def test_circular_conv_fast_path_is_exactly_equivariant():
    torch.manual_seed(3)
    conv = Conv2d(3, 4, 3, padding=1, padding_mode="circular").double()
    x = torch.randn(2, 3, 10, 12, dtype=torch.float64)
    with torch.no_grad():
        y = conv(x)
        for k in itertools.product([1, 3, -4], [0, 5, -1]):
            assert torch.allclose(conv(roll2d(x, k)), roll2d(y, k), rtol=0, atol=1e-13)


def test_circular_conv_channels_last_and_other_convs():
    torch.manual_seed(4)
    conv = Conv2d(3, 4, 3, padding=1, padding_mode="circular").double()
    x = torch.randn(2, 3, 8, 10, dtype=torch.float64)
    cl = x.to(memory_format=torch.channels_last).requires_grad_()
    y = conv(cl)
    assert torch.allclose(y, reference_conv(conv, x), rtol=0, atol=1e-13)
    (gx,) = torch.autograd.grad(y.square().sum(), cl)
    xr = x.clone().requires_grad_()
    (gr,) = torch.autograd.grad(reference_conv(conv, xr).square().sum(), xr)
    assert torch.allclose(gx, gr, rtol=0, atol=1e-12)
    # strided, grouped, dilated and not half-kernel padded: the concatenation path, same values
    for kwargs in (dict(stride=2), dict(groups=3), dict(dilation=2, padding=2), dict(padding=2)):
        kw = dict(padding=1) | kwargs
        other = Conv2d(3, 6, 3, padding_mode="circular", **kw).double()
        assert torch.allclose(other(x), reference_conv(other, x), rtol=0, atol=1e-13)


@pytest.mark.parametrize("h,w", [(8, 8), (6, 10), (2, 4), (1, 3)])
@pytest.mark.parametrize("seed", [0, 1])
def test_stride1_pools_without_autograd_equal_the_autograd_form(h, w, seed):
    from apslib.filters import blur

    x = torch.randn(2, 3, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    xg = x.clone().requires_grad_()
    mx, avg = (lambda t: pool_stride1(t, "max")), (lambda t: pool_stride1(t, "avg"))
    # bit-identical: the same operations in the same order (so every path chooses the same grid)
    assert torch.equal(mx(x), mx(xg).detach())
    assert torch.equal(avg(x), avg(xg).detach())
    with disabled():
        assert torch.equal(mx(x), pool_stride1(x, "max")) and torch.equal(avg(x), pool_stride1(x, "avg"))
    cl = x.to(memory_format=torch.channels_last)
    assert torch.equal(avg(cl), avg(x))
    # the references: max-pool / average of the circularly padded map
    padded = F.pad(x, (0, 1, 0, 1), mode="circular")
    assert torch.equal(mx(x), F.max_pool2d(padded, 2, stride=1))
    if h > 1 and w > 1:
        assert torch.allclose(avg(x), blur(x, 2), rtol=0, atol=1e-15)
    assert torch.allclose(avg(x), F.avg_pool2d(padded, 2, stride=1), rtol=0, atol=1e-15)
    # exactly equivariant
    for k in [(1, 0), (0, 1), (3, -2)]:
        assert torch.equal(avg(roll2d(x, k)), roll2d(avg(x), k))
        assert torch.equal(mx(roll2d(x, k)), roll2d(mx(x), k))


@pytest.mark.parametrize("h,w", [(8, 8), (6, 10), (2, 2), (5, 3)])
@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("offset", [0, -1, 2])
def test_phase_shift_blocks_equal_per_sample_rolls(h, w, inverse, offset):
    from apslib.polyphase import phase_offsets, phase_shift

    torch.manual_seed(h * w)
    idx = torch.tensor([0, 1, 2, 3, 3, 1])
    u = torch.randn(6, 3, h, w, dtype=torch.float64)
    i, j = phase_offsets(idx)
    sign = -1 if inverse else 1
    ref = torch.stack(
        [
            torch.roll(u[n], (sign * (int(i[n]) + offset), sign * (int(j[n]) + offset)), (-2, -1))
            for n in range(6)
        ]
    )
    assert torch.equal(phase_shift(u, idx, inverse=inverse, offset=offset), ref)
    cl = u.to(memory_format=torch.channels_last)
    assert torch.equal(phase_shift(cl, idx, inverse=inverse, offset=offset), ref)
    # the gradient is the opposite shift
    ug = u.clone().requires_grad_()
    g = torch.randn_like(u)
    (grad,) = torch.autograd.grad(phase_shift(ug, idx, inverse=inverse, offset=offset), ug, g)
    assert torch.equal(grad, phase_shift(g, idx, inverse=not inverse, offset=offset))


@pytest.mark.parametrize("h,w", [(8, 8), (6, 10), (2, 4), (16, 12)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_converted_average_pool_train_path_equals_shift_then_pool(h, w, seed):
    from apslib.convert import PhasePool2d
    from apslib.polyphase import phase_shift

    pool = PhasePool2d("avg")
    x = torch.randn(5, 3, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    x.requires_grad_()
    pool.stack.begin()
    y = pool(x)
    (idx,) = pool.stack.phases
    ref = F.avg_pool2d(phase_shift(x, idx, inverse=True), 2)  # the reference form
    assert torch.allclose(y, ref, rtol=0, atol=1e-15)
    g = torch.randn_like(y)
    (gy,) = torch.autograd.grad(y, x, g)
    (gr,) = torch.autograd.grad(ref, x, g)
    assert torch.equal(gy, gr)
    # the path without gradients gives the same values and grid, bit for bit
    pool.stack.begin()
    with torch.no_grad():
        assert torch.equal(pool(x), y.detach())
    assert torch.equal(pool.stack.phases[0], idx)
    # a shift moves the grid and rolls the output (a 2-pixel side ties by construction)
    for k in [(1, 0), (0, 1), (1, 1), (3, -5)] if min(h, w) > 2 else []:
        pool.stack.begin()
        yk = pool(roll2d(x, k))
        (ik,) = pool.stack.phases
        i, j = idx // 2, idx % 2
        assert torch.equal(ik, 2 * ((i + k[0]) % 2) + (j + k[1]) % 2)
        shift = [((k[0] + i[n] - ik[n] // 2) // 2, (k[1] + j[n] - ik[n] % 2) // 2) for n in range(5)]
        exp = torch.stack([roll2d(y[n : n + 1], tuple(int(v) for v in shift[n]))[0] for n in range(5)])
        assert torch.allclose(yk, exp, rtol=0, atol=1e-15)


def test_circular_conv_scratch_buffers_are_reused_safely():
    torch.manual_seed(5)
    conv = Conv2d(3, 4, 3, padding=1, padding_mode="circular").double()
    xs = [torch.randn(2, 3, 6, 8, dtype=torch.float64) for _ in range(3)]
    with torch.no_grad():
        outs = [conv(x) for x in xs]  # the same padded shape: one buffer, rewritten
        with torch.inference_mode():
            inference = conv(xs[0])
        again = conv(xs[1])  # a buffer made in inference mode is not written outside it
    for x, y in zip(xs, outs):
        assert torch.allclose(y, reference_conv(conv, x), rtol=0, atol=1e-13)
    assert torch.equal(inference, outs[0]) and torch.equal(again, outs[1])
    # the output gradient's padded copy in the backward uses them too
    x = xs[2].clone().requires_grad_()
    (g1,) = torch.autograd.grad(conv(x).square().sum(), x)
    xr = xs[2].clone().requires_grad_()
    (g2,) = torch.autograd.grad(reference_conv(conv, xr).square().sum(), xr)
    assert torch.allclose(g1, g2, rtol=0, atol=1e-12)
    # many sizes: the buffers of a thread stay few
    with torch.no_grad():
        for n in range(4, 80, 2):
            conv(torch.randn(1, 3, n, 4, dtype=torch.float64))
    held = sum(t.numel() * t.element_size() for t in fastpaths._scratch.buffers.values())
    assert 0 < held <= fastpaths.SCRATCH_BYTES
    # a copy larger than the cap is not kept (a paper-size model keeps no gigabytes alive)
    big = Conv2d(1, 1, 3, padding=1, padding_mode="circular")
    side = int((fastpaths.SCRATCH_BYTES / 4) ** 0.5) + 2
    with torch.no_grad():
        big(torch.randn(1, 1, side, side))
    assert all(
        t.numel() * t.element_size() <= fastpaths.SCRATCH_BYTES for t in fastpaths._scratch.buffers.values()
    )


MODELS = [("baseline", 1), ("lpf", 2), ("lpf", 3), ("aps", 1), ("aps", 2), ("aps", 3)]


@pytest.mark.parametrize("variant,filter_size", MODELS)
@pytest.mark.parametrize("train", [False, True])
def test_every_model_computes_its_literal_form(variant, filter_size, train):
    """The whole U-Net with its fast forms equals the U-Net with none (values, grids and
    gradients), in training and in evaluation."""
    from apslib import build_unet, calibrate_batchnorm

    torch.manual_seed(filter_size)
    net = build_unet(variant, depth=3, channels=[4, 6, 8, 10], filter_size=filter_size).double()
    x = torch.randn(3, 1, 16, 24, dtype=torch.float64)
    calibrate_batchnorm(net, x).train(train)
    outs = []
    for fast in (True, False):
        xg = x.clone().requires_grad_(train)
        with torch.set_grad_enabled(train):
            if fast:
                y, phases = net(xg, return_phases=True)
            else:
                with disabled():
                    y, phases = net(xg, return_phases=True)
        grads = torch.autograd.grad(y.square().sum(), [xg, *net.parameters()]) if train else ()
        outs.append((y.detach(), phases, grads))
    (a, pa, ga), (b, pb, gb) = outs
    torch.testing.assert_close(a, b, rtol=0, atol=1e-11)
    assert all((p is None and q is None) or torch.equal(p, q) for p, q in zip(pa, pb))
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v, rtol=0, atol=1e-10)


@pytest.mark.parametrize("pool", ["max", "avg"])
@pytest.mark.parametrize("filter_size", [1, 3])
@pytest.mark.parametrize("adaptive", [True, False])
def test_the_downsampler_computes_its_literal_form(pool, filter_size, adaptive):
    from apslib.layers import FixedGrid, NormSelection, PolyphaseDown

    selection = NormSelection() if adaptive else FixedGrid()
    down = PolyphaseDown(filter_size, selection, pool=pool)
    x = torch.randn(4, 3, 8, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(filter_size))
    for train in (False, True):
        xg = x.clone().requires_grad_(train)
        y, idx = down(xg)
        with disabled():
            y0, idx0 = down(xg)
        assert (idx is None and idx0 is None) or torch.equal(idx, idx0)
        torch.testing.assert_close(y, y0, rtol=0, atol=1e-14)
        if train:
            g = torch.randn_like(y)
            (a,) = torch.autograd.grad(y, xg, g)
            (b,) = torch.autograd.grad(y0, xg, g)
            torch.testing.assert_close(a, b, rtol=0, atol=1e-14)

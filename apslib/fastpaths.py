"""The fast forms of the layers in :mod:`apslib.layers`, with one dispatch point.

Each layer of :mod:`apslib.layers` computes its literal form (the maths) unless
:func:`dispatch` returns a result for it. Every fast form gives the literal form's values
(bit for bit where a grid is chosen from them, else up to rounding) and its gradients;
``tests/test_fast_paths.py`` checks each against the literal form, and
:func:`disabled` turns them all off (every model then runs its literal form).

The forms, by kind:

* ``"conv"``: a circular convolution (odd kernel padded by half its size, stride 1, one
  group, CPU) as one padded copy and a written-out backward (:class:`_CircularConv2d`):
  through autograd the padding's concatenations cost a full-size zero tensor and sum per
  slice; other circular convolutions pad by two concatenations (half ``F.pad``'s cost).
* ``"stride1"``: the stride-1 2x2 pool without autograd, written through ``out=`` (no
  padded copy).
* ``"down"``: the grid ``(0, 0)`` without a blur is the stride-2 pool itself; a chosen
  grid when training without a blur: the grid is chosen without gradients, then the pool
  runs on the input shifted by the chosen phase (max: a plain pool's backward), or the
  chosen component of the already computed average map is kept (:class:`_ChosenAverage`).
* ``"up"``: APS-U followed by the k=2 conv is a transposed convolution at low resolution
  followed by a per-sample circular shift (4x fewer multiply-adds, no scatter); a soft
  choice (a learned rule training) is the weighted sum of the four shifts.
* The ideal low-pass (``lowpass="ideal"``): on the grid (0, 0) without a pool the down layer
  is :func:`~apslib.fourier.fourier_down` (the spectrum cropped: half-size inverse FFT, no
  full-size one); the up layer's low-pass and its k=2 conv commute, so it is the transposed
  conv of the ``"up"`` form followed by the low-pass (one full-size FFT pair).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .filters import blur, circular_pad
from .fourier import fourier_down, half_band
from .polyphase import PHASES, phase_shift, select_phase

__all__ = ["SCRATCH_BYTES", "disabled", "dispatch", "enabled"]

_ENABLED: ContextVar[bool] = ContextVar("apslib_fast_paths", default=True)


def enabled() -> bool:
    """Whether the fast forms run (the default)."""
    return _ENABLED.get()


@contextmanager
def disabled() -> Iterator[None]:
    """Within the block every layer computes its literal form (for tests and debugging)."""
    token = _ENABLED.set(False)
    try:
        yield
    finally:
        _ENABLED.reset(token)


def dispatch(kind: str, *args: Any) -> Any:
    """The one dispatch point: the fast form of ``kind`` for these arguments, or ``None``
    when there is none for them (or fast paths are :func:`disabled`); the caller then
    computes its literal form. ``kind``: ``"conv"``, ``"stride1"``, ``"down"``, ``"up"``."""
    if not _ENABLED.get():
        return None
    return _FORMS[kind](*args)


# --- "stride1": the 2x2 pool at stride 1 without autograd --------------------------------


def _pairwise(x: torch.Tensor, op: Callable) -> torch.Tensor:
    """``op`` of each pixel and its right neighbour, then of each row and the one below,
    circularly, written into new tensors through ``out=`` without padding the input: the
    same operations, in the same order, as on ``circular_pad(x, (0, 1, 0, 1))``'s slices."""
    h, w = x.shape[-2:]
    m = torch.empty_like(x)
    op(x[..., :, : w - 1], x[..., :, 1:], out=m[..., :, : w - 1])
    op(x[..., :, w - 1 :], x[..., :, :1], out=m[..., :, w - 1 :])
    out = torch.empty_like(x)
    op(m[..., : h - 1, :], m[..., 1:, :], out=out[..., : h - 1, :])
    op(m[..., h - 1 :, :], m[..., :1, :], out=out[..., h - 1 :, :])
    return out


def _stride1(x: torch.Tensor, pool: str, padding_mode: str) -> torch.Tensor | None:
    if padding_mode != "circular" or (torch.is_grad_enabled() and x.requires_grad):
        return None
    if pool == "max":
        return _pairwise(x, torch.maximum)
    return _pairwise(x, torch.add).mul_(0.25)


# --- "down": the polyphase downsampler ----------------------------------------------------


class _ChosenAverage(torch.autograd.Function):
    """The chosen component of the stride-1 average map ``z`` of ``x`` (already computed, to
    choose the grid), differentiable in ``x``: the backward is the 2x2 average pool's on the
    chosen grid (each gradient value, divided by 4, to its window, circularly)."""

    @staticmethod
    def forward(ctx, x, z, idx):
        ctx.save_for_backward(idx)
        return select_phase(z, idx)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (idx,) = ctx.saved_tensors
        spread = F.interpolate(grad * 0.25, scale_factor=2, mode="nearest")  # avg_pool2d's backward
        return phase_shift(spread, idx), None, None


def _down(layer, x: torch.Tensor):
    """``(y, idx)`` of a :class:`~apslib.layers.PolyphaseDown`, or ``None``."""
    selection = layer.selection
    if layer.lowpass == "ideal":
        if layer.pool is None and not selection.adaptive and getattr(selection, "phase", None) == 0:
            return fourier_down(x), None
        return None
    if layer.filter_size != 1 or layer.pool is None:
        return None
    if not selection.adaptive and getattr(selection, "phase", None) == 0:  # the stride-2 pool
        y = F.max_pool2d(x, 2) if layer.pool == "max" else F.avg_pool2d(x, 2)
        return y, None
    training = torch.is_grad_enabled() and x.requires_grad
    if not (selection.adaptive and training and layer.padding_mode == "circular"):
        return None
    if selection.differentiable:  # the choice itself needs gradients
        return None
    with torch.no_grad():
        z = layer.pooled(x)
        idx = selection.choose(z)
    if layer.pool == "max":  # component (i, j) of the pooled map == (0, 0) of the shifted one's
        return F.max_pool2d(phase_shift(x, idx, inverse=True), 2), idx
    return _ChosenAverage.apply(x, z, idx), idx


# --- "up": the polyphase upsampler --------------------------------------------------------


def _up(layer, y: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor | None:
    """A :class:`~apslib.layers.PolyphaseUp`'s output, or ``None``. A transposed conv
    (k=2, s=2) with the flipped kernel is zero insertion on (0, 0) then the k=2 conv padded
    top/left; padded bottom/right it is the same map shifted by (-1, -1). The circular shift
    and the blur commute with it; the bias is a constant map, which the blur multiplies by
    its gain, so it goes into the transposed conv divided by that gain."""
    plain = idx is None and layer.up_pad == "top_left" and layer.filter_size == 1
    if layer.padding_mode != "circular" and not plain:  # plain: the pad reads only zeros
        return None
    w = layer.transposed_weight()
    bias = None if layer.bias is None else layer.bias / layer.blur_gain
    offset = -1 if layer.up_pad == "bottom_right" else 0
    soft = idx is not None and idx.is_floating_point()
    u = F.conv_transpose2d(y, w, None if soft else bias, stride=2, groups=layer.groups)
    if soft:  # a soft choice: every grid, weighted; the bias once, after the sum
        assert idx is not None
        rolled = [torch.roll(u, (i + offset, j + offset), dims=(-2, -1)) for i, j in PHASES]
        u = torch.einsum("bp,bpchw->bchw", idx.to(u.dtype), torch.stack(rolled, 1))
        u = u if bias is None else u + bias.view(1, -1, 1, 1)
    elif idx is not None:
        u = phase_shift(u, idx, offset=offset)
    elif offset:
        u = torch.roll(u, (offset, offset), dims=(-2, -1))
    if layer.lowpass == "ideal":
        return half_band(u) * layer.blur_gain
    return blur(u, layer.filter_size, gain=layer.blur_gain)


# --- "conv": circular convolutions --------------------------------------------------------


def _circular_pad_once(x: torch.Tensor, ph: int, pw: int, scratch: bool = False) -> torch.Tensor:
    """``circular_pad(x, (pw, pw, ph, ph))`` written into one tensor in ``x``'s memory
    format. ``scratch``: into this thread's reused buffer of that shape, for a result
    consumed at once. Not differentiable."""
    b, c, h, w = x.shape
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    shape = (b, c, h + 2 * ph, w + 2 * pw)
    if scratch:
        out = _scratch_tensor(shape, x.dtype, x.device, fmt)
    else:
        out = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=fmt)
    out[..., ph : ph + h, pw : pw + w] = x
    if ph:
        out[..., :ph, pw : pw + w] = x[..., h - ph :, :]
        out[..., ph + h :, pw : pw + w] = x[..., :ph, :]
    if pw:  # the columns last, copied from the padded rows: the corners come with them
        out[..., :, :pw] = out[..., :, w : w + pw]
        out[..., :, pw + w :] = out[..., :, pw : 2 * pw]
    return out


class _CircularConv2d(torch.autograd.Function):
    """``conv2d(circular_pad(x), w, b)`` (padding ``(ph, pw)`` = half the odd kernel, stride
    1, one group) with its backward written out: the weight and bias gradients come from the
    padded input (saved instead of ``x``), the input gradient is the adjoint of the circular
    convolution (the circular convolution of the output gradient with the flipped, transposed
    kernel). Not twice differentiable."""

    @staticmethod
    def forward(ctx, x, weight, bias, ph, pw):
        xp = _circular_pad_once(x, ph, pw)
        ctx.save_for_backward(xp, weight)
        ctx.pads, ctx.has_bias = (ph, pw), bias is not None
        return F.conv2d(xp, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        xp, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        need_b = need_b and ctx.has_bias
        gx = gw = gb = None
        if need_w or need_b:
            bias_sizes = [weight.shape[0]] if ctx.has_bias else None
            mask = [False, need_w, need_b]
            _, gw, gb = torch.ops.aten.convolution_backward(
                grad, xp, weight, bias_sizes, [1, 1], [0, 0], [1, 1], False, [0, 0], 1, mask
            )
        if need_x:
            ph, pw = ctx.pads
            padded = _circular_pad_once(grad, ph, pw, scratch=True)  # consumed at once
            gx = F.conv2d(padded, weight.transpose(0, 1).flip(-2, -1))
        return gx, gw, gb, None, None


def _conv(conv, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A circularly padded ``Conv2d``'s output (always: the concatenation form otherwise)."""
    kh, kw = conv.kernel_size
    left, right, top, bottom = conv._reversed_padding_repeated_twice
    if (
        x.dim() == 4
        and x.device.type == "cpu"
        and conv.groups == 1
        and conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and kh % 2 == 1
        and kw % 2 == 1
        and left == right == kw // 2
        and top == bottom == kh // 2
        and top <= x.shape[-2]
        and left <= x.shape[-1]
        and not torch.is_autocast_enabled("cpu")
    ):
        if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
            return _CircularConv2d.apply(x, weight, bias, top, left)
        return F.conv2d(_circular_pad_once(x, top, left, scratch=True), weight, bias)
    padded = circular_pad(x, conv._reversed_padding_repeated_twice)
    return F.conv2d(padded, weight, bias, conv.stride, 0, conv.dilation, conv.groups)


_scratch = threading.local()
SCRATCH_BYTES = 64 * 2**20  # per thread: small models reuse buffers, large ones allocate


def _scratch_tensor(shape, dtype, device, fmt) -> torch.Tensor:
    """This thread's buffer of this shape, reused by every padded copy that a convolution
    consumes at once: on CPU the allocator hands large blocks back to the system and
    page-faults them in again (about 10% of the U-Nets' eval forward here). A thread's
    buffers hold at most :data:`SCRATCH_BYTES`; a larger copy gets a fresh tensor."""
    cache = getattr(_scratch, "buffers", None)
    if cache is None:
        cache = _scratch.buffers = {}
    # inference tensors cannot be written outside inference mode (nor the others inside)
    key = (tuple(shape), dtype, device, fmt, torch.is_inference_mode_enabled())
    buf = cache.get(key)
    if buf is None:
        size = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
        if size > SCRATCH_BYTES:
            return torch.empty(shape, dtype=dtype, device=device, memory_format=fmt)
        held = sum(t.numel() * t.element_size() for t in cache.values())
        if held + size > SCRATCH_BYTES:  # many sizes (a varying input size): start over
            cache.clear()
        buf = cache[key] = torch.empty(shape, dtype=dtype, device=device, memory_format=fmt)
    return buf


_FORMS: dict[str, Callable[..., Any]] = {"conv": _conv, "stride1": _stride1, "down": _down, "up": _up}

"""The layers of the U-Net family (:mod:`apslib.unet`): circular 3x3 convs, the three
downsamplers and the two upsamplers.

The k=2 convolution after zero insertion pads one pixel, circularly, on the bottom/right
(the authors' code: output ``p`` combines ``p`` and ``p + 1``) or on the top/left.
Implementation: APS-U followed by that convolution equals a transposed convolution (k=2,
s=2, kernel flipped) of the low-resolution map followed by a per-sample circular shift by
the chosen phase (minus one pixel for bottom/right padding): 4x fewer multiply-adds than
the zero-inserted convolution, no scatter. :meth:`PolyphaseUp.reference_forward` keeps the
literal form, and the tests check that the two agree.
"""

from __future__ import annotations

import math
import threading

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from .filters import Blur, check_filter_size, circular_pad, zero_insert
from .polyphase import aps_down, aps_up, check_criterion, phase_shift, polyphase_norms

__all__ = [
    "UP_PADS",
    "check_aps_criterion",
    "Conv2d",
    "DoubleConv",
    "MaxPoolDown",
    "BlurPoolDown",
    "APSPoolDown",
    "TransposedUp",
    "PolyphaseUp",
]


def _pool_stride1(x: torch.Tensor, padding_mode: str) -> torch.Tensor:
    """2x2 max-pool with stride 1, padded by one pixel at the bottom and right.

    Written as two pairwise maxima of slices of the padded map: the same values as
    ``max_pool2d(pad(x), 2, stride=1)`` at about half its cost on CPU (forward+backward).
    Without autograd and with circular padding, the maxima are written straight into the
    result (:func:`_pairwise_stride1`, no padded copy): the same values.
    """
    if padding_mode == "circular" and not (torch.is_grad_enabled() and x.requires_grad):
        return _pairwise_stride1(x, torch.maximum)
    if padding_mode == "zeros":
        # Values here follow a ReLU (>= 0), so zero padding equals -inf padding.
        xp = F.pad(x, (0, 1, 0, 1))
    elif padding_mode == "circular":
        xp = circular_pad(x, (0, 1, 0, 1))
    else:
        xp = F.pad(x, (0, 1, 0, 1), mode=padding_mode)
    m = torch.maximum(xp[..., :, :-1], xp[..., :, 1:])
    return torch.maximum(m[..., :-1, :], m[..., 1:, :])


def _pairwise_stride1(x: torch.Tensor, op) -> torch.Tensor:
    """``op`` of each pixel and its right neighbour, then of each row and the one below,
    circularly (``op``: ``torch.maximum`` or ``torch.add``), written into new tensors
    through ``out=`` without padding the input: the same operations, in the same order, as
    on ``circular_pad(x, (0, 1, 0, 1))``'s slices. Not differentiable."""
    h, w = x.shape[-2:]
    m = torch.empty_like(x)
    op(x[..., :, : w - 1], x[..., :, 1:], out=m[..., :, : w - 1])
    op(x[..., :, w - 1 :], x[..., :, :1], out=m[..., :, w - 1 :])
    out = torch.empty_like(x)
    op(m[..., : h - 1, :], m[..., 1:, :], out=out[..., : h - 1, :])
    op(m[..., h - 1 :, :], m[..., :1, :], out=out[..., h - 1 :, :])
    return out


def _avg_stride1(x: torch.Tensor) -> torch.Tensor:
    """2x2 average pool with stride 1, circular, padded at the bottom and right: the
    horizontal pair sums, then the vertical ones, times 1/4 (exact). The same arithmetic
    with or without autograd (so both paths choose the same grids)."""
    if torch.is_grad_enabled() and x.requires_grad:
        xp = circular_pad(x, (0, 1, 0, 1))
        m = xp[..., :, :-1] + xp[..., :, 1:]
        return (m[..., :-1, :] + m[..., 1:, :]) * 0.25
    return _pairwise_stride1(x, torch.add).mul_(0.25)


def check_aps_criterion(criterion: str, filter_size: int) -> None:
    """Refuse the criteria that tie by construction on the maps APS-D sees in the U-Net.

    APS-D there follows a ReLU, a stride-1 max-pool and (for ``filter_size >= 2``) a blur:
    - ``"l1"`` after a blur: a binomial blur of size >= 2 zeroes the Nyquist frequency, so
      the four polyphase components have exactly equal sums; on non-negative maps these
      sums are the l1 norms.
    - ``"linf"`` without a blur: the stride-1 max-pool copies the map's largest value into
      every window that covers it, i.e. into all four polyphase components.
    In both cases the grid would be chosen by rounding noise and equivariance lost.
    """
    if criterion == "l1" and filter_size >= 2:
        raise ValueError(
            f"criterion='l1' with filter_size={filter_size} is ill-posed: a binomial blur of "
            "size >= 2 zeroes the Nyquist frequency, so the four polyphase components of the "
            "blurred map have exactly equal sums, and on the non-negative maps after ReLU and "
            "max-pool their l1 norms tie; the grid would be chosen by rounding noise and "
            "equivariance would be lost. Use criterion='l2' (the paper's) or 'linf', or "
            "filter_size=1."
        )
    if criterion == "linf" and filter_size == 1:
        raise ValueError(
            "criterion='linf' with filter_size=1 is ill-posed: the stride-1 max-pool before "
            "APS-D copies the map's largest value into all four polyphase components, so "
            "their l-infinity norms tie and the grid would be chosen by the tie rule, not by "
            "the signal; equivariance would be lost. Use criterion='l2' (the paper's) or "
            "'l1', or a blur (filter_size >= 2)."
        )


def _circular_pad_once(x: torch.Tensor, ph: int, pw: int, scratch: bool = False) -> torch.Tensor:
    """``circular_pad(x, (pw, pw, ph, ph))`` written into one tensor in ``x``'s memory
    format: one pass over ``x`` instead of two concatenations. ``scratch``: into this
    thread's reused buffer of that shape (:func:`_scratch_tensor`), for a result consumed
    at once. Not differentiable (used inside :class:`_CircularConv2d` and without
    gradients)."""
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
    """Convolution with circular padding ``(ph, pw)`` = half the (odd) kernel, stride 1,
    dilation 1, one group: ``conv2d(circular_pad(x), w, b)`` with its backward written out.

    Through autograd, the padding's concatenations cost a full-size zero tensor and a
    full-size sum per slice in the backward; here the weight and bias gradients come from
    the padded input (saved instead of ``x``), and the input gradient is the adjoint of the
    circular convolution: the circular convolution of the output gradient with the
    flipped, transposed kernel (one pad and a forward convolution). Not twice
    differentiable.
    """

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
            padded = _circular_pad_once(grad, *ctx.pads, scratch=True)  # consumed at once
            gx = F.conv2d(padded, weight.transpose(0, 1).flip(-2, -1))
        return gx, gw, gb, None, None


def _circular_conv2d(conv: nn.Conv2d, x: torch.Tensor, weight, bias):
    """``conv``'s circular convolution by :class:`_CircularConv2d` where that applies (CPU,
    3x3-like kernels padded by half their size, stride 1, one group, no autocast), else
    ``None``."""
    kh, kw = conv.kernel_size
    left, right, top, bottom = conv._reversed_padding_repeated_twice
    if not (
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
        return None
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return _CircularConv2d.apply(x, weight, bias, top, left)
    return F.conv2d(_circular_pad_once(x, top, left, scratch=True), weight, bias)


_scratch = threading.local()
SCRATCH_BYTES = 64 * 2**20  # per thread: small models reuse buffers, large ones allocate


def _scratch_tensor(shape, dtype, device, fmt) -> torch.Tensor:
    """This thread's buffer of this shape, reused by every padded copy that a convolution
    consumes at once (without autograd, and the output gradient's in the backward): it
    spares an allocation of the padded size per convolution. On CPU that matters: the
    allocator hands large blocks back to the system and page-faults them in again (about
    10% of the eval forward of the U-Nets here). The buffers of a thread hold at most
    :data:`SCRATCH_BYTES`; a larger copy gets a fresh tensor, as without the cache (so a
    paper-size model does not keep gigabytes alive between calls)."""
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


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` with a faster circular padding, the same values as
    ``F.pad(..., mode="circular")``: on CPU, for the U-Nets' convolutions (odd kernels
    padded by half their size, stride 1), :class:`_CircularConv2d`; otherwise
    :func:`~apslib.filters.circular_pad` (concatenations, about half ``F.pad``'s cost
    forward + backward on CPU). Other padding modes are ``nn.Conv2d``'s own. Same
    parameters and state dict."""

    def _conv_forward(self, input, weight, bias):  # noqa: A002 (nn.Conv2d's signature)
        if self.padding_mode == "circular":
            out = _circular_conv2d(self, input, weight, bias)
            if out is not None:
                return out
            return F.conv2d(
                circular_pad(input, self._reversed_padding_repeated_twice),
                weight,
                bias,
                self.stride,
                0,
                self.dilation,
                self.groups,
            )
        return super()._conv_forward(input, weight, bias)


class DoubleConv(nn.Sequential):
    """(3x3 conv, BatchNorm, ReLU) twice; the convs have no bias (BatchNorm has one)."""

    def __init__(self, in_channels: int, out_channels: int, padding_mode: str = "circular"):
        layers = []
        for cin in (in_channels, out_channels):
            layers += [
                Conv2d(cin, out_channels, 3, padding=1, bias=False, padding_mode=padding_mode),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
        super().__init__(*layers)


class MaxPoolDown(nn.Module):
    """Baseline: 2x2 max-pool with stride 2 (fixed grid). ``forward(x) -> (y, None)``."""

    def forward(self, x: torch.Tensor):
        return F.max_pool2d(x, 2), None


class BlurPoolDown(nn.Module):
    """LPF-j: max-pool stride 1, binomial blur, keep the fixed grid (0, 0)."""

    def __init__(self, channels: int, filter_size: int = 3, padding_mode: str = "circular"):
        super().__init__()
        self.padding_mode = padding_mode
        self.blur = Blur(channels, filter_size, padding_mode=padding_mode)

    def forward(self, x: torch.Tensor):
        return self.blur(_pool_stride1(x, self.padding_mode))[..., ::2, ::2], None


class APSPoolDown(nn.Module):
    """APS(-j): max-pool stride 1, optional binomial blur, APS-D. ``-> (y, idx)``.

    When gradients are needed (training), without a blur and with circular padding, the
    output is computed as a stride-2 max-pool of the input shifted back by the chosen
    phase: the same values, and its backward is the plain max-pool's, about half the cost
    of back-propagating through the stride-1 pool and the selection. The grid is chosen
    without recording gradients. Without gradients the pooled map's component is read
    directly.
    """

    def __init__(
        self, channels: int, filter_size: int = 1, criterion: str = "l2", padding_mode: str = "circular"
    ):
        super().__init__()
        self.criterion = check_criterion(criterion)
        check_aps_criterion(criterion, check_filter_size(filter_size))
        self.padding_mode = padding_mode
        self.blur = Blur(channels, filter_size, padding_mode=padding_mode)

    def phase_norms(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 4)`` float64 norms of the four polyphase components of the map this layer
        chooses on (the stride-1-pooled, blurred ``x``); ``argmax`` is its choice."""
        return polyphase_norms(self.blur(_pool_stride1(x, self.padding_mode)), self.criterion)

    def forward(self, x: torch.Tensor):
        if (
            self.blur.filter_size == 1
            and self.padding_mode == "circular"
            and torch.is_grad_enabled()
            and x.requires_grad
        ):
            with torch.no_grad():
                idx = polyphase_norms(_pool_stride1(x, self.padding_mode), self.criterion).argmax(1)
            return F.max_pool2d(phase_shift(x, idx, inverse=True), 2), idx
        return aps_down(self.blur(_pool_stride1(x, self.padding_mode)), self.criterion)

    def extra_repr(self) -> str:
        return f"criterion={self.criterion!r}"


class TransposedUp(nn.ConvTranspose2d):
    """Baseline: transposed conv k=2, s=2. ``forward(y, idx)`` ignores ``idx``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, kernel_size=2, stride=2)

    def forward(self, y: torch.Tensor, idx=None) -> torch.Tensor:  # type: ignore[override]
        return super().forward(y)


UP_PADS = ("bottom_right", "top_left")


class PolyphaseUp(nn.Module):
    """Zero insertion on a grid (adaptive: the encoder's; else (0, 0)), blur, conv k=2.

    ``up_pad`` is the side of the k=2 conv's one-pixel circular padding:
    ``"bottom_right"`` (the authors' code: output pixel ``p`` combines pixels ``p`` and
    ``p + 1`` of the upsampled map) or ``"top_left"`` (``p - 1`` and ``p``). With the same
    weights the two are different functions (the upsampled branch sits one pixel apart
    relative to the skip connection); both are exactly shift equivariant. ``blur_gain`` is
    the gain of the blur after zero insertion: 1 (the authors' code; the conv absorbs the
    scale) or 4 (= stride**2, keeps the mean). Without a blur (``filter_size == 1``) there
    is no gain. The weight has the usual ``Conv2d`` shape ``(out, in, 2, 2)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        filter_size: int = 1,
        *,
        adaptive: bool = True,
        padding_mode: str = "circular",
        up_pad: str = "bottom_right",
        blur_gain: float = 1.0,
    ):
        super().__init__()
        if up_pad not in UP_PADS:
            raise ValueError(f"up_pad must be one of {UP_PADS}, got {up_pad!r}")
        self.adaptive = bool(adaptive)
        self.padding_mode = padding_mode
        self.up_pad = up_pad
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, 2, 2))
        self.bias = nn.Parameter(torch.empty(out_channels))
        # Same initialisation as nn.Conv2d(in, out, 2).
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        bound = 1 / math.sqrt(in_channels * 4)
        nn.init.uniform_(self.bias, -bound, bound)
        gain = float(blur_gain) if check_filter_size(filter_size) > 1 else 1.0
        self.blur = Blur(out_channels, filter_size, gain=gain, padding_mode=padding_mode)
        self.blur_in = Blur(in_channels, filter_size, gain=gain, padding_mode=padding_mode)

    def forward(self, y: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        if self.padding_mode != "circular":
            return self.reference_forward(y, idx)
        # ConvTranspose with the flipped kernel == zero insertion on (0, 0) + conv k=2
        # padded top/left; padded bottom/right it is the same map shifted by (-1, -1).
        # Circular shift and blur commute with it. The bias is a constant map: shifting
        # leaves it alone and the blur multiplies it by its gain, so it goes into the
        # transposed conv divided by that gain.
        w = self.weight.flip(-2, -1).transpose(0, 1)
        u = F.conv_transpose2d(y, w, self.bias / self.blur.gain, stride=2)
        offset = -1 if self.up_pad == "bottom_right" else 0
        if self.adaptive:
            u = phase_shift(u, self._need_idx(idx), offset=offset)
        elif offset:
            u = torch.roll(u, (offset, offset), dims=(-2, -1))
        return self.blur(u)

    def reference_forward(self, y: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """The literal definition: APS-U (or zero insertion), blur, conv k=2."""
        z = aps_up(y, self._need_idx(idx)) if self.adaptive else zero_insert(y)
        z = self.blur_in(z)
        mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
        pad = (0, 1, 0, 1) if self.up_pad == "bottom_right" else (1, 0, 1, 0)
        return F.conv2d(F.pad(z, pad, mode=mode), self.weight, self.bias)

    def _need_idx(self, idx):
        if self.adaptive and idx is None:
            raise ValueError("adaptive PolyphaseUp needs the phase indices of its encoder level")
        return idx

    def extra_repr(self) -> str:
        o, i = self.weight.shape[:2]
        return (
            f"{i}, {o}, adaptive={self.adaptive}, up_pad={self.up_pad!r}, "
            f"blur_gain={self.blur.gain:g}, padding_mode={self.padding_mode!r}"
        )

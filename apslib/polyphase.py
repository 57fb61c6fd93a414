"""Polyphase split, adaptive polyphase downsampling (APS-D) and upsampling (APS-U).

Phase order
-----------
A map ``x`` of shape ``(B, C, H, W)`` (``H`` and ``W`` even) has four stride-2 polyphase
components ``x[:, :, i::2, j::2]``. Throughout this package the component with row offset
``i`` and column offset ``j`` has the *phase index* ``p = 2 * i + j``::

    p = 0: (0, 0)    p = 1: (0, 1)    p = 2: (1, 0)    p = 3: (1, 1)

APS-D keeps, per sample, the component with the largest norm (shared across channels) and
returns it with its phase index ``idx`` (a ``(B,)`` int64 tensor). APS-U puts a low
resolution map back on the grid ``(i, j)`` with zeros elsewhere::

    aps_up(y, idx)[:, :, i::2, j::2] == y     (per sample, other positions are 0)

so ``aps_up(*aps_down(x))`` zeros every pixel of ``x`` except those on the chosen grid,
and is shift equivariant under circular shifts (Proposition 1 of Chaman & Dokmanic 2021).

Numerics
--------
The phase norms are accumulated in float64 (float32 on MPS, which has no float64), so the
choice does not flip under a shift because the summation order changed: a circular shift
permutes the components and rotates each one, which changes float32 sums by rounding.

Ties
----
Exact ties (e.g. a constant map, or a 2-periodic one) resolve to the *lowest* phase index.
No single-grid rule can be equivariant on such inputs; the result is defined, not
equivariant. Near-ties are decided by the float64 norms, i.e. correctly for any gap above
about 1e-15 relative.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "CRITERIA",
    "PHASES",
    "check_criterion",
    "check_even_4d",
    "phase_offsets",
    "polyphase_components",
    "polyphase_norms",
    "aps_down",
    "select_phase",
    "aps_up",
    "mix_phases",
    "spread_phases",
    "phase_shift",
    "predicted_phases",
]

CRITERIA = ("l2", "l1", "linf")
PHASES = ((0, 0), (0, 1), (1, 0), (1, 1))


def check_criterion(criterion: str) -> str:
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    return criterion


def check_even_4d(x: torch.Tensor, what: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{what} must have shape (B, C, H, W), got {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        raise ValueError(
            f"{what} needs even height and width for stride-2 polyphase sampling, got "
            f"{h}x{w}; crop or pad it to {h - h % 2}x{w - w % 2} or {h + h % 2}x{w + w % 2}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{what} must be a floating-point tensor, got {x.dtype}")


def _check_idx(idx: torch.Tensor, batch: int) -> None:
    if not isinstance(idx, torch.Tensor) or idx.dtype.is_floating_point or idx.dtype == torch.bool:
        raise TypeError(f"idx must be an integer tensor of phase indices, got {idx!r:.80}")
    if idx.shape != (batch,):
        raise ValueError(f"idx must have shape ({batch},), one phase per sample; got {tuple(idx.shape)}")
    # A range check needs the values on the host: do it only where that is free.
    if idx.device.type == "cpu" and batch and (int(idx.min()) < 0 or int(idx.max()) > 3):
        raise ValueError(f"idx values must be phase indices in 0..3, got {idx.tolist()}")


def phase_offsets(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column offsets ``(i, j)`` of phase indices ``idx = 2 * i + j``."""
    return torch.div(idx, 2, rounding_mode="floor"), idx % 2


def _split_view(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, C, H/2, 2, W/2, 2)`` view; works for any memory format."""
    b, c, h, w = x.shape
    return x.unflatten(-1, (w // 2, 2)).unflatten(2, (h // 2, 2))


def polyphase_components(x: torch.Tensor) -> torch.Tensor:
    """The four polyphase components, stacked in phase order: ``(B, 4, C, H/2, W/2)``."""
    check_even_4d(x)
    b, c, h, w = x.shape
    return _split_view(x).permute(0, 3, 5, 1, 2, 4).reshape(b, 4, c, h // 2, w // 2)


def polyphase_norms(x: torch.Tensor, criterion: str = "l2") -> torch.Tensor:
    """Per-sample norms of the four components, ``(B, 4)``, float64.

    ``"l2"`` returns the *squared* l2 norm (same order, one rounding fewer), ``"l1"`` the
    sum of absolute values, ``"linf"`` the largest absolute value.

    How the sums are formed, and why the result does not flip under a shift: first a sum
    over the channels at each pixel, in the input's precision (float32 for half
    precision inputs). That is the same sequence of operations for every pixel, so the
    per-pixel map of a shifted input is *exactly* the shifted map. Then the sums over each
    component's pixels, whose order a shift does change, accumulate in float64 (float32 on
    MPS, which has no float64): rounding differences there are ~1e-16 relative.
    """
    check_even_4d(x)
    check_criterion(criterion)
    acc = torch.float32 if x.device.type == "mps" else torch.float64
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    if criterion == "linf":  # a max is exact in any precision
        n = _split_view(x).abs().amax(dim=(1, 2, 4)).to(acc)
        return n.reshape(x.shape[0], 4)
    if criterion == "l2":
        per_pixel = torch.linalg.vecdot(x, x, dim=1).unsqueeze(1)  # fused multiply-sum
    else:
        per_pixel = x.abs().sum(dim=1, keepdim=True)
    n = _split_view(per_pixel).sum(dim=(1, 2, 4), dtype=acc)
    return n.reshape(x.shape[0], 4)


def select_phase(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Per sample ``b`` the component ``x[b, :, i::2, j::2]`` of phase ``idx[b] = 2i + j``."""
    i, j = phase_offsets(idx)
    batch = torch.arange(x.shape[0], device=x.device)
    # Advanced indices separated by slices: the result is (B, C, H/2, W/2), a gather that
    # reads only the chosen component.
    return _split_view(x)[batch, :, :, i, :, j]


def aps_down(x: torch.Tensor, criterion: str = "l2") -> tuple[torch.Tensor, torch.Tensor]:
    """Adaptive polyphase downsampling (stride 2).

    Args:
        x: ``(B, C, H, W)`` float tensor with even ``H`` and ``W``; any device.
        criterion: ``"l2"`` (default, the paper's), ``"l1"`` or ``"linf"``.

    Returns:
        ``(y, idx)``: ``y = x[b, :, i::2, j::2]`` for each sample ``b`` with the phase
        ``idx[b] = 2 * i + j`` of largest norm (ties: lowest index), shape
        ``(B, C, H/2, W/2)``; ``idx`` is int64 on ``x``'s device. Gradients flow to ``x``.
    """
    norms = polyphase_norms(x, criterion)
    idx = norms.argmax(dim=1)
    return select_phase(x, idx), idx


def aps_up(y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Adaptive polyphase upsampling: ``T_(i,j) U_2(y)``, zeros off the chosen grid.

    Args:
        y: ``(B, C, h, w)`` float tensor.
        idx: ``(B,)`` integer phase indices (as returned by :func:`aps_down`).

    Returns:
        ``(B, C, 2h, 2w)`` tensor ``z`` with ``z[b, :, i::2, j::2] = y[b]`` and zeros elsewhere.
    """
    if not isinstance(y, torch.Tensor) or y.dim() != 4:
        raise ValueError(f"y must have shape (B, C, h, w), got {getattr(y, 'shape', y)!r}")
    _check_idx(idx, y.shape[0])
    b, c, h, w = y.shape
    mask = idx.view(b, 1) == torch.arange(4, device=y.device)  # one-hot, built on device
    z = torch.where(mask.view(b, 1, 1, 2, 1, 2), y[:, :, :, None, :, None], y.new_zeros(()))
    return z.reshape(b, c, 2 * h, 2 * w)


def _check_weights(w: torch.Tensor, batch: int) -> None:
    if not isinstance(w, torch.Tensor) or not w.is_floating_point() or w.shape != (batch, 4):
        raise ValueError(
            f"weights must be a ({batch}, 4) float tensor, one weight per phase and sample; "
            f"got {getattr(w, 'shape', w)!r}"
        )


def mix_phases(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The soft form of :func:`select_phase`: per sample ``b`` the weighted sum
    ``sum_p weights[b, p] * x[b, :, i_p::2, j_p::2]`` of the four components (phase order).
    With one-hot weights it is the chosen component, exactly (``1 * v + 0 * u == v``).
    ``(B, C, H, W), (B, 4) -> (B, C, H/2, W/2)``; differentiable in both."""
    check_even_4d(x)
    _check_weights(weights, x.shape[0])
    w = weights.to(x.dtype)
    return torch.einsum("bp,bpchw->bchw", w, polyphase_components(x))


def spread_phases(y: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The soft form of :func:`aps_up`: ``y`` placed on every grid ``p`` with the weight
    ``weights[b, p]`` (``z[b, :, i_p::2, j_p::2] = weights[b, p] * y[b]``). One-hot weights
    give :func:`aps_up` exactly. ``(B, C, h, w), (B, 4) -> (B, C, 2h, 2w)``."""
    if not isinstance(y, torch.Tensor) or y.dim() != 4:
        raise ValueError(f"y must have shape (B, C, h, w), got {getattr(y, 'shape', y)!r}")
    _check_weights(weights, y.shape[0])
    b, c, h, w = y.shape
    z = weights.to(y.dtype).view(b, 1, 1, 2, 1, 2) * y[:, :, :, None, :, None]
    return z.reshape(b, c, 2 * h, 2 * w)


def _roll_by_phase(u: torch.Tensor, idx: torch.Tensor, inverse: bool, offset: int = 0) -> torch.Tensor:
    """Per-sample circular shift by ``(i + offset, j + offset)`` (negated if ``inverse``):
    on CPU as at most four block copies per sample, elsewhere as one gather over the
    flattened pixels (one pass, no host sync)."""
    b, c, h, w = u.shape
    i, j = phase_offsets(idx)
    i, j = i + offset, j + offset
    if inverse:
        i, j = -i, -j
    if u.device.type == "cpu":
        return _roll_blocks(u, i.tolist(), j.tolist())
    rows = torch.remainder(torch.arange(h, device=u.device) - i.view(b, 1), h)
    cols = torch.remainder(torch.arange(w, device=u.device) - j.view(b, 1), w)
    src = (rows.view(b, h, 1) * w + cols.view(b, 1, w)).view(b, h * w)
    if u.is_contiguous(memory_format=torch.channels_last) and not u.is_contiguous():
        flat = u.permute(0, 2, 3, 1).reshape(b, h * w, c)  # a view: pixels outer, channels inner
        out = torch.gather(flat, 1, src.view(b, h * w, 1).expand(b, h * w, c))
        return out.view(b, h, w, c).permute(0, 3, 1, 2)
    flat = u.reshape(b, c, h * w)
    return torch.gather(flat, 2, src.view(b, 1, h * w).expand(b, c, h * w)).view(b, c, h, w)


def _roll_blocks(u: torch.Tensor, di: list[int], dj: list[int]) -> torch.Tensor:
    """``out[n] = roll(u[n], (di[n], dj[n]))``: each sample as (up to) four block copies,
    about 3x faster than the gather on CPU. Not differentiable (see :class:`_PhaseShift`)."""
    h, w = u.shape[-2:]
    out = torch.empty_like(u)
    for n, (dy, dx) in enumerate(zip(di, dj)):
        dy, dx = dy % h, dx % w
        src, dst = u[n], out[n]
        for r0, r1, q0, q1 in (
            (0, h - dy, 0, w - dx),
            (0, h - dy, w - dx, w),
            (h - dy, h, 0, w - dx),
            (h - dy, h, w - dx, w),
        ):
            if r1 > r0 and q1 > q0:  # rows r0:r1, columns q0:q1 land dy, dx further on
                r, q = (r0 + dy) % h, (q0 + dx) % w
                dst[:, r : r + r1 - r0, q : q + q1 - q0] = src[:, r0:r1, q0:q1]
    return out


def _shift_by_phase(u: torch.Tensor, idx: torch.Tensor, circular: bool, inverse: bool, offset: int = 0):
    if circular and u.dim() == 4:
        return _roll_by_phase(u, idx, inverse, offset)
    if offset:
        raise ValueError("a constant offset needs a circular shift of a (B, C, H, W) tensor")
    i, j = phase_offsets(idx)
    shape = (u.shape[0],) + (1,) * (u.dim() - 1)
    step = -1 if inverse else 1

    def shifted(t: torch.Tensor, dim: int) -> torch.Tensor:
        if circular:
            return t.roll(step, dim)
        n = t.shape[dim]
        if inverse:
            kept, pad = t.narrow(dim, 1, n - 1), ((0, 0, 0, 1) if dim == -2 else (0, 1))
        else:
            kept, pad = t.narrow(dim, 0, n - 1), ((0, 0, 1, 0) if dim == -2 else (1, 0))
        return F.pad(kept, pad)

    u = torch.where(i.view(shape).bool(), shifted(u, -2), u)
    return torch.where(j.view(shape).bool(), shifted(u, -1), u)


class _PhaseShift(torch.autograd.Function):
    """Per-sample shift whose backward is the opposite shift (its adjoint): about half the
    work of differentiating through the rolls and selections."""

    @staticmethod
    def forward(ctx, u, idx, circular, inverse, offset):
        ctx.save_for_backward(idx)
        ctx.circular, ctx.inverse, ctx.offset = circular, inverse, offset
        return _shift_by_phase(u, idx, circular, inverse, offset)

    @staticmethod
    def backward(ctx, grad):
        (idx,) = ctx.saved_tensors
        back = _PhaseShift.apply(grad, idx, ctx.circular, not ctx.inverse, ctx.offset)
        return back, None, None, None, None


def phase_shift(
    u: torch.Tensor, idx: torch.Tensor, *, circular: bool = True, inverse: bool = False, offset: int = 0
) -> torch.Tensor:
    """Shift each sample ``b`` of ``u`` by its phase offsets ``(i, j)`` (down and right).

    ``offset`` adds a constant to both offsets (circular shifts only): ``offset=-1``
    shifts by ``(i - 1, j - 1)``, one gather instead of a gather and a roll.

    ``inverse=True`` shifts by ``(-i, -j)`` instead, so that the chosen grid of sample ``b``
    lands on ``(0, 0)``: ``phase_shift(x, idx, inverse=True)[..., ::2, ::2]`` equals the
    APS-D output. ``circular=True`` rolls (what circular padding implies); ``False``
    shifts in zeros. Differentiable (the gradient is the opposite shift).
    """
    _check_idx(idx, u.shape[0])
    return _PhaseShift.apply(u, idx, bool(circular), bool(inverse), int(offset))


def predicted_phases(phases: Sequence[torch.Tensor], shifts) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The grids an exactly equivariant APS U-Net chooses for ``T_k x``, level by level.

    ``phases[l]``: the ``(N,)`` phase indices chosen for ``x`` at level ``l`` (encoder
    order); ``shifts``: ``(N, 2)`` or one ``(dy, dx)``. Level 1 sees the shift ``k``; if
    ``x`` chose ``(i, j)`` there, ``T_k x`` must choose ``(i', j') = ((i + dy) % 2,
    (j + dx) % 2)`` (Proposition 1), and the next level sees the shift
    ``((dy + i - i') / 2, (dx + j - j') / 2)``, an integer.

    Returns ``(predicted, seen)``: per level the ``(N,)`` predicted phase indices and the
    ``(N, 2)`` shift that level sees. A choice for ``T_k x`` that differs from
    ``predicted`` is a grid flip (a tie decided otherwise).
    """
    n = len(phases[0]) if len(phases) else 0
    k = torch.as_tensor(shifts, dtype=torch.long).reshape(-1, 2).cpu()
    if k.shape[0] == 1 and n != 1:
        k = k.expand(n, 2)
    dy, dx = k[:, 0].clone(), k[:, 1].clone()
    predicted, seen = [], []
    for p in phases:
        p = p.long().cpu()
        i, j = p // 2, p % 2  # PHASES[idx] == (idx // 2, idx % 2)
        ei, ej = (i + dy) % 2, (j + dx) % 2
        seen.append(torch.stack([dy, dx], 1))
        predicted.append(2 * ei + ej)
        dy = torch.div(dy + i - ei, 2, rounding_mode="floor")
        dx = torch.div(dx + j - ej, 2, rounding_mode="floor")
    return predicted, seen

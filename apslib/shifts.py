"""Integer circular shifts: the one home of every shift helper.

``T_k`` is the circular shift by ``k = (dy, dx)`` pixels (down, right) of the last two
axes. Training (shift augmentation, the validation equivariance loss) and evaluation (the
random protocol, the exhaustive sweep) draw and apply shifts only through these functions.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence

import numpy as np
import torch

__all__ = ["roll2d", "shift_grid", "shift_each", "random_shifts", "seeded_shifts", "informative_shifts"]


def roll2d(x: torch.Tensor, shift: int | Sequence[int]) -> torch.Tensor:
    """Circular shift ``T_k`` of the last two axes by ``shift = (dy, dx)`` (an int ``k``:
    ``(k, k)``). ``shift`` is a pair of ints (a list, a tuple, an integer tensor or array);
    anything else, a str (iterable: ``"12"`` would be ``(1, 2)``), floats or bools, is a
    one-line ``TypeError`` (sub-pixel shifts: :func:`apslib.subpixel.fourier_shift`)."""
    return torch.roll(x, shifts=_pair(shift), dims=(-2, -1))


def _int(v) -> int | None:
    """``v`` as an int if it is one (Python's, NumPy's, a 0-d integer tensor), else None."""
    if isinstance(v, (bool, np.bool_)) or (isinstance(v, torch.Tensor) and v.dtype == torch.bool):
        return None
    try:
        return operator.index(v)
    except TypeError:  # a float, a str, a float tensor
        return None


def _pair(shift) -> tuple[int, int]:
    """``shift`` as ``(dy, dx)``, or the one-line ``TypeError`` of :func:`roll2d`."""
    k = shift.tolist() if isinstance(shift, (torch.Tensor, np.ndarray)) else shift
    if (n := _int(k)) is not None:
        return n, n
    pair = tuple(map(_int, k)) if isinstance(k, Iterable) and not isinstance(k, (str, bytes)) else ()
    if len(pair) == 2 and pair[0] is not None and pair[1] is not None:
        return pair[0], pair[1]
    got = " ".join(repr(shift).split())  # a tensor's repr can span lines
    got = got if len(got) <= 60 else f"{got[:50]}... ({type(shift).__name__})"
    raise TypeError(f"shift must be an int or a pair of ints (dy, dx) such as (1, 2), got {got}")


def shift_grid(period: int | tuple[int, int]) -> list[tuple[int, int]]:
    """Every shift ``(dy, dx)`` with ``0 <= dy < py`` and ``0 <= dx < px``."""
    py, px = (period, period) if isinstance(period, int) else period
    return [(dy, dx) for dy in range(py) for dx in range(px)]


def shift_each(x: torch.Tensor, shifts: torch.Tensor | Sequence[Sequence[int]]) -> torch.Tensor:
    """Circularly shift sample ``i`` of ``x`` (last two axes) by ``shifts[i] = (dy, dx)``."""
    shifts = shifts.tolist() if isinstance(shifts, torch.Tensor) else [list(k) for k in shifts]
    if len(shifts) != x.shape[0]:
        raise ValueError(f"{len(shifts)} shifts for a batch of {x.shape[0]}: give one (dy, dx) per sample")
    if not shifts:
        return x
    return torch.stack([roll2d(xi, k) for xi, k in zip(x, shifts)])


def random_shifts(n: int, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(n, 2)`` int64 shifts ``(dy, dx)``, each uniform in ``[-max_shift, max_shift - 1]``."""
    return torch.randint(-int(max_shift), int(max_shift), (int(n), 2), generator=generator)


def seeded_shifts(n: int, max_shift: int = 16, seed: int = 0) -> torch.Tensor:
    """:func:`random_shifts` from a generator seeded with ``seed`` (same seed, same shifts)."""
    return random_shifts(n, max_shift, torch.Generator().manual_seed(int(seed)))


def informative_shifts(
    n: int, max_shift: int, period: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """:func:`random_shifts` that are never a multiple of ``period`` on both axes.

    A circular U-Net with ``depth`` stride-2 levels is exactly equivariant to shifts by
    multiples of ``period = 2**depth`` (every model is, Baseline included), so such a shift
    measures nothing. Each offending draw gets ``dx + 1`` (wrapped into
    ``[-max_shift, max_shift - 1]``), which is not a multiple of ``period >= 2``.
    """
    k = random_shifts(n, max_shift, generator)
    if int(period) >= 2:
        free = (k[:, 0] % period == 0) & (k[:, 1] % period == 0)
        k[free, 1] = (k[free, 1] + 1 + max_shift) % (2 * max_shift) - max_shift
    return k

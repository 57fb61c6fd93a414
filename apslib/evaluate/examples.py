"""The arrays of the examples figure: one image, one shift, every model's outputs.

Conventions
-----------
An :class:`Examples` holds one normalised image ``x`` ``(H, W)``, one shift ``k = (dy, dx)``
(integers: a circular roll; reals: the Fourier shift of :func:`apslib.subpixel.fourier_shift`)
and, per model, ``F(x)`` and ``F(T_k x)`` as float32 ``(M, H, W)`` stacks (and the target
``y`` when known). Everything else is derived on the stored arrays: ``T_k x``,
``T_k F(x)``, ``|F(T_k x) - T_k F(x)|`` and the pair's NMSE (exact: a circular shift copies
values). :func:`compute_examples` runs ``x`` and ``T_k x`` in one batch of two, so both see
the same kernels and rounding cannot pose as an equivariance error.

Notebooks 03 and 04 write them (:func:`write_examples`, one ``.npz`` per notebook);
notebook 05 and :func:`apslib.plots.plot_examples` only read them (:func:`read_examples`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..io import atomic_open
from ..metrics import as_float64, nmse_from_sums
from ..shifts import roll2d, seeded_shifts
from .models import ModelRun, ValData, predict

__all__ = ["Examples", "compute_examples", "val_example", "write_examples", "read_examples"]


@dataclass
class Examples:
    """One image ``x`` (``(H, W)``), one shift ``k`` and, per model (``models``), ``out``
    ``= F(x)`` and ``out_shifted = F(T_k x)`` as ``(M, H, W)`` float32 arrays; the target
    ``y`` when known. ``ref = T_k F(x)``, ``diff = |F(T_k x) - T_k F(x)|`` and the pair's
    ``nmse`` per model are derived (exact: a circular shift copies values)."""

    input: np.ndarray
    shift: tuple
    models: list
    out: np.ndarray
    out_shifted: np.ndarray
    target: np.ndarray | None = None
    label: str = ""

    def _roll(self, a):
        return _shift(a, self.shift)

    @property
    def input_shifted(self) -> np.ndarray:
        return self._roll(self.input)

    @property
    def ref(self) -> np.ndarray:
        return self._roll(self.out)

    @property
    def diff(self) -> np.ndarray:
        return np.abs(self.out_shifted.astype(np.float64) - self.ref.astype(np.float64))

    @property
    def nmse(self) -> np.ndarray:
        return nmse_from_sums(
            (self.diff**2).sum(axis=(-2, -1)), (self.ref.astype(np.float64) ** 2).sum(axis=(-2, -1))
        )


def _integral(k) -> tuple:
    """``k`` as ints when every entry is an integer (a roll copies values), else floats."""
    k = tuple(float(v) for v in k)
    return tuple(int(v) for v in k) if all(v.is_integer() for v in k) else k


def _shift(a, k):
    k = _integral(k)
    if all(isinstance(v, int) for v in k):
        return np.roll(a, k, axis=(-2, -1))
    from ..subpixel import fourier_shift

    return (
        fourier_shift(torch.from_numpy(np.asarray(a, dtype=np.float64)), k)
        .numpy()
        .astype(np.asarray(a).dtype)
    )


@torch.no_grad()
def compute_examples(
    runs: dict[str, ModelRun],
    x: torch.Tensor,
    k: Sequence[int],
    *,
    target: torch.Tensor | None = None,
    label: str = "",
) -> Examples:
    """:class:`Examples` for one ``(1, H, W)`` image ``x`` and shift ``k`` (integers or
    reals): each model runs ``x`` and ``T_k x`` in one batch of two (the same kernels for
    both, so rounding cannot pose as an equivariance error)."""
    k = _integral(k)
    if x.dim() != 3 or x.shape[0] != 1:
        raise ValueError(f"compute_examples: x must be one (1, H, W) image, got shape {tuple(x.shape)}")
    outs, outs_s = [], []
    for run in runs.values():
        xs = torch.from_numpy(_shift(x.numpy(), k)) if isinstance(k[0], float) else roll2d(x, k)
        y = predict(run, torch.stack([x, xs]))
        outs.append(as_float64(y[0, 0]))
        outs_s.append(as_float64(y[1, 0]))
    y = None if target is None else as_float64(target.reshape(x.shape[-2:])).astype(np.float32)
    return Examples(
        input=as_float64(x[0]).astype(np.float32),
        shift=k,
        models=list(runs),
        out=np.stack(outs).astype(np.float32),
        out_shifted=np.stack(outs_s).astype(np.float32),
        target=y,
        label=label,
    )


def val_example(
    runs: dict[str, ModelRun], val: ValData, index: int | None = None, *, max_shift: int = 16, seed: int = 0
) -> Examples:
    """:class:`Examples` of validation slice ``index`` (default: the middle slice of the
    first volume) with its target, under the random shift its volume gets in the random
    protocol (:func:`apslib.shifts.seeded_shifts`, one per volume)."""
    if index is None:
        index = val.default_example()
    if not -len(val) <= index < len(val):
        raise IndexError(f"example_index {index} is out of range: the validation split has {len(val)} slices")
    index %= len(val)
    k = seeded_shifts(len(val.volumes), max_shift, seed)[val.volumes.index(val.fname[index])].tolist()
    label = f"{Path(val.fname[index]).name}, slice {val.slice_num[index]} ({val.acquisition[index]})"
    return compute_examples(runs, val.image[index], k, target=val.target[index], label=label)


def write_examples(path, items: dict[str, Examples]) -> Path:
    """Write ``{name: Examples}`` atomically into one ``.npz`` (read it with
    :func:`read_examples`)."""
    path = Path(path)
    arrays = {"names": np.array(list(items), dtype=str)}
    for i, ex in enumerate(items.values()):
        arrays.update(
            {
                f"{i}_input": ex.input,
                f"{i}_shift": np.asarray(_integral(ex.shift)),
                f"{i}_models": np.array(ex.models, dtype=str),
                f"{i}_out": ex.out,
                f"{i}_out_shifted": ex.out_shifted,
                f"{i}_label": np.array(ex.label),
            }
        )
        if ex.target is not None:
            arrays[f"{i}_target"] = ex.target
    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    return path


def read_examples(path) -> dict[str, Examples]:
    """The ``{name: Examples}`` written by :func:`write_examples`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no examples file {path}: notebooks 03 and 04 (apslib.evaluate."
            "evaluate_runs / evaluate_runs_ood) write it next to the result tables"
        )
    with np.load(path, allow_pickle=False) as z:
        out = {}
        for i, name in enumerate(z["names"].tolist()):
            out[name] = Examples(
                input=z[f"{i}_input"],
                shift=_integral(z[f"{i}_shift"]),
                models=z[f"{i}_models"].tolist(),
                out=z[f"{i}_out"],
                out_shifted=z[f"{i}_out_shifted"],
                target=z[f"{i}_target"] if f"{i}_target" in z.files else None,
                label=str(z[f"{i}_label"]),
            )
    return out

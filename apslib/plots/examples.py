"""The examples figure: outputs of each model under one shift and its equivariance error.

:func:`plot_examples` draws an :class:`apslib.evaluate.examples.Examples`: the input, the
target, ``F(x)``, ``F(T_k x)``, ``T_k F(x)`` and ``|F(T_k x) - T_k F(x)|`` per model, all
images on one grey scale and all differences on one colour scale.
"""

from __future__ import annotations

from collections.abc import Sequence

from .style import TEXT_WIDTH, image_range, wrap_label

__all__ = ["plot_examples"]


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    return f"{v:.2g}" if 1e-2 <= abs(v) < 1e3 else f"{v:.1e}".replace("e-0", "e-").replace("e+0", "e+")


def plot_examples(
    ex,
    models: Sequence[str] | None = None,
    *,
    width: float = TEXT_WIDTH,
    title: str | None = None,
    diff_vmax: float | None = None,
):
    """The examples figure of an :class:`apslib.evaluate.Examples`.

    Columns: the inputs (``x``, ``T_k x`` and, when known, the target ``y``), then one
    column per model; rows: ``F(x)``, ``F(T_k x)``, ``T_k F(x)`` and the difference
    ``|F(T_k x) - T_k F(x)|``. Every image shares one grey scale (robust range of the
    target, or of the input without one); every difference map shares one colour scale
    (``diff_vmax``: default the largest difference over the models, at least 1e-12), so an
    exactly equivariant model shows a black map. Each difference panel states its max and
    the NMSE of the pair."""
    import matplotlib.pyplot as plt

    names = list(models) if models is not None else list(ex.models)
    unknown = [m for m in names if m not in ex.models]
    if unknown:
        raise ValueError(f"models {unknown} are not in these examples; they hold {list(ex.models)}")
    idx = [ex.models.index(m) for m in names]
    diff, nmse = ex.diff, ex.nmse
    vmin, vmax = image_range(ex.target if ex.target is not None else ex.input)
    dmax = diff_vmax or max(float(diff[idx].max()) if idx else 0.0, 1e-12)
    ncol = len(names) + 1
    panel = width / (ncol + 0.35)
    fig, axes = plt.subplots(4, ncol, figsize=(width, 4 * panel + 0.6), squeeze=False, layout="constrained")
    k = tuple(int(v) if float(v).is_integer() else float(v) for v in ex.shift)
    kind = "circular" if all(isinstance(v, int) for v in k) else "circular, Fourier\n(sub-pixel)"
    gray = dict(cmap="gray", vmin=vmin, vmax=vmax)
    left = [
        (ex.input, "input x"),
        (ex.input_shifted, "shifted input T_k x"),
        (ex.target, "target y"),
        (None, None),
    ]
    im_gray = im_diff = None
    for r, (image, label) in enumerate(left):
        ax = axes[r, 0]
        if image is None:
            ax.axis("off")
            if r < 3:  # no target: an empty panel
                continue
            ax.text(
                0.0,
                0.5,
                f"shift k = {k}\n(dy, dx) in pixels,\n{kind}\n\nbottom row:\n"
                "|F(T_k x) - T_k F(x)|\nper model",
                transform=ax.transAxes,
                va="center",
                fontsize=6,
            )
            continue
        im_gray = ax.imshow(image, **gray)
        ax.set_title(label)
    rows = [("F(x)", ex.out), ("F(T_k x)", ex.out_shifted), ("T_k F(x)", ex.ref)]
    errors = {i: f"max {_fmt(float(diff[i].max()))}\nNMSE {_fmt(float(nmse[i]))}" for i in idx}
    widest = max((len(line) for t in errors.values() for line in t.splitlines()), default=1)
    # the error titles at most one panel wide (about 0.6 em per character), so neighbours never overlap
    error_size = min(float(plt.rcParams["axes.titlesize"]), 0.85 * panel * 72 / (0.6 * widest))
    for c, (name, i) in enumerate(zip(names, idx), start=1):
        for r, (label, stack) in enumerate(rows):
            axes[r, c].imshow(stack[i], **gray)
            axes[r, c].set_title(f"{wrap_label(name, panel)}\n{label}" if r == 0 else label)
        im_diff = axes[3, c].imshow(diff[i], cmap="magma", vmin=0.0, vmax=dmax)
        axes[3, c].set_title(errors[i], fontsize=error_size)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    h, w = ex.input.shape[-2:]
    axes[3, 1].set_xlabel(f"{w} px")
    axes[0, 0].set_ylabel(f"{h} px")
    if im_gray is not None:
        fig.colorbar(
            im_gray, ax=axes[:3, -1].tolist(), shrink=0.8, aspect=30, label="intensity (normalised units)"
        )
    if im_diff is not None:
        fig.colorbar(im_diff, ax=axes[3, -1], shrink=0.9, aspect=12, label="|difference|")
    fig.suptitle(
        title
        if title is not None
        else (f"{ex.label}: " if ex.label else "")
        + f"outputs under the shift k = {k} and the equivariance error"
    )
    return fig

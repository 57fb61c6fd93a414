"""Tests of the shared figure layer (apslib.plots): style, atomic reproducible saving, the
examples figure."""

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from apslib import evaluate as ev  # noqa: E402
from apslib import plots  # noqa: E402


def _examples(models=("Baseline", "APS"), target=True, k=(3, -2), seed=0):
    g = np.random.default_rng(seed)
    x = g.standard_normal((24, 20)).astype(np.float32)
    out = np.stack([g.standard_normal((24, 20)) for _ in models]).astype(np.float32)
    out_s = np.roll(out, k, axis=(1, 2)).copy()
    out_s[0] += 0.1 * g.standard_normal((24, 20)).astype(np.float32)  # the first model is not equivariant
    return ev.Examples(x, k, list(models), out, out_s, target=x * 0.5 if target else None, label="synthetic")


def test_set_style_applies_the_project_rc():
    plots.set_style()
    for key, value in plots.STYLE_RC.items():
        assert matplotlib.rcParams[key] == value, key
    plots.set_style(**{"font.size": 9})
    assert matplotlib.rcParams["font.size"] == 9
    plots.set_style()


def test_save_figure_is_atomic_and_reproducible(tmp_path):
    plots.set_style()
    fig, ax = plt.subplots(figsize=(plots.COLUMN_WIDTH, 2))
    ax.plot([0, 1], [1, 0])
    paths = plots.save_figure(fig, tmp_path / "sub", "f", formats=("png", "pdf"))
    assert [p.name for p in paths] == ["f.png", "f.pdf"]
    first = {p.name: p.read_bytes() for p in paths}
    assert b"CreationDate" not in first["f.pdf"]
    plots.save_figure(fig, tmp_path / "sub", "f", formats=("png", "pdf"))
    assert {p.name: p.read_bytes() for p in paths} == first  # same figure, same bytes
    with pytest.raises(ValueError):
        plots.save_figure(fig, tmp_path / "sub", "f", formats=("png", "no-such-format"))
    assert (tmp_path / "sub" / "f.png").read_bytes() == first["f.png"]
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["f.pdf", "f.png"]  # no temp files
    with pytest.raises(ValueError, match="at least one format"):
        plots.save_figure(fig, tmp_path, "g", formats=())
    plt.close(fig)


@pytest.mark.parametrize("seed", range(5))
def test_image_range_is_a_shared_nonempty_scale(seed):
    g = np.random.default_rng(seed)
    a, b = g.standard_normal((8, 8)), 3 + g.standard_normal((5, 7))
    lo, hi = plots.image_range(a, None, b)
    both = np.concatenate([a.ravel(), b.ravel()])
    assert both.min() <= lo < hi <= both.max()
    assert plots.image_range(np.full((4, 4), 2.0)) == (2.0, 3.0)
    assert plots.image_range(np.array([0.0, np.nan, 1.0]), percentiles=(0, 100)) == (0.0, 1.0)


@pytest.mark.parametrize("target", [True, False])
def test_examples_figure_layout_and_shared_scales(target):
    plots.set_style()
    ex = _examples(target=target)
    fig = plots.plot_examples(ex)
    image_axes = [ax for ax in fig.axes if ax.images]
    # inputs (x, T_k x, y when known) + 4 rows per model
    assert len(image_axes) == (3 if target else 2) + 4 * len(ex.models)
    bars = {ax.get_ylabel() for ax in fig.axes if not ax.images and ax.get_ylabel()}
    assert bars == {"intensity (normalised units)", "|difference|"}
    grey = [im for ax in image_axes for im in ax.images if im.get_cmap().name == "gray"]
    diffs = [im for ax in image_axes for im in ax.images if im.get_cmap().name == "magma"]
    assert len({im.get_clim() for im in grey}) == 1  # one grey scale for every image
    assert len(diffs) == len(ex.models) and len({im.get_clim() for im in diffs}) == 1
    assert diffs[0].get_clim()[1] == pytest.approx(float(ex.diff.max()), rel=1e-6)
    titles = " ".join(ax.get_title() for ax in fig.axes)
    for needle in ("F(x)", "F(T_k x)", "T_k F(x)", "input x", "Baseline", "APS", "NMSE 0"):
        assert needle in titles
    assert ("target y" in titles) == target
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert len(texts) == 1 and "shift k = (3, -2)" in texts[0]  # the legend panel, once
    plt.close(fig)


def test_examples_figure_model_subset_and_unknown_model():
    ex = _examples(models=("Baseline", "LPF-3", "APS"))
    fig = plots.plot_examples(ex, models=["APS"])
    assert "Baseline" not in " ".join(ax.get_title() for ax in fig.axes)
    plt.close(fig)
    with pytest.raises(ValueError, match="not in these examples"):
        plots.plot_examples(ex, models=["APS-3"])


# -- training curves -----------------------------------------------------------------------


def _history(low, high, eq=0.0):
    import pandas as pd

    vals = [high, (high + low) / 2, low * 1.01, low]
    return pd.DataFrame(
        {
            "model": ["APS"] * 4,
            "epoch": [1, 2, 3, 4],
            "train_loss": vals,
            "val_loss": vals,
            "val_equiv_mse": [eq] * 4,
            "val_psnr": [20.0, 21, 22, 23],
        }
    )


@pytest.mark.parametrize("low,high", [(0.063, 0.17), (0.0525, 0.185), (1.30, 1.31), (2e-3, 5e-3)])
def test_training_curves_label_short_log_axes_and_floor_zeros(low, high):
    plots.set_style()
    fig = plots.plot_training_curves(_history(low, high))
    loss_ax, eq_ax = fig.axes[0], fig.axes[2]
    fig.canvas.draw()
    lo, hi = loss_ax.get_ylim()
    shown = [
        t.get_text()
        for t in loss_ax.yaxis.get_majorticklabels() + loss_ax.yaxis.get_minorticklabels()
        if t.get_text() and lo <= t.get_position()[1] <= hi
    ]
    # an axis spanning under a decade is labelled with at least three plain numbers
    # (matplotlib's default gives one or two labels such as "6x10^-2" for these ranges)
    assert len(shown) >= 3 and all(float(t) > 0 for t in shown), shown
    assert f"exact 0 drawn at {plots.EXACT_ZERO_FLOOR:g}" in eq_ax.get_title()
    assert eq_ax.lines[0].get_ydata().min() == plots.EXACT_ZERO_FLOOR
    assert "exact 0" not in loss_ax.get_title()  # nothing floored there
    plt.close(fig)


def test_training_curves_order_metrics_and_linear_psnr():
    import pandas as pd

    h = _history(0.01, 0.1, eq=1e-3)
    frame = pd.concat([h, h.assign(model="Baseline", train_loss=h.train_loss * 2)], ignore_index=True)
    fig = plots.plot_training_curves(
        frame, metrics=("train_loss", "val_psnr"), order=["Baseline", "APS"], floor=1e-12
    )
    assert len(fig.axes) == 2
    assert [ln.get_label() for ln in fig.axes[0].lines] == ["Baseline", "APS"]
    assert fig.axes[0].get_yscale() == "log" and fig.axes[1].get_yscale() == "linear"
    assert all("exact 0" not in ax.get_title() for ax in fig.axes)
    plt.close(fig)


# -- exhaustive-protocol heatmaps --------------------------------------------------------


def _sweep_frame():
    import pandas as pd

    rows = []
    for model, scale in (("APS", 0.0), ("Baseline", 1e-3)):
        for image in range(2):
            for dy in range(4):
                for dx in range(4):
                    e = scale * (1 + dy + dx + image) if (dy, dx) != (0, 0) else 0.0
                    rows.append(
                        {
                            "model": model,
                            "dataset": "val",
                            "image": image,
                            "acquisition": "all",
                            "dy": dy,
                            "dx": dx,
                            "eq_nmse": e,
                            "eq_psnr": np.inf if e == 0 else 40.0,
                            "eq_ssim": 1.0 - e,
                            "flip_level": 0,
                        }
                    )
    return pd.DataFrame(rows)


def test_shift_heatmaps_one_log_scale_with_zeros_at_the_floor():
    plots.set_style()
    frame = _sweep_frame()
    fig = plots.plot_shift_heatmaps(frame, models=["Baseline", "APS"], title="t")
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in fig.axes if ax.images] == ["Baseline", "APS"]
    assert len({(im.norm.vmin, im.norm.vmax) for im in images}) == 1  # one shared colour scale
    assert images[0].norm.vmin == plots.EXACT_ZERO_FLOOR
    assert np.all(images[1].get_array() == plots.EXACT_ZERO_FLOOR)  # APS: exact everywhere
    assert images[0].get_array()[3, 3] == pytest.approx(1e-3 * (1 + 6 + 1))  # max over the images
    plt.close(fig)
    fig = plots.plot_shift_heatmaps(frame, metric="eq_psnr", reduce="mean")
    assert max(im.get_array().max() for ax in fig.axes for im in ax.images) == 100.0  # inf capped
    plt.close(fig)


# -- this run next to the paper ------------------------------------------------------------


def test_side_by_side_and_ood_figures_mark_the_floor():
    import pandas as pd

    from apslib import paper

    cols = ["model", "dataset", "acquisition", "protocol", "metric", "statistic", "value", "n"]
    ours = pd.DataFrame(
        [
            ("Baseline", "photographs", "all", "random", "eq_nmse", "mean", 5e-3, 4),
            ("APS", "photographs", "all", "random", "eq_nmse", "mean", 0.0, 4),
            ("APS", "noise", "all", "random", "eq_nmse", "mean", 1e-15, 4),
            ("Baseline", "val", "all", "random", "psnr_decline", "mean", 1.5, 2),
            ("APS", "val", "all", "random", "psnr_decline", "mean", 0.0, 2),
        ],
        columns=cols,
    )
    plots.set_style()
    fig = plots.plot_side_by_side(
        paper.side_by_side(ours, "4", models=["Baseline", "APS"]),
        ["psnr_decline mean"],
        ylabel="dB",
        title="decline",
    )
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.lines[0].get_ydata()[1] == plots.EXACT_ZERO_FLOOR
    assert [t.get_text() for t in ax.texts] == [f"exact 0 (drawn at {plots.EXACT_ZERO_FLOOR:.0e})"]
    assert [t.get_text() for t in ax.get_xticklabels()][:2] == ["Baseline", "APS"]
    plt.close(fig)
    fig = plots.plot_ood(ours, ["Baseline", "APS"])
    labels = [ln.get_label() for ln in fig.axes[0].lines]
    assert labels[:2] == ["this run: photographs", "this run: noise"] and "paper: ImageNet val" in labels
    assert len(fig.axes[0].texts) == 1
    plt.close(fig)


def test_distribution_figure_is_reproducible_and_floors_zeros(tmp_path):
    frame = _sweep_frame()
    plots.set_style()
    state = np.random.get_state()
    saved = []
    for name in ("a", "b"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no library deprecation noise in the user's notebook
            fig = plots.plot_distribution({"val": frame, "again": frame}, ["Baseline", "APS"], title="d")
        assert len(fig.axes[0].texts) == 1  # the floor line's note: APS is exact
        saved.append(plots.save_figure(fig, tmp_path, name)[0].read_bytes())
        plt.close(fig)
    assert saved[0] == saved[1]  # seeded jitter: the same tables give the same figure
    assert all(np.array_equal(a, b) for a, b in zip(state[1:2], np.random.get_state()[1:2]))


def test_flip_rate_and_choice_rule_figures():
    import pandas as pd
    import torch

    from apslib import build_unet, calibrate_batchnorm
    from apslib.learned import choice_rules

    rows = [
        dict(model=m, protocol="subpixel", dy=0.0, dx=d, grid_flip=f, eq_nmse=1e-3, seed=s)
        for s in (0, 1)
        for m, f in (("APS", 0.5), ("LPS", 0.25 * (1 + s)))
        for d in (0.0, 0.5, 1.0)
    ] + [dict(model="Baseline", protocol="subpixel", dy=0.0, dx=0.5, grid_flip=np.nan, eq_nmse=1e-3, seed=0)]
    fig = plots.plot_flip_rates(pd.DataFrame(rows), ["Baseline", "APS", "LPS"], directions=("x",))
    ax = fig.axes[0]
    assert [ln.get_label() for ln in ax.lines] == ["APS", "LPS"]  # no grid choice, no line
    assert np.allclose(ax.lines[1].get_ydata(), 0.375) and len(ax.collections) == 2  # seed bands
    plt.close(fig)
    with pytest.raises(ValueError, match="grid_flip"):
        plots.plot_flip_rates(pd.DataFrame(rows).drop(columns="grid_flip"), ["APS"])
    torch.manual_seed(0)
    x = torch.randn(2, 1, 16, 16)
    model = calibrate_batchnorm(build_unet("lps", depth=2, channels=[4, 6, 8]), x)
    r = choice_rules(model, x)
    fig = plots.plot_choice_rules(r)
    bars = [a for a in fig.axes if a.patches]
    assert len(bars) == 4 and all(len(a.patches) == 4 for a in bars)
    for a, v in zip(bars, r["scores"].values()):  # the picked component is the dark bar
        dark = [p.get_facecolor()[0] < 0.5 for p in a.patches]
        assert dark.index(True) == int(v.argmax()) and sum(dark) == 1
    plt.close(fig)

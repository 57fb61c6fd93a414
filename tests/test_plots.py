"""Tests of the shared figure layer (apslib.plots): style, atomic reproducible saving, the
examples figure."""

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

"""Tests of the data figures (apslib.plots.data): the three figures of notebook 00, drawn
from inputs shaped like apslib.data's own (example_targets, inspect_slice)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from apslib import plots  # noqa: E402
from apslib.plots.data import plot_kspace_mask, plot_targets, plot_zero_filled  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _targets(count, acquisitions=("CORPD_FBK", "CORPDFS_FBK"), size=(24, 20)):
    g = np.random.default_rng(0)
    return {
        acq: [
            (f"file_synth_val_{i:04d}.h5", 2 * i + 1, g.random(size).astype(np.float32)) for i in range(count)
        ]
        for acq in acquisitions
    }


def _inspected(acq="CORPD_FBK", H=32, W=20, size=16, seed=0):
    """The keys and shapes of apslib.data.inspect_slice's dict."""
    g = np.random.default_rng(seed)
    k = g.standard_normal((H, W)) + 1j * g.standard_normal((H, W))
    mask = (g.random(W) < 0.4).astype(np.float32)
    target = g.random((size, size)).astype(np.float32) + 0.5
    return dict(
        kspace=k,
        mask=mask,
        masked_kspace=k * mask,
        zero_filled=target * 0.8,
        full=target,
        target=target,
        fname="file_synth_val_0001.h5",
        slice_num=3,
        acquisition=acq,
        max_value=float(target.max()),
    )


def _visible(fig):
    return [ax for ax in fig.axes if ax.axison]


def test_plot_targets_one_row_per_acquisition():
    plots.set_style()
    fig = plot_targets(_targets(4))
    assert fig.get_size_inches()[0] == pytest.approx(plots.TEXT_WIDTH)
    axes = _visible(fig)
    assert len(axes) == 8
    assert axes[0].get_title() == "PD · val_0000 · slice 1"
    assert axes[7].get_title() == "PDFS · val_0003 · slice 7"
    assert axes[0].get_ylabel() == "24 px" and axes[4].get_xlabel() == "20 px"
    assert all(len(ax.images) == 1 and not ax.get_xticks().size for ax in axes)
    assert fig.get_suptitle() == (
        "reconstruction_esc targets (validation split), each panel on its own grey scale"
    )


def test_plot_targets_narrow_and_ragged():
    examples = {**_targets(2, ("CORPD_FBK",)), **_targets(1, ("CORPDFS_FBK",))}
    fig = plot_targets(examples, names={"CORPD_FBK": "proton density"})
    assert fig.get_size_inches()[0] == pytest.approx(plots.COLUMN_WIDTH)
    assert len(fig.axes) == 4 and len(_visible(fig)) == 3  # the missing panel is switched off
    titles = [ax.get_title() for ax in _visible(fig)]
    assert titles[0].startswith("proton density · ") and titles[2].startswith("CORPDFS_FBK · ")
    assert "\n" in fig.get_suptitle()
    with pytest.raises(ValueError, match="nothing to draw"):
        plot_targets({})


def test_plot_kspace_mask_three_panels():
    ex = _inspected()
    fig = plot_kspace_mask(ex, acceleration=4, center_fraction=0.08)
    axes = fig.axes
    assert len(axes) == 3 and fig.get_size_inches()[0] == pytest.approx(plots.TEXT_WIDTH)
    assert axes[0].get_title() == "|k-space| (log10), 32x20"
    assert axes[1].get_title() == f"mask: {int(ex['mask'].sum())} of 20 columns kept"
    assert axes[2].get_title() == "masked k-space (4x, centre 8%)"
    assert axes[0].get_ylabel() == "k-space row (readout, 2x oversampled)"
    assert all(ax.get_xlabel() == "k-space column (phase encoding)" for ax in axes)
    assert axes[1].images[0].get_array().shape == (32, 20)  # the mask spans every row
    assert fig.get_suptitle() == "file_synth_val_0001.h5 slice 3 (CORPD_FBK)"
    assert np.isfinite(axes[2].images[0].get_array()).all()  # log of the zeroed columns


def test_plot_zero_filled_rows_on_the_targets_grey_scale():
    rows = {"CORPD_FBK": _inspected(), "CORPDFS_FBK": _inspected("CORPDFS_FBK", seed=1)}
    fig = plot_zero_filled(rows, acceleration=4)
    axes = fig.axes
    assert len(axes) == 6
    assert [ax.get_title() for ax in axes[:3]] == [
        "PD: zero-filled input",
        "PD: target",
        "PD: |difference| (4x contrast)",
    ]
    assert axes[3].get_title() == "PDFS: zero-filled input"
    vmax = float(rows["CORPD_FBK"]["target"].max())
    assert axes[0].images[0].get_clim() == pytest.approx((0, vmax))
    assert axes[2].images[0].get_clim() == pytest.approx((0, vmax / 4))
    assert axes[0].get_ylabel() == "16 px" and axes[3].get_xlabel() == "16 px"
    assert fig.get_suptitle() == (
        "Zero-filled input (4x random mask) next to its target, on the target's grey scale"
    )
    with pytest.raises(ValueError, match="nothing to draw"):
        plot_zero_filled({}, acceleration=4)


def test_plots_package_re_exports_the_data_figures():
    assert plots.plot_targets is plot_targets
    assert plots.plot_kspace_mask is plot_kspace_mask
    assert plots.plot_zero_filled is plot_zero_filled

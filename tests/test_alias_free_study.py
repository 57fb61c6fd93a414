"""Notebook 08's measurements (apslib.evaluate.alias_free) and figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from apslib import build_unet
from apslib.evaluate.alias_free import (
    activation_aliasing,
    alias_free_targets,
    clamp_activity,
    downsampler_errors,
    lowpass_responses,
)
from apslib.evaluate.models import ModelRun

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_only_the_polynomial_at_twice_the_resolution_is_alias_free():
    spectra, table = activation_aliasing(size=32, count=4, seed=1)
    aliased = table["aliased energy / output energy"]
    assert aliased["polynomial at 2x (AF)"] < 1e-25
    assert aliased["ReLU at 2x (AF-ReLU)"] < aliased["ReLU"] / 10 and aliased["ReLU"] > 1e-3
    assert aliased["polynomial"] > 1e-3  # the square of a full-band map has twice its band
    quarter = table["eq NMSE at (0.25, 0.25) px"]
    assert quarter["polynomial at 2x (AF)"] < 1e-25 < 1e-6 < quarter["ReLU at 2x (AF-ReLU)"]
    assert table["eq NMSE at (0.5, 0.5) px"]["ReLU at 2x (AF-ReLU)"] < 1e-25  # a whole 2x pixel
    assert set(spectra.form) >= {"input", "ReLU, alias-free", *table.index}


def test_lowpass_responses_pass_nothing_above_a_quarter_only_when_ideal():
    r = lowpass_responses(64)
    high = r[r.frequency >= 0.25].groupby("filter").gain.max()
    assert high["ideal (AF)"] == 0 and (high.drop("ideal (AF)") > 0).all()
    low = r[r.frequency == 0].set_index("filter").gain
    assert np.allclose(low, 1.0)  # every filter keeps the mean


def test_downsampler_errors_are_zero_where_the_theory_says():
    f = downsampler_errors([0.0, 0.5, 1.0, 2.0], size=16, count=4)
    t = f.pivot(index="offset", columns="layer", values="eq_nmse")
    assert (t["ideal half band (AF)"] < 1e-25).all()
    assert (t.loc[[0.0, 2.0]] < 1e-25).all().all()  # even offsets: every fixed grid commutes
    assert t.loc[0.5, "max-pool, blur 3, APS (APS-3)"] > 1e-4 and t.loc[1.0, "max-pool (Baseline)"] > 1e-4


def test_clamp_activity_counts_the_pixels_a_clamp_would_change():
    torch.manual_seed(0)
    model = build_unet("af", depth=1, channels=[2, 3]).eval()
    images = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        y = model(images)
    c = float(y.abs().flatten().kthvalue(150).values)  # 42 of 192 pixels are above it
    got = clamp_activity({"AF": ModelRun("AF", model, None, None, None)}, images, clamp=c, batch_size=2)
    assert got["AF"] == pytest.approx(float((y.abs() > c).float().mean()))


def test_targets_are_read_from_the_protocols_tables():
    rows = []
    for model, sub, phys in [("AF", 1e-12, 1e-4), ("AF-ReLU", 1e-7, 5e-4), ("Target", None, 4e-4)]:
        for dy, dx in [(0.5, 0.0), (1.0, 0.0)]:
            if sub is not None:
                rows.append(dict(model=model, protocol="subpixel", dy=dy, dx=dx, eq_nmse=sub * (1 + dy)))
            rows.append(dict(model=model, protocol="physical", dy=dy, dx=dx, eq_nmse=phys))
    points = pd.DataFrame(
        {
            "eq NMSE at 0.5 px": [1e-3, 1.5e-12, 2e-7],
            "PSNR (dB)": [24.0, 23.5, 24.2],
            "PSNR (dB) sd": [0.1, 0.2, 0.1],
        },
        index=["Baseline", "AF", "AF-ReLU"],
    )
    t = alias_free_targets(pd.DataFrame(rows), points)
    assert bool(t.loc["AF", "half-pixel reached"]) and not bool(t.loc["AF", "no PSNR cost"])
    assert t.loc["AF", "max eq NMSE, integer offsets"] == pytest.approx(2e-12)
    assert t.loc["AF-ReLU", "physical sub-pixel / floor"] == pytest.approx(1.25)
    assert bool(t.loc["AF-ReLU", "no PSNR cost"]) and not bool(t.loc["AF-ReLU", "integer reached (<= 1e-10)"])


def test_the_figures_draw(tmp_path):
    from apslib import plots

    spectra, table = activation_aliasing(size=16, count=2)
    for fig in (
        plots.plot_aliasing_spectra(spectra, table),
        plots.plot_lowpass_responses(lowpass_responses(32)),
        plots.plot_downsampler_errors(downsampler_errors([0.0, 0.5], size=16, count=2)),
    ):
        assert fig.axes and plots.save_figure(fig, tmp_path, "f")[0].exists()

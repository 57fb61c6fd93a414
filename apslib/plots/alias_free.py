"""Figures of notebook 08 (the alias-free U-Net), from :mod:`apslib.evaluate.alias_free`."""

from __future__ import annotations

import numpy as np

from .style import COLUMN_WIDTH, TEXT_WIDTH, draw_floor_line

__all__ = ["plot_aliasing_spectra", "plot_downsampler_errors", "plot_lowpass_responses"]

_FLOOR = 1e-16  # rounding of float64 spectra: anything below is drawn here


def plot_aliasing_spectra(spectra, table=None):
    """Left: the input's spectrum along x and the alias-free ReLU output's; right: the
    aliased part of each activation form (what folds back below the Nyquist frequency), at
    the rounding floor where nothing aliases. ``spectra``: the first value of
    :func:`~apslib.evaluate.alias_free.activation_aliasing`; ``table`` (its second) puts
    the half-pixel error into the legend."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(TEXT_WIDTH, 2.5), layout="constrained")
    for form in ("input", "ReLU, alias-free"):
        d = spectra[spectra.form == form]
        left.semilogy(d.frequency, d.magnitude, label=form)
    left.set(xlabel="frequency (cycles per pixel)", ylabel="mean |spectrum|", title="Signals")
    left.legend(loc="lower left")
    for form in [f for f in spectra.form.unique() if f not in ("input", "ReLU, alias-free")]:
        d = spectra[spectra.form == form]
        label = form
        if table is not None and form in table.index:
            label += f" (quarter-pixel eq NMSE {table.loc[form].iloc[-1]:.1e})"
        right.semilogy(d.frequency, np.maximum(d.magnitude.to_numpy(float), _FLOOR), label=label)
    draw_floor_line(right, _FLOOR)
    right.set(xlabel="frequency (cycles per pixel)", title="Aliased part of the activation's output")
    right.legend(loc="center right", fontsize=5.5)
    return fig


def plot_lowpass_responses(responses):
    """The gain of each low-pass against the frequency; the shaded band is what a
    downsampling by 2 folds back (above 1/4 cycle per pixel)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.4), layout="constrained")
    for name, d in responses.groupby("filter", sort=False):
        ax.plot(d.frequency, d.gain, label=name, lw=1.4 if "ideal" in name else 1.0)
    ax.axvspan(0.25, 0.5, color="0.9", zorder=0)
    ax.text(0.375, 1.02, "folds back when\ndownsampled by 2", ha="center", va="bottom", fontsize=6)
    ax.set(xlabel="frequency (cycles per pixel)", ylabel="gain", ylim=(-0.02, 1.25), xlim=(0, 0.5))
    ax.legend(loc="lower left", fontsize=5.5)
    return fig


def plot_downsampler_errors(frame):
    """One down layer per family: equivariance NMSE of its output against the input's
    sub-pixel offset (``S_{d/2} down(x)`` is the reference), exact zeros at the floor."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.4), layout="constrained")
    for name, d in frame.groupby("layer", sort=False):
        ax.semilogy(d.offset, np.maximum(d.eq_nmse.to_numpy(float), _FLOOR), marker="o", ms=2.5, label=name)
    draw_floor_line(ax, _FLOOR)
    ax.set(xlabel="input offset d (pixels)", ylabel="eq NMSE of the down layer")
    ax.legend(loc="center right", fontsize=5.5)
    return fig

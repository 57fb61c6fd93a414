"""Every figure of the notebooks, in one style, saved atomically with reproducible bytes.

=====================================  ==================================================
:mod:`~apslib.plots.style`             :func:`set_style`, :func:`save_figure`, the widths
                                       (:data:`COLUMN_WIDTH`, :data:`TEXT_WIDTH`),
                                       :data:`EXACT_ZERO_FLOOR`, shared drawing helpers
:mod:`~apslib.plots.examples`          :func:`plot_examples`: outputs under one shift and
                                       the equivariance error (notebooks 03-05)
:mod:`~apslib.plots.data`              the data figures of notebook 00
:mod:`~apslib.plots.training`          :func:`plot_training_curves`,
                                       :func:`plot_equivariance_curves` (notebook 02)
:mod:`~apslib.plots.evaluation`        :func:`plot_shift_heatmaps` (notebooks 03-05)
:mod:`~apslib.plots.paper`             this run next to the paper (notebook 05)
:mod:`~apslib.plots.beyond`            shifts beyond integer ones (notebook 06)
:mod:`~apslib.plots.conversion`        fastMRI's U-Net converted to APS (notebook 07)
:mod:`~apslib.plots.alias_free`        aliasing of activations and low-passes (notebook 08)
=====================================  ==================================================

Every figure function returns the matplotlib figure; matplotlib is imported only when a
figure is drawn.
"""

from .alias_free import plot_aliasing_spectra, plot_downsampler_errors, plot_lowpass_responses
from .beyond import plot_choice_rules, plot_flip_rates, plot_frontier, plot_grid_choice, plot_subpixel_curves
from .conversion import plot_conversion, plot_stage_differences
from .data import plot_kspace_mask, plot_targets, plot_zero_filled
from .evaluation import plot_shift_heatmaps
from .examples import plot_examples
from .paper import plot_distribution, plot_ood, plot_side_by_side
from .style import (
    COLUMN_WIDTH,
    EXACT_ZERO_FLOOR,
    STYLE_RC,
    TEXT_WIDTH,
    image_range,
    save_figure,
    set_style,
    wrap_label,
)
from .training import plot_equivariance_curves, plot_training_curves

__all__ = [
    "plot_aliasing_spectra",
    "plot_downsampler_errors",
    "plot_lowpass_responses",
    "COLUMN_WIDTH",
    "TEXT_WIDTH",
    "EXACT_ZERO_FLOOR",
    "STYLE_RC",
    "set_style",
    "save_figure",
    "image_range",
    "wrap_label",
    "plot_examples",
    "plot_targets",
    "plot_kspace_mask",
    "plot_zero_filled",
    "plot_training_curves",
    "plot_equivariance_curves",
    "plot_shift_heatmaps",
    "plot_side_by_side",
    "plot_ood",
    "plot_distribution",
    "plot_subpixel_curves",
    "plot_flip_rates",
    "plot_choice_rules",
    "plot_frontier",
    "plot_grid_choice",
    "plot_conversion",
    "plot_stage_differences",
]

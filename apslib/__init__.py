"""apslib: truly shift-equivariant U-Nets with adaptive polyphase sampling (APS).

Chaman & Dokmanic, "Truly shift equivariant convolutional neural networks with adaptive
polyphase upsampling", Asilomar 2021. Everything here is written from the paper's maths.

The names below are the core (torch and numpy only): the polyphase maths, the filters, the
sampling layers and their selection rules, the U-Net family, the metrics. Conversion of
your own U-Nets is :mod:`apslib.convert`; the harness that reproduces the paper (data,
training, evaluation, plots, notebooks) sits above the core in its own subpackages.
"""

from .filters import binomial_filter_1d, binomial_filter_2d, blur, blur_pool, blur_upsample, zero_insert
from .layers import FixedGrid, NormSelection, PolyphaseDown, PolyphaseUp, Selection, forced_phase
from .metrics import equivariance_error_map, equivariance_errors, phase_margins
from .models import unet_from_config
from .polyphase import (
    CRITERIA,
    PHASES,
    aps_down,
    aps_up,
    phase_shift,
    polyphase_components,
    polyphase_norms,
)
from .shifts import roll2d
from .unet import PAPER_CHANNELS, VARIANTS, UNet, UNetConfig, build_unet, calibrate_batchnorm

__version__ = "0.2.0"

__all__ = [
    "CRITERIA",
    "FixedGrid",
    "NormSelection",
    "PAPER_CHANNELS",
    "PHASES",
    "PolyphaseDown",
    "PolyphaseUp",
    "Selection",
    "UNet",
    "UNetConfig",
    "VARIANTS",
    "aps_down",
    "aps_up",
    "binomial_filter_1d",
    "binomial_filter_2d",
    "blur",
    "blur_pool",
    "blur_upsample",
    "build_unet",
    "calibrate_batchnorm",
    "equivariance_error_map",
    "equivariance_errors",
    "forced_phase",
    "phase_margins",
    "phase_shift",
    "polyphase_components",
    "polyphase_norms",
    "roll2d",
    "unet_from_config",
    "zero_insert",
]

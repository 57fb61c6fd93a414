"""apslib: truly shift-equivariant U-Nets with adaptive polyphase sampling (APS).

Chaman & Dokmanic, "Truly shift equivariant convolutional neural networks with adaptive
polyphase upsampling", Asilomar 2021. Everything here is written from the paper's maths.
"""

from .filters import (
    Blur,
    BlurPool,
    BlurUpsample,
    binomial_filter_1d,
    binomial_filter_2d,
    blur,
    blur_pool,
    blur_upsample,
    zero_insert,
)
from .metrics import equivariance_error_map, equivariance_errors, phase_margins, roll2d
from .polyphase import (
    CRITERIA,
    PHASES,
    APSDown,
    APSUp,
    aps_down,
    aps_up,
    phase_shift,
    polyphase_components,
    polyphase_norms,
)
from .unet import (
    PAPER_CHANNELS,
    VARIANTS,
    UNet,
    UNetConfig,
    build_unet,
    calibrate_batchnorm,
    unet_from_config,
)

__version__ = "0.1.0"

__all__ = [
    "APSDown",
    "APSUp",
    "Blur",
    "BlurPool",
    "BlurUpsample",
    "CRITERIA",
    "PAPER_CHANNELS",
    "PHASES",
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
    "phase_margins",
    "phase_shift",
    "polyphase_components",
    "polyphase_norms",
    "roll2d",
    "unet_from_config",
    "zero_insert",
]

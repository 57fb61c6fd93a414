"""Building a model from its configuration: the one place that knows both families."""

from __future__ import annotations

from torch import nn

from .convert.fastmri import EquivariantFastMRIUnet
from .unet import UNet, UNetConfig

__all__ = ["unet_from_config"]


def unet_from_config(config: UNetConfig, drop_prob: float = 0.0) -> nn.Module:
    """The U-Net a :class:`~apslib.unet.UNetConfig` describes: :class:`~apslib.unet.UNet`,
    or for ``architecture="fastmri"`` :class:`~apslib.convert.EquivariantFastMRIUnet`
    (``drop_prob``: fastMRI's dropout). Both take ``forward(x, return_phases=False)`` and
    carry the resolved ``.config``."""
    if config.architecture == "fastmri":
        return EquivariantFastMRIUnet(
            config.in_channels,
            config.out_channels,
            config.channels[0],
            config.depth,
            drop_prob,
            variant=config.variant,
            filter_size=config.filter_size,
            criterion=config.criterion,
            padding_mode=config.padding_mode,
        )
    return UNet(config)

"""fastMRI's U-Net with APS or LPF-j sampling and circular padding (or its own sampling,
for training it here), the same ``state_dict`` (see :mod:`apslib.convert`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..layers import PolyphaseDown, PolyphaseUp
from ..unet import UNetConfig, check_size
from .layers import _circular_convs, check_options, selection_for

__all__ = ["FASTMRI_UNET_ARGS", "EquivariantFastMRIUnet", "aps_unet_from_fastmri"]

FASTMRI_UNET_ARGS = ("in_chans", "out_chans", "chans", "num_pool_layers", "drop_prob")


def _is_fastmri_unet(model) -> bool:
    return any(c.__module__.startswith("fastmri.") and c.__name__ == "Unet" for c in type(model).__mro__)


class EquivariantFastMRIUnet(nn.Module):
    """``fastmri.models.Unet`` with APS (or LPF-j) sampling and circular padding.

    Takes fastMRI's constructor arguments; its modules are fastMRI's own (same
    ``state_dict``), with a :class:`~apslib.layers.PolyphaseUp` (``layout="transposed"``,
    the ``ConvTranspose2d``'s parameters) in ``up_transpose_conv.*.layers.0`` and a
    :class:`~apslib.layers.PolyphaseDown` (average pool, no parameters) per level in
    ``pools``; the forward passes each level's grid from its pool to its upsampler.
    ``forward(image, return_phases=False)``; ``return_phases=True`` also returns the
    per-level phase indices (encoder order; ``None`` for fixed grids). ``config``: the
    resolved :class:`apslib.unet.UNetConfig` (``architecture="fastmri"``) that rebuilds it
    (:func:`apslib.models.unet_from_config`).

    ``variant="baseline"`` is fastMRI's own function (stride-2 average pool, transposed
    conv; ``padding_mode`` ``"zeros"``, fastMRI's, by default): the model the training stack
    trains as ``"fastMRI U-Net"`` and :func:`aps_unet_from_fastmri` converts.
    """

    def __init__(
        self,
        in_chans: int,
        out_chans: int,
        chans: int = 32,
        num_pool_layers: int = 4,
        drop_prob: float = 0.0,
        *,
        variant: str = "aps",
        filter_size: int = 1,
        criterion: str = "l2",
        padding_mode: str | None = None,
    ):
        super().__init__()
        from fastmri.models import Unet  # imported here: fastmri pulls in torchvision

        self.config = UNetConfig(
            variant=variant,
            depth=num_pool_layers,
            channels=tuple(chans * 2**k for k in range(num_pool_layers + 1)),
            filter_size=filter_size,
            criterion=criterion,
            in_channels=in_chans,
            out_channels=out_chans,
            padding_mode=padding_mode,
            architecture="fastmri",
        ).resolve()
        base = Unet(in_chans, out_chans, chans, num_pool_layers, drop_prob)
        self.in_chans, self.out_chans, self.chans = in_chans, out_chans, chans
        self.num_pool_layers, self.drop_prob = num_pool_layers, drop_prob
        self.variant, self.filter_size, self.criterion = variant, filter_size, criterion
        # the baseline is LPF-1 without its circular padding: stride-2 pool, plain transposed conv
        layers = "lpf" if variant == "baseline" else variant
        check_options(layers, filter_size, criterion)
        mode: Any = self.config.padding_mode  # resolved: a str (nn.Conv2d types it as a Literal)
        # fastMRI's registration order, so that the state_dict keys come in the same order
        self.down_sample_layers = base.down_sample_layers
        self.conv = base.conv
        self.up_conv = base.up_conv
        self.up_transpose_conv = base.up_transpose_conv
        self.pools = nn.ModuleList(
            PolyphaseDown(filter_size, selection_for(layers, criterion), pool="avg", padding_mode=mode)
            for _ in range(num_pool_layers)
        )
        for block in self.up_transpose_conv:
            block.layers[0] = PolyphaseUp.from_transposed(
                block.layers[0], filter_size=filter_size, padding_mode=mode
            )
        if mode == "circular":
            _circular_convs(self)
        elif mode != "zeros":
            for m in self.modules():
                if isinstance(m, nn.Conv2d) and any(m._reversed_padding_repeated_twice):
                    m.padding_mode = mode

    def check_input(self, image: torch.Tensor) -> None:
        if not isinstance(image, torch.Tensor) or image.dim() != 4:
            raise ValueError(f"input must be a (N, C, H, W) tensor, got {tuple(getattr(image, 'shape', ()))}")
        if image.shape[1] != self.in_chans:
            raise ValueError(f"input has {image.shape[1]} channels, the model expects {self.in_chans}")
        check_size(tuple(image.shape[-2:]), self.config)

    def forward(self, image: torch.Tensor, return_phases: bool = False):
        self.check_input(image)
        skips, phases, output = [], [], image
        for layer, pool in zip(self.down_sample_layers, self.pools):
            output = layer(output)
            skips.append(output)
            output, idx = pool(output)
            phases.append(idx)
        output = self.conv(output)
        for level, (block, conv) in enumerate(zip(self.up_transpose_conv, self.up_conv)):
            up, *rest = block.layers  # fastMRI's TransposeConvBlock, with the level's grid
            u = up(output, phases[-1 - level])
            for m in rest:
                u = m(u)
            output = conv(torch.cat([u, skips.pop()], dim=1))
        return (output, phases) if return_phases else output


def aps_unet_from_fastmri(
    model_or_kwargs, *, variant: str = "aps", filter_size: int = 1, criterion: str = "l2"
) -> EquivariantFastMRIUnet:
    """Convert a ``fastmri.models.Unet`` (or build one from its constructor kwargs).

    Args:
        model_or_kwargs: a ``fastmri.models.Unet`` or an :class:`EquivariantFastMRIUnet`
            of any variant (left untouched; its weights, device, dtype and train/eval mode
            are copied) or a mapping of fastMRI's constructor arguments.
        variant: ``"aps"`` (adaptive grids, exactly equivariant) or ``"lpf"`` (grid (0, 0)).
        filter_size: binomial blur size ``j`` in 1..7 after pooling and upsampling (1: none).
        criterion: APS-D norm, ``"l2"`` (the paper's), ``"l1"`` or ``"linf"``.

    Returns:
        :class:`EquivariantFastMRIUnet`, whose ``state_dict`` has fastMRI's keys and shapes.
    """
    if isinstance(model_or_kwargs, Mapping):
        model, kwargs = None, dict(model_or_kwargs)
    elif _is_fastmri_unet(model_or_kwargs) or isinstance(model_or_kwargs, EquivariantFastMRIUnet):
        model = model_or_kwargs
        kwargs = {k: getattr(model, k) for k in FASTMRI_UNET_ARGS}
    else:
        raise TypeError(
            "aps_unet_from_fastmri takes a fastmri.models.Unet (or an EquivariantFastMRIUnet, e.g. "
            "a trained 'fastMRI U-Net' run) or its constructor kwargs, got "
            f"{type(model_or_kwargs).__name__}; for other U-Nets use make_equivariant"
        )
    new = EquivariantFastMRIUnet(**kwargs, variant=variant, filter_size=filter_size, criterion=criterion)
    if model is not None:
        p = next(model.parameters())
        new.to(device=p.device, dtype=p.dtype).load_state_dict(model.state_dict())
        new.train(model.training)
    return new

"""fastMRI's end-to-end VarNet with APS (or LPF-j) U-Nets: exactly equivariant to integer
circular shifts of the full field of view, the same ``state_dict``.

:func:`aps_varnet_from_fastmri` deep-copies a ``fastmri.models.VarNet`` (or any module
holding fastMRI ``NormUnet`` s: a ``VarNetBlock``, a ``SensitivityModel``) and converts
every ``fastmri.models.Unet`` in it with :func:`~apslib.convert.aps_unet_from_fastmri`
(same keys, so the original's ``state_dict`` loads with ``strict=True``). Nothing else
needs converting; one thing is refused.

A shift ``S`` of the complex image (all coils) by ``(dy, dx)`` pixels, circular on the full
field of view, is the pointwise product of centred k-space with a phase ramp ``P``
(``fft2c`` = roll, FFT, roll, and rolls commute with rolls, for any side, even or odd;
:func:`apslib.subpixel.kspace_shift`). A column mask does not move: ``M (P k) = P (M k)``.
Each operation of VarNet (fastmri 0.3.0) then commutes with ``S`` (image) or ``P`` (k-space):

* ``SensitivityModel``: the low-frequency band (from the mask and ``num_low_frequencies``
  only) is a fixed pointwise k-space mask; ``ifft2c``; coils to batch; ``NormUnet``; the
  division by the root sum of squares over coils is pointwise (one coil: ``s = u / |u|``,
  a unit-modulus phase map);
* ``NormUnet``: complex <-> channel reshapes (channels only); mean and std over the whole
  image (shift invariant); the zero pad to multiples of 16 (see below); the U-Net;
* ``VarNetBlock``: soft data consistency ``where(mask, current - ref, 0) * dc_weight`` and
  ``current - soft_dc - model_term`` (pointwise in k-space); ``sens_reduce`` / ``sens_expand``
  (``ifft2c``, pointwise products with the maps, a sum over coils, ``fft2c``);
* the output ``rss(complex_abs(ifft2c(kspace_pred)), dim=1)``: the full field of view,
  pointwise (no crop).

So the whole network is as equivariant as its U-Nets and ``NormUnet``'s pad. The U-Nets
(zero padding, the fixed stride-2 grid of the average pool and the transposed conv) are
what break equivariance in the original: relative error 0.18-0.43 on random tiny VarNets
(1-2 cascades, chans 4, 2 pools, 32x32 and 32x48), for odd shifts and for multiples of 16
alike. Converted, the error is at most 3.1e-15 (float64, 132 shift/model pairs) for every
shift: APS is equivariant to all of them, LPF-j to multiples of ``2 ** max(pools, sens_pools)``.

``NormUnet`` zero-pads each side up to a multiple of 16 (centred) before its U-Net. That
pad is empty when the sides already are multiples of 16; otherwise it breaks equivariance
even with APS U-Nets (relative error ~0.38 at 40x40 and 36x44), so the converted model
refuses such sizes with a ``ValueError`` naming sizes that work (sides multiples of
``max(16, 2 ** pools)``). Dropping the pad instead would make the converted network exact at
any sides that are multiples of ``2 ** pools`` (measured 1.6e-15 at 40x40), but that is a
different function of the data from fastMRI's, so it is not done here.

The statement is about the network as a map: the coil images (object times sensitivities)
move together. Single-coil data (coil dimension 1: ``masked_kspace`` ``(B, 1, H, W, 2)``,
mask ``(B or 1, 1, 1, W, 1)`` boolean) run through fastmri's VarNet unchanged.
"""

from __future__ import annotations

import copy

from torch import nn

from .fastmri import _is_fastmri_unet, aps_unet_from_fastmri
from .layers import ConversionError

__all__ = ["NORM_UNET_MULTIPLE", "aps_varnet_from_fastmri"]

NORM_UNET_MULTIPLE = 16  # fastmri's NormUnet.pad: ((n - 1) | 15) + 1


def _is_fastmri(model, name: str) -> bool:
    return any(c.__module__.startswith("fastmri.") and c.__name__ == name for c in type(model).__mro__)


def _refuse_padding(module: nn.Module, args) -> None:
    """Forward pre-hook of a converted ``NormUnet``: its zero pad must be empty."""
    x = args[0]
    sides = tuple(int(n) for n in x.shape[-3:-1])  # (..., H, W, 2)
    m = max(NORM_UNET_MULTIPLE, 2 ** int(getattr(module.unet, "num_pool_layers")))  # noqa: B009
    bad = [n for n in dict.fromkeys(sides) if n % m]
    if bad:
        works = "; ".join(f"{max(n - n % m, m)} or {n - n % m + m} for {n}" for n in bad)
        raise ValueError(
            f"input size {'x'.join(map(str, sides))}: fastMRI's NormUnet zero-pads each side to a "
            f"multiple of {NORM_UNET_MULTIPLE}, which breaks shift equivariance, so the converted "
            f"VarNet takes only sides that are multiples of {m}. Sizes that work: {works} "
            "(crop or pad the field of view)"
        )


def aps_varnet_from_fastmri(
    varnet: nn.Module, *, variant: str = "aps", filter_size: int = 1, criterion: str = "l2"
) -> nn.Module:
    """Convert a ``fastmri.models.VarNet`` (left untouched) to a shift-equivariant copy.

    Every ``fastmri.models.Unet`` inside (the cascades' and the sensitivity model's
    ``NormUnet.unet``) becomes an :class:`~apslib.convert.EquivariantFastMRIUnet` (same
    weights, dtype, device, train/eval mode and ``state_dict`` keys); every ``NormUnet``
    gets a forward pre-hook that refuses sides its zero pad would change (see the module
    docstring). The result is still a ``VarNet``: same ``forward`` signature and output.

    Args:
        varnet: a fastMRI ``VarNet``, or any module holding fastMRI ``NormUnet`` s.
        variant, filter_size, criterion: as in :func:`~apslib.convert.aps_unet_from_fastmri`.

    Raises:
        TypeError: ``varnet`` is a bare ``fastmri.models.Unet`` or holds no ``NormUnet``.
        ConversionError: a fastMRI ``Unet`` outside a ``NormUnet`` (not a VarNet part).
    """
    if _is_fastmri_unet(varnet):
        raise TypeError("a bare fastmri.models.Unet: convert it with aps_unet_from_fastmri")
    norm_unets = [m for m in varnet.modules() if _is_fastmri(m, "NormUnet")]
    if not norm_unets:
        raise TypeError(
            f"{type(varnet).__name__} holds no fastmri NormUnet: aps_varnet_from_fastmri takes a "
            "fastmri.models.VarNet (or a VarNetBlock / SensitivityModel / NormUnet)"
        )
    inside = {id(m.unet) for m in norm_unets}
    stray = [name for name, m in varnet.named_modules() if _is_fastmri_unet(m) and id(m) not in inside]
    if stray:
        raise ConversionError(f"fastmri Unets outside a NormUnet, not converted here: {stray}")
    model = copy.deepcopy(varnet)
    for m in [m for m in model.modules() if _is_fastmri(m, "NormUnet")]:
        m.unet = aps_unet_from_fastmri(m.unet, variant=variant, filter_size=filter_size, criterion=criterion)
        m.register_forward_pre_hook(_refuse_padding)
    return model

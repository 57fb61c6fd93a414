"""Weight-compatible conversion of U-Nets to APS (truly shift equivariant) or LPF-j.

:func:`aps_unet_from_fastmri` converts ``fastmri.models.Unet`` (whose ``forward`` pools
with ``F.avg_pool2d``) into :class:`EquivariantFastMRIUnet`: fastMRI's own modules, the same
``state_dict`` keys and shapes. :func:`make_equivariant` converts a U-Net built from
``nn.MaxPool2d`` / ``nn.AvgPool2d`` and ``nn.ConvTranspose2d`` *modules* (kernel 2, stride 2).
The conversion changes only this:

* padded convolutions pad circularly (:class:`apslib.layers.Conv2d`);
* a 2x2 pool at stride 2 -> :class:`PhasePool2d`: the pool at stride 1 on the map padded
  circularly by one pixel at the bottom/right (the average is ``blur`` of size 2), a
  binomial blur if ``filter_size = j >= 2``, then APS-D (``variant="aps"``: per sample the
  polyphase component of largest norm) or the grid ``(0, 0)`` (``"lpf"``: LPF-j). On
  ``(0, 0)`` without blur this is the stride-2 pool (that component never reads the pad);
* ``ConvTranspose2d(k=2, s=2)`` -> :class:`PhaseConvTranspose2d`: APS-U on the grid
  ``(i, j)`` of its encoder level, then the k=2 conv. The transposed conv is zero insertion
  on ``(0, 0)`` then a k=2 conv (flipped kernel, padded top/left), so this is its output
  shifted circularly by ``(i, j)`` (then the blur, gain 1): ``PolyphaseUp``'s fast path
  with ``up_pad="top_left"``. ``PolyphaseUp`` stores a ``Conv2d`` weight ``[out, in, 2, 2]``
  and always a bias; this ``ConvTranspose2d`` subclass keeps the original ``weight``
  ``[in, out, 2, 2]`` (and optional ``bias``) under its key.

The converted layers of one model share a :class:`PhaseStack`: each pool pushes its
``(B,)`` phase indices (order of ``apslib.polyphase.PHASES``; ``None`` for LPF), each
upsampler pops the latest (the decoder meets the levels in reverse order); unpaired levels
raise ``RuntimeError``. :func:`forced_phase` forces the grids, e.g. to ``(0, 0)``: the
original model with circular padding (and blurs). InstanceNorm, BatchNorm (eval), pointwise
activations and dropout (eval) commute with circular shifts, so in eval mode a converted APS
model is equivariant to every integer circular shift (Proposition 2 of Chaman & Dokmanic
2021), an LPF one to multiples of ``2 ** levels``. Input sides must be multiples of
``2 ** levels``: fastMRI's reflect padding of odd sizes is refused, not converted.

Modules: :mod:`~apslib.convert.layers` (the converted layers, the stack, ``forced_phase``),
:mod:`~apslib.convert.fastmri` (fastMRI's U-Net; ``variant="baseline"`` is its own function,
which the training stack trains as ``"fastMRI U-Net"``), :mod:`~apslib.convert.generic`
(``make_equivariant``), :mod:`~apslib.convert.varnet` (:func:`aps_varnet_from_fastmri`:
E2E-VarNet with converted U-Nets, exactly equivariant on the full field of view).
"""

from .fastmri import FASTMRI_UNET_ARGS, EquivariantFastMRIUnet, aps_unet_from_fastmri
from .generic import make_equivariant
from .layers import (
    CONVERT_VARIANTS,
    ConversionError,
    PhaseConvTranspose2d,
    PhasePool2d,
    PhaseStack,
    forced_phase,
    phase_stacks,
)
from .varnet import aps_varnet_from_fastmri

__all__ = [
    "CONVERT_VARIANTS",
    "FASTMRI_UNET_ARGS",
    "ConversionError",
    "PhaseStack",
    "PhasePool2d",
    "PhaseConvTranspose2d",
    "EquivariantFastMRIUnet",
    "aps_unet_from_fastmri",
    "aps_varnet_from_fastmri",
    "make_equivariant",
    "forced_phase",
    "phase_stacks",
]

"""Weight-compatible conversion of U-Nets to APS (truly shift equivariant) or LPF-j.

:func:`aps_unet_from_fastmri` converts ``fastmri.models.Unet`` (whose ``forward`` pools
with ``F.avg_pool2d``) into :class:`EquivariantFastMRIUnet`: fastMRI's own modules, the same
``state_dict`` keys and shapes. :func:`make_equivariant` converts a U-Net built from
``nn.MaxPool2d`` / ``nn.AvgPool2d`` and ``nn.ConvTranspose2d`` *modules* (kernel 2, stride 2).
The conversion changes only this:

* padded convolutions pad circularly (:class:`apslib.layers.Conv2d`);
* a 2x2 pool at stride 2 -> :class:`~apslib.layers.PolyphaseDown`: the pool at stride 1
  on the map padded circularly by one pixel at the bottom/right, a binomial blur if
  ``filter_size = j >= 2``, then APS-D (``variant="aps"``: per sample the polyphase
  component of largest norm) or the grid ``(0, 0)`` (``"lpf"``: LPF-j). On ``(0, 0)``
  without blur this is the stride-2 pool (that component never reads the pad);
* ``ConvTranspose2d(k=2, s=2)`` -> :class:`~apslib.layers.PolyphaseUp` with
  ``layout="transposed"`` (the original ``weight [in, out, 2, 2]`` and optional ``bias``
  under their keys): APS-U on the grid ``(i, j)`` of its encoder level, then the k=2 conv
  padded top/left, i.e. the transposed conv's output shifted circularly by ``(i, j)``,
  then the blur (gain 1).

These are the layers of apslib's own U-Net (:mod:`apslib.layers`), with the same selection
rules. :class:`EquivariantFastMRIUnet` passes each level's grid from its pool to its
upsampler in its forward, like :class:`apslib.unet.UNet`. :func:`make_equivariant` cannot
change a user's forward, so its layers (:class:`PhasePool2d`, :class:`PhaseConvTranspose2d`,
subclasses of the two) hand the grid over through a :class:`PhaseStack`: each pool pushes
its ``(B,)`` phase indices, each upsampler pops the latest (the decoder meets the levels in
reverse order); unpaired levels raise ``RuntimeError``.
:func:`apslib.layers.forced_phase` forces the grids, e.g. to ``(0, 0)``: the original model
with circular padding (and blurs). InstanceNorm, BatchNorm (eval), pointwise activations
and dropout (eval) commute with circular shifts, so in eval mode a converted APS model is
equivariant to every integer circular shift (Proposition 2 of Chaman & Dokmanic 2021), an
LPF one to multiples of ``2 ** levels``. Input sides must be multiples of ``2 ** levels``:
fastMRI's reflect padding of odd sizes is refused, not converted.

Modules: :mod:`~apslib.convert.layers` (the stack and its two layers),
:mod:`~apslib.convert.fastmri` (fastMRI's U-Net; ``variant="baseline"`` is its own function,
which the training stack trains as ``"fastMRI U-Net"``), :mod:`~apslib.convert.generic`
(``make_equivariant``), :mod:`~apslib.convert.varnet` (:func:`aps_varnet_from_fastmri`:
E2E-VarNet with converted U-Nets, exactly equivariant on the full field of view),
:mod:`~apslib.convert.published` (:func:`load_fastmri_unet`: fastMRI's published U-Net
weights, a state-dict file checked key by key, as fastMRI's function or converted).
fastmri itself is imported only when a fastMRI model is built.
"""

from .fastmri import FASTMRI_UNET_ARGS, EquivariantFastMRIUnet, aps_unet_from_fastmri
from .generic import make_equivariant
from .layers import (
    CONVERT_VARIANTS,
    ConversionError,
    PhaseConvTranspose2d,
    PhasePool2d,
    PhaseStack,
    sampling_layers,
)
from .published import (
    PUBLISHED_UNET,
    StateDictError,
    check_fastmri_state_dict,
    load_fastmri_unet,
    read_fastmri_state_dict,
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
    "sampling_layers",
    "PUBLISHED_UNET",
    "StateDictError",
    "check_fastmri_state_dict",
    "read_fastmri_state_dict",
    "load_fastmri_unet",
]

"""fastMRI's published U-Net weights: read a state-dict file, check its layout, build the model.

fastMRI publishes its single-coil knee U-Net (``knee_sc_leaderboard_state_dict.pt``) as the
``state_dict`` of ``fastmri.models.Unet(in_chans=1, out_chans=1, chans=256,
num_pool_layers=4, drop_prob=0.0)`` (:data:`PUBLISHED_UNET`). :func:`read_fastmri_state_dict`
reads such a file, a PyTorch Lightning checkpoint of fastMRI's ``UnetModule`` (the weights
under ``state_dict`` with keys prefixed ``unet.``) or a ``DataParallel`` one (``module.``),
and checks every key and shape against the layout; :func:`load_fastmri_unet` builds the
model from it, as fastMRI's own function (``variant="baseline"``) or converted
(``"aps"``/``"lpf"``, :func:`~apslib.convert.aps_unet_from_fastmri`): the same weights, no
retraining. A run folder of the training stack is made from the file by
``python -m apslib.published`` (:mod:`apslib.published`).

Every problem raises :class:`StateDictError`, one line that names the file and what to do:
a file that is not a state dict (or holds pickled Python objects, which are not unpickled
unless ``trust_pickle=True``), missing or unexpected keys, a first key of another shape
(with the layout the file seems to have, when it is another fastMRI U-Net).
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch

from .fastmri import FASTMRI_UNET_ARGS, EquivariantFastMRIUnet, aps_unet_from_fastmri

__all__ = [
    "PUBLISHED_UNET",
    "StateDictError",
    "layout_text",
    "infer_fastmri_layout",
    "check_fastmri_state_dict",
    "read_fastmri_state_dict",
    "load_fastmri_unet",
]

# fastMRI's published single-coil knee U-Net (fastmri_examples/unet/run_pretrained_unet_inference.py)
PUBLISHED_UNET: dict[str, int | float] = {
    "in_chans": 1,
    "out_chans": 1,
    "chans": 256,
    "num_pool_layers": 4,
    "drop_prob": 0.0,
}
_PREFIXES = ("unet.", "module.")  # fastMRI's Lightning UnetModule; DataParallel
_TRUST = "pass --trust-pickle (trust_pickle=True) only if you trust the file's source"


class StateDictError(ValueError):
    """A file that is not a usable fastMRI U-Net state dict; the one-line message says why."""


def layout_text(layout: Mapping) -> str:
    """``fastmri.models.Unet(in_chans=1, out_chans=1, chans=256, num_pool_layers=4, drop_prob=0.0)``."""
    args = ", ".join(f"{k}={layout[k]}" for k in FASTMRI_UNET_ARGS if k in layout)
    return f"fastmri.models.Unet({args})"


def _full_layout(layout: Mapping | None) -> dict:
    full = {**PUBLISHED_UNET, **(layout or {})}
    unknown = sorted(set(full) - set(FASTMRI_UNET_ARGS))
    if unknown:
        raise ValueError(f"unknown fastmri.models.Unet argument(s) {unknown}: use {list(FASTMRI_UNET_ARGS)}")
    return full


def _expected_shapes(layout: Mapping) -> dict[str, tuple[int, ...]]:
    """The ``state_dict`` shapes of ``fastmri.models.Unet(**layout)`` (built on the meta
    device: nothing is allocated or initialised)."""
    from fastmri.models import Unet  # imported here: fastmri pulls in torchvision

    with torch.device("meta"):
        model = Unet(**layout)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def infer_fastmri_layout(state_dict: Mapping) -> dict | None:
    """The ``fastmri.models.Unet`` arguments whose layout ``state_dict``'s keys and shapes
    suggest (``drop_prob`` is not stored: 0.0), or ``None`` if it is none of them."""
    levels = {int(m.group(1)) for k in state_dict if (m := re.match(r"down_sample_layers\.(\d+)\.", k))}
    first = state_dict.get("down_sample_layers.0.layers.0.weight")
    last = state_dict.get(f"up_conv.{max(levels)}.1.weight") if levels else None
    if not isinstance(first, torch.Tensor) or not isinstance(last, torch.Tensor) or first.dim() != 4:
        return None
    return {
        "in_chans": int(first.shape[1]),
        "out_chans": int(last.shape[0]),
        "chans": int(first.shape[0]),
        "num_pool_layers": max(levels) + 1,
        "drop_prob": 0.0,
    }


def _strip_prefixes(state_dict: dict) -> dict:
    for prefix in _PREFIXES:
        if state_dict and all(isinstance(k, str) and k.startswith(prefix) for k in state_dict):
            state_dict = {k[len(prefix) :]: v for k, v in state_dict.items()}
    if any(isinstance(k, str) and k.startswith("unet.") for k in state_dict):
        # a Lightning module holding more than the U-Net: keep the U-Net's weights
        state_dict = {k[len("unet.") :]: v for k, v in state_dict.items() if k.startswith("unet.")}
    return state_dict


def _hint(state_dict: Mapping, layout: Mapping) -> str:
    """What to pass when the file is another fastMRI U-Net."""
    found = infer_fastmri_layout(state_dict)
    if found is None or all(
        found[k] == layout[k] for k in ("in_chans", "out_chans", "chans", "num_pool_layers")
    ):
        return f"it is not a state dict of {layout_text(layout)}"
    flags = f"--chans {found['chans']} --num-pool-layers {found['num_pool_layers']}"
    return (
        f"it looks like {layout_text(found)}: pass {flags} (layout={{'chans': {found['chans']}, "
        f"'num_pool_layers': {found['num_pool_layers']}}}) if that is the model"
    )


def check_fastmri_state_dict(
    state_dict, layout: Mapping | None = None, *, source: str = "the state dict"
) -> dict:
    """``state_dict`` checked against ``fastmri.models.Unet(**layout)`` (default
    :data:`PUBLISHED_UNET`; ``layout`` may give only the arguments that differ), as a new
    dict of float32 tensors in fastMRI's key order.

    A Lightning checkpoint's ``state_dict`` entry (keys ``unet.*``) or a ``DataParallel``
    one (``module.*``) is unwrapped first. :class:`StateDictError` names ``source`` and
    the first missing, unexpected or mis-shaped key (with the expected layout), or a
    tensor that is not floating point.
    """
    full = _full_layout(layout)
    if isinstance(state_dict, Mapping) and isinstance(state_dict.get("state_dict"), Mapping):
        state_dict = state_dict["state_dict"]  # a Lightning checkpoint
    if not isinstance(state_dict, Mapping):
        raise StateDictError(
            f"{source} holds a {type(state_dict).__name__}, not a state dict (a mapping of parameter "
            "names to tensors): save model.state_dict() of a fastmri.models.Unet"
        )
    if {"unet", "model", "format"} <= set(state_dict):
        raise StateDictError(
            f"{source} is an apslib run checkpoint, not a fastMRI state dict: use its run folder "
            "directly (apslib.training.load_model)"
        )
    sd = _strip_prefixes(dict(state_dict))
    expected = _expected_shapes(full)
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) (first: {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) (first: {unexpected[0]!s})")
        raise StateDictError(f"{source}: {' and '.join(parts)}; {_hint(sd, full)}")
    out = {}
    for key, shape in expected.items():
        value = sd[key]
        if not isinstance(value, torch.Tensor):
            raise StateDictError(f"{source}: {key} is a {type(value).__name__}, not a tensor")
        if tuple(value.shape) != shape:
            raise StateDictError(
                f"{source}: {key} has shape {tuple(value.shape)} where {layout_text(full)} has "
                f"{shape}; {_hint(sd, full)}"
            )
        if not value.is_floating_point():
            raise StateDictError(f"{source}: {key} holds {value.dtype}, not floating-point weights")
        out[key] = value.to(torch.float32)
    return out


def _unpickled_global(err: BaseException) -> str | None:
    m = re.search(r"GLOBAL ([\w.]+)", str(err)) or re.search(r"global '?([\w.]+)", str(err))
    return m.group(1) if m else None


def _load(file: Path, trust_pickle: bool):
    """``torch.load`` of ``file`` on the CPU, tensors memory-mapped when the format allows."""
    for mmap in (True, False):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return torch.load(file, map_location="cpu", weights_only=not trust_pickle, mmap=mmap)
        except RuntimeError as err:
            if mmap and "mmap" in str(err):
                continue  # a file of the legacy (pre-zip) format: read it whole
            raise
    raise AssertionError("unreachable")


def read_fastmri_state_dict(path, layout: Mapping | None = None, *, trust_pickle: bool = False) -> dict:
    """The checked float32 ``state_dict`` of fastMRI's U-Net stored in ``path``
    (:func:`check_fastmri_state_dict`; ``layout`` default :data:`PUBLISHED_UNET`).

    The file is read with ``torch.load(weights_only=True)``: tensors and plain containers
    only. A file that pickles Python objects (a whole model, a Lightning checkpoint with
    hyper-parameter objects) is refused with a line naming the first object, unless
    ``trust_pickle=True`` (only for files from a source you trust: unpickling runs code).
    """
    file = Path(path).expanduser()
    if not file.is_file():
        what = "a folder" if file.is_dir() else "no such file"
        raise StateDictError(
            f"state dict {file}: {what}; give the .pt file (e.g. knee_sc_leaderboard_state_dict.pt)"
        )
    try:
        obj = _load(file, trust_pickle)
    except MemoryError:
        raise
    except Exception as err:  # torch, zip and pickle errors of a damaged or foreign file all differ
        name = _unpickled_global(err) if isinstance(err, pickle.UnpicklingError) else None
        if name is not None:
            raise StateDictError(
                f"{file} pickles the Python object {name}, not only tensors: if it is a whole model, "
                f"save its state_dict() instead; {_TRUST}"
            ) from err
        why = "it does not unpickle" if isinstance(err, pickle.UnpicklingError) else type(err).__name__
        raise StateDictError(
            f"{file} is not a readable PyTorch state dict ({why}): download it again, or save "
            "model.state_dict() with torch.save"
        ) from err
    if isinstance(obj, torch.nn.Module):
        raise StateDictError(
            f"{file} holds a whole {type(obj).__name__} model: save its state_dict() instead"
        )
    return check_fastmri_state_dict(obj, layout, source=str(file))


def load_fastmri_unet(
    state_dict_or_path,
    layout: Mapping | None = None,
    *,
    variant: str = "baseline",
    filter_size: int = 1,
    trust_pickle: bool = False,
) -> EquivariantFastMRIUnet:
    """fastMRI's U-Net with the weights of ``state_dict_or_path`` (a file, or a state dict),
    in eval mode on the CPU.

    ``variant="baseline"``: fastMRI's own function (zero padding, stride-2 grid), as
    ``fastmri.models.Unet``; ``"aps"`` / ``"lpf"`` (with blur ``filter_size``): converted by
    :func:`~apslib.convert.aps_unet_from_fastmri` (circular padding, APS: exactly
    equivariant to integer circular shifts). ``layout``: the ``fastmri.models.Unet``
    arguments that differ from :data:`PUBLISHED_UNET`. The model is built on the meta
    device and takes the loaded tensors (no random initialisation of its ~500M weights).
    """
    full = _full_layout(layout)
    if isinstance(state_dict_or_path, (str, Path)):
        sd = read_fastmri_state_dict(state_dict_or_path, full, trust_pickle=trust_pickle)
    else:
        sd = check_fastmri_state_dict(state_dict_or_path, full)
    with torch.device("meta"):
        if variant == "baseline":
            model = EquivariantFastMRIUnet(**full, variant="baseline")
        else:
            model = aps_unet_from_fastmri(full, variant=variant, filter_size=filter_size)
    model.load_state_dict(sd, assign=True)
    left = [k for k, v in [*model.named_parameters(), *model.named_buffers()] if v.is_meta]
    if left:
        raise RuntimeError(f"internal error: {left[:3]} were not loaded from the state dict")
    return model.eval()

"""Model names: the one naming rule of the U-Net family.

``model_name("aps", 3)`` -> ``"APS-3"``; fastMRI's U-Net (``architecture="fastmri"``, see
:mod:`apslib.convert`) is ``"fastMRI U-Net"`` and, converted, ``"fastMRI U-Net APS-3"``;
:func:`parse_model_name` reads back every name it makes (and the paper's spellings,
case-insensitively, and run-folder slugs);
:attr:`apslib.unet.UNetConfig.name` and the run folders (:mod:`apslib.training.runs`) use these
functions, so a model has one name everywhere.
"""

from __future__ import annotations

import re

__all__ = ["PAPER_MODELS", "FASTMRI_PREFIX", "model_name", "parse_model_name", "run_slug", "slugify"]

# the models of the paper's Tables 1, 2 and 4
PAPER_MODELS = ("Baseline", "LPF-2", "LPF-3", "Baseline + DA", "APS", "APS-2", "APS-3")
_MAX_FILTER = 7  # filters.MAX_FILTER_SIZE; names outside 1..7 are rejected here already

_BASES = {"baseline": "Baseline", "lpf": "LPF", "aps": "APS", "af": "AF", "lps": "LPS"}
FASTMRI_PREFIX = "fastMRI U-Net"  # the name of fastmri.models.Unet trained here
_NAME_RE = re.compile(
    r"^(fastmri[\s-]*u[\s-]*net)?[\s-]*(baseline|lpf|aps|af|lps)?(?:\s*-?\s*(\d+|relu))?"
    r"(\s*[-+]\s*da)?(\s*[-+]\s*sda)?$",
    re.IGNORECASE,
)


def model_name(
    variant: str,
    filter_size: int = 1,
    shift_augment: bool = False,
    subpixel_augment: bool = False,
    architecture: str = "apslib",
    activation: str | None = None,
) -> str:
    """Paper-style name: ``Baseline``, ``LPF-3``, ``APS``, ``APS-2``, ``Baseline + DA``, and
    ``APS-3 + SDA`` (trained with sub-pixel shift augmentation; beyond the paper). The
    alias-free U-Net (``variant="af"``) is ``AF`` (``activation`` ``"af-poly"`` or ``None``)
    or ``AF-ReLU`` (``"af-relu"``); learnable polyphase sampling (``"lps"``) is ``LPS``,
    ``LPS-3``.

    ``LPF`` always carries its blur size (``LPF-1`` is the unblurred LPF U-Net); ``APS``
    and ``LPS`` only from 2 on. ``architecture="fastmri"`` (``fastmri.models.Unet``'s layers) prefixes
    ``fastMRI U-Net``, and its baseline is that alone: ``fastMRI U-Net``, ``fastMRI U-Net
    APS``, ``fastMRI U-Net LPF-3 + DA``. :func:`parse_model_name` reads every name back.
    """
    if variant not in _BASES:
        raise ValueError(f"unknown variant {variant!r}: use one of {list(_BASES)}")
    if architecture not in ("apslib", "fastmri"):
        raise ValueError(f"unknown architecture {architecture!r}: use 'apslib' or 'fastmri'")
    base = _BASES[variant]
    name = f"{base}-{int(filter_size)}" if filter_size > 1 or variant == "lpf" else base
    if variant == "af":
        if architecture != "apslib" or filter_size != 1:
            raise ValueError("the alias-free U-Net (AF) has apslib's layers and no blur size")
        if activation not in (None, "af-poly", "af-relu"):
            raise ValueError(f"AF's activation is 'af-poly' or 'af-relu', got {activation!r}")
        name = "AF-ReLU" if activation == "af-relu" else "AF"
    if variant == "lps" and architecture != "apslib":
        raise ValueError("LPS (learnable polyphase sampling) has apslib's layers")
    if architecture == "fastmri":
        name = FASTMRI_PREFIX if variant == "baseline" else f"{FASTMRI_PREFIX} {name}"
    name = f"{name} + DA" if shift_augment else name
    return f"{name} + SDA" if subpixel_augment else name


def parse_model_name(name: str) -> dict:
    """``"APS-3"`` -> ``{"variant": "aps", "filter_size": 3, "shift_augment": False,
    "subpixel_augment": False, "architecture": "apslib", "activation": None}``.

    Accepts the paper's names (``Baseline``, ``LPF-j``, ``Baseline + DA``, ``APS``,
    ``APS-j``, and ``+ DA`` after any of them), then ``+ SDA`` (sub-pixel shift
    augmentation), each optionally after ``fastMRI U-Net`` (``fastmri.models.Unet``'s
    layers; alone: its own sampling), case-insensitively, and their slugs
    (``baseline-da``, ``aps-3-sda``, ``fastmri-u-net-aps``); ``j`` is the blur size, 1..7.
    ``LPS`` and ``LPS-j`` are learnable polyphase sampling. ``AF`` and ``AF-ReLU`` are the
    alias-free U-Nets (``activation`` ``"af-poly"`` /
    ``"af-relu"``; ``None`` for every other name: the variant's ReLU).
    """
    m = _NAME_RE.match(str(name).strip())
    if not m or not (m.group(1) or m.group(2)):
        raise ValueError(
            f"unknown model name {name!r}: use Baseline, LPF-<j>, APS, APS-<j> (j = blur "
            f"size 1..{_MAX_FILTER}), LPS, LPS-<j>, AF or AF-ReLU, optionally after '{FASTMRI_PREFIX} ' and "
            f"followed by ' + DA' and/or ' + SDA'; the paper's models are {list(PAPER_MODELS)}"
        )
    fastmri, variant, size = bool(m.group(1)), (m.group(2) or "baseline").lower(), m.group(3)
    relu = bool(size) and size.lower() == "relu"
    if variant == "lps" and fastmri:
        raise ValueError(f"{name!r}: LPS is built from apslib's layers; use LPS or LPS-<j>")
    if variant == "af" and fastmri:
        raise ValueError(f"{name!r}: the alias-free U-Net is built from apslib's layers; use AF or AF-ReLU")
    if variant == "af" and size and not relu:
        raise ValueError(f"{name!r}: the alias-free U-Net has no blur size; use AF or AF-ReLU")
    if relu and variant != "af":
        raise ValueError(f"{name!r}: '-ReLU' names the alias-free U-Net's ReLU form; use AF-ReLU")
    filter_size = int(size) if size and not relu else 1
    if variant == "baseline" and size:
        raise ValueError(f"{name!r}: the Baseline has no blur; use LPF-{size}")
    if variant == "lpf" and not size:
        raise ValueError(f"{name!r}: LPF needs its blur size, e.g. LPF-3")
    if not 1 <= filter_size <= _MAX_FILTER:
        raise ValueError(f"{name!r}: the blur size must be in 1..{_MAX_FILTER}")
    return {
        "variant": variant,
        "filter_size": filter_size,
        "shift_augment": bool(m.group(4)),
        "subpixel_augment": bool(m.group(5)),
        "architecture": "fastmri" if fastmri else "apslib",
        "activation": ("af-relu" if relu else "af-poly") if variant == "af" else None,
    }


def slugify(name: str) -> str:
    """Folder name of a run: ``"Baseline + DA"`` -> ``"baseline-da"``."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")
    if not slug:
        raise ValueError(f"cannot make a folder name from {name!r}")
    return slug


def run_slug(name: str, seed: int = 0) -> str:
    """Folder name of the run of model ``name`` trained with ``seed``: the :func:`slugify`
    of the name, plus ``-seed<k>`` for ``seed`` k > 0 (``"APS-2", 1`` -> ``"aps-2-seed1"``).
    Seed 0 keeps the plain slug (the folder of a one-seed study is the model's slug)."""
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return slugify(name) + (f"-seed{seed}" if seed else "")

"""Model names: the one naming rule of the U-Net family.

``model_name("aps", 3)`` -> ``"APS-3"``; :func:`parse_model_name` reads back every name it
makes (and the paper's spellings, case-insensitively, and run-folder slugs);
:attr:`apslib.unet.UNetConfig.name` and the run folders (:mod:`apslib.runs`) use these
functions, so a model has one name everywhere.
"""

from __future__ import annotations

import re

__all__ = ["PAPER_MODELS", "model_name", "parse_model_name", "run_slug", "slugify"]

# the models of the paper's Tables 1, 2 and 4
PAPER_MODELS = ("Baseline", "LPF-2", "LPF-3", "Baseline + DA", "APS", "APS-2", "APS-3")
_MAX_FILTER = 7  # filters.MAX_FILTER_SIZE; names outside 1..7 are rejected here already

_BASES = {"baseline": "Baseline", "lpf": "LPF", "aps": "APS"}
_NAME_RE = re.compile(r"^(baseline|lpf|aps)(?:\s*-?\s*(\d+))?(\s*[-+]\s*da)?(\s*[-+]\s*sda)?$", re.IGNORECASE)


def model_name(
    variant: str, filter_size: int = 1, shift_augment: bool = False, subpixel_augment: bool = False
) -> str:
    """Paper-style name: ``Baseline``, ``LPF-3``, ``APS``, ``APS-2``, ``Baseline + DA``, and
    ``APS-3 + SDA`` (trained with sub-pixel shift augmentation; beyond the paper).

    ``LPF`` always carries its blur size (``LPF-1`` is the unblurred LPF U-Net); ``APS``
    only from 2 on. :func:`parse_model_name` reads every name this returns back.
    """
    if variant not in _BASES:
        raise ValueError(f"unknown variant {variant!r}: use one of {list(_BASES)}")
    base = _BASES[variant]
    name = f"{base}-{int(filter_size)}" if filter_size > 1 or variant == "lpf" else base
    name = f"{name} + DA" if shift_augment else name
    return f"{name} + SDA" if subpixel_augment else name


def parse_model_name(name: str) -> dict:
    """``"APS-3"`` -> ``{"variant": "aps", "filter_size": 3, "shift_augment": False,
    "subpixel_augment": False}``.

    Accepts the paper's names (``Baseline``, ``LPF-j``, ``Baseline + DA``, ``APS``,
    ``APS-j``, and ``+ DA`` after any of them), then ``+ SDA`` (sub-pixel shift
    augmentation), case-insensitively, and their slugs (``baseline-da``, ``aps-3-sda``);
    ``j`` is the blur size, 1..7.
    """
    m = _NAME_RE.match(str(name).strip())
    if not m:
        raise ValueError(
            f"unknown model name {name!r}: use Baseline, LPF-<j>, APS, APS-<j> (j = blur "
            f"size 1..{_MAX_FILTER}), optionally followed by ' + DA' and/or ' + SDA'; the paper's models are "
            f"{list(PAPER_MODELS)}"
        )
    variant = m.group(1).lower()
    filter_size = int(m.group(2)) if m.group(2) else 1
    if variant == "baseline" and m.group(2):
        raise ValueError(f"{name!r}: the Baseline has no blur; use LPF-{m.group(2)}")
    if variant == "lpf" and not m.group(2):
        raise ValueError(f"{name!r}: LPF needs its blur size, e.g. LPF-3")
    if not 1 <= filter_size <= _MAX_FILTER:
        raise ValueError(f"{name!r}: the blur size must be in 1..{_MAX_FILTER}")
    return {
        "variant": variant,
        "filter_size": filter_size,
        "shift_augment": bool(m.group(3)),
        "subpixel_augment": bool(m.group(4)),
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
    Seed 0 keeps the plain slug, so run folders made before seeds existed stay valid."""
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return slugify(name) + (f"-seed{seed}" if seed else "")

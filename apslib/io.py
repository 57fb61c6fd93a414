"""Atomic file writes: a temporary file in the same folder, then a rename.

A reader never sees a half-written file, and an interrupted write leaves the previous
version in place.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_text", "atomic_write_json"]


def atomic_write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (creates the parent folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_json(path, obj, **kwargs) -> Path:
    """``json.dumps(obj, indent=2, default=str)`` written atomically to ``path``."""
    kwargs.setdefault("indent", 2)
    kwargs.setdefault("default", str)
    return atomic_write_text(path, json.dumps(obj, **kwargs) + "\n")

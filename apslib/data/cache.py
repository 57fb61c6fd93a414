"""What the validator found per file, kept so that a large dataset is read once.

An entry is keyed by the file's resolved path, its size and its ``mtime_ns``: a file that
is changed, replaced or touched is checked again. Entries live in memory (per process) and
in one small JSON file per split folder, written atomically into the cache folder
(:func:`cache_dir`), so the next process reads no volume that was checked before.

The cache is not kept beside the data: fastmri's own ``SliceDataset`` opens every file of a
split folder as HDF5 (a stray file there breaks it), and data folders are often read-only or
shared. Cache folder: ``$APSLIB_CACHE_DIR`` if set (``off``: memory only), else
``$XDG_CACHE_HOME/apslib`` or ``~/.cache/apslib``; when it cannot be written the cache stays
in memory. Writing a folder's file also removes the files of folders that no longer exist.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..io import atomic_write_json

__all__ = ["CACHE_ENV", "VERSION", "cache_dir", "cache_file", "lookup", "remember", "save", "forget"]

CACHE_ENV = "APSLIB_CACHE_DIR"
VERSION = 1  # raise when the checks or the record change: older entries are then ignored
_SUBDIR = "validated"

# resolved split folder -> resolved file path -> (size, mtime_ns, record)
_memory: dict[str, dict[str, tuple[int, int, dict]]] = {}
_dirty: set[str] = set()  # folders with entries not yet written


def cache_dir() -> Path | None:
    """The folder of the cache files, or ``None`` when ``$APSLIB_CACHE_DIR`` is ``off``."""
    env = os.environ.get(CACHE_ENV)
    if env is not None:
        return None if env.strip().lower() in ("", "off", "none", "0") else Path(env).expanduser() / _SUBDIR
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "apslib" / _SUBDIR


def cache_file(folder) -> Path | None:
    """The cache file of a split folder (``None``: memory only)."""
    where = cache_dir()
    if where is None:
        return None
    key = hashlib.sha256(str(Path(folder).resolve()).encode()).hexdigest()[:20]
    return where / f"{key}.json"


def _read(path: Path) -> dict:
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return content if isinstance(content, dict) and content.get("version") == VERSION else {}


def _entries(folder: Path) -> dict[str, tuple[int, int, dict]]:
    """The memory entries of a split folder, its cache file read in once per process."""
    key = str(folder.resolve())
    if key in _memory:
        return _memory[key]
    entries = _memory[key] = {}
    path = cache_file(folder)
    if path is not None:
        for name, entry in _read(path).get("volumes", {}).items():
            try:
                entries[name] = (int(entry["size"]), int(entry["mtime_ns"]), dict(entry["info"]))
            except (KeyError, TypeError, ValueError):
                continue  # a damaged entry is checked again
    return entries


def lookup(folder: Path, path: Path, st: os.stat_result) -> dict | None:
    """The record of ``path`` (a file of split folder ``folder``; stat result ``st``) if it
    was checked at this resolved path, size and ``mtime_ns``; else ``None``."""
    hit = _entries(folder).get(str(path.resolve()))
    if hit is not None and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
        return hit[2]
    return None


def remember(folder: Path, path: Path, st: os.stat_result, record: dict) -> None:
    """Keep the record of ``path`` in memory; :func:`save` writes the folder's file."""
    _entries(folder)[str(path.resolve())] = (int(st.st_size), int(st.st_mtime_ns), record)
    _dirty.add(str(folder.resolve()))


def save(folder) -> bool:
    """Write the memory entries of the files in ``folder`` to its cache file (atomically).

    Returns False (the cache stays in memory) when there is no cache folder or it cannot be
    written. Files of folders that no longer exist are removed on the way."""
    folder = Path(folder).resolve()
    path = cache_file(folder)
    if path is None or str(folder) not in _dirty:
        return path is not None
    _dirty.discard(str(folder))
    volumes = {
        name: {"size": size, "mtime_ns": mtime, "info": record}
        for name, (size, mtime, record) in sorted(_entries(folder).items())
        if Path(name).exists()
    }
    try:
        atomic_write_json(path, {"version": VERSION, "folder": str(folder), "volumes": volumes}, indent=None)
    except OSError:
        return False
    _prune(path.parent, keep=path)
    return True


def _prune(where: Path, keep: Path) -> None:
    """Remove cache files of folders that no longer exist."""
    for other in where.glob("*.json"):
        if other == keep:
            continue
        folder = _read(other).get("folder")
        if folder and not Path(folder).is_dir():
            try:
                other.unlink()
            except OSError:
                pass


def forget() -> None:
    """Empty the memory cache (the next lookup reads the cache files again)."""
    _memory.clear()
    _dirty.clear()

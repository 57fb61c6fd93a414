"""Atomic file writes: a temporary file in the same folder, then a rename.

A reader never sees a half-written file, and an interrupted write leaves the previous
version in place. The temporary file is ``.<name>.<random>.tmp`` beside the target; one
left by a writer that was killed (``kill -9``: no clean-up runs) is removed by
:func:`remove_temp_files`, which a folder's owner calls once it knows no other writer is
active (e.g. under the run folder's lock).
"""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "AtomicWriteError",
    "atomic_open",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_torch_save",
    "remove_temp_files",
]

_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[A-Za-z0-9_]+\.tmp$")  # mkstemp's random part
_TORCH_WRITE_FAILURES = ("PytorchStreamWriter", "inline_container", "file write failed")


class AtomicWriteError(OSError):
    """A file could not be written (the disk is full, say); the previous file is kept.

    An ``OSError`` whose ``str`` is one line naming the file, the cause and what to do;
    ``errno``/``strerror``/``filename`` as found (``strerror`` names the cause)."""

    def __init__(self, path: Path, cause: str, code: int | None = None):
        super().__init__(code, cause, str(path))
        self.message = (
            f"cannot write {path} ({cause}): free space on its disk (or fix its permissions) and "
            "try again; the previous file, if any, is unchanged"
        )

    def __str__(self) -> str:
        return self.message


@contextmanager
def atomic_open(path, mode: str = "w"):
    """Open a temporary file beside ``path``; on success flush it to disk and rename it
    over ``path``, on any error delete it (``path`` keeps its old content)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600; give the file the mode a plain open() would (or the old one's)
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask())
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: restore it at once
    os.umask(mask)
    return mask


def atomic_write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (creates the parent folder)."""
    with atomic_open(path, "w") as f:
        f.write(text)
    return Path(path)


def atomic_write_json(path, obj, **kwargs) -> Path:
    """``json.dumps(obj, indent=2, default=str)`` written atomically to ``path``."""
    kwargs.setdefault("indent", 2)
    kwargs.setdefault("default", str)
    return atomic_write_text(path, json.dumps(obj, **kwargs) + "\n")


def _os_cause(err: BaseException) -> OSError | None:
    """The ``OSError`` behind ``err`` (itself, or one it was raised from), if any."""
    seen: set[int] = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError) and e.errno is not None:
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def atomic_torch_save(obj, path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (an interrupted or failed save keeps the
    old file and leaves no temporary file).

    A failed write (a full disk: an ``OSError``, or the ``RuntimeError`` torch's zip writer
    raises, ``PytorchStreamWriter failed writing file ...``) raises one
    :class:`AtomicWriteError` that says to free space; other errors (an object that does
    not pickle) pass through unchanged."""
    import torch

    path = Path(path)
    try:
        with atomic_open(path, "wb") as f:
            torch.save(obj, f)
    except (OSError, RuntimeError) as err:
        if isinstance(err, AtomicWriteError):
            raise
        if isinstance(err, RuntimeError) and not any(s in str(err) for s in _TORCH_WRITE_FAILURES):
            raise
        os_err = _os_cause(err)
        if os_err is not None:
            cause, code = os_err.strerror or os.strerror(os_err.errno or 0), os_err.errno
        else:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            cause, code = f"the write failed: {first[:160]}; is the disk full?", errno.EIO
        raise AtomicWriteError(path, cause, code) from None
    return path


def remove_temp_files(folder) -> list[Path]:
    """Delete the temporary files of atomic writes in ``folder`` (``.<name>.<random>.tmp``,
    not recursive) and return them. Call it only where no other writer is active: a
    temporary file is then one a killed writer left behind."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for p in sorted(entries):
        if _TEMP_NAME.match(p.name) and p.is_file() and not p.is_symlink():
            try:
                p.unlink()
            except FileNotFoundError:
                continue
            removed.append(p)
    return removed

"""The run folder as a place: is it a folder, can it be written, who trains in it.

:func:`check_run_folder` refuses a path that is (or lies under) a file; :func:`writing`
turns an ``OSError`` of a write into a one-line :class:`~apslib.training.errors.RunFolderError`;
:class:`RunLock` is the lock file ``.lock`` a training process holds for the run's life (and
an evaluation for the life of its results folder). A lock left by a dead process is
removed, and with it the temporary files of the atomic writes it did not finish
(:func:`apslib.io.remove_temp_files`). The files inside the folder: :mod:`apslib.training.runs`.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
import warnings
from contextlib import contextmanager
from pathlib import Path

from ..io import remove_temp_files
from .errors import RunFolderError, RunLockedError

__all__ = ["LOCK_FILE", "check_run_folder", "writing", "RunLock"]

LOCK_FILE = ".lock"


def check_run_folder(path, option: str = "--run-dir (run_dir)") -> Path:
    """:class:`RunFolderError` if ``path`` or a folder above it is a file (nothing is
    created here); the message names ``option``, the way to give another folder."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists() or p.is_symlink():
            if not p.is_dir():
                raise RunFolderError(
                    f"{p} is a file, not a folder: give {option} a folder (it is created if missing)"
                )
            break
    return path


@contextmanager
def writing(
    path: Path,
    then: str = "make it writable or choose another --run-dir (run_dir)",
    folder: str = "run folder",
):
    """Turn an ``OSError`` of a write into a one-line :class:`RunFolderError` (``folder``
    names what ``path`` is, ``then`` what to do)."""
    try:
        yield
    except (NotADirectoryError, FileExistsError) as err:
        raise RunFolderError(f"cannot create the {folder} {path} ({err.strerror}): {then}") from err
    except OSError as err:  # permission denied, read-only file system, disk full
        what = err.strerror or type(err).__name__
        if err.filename and Path(err.filename) != path:
            what += f": {err.filename}"
        raise RunFolderError(f"cannot write in the {folder} {path} ({what}): {then}") from err


# ---- The lock: one training process per run folder -----------------------------------

_HELD: set[str] = set()  # tokens of the locks this process holds


def _read_lock(file: Path) -> dict:
    try:
        doc = json.loads(file.read_text())
    except (ValueError, OSError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except (OverflowError, ValueError):
        return False
    return True


class RunLock:
    """The lock file ``.lock`` of a run folder, held by one process for a run's life.

    :meth:`acquire` creates it with ``O_CREAT | O_EXCL`` (atomic: of two processes, one
    wins) and writes ``{"pid", "host", "since", "command", "token"}``. A lock held by a
    live process (or one on another host, which cannot be checked) raises
    :class:`RunLockedError` naming it; a lock of a dead process on this host (``os.kill``
    says no such pid), or one this process no longer holds (left by an interrupt), is
    removed with a warning, and once the lock is taken so are the temporary files of atomic
    writes that process left in the folder (``.checkpoint.pt.<random>.tmp``: a writer killed
    mid-save). :meth:`release` removes the file only if it is still this lock. Use as
    ``with RunLock(path): ...``.

    ``user``, ``option`` and ``folder`` word the messages: who holds such locks
    (``"training process"``), the option that picks another folder (``"--run-dir
    (run_dir)"``) and what the folder is (``"run folder"``).
    """

    def __init__(
        self,
        path,
        command: str | None = None,
        *,
        user: str = "training process",
        option: str = "--run-dir (run_dir)",
        folder: str = "run folder",
    ):
        self.path = Path(path)
        self.file = self.path / LOCK_FILE
        self.command = command if command is not None else " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
        self.token: str | None = None
        self.user, self.option, self.folder = user, option, folder
        self._recovered: list[str] = []  # the stale locks this acquire removed

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> RunLock:
        check_run_folder(self.path, self.option)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "command": self.command,
            "token": uuid.uuid4().hex,
        }
        with writing(self.path, f"make it writable or choose another {self.option}", self.folder):
            self.path.mkdir(parents=True, exist_ok=True)
            for _ in range(20):  # a stale lock removed: try again (another may win)
                try:
                    fd = os.open(self.file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    self._clear_stale()
                    continue
                with os.fdopen(fd, "w") as f:
                    json.dump(info, f)
                self.token = info["token"]
                _HELD.add(self.token)
                self._after_recovery()
                return self
        raise RunLockedError(
            f"cannot take the lock {self.file}: other processes keep taking it; "
            f"stop them or use another {self.option}"
        )

    def _after_recovery(self) -> None:
        """Once the lock is ours after removing a stale one: delete the temporary files its
        process left (no other writer can be active now) and say so in one warning."""
        if not self._recovered:
            return
        left = remove_temp_files(self.path)
        files = f"; removed the temporary file(s) it left: {', '.join(p.name for p in left)}"
        warnings.warn(self._recovered[-1] + (files if left else ""), stacklevel=4)
        self._recovered.clear()

    def _read(self) -> dict | None:
        for _ in range(10):  # its owner may be writing it right now
            if not self.file.exists():
                return None
            doc = _read_lock(self.file)
            if "pid" in doc:
                return doc
            time.sleep(0.05)
        raise RunLockedError(
            f"{self.path} is locked by {self.file}, which cannot be read; if no "
            f"other {self.user} uses this folder, delete that file and rerun"
        )

    def _clear_stale(self) -> None:
        other = self._read()
        if other is None:
            return  # released meanwhile
        pid, host = int(other.get("pid", -1)), str(other.get("host", "?"))
        ours = pid == os.getpid() and other.get("token") not in _HELD  # left by an interrupt
        if host == socket.gethostname() and (ours or not _pid_alive(pid)):
            state = f"this process, no longer a {self.user}" if ours else "no longer running"
            stale = self.file.with_name(f"{LOCK_FILE}.stale-{uuid.uuid4().hex}")
            try:
                os.replace(self.file, stale)  # atomic: of two recovering processes, one wins
            except FileNotFoundError:
                return
            if _read_lock(stale).get("token") != other.get("token"):
                os.replace(stale, self.file)  # a live lock taken meanwhile: put it back
            else:
                self._recovered.append(
                    f"removed the stale lock {self.file} of process {pid} on {host} ({state}; "
                    f"it started {other.get('since', '?')})"
                )
            stale.unlink(missing_ok=True)
            return
        raise RunLockedError(
            f"{self.path} is in use by another {self.user} (pid {pid} on {host}, since "
            f"{other.get('since', '?')}: {other.get('command', '?')}); wait for it to finish or "
            f"use another {self.option}; if that process is gone, delete {self.file}"
        )

    def release(self) -> None:
        if self.token is None:
            return
        if _read_lock(self.file).get("token") == self.token:
            self.file.unlink(missing_ok=True)
        _HELD.discard(self.token)
        self.token = None

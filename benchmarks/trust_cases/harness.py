"""The pieces every case is made of: run a CLI as a user would, judge what it printed.

A case is a function ``(ctx: Ctx) -> Verdict`` registered with :func:`case`. It sets up
its situation under ``ctx.tmp`` (its own folder; shared fixtures from ``ctx.world``), runs
a command (:func:`cli`, :func:`py`) or an API call (:func:`api_call`), and returns
:func:`ok` or :func:`bad` (a check such as :func:`refused` returns one). A case that cannot
set its situation up raises :class:`SetupError` (verdict ``error``).

What the checks mean:

* :func:`refused`: exit status != 0, no ``Traceback`` anywhere, and stderr is one
  ``error:`` line (argparse's usage lines before it allowed with status 2; one-line
  ``warning:`` lines allowed) that contains every needle (case-insensitive);
* :func:`warned`: exit 0, no traceback, one stderr line says ``warning`` and contains every
  needle, and it is a CLI's one line, not Python's ``path.py:N: UserWarning: ...`` with
  the source line under it;
* :func:`api_call`: the call raises, and the exception's message is one line with every
  needle.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PYTHON = sys.executable
TIMEOUT = 240  # seconds a command may take before it counts as hung
DETAIL = 170  # characters of a message shown in a verdict


class SetupError(RuntimeError):
    """The case could not build its situation: its verdict is ``error``, not ``bad``."""


@dataclass(frozen=True)
class Verdict:
    status: str  # "ok" | "bad" | "error"
    detail: str


def ok(detail: str = "") -> Verdict:
    return Verdict("ok", detail)


def bad(reason: str) -> Verdict:
    return Verdict("bad", reason)


def all_ok(*verdicts: Verdict) -> Verdict:
    """``ok`` (the details joined) if every verdict is, else the failures' details joined
    (``error`` if one is an error, else ``bad``)."""
    failed = [v for v in verdicts if v.status != "ok"]
    if not failed:
        return ok("; ".join(v.detail for v in verdicts if v.detail))
    status = "error" if any(v.status == "error" for v in failed) else "bad"
    return Verdict(status, "; ".join(v.detail for v in failed))


def labelled(label: str, v: Verdict) -> Verdict:
    """``v`` with its detail prefixed by ``label`` (one part of a case that checks several)."""
    return Verdict(v.status, f"{label}: {v.detail}" if v.detail else label)


# ---- Running commands --------------------------------------------------------------------


@dataclass
class Result:
    """What a command did: its arguments, exit status (``None``: it timed out), output, time."""

    argv: list
    rc: int | None
    out: str
    err: str
    seconds: float

    @property
    def text(self) -> str:
        return self.out + self.err

    @property
    def err_lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.strip()]

    def seen(self) -> str:
        """The message a user sees last: the last stderr line (else stdout's), shortened."""
        lines = self.err_lines or [ln for ln in self.out.splitlines() if ln.strip()]
        return short(lines[-1] if lines else "(no output)")


def short(text: str, n: int = DETAIL) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


@dataclass
class Env:
    """The environment of every command: the validation cache kept in the run's temporary
    folder, one torch thread (the machine is shared)."""

    cache: Path
    extra: dict = field(default_factory=dict)

    def vars(self) -> dict:
        env = dict(os.environ)
        env.update(APSLIB_CACHE_DIR=str(self.cache), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        env.pop("PYTHONWARNINGS", None)
        env.update(self.extra)
        return env


ENV: Env | None = None  # set by the world once its folder exists


def run(argv: list, *, cwd=None, timeout: float = TIMEOUT, stdin=subprocess.DEVNULL) -> Result:
    """Run ``argv`` to its end, capturing stdout and stderr."""
    assert ENV is not None, "the world sets the environment first"
    argv = [str(a) for a in argv]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(
            argv, cwd=cwd, env=ENV.vars(), capture_output=True, text=True, timeout=timeout, stdin=stdin
        )
    except subprocess.TimeoutExpired as err:
        out = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        errs = err.stderr.decode() if isinstance(err.stderr, bytes) else (err.stderr or "")
        return Result(argv, None, out, errs, time.perf_counter() - t0)
    return Result(argv, p.returncode, p.stdout, p.stderr, time.perf_counter() - t0)


def cli(module: str, *args, **kwargs) -> Result:
    """``python -m apslib.<module> ARGS`` as a user types it."""
    return run([PYTHON, "-m", f"apslib.{module}", *args], **kwargs)


def py(code: str, *args, **kwargs) -> Result:
    """``python -c CODE ARGS``: a CLI run in-process with something patched (a full disk)."""
    return run([PYTHON, "-c", code, *args], **kwargs)


def popen(argv: list, **kwargs) -> subprocess.Popen:
    """Start ``argv`` in its own session (so Ctrl-C can be sent to its group), pipes open."""
    assert ENV is not None
    return subprocess.Popen(
        [str(a) for a in argv],
        env=ENV.vars(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        **kwargs,
    )


def must(r: Result, what: str) -> Result:
    """``r`` if it succeeded, else :class:`SetupError` (a fixture command failed)."""
    if r.rc != 0:
        raise SetupError(f"{what} failed (exit {r.rc}): {r.seen()}")
    return r


# ---- Judging what was printed --------------------------------------------------------------

_TRACEBACK = "Traceback (most recent call last)"
_PY_WARNING = re.compile(r"^\S+\.py:\d+: \w*Warning: ")


def missing(line: str, needles) -> list:
    """The needles (strings, case-insensitive, or compiled patterns) not found in ``line``."""
    out = []
    for n in needles:
        found = n.search(line) if isinstance(n, re.Pattern) else n.lower() in line.lower()
        if not found:
            out.append(n.pattern if isinstance(n, re.Pattern) else n)
    return out


def _timed_out(r: Result) -> Verdict | None:
    return bad(f"hung: no exit after {r.seconds:.0f} s; last output: {r.seen()}") if r.rc is None else None


def refused(r: Result, *needles, status: int | None = None) -> Verdict:
    """A one-line refusal: exit != 0 (or ``status``), no traceback, one ``error:`` line on
    stderr (after argparse's usage, or one-line warnings) containing every needle."""
    if (v := _timed_out(r)) is not None:
        return v
    if _TRACEBACK in r.text:
        return bad(f"traceback (exit {r.rc}): {r.seen()}")
    if r.rc == 0:
        return bad(f"exit 0, not refused: {r.seen()}")
    if status is not None and r.rc != status:
        return bad(f"exit {r.rc}, not {status}: {r.seen()}")
    lines = r.err_lines
    usage = r.rc == 2 and bool(lines) and lines[0].startswith("usage:")
    errors = [ln for ln in lines if "error:" in ln]
    others = [ln for ln in lines if ln not in errors and not ln.startswith("warning:")]
    if usage:
        others = []  # argparse: usage lines, then one 'prog: error: ...' line
    if len(errors) != 1 or others:
        return bad(f"stderr is {len(lines)} lines, not one error line: {short(' | '.join(lines), 300)}")
    if miss := missing(errors[0], needles):
        return bad(f"error line does not mention {miss}: {short(errors[0])}")
    return ok(short(errors[0]))


def succeeded(r: Result) -> Verdict:
    """Exit 0 and no traceback."""
    if (v := _timed_out(r)) is not None:
        return v
    if _TRACEBACK in r.text:
        return bad(f"traceback (exit {r.rc}): {r.seen()}")
    if r.rc != 0:
        return bad(f"exit {r.rc}: {r.seen()}")
    return ok()


def warned(r: Result, *needles, exit_zero: bool = True) -> Verdict:
    """A one-line warning on stderr containing every needle (and exit 0 unless told).

    Python's own format (``path.py:N: UserWarning: ...`` and the source line under it) is
    not one line: a CLI prints ``warning: ...``."""
    if exit_zero and (v := succeeded(r)).status != "ok":
        return v
    lines = r.err_lines
    hits = [ln for ln in lines if "warning" in ln.lower() and not missing(ln, needles)]
    if not hits:
        warns = [ln for ln in lines if "warning" in ln.lower()]
        what = f"warnings seen: {short(' | '.join(warns), 300)}" if warns else f"stderr: {r.seen()}"
        return bad(f"no warning mentioning {[getattr(n, 'pattern', n) for n in needles]}; {what}")
    hit = hits[0]
    if _PY_WARNING.match(hit):
        i = lines.index(hit)
        excerpt = f" + source line `{lines[i + 1].strip()}`" if i + 1 < len(lines) else ""
        return bad(
            f"the warning is Python's 'file:line: Category:' form{excerpt}, not one line: {short(hit, 300)}"
        )
    return ok(short(hit))


def warned_or_refused(r: Result, *needles) -> Verdict:
    """Either behaviour is right: a one-line warning (exit 0) or a one-line error."""
    return warned(r, *needles) if r.rc == 0 else refused(r, *needles)


def size(n: int) -> re.Pattern:
    """A needle for an image size ``n`` as messages write it (``32x32``, ``32 px``, ``size 32``)."""
    return re.compile(rf"\b{n} ?[x×] ?{n}\b|\b{n} ?px\b|\bsize {n}\b|\b{n} pixels", re.I)


# ---- API calls in-process -----------------------------------------------------------------


def api_call(fn: Callable, *needles) -> Verdict:
    """``fn()`` must raise an exception whose message is one line with every needle."""
    try:
        value = fn()
    except Exception as err:  # the refusal under test
        return raised(err, *needles)
    return bad(f"no error; returned {short(repr(value), 100)}")


def raised(err: BaseException, *needles) -> Verdict:
    """The exception an API call raised: one line, every needle in it."""
    msg = str(err)
    if "\n" in msg.strip():
        return bad(f"{type(err).__name__} message is {len(msg.splitlines())} lines: {short(msg)}")
    if miss := missing(msg, needles):
        return bad(f"{type(err).__name__} does not mention {miss}: {short(msg)}")
    return ok(f"{type(err).__name__}: {short(msg)}")


# ---- The registry ------------------------------------------------------------------------


@dataclass
class Case:
    number: int
    name: str
    expect: str  # the property that makes the verdict ok
    fn: Callable


CASES: dict[int, Case] = {}


def case(number: int, name: str, expect: str):
    """Register ``fn`` as case ``number``: ``name`` is shown per line, ``expect`` by --list."""

    def register(fn):
        if number in CASES:
            raise ValueError(f"case {number} registered twice ({CASES[number].name!r}, {name!r})")
        CASES[number] = Case(number, name, expect, fn)
        return fn

    return register

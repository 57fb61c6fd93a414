"""Bad input and faults a user meets, each run as the user would, with a verdict.

Each case sets up its situation in a temporary folder (a tiny shared dataset and tiny
trained runs are made once per script run and copied per case), runs a CLI (``python -m
apslib.<cli> ...``) or calls the API, and checks the behaviour a user should get: a one-line
error that says what to do (exit status != 0, no traceback), a one-line warning, or a
correct recovery. One line per case::

    [ok|bad|error] NN  short name — detail

``bad``: apslib misbehaves (wrong result, traceback, misleading message), with the message
seen; ``error``: the case could not set itself up. Exit status 1 if any case is ``bad`` or
``error``. Cases 1-39 are a tester's report (its numbering); 40-59 are more of the same
kind. The case code lives in ``benchmarks/trust_cases/`` (one module per area).

    python benchmarks/trust_cases.py               # every case (a few minutes on 2 cores)
    python benchmarks/trust_cases.py --only 1,4,26 # some
    python benchmarks/trust_cases.py --list        # number, name and expected behaviour
    python benchmarks/trust_cases.py --only 8 -v   # a non-ok case's commands and output
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import textwrap
import time
import traceback
from collections import Counter
from pathlib import Path

from trust_cases import CASES, Ctx, SetupError, Verdict, World, harness


def _numbers(text: str) -> list[int]:
    try:
        wanted = sorted({int(n) for n in text.replace(" ", "").split(",") if n})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--only takes case numbers like 1,4,26, not {text!r}") from None
    unknown = [n for n in wanted if n not in CASES]
    if unknown:
        raise argparse.ArgumentTypeError(f"no case {unknown}; --list shows them")
    return wanted


def run_case(number: int, world: World) -> tuple[Verdict, list]:
    """The case's verdict and the commands it ran (:class:`harness.Result`)."""
    tmp = world.root / "cases" / f"{number:02d}"
    tmp.mkdir(parents=True)
    seen: list[harness.Result] = []
    real = harness.run

    def recording(argv, **kwargs):
        r = real(argv, **kwargs)
        seen.append(r)
        return r

    harness.run = recording
    try:
        verdict = CASES[number].fn(Ctx(number, tmp, world))
    except SetupError as err:
        verdict = Verdict("error", f"setup: {err}")
    except Exception as err:  # the script's own failure, not apslib's
        where = traceback.extract_tb(err.__traceback__)[-1]
        what = f"{type(err).__name__}: {harness.short(err)}"
        verdict = Verdict("error", f"{what} ({where.name}:{where.lineno})")
    finally:
        harness.run = real
    return verdict, seen


def show(results: list) -> None:
    """-v: each command a case ran, its exit status and output (the end of it)."""
    for r in results:
        print(f"    $ {' '.join(r.argv)[-400:]}\n    exit {r.rc} in {r.seconds:.1f} s")
        for name, text in (("stdout", r.out), ("stderr", r.err)):
            if text.strip():
                print(textwrap.indent(text.rstrip()[-3000:], f"    {name}| "))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", type=_numbers, help="comma-separated case numbers, e.g. 1,4,26")
    ap.add_argument("--list", action="store_true", help="list the cases and their expected behaviour")
    ap.add_argument(
        "-v", "--verbose", action="store_true", help="show the commands and output of non-ok cases"
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    args = ap.parse_args(argv)
    numbers = args.only or sorted(CASES)
    if args.list:
        for n in numbers:
            c = CASES[n]
            print(f"{n:02d}  {c.name}\n      expect: {c.expect}")
        return 0

    start = time.perf_counter()
    world = World(Path(tempfile.mkdtemp(prefix="apslib-trust-")))
    counts: Counter = Counter()
    try:
        for n in numbers:
            t0 = time.perf_counter()
            v, commands = run_case(n, world)
            counts[v.status] += 1
            took = time.perf_counter() - t0
            print(
                f"[{v.status}] {n:02d}  {CASES[n].name} — {v.detail or 'as expected'} ({took:.0f} s)",
                flush=True,
            )
            if args.verbose and v.status != "ok":
                show(commands)
    finally:
        if args.keep:
            print(f"kept {world.root}")
        else:
            shutil.rmtree(world.root, ignore_errors=True)
    summary = ", ".join(f"{counts[s]} {s}" for s in ("ok", "bad", "error"))
    print(f"{len(numbers)} cases: {summary}; {time.perf_counter() - start:.0f} s in all")
    return 1 if counts["bad"] or counts["error"] else 0


if __name__ == "__main__":
    sys.exit(main())

"""Cases of the machine and the user's hands: Ctrl-C, read-only folders, a missing GPU,
the wrong file given; and the notebook runner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from contextlib import contextmanager

from .harness import PYTHON, SetupError, all_ok, bad, case, cli, ok, popen, refused, short, succeeded
from .world import Ctx, train_args, volume

RUNNER = [PYTHON, "-m", "apslib.notebooks", "--profile", "smoke", "--only", "01"]


def _no_gpu() -> str:
    """A device name that is not there: ``cuda`` on a machine without one."""
    import torch

    return "cuda:7" if torch.cuda.is_available() else "cuda"


@contextmanager
def read_only(folder):
    """``folder`` unwritable, even for root (``chattr +i`` then: root ignores modes)."""
    folder.chmod(0o555)
    immutable = (
        os.geteuid() == 0 and subprocess.run(["chattr", "+i", folder], capture_output=True).returncode == 0
    )
    try:
        probe = folder / "probe"
        try:
            probe.touch()
        except OSError:
            pass
        else:
            probe.unlink()
            raise SetupError(f"cannot make {folder} read-only here")
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", folder], capture_output=True)
        folder.chmod(0o755)


def _stop(p: subprocess.Popen, sig=signal.SIGINT, wait: float = 60) -> tuple[str, str, float]:
    """Send ``sig`` to ``p``'s process group (what Ctrl-C does); its output, and the seconds
    it took to exit. Whatever of the group outlives that is killed (and reported)."""
    t0 = time.monotonic()
    os.killpg(p.pid, sig)
    try:
        out, err = p.communicate(timeout=wait)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        return out, err + f"\n(still running {wait:.0f} s after the signal: killed)", wait
    return out, err, time.monotonic() - t0


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@case(25, "runner -p channels '[4, 8'", "exit != 0, one error line mentioning 'channels'")
def runner_bad_yaml(ctx: Ctx):
    r = cli(
        "notebooks", "--profile", "smoke", "--only", "01", "--out", ctx.tmp / "out", "-p", "channels", "[4, 8"
    )
    return refused(r, "channels")


@case(
    26,
    "Ctrl-C on the notebook runner after 8 s",
    "exit 130, stderr one line mentioning 'interrupted', no traceback, no process of it left",
)
def runner_ctrl_c(ctx: Ctx):
    p = popen([*RUNNER, "--out", ctx.tmp / "out"])
    time.sleep(8)
    if p.poll() is not None:
        raise SetupError(f"the runner ended (exit {p.returncode}) before the 8 s: {p.stderr.read()[-300:]}")
    out, err, seconds = _stop(p)
    leftover = _group_alive(p.pid)
    if leftover:
        os.killpg(p.pid, signal.SIGKILL)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if "Traceback" in out + err:
        return bad(f"traceback after Ctrl-C: {short(lines[-1] if lines else '')}")
    if p.returncode != 130:
        return bad(f"exit {p.returncode}, not 130: {short(' | '.join(lines), 300)}")
    if len(lines) != 1 or "interrupted" not in lines[0]:
        return bad(f"stderr is {len(lines)} lines: {short(' | '.join(lines), 300)}")
    if leftover:
        return bad(f"processes of the runner still alive after it exited: {short(lines[0])}")
    return ok(f"{short(lines[0])} ({seconds:.1f} s to exit)")


@case(
    40,
    "training --device cuda on a machine without one",
    "exit != 0, one error line mentioning cuda",
)
def train_cuda(ctx: Ctx):
    args = train_args("APS", ctx.world.data, ctx.tmp / "runs")
    args[args.index("--device") + 1] = _no_gpu()
    return refused(cli("training", *args), "cuda")


@case(
    50,
    "a read-only --run-dir",
    "exit != 0, one error line naming the folder and saying it cannot be written",
)
def read_only_run_dir(ctx: Ctx):
    runs = ctx.tmp / "runs"
    runs.mkdir()
    with read_only(runs):
        r = cli("training", *train_args("APS", ctx.world.data, runs))
    return refused(r, str(runs), "writ")


@case(
    51,
    "Ctrl-C during training, then the same command",
    "exit 130 and a last line saying rerun to resume, no traceback; the rerun resumes "
    "('resuming after epoch') and finishes all 40 epochs",
)
def train_ctrl_c(ctx: Ctx):
    runs = ctx.tmp / "runs"
    args = train_args("APS", ctx.world.data, runs, 40)
    p = popen([PYTHON, "-m", "apslib.training", *args])
    for line in p.stdout:  # the epoch lines go to stdout
        if "epoch 2/40" in line:
            break
    else:
        raise SetupError(f"training ended (exit {p.wait()}) before epoch 2")
    out, err, _ = _stop(p)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if "Traceback" in out + err:
        return bad(f"traceback after Ctrl-C: {short(lines[-1] if lines else '')}")
    if p.returncode == 0:
        raise SetupError("training finished before the Ctrl-C arrived")
    if p.returncode != 130 or not lines or "rerun" not in lines[-1]:
        return bad(f"exit {p.returncode}: {short(lines[-1] if lines else '(nothing)')}")
    r = cli("training", *args)
    hist = json.loads((runs / "aps" / "history.json").read_text())
    resumed = "resuming after epoch" in r.text
    v = succeeded(r)
    if v.status == "ok" and (not resumed or len(hist["history"]) != 40 or not hist["done"]):
        v = bad(f"rerun: resumed={resumed}, {len(hist['history'])} epochs, done={hist['done']}")
    return all_ok(ok(short(lines[-1], 100)), v)


@case(
    59,
    "published --state-dict given an HDF5 volume",
    "exit != 0, one error line naming the file",
)
def published_wrong_file(ctx: Ctx):
    vol = volume(ctx.world.data, "val", 0)
    r = cli("published", "--state-dict", vol, "--run-dir", ctx.tmp / "runs")
    return refused(r, vol.name)

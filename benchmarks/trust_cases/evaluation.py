"""Cases of ``python -m apslib.evaluate``: unfinished runs, other data, bad volumes, bad
flags, two evaluations into one folder."""

from __future__ import annotations

import re
import shutil

import numpy as np

from .harness import (
    PYTHON,
    SetupError,
    all_ok,
    api_call,
    bad,
    case,
    ok,
    popen,
    refused,
    size,
    warned,
    warned_or_refused,
)
from .world import Ctx, evaluate, read, replace, volume

HOLD_LOCK = """
import sys, time
from apslib.evaluate.pipeline import results_lock
with results_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


@case(
    4,
    "a run killed at epoch 1 of 3 evaluated",
    "exit 0 and a one-line warning mentioning 'unfinished' and '1 of 3'",
)
def unfinished_run(ctx: Ctx):
    r = evaluate(ctx.unfinished(), ctx.tmp / "res", "--data", ctx.world.data)
    return warned(r, "unfinished", "1 of 3")


@case(
    6,
    "evaluated at 48 px, trained at 32 px",
    "a one-line warning or error line mentioning both sizes, 32 and 48",
)
def other_size(ctx: Ctx):
    r = evaluate(ctx.runs(), ctx.tmp / "res", "--data", ctx.world.data48)
    return warned_or_refused(r, size(32), size(48))


@case(7, "one NaN in a validation volume's k-space", "exit != 0, one error line naming the file and NaN")
def nan_val(ctx: Ctx):
    root = ctx.data(manifest=False)
    vol = volume(root, "val", 0)
    k = read(vol, "kspace")
    k[1, 10, 7] = np.nan
    replace(vol, "kspace", k)
    return refused(evaluate(ctx.runs(), ctx.tmp / "res", "--data", root), vol.name, "nan")


@case(
    8,
    "an all-zero validation volume",
    "exit 0, a one-line warning naming the volume, and the table's unshifted nmse/psnr/ssim "
    "finite over the 2 usable slices; or one error line naming it",
)
def zero_val(ctx: Ctx):
    root = ctx.data(manifest=False)
    zero = volume(root, "val", 1)
    shutil.copy(volume(root, "val", 0), zero)
    for key in ("kspace", "reconstruction_esc"):
        replace(zero, key, np.zeros_like(read(zero, key)))
    res = ctx.tmp / "res"
    r = evaluate(ctx.runs(), res, "--data", root)
    if r.rc != 0:
        return refused(r, zero.name)
    return all_ok(warned(r, zero.name), _usable_slices_only(res / "in_distribution.csv", 2))


def _usable_slices_only(table, usable: int):
    import pandas as pd

    df = pd.read_csv(table)
    rec = df[(df.protocol == "unshifted") & df.metric.isin(["nmse", "psnr", "ssim"]) & (df.model == "APS")]
    bad_values = rec[~np.isfinite(rec.value.astype(float))]
    if len(bad_values):
        row = bad_values.iloc[0]
        return bad(f"table has {row.metric} {row.statistic} = {row.value} (n={row.n})")
    if (rec.n > usable).any():
        return bad(f"the all-zero slices are averaged in: n={int(rec.n.max())} > {usable} usable slices")
    return ok()


@case(14, "--sweep-slices 0", "exit != 0, one error line mentioning sweep-slices")
def sweep_zero(ctx: Ctx):
    r = evaluate(ctx.runs(), ctx.tmp / "res", "--data", ctx.world.data, "--sweep-slices", "0")
    return refused(r, re.compile(r"sweep[-_ ]slices", re.I))


@case(23, "--max-shift 0", "exit != 0, one error line mentioning max-shift")
def max_shift_zero(ctx: Ctx):
    r = evaluate(ctx.runs(), ctx.tmp / "res", "--data", ctx.world.data, "--max-shift", "0")
    return refused(r, re.compile(r"max[-_ ]shift", re.I))


@case(
    24,
    "--ood --image-dir with nothing decodable",
    "exit != 0, one error line naming the image folder",
)
def undecodable_images(ctx: Ctx):
    images = ctx.tmp / "imagenet_val"
    images.mkdir()
    (images / "a.JPEG").write_text("version https://git-lfs.github.com/spec/v1\n")
    (images / "b.png").write_bytes(np.random.default_rng(0).bytes(300))
    r = evaluate(ctx.runs(), ctx.tmp / "res", "--ood", "--ood-size", "32", "--image-dir", images)
    return refused(r, images.name)


@case(
    38,
    "a second evaluation into a locked results folder",
    "exit != 0, one error line naming the pid of the evaluation holding the lock",
)
def two_evaluations(ctx: Ctx):
    res = ctx.tmp / "res"
    holder = popen([PYTHON, "-c", HOLD_LOCK, res])
    try:
        if holder.stdout.readline().strip() != "held":
            raise SetupError(f"the first evaluation did not take the lock: {holder.stderr.read()[-300:]}")
        r = evaluate(ctx.runs(), res, "--data", ctx.world.data)
    finally:
        holder.terminate()
        holder.communicate(timeout=30)
    return refused(r, str(holder.pid))


@case(44, "--results-dir is a file", "exit != 0, one error line saying it is a file")
def results_dir_file(ctx: Ctx):
    f = ctx.tmp / "results.csv"
    f.write_text("model,value\n")
    return refused(evaluate(ctx.runs(), f, "--data", ctx.world.data), str(f), "file")


@case(47, "evaluate an unknown model name", "exit != 0, one error line naming 'APS-9'")
def eval_unknown_model(ctx: Ctx):
    return refused(evaluate(ctx.runs(), ctx.tmp / "res", "--data", ctx.world.data, models=["APS-9"]), "APS-9")


@case(
    49,
    "evaluate --seeds 1 where only seed 0 was trained",
    "exit != 0, one error line mentioning seed 1 and how to train it",
)
def untrained_seed(ctx: Ctx):
    r = evaluate(ctx.runs(), ctx.tmp / "res", "--data", ctx.world.data, "--seeds", "1")
    return refused(r, "seed 1", "apslib.training")


@case(
    52,
    "evaluate --run-dir an empty folder (a typo'd run dir)",
    "exit != 0, one error line naming the folder and how to train",
)
def empty_run_dir(ctx: Ctx):
    runs = ctx.tmp / "rns"
    runs.mkdir()
    r = evaluate(runs, ctx.tmp / "res", "--data", ctx.world.data)
    return refused(r, str(runs), "train")


@case(56, "evaluate --example-index 999 (2 slices)", "exit != 0, one error line mentioning example")
def example_index(ctx: Ctx):
    r = evaluate(ctx.runs(), ctx.tmp / "res", "--data", ctx.world.data, "--example-index", "999")
    return refused(r, "example")


@case(58, "evaluate --device cuda:7 (no such GPU)", "exit != 0, one error line mentioning cuda")
def eval_cuda(ctx: Ctx):
    r = evaluate(ctx.runs(), ctx.tmp / "res", "--data", ctx.world.data, "--device", "cuda:7")
    return refused(r, "cuda")


@case(
    43,
    "evaluate_runs(models=[]) (an empty models list, API)",
    "raises, one-line message mentioning 'models'; no empty table written",
)
def empty_models(ctx: Ctx):
    from apslib.evaluate import evaluate_runs

    res = ctx.tmp / "res"
    v = api_call(lambda: evaluate_runs(ctx.runs(), ctx.world.data, [], res, device="cpu"), "models")
    written = sorted(p.name for p in res.glob("*.csv")) if res.exists() else []
    return all_ok(v, bad(f"wrote {written}") if written else ok())

"""Cases of ``python -m apslib.training``: run folders that are not what they seem,
bad flags, a full disk, leftovers of killed processes."""

from __future__ import annotations

import json
import re

from .harness import (
    all_ok,
    bad,
    case,
    cli,
    labelled,
    ok,
    py,
    refused,
    succeeded,
    warned,
    warned_or_refused,
)
from .world import Ctx, evaluate, stale_lock, synth, train_args

FULL_DISK = """
import sys, torch
def full(*args, **kwargs):
    raise RuntimeError("[enforce fail at inline_container.cc:595] . PytorchStreamWriter failed "
                       "writing file data/0: file write failed")
torch.save = full
from apslib.training.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def _edit_json(path, edit) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc, indent=2))


def _edit_checkpoint(path, edit) -> None:
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    edit(ckpt)
    torch.save(ckpt, path)


def _edited_config(ctx: Ctx, **fields):
    """An unfinished APS run (epoch 1 of 3) whose config.json says ``fields`` instead."""
    runs = ctx.unfinished()

    def edit(doc):
        doc["config"].update(fields)
        doc["unet"].update({k: v for k, v in fields.items() if k in doc["unet"]})

    _edit_json(runs / "aps" / "config.json", edit)
    r = cli("training", *train_args("APS", ctx.world.data, runs, 3))
    if "size mismatch" in r.text:
        return bad(f"torch's size-mismatch dump ({r.text.count('size mismatch')} lines): {r.seen()}")
    if r.rc != 0:
        return refused(r, "config.json")
    return all_ok(warned(r, "config.json"), _config_is_aps(runs))


def _config_is_aps(runs) -> object:
    doc = json.loads((runs / "aps" / "config.json").read_text())
    cfg = doc["config"]
    if cfg["variant"] != "aps" or cfg["channels"] != [4, 8, 16]:
        return bad(f"config.json left as edited: variant {cfg['variant']}, channels {cfg['channels']}")
    return ok()


@case(1, "another run's checkpoint resumed", "exit != 0, stderr one error line naming 'LPF-2'")
def foreign_checkpoint(ctx: Ctx):
    runs = ctx.unfinished()
    (runs / "aps" / "checkpoint.pt").write_bytes((ctx.world.runs / "lpf-2" / "checkpoint.pt").read_bytes())
    r = cli("training", *train_args("APS", ctx.world.data, runs, 3))
    return refused(r, "LPF-2")


@case(
    2,
    "config.json edited to another variant",
    "not resumed: one error line naming config.json (or a one-line warning and config.json rebuilt as APS)",
)
def config_variant_edited(ctx: Ctx):
    return _edited_config(ctx, variant="lpf", filter_size=2)


@case(
    3,
    "config.json channels edited",
    "as case 2 for channels [8, 16, 32]; never torch's size-mismatch dump",
)
def config_channels_edited(ctx: Ctx):
    return _edited_config(ctx, channels=[8, 16, 32])


@case(
    5,
    "data replaced under a run (synth --force at 48 px)",
    "training: one error line mentioning the data; evaluation: a warning/error line saying the "
    "data is not what the run was trained on",
)
def data_replaced(ctx: Ctx):
    data = ctx.data()
    runs = ctx.tmp / "runs"
    if (r := cli("training", *train_args("APS", data, runs))).rc != 0:
        return bad(f"first training failed: {r.seen()}")
    if (r := synth(data, 48, "--force")).rc != 0:
        return bad(f"synth --force failed: {r.seen()}")
    trained = refused(cli("training", *train_args("APS", data, runs)), "data")
    e = evaluate(runs, ctx.tmp / "res", "--data", data)
    said = re.compile(r"trained on|fingerprint|other data|not the data", re.I)
    return all_ok(labelled("training", trained), labelled("evaluation", warned_or_refused(e, said)))


@case(10, "--padding-mode zeros for APS", "exit != 0, one error line mentioning 'circular'")
def padding_zeros(ctx: Ctx):
    r = cli("training", *train_args("APS", ctx.world.data, ctx.tmp / "runs", 1, "--padding-mode", "zeros"))
    return refused(r, "circular")


@case(20, "--accelerations 0", "exit != 0, one error line mentioning 'acceleration'")
def accelerations_zero(ctx: Ctx):
    r = cli("training", *train_args("APS", ctx.world.data, ctx.tmp / "runs", 1, "--accelerations", "0"))
    return refused(r, "acceleration")


@case(21, "--center-fractions 1.5", "exit != 0, one error line mentioning 'fraction'")
def center_fraction(ctx: Ctx):
    r = cli("training", *train_args("APS", ctx.world.data, ctx.tmp / "runs", 1, "--center-fractions", "1.5"))
    return refused(r, "fraction")


@case(
    22,
    "full disk during a checkpoint save",
    "exit != 0, one error line mentioning 'free space'; no .tmp file and no .lock left",
)
def full_disk(ctx: Ctx):
    runs = ctx.tmp / "runs"
    r = py(FULL_DISK, *train_args("APS", ctx.world.data, runs))
    left = sorted(p.name for p in (runs / "aps").glob(".*")) if (runs / "aps").exists() else []
    return all_ok(refused(r, "free space"), bad(f"left behind: {left}") if left else ok())


@case(27, "checkpoint config with a newer field", "exit != 0, one error line mentioning 'upgrade'")
def newer_field(ctx: Ctx):
    runs = ctx.runs()
    _edit_checkpoint(runs / "aps" / "checkpoint.pt", lambda c: c["config"].update(ema_decay=0.999))
    _edit_json(runs / "aps" / "config.json", lambda d: d["config"].update(ema_decay=0.999))
    return refused(cli("training", *train_args("APS", ctx.world.data, runs)), "upgrade")


@case(
    28,
    "truncated history.json",
    "exit 0 (finished run skipped), one-line warning mentioning history.json; afterwards "
    "history.json parses and records the 1 epoch",
)
def truncated_history(ctx: Ctx):
    runs = ctx.runs()
    hist = runs / "aps" / "history.json"
    hist.write_text(hist.read_text()[:120])
    v = warned(cli("training", *train_args("APS", ctx.world.data, runs)), "history.json")
    try:
        epochs = len(json.loads(hist.read_text())["history"])
    except (ValueError, KeyError) as err:
        return all_ok(v, bad(f"history.json still unreadable: {err}"))
    return all_ok(v, ok() if epochs == 1 else bad(f"history.json rebuilt with {epochs} epochs, not 1"))


@case(29, "checkpoint of a newer format", "exit != 0, one error line mentioning 'upgrade'")
def newer_format(ctx: Ctx):
    runs = ctx.runs()
    _edit_checkpoint(runs / "aps" / "checkpoint.pt", lambda c: c.update(format=99, apslib_version="9.0.0"))
    return refused(cli("training", *train_args("APS", ctx.world.data, runs)), "upgrade")


@case(30, "--init-from a corrupt run", "exit != 0, one error line naming the --init-from folder")
def init_from_corrupt(ctx: Ctx):
    src = ctx.copy(ctx.world.runs / "aps", "source")
    (src / "checkpoint.pt").write_bytes(b"PK\x03\x04 this is not a whole zip file")
    r = cli("training", *train_args("APS", ctx.world.data, ctx.tmp / "runs", 1, "--init-from", src))
    return refused(r, str(src))


@case(
    37,
    "stale .tmp and dead .lock left by kill -9",
    "resume and --retrain: exit 0, the .checkpoint.pt.*.tmp and the .lock gone, a one-line "
    "warning mentioning 'stale'",
)
def stale_leftovers(ctx: Ctx):
    verdicts = []
    for label, extra in (("resume", []), ("--retrain", ["--retrain"])):
        runs = ctx.unfinished(f"runs{len(verdicts)}")
        folder = runs / "aps"
        tmp = folder / ".checkpoint.pt.k9x2ab_q.tmp"
        tmp.write_bytes(b"half a checkpoint")
        lock = stale_lock(folder)
        r = cli("training", *train_args("APS", ctx.world.data, runs, 3, *extra))
        v = all_ok(succeeded(r), warned(r, "stale") if not extra else ok())
        left = [p.name for p in (tmp, lock) if p.exists()]
        if left:
            v = bad(f"left {left}; {r.seen()}")
        verdicts.append(labelled(label, v if v.status != "ok" or v.detail else ok("cleaned")))
    return all_ok(*verdicts)


@case(41, "--batch-size 0", "exit != 0, one error line mentioning 'batch'")
def batch_zero(ctx: Ctx):
    args = train_args("APS", ctx.world.data, ctx.tmp / "runs")
    args[args.index("--batch-size") + 1] = "0"
    return refused(cli("training", *args), "batch")


@case(42, "--epochs -1", "exit != 0, one error line mentioning 'epochs'")
def negative_epochs(ctx: Ctx):
    return refused(cli("training", *train_args("APS", ctx.world.data, ctx.tmp / "runs", -1)), "epochs")


@case(45, "--run-dir is a file", "exit != 0, one error line saying the path is a file")
def run_dir_file(ctx: Ctx):
    f = ctx.tmp / "runs.txt"
    f.write_text("not a folder\n")
    return refused(cli("training", *train_args("APS", ctx.world.data, f)), str(f), "file")


@case(
    46, "unknown model name 'Basline' (a typo)", "exit != 0, one error line naming 'Basline' and 'Baseline'"
)
def unknown_model(ctx: Ctx):
    r = cli("training", *train_args("Basline", ctx.world.data, ctx.tmp / "runs"))
    return refused(r, "Basline", "Baseline")


@case(55, "--depth 2 with 2 channels", "exit != 0, one error line mentioning 'channels'")
def channels_count(ctx: Ctx):
    args = train_args("APS", ctx.world.data, ctx.tmp / "runs")
    i = args.index("--channels")
    args[i : i + 4] = ["--channels", "4", "8"]
    return refused(cli("training", *args), "channels")


@case(57, "--volume-fraction 0", "exit != 0, one error line mentioning 'fraction'")
def volume_fraction_zero(ctx: Ctx):
    r = cli("training", *train_args("APS", ctx.world.data, ctx.tmp / "runs", 1, "--volume-fraction", "0"))
    return refused(r, "fraction")

"""fastMRI's published U-Net as a run folder: ``python -m apslib.published``.

fastMRI publishes its single-coil knee U-Net as a state-dict file
(``knee_sc_leaderboard_state_dict.pt``, :data:`apslib.convert.PUBLISHED_UNET`).
:func:`import_fastmri_unet` checks it key by key (:func:`apslib.convert.read_fastmri_state_dict`)
and writes it as a run folder of the training stack, readable by
:func:`apslib.training.read_run` / :func:`~apslib.training.load_model`, so that
``python -m apslib.evaluate`` and ``python -m apslib.reconstruct`` take it like a trained
run:

* ``--to fastmri``: ``"fastMRI U-Net"``, fastMRI's own function (zero padding, its grid);
* ``--to aps``: ``"fastMRI U-Net → APS"``, the same weights converted to APS
  (:func:`apslib.convert.aps_unet_from_fastmri`; circular padding), exactly equivariant to
  integer circular shifts, no retraining.

The folder is ``RUN_DIR/<slug of the name>`` (as the training CLI's). Its files follow
:mod:`apslib.training.runs`; an imported run has no training history: ``history.json``
records ``done: true`` with no epochs, and its three files carry ``"imported"`` (the
file, its sha256, the layout): evaluation takes it as finished, and training refuses to
continue it (start a new run from its weights with ``--init-from``). The output clamp is off (fastMRI's
inference has none), the masks default to fastMRI's 4x (centre fraction 0.08). Importing
the same file again is a no-op; a folder holding another run is refused unless ``force``.
Errors are one line (``error: ...``, exit status 1).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .convert.published import PUBLISHED_UNET, StateDictError, layout_text, load_fastmri_unet
from .io import atomic_torch_save, atomic_write_json
from .training.config import config_for
from .training.errors import TrainingError
from .training.folder import RunLock, check_run_folder, writing
from .training.runs import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    HISTORY_FILE,
    RUN_FORMAT,
    prepare_run,
    read_checkpoint,
    read_run,
)

__all__ = ["TARGETS", "DEFAULT_NAMES", "ImportResult", "import_fastmri_unet", "main"]

TARGETS = {"fastmri": "baseline", "aps": "aps"}  # --to -> the variant of EquivariantFastMRIUnet
DEFAULT_NAMES = {"fastmri": "fastMRI U-Net", "aps": "fastMRI U-Net → APS"}


@dataclass
class ImportResult:
    """One run folder :func:`import_fastmri_unet` wrote (or found already written: ``skipped``)."""

    name: str
    path: Path
    target: str
    skipped: bool


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def _run_name(target: str, name: str | None) -> str:
    if name is None:
        return DEFAULT_NAMES[target]
    return name if target == "fastmri" else f"{name} → APS"


def _existing(path: Path, unet: dict, digest: str, force: bool) -> bool:
    """True if ``path`` already holds this import (verified); ``FileExistsError`` if it
    holds anything else of a run and ``force`` is off."""
    files = [f for f in (CONFIG_FILE, HISTORY_FILE, CHECKPOINT_FILE) if (path / f).exists()]
    if not files:
        return False
    try:
        doc = json.loads((path / CONFIG_FILE).read_text())
        same = doc.get("imported", {}).get("sha256") == digest and doc.get("unet") == unet
        if same and not force:
            read_checkpoint(path, mmap=True)
            return True
    except (OSError, ValueError, AttributeError, TrainingError):
        pass  # not this import, or damaged: replaced with force, refused without
    if not force:
        raise FileExistsError(
            f"{path} holds a run ({', '.join(files)}) that is not this import of the file: pass "
            "--force (force=True) to replace it, or choose another --run-dir or --name"
        )
    return False


def import_fastmri_unet(
    state_dict,
    run_dir,
    *,
    to: Sequence[str] = ("fastmri",),
    name: str | None = None,
    layout: Mapping | None = None,
    trust_pickle: bool = False,
    force: bool = False,
) -> list[ImportResult]:
    """Write fastMRI U-Net weights (a state-dict file) as run folders under ``run_dir``.

    Args:
        state_dict: the ``.pt`` file: a ``state_dict`` of ``fastmri.models.Unet``, or a
            Lightning checkpoint of fastMRI's ``UnetModule`` (keys ``unet.*`` under
            ``state_dict``); checked by :func:`apslib.convert.read_fastmri_state_dict`
            before any folder is touched.
        run_dir: the runs folder; each run goes to ``run_dir/<slug of its name>``.
        to: ``"fastmri"`` (fastMRI's own function) and/or ``"aps"`` (converted to APS).
        name: the run name of ``"fastmri"`` (default ``"fastMRI U-Net"``); ``"aps"`` is
            ``"<name> → APS"``.
        layout: the ``fastmri.models.Unet`` arguments that differ from
            :data:`apslib.convert.PUBLISHED_UNET` (e.g. ``{"chans": 32}``); single-channel only.
        trust_pickle: let ``torch.load`` unpickle Python objects (trusted files only).
        force: replace a run folder that holds another run.

    Returns:
        One :class:`ImportResult` per target, in the order of ``to``.
    """
    unknown = [t for t in to if t not in TARGETS]
    if unknown or not to:
        raise ValueError(f"--to takes {list(TARGETS)}, got {list(to)}")
    full = {**PUBLISHED_UNET, **(layout or {})}
    if (full["in_chans"], full["out_chans"]) != (1, 1):
        raise ValueError(
            f"a run folder holds a single-channel U-Net (in_chans = out_chans = 1), not "
            f"{layout_text(full)}: load it with apslib.convert.load_fastmri_unet instead"
        )
    file = Path(state_dict).expanduser().resolve()
    run_dir = check_run_folder(Path(run_dir).expanduser())
    out = []
    digest: str | None = None
    for target in dict.fromkeys(to):
        model = load_fastmri_unet(file, full, variant=TARGETS[target], trust_pickle=trust_pickle)
        digest = digest or _sha256(file)
        chans, levels = int(full["chans"]), int(full["num_pool_layers"])
        model_name = "fastMRI U-Net" if target == "fastmri" else "fastMRI U-Net APS"
        config = config_for(
            model_name,
            depth=levels,
            channels=tuple(chans * 2**k for k in range(levels + 1)),
            clamp=0.0,
            epochs=1,
            run_dir=str(run_dir),
            name=_run_name(target, name),
        ).resolve()
        unet = config.unet_config()
        if unet != model.config:
            raise AssertionError(f"internal error: {unet} != {model.config}")
        path = config.run_path
        info = {
            "source": str(file),
            "sha256": digest,
            "layout": full,
            "from": layout_text(full),
            "converted": target != "fastmri",
        }
        if _existing(path, unet.to_dict(), digest, force):
            out.append(ImportResult(config.display_name, path, target, skipped=True))
            continue
        with RunLock(path):
            prepare_run(path, config, fresh=True, imported=info)
            state = {
                "format": RUN_FORMAT,
                "apslib_version": __version__,
                "epoch": 0,
                "name": config.display_name,
                "config": config.to_dict(),
                "unet": unet.to_dict(),
                "model": model.state_dict(),
                "optimizer": None,
                "scheduler": None,
                "rng": None,
                "history": [],
                "world_size": 1,
                "imported": info,
            }
            history = {
                "name": config.display_name,
                "done": True,
                "epochs_planned": 0,
                "epochs_completed": 0,
                "history": [],
                "imported": info,
            }
            with writing(path, "free space or fix permissions, then rerun the same command"):
                atomic_torch_save(state, path / CHECKPOINT_FILE)
                atomic_write_json(path / HISTORY_FILE, history)
        del model, state
        read_run(path)
        read_checkpoint(path, mmap=True)
        out.append(ImportResult(config.display_name, path, target, skipped=False))
    return out


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m apslib.published",
        description="Write fastMRI's published U-Net weights (a state-dict file) as run folders that "
        "python -m apslib.evaluate and python -m apslib.reconstruct read.",
    )
    ap.add_argument(
        "--state-dict", required=True, help="the .pt file, e.g. knee_sc_leaderboard_state_dict.pt"
    )
    ap.add_argument(
        "--run-dir", required=True, help="runs folder; each run goes to RUN_DIR/<slug of its name>"
    )
    ap.add_argument(
        "--to",
        nargs="+",
        choices=list(TARGETS),
        default=["fastmri"],
        help="fastmri: fastMRI's own U-Net; aps: converted to APS (same weights). Default: fastmri",
    )
    ap.add_argument("--name", help=f"run name (default {DEFAULT_NAMES['fastmri']!r}; APS: '<name> → APS')")
    ap.add_argument("--chans", type=int, default=PUBLISHED_UNET["chans"], help="fastmri.models.Unet chans")
    ap.add_argument(
        "--num-pool-layers", type=int, default=PUBLISHED_UNET["num_pool_layers"], help="its num_pool_layers"
    )
    ap.add_argument(
        "--trust-pickle",
        action="store_true",
        help="let torch.load unpickle Python objects (e.g. a Lightning checkpoint's hyper-parameters); "
        "only for files from a source you trust",
    )
    ap.add_argument("--force", action="store_true", help="replace a run folder that holds another run")
    return ap


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        results = import_fastmri_unet(
            args.state_dict,
            args.run_dir,
            to=args.to,
            name=args.name,
            layout={"chans": args.chans, "num_pool_layers": args.num_pool_layers},
            trust_pickle=args.trust_pickle,
            force=args.force,
        )
    except (StateDictError, TrainingError, OSError, ValueError) as err:
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        return 1
    for r in results:
        state = "already there" if r.skipped else "written"
        print(f"{r.name}: {r.path} ({state})")
    print(
        "next: python -m apslib.reconstruct --run "
        f"{results[0].path} --data DATA --split val --out OUT (fastMRI's format)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run folders: the files of a training run, read back, verified and checked against each other.

One run = one model trained with one :class:`~apslib.training.config.TrainConfig`, in
``run_dir/<slug of its name>/`` (``"Baseline + DA"`` -> ``baseline-da``,
:func:`apslib.names.run_slug`)::

    config.json     format, apslib_version, name, slug, the resolved configuration, the U-Net's,
                    "data": the fingerprint of the data (:func:`~apslib.training.identity.data_fingerprint`),
                    "image_size": [height, width] of the training images
    history.json    name, done, epochs planned/completed, "error" (if it stopped on one),
                    "history": one record per epoch (epoch, train_loss, val_loss,
                    val_equiv_mse, val_equiv_nmse, val_psnr, lr, seconds,
                    world_size)
    checkpoint.pt   the last completed epoch (atomic write): CHECKPOINT_KEYS, "data", "image_size"
    .lock           while a process trains the run: pid, host, since, command

A run imported by :mod:`apslib.published` (weights only, ``"imported"`` in its files) is
finished, and training never continues it (:mod:`apslib.training.plan`).

The checkpoint is the run's record: its configuration (model, seed, everything that defines
the run), data fingerprint, epoch and history. :func:`read_run_files` reads the three files
and checks them against each other: a checkpoint of another run (another variant, widths,
seed, data ...), or a history the checkpoint does not continue, is a one-line
:class:`~apslib.training.errors.RunConflictError` naming both sides. A ``history.json`` (or
``config.json``) that is missing, damaged or behind its checkpoint is rebuilt from the
checkpoint (:func:`repair_run_files`, with a one-line warning), never an error.

Every error is a :class:`~apslib.training.errors.TrainingError` (``FileNotFoundError`` for a
run that does not exist) whose one-line message names the file and says what to do.
``config.json`` and ``checkpoint.pt`` record the layout they follow (``format``,
:data:`RUN_FORMAT`) and the apslib version that wrote them: files of an older layout (those
of apslib 0.1.0 record no version) are refused with a message saying to retrain, files of a
newer layout or with fields this version does not know with one saying to upgrade apslib.
The skip/resume/fresh plan of a call: :mod:`apslib.training.plan`; the folder and its lock:
:mod:`apslib.training.folder`.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from .. import __version__
from ..device import resolve_device
from ..io import atomic_torch_save, atomic_write_json, remove_temp_files
from ..models import unet_from_config
from ..unet import UNetConfig
from .config import TrainConfig
from .errors import RETRAIN_HINT, CheckpointError, RunVersionError, TrainingError
from .folder import writing
from .identity import check_history, check_same_run, imported_record

__all__ = [
    "CONFIG_FILE",
    "HISTORY_FILE",
    "CHECKPOINT_FILE",
    "RUN_FORMAT",
    "CHECKPOINT_KEYS",
    "RunFiles",
    "prepare_run",
    "write_history",
    "read_history",
    "save_epoch",
    "read_checkpoint",
    "stored_config",
    "read_run_files",
    "repair_run_files",
    "read_run",
    "load_model",
]

CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
CHECKPOINT_FILE = "checkpoint.pt"
RUN_FORMAT = 2  # the layout of config.json and checkpoint.pt (apslib 0.1.0 wrote 1)
CHECKPOINT_KEYS = (
    "format",
    "apslib_version",
    "epoch",
    "name",
    "config",
    "unet",
    "model",
    "optimizer",
    "scheduler",
    "rng",
    "history",
    "world_size",
)


# ---- Files of a run folder -----------------------------------------------------------


def _read_doc(path: Path, valid) -> tuple[dict | None, str | None]:
    """``(document, None)``, or ``(None, what is wrong)``: ``"missing"``, ``"damaged (...)"``."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None, "missing"
    except (OSError, ValueError) as err:
        return None, f"damaged ({_first_line(err)})"
    if not valid(doc):
        return None, "damaged (not a run record)"
    return doc, None


def _valid_history(doc) -> bool:
    return (
        isinstance(doc, dict)
        and isinstance(doc.get("history"), list)
        and all(isinstance(r, dict) for r in doc["history"])
    )


def _check_format(doc, file: Path, hint: str = f"train the run again with {RETRAIN_HINT}") -> None:
    """:class:`~apslib.training.errors.RunVersionError` unless ``doc`` (a stored
    ``config.json`` or checkpoint) follows :data:`RUN_FORMAT`: an older layout says
    ``hint`` (retrain), a newer one says to upgrade apslib."""
    doc = doc if isinstance(doc, dict) else {}
    version, found = doc.get("apslib_version"), doc.get("format")
    if version is None:
        raise RunVersionError(
            f"{file} was written by apslib 0.1.0, whose run folders apslib {__version__} does not "
            f"read: {hint}"
        )
    if isinstance(found, int) and found > RUN_FORMAT:
        raise RunVersionError(
            f"{file} was written by apslib {version} in format {found}, newer than the format "
            f"{RUN_FORMAT} apslib {__version__} reads: upgrade apslib to use it"
        )
    if found != RUN_FORMAT:
        raise RunVersionError(
            f"{file} was written by apslib {version} in format {found!r}; apslib {__version__} "
            f"reads format {RUN_FORMAT}: {hint}"
        )


def stored_config(d, file: Path, version: str | None = None) -> TrainConfig:
    """The resolved :class:`TrainConfig` a run file stored (``config.json``'s or a
    checkpoint's ``"config"``), as :meth:`TrainConfig.from_stored` reads it. A field this
    version does not know (written by a newer apslib) is a one-line
    :class:`~apslib.training.errors.RunVersionError` naming it and saying to upgrade; a
    value it refuses one naming the file."""
    if not isinstance(d, dict):
        raise CheckpointError(
            f"{file} holds no training configuration; train the run again with {RETRAIN_HINT}"
        )
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(d) - known)
    by = f"apslib {version}" if version else "another apslib"
    if unknown:
        raise RunVersionError(
            f"{file} has the configuration field(s) {', '.join(map(repr, unknown))}, which apslib "
            f"{__version__} does not know: it was written by {by}; upgrade apslib to use this run"
        )
    try:
        return TrainConfig.from_stored(dict(d))
    except (TypeError, ValueError) as err:
        text = " ".join(str(err).split())
        newer = version is not None and version != __version__
        then = "upgrade apslib to use this run" if newer else f"train the run again with {RETRAIN_HINT}"
        raise RunVersionError(
            f"{file} stores a configuration apslib {__version__} refuses ({text}); written by {by}: {then}"
        ) from None


def _config_doc(config: TrainConfig, extra: dict) -> dict:
    return {
        "format": RUN_FORMAT,
        "apslib_version": __version__,
        "name": config.display_name,
        "slug": config.slug,
        "config": config.to_dict(),
        "unet": config.unet_config().to_dict(),
        **extra,
    }


def prepare_run(path: Path, config: TrainConfig, fresh: bool, **extra) -> None:
    """Start or continue a run in ``path`` (its lock held): a ``fresh`` run's old files go
    (the history first: a reader never sees a history without its checkpoint), with the
    temporary files of writes a killed process left; ``config.json`` (format, version, name,
    slug, the resolved configuration, the U-Net's, ``extra``, e.g. ``data``) is (re)written."""
    config = config.resolve()
    with writing(path):
        if fresh:
            for f in (HISTORY_FILE, CHECKPOINT_FILE):
                (path / f).unlink(missing_ok=True)
            remove_temp_files(path)
        atomic_write_json(path / CONFIG_FILE, _config_doc(config, extra))


def write_history(
    path: Path,
    config: TrainConfig,
    history: list,
    done: bool,
    error: str | None = None,
    *,
    imported: dict | None = None,
) -> None:
    """``history.json`` of a run (``error``: why it stopped; ``imported``: an imported run's record)."""
    doc = {
        "name": config.display_name,
        "done": done,
        "epochs_planned": 0 if imported is not None else config.epochs,
        "epochs_completed": len(history),
        "history": history,
        **({"imported": imported} if imported is not None else {}),
    }
    if error:
        doc["error"] = error
    with writing(path, "fix it, then rerun the same command to resume"):
        atomic_write_json(path / HISTORY_FILE, doc)


def read_history(path) -> dict:
    """``history.json`` of a run folder (``{}`` when there is none, or it is damaged: the
    checkpoint holds the history, :func:`read_run_files`)."""
    doc, _ = _read_doc(Path(path) / HISTORY_FILE, _valid_history)
    return doc or {}


def save_epoch(path: Path, config: TrainConfig, state: dict, done: bool) -> None:
    """The checkpoint ``state`` (:data:`CHECKPOINT_KEYS` but ``format`` and
    ``apslib_version``, which are added; written atomically), then the history of a
    completed epoch. A full disk is one line (:class:`~apslib.io.AtomicWriteError`, as a
    :class:`~apslib.training.errors.RunFolderError`); the previous checkpoint stays."""
    state = {"format": RUN_FORMAT, "apslib_version": __version__, **state}
    with writing(path, "free space or fix permissions, then rerun the same command to resume"):
        atomic_torch_save(state, path / CHECKPOINT_FILE)
    write_history(path, config, state["history"], done)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    text = text.split(". ")[0]
    return f"{type(err).__name__}: {text[:120]}" if text else type(err).__name__


def read_checkpoint(path, *, mmap: bool = False, hint: str | None = None) -> dict:
    """The verified checkpoint of a run folder (or a checkpoint file), on the CPU.

    ``FileNotFoundError`` when there is none; :class:`~apslib.training.errors.CheckpointError`
    (naming the file and saying ``hint``, by default to retrain) when it is truncated,
    corrupt or lacks keys; :class:`~apslib.training.errors.RunVersionError` when another
    version wrote it in another format (a newer one: upgrade apslib).
    ``mmap=True`` maps the tensors instead of reading them (a cheap check of a large file).
    """
    path = Path(path)
    file = path / CHECKPOINT_FILE if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"no checkpoint {file}: train the model first")
    hint = hint or f"train the run again with {RETRAIN_HINT}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about foreign pickles before failing
            ckpt = torch.load(file, map_location="cpu", weights_only=True, mmap=mmap)
    except MemoryError:
        raise
    except Exception as err:  # torch, zip and pickle errors of a damaged file all differ
        raise CheckpointError(
            f"{file} is unreadable, truncated or corrupt ({_first_line(err)}); {hint}"
        ) from err
    if not isinstance(ckpt, dict) or "format" not in ckpt:
        found = list(ckpt)[:4] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{file} is not an apslib checkpoint (found {found!r}); {hint}")
    _check_format(ckpt, file, hint)
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{file} lacks {missing}; {hint}")
    if not isinstance(ckpt["history"], list) or len(ckpt["history"]) != ckpt["epoch"]:
        raise CheckpointError(f"{file}: its history does not match its epoch ({ckpt['epoch']}); {hint}")
    return ckpt


def _unet_of(ckpt: dict, file: Path) -> UNetConfig:
    """The :class:`~apslib.unet.UNetConfig` a verified checkpoint stores; a field this
    version does not know is a one-line :class:`~apslib.training.errors.RunVersionError`
    naming it and saying to upgrade."""
    d = ckpt["unet"] if isinstance(ckpt["unet"], dict) else {}
    unknown = sorted(set(d) - {f.name for f in fields(UNetConfig)})
    if unknown:
        raise RunVersionError(
            f"{file} has the U-Net field(s) {', '.join(map(repr, unknown))}, which apslib "
            f"{__version__} does not know: it was written by apslib {ckpt.get('apslib_version')}; "
            "upgrade apslib to use this run"
        )
    try:
        return UNetConfig.from_dict(d)
    except (TypeError, ValueError) as err:
        text = " ".join(str(err).split())
        raise RunVersionError(
            f"{file} describes a model apslib {__version__} refuses ({text}); written by apslib "
            f"{ckpt.get('apslib_version')}: upgrade apslib, or train the run again with {RETRAIN_HINT}"
        ) from None


def _model_of(ckpt: dict, file: Path) -> torch.nn.Module:
    """The U-Net a verified checkpoint describes, with its weights (CPU, train mode)."""
    unet = _unet_of(ckpt, file)
    try:
        model = unet_from_config(unet)
    except (TypeError, ValueError) as err:
        text = " ".join(str(err).split())
        raise RunVersionError(
            f"{file} describes a model apslib {__version__} cannot build ({text}); written by "
            f"apslib {ckpt.get('apslib_version')}: upgrade apslib, or train the run again with {RETRAIN_HINT}"
        ) from None
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise CheckpointError(
            f"{file}: its weights do not fit the {unet.name} U-Net it describes "
            f"({_first_line(err)}); the file was edited or damaged: train the run again with {RETRAIN_HINT}"
        ) from None
    return model


# ---- The three files together --------------------------------------------------------


@dataclass
class RunFiles:
    """A run folder's files, read and checked against each other (:func:`read_run_files`).

    ``config`` is ``config.json``'s (the checkpoint's where ``config.json`` is missing or
    damaged); ``history`` the checkpoint's (``history.json``'s when there is no checkpoint);
    ``epochs_planned`` the epochs the run was training towards when its last epoch was
    recorded (``history.json``'s, else the checkpoint's configuration's); ``repairs`` maps a
    file that should be rebuilt from the checkpoint to what is wrong with it.
    ``data``/``image_size``: the fingerprint and ``[height, width]`` of its training data
    (``None``: not recorded); ``imported``: the record of an imported run, else ``None``.
    """

    path: Path
    name: str
    config: TrainConfig
    checkpoint: dict | None
    history: list
    done: bool
    epochs_planned: int
    data: dict | None = None
    repairs: dict[str, str] = field(default_factory=dict)
    image_size: list[int] | None = None
    imported: dict | None = None

    @property
    def epochs_done(self) -> int:
        return len(self.history)

    @property
    def finished(self) -> bool:
        """Every planned epoch trained (an imported run, with no epochs to train, is finished)."""
        return self.imported is not None or self.epochs_done >= self.epochs_planned

    def model(self, device: str | torch.device = "cpu") -> torch.nn.Module:
        """The trained U-Net, in eval mode on ``device``."""
        if self.checkpoint is None:
            raise FileNotFoundError(f"no checkpoint {self.path / CHECKPOINT_FILE}: train the model first")
        return _model_of(self.checkpoint, self.path / CHECKPOINT_FILE).to(resolve_device(device)).eval()

    def notice(self, then: str) -> str:
        """One line on the files rebuilt from the checkpoint, ending with ``then``."""
        what = "; ".join(f"{self.path / f} is {why}" for f, why in self.repairs.items())
        return f"{what}: {then} from {CHECKPOINT_FILE} ({self.epochs_done} epochs)"


def read_run_files(path, *, checkpoint: dict | None = None) -> RunFiles:
    """Read a run folder's ``config.json``, ``history.json`` and ``checkpoint.pt`` (its
    tensors mapped, not read; or the verified ``checkpoint`` given) and check that they
    are one run's: the same identity (:meth:`TrainConfig.identity`), the same data
    fingerprint where both record one, and a history the checkpoint continues.

    Raises ``FileNotFoundError`` (no run), :class:`~apslib.training.errors.RunConflictError`
    (files of two runs, one line naming both), :class:`~apslib.training.errors.CheckpointError`
    or :class:`~apslib.training.errors.RunVersionError` (a damaged or foreign file). Files
    to rebuild from the checkpoint are listed in ``repairs``; nothing is written here."""
    path = Path(path)
    cfg_file, ckpt_file = path / CONFIG_FILE, path / CHECKPOINT_FILE
    cfg_doc, cfg_problem = _read_doc(cfg_file, lambda d: isinstance(d, dict))
    hist_doc, hist_problem = _read_doc(path / HISTORY_FILE, _valid_history)
    config = None
    if cfg_doc is not None:
        _check_format(cfg_doc, cfg_file)
        config = stored_config(cfg_doc.get("config"), cfg_file, cfg_doc.get("apslib_version"))
    ckpt = checkpoint
    if ckpt is None and (ckpt_file.exists() or config is None):
        if not ckpt_file.exists():
            if cfg_problem == "missing":
                raise FileNotFoundError(f"no training run in {path} (no {CONFIG_FILE})")
            raise TrainingError(
                f"{cfg_file} is {cfg_problem} and there is no {CHECKPOINT_FILE} to rebuild it from: "
                f"delete the run folder {path} or pass {RETRAIN_HINT}"
            )
        ckpt = read_checkpoint(ckpt_file, mmap=True)
    repairs: dict[str, str] = {}
    if ckpt is None:  # a run that has not completed an epoch
        assert config is not None
        records = hist_doc["history"] if hist_doc else []
        done = bool(hist_doc.get("done", False)) if hist_doc else False
        name = cfg_doc.get("name", path.name) if cfg_doc else path.name
        planned = _planned(hist_doc, config.epochs)
        doc = cfg_doc or {}
        size = doc.get("image_size")
        return RunFiles(path, name, config, None, records, done, planned, doc.get("data"), image_size=size)
    own = stored_config(ckpt["config"], ckpt_file, ckpt.get("apslib_version"))
    name = str((cfg_doc or {}).get("name") or ckpt.get("name") or own.display_name)
    if _unet_of(ckpt, ckpt_file).resolve() != own.unet_config():
        raise CheckpointError(
            f"{ckpt_file}: its model (unet) is not the one its training configuration describes; "
            f"the file was edited or damaged: train the run again with {RETRAIN_HINT}"
        )
    data = ckpt.get("data") or (cfg_doc or {}).get("data")
    if config is None:
        config, repairs[CONFIG_FILE] = own, str(cfg_problem)
    else:
        stored = (cfg_doc or {}).get("data")
        check_same_run(path.name, CHECKPOINT_FILE, own, ckpt.get("data"), CONFIG_FILE, config, stored)
    history = list(ckpt["history"])
    own_done = int(ckpt["epoch"]) >= int(own.epochs)
    done, planned = own_done, int(own.epochs)
    if hist_doc is None:
        repairs[HISTORY_FILE] = str(hist_problem)
    else:
        check_history(path.name, HISTORY_FILE, hist_doc["history"], CHECKPOINT_FILE, history)
        if len(hist_doc["history"]) == len(history):
            done, planned = bool(hist_doc.get("done", False)), _planned(hist_doc, planned)
        else:
            behind = f"{len(hist_doc['history'])} of {len(history)} epochs"
            repairs[HISTORY_FILE] = f"behind its checkpoint ({behind})"
    imported = imported_record(ckpt, cfg_doc, hist_doc)
    if imported is not None:  # weights only: nothing was or is to be trained
        done, planned = True, 0
    size = ckpt.get("image_size") or (cfg_doc or {}).get("image_size")
    return RunFiles(path, name, config, ckpt, history, done, planned, data, repairs, size, imported)


def _planned(hist_doc: dict | None, default: int) -> int:
    value = (hist_doc or {}).get("epochs_planned")
    return value if isinstance(value, int) and not isinstance(value, bool) else int(default)


def repair_run_files(path) -> RunFiles:
    """Rebuild the ``config.json`` / ``history.json`` of a run folder that are missing,
    damaged or behind its checkpoint, from the checkpoint (which holds both), with a
    one-line warning. Call it with the run's lock held."""
    files = read_run_files(path)
    if not files.repairs or files.checkpoint is None:
        return files
    ckpt = files.checkpoint
    if CONFIG_FILE in files.repairs:
        kept = {k: getattr(files, k) for k in ("data", "image_size", "imported")}
        extra = {"world_size": ckpt.get("world_size", 1), **{k: v for k, v in kept.items() if v is not None}}
        with writing(files.path):
            atomic_write_json(files.path / CONFIG_FILE, _config_doc(files.config, extra))
    if HISTORY_FILE in files.repairs:
        write_history(files.path, files.config, files.history, files.done, imported=files.imported)
    warnings.warn(files.notice("rebuilt"), stacklevel=2)
    return files


def read_run(path) -> dict:
    """``{"config": TrainConfig, "history": [...], "done": bool, "path": Path, "name",
    "epochs_done", "epochs_planned", "finished", "imported"}`` of a run folder, its files checked
    against each other (:func:`read_run_files`). A ``history.json`` that is missing or
    damaged is read from the checkpoint instead, with a one-line warning (nothing is written)."""
    files = read_run_files(path)
    if files.repairs:
        warnings.warn(files.notice("the run is read"), stacklevel=2)
    return {
        "path": files.path,
        "config": files.config,
        "history": files.history,
        "done": files.done,
        "name": files.name,
        "epochs_done": files.epochs_done,
        "epochs_planned": files.epochs_planned,
        "finished": files.finished,
        "imported": files.imported is not None,
    }


def load_model(path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The trained U-Net of a run folder (or a checkpoint file), in eval mode: a
    :class:`~apslib.unet.UNet`, or for fastMRI's architecture an
    :class:`~apslib.convert.EquivariantFastMRIUnet` (:func:`apslib.models.unet_from_config`).
    A run folder's checkpoint is first checked against its ``config.json`` and
    ``history.json`` (:func:`read_run_files`)."""
    path = Path(path)
    ckpt = read_checkpoint(path)
    if path.is_dir():
        return read_run_files(path, checkpoint=ckpt).model(device)
    return _model_of(ckpt, path).to(resolve_device(device)).eval()

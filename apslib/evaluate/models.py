"""Trained runs and the validation slices they are evaluated on.

Conventions
-----------
``F`` is a trained U-Net followed by the run's output clamp (``[-clamp, clamp]``, as in
training), acting on instance-normalised images ``(N, 1, H, W)``. :func:`predict` runs it
in batches without gradients and returns float32 on the CPU, optionally with the phase
index each APS level chose (indices into :data:`apslib.polyphase.PHASES`).

:class:`ValData` holds every validation slice in memory, normalised, with the per-slice
``mean``/``std`` that :func:`apslib.data.denormalize` needs, the volume's ``max_value`` (the
data range of fastmri's PSNR/SSIM) and the short acquisition name (``PD``/``PDFS``,
:data:`apslib.data.ACQUISITION_NAMES`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data import ACQUISITION_NAMES, denormalize

__all__ = ["TRAIN_HINT", "ModelRun", "load_runs", "predict", "ValData", "load_val"]

TRAIN_HINT = (
    "train them with notebooks/02_train.ipynb (`python -m apslib.notebooks --only 02`) "
    "or `python -m apslib.training --data DATA --run-dir {run_dir} --model NAME --seed {seed}`"
)


@dataclass
class ModelRun:
    """A trained run: its display name, model (eval mode), output clamp and config, and how
    far it trained: ``epochs_done`` of ``epochs_planned`` (``None`` for a model that is not
    a trained run); ``data``: the fingerprint of the data it was trained on and
    ``image_size`` its training images' ``[height, width]`` (``None`` where not recorded);
    ``imported``: weights imported by :mod:`apslib.published` (no epoch trained)."""

    name: str
    model: torch.nn.Module
    clamp: float | None
    config: object
    path: Path
    epochs_done: int | None = None
    epochs_planned: int | None = None
    data: dict | None = None
    image_size: list[int] | None = None
    imported: bool = False

    @property
    def finished(self) -> bool:
        """Whether the run trained every epoch it planned (``True`` when that is unknown,
        and for an imported run, which plans none)."""
        if self.imported or self.epochs_done is None or self.epochs_planned is None:
            return True
        return self.epochs_done >= self.epochs_planned

    @property
    def depth(self) -> int:
        return int(self.model.config.depth)

    @property
    def is_adaptive(self) -> bool:
        """Whether the model chooses its grids (APS, LPS): its grid flips are counted."""
        return self.model.config.variant in ("aps", "lps")


def load_runs(
    run_dir, models: Sequence[str], device: str | torch.device = "cpu", *, seed: int = 0
) -> dict[str, ModelRun]:
    """Load the run of each paper name in ``models`` trained with ``seed``
    (``run_dir/<slug>``, or ``run_dir/<slug>-seed<k>``: :func:`apslib.names.run_slug`); a
    clear error naming ``run_dir`` and how to train them when some are missing.

    Each run's checkpoint, ``config.json`` and ``history.json`` are checked against each
    other first (:func:`apslib.training.runs.read_run_files`): files of two runs are a
    one-line error. A run that has not trained all its planned epochs is loaded as it
    stands, with a warning naming its epochs (``ModelRun.epochs_done`` /
    ``epochs_planned`` / ``finished``); an imported run (:mod:`apslib.published`) is
    finished. A missing run's error names the run folders ``run_dir`` holds (or that
    ``run_dir`` is itself one run's folder)."""
    import warnings

    from ..device import resolve_device
    from ..names import run_slug
    from ..training.runs import CHECKPOINT_FILE, read_run_files

    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(f"run_dir {run_dir} is a file, not a folder of trained runs")
    dev = resolve_device(device) if isinstance(device, str) else device
    paths = {m: run_dir / run_slug(m, seed) for m in models}
    missing = [m for m in models if not (paths[m] / CHECKPOINT_FILE).is_file()]
    if missing:
        raise FileNotFoundError(_missing_runs(run_dir, missing, seed, [paths[m] for m in missing]))
    out = {}
    for name, path in paths.items():
        files = read_run_files(path)
        if files.repairs:
            warnings.warn(files.notice("the run is read"), stacklevel=2)
        run = ModelRun(
            name,
            files.model(dev),
            files.config.clamp,
            files.config,
            path,
            epochs_done=files.epochs_done,
            epochs_planned=files.epochs_planned,
            data=files.data,
            image_size=files.image_size,
            imported=files.imported is not None,
        )
        if not run.finished:
            warnings.warn(
                f"{name} (seed {seed}, {path}) is unfinished: {run.epochs_done} of "
                f"{run.epochs_planned} epochs trained; it is evaluated as it stands after epoch "
                f"{run.epochs_done} (finish it by rerunning its training command)",
                stacklevel=2,
            )
        out[name] = run
    return out


def _missing_runs(run_dir: Path, missing: list[str], seed: int, paths: list[Path]) -> str:
    """The one-line error of runs that are not in ``run_dir``: what was looked for, what
    ``run_dir`` holds instead, and how to train them."""
    from ..training.runs import CHECKPOINT_FILE, CONFIG_FILE

    looked = ", ".join(str(p / CHECKPOINT_FILE) for p in paths)
    head = f"no trained run for {missing} (seed {seed}) in {run_dir} (looked for {looked})"
    if (run_dir / CHECKPOINT_FILE).is_file() or (run_dir / CONFIG_FILE).is_file():
        return (
            f"{head}: {run_dir} is itself a run folder, not a folder of runs; pass its parent "
            f"{run_dir.parent} as --run-dir (run_dir)"
        )
    if not run_dir.is_dir():
        held = f"{run_dir} does not exist"
    else:
        runs = sorted(p.name for p in run_dir.iterdir() if (p / CHECKPOINT_FILE).is_file())
        shown = ", ".join(runs[:12]) + (f" and {len(runs) - 12} more" if len(runs) > 12 else "")
        held = f"{run_dir} holds the runs {shown}" if runs else f"{run_dir} holds no trained run"
    return f"{head}; {held}; " + TRAIN_HINT.format(run_dir=run_dir, seed=seed)


@torch.no_grad()
def predict(
    run: ModelRun,
    x: torch.Tensor,
    *,
    batch_size: int = 32,
    return_phases: bool = False,
    uniform_batches: bool = False,
):
    """``F(x)`` for ``(N, 1, H, W)`` ``x`` in batches (float32 output on the CPU), and with
    ``return_phases`` the per-level phase indices ``(N,)`` (APS levels only).
    ``uniform_batches`` pads a short last batch (with copies of its first image, dropped
    from the result) so every image goes through a pass of the same batch shape: kernels
    round differently per batch size, not per position in a batch."""
    dev = next(run.model.parameters()).device
    outs, phases = [], []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size].to(dev, torch.float32)
        n = xb.shape[0]
        if uniform_batches and x.shape[0] > batch_size and n < batch_size:
            xb = torch.cat([xb, xb[:1].expand(batch_size - n, *xb.shape[1:])])
        y, ph = run.model(xb, return_phases=True)
        y, ph = y[:n], [p if p is None else p[:n] for p in ph]
        if run.clamp:
            y = y.clamp(-run.clamp, run.clamp)
        outs.append(y.float().cpu())
        phases.append([p.cpu() for p in ph if p is not None])
    out = torch.cat(outs) if outs else torch.zeros(0)
    if not return_phases:
        return out
    levels = len(phases[0]) if phases else 0
    return out, [torch.cat([p[lv] for p in phases]) for lv in range(levels)]


@dataclass
class ValData:
    """The validation slices in memory: normalised ``image``/``target`` ``(N, 1, H, W)``,
    per-slice ``mean``/``std``/``max_value`` ``(N,)``, ``fname``, ``slice_num`` and short
    ``acquisition`` (``PD``/``PDFS``) lists."""

    image: torch.Tensor
    target: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    max_value: torch.Tensor
    fname: list
    slice_num: list
    acquisition: list
    volumes: list = field(default_factory=list)
    left_out: int = 0  # constant slices left out (load_val's exclude_constant)

    def __post_init__(self):
        if not self.volumes:
            self.volumes = sorted(set(self.fname))

    def __len__(self) -> int:
        return self.image.shape[0]

    def denorm(self, x: torch.Tensor, index=None) -> torch.Tensor:
        """``x * std + mean`` of the slices ``index`` (default all): :func:`apslib.data.denormalize`."""
        idx = slice(None) if index is None else index
        return denormalize(x, self.mean[idx], self.std[idx])

    def volume_index(self, vol: str) -> list[int]:
        return [i for i, f in enumerate(self.fname) if f == vol]

    def default_example(self) -> int:
        """The slice the examples figures show by default: the middle slice of the first volume."""
        first = self.volume_index(self.volumes[0])
        return first[len(first) // 2]


def load_val(
    data_root,
    *,
    center_fractions=(0.08,),
    accelerations=(4,),
    seed: int = 0,
    exclude_constant: bool = False,
) -> ValData:
    """All validation slices of ``data_root`` (fixed masks per file) as :class:`ValData`.

    ``exclude_constant``: leave out the slices whose k-space or target is constant (all
    zero, say: :func:`apslib.data.constant_slices`), where NMSE and PSNR are undefined and
    APS's grid choice is a tie; the validator's one warning names them, ``ValData.left_out``
    counts them; a volume whose every slice is constant is left out whole, a split whose every
    slice is constant is refused."""
    from ..data import DataError, check_data_root, check_split, make_dataset, split_dir

    left_out = 0
    if exclude_constant:
        info = check_split(split_dir(check_data_root(data_root, splits=("val",)), "val"))
        left_out = len(info.constant_slices)
        if left_out and left_out == info.slices:
            raise DataError(
                f"every slice of {info.folder} is constant (all-zero or flat k-space or target): "
                "nothing to evaluate; check the data (`python -m apslib.data info`)"
            )
    ds = make_dataset(
        data_root,
        "val",
        center_fractions=center_fractions,
        accelerations=accelerations,
        seed=seed,
        exclude_constant=exclude_constant,
    )
    items = [ds[i] for i in range(len(ds))]
    return ValData(
        image=torch.stack([s.image for s in items]).unsqueeze(1).float(),
        target=torch.stack([s.target for s in items]).unsqueeze(1).float(),
        mean=torch.tensor([float(s.mean) for s in items], dtype=torch.float64),
        std=torch.tensor([float(s.std) for s in items], dtype=torch.float64),
        max_value=torch.tensor([float(s.max_value) for s in items], dtype=torch.float64),
        fname=[str(s.fname) for s in items],
        slice_num=[int(s.slice_num) for s in items],
        acquisition=[ACQUISITION_NAMES.get(s.acquisition, s.acquisition) for s in items],
        left_out=left_out,
    )

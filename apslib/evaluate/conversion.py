"""Notebook 07: fastMRI's U-Net trained on its own grid, converted to APS without
retraining, fine-tuned, and trained as APS from scratch.

Conventions
-----------
The **source** is a trained run of ``"fastMRI U-Net"`` (``fastmri.models.Unet``: zero
padding, fixed grid). Without retraining, its weights give two more models
(:func:`converted_runs`): ``"<source> (circular)"``, the same function with circular padding
(the conversion at grid ``(0, 0)``), and ``"<source> → APS"`` (or ``→ LPF-j``), the
conversion (:func:`apslib.convert.aps_unet_from_fastmri`); the two steps separate what
the padding changes from what the chosen grids change. :func:`finetune_config` trains the
conversion further from the source's weights (``init_from``), at the learning rate the
source ended with; :func:`scratch_config` trains ``"fastMRI U-Net APS"`` from a random start
with the source's schedule. :func:`evaluate_conversion` evaluates all five with notebook
03's protocols (:func:`apslib.evaluate.pipeline.evaluate_loaded`) and
:func:`conversion_table` puts them in one table. :func:`lps_scorer_table` answers the
question for learnable polyphase sampling: what a fastMRI U-Net would have to add (scorers
with no counterpart in its checkpoint, so no conversion without training).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..names import model_name
from ..training.config import TrainConfig
from .models import ModelRun, load_runs
from .pipeline import EvalResult, _check_seeds, evaluate_loaded
from .tables import table1, table4, worst_case_table

__all__ = [
    "stage_names",
    "converted_runs",
    "finetune_config",
    "scratch_config",
    "evaluate_conversion",
    "conversion_table",
    "lps_scorer_table",
]


def _target(variant: str, filter_size: int) -> str:
    return model_name(variant, filter_size)  # "APS", "APS-3", "LPF-3"


def stage_names(source: str = "fastMRI U-Net", variant: str = "aps", filter_size: int = 1) -> dict:
    """The model name of each stage: ``trained``, ``circular``, ``converted``,
    ``fine-tuned`` (a run name) and ``from scratch`` (a model name)."""
    target = _target(variant, filter_size)
    return {
        "trained": source,
        "circular": f"{source} (circular)",
        "converted": f"{source} → {target}",
        "fine-tuned": f"{source} → {target}, fine-tuned",
        "from scratch": model_name(variant, filter_size, architecture="fastmri"),
    }


def converted_runs(
    source: ModelRun, *, variant: str = "aps", filter_size: int = 1, criterion: str = "l2"
) -> dict[str, ModelRun]:
    """``{name: ModelRun}``: the trained ``source`` run of fastMRI's U-Net, the same weights
    with circular padding (LPF-1: grid ``(0, 0)``), and converted to ``variant``
    (``"aps"`` / ``"lpf"``) with blur ``filter_size``, in this order; no retraining (eval
    mode, the source's device)."""
    from ..convert import EquivariantFastMRIUnet, aps_unet_from_fastmri

    model = source.model
    if not isinstance(model, EquivariantFastMRIUnet) or model.variant != "baseline":
        raise ValueError(
            f"{source.name!r} is not a trained 'fastMRI U-Net' run (fastMRI's own sampling): train "
            "one with config_for('fastMRI U-Net', ...) (notebook 07) and convert that"
        )
    names = stage_names(source.name, variant, filter_size)
    cfg = source.config
    circ = aps_unet_from_fastmri(model, variant="lpf").eval()
    conv = aps_unet_from_fastmri(model, variant=variant, filter_size=filter_size, criterion=criterion).eval()
    circ_cfg = cfg.like("fastMRI U-Net LPF-1", name=names["circular"])
    conv_cfg = cfg.like(names["from scratch"], name=names["converted"], criterion=criterion)
    # the source's weights: its epochs, data and image size
    same = dict(
        epochs_done=source.epochs_done,
        epochs_planned=source.epochs_planned,
        data=source.data,
        image_size=source.image_size,
        imported=source.imported,
    )
    return {
        names["trained"]: source,
        names["circular"]: ModelRun(names["circular"], circ, source.clamp, circ_cfg, source.path, **same),
        names["converted"]: ModelRun(names["converted"], conv, source.clamp, conv_cfg, source.path, **same),
    }


def finetune_config(
    source: TrainConfig, epochs: int, *, lr: float | None = None, variant: str = "aps", filter_size: int = 1
) -> TrainConfig:
    """The run that trains the conversion of the ``source`` run (a ``"fastMRI U-Net"``
    configuration) for ``epochs`` more epochs from its trained weights (``init_from``), at
    ``lr`` (default: the learning rate the source's schedule ended at), named
    ``"<source> → APS, fine-tuned"``."""
    if lr is None:
        lr = source.lr * source.lr_gamma ** ((source.epochs - 1) // source.lr_step)
    names = stage_names(source.display_name, variant, filter_size)
    return source.like(
        names["from scratch"], name=names["fine-tuned"], init_from=str(source.run_path), epochs=epochs, lr=lr
    )


def scratch_config(source: TrainConfig, *, variant: str = "aps", filter_size: int = 1) -> TrainConfig:
    """``"fastMRI U-Net APS"`` (or the ``variant``/``filter_size`` given) trained from a
    random start exactly like the ``source`` run (data, sizes, schedule, seed)."""
    return source.like(stage_names(source.display_name, variant, filter_size)["from scratch"])


def evaluate_conversion(
    run_dir,
    data_root,
    results_dir,
    *,
    source: str = "fastMRI U-Net",
    variant: str = "aps",
    filter_size: int = 1,
    seeds: Sequence[int] = (0,),
    device: str = "auto",
    prefix: str = "conversion",
    **options,
) -> EvalResult:
    """Notebook 03's protocols (random shifts, every shift modulo ``2**depth`` on
    ``sweep_slices`` slices, examples) on the five stages of each training seed: the trained
    ``source`` run, its circular and converted forms (:func:`converted_runs`), the
    fine-tuned run and the run trained from scratch (both in ``run_dir``; train them with
    :func:`finetune_config` / :func:`scratch_config`). ``options``: ``seed``, ``max_shift``,
    ``sweep_slices``, ``batch_size``, ``example_index`` of
    :func:`apslib.evaluate.pipeline.evaluate_loaded`. Writes ``results_dir/{prefix}*``."""
    names = stage_names(source, variant, filter_size)
    trained = [names["fine-tuned"], names["from scratch"]]
    all_runs = {}
    for s in _check_seeds(seeds):
        runs = load_runs(run_dir, [source, *trained], device, seed=s)  # every missing run named
        stages = converted_runs(runs[source], variant=variant, filter_size=filter_size)
        all_runs[s] = {**stages, **{n: runs[n] for n in trained}}
    return evaluate_loaded(all_runs, data_root, results_dir, prefix=prefix, **options)


def conversion_table(
    df: pd.DataFrame, models: Sequence[str] | None = None, *, value: str = "value"
) -> pd.DataFrame:
    """One row per stage: PSNR and SSIM (unshifted, mean over volumes), equivariance NMSE
    (random protocol, mean over slices), decline in PSNR under the random shifts (mean over
    volumes), all mean over training seeds (``value="sd"``: their spread); and over every
    seed the worst equivariance NMSE of the exhaustive protocol and the APS grid flips.
    Rows: ``models`` (the stages) in order, then the others (the ``Zero-filled`` input)."""
    t1 = table1(df, models, value=value)
    t4 = table4(df, models, value=value)
    worst = worst_case_table(df, models)
    out = pd.DataFrame(
        {
            "PSNR dB": t1[("psnr", "all")],
            "SSIM": t1[("ssim", "all")],
            "eq NMSE": t1[("eq_nmse", "all")],
            "PSNR decline dB": t4[("mean", "all")].reindex(t1.index),
        },
        index=t1.index,  # the stages in order, then the zero-filled reference row
    )
    if value == "value":
        out["eq NMSE max (every shift)"] = worst["eq_nmse max"].reindex(out.index)
        flips = worst["flips count"] if "flips count" in worst else pd.Series(dtype=float)
        out["flips"] = flips.reindex(out.index)
    out.index.name = "model"
    out.attrs.update(t1.attrs)  # the epochs of unfinished runs, if any
    return out


def lps_scorer_table(chans: int = 32, num_pool_layers: int = 4) -> pd.DataFrame:
    """Per encoder level of ``fastmri.models.Unet(1, 1, chans, num_pool_layers)``: the
    channels its pooling sees (``chans * 2**level``), the width of the learned scorer LPS
    would put there (:func:`apslib.learned.scorer_width`) and the parameters it adds
    (:func:`apslib.learned.scorer_parameters`), with a ``total`` row that also gives the
    fastMRI U-Net's own parameter count and the share the scorers add. None of these
    parameters is in a fastMRI checkpoint: they need training."""
    from fastmri.models import Unet

    from ..learned import scorer_parameters, scorer_width

    if chans < 1 or num_pool_layers < 1:
        raise ValueError(f"chans and num_pool_layers must be >= 1, got {chans}, {num_pool_layers}")
    base = sum(p.numel() for p in Unet(1, 1, chans, num_pool_layers).parameters())
    rows = [
        {
            "level": str(k + 1),
            "channels": chans * 2**k,
            "scorer width": scorer_width(chans * 2**k),
            "scorer parameters": scorer_parameters(chans * 2**k),
        }
        for k in range(num_pool_layers)
    ]
    added = sum(r["scorer parameters"] for r in rows)
    rows.append(
        {
            "level": "total",
            "scorer parameters": added,
            "U-Net parameters": base,
            "added (%)": 100 * added / base,
        }
    )
    return pd.DataFrame(rows).set_index("level")

"""Evaluation of trained runs: the paper's shift protocols and result tables.

Everything the evaluation notebooks (03 in distribution, 04 out of distribution) compute
lives here, one concern per module, each with its conventions in its docstring:

* :mod:`~apslib.evaluate.models`: load trained runs (:func:`load_runs`), run them
  (:func:`predict`), the validation slices in memory (:func:`load_val`, :class:`ValData`);
* :mod:`~apslib.evaluate.protocols`: the random protocol in distribution
  (:func:`evaluate_in_distribution`) and out of it (:func:`evaluate_ood`), every shift
  modulo ``2**depth`` (:func:`exhaustive_shifts`), grid flips (:func:`count_flips`) and
  phase margins (:func:`smallest_phase_margin`);
* :mod:`~apslib.evaluate.tables`: tidy rows and files (:func:`write_table`,
  :func:`read_table`), the paper-shaped pivots (:func:`table1`, :func:`table2`,
  :func:`table4`, :func:`worst_case_table`) and the one number formatter
  (:func:`format_value`, :func:`format_table`);
* :mod:`~apslib.evaluate.examples`: the examples figure's arrays (:class:`Examples`);
* :mod:`~apslib.evaluate.beyond`: shifts beyond integer circular ones (notebook 06):
  sub-pixel (:func:`subpixel_protocol`), physical k-space moves through the data pipeline
  (:func:`physical_protocol`) and moved fields of view (:func:`fov_protocol`);
* :mod:`~apslib.evaluate.pipeline`: whole evaluations that write the result files
  (:func:`evaluate_runs`, :func:`evaluate_runs_ood`, :func:`evaluate_beyond`); :mod:`~apslib.evaluate.cli`:
  ``python -m apslib.evaluate``;
* :mod:`~apslib.evaluate.provenance`: what an evaluation evaluated (:class:`RunRecord`):
  each run's epochs and the data it was trained on against the data evaluated on, the
  ``other data`` label and ``{prefix}_runs.json``;
* :mod:`~apslib.evaluate.conversion`: fastMRI's U-Net trained, converted to APS without
  retraining, fine-tuned and trained as APS from scratch (notebook 07,
  :func:`evaluate_conversion`, :func:`conversion_table`);
* :mod:`~apslib.evaluate.alias_free`: the alias-free U-Net's study (notebook 08): aliasing
  of activations and low-passes on synthetic maps, the output clamp's activity and the
  targets checked against notebook 06's tables (imported from the module).

The metrics themselves are :mod:`apslib.metrics` (:func:`~apslib.metrics.image_metrics`,
:func:`~apslib.metrics.volume_metrics`); the figures are :mod:`apslib.plots`. This package
draws nothing and imports no matplotlib. Helpers of one study only (the targets of the
frontier in :mod:`~apslib.evaluate.beyond`, the stage names in
:mod:`~apslib.evaluate.conversion`) are imported from their module.
"""

from .beyond import (
    PAIR_COLUMNS,
    beyond_table,
    fov_protocol,
    frontier_points,
    neighbour_flips,
    physical_protocol,
    physical_samples,
    read_kspace_slices,
    shift_summary,
    subpixel_protocol,
)
from .cli import main
from .conversion import (
    conversion_table,
    converted_runs,
    evaluate_conversion,
    finetune_config,
    lps_scorer_table,
    scratch_config,
)
from .examples import Examples, compute_examples, read_examples, val_example, write_examples
from .models import ModelRun, ValData, load_runs, load_val, predict
from .pipeline import (
    PHYSICAL_SHIFTS,
    EvalResult,
    evaluate_beyond,
    evaluate_loaded,
    evaluate_runs,
    evaluate_runs_ood,
)
from .protocols import (
    EQ_METRICS,
    count_flips,
    evaluate_in_distribution,
    evaluate_ood,
    evenly_spaced_indices,
    exhaustive_shifts,
    smallest_phase_margin,
)
from .provenance import RunRecord
from .tables import (
    COLUMNS,
    TableError,
    decline_bound_table,
    epochs_note,
    flip_rows,
    format_table,
    format_value,
    format_with_spread,
    pool_seeds,
    read_table,
    seed_summary,
    stat_rows,
    summarise,
    table1,
    table2,
    table4,
    worst_case_table,
    write_table,
)

__all__ = [
    "PAIR_COLUMNS",
    "PHYSICAL_SHIFTS",
    "evaluate_beyond",
    "beyond_table",
    "frontier_points",
    "fov_protocol",
    "physical_protocol",
    "physical_samples",
    "read_kspace_slices",
    "shift_summary",
    "subpixel_protocol",
    "neighbour_flips",
    "COLUMNS",
    "format_with_spread",
    "pool_seeds",
    "seed_summary",
    "EQ_METRICS",
    "ModelRun",
    "ValData",
    "EvalResult",
    "Examples",
    "predict",
    "load_runs",
    "load_val",
    "count_flips",
    "smallest_phase_margin",
    "evaluate_in_distribution",
    "evenly_spaced_indices",
    "exhaustive_shifts",
    "evaluate_ood",
    "evaluate_runs",
    "evaluate_loaded",
    "evaluate_runs_ood",
    "converted_runs",
    "finetune_config",
    "scratch_config",
    "evaluate_conversion",
    "conversion_table",
    "lps_scorer_table",
    "stat_rows",
    "flip_rows",
    "summarise",
    "write_table",
    "read_table",
    "TableError",
    "epochs_note",
    "RunRecord",
    "table1",
    "table2",
    "table4",
    "decline_bound_table",
    "worst_case_table",
    "format_value",
    "format_table",
    "compute_examples",
    "val_example",
    "write_examples",
    "read_examples",
    "main",
]

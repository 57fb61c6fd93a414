"""The two decoder forms on the same data and seeds: the authors' (k=2 conv padded
bottom/right, blur gain 1; the default) against apslib's earlier one (top/left, gain 4).

Trains each model in both forms with the default profile's settings (runs that are already
finished are skipped, so the paper form reuses notebook 02's runs when ``--paper-runs``
points at them), evaluates both with the paper's random protocol, and prints validation
PSNR, SSIM and equivariance NMSE side by side with the difference.

    python benchmarks/compare_decoder_forms.py --data outputs/data \
        --paper-runs outputs/runs --other-runs outputs/runs_top_left --seeds 0
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from apslib import evaluate as ev
from apslib import train

DEFAULT = dict(
    depth=3, channels=(8, 16, 32, 64), epochs=6, batch_size=4, lr=3e-3, lr_step=2, lr_gamma=0.5, device="cpu"
)
FORMS = {"paper (bottom_right, gain 1)": ("bottom_right", 1.0), "other (top_left, gain 4)": ("top_left", 4.0)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--paper-runs", required=True, help="run dir of the paper form")
    ap.add_argument("--other-runs", required=True, help="run dir of the top_left / gain 4 form")
    ap.add_argument(
        "--results", default=None, help="where the evaluation tables go (default: beside the runs)"
    )
    ap.add_argument("--models", nargs="+", default=["LPF-3", "APS", "APS-3"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    args = ap.parse_args(argv)
    rows = []
    for seed in args.seeds:
        for (form, (pad, gain)), run_dir in zip(FORMS.items(), (args.paper_runs, args.other_runs)):
            run_dir = f"{run_dir}/seed{seed}" if len(args.seeds) > 1 else run_dir
            t0 = time.perf_counter()
            for name in args.models:
                cfg = train.config_for(
                    name,
                    data_root=args.data,
                    run_dir=run_dir,
                    seed=seed,
                    up_pad=pad,
                    up_blur_gain=gain,
                    **DEFAULT,
                )
                train.train(cfg, progress=False)
            res = ev.evaluate_runs(
                run_dir,
                args.data,
                args.models,
                args.results or f"{run_dir}/results",
                seed=seed,
                sweep_slices=1,
            )
            t = res.table
            for name in args.models:
                pick = t[(t.model == name) & (t.acquisition == "all") & (t.statistic == "mean")]
                value = dict(zip(pick.metric, pick.value))
                rows.append(
                    {
                        "seed": seed,
                        "form": form,
                        "model": name,
                        "psnr": value["psnr"],
                        "ssim": value["ssim"],
                        "eq_nmse": value["eq_nmse"],
                    }
                )
            print(f"seed {seed}, {form}: {time.perf_counter() - t0:.0f} s", flush=True)
    df = pd.DataFrame(rows)
    wide = df.pivot_table(index=["seed", "model"], columns="form", values=["psnr", "ssim", "eq_nmse"])
    for metric in ("psnr", "ssim"):
        wide[(metric, "paper - other")] = wide[(metric, list(FORMS)[0])] - wide[(metric, list(FORMS)[1])]
    pd.set_option("display.width", 200)
    print(wide.sort_index(axis=1).to_string(float_format=lambda v: f"{v:.4g}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

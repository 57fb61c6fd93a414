"""The two decoder forms on the same data and seeds: the k=2 conv padded bottom/right with
blur gain 1, against the k=2 conv padded top/left with blur gain 4.

Which form is the authors' depends on the variant. For APS and APS-j it is bottom/right,
gain 1 (the first form). For LPF-j it is the transposed conv followed by the blur, i.e.
top/left with gain 1: the second form with gain 1 instead of 4 (the same functions, the k=2
conv's weights scaled by 4; trained from the same initialisation they differ). The printed
table labels each form by its padding side and gain; the lines below it name the authors'
form of each model.

Trains each model in both forms with the default profile's settings (finished runs are
skipped, so ``--paper-runs`` may point at notebook 02's runs when only APS models are
compared: their default is the bottom/right form; an LPF run there is top/left and is
refused as another configuration), evaluates both with the paper's random protocol, and
prints validation PSNR, SSIM and equivariance NMSE side by side with the difference
(bottom/right minus top/left).

    python benchmarks/compare_decoder_forms.py --data outputs/data \
        --paper-runs outputs/runs --other-runs outputs/runs_top_left --seeds 0
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from apslib.evaluate import evaluate_runs
from apslib.names import parse_model_name
from apslib.training import config_for, train

DEFAULT = dict(
    depth=3, channels=(8, 16, 32, 64), epochs=6, batch_size=4, lr=3e-3, lr_step=2, lr_gamma=0.5, device="cpu"
)
BOTTOM_RIGHT, TOP_LEFT = "bottom_right, gain 1", "top_left, gain 4"
FORMS = {BOTTOM_RIGHT: ("bottom_right", 1.0), TOP_LEFT: ("top_left", 4.0)}
AUTHORS = {
    "aps": f"{BOTTOM_RIGHT} (exactly the authors' decoder)",
    "lpf": f"{TOP_LEFT} (the authors' is top_left, gain 1: the same functions, the k=2 conv's weights x4)",
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--paper-runs", required=True, help="run dir of the bottom_right / gain 1 form")
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
                cfg = config_for(
                    name,
                    data_root=args.data,
                    run_dir=run_dir,
                    seed=seed,
                    up_pad=pad,
                    up_blur_gain=gain,
                    **DEFAULT,
                )
                train(cfg, progress=False)
            res = evaluate_runs(
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
        wide[(metric, "bottom_right - top_left")] = wide[(metric, BOTTOM_RIGHT)] - wide[(metric, TOP_LEFT)]
    pd.set_option("display.width", 200)
    print(wide.sort_index(axis=1).to_string(float_format=lambda v: f"{v:.4g}"))
    for name in args.models:
        print(f"the authors' form of {name}: {AUTHORS[parse_model_name(name)['variant']]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

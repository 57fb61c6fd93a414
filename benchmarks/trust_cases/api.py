"""Cases of the library called from Python: builders, the converter, result tables."""

from __future__ import annotations

from .harness import all_ok, api_call, bad, case, labelled, ok, raised
from .world import Ctx


@case(11, 'build_unet("aps", padding_mode="reflect")', "raises, one-line message mentioning 'circular'")
def aps_reflect(ctx: Ctx):
    from apslib import build_unet

    return api_call(
        lambda: build_unet("aps", depth=2, channels=[4, 8, 16], padding_mode="reflect"), "circular"
    )


@case(
    15,
    "make_equivariant on a Conv2d(k=5, padding=1)",
    "raises, one-line message naming the module 'shrink'",
)
def shrinking_conv(ctx: Ctx):
    from torch import nn

    from apslib.convert import make_equivariant

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.shrink = nn.Conv2d(1, 4, 5, padding=1)
            self.pool = nn.MaxPool2d(2)
            self.up = nn.ConvTranspose2d(4, 4, 2, stride=2)
            self.head = nn.Conv2d(4, 1, 1)

        def forward(self, x):
            return self.head(self.up(self.pool(self.shrink(x))))

    return api_call(lambda: make_equivariant(Tiny()), "shrink")


@case(
    16,
    "read_table on a truncated results CSV",
    "raises, one-line message naming the file; or returns all 146 rows (recovered)",
)
def truncated_table(ctx: Ctx):
    import pandas as pd

    from apslib.evaluate import read_table, write_table

    rows = [
        dict(model=f"M{i % 7}", seed=0, metric="psnr", statistic="mean", value=30 + i / 7, n=8)
        for i in range(146)
    ]
    path = write_table(pd.DataFrame(rows), ctx.tmp / "in_distribution.csv")
    text = path.read_bytes()
    path.write_bytes(text[: int(len(text) * 0.4)])  # a copy or a write cut short
    try:
        df = read_table(path)
    except Exception as err:  # the refusal under test
        return raised(err, path.name)
    if len(df) == 146:
        return ok("recovered all 146 rows")
    return bad(f"returned {len(df)} of 146 rows without a word")


@case(
    36,
    "a string for channels (build_unet) and for a shift (roll2d)",
    "each raises a one-line message naming 'channels' / 'shift'",
)
def strings_for_numbers(ctx: Ctx):
    import torch

    from apslib import build_unet, roll2d

    channels = api_call(lambda: build_unet("aps", depth=2, channels="4, 8, 16"), "channels")
    x = torch.arange(64.0).reshape(1, 1, 8, 8)
    shift = api_call(lambda: roll2d(x, "12"), "shift")
    return all_ok(labelled("build_unet", channels), labelled("roll2d(x, '12')", shift))

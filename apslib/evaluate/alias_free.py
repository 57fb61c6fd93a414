"""The measurements of notebook 08 (the alias-free U-Net): why ReLU aliases and a degree-2
polynomial at twice the resolution does not, how the ideal low-pass differs from the binomial
blurs and from APS's grid choice, how often the training protocol's output clamp would act,
and the issue's targets checked against notebook 06's tables.

* :func:`activation_aliasing`: per activation form, the aliased part of its output on a
  band-limited image (against the same function computed at 8x the resolution and
  low-passed back, which for ReLU is the alias-free result up to ``~1e-4``) as a spectrum
  along x, and its half-pixel equivariance error.
* :func:`lowpass_responses`: the gain of the binomial blurs and of the ideal half-band
  low-pass against the frequency.
* :func:`downsampler_errors`: one down layer per model family under sub-pixel shifts of a
  band-limited input: ``down(S_d x)`` against ``S_{d/2} down(x)``.
* :func:`clamp_activity`: the fraction of output pixels a clamp to ``[-c, c]`` would change.
* :func:`alias_free_targets`: the sub-pixel, integer, physical and PSNR targets per model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from ..filters import binomial_filter_1d
from ..fourier import POLY_INIT, fourier_down, fourier_up, remove_nyquist
from ..layers import FixedGrid, NormSelection, PolyphaseDown
from ..subpixel import fourier_shift

__all__ = [
    "activation_aliasing",
    "alias_free_targets",
    "clamp_activity",
    "downsampler_errors",
    "lowpass_responses",
]


def _band_limited(count: int, size: int, seed: int) -> torch.Tensor:
    """``count`` random float64 images of ``size`` x ``size`` pixels with a spectrum falling
    like ``1 / (1 + |k| / 4)`` up to (without) the Nyquist bins, at unit variance: a feature
    map whose content fills the band, as after a convolution."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(count, 1, size, size, generator=g, dtype=torch.float64)
    k = torch.fft.fftfreq(size, 1 / size, dtype=torch.float64).abs()
    decay = 1 / (1 + torch.maximum(k[:, None], k[None, : size // 2 + 1]) / 4)
    x = remove_nyquist(torch.fft.irfft2(torch.fft.rfft2(x) * decay, s=(size, size)))
    return x / x.std(dim=(-2, -1), keepdim=True)


def _poly(u: torch.Tensor) -> torch.Tensor:
    a0, a1, a2 = POLY_INIT
    return a0 + u * (a1 + a2 * u)


def _at(f, x: torch.Tensor, factor: int) -> torch.Tensor:
    """``f`` applied at ``factor`` (1, 2, 4, 8) times the resolution, ideally resampled."""
    u = remove_nyquist(x) if factor == 1 else x
    for _ in range(int(np.log2(factor))):
        u = fourier_up(u)
    v = f(u)
    for _ in range(int(np.log2(factor))):
        v = fourier_down(v)
    return remove_nyquist(v) if factor == 1 else v


def activation_aliasing(size: int = 64, count: int = 8, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per form (ReLU and the polynomial, each at 1x and 2x; 2x is AF-ReLU's and AF's), on
    ``count`` band-limited images: the spectrum along x (mean magnitude over rows and images)
    of the input, of the alias-free output and of the aliased part (the form's output minus
    the alias-free one); and a table of the aliased energy (relative to the output's) and the
    equivariance NMSE at a half and a quarter pixel (0 up to rounding where nothing aliases;
    at 2x a half pixel is a whole pixel of the 2x grid, so ReLU at 2x is exact there)."""
    x = _band_limited(count, size, seed)
    forms = {"ReLU": (torch.relu, 1), "ReLU at 2x (AF-ReLU)": (torch.relu, 2)}
    forms |= {"polynomial": (_poly, 1), "polynomial at 2x (AF)": (_poly, 2)}
    freq = np.fft.rfftfreq(size)  # cycles per pixel, 0 .. 1/2

    def profile(v: torch.Tensor) -> np.ndarray:
        return torch.fft.rfft(v, dim=-1, norm="forward").abs().mean(dim=(0, 1, 2)).numpy()

    spectra = [pd.DataFrame({"form": "input", "frequency": freq, "magnitude": profile(x)})]
    rows = []
    for name, (f, factor) in forms.items():
        out = _at(f, x, factor)
        truth = _at(f, x, 8)
        aliased = out - truth
        spectra.append(pd.DataFrame({"form": name, "frequency": freq, "magnitude": profile(aliased)}))
        row = {
            "form": name,
            "aliased energy / output energy": float(aliased.square().sum() / truth.square().sum()),
        }
        for d in (0.5, 0.25):
            shifted = _at(f, fourier_shift(x, (d, d)), factor)
            ref = fourier_shift(out, (d, d))
            row[f"eq NMSE at ({d:g}, {d:g}) px"] = float((shifted - ref).square().sum() / ref.square().sum())
        rows.append(row)
    truth = _at(torch.relu, x, 8)
    spectra.append(pd.DataFrame({"form": "ReLU, alias-free", "frequency": freq, "magnitude": profile(truth)}))
    return pd.concat(spectra, ignore_index=True), pd.DataFrame(rows).set_index("form")


def lowpass_responses(n: int = 256) -> pd.DataFrame:
    """The gain against the frequency (cycles per pixel, 0 .. 1/2) of the binomial blurs of
    size 1, 2, 3, 5 and 7 (LPF-j / APS-j) and of the ideal half-band low-pass (AF); a map is
    downsampled by 2 without aliasing only where the gain is 0 above 1/4."""
    freq = np.fft.rfftfreq(n)
    rows = []
    for j in (1, 2, 3, 5, 7):
        gain = np.abs(np.fft.rfft(binomial_filter_1d(j, dtype=torch.float64).numpy(), n))
        rows.append(pd.DataFrame({"filter": f"binomial {j}", "frequency": freq, "gain": gain}))
    rows.append(
        pd.DataFrame({"filter": "ideal (AF)", "frequency": freq, "gain": (freq < 0.25).astype(float)})
    )
    return pd.concat(rows, ignore_index=True)


def downsampler_errors(
    offsets: Sequence[float], size: int = 32, count: int = 16, seed: int = 0
) -> pd.DataFrame:
    """One down layer of each family on ``count`` band-limited images shifted by ``(0, d)``:
    the NMSE of ``down(S_d x)`` against ``S_{d/2} down(x)`` (mean over images) per offset.
    Layers: the Baseline's max-pool, LPF-3's (max-pool at stride 1, blur 3, grid (0, 0)),
    APS-3's (the same with the grid of largest norm) and AF's (ideal half band, grid (0, 0))."""
    x = _band_limited(count, size, seed)
    layers = {
        "max-pool (Baseline)": PolyphaseDown(1, FixedGrid(), pool="max"),
        "max-pool, blur 3 (LPF-3)": PolyphaseDown(3, FixedGrid(), pool="max"),
        "max-pool, blur 3, APS (APS-3)": PolyphaseDown(3, NormSelection(), pool="max"),
        "ideal half band (AF)": PolyphaseDown(1, FixedGrid(), pool=None, lowpass="ideal"),
    }
    rows = []
    for name, layer in layers.items():
        y0, _ = layer(x)
        for d in offsets:
            y, _ = layer(fourier_shift(x, (0.0, float(d))))
            ref = fourier_shift(remove_nyquist(y0), (0.0, float(d) / 2))
            nmse = (remove_nyquist(y) - ref).square().sum(dim=(1, 2, 3)) / ref.square().sum(dim=(1, 2, 3))
            rows.append({"layer": name, "offset": float(d), "eq_nmse": float(nmse.mean())})
    return pd.DataFrame(rows)


@torch.no_grad()
def clamp_activity(runs: dict, images: torch.Tensor, clamp: float = 6.0, batch_size: int = 32) -> pd.Series:
    """Per :class:`~apslib.evaluate.models.ModelRun`: the fraction of output pixels on
    ``images`` (``(N, 1, H, W)``) outside ``[-clamp, clamp]``, i.e. what the training
    protocol's output clamp would change (the runs' own clamps are not applied here)."""
    out = {}
    for name, run in runs.items():
        p = next(run.model.parameters())
        over = total = 0
        for i in range(0, len(images), batch_size):
            y = run.model(images[i : i + batch_size].to(p.device, p.dtype))
            over += int((y.abs() > clamp).sum())
            total += y.numel()
        out[name] = over / max(total, 1)
    return pd.Series(out, name=f"fraction of output pixels beyond ±{clamp:g}")


def alias_free_targets(
    frame: pd.DataFrame,
    points: pd.DataFrame,
    models: Sequence[str] = ("AF", "AF-ReLU"),
    *,
    baseline: str = "Baseline",
    floor: str = "Target",
) -> pd.DataFrame:
    """The alias-free U-Net's targets per model, from notebook 06's per-pair ``frame`` and
    :func:`~apslib.evaluate.beyond.frontier_points` ``points``: half-pixel eq NMSE (target
    1e-10 for AF, 1e-6 for AF-ReLU), the largest eq NMSE at integer offsets of the sub-pixel
    protocol (1e-10), the physical protocol's mean eq NMSE at sub-pixel moves over its own
    floor (the moved target against the shifted target; at most 1.5), and the PSNR against
    the Baseline's with the larger seed spread (no cost: within it, or above)."""
    sub = frame[frame.protocol == "subpixel"]
    integer = (sub.dy % 1 == 0) & (sub.dx % 1 == 0) & ((sub.dy != 0) | (sub.dx != 0))
    phys = frame[(frame.protocol == "physical") & ((frame.dy % 1 != 0) | (frame.dx % 1 != 0))]
    floor_value = phys[phys.model == floor].eq_nmse.mean() if floor in set(phys.model) else np.nan
    x, y = points.columns[0], "PSNR (dB)"
    rows = []
    for m in [m for m in models if m in points.index]:
        half_target = 1e-6 if "ReLU" in m else 1e-10
        worst_integer = float(sub[integer & (sub.model == m)].eq_nmse.max())
        ratio = float(phys[phys.model == m].eq_nmse.mean() / floor_value)
        gap = float(points.loc[m, y] - points.loc[baseline, y])
        spread = np.nanmax(
            [points.loc[m].get(f"{y} sd", np.nan), points.loc[baseline].get(f"{y} sd", np.nan)]
        )
        rows.append(
            {
                "model": m,
                x: float(points.loc[m, x]),
                "half-pixel target": half_target,
                "half-pixel reached": bool(points.loc[m, x] <= half_target),
                "max eq NMSE, integer offsets": worst_integer,
                "integer reached (<= 1e-10)": bool(worst_integer <= 1e-10),
                "physical sub-pixel / floor": ratio,
                "physical reached (<= 1.5)": bool(ratio <= 1.5),
                f"PSNR - {baseline} (dB)": gap,
                "PSNR seed sd (dB)": spread,
                "no PSNR cost": bool(gap >= 0 or (np.isfinite(spread) and -gap <= spread)),
            }
        )
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()

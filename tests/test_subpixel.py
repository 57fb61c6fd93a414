"""Shifts beyond integer circular ones: Fourier shifts, k-space ramps through the
data pipeline, overlap masks and the three protocols of notebook 06."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from fastmri.data.subsample import RandomMaskFunc
from fastmri.data.transforms import apply_mask

from apslib import build_unet, calibrate_batchnorm, data
from apslib import evaluate as ev
from apslib.evaluate import beyond
from apslib.shifts import roll2d
from apslib.subpixel import (
    fourier_shift,
    kspace_shift,
    norms_under_shift,
    overlap_mask,
    shift_pairs,
    subpixel_offsets,
)


def _img(kspace):
    k = torch.fft.ifftshift(kspace, dim=(-2, -1))
    return torch.fft.fftshift(torch.fft.ifft2(k, norm="ortho"), dim=(-2, -1))


@pytest.mark.parametrize("seed", range(6))
def test_fourier_shift_at_integer_shifts_is_the_roll(seed):
    g = torch.Generator().manual_seed(seed)
    h, w = (int(v) for v in torch.randint(5, 40, (2,), generator=g))
    x = torch.randn(3, 2, h, w, generator=g, dtype=torch.float64)
    for d in torch.randint(-3 * max(h, w), 3 * max(h, w), (8, 2), generator=g).tolist():
        assert torch.allclose(fourier_shift(x, d), roll2d(x, d), atol=1e-12), (h, w, d)
        assert torch.allclose(fourier_shift(x.float(), d), roll2d(x.float(), d), atol=2e-5)
    per_image = torch.randint(-20, 20, (3, 2), generator=g)
    want = torch.stack([roll2d(x[i], per_image[i].tolist()) for i in range(3)])
    assert torch.allclose(fourier_shift(x, per_image.double()), want, atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_fourier_shifts_compose_and_keep_the_mean(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 1, 15, 21, generator=g, dtype=torch.float64)  # odd sides: no Nyquist bin
    a, b = (torch.rand(2, generator=g, dtype=torch.float64) * 6 - 3 for _ in range(2))
    both = fourier_shift(fourier_shift(x, a), b)
    assert torch.allclose(both, fourier_shift(x, a + b), atol=1e-12)
    assert torch.allclose(fourier_shift(fourier_shift(x, a), -a), x, atol=1e-12)
    assert torch.allclose(fourier_shift(x, a).mean(dim=(-2, -1)), x.mean(dim=(-2, -1)), atol=1e-12)
    # energy can only drop (the Nyquist rows of even sides are scaled by cos(pi d))
    y = torch.randn(1, 1, 16, 16, generator=g, dtype=torch.float64)
    assert fourier_shift(y, (0.5, 0.25)).pow(2).sum() <= y.pow(2).sum() + 1e-9


def test_fourier_shift_errors():
    x = torch.zeros(1, 1, 8, 8)
    with pytest.raises(TypeError, match="real floating"):
        fourier_shift(x.to(torch.complex64), (1, 0))
    with pytest.raises(ValueError, match=r"\(dy, dx\)"):
        fourier_shift(x, (1, 0, 2))
    with pytest.raises(ValueError, match="one per image"):
        fourier_shift(x, torch.zeros(3, 2))
    with pytest.raises(ValueError, match="finite"):
        fourier_shift(x, (math.nan, 0))


@pytest.mark.parametrize("seed", range(4))
def test_kspace_ramp_is_a_roll_of_the_full_field_of_view_and_commutes_with_the_mask(seed):
    g = torch.Generator().manual_seed(seed)
    h, w = 2 * int(torch.randint(8, 20, (1,), generator=g)), int(torch.randint(9, 30, (1,), generator=g))
    img = torch.complex(torch.randn(h, w, generator=g), torch.randn(h, w, generator=g)).to(torch.complex128)
    k = torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(img), norm="ortho"))
    for d in torch.randint(-h, h, (5, 2), generator=g).tolist():
        assert torch.allclose(_img(kspace_shift(k, d)), roll2d(img, d), atol=1e-12)
    mask_func = RandomMaskFunc([0.08], [4])
    seed_t = tuple(map(ord, "file.h5"))
    as_real = lambda z: torch.view_as_real(z.to(torch.complex64)).contiguous()  # noqa: E731
    for d in [(0.5, 0.0), (1.25, -3.5), (7.0, 2.0)]:
        masked_then_moved = kspace_shift(
            torch.view_as_complex(apply_mask(as_real(k), mask_func, seed=seed_t)[0]), d
        )
        moved_then_masked = torch.view_as_complex(
            apply_mask(as_real(kspace_shift(k, d)), mask_func, seed=seed_t)[0]
        )
        assert torch.allclose(masked_then_moved, moved_then_masked.to(masked_then_moved.dtype), atol=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_overlap_mask_matches_its_definition(seed):
    rng = np.random.default_rng(seed)
    for _ in range(20):
        h, w, m = int(rng.integers(4, 30)), int(rng.integers(4, 30)), int(rng.integers(0, 4))
        d = rng.uniform(-8, 8, 2).round(2)
        got = overlap_mask((h, w), d, m).numpy()

        def inside(n, dd, m=m):
            p = np.arange(n)
            src = p - dd  # both neighbours of the interpolated source inside the margin
            return (p >= m) & (p < n - m) & (np.floor(src) >= m) & (np.ceil(src) <= n - m - 1)

        assert (got == np.outer(inside(h, d[0]), inside(w, d[1]))).all(), (h, w, m, d)


def test_offsets_and_pairs():
    assert subpixel_offsets(4).tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    assert subpixel_offsets(2, stop=2).tolist() == [0, 0.5, 1, 1.5, 2]
    assert shift_pairs([0, 0.5], axes="x") == [(0.0, 0.0), (0.0, 0.5)]
    assert len(shift_pairs([0, 0.5, 1])) == 9
    with pytest.raises(ValueError):
        subpixel_offsets(0)
    with pytest.raises(ValueError):
        shift_pairs([0], axes="z")


class _Identity(torch.nn.Module):
    def forward(self, x, return_phases=False):
        return (x, []) if return_phases else x

    def parameters(self, recurse=True):
        yield torch.zeros(1)


def _runs(seed=0):
    torch.manual_seed(seed)
    x = torch.randn(4, 1, 32, 32)
    runs = {}
    for name, variant in (("Baseline", "baseline"), ("APS", "aps")):
        m = calibrate_batchnorm(build_unet(variant, depth=2, channels=(4, 8, 16)), x).eval()
        runs[name] = ev.ModelRun(name, m, None, None, None)
    return runs


def test_subpixel_protocol_exact_at_integers_not_between():
    runs = _runs()
    x = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    f = beyond.subpixel_protocol(runs, x, [(1.0, 0.0), (3.0, -5.0), (0.5, 0.0), (0.5, 0.5)])
    assert list(f.columns) == beyond.PAIR_COLUMNS and len(f) == 2 * 4 * 3
    aps = f[f.model == "APS"]
    assert (aps[aps.dy.isin([1.0, 3.0]) & (aps.dx != 0.5)].eq_nmse < 1e-8).all()  # Prop. 2 holds
    assert (aps[aps.dy == 0.5].eq_nmse > 1e-6).all()  # ... and ends at sub-pixel shifts
    base = f[f.model == "Baseline"]
    assert (base[base.dy == 1.0].eq_nmse > 1e-6).all()
    assert base.grid_flip.isna().all()  # no grid choice, no flip recorded
    assert set(aps.grid_flip) <= {0.0, 1.0}
    assert (aps[aps.dy.isin([1.0, 3.0]) & (aps.dx != 0.5)].grid_flip == 0).all()
    s = beyond.shift_summary(f)
    assert {"eq_nmse@0.5,0.5", "eq_nmse@1,0", "grid_flip@0.5,0.5"} <= set(s.metric)
    assert not s.metric.str.startswith("psnr_decline").any()  # nothing measured, no rows
    t = beyond.beyond_table(f, "subpixel", ["Baseline", "APS"])
    assert t.loc["APS", "grid_flip rate (integer)"] == 0 and np.isnan(
        t.loc["Baseline", "grid_flip rate (integer)"]
    )
    assert 0 <= t.loc["APS", "grid_flip rate (sub-pixel)"] <= 1


def test_neighbour_flips_by_hand():
    # one level; x chose (0, 0). Between the shifts 0 and 1 along y, (0, 0) and (1, 0) follow
    # a neighbour; (0, 1) and (1, 1) follow neither
    x = [torch.zeros(4, dtype=torch.long)]
    got = beyond.neighbour_flips(x, [torch.tensor([0, 2, 1, 3])], (0.5, 0.0))
    assert got.tolist() == [0.0, 0.0, 1.0, 1.0]
    # on both axes every grid of one level is some neighbour's
    assert beyond.neighbour_flips(x, [torch.tensor([0, 1, 2, 3])], (0.5, -0.5)).tolist() == [0.0] * 4
    # at an integer shift the only neighbour is the shift itself: an integer grid flip
    assert beyond.neighbour_flips(x, [torch.tensor([2, 0, 1, 3])], (1.0, 0.0)).tolist() == [0.0, 1, 1, 1]
    # two levels: the second must follow the same neighbour as the first
    x2 = [torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long)]
    # shift 1 along y: level 1 goes to (1, 0) and level 2 sees shift 0 (stays 0); shift 0: both 0
    follows_one = [torch.tensor([2, 0]), torch.tensor([0, 2])]
    assert beyond.neighbour_flips(x2, follows_one, (0.5, 0.0)).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="adaptive level"):
        beyond.neighbour_flips([], [], (0.5, 0.0))


@pytest.mark.parametrize("variant", ["aps", "lps"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_neighbour_flips_are_periodic_in_whole_pixels(variant, seed):
    """An exactly equivariant choice follows neighbour n of d for S_d x exactly when it
    follows n + k of d + k for S_(d+k) x: the flip indicator repeats with whole-pixel
    steps of the offset, and is 0 at every integer offset (where the margins are not
    ties)."""
    torch.manual_seed(seed)
    model = build_unet(variant, depth=2, channels=[4, 6, 8], filter_size=3)
    x = torch.randn(4, 1, 24, 20, generator=torch.Generator().manual_seed(seed))
    model = calibrate_batchnorm(model, x)
    run = ev.ModelRun("m", model, None, None, None)
    _, ph0 = ev.predict(run, x, return_phases=True)
    rng = np.random.default_rng(seed)
    for _ in range(4):
        d = tuple(float(v) for v in rng.uniform(-1, 1, 2).round(2))
        k = tuple(int(v) for v in rng.integers(-5, 6, 2))
        dk = (d[0] + k[0], d[1] + k[1])
        _, ph_d = ev.predict(run, fourier_shift(x, d), return_phases=True)
        _, ph_dk = ev.predict(run, fourier_shift(x, dk), return_phases=True)
        a, b = beyond.neighbour_flips(ph0, ph_d, d), beyond.neighbour_flips(ph0, ph_dk, dk)
        assert (a == b).all(), (d, k)
        _, ph_k = ev.predict(run, fourier_shift(x, k), return_phases=True)
        assert (beyond.neighbour_flips(ph0, ph_k, k) == 0).all()


def test_fov_protocol_identity_is_exact_at_integers():
    scene = torch.randn(2, 1, 48, 48, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    runs = {"identity": ev.ModelRun("identity", _Identity(), None, None, None)}
    f = beyond.fov_protocol(runs, {"noise": scene}, 32, [(3.0, -5.0), (0.5, 0.0)], margin=4)
    ints = f[f.dy == 3.0]
    assert (ints.eq_nmse < 1e-10).all()  # only the overlap is compared: what entered is excluded
    with pytest.raises(ValueError, match="smaller than the crop"):
        beyond.fov_protocol(runs, {"noise": scene}, 64, [(1.0, 0.0)])


def test_physical_pipeline_reproduces_the_dataset_and_commutes(tiny_data):
    items = beyond.read_kspace_slices(tiny_data, None)
    assert len(items) == 2  # one validation volume of two slices
    val = ev.load_val(tiny_data)
    from apslib.data.fastmri import SliceTransform

    tr = SliceTransform(RandomMaskFunc([0.08], [4]), use_seed=True)
    for it in items:
        s, y = beyond.physical_samples(it, (0.0, 0.0), tr)
        i = next(
            k for k in range(len(val)) if val.fname[k] == it["fname"] and val.slice_num[k] == it["slice_num"]
        )
        assert torch.equal(s.image, val.image[i, 0])  # the data pipeline, unchanged
        assert np.allclose(y.numpy(), it["target"], rtol=0, atol=1e-6 * float(np.abs(it["target"]).max()))
    f = beyond.physical_protocol(_runs(), items, [(2.0, -3.0), (0.5, 0.0)], margin=4)
    ref = f[f.model.isin(beyond.REFERENCES) & (f.dy == 2.0)]
    # integer move: target and zero-filled input are the rolled ones on the overlap (the ramp
    # commutes with the mask; the normalisation is undone)
    assert len(ref) == 4 and (ref.eq_nmse < 1e-10).all()
    assert (f[f.model == "Baseline"].psnr_decline >= 0).all()
    assert f[f.model == "APS"].eq_nmse.notna().all()
    with pytest.raises(ValueError, match="no overlap"):
        beyond.physical_protocol(_runs(), items[:1], [(30.0, 0.0)], margin=4)


def _pairs(seeds=(0, 1)):
    rows = []
    for s in seeds:
        for m, base in (("Baseline", 1e-3), ("APS", 0.0)):
            for dy, dx in [(0.0, 0.0), (1.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.5, 0.5)]:
                for i in range(3):
                    sub = not (float(dy).is_integer() and float(dx).is_integer())
                    v = 0.0 if (dy, dx) == (0.0, 0.0) else (2e-3 * (1 + s) if sub else base * (1 + i))
                    rows.append(
                        dict(
                            model=m,
                            seed=s,
                            dataset="val",
                            protocol="subpixel",
                            image=str(i),
                            dy=dy,
                            dx=dx,
                            eq_nmse=v,
                        )
                    )
    return pd.DataFrame(rows).assign(psnr_decline=np.nan)


def test_beyond_table_separates_integer_and_subpixel_shifts_and_seeds():
    t = beyond.beyond_table(_pairs(), "subpixel", ["APS", "Baseline"])
    assert list(t.index) == ["APS", "Baseline"]
    assert t.loc["APS", "eq_nmse mean (integer)"] == 0  # the zero shift is not counted ...
    assert t.loc["Baseline", "eq_nmse mean (integer)"] == pytest.approx(2e-3)  # ... nor diluting
    assert t.loc["Baseline", "eq_nmse max (integer)"] == pytest.approx(3e-3)
    assert t.loc["APS", "eq_nmse mean (sub-pixel)"] == pytest.approx(3e-3)  # mean of seeds 2e-3, 4e-3
    assert t.loc["APS", "eq_nmse mean (sub-pixel) sd"] == pytest.approx(np.std([2e-3, 4e-3], ddof=1))
    one = beyond.beyond_table(_pairs(seeds=(0,)), "subpixel")
    assert not any(c.endswith(" sd") for c in one.columns)
    with pytest.raises(ValueError, match="no 'physical' rows"):
        beyond.beyond_table(_pairs(), "physical")


def test_frontier_points_pair_half_pixel_error_with_psnr():
    in_dist = pd.DataFrame(
        [
            dict(
                model=m,
                seed=s,
                dataset="val",
                acquisition="all",
                protocol="unshifted",
                metric="psnr",
                statistic="mean",
                value=v + s,
                n=4,
            )
            for m, v in (("Baseline", 30.0), ("APS", 29.0))
            for s in (0, 1)
        ]
    )
    p = beyond.frontier_points(_pairs(), in_dist, ["Baseline", "APS"])
    assert list(p.index) == ["Baseline", "APS"] and (p.seeds == 2).all()
    assert p.loc["APS", "eq NMSE at 0.5 px"] == pytest.approx(3e-3)
    assert p.loc["Baseline", "PSNR (dB)"] == pytest.approx(30.5)
    assert p.loc["Baseline", "PSNR (dB) sd"] == pytest.approx(np.std([30, 31], ddof=1))


@pytest.mark.parametrize("seed", range(3))
def test_norms_under_shift_permute_at_integer_offsets(seed):
    x = torch.randn(1, 2, 16, 12, generator=torch.Generator().manual_seed(seed))
    n = norms_under_shift(x, [0.0, 0.5, 1.0])
    assert np.allclose(n[2], n[0][[1, 0, 3, 2]])  # (0,0)<->(0,1), (1,0)<->(1,1)
    assert not np.allclose(n[1], n[0]) and not np.allclose(n[1], n[2])
    ny = norms_under_shift(x, [1.0], axis=-2)
    assert np.allclose(ny[0], n[0][[2, 3, 0, 1]])


def test_beyond_figures():
    import matplotlib

    matplotlib.use("Agg")
    from apslib import plots

    f = _pairs()
    fig = plots.plot_subpixel_curves(f, ["Baseline", "APS"], floor=plots.EXACT_ZERO_FLOOR)
    assert len(fig.axes) == 3 and any("exact 0" in t.get_text() for t in fig.axes[0].texts)
    assert len(fig.axes[0].collections) == 2  # a seed band per model
    fig = plots.plot_subpixel_curves(f, ["Baseline", "APS"])  # zeros left out, and said so
    assert "not drawn" in fig._suptitle.get_text() and np.isnan(fig.axes[0].lines[1].get_ydata()[0])
    in_dist = pd.DataFrame(
        [
            dict(
                model=m,
                seed=0,
                dataset="val",
                acquisition="all",
                protocol="unshifted",
                metric="psnr",
                statistic="mean",
                value=30.0,
                n=1,
            )
            for m in ("Baseline", "APS")
        ]
    )
    p = beyond.frontier_points(f[f.seed == 0], in_dist, ["Baseline", "APS"])
    fig = plots.plot_frontier(p, x=p.columns[0])
    assert fig.axes[0].get_xscale() == "log"
    fig = plots.plot_grid_choice([0, 0.5, 1], norms_under_shift(torch.randn(1, 1, 8, 8), [0, 0.5, 1]))
    assert len(fig.axes[0].lines) == 4


def test_evaluate_beyond_end_to_end(tmp_path):
    from apslib import training

    root = tmp_path / "data"
    data.synthesize_dataset(
        root, size=32, train_volumes=1, val_volumes=2, slices_per_volume=2, progress=False
    )
    tiny = dict(depth=2, channels=[4, 8, 16], epochs=1, batch_size=2, lr=1e-3, device="cpu")
    for s in (0, 1):
        for name in ("Baseline", "APS"):
            training.train(
                training.config_for(name, data_root=root, run_dir=tmp_path / "runs", seed=s, **tiny),
                progress=False,
            )
    r = ev.evaluate_beyond(
        tmp_path / "runs",
        root,
        ["Baseline", "APS"],
        tmp_path / "res",
        seeds=[0, 1],
        steps=2,
        slices=2,
        margin=4,
        ood_size=32,
        ood_images=1,
        device="cpu",
        shifts=[(1.0, 0.0), (0.5, 0.0)],
    )
    f = r.sweep
    assert set(f.protocol) == {"subpixel", "physical", "fov"} and set(f.seed) == {0, 1}
    assert set(f[f.protocol == "fov"].dataset) == {"photographs", "shepp_logan"}  # no noise
    aps_int = f[(f.model == "APS") & (f.protocol == "subpixel") & (f.dy % 1 == 0) & (f.dx % 1 == 0)]
    assert len(aps_int) and (aps_int.eq_nmse < 1e-8).all()
    assert r.paths["table"].is_file() and r.paths["sweep"].is_file()
    ex = ev.read_examples(r.paths["examples"])["val"]
    assert ex.shift == (0.5, 0.5) and (ex.nmse > 0).all()


@pytest.mark.parametrize("seed", range(3))
def test_subpixel_augmentation_moves_input_and_target_together(seed):
    from apslib.training.steps import augment_batch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4, 1, 16, 16, generator=g)
    xs, ys, shifts = augment_batch(x, 2 * x, 0, torch.Generator().manual_seed(seed), subpixel=True)
    assert shifts.dtype == torch.float64 and ((shifts >= 0) & (shifts < 1)).all()
    assert torch.allclose(ys, 2 * xs, atol=1e-5)  # one shift for input and target
    assert torch.allclose(xs, fourier_shift(x, shifts), atol=1e-6)
    xi, _, ints = augment_batch(x, x, 4, torch.Generator().manual_seed(seed), subpixel=True)
    assert ((ints >= -4) & (ints < 5)).all() and not torch.equal(ints, ints.round())
    x0, _, none = augment_batch(x, x, 0, None)
    assert torch.equal(x0, x) and not none.any()


def test_sda_models_train_and_stay_exactly_equivariant(tmp_path, tiny_data):
    from apslib import training
    from apslib.training.config import parse_cli

    cfg = training.config_for(
        "APS-3 + SDA",
        data_root=tiny_data,
        run_dir=tmp_path,
        depth=2,
        channels=[4, 8, 16],
        epochs=1,
        batch_size=2,
        device="cpu",
    )
    assert cfg.subpixel_augment and not cfg.shift_augment and cfg.run_path.name == "aps-3-sda"
    r = training.train(cfg, progress=False)
    assert r.final["val_equiv_nmse"] < 1e-10  # integer equivariance is by construction
    with pytest.raises(ValueError, match="drop --subpixel-augment"):
        parse_cli(["--model", "APS + SDA", "--subpixel-augment", "--data", "d", "--run-dir", "r"])

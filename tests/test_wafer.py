"""Wafer geometry, the defect-density hierarchy and its counter-based streams (yieldmc.wafer)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from yieldmc.errors import ConfigError
from yieldmc.wafer import (
    CENTER_RADIUS,
    DIE_COLUMNS,
    DONUT_RADII,
    EDGE_RING_INNER,
    LOCAL_RADIUS,
    SIGNATURES,
    DensitySpec,
    WaferDraw,
    WaferSpec,
    die_rng,
    die_sites,
    draw_wafer,
    expected_defects,
    sample_lots,
    sample_wafer,
    signature_mask,
)

#: Boundary points sampled per die side by the brute-force count.
SIDE_SAMPLES = 11


def brute_force_dies(diameter: float, w: float, h: float, excl: float) -> list[tuple[float, float]]:
    """Die centres (mm) of the grid whose central die sits on the wafer centre, kept when
    every sampled point of the die's outline (corners included) lies within the usable
    radius: plain loops, no numpy."""
    r = diameter / 2 - excl
    reach = int(r // min(w, h)) + 2
    kept = []
    for j in range(-reach, reach + 1):
        for i in range(-reach, reach + 1):
            cx, cy = i * w, j * h
            ok = True
            for s in range(SIDE_SAMPLES):
                f = s / (SIDE_SAMPLES - 1) - 0.5
                for px, py in ((cx + f * w, cy - h / 2), (cx + f * w, cy + h / 2),
                               (cx - w / 2, cy + f * h), (cx + w / 2, cy + f * h)):
                    if math.hypot(px, py) > r + 1e-9:
                        ok = False
            if ok:
                kept.append((cx, cy))
    return kept


# ---- geometry ---------------------------------------------------------------------------

@pytest.mark.parametrize("dims", [(300, 10, 10, 3), (200, 7.5, 12, 5), (150, 20, 20, 0), (100, 3, 4, 2)])
def test_die_count_and_centres_match_brute_force(dims):
    spec = WaferSpec(*dims)
    sites = die_sites(spec)
    expected = sorted(brute_force_dies(*dims), key=lambda c: (c[1], c[0]))
    assert len(sites) == len(expected)
    np.testing.assert_allclose(sites[["cx_mm", "cy_mm"]].to_numpy(), np.array(expected), atol=1e-9)


def test_300mm_wafer_count_and_the_classical_estimate():
    spec = WaferSpec()  # 300 mm, 10 x 10 mm dies, 3 mm edge exclusion
    n = len(die_sites(spec))
    assert n == len(brute_force_dies(300, 10, 10, 3)) == 621
    # the usual dies-per-wafer estimate pi d^2 / 4S - pi d / sqrt(2S) (d: usable diameter)
    # ignores the grid's placement, so it agrees to a few per cent only
    d, s = 2 * spec.usable_radius_mm, 100.0
    assert n == pytest.approx(math.pi * d * d / (4 * s) - math.pi * d / math.sqrt(2 * s), rel=0.03)


def test_every_die_lies_within_the_usable_radius():
    spec = WaferSpec(diameter_mm=200, die_w_mm=8, die_h_mm=13, edge_exclusion_mm=4)
    s = die_sites(spec)
    far = np.hypot(np.abs(s.cx_mm) + 4, np.abs(s.cy_mm) + 6.5)
    assert (far <= spec.usable_radius_mm + 1e-9).all()
    np.testing.assert_allclose(s.r_mm, np.hypot(s.cx_mm, s.cy_mm))
    ny, nx = spec.grid_shape
    assert s.x.min() == 0 and s.y.min() == 0 and s.x.max() == nx - 1 and s.y.max() == ny - 1  # a tight box


def test_sites_are_symmetric_under_reflection_and_row_major():
    spec = WaferSpec(diameter_mm=200, die_w_mm=9, die_h_mm=6)
    s = die_sites(spec)
    ny, nx = spec.grid_shape
    sites = set(zip(s.x, s.y, strict=True))
    assert {(nx - 1 - x, y) for x, y in sites} == sites
    assert {(x, ny - 1 - y) for x, y in sites} == sites
    assert list(s.die) == list(range(len(s)))
    assert list(zip(s.y, s.x, strict=True)) == sorted(zip(s.y, s.x, strict=True))


def test_a_wafer_that_just_holds_one_die():
    spec = WaferSpec(diameter_mm=2 * math.hypot(5, 5) + 6, die_w_mm=10, die_h_mm=10, edge_exclusion_mm=3)
    assert len(die_sites(spec)) == 1 and spec.grid_shape == (1, 1)


# ---- bad input --------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "names"), [
    ({"diameter_mm": 20, "edge_exclusion_mm": 3}, ["wafer smaller than a die", "wafer.diameter_mm"]),
    ({"die_w_mm": 400}, ["wafer smaller than a die", "400"]),
    ({"die_h_mm": -1}, ["wafer.die_h_mm"]),
    ({"edge_exclusion_mm": -2}, ["wafer.edge_exclusion_mm"]),
    ({"diameter_mm": float("nan")}, ["wafer.diameter_mm"]),
])
def test_bad_wafers_are_refused_in_one_line(kwargs, names):
    with pytest.raises(ConfigError) as info:
        WaferSpec(**kwargs)
    msg = str(info.value)
    assert "\n" not in msg and all(n in msg for n in names)


@pytest.mark.parametrize(("kwargs", "names"), [
    ({"d0": -0.1}, ["density.d0", "-0.1"]),
    ({"alpha": -1.0}, ["density.alpha"]),
    ({"alpha": 0.0}, ["density.alpha"]),
    ({"lot_alpha": -3}, ["density.lot_alpha"]),
    ({"signature": "ring"}, ["'ring'", *SIGNATURES]),
    ({"strength": -1}, ["density.strength"]),
    ({"signature_prob": 1.5}, ["density.signature_prob"]),
    ({"d0": "a lot"}, ["density.d0"]),
])
def test_bad_densities_are_refused_in_one_line(kwargs, names):
    with pytest.raises(ConfigError) as info:
        DensitySpec(**kwargs)
    msg = str(info.value)
    assert "\n" not in msg and all(n in msg for n in names)


def test_alpha_none_or_inf_means_no_clustering():
    assert not DensitySpec(alpha=None).clustered and not DensitySpec(alpha=math.inf).clustered
    assert DensitySpec(alpha=0.5).clustered


def test_bad_indices_are_refused():
    spec, dens = WaferSpec(diameter_mm=100), DensitySpec()
    for kwargs in ({"seed": -1}, {"lot": 1.5}, {"wafer": True}):
        args = {"seed": 0, "lot": 0, "wafer": 0, **kwargs}
        with pytest.raises(ConfigError):
            sample_wafer(spec, dens, **args)
    with pytest.raises(ConfigError, match="die indices"):
        sample_wafer(spec, dens, 0, 0, 0, dies=[0, 49])
    with pytest.raises(ConfigError, match="n_lots"):
        sample_lots(spec, dens, 0, 3, seed=0)


# ---- streams ----------------------------------------------------------------------------

def test_a_dies_draws_do_not_depend_on_the_other_dies_or_on_chunking():
    spec, dens = WaferSpec(), DensitySpec(d0=2.0, alpha=1.0, signature="local")
    whole = sample_wafer(spec, dens, seed=11, lot=2, wafer=7, dies=np.arange(100))
    assert whole.n_defects.sum() > 50  # enough defects that equality means something
    one_by_one = pd.concat([sample_wafer(spec, dens, 11, 2, 7, dies=[d]) for d in range(100)], ignore_index=True)
    halves = pd.concat([sample_wafer(spec, dens, 11, 2, 7, dies=np.arange(50)),
                        sample_wafer(spec, dens, 11, 2, 7, dies=np.arange(50, 100))], ignore_index=True)
    backwards = sample_wafer(spec, dens, 11, 2, 7, dies=np.arange(99, -1, -1)).iloc[::-1].reset_index(drop=True)
    all_sites = sample_wafer(spec, dens, 11, 2, 7).iloc[:100]
    for other in (one_by_one, halves, backwards, all_sites):
        pd.testing.assert_frame_equal(whole, other)


def test_sample_lots_rows_are_the_wafers_own_rows():
    spec, dens = WaferSpec(diameter_mm=100), DensitySpec(d0=1.0, lot_alpha=2.0)
    rows = sample_lots(spec, dens, n_lots=3, n_wafers=4, seed=5)
    assert list(rows.columns) == list(DIE_COLUMNS)
    assert rows.groupby("wafer").lot.first().tolist() == [w // 4 for w in range(12)]
    one = sample_wafer(spec, dens, 5, lot=2, wafer=9, slot=1)
    pd.testing.assert_frame_equal(rows[rows.wafer == 9].reset_index(drop=True), one)
    for name, (dtype, _, _) in DIE_COLUMNS.items():
        if dtype == "str":  # object before pandas 3, "str" since
            assert pd.api.types.is_string_dtype(rows[name]), name
        else:
            assert str(rows[name].dtype) == dtype, name


def test_different_keys_draw_different_numbers():
    spec, dens = WaferSpec(diameter_mm=200), DensitySpec(d0=3.0, alpha=None)
    base = sample_wafer(spec, dens, 1, 0, 0).n_defects.to_numpy()
    for seed, lot, wafer in ((2, 0, 0), (1, 1, 0), (1, 0, 1)):
        assert not np.array_equal(base, sample_wafer(spec, dens, seed, lot, wafer).n_defects.to_numpy())
    a, b = die_rng(1, 0, 0, 3).random(4), die_rng(1, 0, 0, 4).random(4)
    assert not np.allclose(a, b) and np.array_equal(a, die_rng(1, 0, 0, 3).random(4))


# ---- the density hierarchy --------------------------------------------------------------

def _pooled_counts(dens: DensitySpec, n_wafers: int, seed: int) -> tuple[np.ndarray, float]:
    spec = WaferSpec(diameter_mm=100)  # 49 dies of 1 cm^2
    rows = sample_lots(spec, dens, n_lots=1, n_wafers=n_wafers, seed=seed)
    return rows.n_defects.to_numpy(), dens.d0 * spec.die_area_cm2


@pytest.mark.parametrize("alpha", [None, 1e9])
def test_without_clustering_counts_are_poisson(alpha):
    c, lam = _pooled_counts(DensitySpec(d0=1.0, alpha=alpha), 1000, seed=3)
    # 49,000 independent Poisson(1) counts: the mean and the dispersion index var/mean have
    # standard errors 0.0045 and 0.0064; 5 of them allowed
    assert c.mean() == pytest.approx(lam, abs=0.025)
    assert c.var() / c.mean() == pytest.approx(1.0, abs=0.035)


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_clustered_counts_have_the_negative_binomial_variance(alpha):
    c, lam = _pooled_counts(DensitySpec(d0=1.0, alpha=alpha), 1500, seed=4)
    # the between-wafer part (lam^2 / alpha) rests on 1,500 gamma draws: relative standard
    # error sqrt((2 + 6 / alpha) / 1500), 7.3 % at alpha = 1, i.e. 0.073 of the total 2;
    # 15 % of the total (4 standard errors) allowed
    assert c.mean() == pytest.approx(lam, rel=0.06)
    assert c.var() == pytest.approx(lam + lam**2 / alpha, rel=0.15)
    assert c.var() / c.mean() > 1.3  # over-dispersed: not Poisson


def test_wafer_densities_are_gamma_distributed():
    spec, dens = WaferSpec(diameter_mm=100), DensitySpec(d0=0.3, alpha=1.5)
    d = np.array([draw_wafer(spec, dens, 2, w // 25, w).density_cm2 for w in range(5000)])
    # 5,000 draws of Gamma(1.5, 0.2): a Kolmogorov-Smirnov test must not reject at 0.1 %
    assert stats.kstest(d, stats.gamma(1.5, scale=0.3 / 1.5).cdf).pvalue > 1e-3
    assert d.mean() == pytest.approx(0.3, rel=0.05)  # standard error 1.2 %


def test_lot_multiplier_is_shared_by_a_lots_wafers():
    spec, dens = WaferSpec(diameter_mm=100), DensitySpec(d0=1.0, alpha=None, lot_alpha=4.0)
    mult = [[draw_wafer(spec, dens, 9, lot, lot * 5 + s).lot_multiplier for s in range(5)] for lot in range(400)]
    mult = np.array(mult)
    assert (mult == mult[:, :1]).all()
    # 400 draws of Gamma(4, 1/4): mean 1, sd 0.5 (standard error of the mean 0.025)
    assert mult[:, 0].mean() == pytest.approx(1.0, abs=0.1)
    assert mult[:, 0].std() == pytest.approx(0.5, abs=0.1)
    assert DensitySpec(lot_alpha=None).lot_alpha is None


def _draw(name: str, params: tuple[float, ...] = ()) -> WaferDraw:
    return WaferDraw(0, 0, 1.0, 0.5, name, params)


def test_signature_regions():
    spec = WaferSpec()
    s = die_sites(spec)
    u = s.r_mm.to_numpy() / spec.usable_radius_mm
    np.testing.assert_array_equal(signature_mask(spec, _draw("center")), u <= CENTER_RADIUS)
    np.testing.assert_array_equal(signature_mask(spec, _draw("edge_ring")), u >= EDGE_RING_INNER)
    donut = signature_mask(spec, _draw("donut"))
    assert donut.any() and (u[donut] >= DONUT_RADII[0]).all() and (u[donut] <= DONUT_RADII[1]).all()
    assert not signature_mask(spec, _draw("none")).any() and signature_mask(spec, _draw("random")).all()
    local = signature_mask(spec, _draw("local", (40.0, -30.0)))
    dist = np.hypot(s.cx_mm - 40, s.cy_mm + 30)
    np.testing.assert_array_equal(local, dist <= LOCAL_RADIUS * spec.usable_radius_mm)
    # a vertical scratch through x = 20 mm: one column of dies, the whole chord long
    scratch = signature_mask(spec, _draw("scratch", (1.0, 0.0, 20.0)))
    assert set(s.cx_mm[scratch]) <= {15.0, 20.0, 25.0} and scratch.sum() >= 25


def test_every_drawn_signature_is_in_its_region():
    spec = WaferSpec()
    for name in SIGNATURES:
        dens = DensitySpec(d0=0.2, alpha=2.0, signature=name, strength=3.0)
        for wafer in range(5):
            draw = draw_wafer(spec, dens, 0, 0, wafer)
            assert draw.signature == name
            lam = expected_defects(spec, dens, draw)
            inside = signature_mask(spec, draw)
            base = draw.density_cm2 * spec.die_area_cm2
            np.testing.assert_allclose(lam, np.where(inside, 4.0 * base, base))
            if name != "none":
                assert inside.any()
            if name == "scratch":
                assert 0 < inside.mean() < 0.2  # thin
            if name == "local":
                assert 0 < inside.mean() < 0.1


def test_signature_probability():
    spec = WaferSpec(diameter_mm=100)
    never = DensitySpec(signature="center", signature_prob=0.0)
    assert {draw_wafer(spec, never, 0, 0, w).signature for w in range(20)} == {"none"}
    half = DensitySpec(signature="center", signature_prob=0.5)
    share = np.mean([draw_wafer(spec, half, 0, 0, w).signature == "center" for w in range(400)])
    assert share == pytest.approx(0.5, abs=0.1)  # 400 draws: standard error 0.025


def test_zero_density_means_no_defects():
    rows = sample_lots(WaferSpec(diameter_mm=100), DensitySpec(d0=0.0), 1, 3, seed=0)
    assert (rows.n_defects == 0).all() and (rows.expected_defects == 0).all()

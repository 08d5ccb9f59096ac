"""Tests of yieldmc.defects: geometry against a slow reference (tests/reference/defects.py),
statistics, reproducibility."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage, stats

from tests.reference.defects import naive_faulty
from tests.tolerances import CHECKER_TOL, COLOUR_ATOL, LINE_SHARE_ROUNDING_ATOL, WIDTH_ROUNDING_ATOL
from yieldmc.defects import (
    HEALTHY,
    KINDS,
    SPATIAL_KINDS,
    STUCK_OFF,
    STUCK_ON,
    apply,
    die_label,
    fault_counts,
    mask,
    sample,
    sample_die,
)
from yieldmc.errors import ConfigError
from yieldmc.rng import die_generator

SHAPES = [(64, 16), (8, 16), (8, 20), (32, 32), (1, 1), (3, 50)]
REFERENCE_DIE = [(64, 16), (8, 16), (8, 16), (8, 20)]
ALPHA = 1e-6  # false-alarm probability of each statistical check


# ----------------------------------------------------------------------------- helpers
def draws(kind, shape, n, seed=0, **kw):
    """``n`` independent samples from the dies of root seed ``seed``."""
    return [sample(kind, shape, die_generator(seed, d), **kw) for d in range(n)]


def border(a: np.ndarray) -> np.ndarray:
    b = np.zeros(a.shape, dtype=bool)
    b[0, :] = b[-1, :] = b[:, 0] = b[:, -1] = True
    return b


def is_contiguous(line: np.ndarray) -> bool:
    idx = np.flatnonzero(line)
    return idx.size == 0 or idx[-1] - idx[0] + 1 == idx.size


# ----------------------------------------------------------------------------- constants
def test_kind_tuples():
    # mixed's pool, in order: a change changes every stored mixed die (schema.FORMAT_VERSION)
    assert SPATIAL_KINDS == ("circular", "circular_complement", "ring", "row", "column",
                             "checkerboard")
    assert KINDS[:len(SPATIAL_KINDS)] == SPATIAL_KINDS and KINDS[-2:] == ("mixed", "none")
    assert "random" in KINDS
    assert (HEALTHY, STUCK_OFF, STUCK_ON) == (0, 1, 2)


# ----------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", ["circular", "circular_complement", "ring", "row", "column",
                                  "checkerboard"])
def test_faulty_cells_match_slow_reference(kind, shape):
    for severity in (None, 0.03, 0.3, (0.1, 0.6)):
        for m, p in draws(kind, shape, 8, seed=11, severity=severity):
            assert m.dtype == np.int8 and m.shape == shape
            assert set(np.unique(m)) <= {HEALTHY, STUCK_OFF, STUCK_ON}
            np.testing.assert_array_equal(m > 0, naive_faulty(kind, shape, p))


@pytest.mark.parametrize("shape", SHAPES)
def test_rows_and_columns_are_whole(shape):
    m_, n_ = shape
    for m, p in draws("row", shape, 30, seed=1):
        rows = np.flatnonzero((m > 0).any(axis=1))
        assert (m[rows] > 0).all() and not (m[np.setdiff1d(np.arange(m_), rows)] > 0).any()
        assert rows.tolist() == p["rows"]
        assert 1 <= len(rows) <= max(1, math.ceil(m_ / 8))  # documented default range
    for m, p in draws("column", shape, 30, seed=2):
        cols = np.flatnonzero((m > 0).any(axis=0))
        assert (m[:, cols] > 0).all() and cols.tolist() == p["columns"]
        assert 1 <= len(cols) <= max(1, math.ceil(n_ / 8))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("severity", [None, 0.2, 0.7])
def test_disk_is_contiguous_in_every_row_and_column(shape, severity):
    for m, _ in draws("circular", shape, 20, seed=3, severity=severity):
        f = m > 0
        assert all(is_contiguous(r) for r in f) and all(is_contiguous(c) for c in f.T)


def test_disk_is_an_ellipse_in_cell_units_on_tall_arrays():
    f = mask("circular", (64, 16), {"cx": 0.5, "cy": 0.5, "radius": 0.25, "state": "off"}) > 0
    height = np.flatnonzero(f.any(axis=1)).size
    width = np.flatnonzero(f.any(axis=0)).size
    assert (height, width) == (32, 8)  # 0.5 of each side: 4 times taller than wide


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("severity", [None, 0.1, 0.6])
def test_complement_touches_the_border_and_complements_the_disk(shape, severity):
    for m, p in draws("circular_complement", shape, 20, seed=4, severity=severity):
        f = m > 0
        labels, count = ndimage.label(f)
        for lab in range(1, count + 1):
            assert (border(f) & (labels == lab)).any(), "enclosed complement component"
        disk = mask("circular", shape, {**p, "kind": "circular"}) > 0
        np.testing.assert_array_equal(f, ~disk)


@pytest.mark.parametrize("shape", [(64, 16), (32, 32), (8, 20), (16, 64)])
@pytest.mark.parametrize("severity", [None, 0.15, 0.3])
def test_rings_have_holes_when_they_fit(shape, severity):
    m_, n_ = shape
    step = max(1 / m_, 1 / n_)
    fitted = 0
    for m, p in draws("ring", shape, 60, seed=5, severity=severity):
        cx, cy, r, w = p["cx"], p["cy"], p["radius"], p["width"]
        fits = min(cx, cy, 1 - cx, 1 - cy) >= r  # the outer disk lies inside the array
        closed = w >= step and r - w >= math.hypot(0.5 / m_, 0.5 / n_)
        if not (fits and closed):
            continue
        fitted += 1
        healthy = m == HEALTHY
        labels, count = ndimage.label(healthy)
        holes = [lab for lab in range(1, count + 1) if not (border(m) & (labels == lab)).any()]
        assert holes, f"ring without a hole: {p}"
    if severity is None:  # default ranges keep walls closed and many rings inside
        assert fitted >= 5


def test_default_ring_wall_is_at_least_a_cell_thick():
    for shape in [(64, 16), (8, 20), (8, 16)]:
        for _, p in draws("ring", shape, 40, seed=6):
            assert p["width"] >= max(1 / shape[0], 1 / shape[1]) - WIDTH_ROUNDING_ATOL
            assert p["width"] <= p["radius"]


@pytest.mark.parametrize("shape", [(64, 16), (32, 32), (8, 20)])
@pytest.mark.parametrize("severity", [None, 0.2])
def test_checkerboard_cells_lie_on_one_colour_of_a_block_grid(shape, severity):
    for m, p in draws("checkerboard", shape, 20, seed=7, severity=severity):
        f = m > 0
        b = p["block"]
        assert b >= 1 and f.any()
        i, j = np.nonzero(f)
        one_colour = any(
            np.all(((i + oi) // b + (j + oj) // b) % 2 == 0)
            for oi in range(2 * b) for oj in range(2 * b))
        assert one_colour
        r0, c0, h, w = p["region"]
        assert r0 <= i.min() and i.max() < r0 + h and c0 <= j.min() and j.max() < c0 + w


def test_checkerboard_region_is_clipped_to_the_array():
    p = {"block": 2, "phase": [0, 0], "region": [4, 4, 100, 100], "state": "on"}
    m = mask("checkerboard", (8, 8), p)
    assert (m[:4] == 0).all() and (m[:, :4] == 0).all() and (m[4:, 4:] > 0).sum() == 8


@pytest.mark.parametrize("density", [0.02, 0.3])
def test_random_density_matches_binomial(density):
    n_masks, shape = 30, (64, 16)
    total = sum(int((mask("random", shape, {"density": density, "seed": s,
                                            "state": "off"}) > 0).sum())
                for s in range(n_masks))
    lo, hi = stats.binom.interval(1 - ALPHA, n_masks * 64 * 16, density)
    assert lo <= total <= hi


def test_random_cells_are_independent_of_their_position():
    # the hash must not favour rows or columns: chi-square over columns of many masks
    counts = sum((mask("random", (16, 16), {"density": 0.5, "seed": s, "state": "on"}) > 0)
                 .sum(axis=0) for s in range(200))
    assert stats.chisquare(counts).pvalue > ALPHA


# ----------------------------------------------------------------------------- ON / OFF
@pytest.mark.parametrize("on_mode", ["cell", "pattern"])
@pytest.mark.parametrize("kind", ["circular", "ring", "row", "checkerboard", "random", "mixed"])
def test_on_fraction_zero_and_one(kind, on_mode):
    for q, absent in ((0.0, STUCK_ON), (1.0, STUCK_OFF)):
        for m, _ in draws(kind, (32, 32), 10, seed=8, severity=0.3, on_fraction=q,
                          on_mode=on_mode):
            assert (m > 0).any() and not (m == absent).any()


def test_per_cell_on_fraction_is_binomial():
    on = faulty = 0
    for m, _ in draws("circular", (64, 16), 30, seed=9, severity=0.3, on_fraction=0.3):
        on, faulty = on + int((m == STUCK_ON).sum()), faulty + int((m > 0).sum())
    lo, hi = stats.binom.interval(1 - ALPHA, faulty, 0.3)
    assert lo <= on <= hi


def test_per_pattern_mode_gives_one_state_per_mask():
    n_on = 0
    results = draws("ring", (32, 32), 400, seed=10, severity=0.2, on_fraction=0.25,
                    on_mode="pattern")
    for m, p in results:
        states = set(np.unique(m[m > 0]).tolist())
        assert len(states) == 1 and p["state"] == ("on" if STUCK_ON in states else "off")
        n_on += STUCK_ON in states
    lo, hi = stats.binom.interval(1 - ALPHA, len(results), 0.25)
    assert lo <= n_on <= hi


# ----------------------------------------------------------------------------- mixed
def test_mixed_frequencies_match_weights():
    weights = {"circular": 1, "circular_complement": 2, "ring": 3, "row": 0, "column": 1,
               "checkerboard": 3}
    n = 2000
    drawn = [sample("mixed", (4, 4), die_generator(12, d), weights=weights)[1]["kind"]
             for d in range(n)]
    observed = np.array([drawn.count(k) for k in SPATIAL_KINDS])
    w = np.array([weights[k] for k in SPATIAL_KINDS], dtype=float)
    assert observed[w == 0].sum() == 0
    nz = w > 0
    assert stats.chisquare(observed[nz], n * w[nz] / w.sum()).pvalue > ALPHA


def test_mixed_default_is_uniform_over_spatial_kinds():
    n = 1800
    drawn = [sample("mixed", (4, 4), die_generator(13, d))[1]["kind"] for d in range(n)]
    observed = [drawn.count(k) for k in SPATIAL_KINDS]
    assert stats.chisquare(observed).pvalue > ALPHA


# ----------------------------------------------------------------------------- severity
@pytest.mark.parametrize("shape", [(64, 16), (8, 20), (32, 32), (1, 1)])
@pytest.mark.parametrize("kind", ["circular", "circular_complement", "ring"])
def test_disk_kinds_meet_severity_exactly(kind, shape):
    for s in (0.0, 0.01, 0.1, 0.37, 0.9, 1.0):
        for m, _ in draws(kind, shape, 10, seed=14, severity=s):
            assert int((m > 0).sum()) == round(s * shape[0] * shape[1])


@pytest.mark.parametrize("shape", [(64, 16), (8, 20), (1, 1)])
@pytest.mark.parametrize("kind", ["row", "column"])
def test_lines_meet_severity_within_half_a_line(kind, shape):
    size = shape[0] if kind == "row" else shape[1]
    for s in (0.0, 0.1, 0.5, 1.0):
        for m, _ in draws(kind, shape, 10, seed=15, severity=s):
            assert abs((m > 0).mean() - s) <= 0.5 / size + LINE_SHARE_ROUNDING_ATOL


@pytest.mark.parametrize("shape", [(64, 16), (8, 20), (32, 32), (8, 16), (16, 16), (3, 50)])
def test_checkerboard_meets_severity_within_tolerance(shape):
    cells = shape[0] * shape[1]
    for s in (0.0, 0.02, 0.1, 0.25, 0.33, 0.4, 0.45):
        for m, _ in draws("checkerboard", shape, 10, seed=16, severity=s):
            assert abs((m > 0).mean() - s) <= CHECKER_TOL + 0.5 / cells  # + rounding of s
            assert s > 0 or not m.any()


def test_checkerboard_severity_above_one_half_saturates_to_the_whole_array():
    for m, p in draws("checkerboard", (32, 32), 20, seed=17, severity=0.9):
        b = p["block"]  # colour counts of a full block grid differ by at most b * b cells
        assert p["region"] == [0, 0, 32, 32] and abs((m > 0).mean() - 0.5) <= b * b / 2048


@pytest.mark.parametrize("s", [0.01, 0.2])
def test_random_severity_is_the_density(s):
    results = draws("random", (64, 16), 20, seed=18, severity=s)
    assert all(p["density"] == s for _, p in results)
    total = sum(int((m > 0).sum()) for m, _ in results)
    lo, hi = stats.binom.interval(1 - ALPHA, 20 * 64 * 16, s)
    assert lo <= total <= hi


@pytest.mark.parametrize("kind", SPATIAL_KINDS)
def test_severity_range_is_respected(kind):
    lo, hi = 0.1, 0.3
    fractions = [(m > 0).mean() for m, _ in draws(kind, (32, 32), 40, seed=19,
                                                 severity=(lo, hi))]
    assert lo - CHECKER_TOL - 1 / 64 <= min(fractions) and max(fractions) <= hi + 1 / 64
    assert max(fractions) - min(fractions) > 0.05  # the range is drawn, not one value


def test_default_ranges_give_moderate_faulty_fractions():
    for kind in (*SPATIAL_KINDS, "random"):
        fractions = [(m > 0).mean() for m, _ in draws(kind, (64, 16), 50, seed=20)]
        assert 0.0 < np.mean(fractions) < 0.5, kind


# ----------------------------------------------------------------------------- reproducibility
@pytest.mark.parametrize("kind", [k for k in KINDS if k != "none"])
def test_same_die_same_mask_different_dies_differ(kind):
    a = sample(kind, (64, 16), die_generator(21, 5), severity=(0.05, 0.4))
    b = sample(kind, (64, 16), die_generator(21, 5), severity=(0.05, 0.4))
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]
    others = [sample(kind, (64, 16), die_generator(21, d), severity=(0.05, 0.4))[0]
              for d in range(6, 12)]
    assert not all(np.array_equal(a[0], o) for o in others)


@pytest.mark.parametrize("on_mode", ["cell", "pattern"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(64, 16), (8, 20), (1, 1)])
def test_params_reproduce_the_mask_after_a_json_round_trip(kind, shape, on_mode):
    for severity in (None, 0.2, (0.0, 1.0)):
        for m, p in draws(kind, shape, 5, seed=22, severity=severity, on_mode=on_mode):
            assert p["kind"] in (k for k in KINDS if k != "mixed")
            text = json.dumps(p, allow_nan=False)
            loaded = json.loads(text)
            assert loaded == p
            np.testing.assert_array_equal(mask(loaded["kind"], shape, loaded), m)
            np.testing.assert_array_equal(mask("mixed", shape, loaded), m)


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(KINDS), m_=st.integers(1, 40), n_=st.integers(1, 40),
       seed=st.integers(0, 2**32), die=st.integers(0, 10**6),
       severity=st.one_of(st.none(), st.floats(0, 1)),
       q=st.floats(0, 1), on_mode=st.sampled_from(["cell", "pattern"]))
def test_any_draw_is_reproducible_from_its_params(kind, m_, n_, seed, die, severity, q, on_mode):
    m, p = sample(kind, (m_, n_), die_generator(seed, die), severity=severity, on_fraction=q,
                  on_mode=on_mode)
    np.testing.assert_array_equal(mask(p["kind"], (m_, n_), json.loads(json.dumps(p))), m)
    if p["kind"] in SPATIAL_KINDS and p["kind"] != "checkerboard":
        np.testing.assert_array_equal(m > 0, naive_faulty(p["kind"], (m_, n_), p))


# ----------------------------------------------------------------------------- per die
def test_sample_die_shapes_and_unaffected_arrays():
    masks, params = sample_die("circular", REFERENCE_DIE, die_generator(23, 0), affected=[1, 3],
                               severity=0.2)
    assert [m.shape for m in masks] == REFERENCE_DIE
    assert [p["kind"] for p in params] == ["none", "circular", "none", "circular"]
    assert not masks[0].any() and not masks[2].any()
    assert masks[1].any() and masks[3].any()
    flags = sample_die("circular", REFERENCE_DIE, die_generator(23, 0),
                       affected=[False, True, False, True], severity=0.2)
    assert all(np.array_equal(a, b) for a, b in zip(masks, flags[0], strict=True))


def test_mixed_die_shares_one_kind_and_draws_geometry_per_array():
    kinds_seen = set()
    for d in range(40):
        masks, params = sample_die("mixed", REFERENCE_DIE, die_generator(24, d))
        kinds = {p["kind"] for p in params}
        assert len(kinds) == 1
        kinds_seen |= kinds
        # arrays 1 and 2 have the same shape: independent draws give different params
        assert params[1] != params[2]
    assert kinds_seen == set(SPATIAL_KINDS)


def test_an_array_pattern_does_not_depend_on_which_others_are_affected():
    for d in range(10):
        everything, p_all = sample_die("mixed", REFERENCE_DIE, die_generator(25, d))
        for a in range(len(REFERENCE_DIE)):
            alone, p_alone = sample_die("mixed", REFERENCE_DIE, die_generator(25, d),
                                        affected=[a])
            np.testing.assert_array_equal(alone[a], everything[a])
            assert p_alone[a] == p_all[a]


def test_dies_do_not_depend_on_order_or_chunking():
    forward = [sample_die("mixed", REFERENCE_DIE, die_generator(26, d), severity=(0, 0.5))
               for d in range(12)]
    backward = {d: sample_die("mixed", REFERENCE_DIE, die_generator(26, d), severity=(0, 0.5))
                for d in reversed(range(12))}
    for d, (masks, params) in enumerate(forward):
        assert params == backward[d][1]
        assert all(np.array_equal(a, b) for a, b in zip(masks, backward[d][0], strict=True))


def test_none_kind_is_all_healthy():
    masks, params = sample_die("none", REFERENCE_DIE, 0, severity=0.5)
    assert not any(m.any() for m in masks) and all(p == {"kind": "none"} for p in params)


@pytest.mark.parametrize("kind, severity", [
    ("row", 0.0), ("row", 0.05), ("column", 0.02), ("circular", 0.0), ("ring", 0.0),
    ("checkerboard", 0.0), ("random", 0.0)])
def test_a_die_whose_patterns_hit_no_cell_is_labelled_none(kind, severity):
    """Severity 0, or row/column counts that round to zero lines (0.05 * 8, 0.02 * 20 < 0.5)."""
    masks, params = sample_die(kind, REFERENCE_DIE[1:], die_generator(28, 0), severity=severity)
    assert not any(m.any() for m in masks)
    assert {p["kind"] for p in params} == {kind}  # parameters are kept as drawn
    assert die_label(masks, params) == "none"


def test_die_label_is_the_kind_of_the_arrays_that_hit_cells():
    for d in range(20):
        masks, params = sample_die("mixed", REFERENCE_DIE, die_generator(29, d),
                                   severity=(0.0, 0.05))
        kind = params[0]["kind"]
        expected = kind if any(m.any() for m in masks) else "none"
        assert die_label(masks, params) == expected
    masks, params = sample_die("row", REFERENCE_DIE, die_generator(29, 0), severity=0.2,
                               affected=[2])
    assert die_label(masks, params) == "row"  # one affected array is enough
    with pytest.raises(ConfigError, match="masks"):
        die_label(masks[:2], params)


# ----------------------------------------------------------------------------- apply
def test_apply_forces_stuck_cells_and_keeps_the_rest():
    rng = np.random.default_rng(27)
    G = rng.uniform(1e-6, 1e-4, size=(8, 20))
    m = rng.integers(0, 3, size=(8, 20)).astype(np.int8)
    G0 = G.copy()
    out = apply(G, m, g_on=1e-4, g_off=1e-6)
    np.testing.assert_array_equal(G, G0)  # input untouched
    for i in range(8):
        for j in range(20):
            expected = {HEALTHY: G[i, j], STUCK_OFF: 1e-6, STUCK_ON: 1e-4}[int(m[i, j])]
            assert out[i, j] == expected


def test_fault_counts():
    m = np.array([[0, 1, 2, 2], [0, 0, 1, 2]], dtype=np.int8)
    assert fault_counts(m) == {"n_stuck_on": 3, "n_stuck_off": 2, "fault_fraction": 5 / 8}


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, words", [
    (lambda: sample("donut", (8, 8), 0), ["donut", *KINDS]),
    (lambda: mask("zigzag", (8, 8), {}), ["zigzag", "circular", "checkerboard"]),
    (lambda: sample("circular", (8, 8), 0, severity=1.5), ["severity", "[0, 1]", "1.5"]),
    (lambda: sample("circular", (8, 8), 0, severity=-0.1), ["severity", "-0.1"]),
    (lambda: sample("circular", (8, 8), 0, severity=(0.5, 0.2)), ["lo <= hi"]),
    (lambda: sample("circular", (8, 8), 0, severity="bad"), ["severity"]),
    (lambda: sample("circular", (8, 8), 0, on_fraction=1.2), ["on_fraction", "1.2"]),
    (lambda: sample("circular", (8, 8), 0, on_mode="die"), ["on_mode", "cell", "pattern"]),
    (lambda: sample("circular", (0, 8), 0), ["shape", ">= 1"]),
    (lambda: sample("circular", (8,), 0), ["shape"]),
    (lambda: sample("circular", (2.5, 8), 0), ["shape"]),
    (lambda: sample_die("row", [(8, 8), (-1, 3)], 0), ["shape"]),
    (lambda: sample_die("row", [(8, 8)], 0, affected=[3]), ["affected", "[0, 1)"]),
    (lambda: sample_die("row", [(8, 8)], 0, affected=[True, False]), ["affected"]),
    (lambda: sample_die("row", [(8, 8)], 0, affected=["0"]), ["affected", "'0'"]),
    (lambda: sample("mixed", (8, 8), 0, weights={"blob": 1}), ["blob", "circular"]),
    (lambda: sample("mixed", (8, 8), 0, weights={"row": 0}), ["weights", "positive"]),
    (lambda: mask("circular", (8, 8), {"cx": 0.5}), ["cy", "radius", "missing"]),
    (lambda: mask("row", (8, 8), {"rows": [8]}), ["rows", "[0, 8)"]),
    (lambda: mask("ring", (8, 8), {"cx": 0, "cy": 0, "radius": -1, "width": 0}), ["radius"]),
    (lambda: mask("checkerboard", (8, 8), {"block": 0, "phase": [0, 0],
                                           "region": [0, 0, 8, 8]}), ["block >= 1"]),
    (lambda: mask("random", (8, 8), {"density": 2, "seed": 1}), ["density"]),
    (lambda: mask("circular", (8, 8), {"cx": .5, "cy": .5, "radius": .2, "state": "up"}),
     ["state", "'on' or 'off'"]),
    (lambda: mask("row", (8, 8), {"kind": "column", "columns": [1]}), ["does not match"]),
    (lambda: mask("mixed", (8, 8), {"rows": [1]}), ["mixed", "params['kind']"]),
    (lambda: apply(np.ones((2, 2)), np.zeros((2, 3), np.int8), 1e-4, 1e-6), ["shape"]),
    (lambda: apply(np.ones((2, 2)), np.full((2, 2), 3), 1e-4, 1e-6), ["0 (healthy)"]),
    (lambda: apply(np.ones((2, 2)), np.zeros((2, 2), np.int8), -1.0, 1e-6), ["g_on"]),
])
def test_bad_input_raises_config_error_with_a_useful_message(call, words):
    with pytest.raises(ConfigError) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


# ----------------------------------------------------------------------------- gallery
def test_gallery_writes_a_png_with_both_stuck_colours(tmp_path):
    from matplotlib.image import imread

    from yieldmc.gallery import OFF_COLOUR, ON_COLOUR, plot_gallery

    out = plot_gallery(tmp_path / "g.png", shape=(16, 16), n_examples=1, seed=3)
    assert out == tmp_path / "g.png"
    with open(out, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    rgb = imread(out)[..., :3]
    assert rgb.shape[0] > 2 * rgb.shape[1]  # nine rows (kinds), one column (example)
    for colour in (ON_COLOUR, OFF_COLOUR):
        target = np.array([int(colour[k:k + 2], 16) / 255 for k in (1, 3, 5)])
        assert (np.abs(rgb - target).max(axis=-1) < COLOUR_ATOL).sum() > 100, colour


@pytest.mark.parametrize("suffix, magic", [
    (".svg", (b"<?xml", b"<svg")), (".pdf", (b"%PDF",)), (".png", (b"\x89PNG\r\n\x1a\n",)),
    (".PDF", (b"%PDF",)), (".jpg", (b"\xff\xd8\xff",))])
def test_gallery_writes_the_format_its_suffix_names(tmp_path, suffix, magic):
    from yieldmc.gallery import plot_gallery

    out = plot_gallery(tmp_path / "sub" / f"g{suffix}", shape=(8, 8), n_examples=1, seed=3)
    assert out == tmp_path / "sub" / f"g{suffix}"
    assert out.read_bytes().startswith(magic)


@pytest.mark.parametrize("name", ["g.xyz", "gallery", "g.pgf"])
def test_gallery_refuses_a_suffix_that_names_no_format(tmp_path, name):
    from yieldmc.gallery import image_formats, plot_gallery

    with pytest.raises(ConfigError) as info:
        plot_gallery(tmp_path / "new" / name, shape=(8, 8), n_examples=1)
    message = str(info.value)
    assert "\n" not in message and name in message
    assert all(f".{f}" in message for f in ("png", "svg", "pdf"))
    assert set(image_formats()) >= {"png", "svg", "pdf", "eps", "jpg"}
    assert not (tmp_path / "new").exists()  # refused before anything is written

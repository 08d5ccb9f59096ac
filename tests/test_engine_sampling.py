"""The compiled defect sampler against the readable one, die by die, bit for bit.

The oracle is :func:`yieldmc.defects.sample_die` itself, run on ``DieStream(seed, die)``
(``as_generator`` passes it through): the compiled masks, every parameter (same
dict keys, order and types) and the number of draws must be identical.
"""

from __future__ import annotations

import json
import math

import numba
import numpy as np
import pytest

from yieldmc import defect_kinds, defects
from yieldmc.engine import _sampling
from yieldmc.engine.sampling import TWIN_CODES, die_masks, die_params, kind_code, sample_chunk
from yieldmc.engine.streams import DieStream
from yieldmc.errors import ConfigError

PAPER = [(64, 16), (8, 16), (8, 16), (8, 20)]
ODD = [(1, 1), (3, 50)]
SEVERITIES = [None, 0.0, 0.02, (0.005, 0.05)]
SEED = 2**53 - 1
#: Dies per (kind, on_mode, severity, shapes, affected) case; with 2 shape sets and 2
#: affected settings that is 96 dies per case and 768 per kind.
#: The kinds with a compiled twin (the others: tests/test_registry.py).
TWINNED = [k for k in defects.KINDS if k in TWIN_CODES]
N_DIES = 24
#: Named die indices (the extremes) plus a spread of others.
DIES = np.array([0, 1, 10**9, 2**62] + [7919 * i + 3 for i in range(N_DIES - 4)])


def assert_same_as_readable(kind, shapes, seed, dies, **kw):
    masks, params = sample_chunk(kind, shapes, seed, dies, **kw)
    for i, die in enumerate(dies):
        stream = DieStream(seed, int(die))
        ref_masks, ref_params = defects.sample_die(kind, shapes, stream, **kw)
        got_masks, got_params = die_masks(masks, params, i), die_params(params, i)
        where = f"kind={kind} die={die} {kw}"
        for a, (g, r) in enumerate(zip(got_masks, ref_masks, strict=True)):
            assert g.dtype == r.dtype and np.array_equal(g, r), f"{where}: mask of array {a}"
        assert got_params == ref_params, where
        assert json.dumps(got_params) == json.dumps(ref_params), where  # key order, int/float
        assert params["n_draws"][i] == stream.counter, where
        drawn = {p["kind"] for p in ref_params} - {"none"}
        if drawn:
            assert defects.KINDS[params["die_kind"][i]] == drawn.pop(), where
    return masks, params


@pytest.mark.parametrize("severity", SEVERITIES, ids=str)
@pytest.mark.parametrize("on_mode", defects.ON_MODES)
@pytest.mark.parametrize("kind", TWINNED)
def test_compiled_equals_readable(kind, on_mode, severity):
    for shapes, affected_sets in ((PAPER, (None, [True, False, False, True])), (ODD, ([1], None))):
        for affected in affected_sets:
            assert_same_as_readable(kind, shapes, SEED, DIES, affected=affected, severity=severity,
                                    on_fraction=0.3, on_mode=on_mode)


@pytest.mark.parametrize("kind", ["circular", "circular_complement", "ring", "row", "column",
                                  "checkerboard", "random"])
def test_compiled_equals_readable_at_every_severity(kind):
    """Solving for the whole range: empty, saturated and full patterns, on shapes whose
    checkerboard regions and disks hit the border (2x2 has block 1, 13x29 is odd)."""
    dies = np.arange(60)
    shapes = [(2, 2), (13, 29), (32, 32), (64, 16)]
    for severity in (0.5, 1.0, (0.0, 1.0)):
        assert_same_as_readable(kind, shapes, 0, dies, severity=severity)
    assert_same_as_readable(kind, shapes, 0, dies, on_fraction=0.0, on_mode="pattern")
    assert_same_as_readable(kind, shapes, 0, dies, on_fraction=1.0)


def test_mixed_weights_and_affected_indices():
    dies = np.arange(200)
    weights = {"ring": 2.0, "checkerboard": 1.0, "row": 0.5}
    _, params = assert_same_as_readable("mixed", PAPER, 5, dies, affected=[0, 2],
                                        severity=(0.005, 0.05), weights=weights)
    drawn = set(params["die_kind"].tolist())
    assert drawn == {kind_code(k) for k in weights}
    assert np.all(params["kind"][:, [1, 3]] == kind_code("none"))
    assert_same_as_readable("mixed", PAPER, 5, dies[:40], weights={"column": 1.0})


def test_chunk_and_thread_invariance():
    dies = np.arange(1000, 1300)
    kw = {"severity": (0.005, 0.05), "on_mode": "cell"}
    ref_masks, ref_params = sample_chunk("mixed", PAPER, 3, dies, n_blocks=1, **kw)
    old = numba.get_num_threads()
    try:
        for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(threads)
            for n_blocks in (1, 3, 64):
                masks, params = sample_chunk("mixed", PAPER, 3, dies, n_blocks=n_blocks, **kw)
                assert np.array_equal(masks, ref_masks)
                assert all(np.array_equal(params[k], ref_params[k], equal_nan=params[k].dtype.kind == "f")
                           for k in ref_params)
    finally:
        numba.set_num_threads(old)
    order = np.random.default_rng(0).permutation(dies.size)
    for part in np.array_split(order, 7):  # any split, any order
        masks, params = sample_chunk("mixed", PAPER, 3, dies[part], **kw)
        assert np.array_equal(masks, ref_masks[part])
        assert np.array_equal(params["radius"], ref_params["radius"][part], equal_nan=True)
        assert np.array_equal(params["lines"], ref_params["lines"][part])


def test_typed_parameter_arrays():
    dies = np.arange(50)
    masks, p = sample_chunk("mixed", PAPER, 9, dies, affected=[0, 1, 3], on_mode="pattern")
    assert masks.shape == (50, 64 * 16 + 2 * 8 * 16 + 8 * 20) and masks.dtype == np.int8
    assert p["cell_offsets"].tolist() == [0, 1024, 1152, 1280, 1440]
    assert p["kind"].shape == (50, 4) and p["kind"].dtype == np.int8
    assert p["phase"].shape == (50, 4, 2) and p["region"].shape == (50, 4, 4)
    assert p["lines"].shape == (50, 4, 64) and p["lines"].dtype == np.int32
    assert np.all(p["kind"][:, 2] == kind_code("none")) and np.all(np.isnan(p["cx"][:, 2]))
    assert set(np.unique(p["state"][:, [0, 1, 3]]).tolist()) == {0, 1}
    assert np.all(np.isnan(p["on_fraction"]))
    for i in range(50):  # the parameters alone rebuild every mask
        for shape, m, prm in zip(PAPER, die_masks(masks, p, i), die_params(p, i), strict=True):
            assert np.array_equal(defects.mask(prm["kind"], shape, prm), m)


def test_squares_radii_like_cpython():
    """Python squares the radius with libm pow, which differs from r * r in about 1 case
    in 1100; the kernel must compare with the same bound (``consts[C_TWO]``)."""
    shape, rng = (64, 16), np.random.default_rng(3)
    for _ in range(20_000):
        cx, cy = rng.uniform(0.2, 0.8, 2)
        d2 = defect_kinds.dist2(shape, float(cx), float(cy)).ravel()
        c = int(rng.integers(d2.size))
        r0 = math.sqrt(d2[c])
        for r in (r0, math.nextafter(r0, 0), math.nextafter(r0, 1)):
            if r * r != r**2 and min(r * r, r**2) < d2[c] <= max(r * r, r**2):
                break
        else:
            continue
        params = {"kind": "circular", "cx": float(cx), "cy": float(cy), "radius": r, "state": "on"}
        ref = defects.mask("circular", shape, params)
        fpar = np.full(_sampling.NF, np.nan)
        fpar[[_sampling.F_CX, _sampling.F_CY, _sampling.F_RADIUS]] = cx, cy, r
        ipar = np.full(_sampling.NI, -1, dtype=np.int64)
        ipar[_sampling.I_STATE] = 1
        out = np.zeros(d2.size, dtype=np.int8)
        _sampling._build(_sampling.CIRCULAR, 64, 16, fpar, ipar, np.zeros(1, dtype=np.int64),
                         2.0, np.empty(16), np.empty(16, dtype=np.int64), np.empty(d2.size), out)
        assert np.array_equal(out.reshape(shape), ref)
        assert out[c] == (2 if d2[c] <= r**2 else 0)
        return
    pytest.fail("no radius with pow(r, 2) != r * r at a cell found")


def test_selection_is_exact_with_ties():
    rng = np.random.default_rng(4)
    for size in (1, 2, 3, 10, 257):
        for _ in range(40):
            vals = rng.integers(0, 5, size).astype(np.float64)  # many exact ties
            ref = np.sort(vals)
            for count in range(-1, size + 2):
                buf = vals.copy()
                got = _sampling._radius_for_count(buf, size, count)
                assert got == defect_kinds.radius_for_count(ref, count)
                assert np.array_equal(np.sort(buf), ref)  # only reordered


def test_round_half_even_matches_python():
    xs = [0.5, 1.5, 2.5, 2.4999999999999996, 3.5000000000000004, 20.5, 0.0, 7.0, 1e15 + 0.5]
    assert [_sampling._round_half_even(x) for x in xs] == [round(x) for x in xs]


@pytest.mark.parametrize("kw, match", [
    ({"kind": "blob"}, "unknown defect kind"),
    ({"severity": 1.5}, "severity"),
    ({"severity": (0.3, 0.1)}, "lo <= hi"),
    ({"on_fraction": -0.1}, "on_fraction"),
    ({"on_mode": "die"}, "on_mode"),
    ({"affected": [4]}, "affected"),
    ({"kind": "mixed", "weights": {"ring": -1.0}}, "weights"),
    ({"shapes": [(0, 3)]}, "shape"),
    ({"seed": -1}, "seed"),
    ({"dies": [[1]]}, "dies"),
    ({"dies": [-3]}, "dies"),
    ({"n_blocks": 0}, "n_blocks"),
])
def test_invalid_settings_raise_config_error(kw, match):
    args = {"kind": "circular", "shapes": PAPER, "seed": 0, "dies": [0, 1]} | kw
    with pytest.raises(ConfigError, match=match):
        sample_chunk(args.pop("kind"), args.pop("shapes"), args.pop("seed"), args.pop("dies"), **args)


def test_no_dies_and_no_arrays():
    masks, params = sample_chunk("mixed", PAPER, 0, [])
    assert masks.shape == (0, 1440) and params["kind"].shape == (0, 4)
    masks, params = sample_chunk("circular", [], 0, [3])
    assert masks.shape == (1, 0) and params["n_draws"].tolist() == [0]

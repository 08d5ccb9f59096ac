"""Counter-based per-die streams: numpy twin == numba twin bit for bit, and good randomness.

The oracles are independent of the code under test where possible: plain Python-int
splitmix64 for the raw bits (tests/reference/streams.py), scipy's ``ndtri`` and
``math.log`` for the normal quantile, scipy.stats for the distributions. Every statistical
bound is checked on fixed seeds, so a test either always passes or always fails for a given
implementation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats

from tests.reference.streams import cell_stream_bits, die_uniform, fisher_yates
from tests.tolerances import LOG_RTOL, PPND_RTOL
from yieldmc import defect_kinds, defects
from yieldmc.engine import _streams
from yieldmc.engine.streams import (
    GOLDEN,
    MIX1,
    MIX2,
    STREAM_TAG,
    DieStream,
    die_key,
    normals,
    uniforms,
)
from yieldmc.errors import ConfigError
from yieldmc.rng import die_generator

SEEDS = [0, 1, 2**53 - 1, 2**63 + 5, 2**64 - 1]
DIES = [0, 1, 10**9, 2**63 - 1]


def test_constants_are_those_of_the_per_cell_streams():
    assert (GOLDEN, MIX1, MIX2) == (defect_kinds.GOLDEN, defect_kinds.MIX1, defect_kinds.MIX2)
    assert (int(_streams.GOLDEN), int(_streams.MIX1), int(_streams.MIX2)) == (GOLDEN, MIX1, MIX2)
    assert int(_streams.STREAM_TAG) == STREAM_TAG and STREAM_TAG >> 53 != 0


@pytest.mark.parametrize("seed", SEEDS)
def test_draws_follow_the_documented_formula(seed):
    for die in DIES:
        s = DieStream(seed, die, counter=5)
        got = [s.random() for _ in range(3)]
        assert got == [die_uniform(seed, die, i) for i in (5, 6, 7)]
        assert die_key(seed, die) == int(_streams.die_key(np.uint64(seed), np.uint64(die)))


@pytest.mark.parametrize("seed", SEEDS)
def test_numba_twin_equals_numpy_twin_bit_for_bit(seed):
    rng = np.random.default_rng(seed % 1000)
    for die in DIES:
        for start in (0, 3, 2**40):
            ref = DieStream(seed, die, counter=start).random(300)  # vectorised path
            assert np.array_equal(uniforms(seed, [die], 300, start=start)[0], ref)
            key = np.uint64(die_key(seed, die))
            counters = rng.integers(0, 2**62, 20)
            scalar = [_streams.uniform(key, int(c)) for c in counters]
            assert scalar == [DieStream(seed, die, counter=int(c)).random() for c in counters]
    # the scalar (Python-int), small-array and numpy paths of random() agree
    s, t = DieStream(seed, 7), DieStream(seed, 7)
    assert np.array_equal([s.random() for _ in range(20)], np.concatenate([t.random(5), t.random(15)]))


def test_draw_i_is_a_pure_function_of_seed_die_and_i():
    a = DieStream(11, 4).random(50)
    b = DieStream(11, 4)
    b.uniform(size=2)
    b.permutation(10)  # 9 draws
    assert b.counter == 11 and b.random() == a[11]
    assert not np.array_equal(a, DieStream(11, 5).random(50))
    assert not np.array_equal(a, DieStream(12, 4).random(50))


def test_uniform_and_permutation_algorithms():
    u = DieStream(3, 9).random(40)
    s = DieStream(3, 9)
    assert s.uniform(0.2, 0.8) == 0.2 + (0.8 - 0.2) * u[0]
    assert _streams._uniform_between(np.uint64(s.key), 0, 0.2, 0.8) == 0.2 + (0.8 - 0.2) * u[0]
    assert np.array_equal(s.uniform(-1.0, 3.0, size=(2, 3)), (-1.0 + 4.0 * u[1:7]).reshape(2, 3))
    perm = fisher_yates(u[7:], 6)  # Fisher-Yates from the top, written out
    assert s.permutation(6).tolist() == perm and s.counter == 12
    out = np.empty(6, dtype=np.int64)
    assert _streams.permute(np.uint64(s.key), 7, out, 6) == 12 and out.tolist() == perm
    assert s.permutation(1).tolist() == [0] and s.permutation(0).size == 0 and s.counter == 12
    items = np.array(["a", "b", "c", "d"])
    assert sorted(DieStream(3, 9).permutation(items).tolist()) == ["a", "b", "c", "d"]


def test_permutations_are_uniform():
    counts: dict[tuple, int] = {}
    for die in range(2400):
        key = tuple(DieStream(5, die).permutation(3).tolist())
        counts[key] = counts.get(key, 0) + 1
    assert len(counts) == 6
    assert scipy.stats.chisquare(list(counts.values())).pvalue > 1e-3


def test_uniforms_are_uniform():
    u = uniforms(2024, np.arange(20), 10_000).ravel()
    assert u.min() >= 0.0 and u.max() < 1.0
    assert scipy.stats.kstest(u, "uniform").pvalue > 1e-3
    # 53-bit grid: every value is k 2**-53
    assert np.all(u * 2.0**53 == np.floor(u * 2.0**53))


@pytest.mark.parametrize("seed", [0, 2**53 - 1])
def test_neighbouring_dies_and_seeds_are_uncorrelated(seed):
    n = 20_000
    u = uniforms(seed, np.arange(0, 9), n)
    bound = 4.5 / math.sqrt(n)  # |r| of independent streams: sd 1/sqrt(n)
    for d in range(8):
        assert abs(np.corrcoef(u[d], u[d + 1])[0, 1]) < bound
        assert abs(np.corrcoef(u[d, :-1], u[d + 1, 1:])[0, 1]) < bound  # one draw apart
    other = uniforms(seed + 1, [0], n)[0]
    assert abs(np.corrcoef(u[0], other)[0, 1]) < bound


def test_die_streams_are_apart_from_the_per_cell_streams():
    """defect_kinds.bernoulli hashes cells of seed s, stream 0/1 from mix64(mix64(s) ^ stream);
    die streams start from mix64(mix64(s ^ TAG) ^ d): no shared values, no correlation."""
    n = 20_000
    for seed in (0, 1, 2**53 - 1):
        cells = {stream: cell_stream_bits(seed, stream, n) for stream in (0, 1)}
        for die in (0, 1):
            bits = DieStream(seed, die)._take(n)
            for stream in (0, 1):
                assert np.intersect1d(bits, cells[stream]).size == 0
                r = np.corrcoef((bits >> np.uint64(11)).astype(float),
                                (cells[stream] >> np.uint64(11)).astype(float))[0, 1]
                assert abs(r) < 4.5 / math.sqrt(n)


# ---- normals -------------------------------------------------------------------------
@pytest.mark.parametrize("seed, die", [(0, 0), (2**53 - 1, 10**9), (7, 2**63 - 1)])
def test_normal_twins_bit_for_bit_on_1e5_draws(seed, die):
    ref = DieStream(seed, die).normal(size=100_000)
    assert np.array_equal(normals(seed, [die], 100_000)[0], ref)
    s = DieStream(seed, die, counter=17)
    assert [s.normal() for _ in range(5)] == ref[17:22].tolist()
    key = np.uint64(die_key(seed, die))
    assert [_streams.std_normal(key, c) for c in range(17, 22)] == ref[17:22].tolist()
    t = DieStream(seed, die)
    assert np.array_equal(t.normal(0.5, 2.0, size=(10, 10)), (0.5 + 2.0 * ref[:100]).reshape(10, 10))
    assert t.counter == 100


def test_normals_are_standard_normal():
    z = normals(99, np.arange(10), 20_000).ravel()
    n = z.size
    assert abs(z.mean()) < 4.5 / math.sqrt(n)
    assert abs(z.var() - 1.0) < 4.5 * math.sqrt(2.0 / n)
    assert abs(scipy.stats.skew(z)) < 4.5 * math.sqrt(6.0 / n)
    assert abs(scipy.stats.kurtosis(z)) < 4.5 * math.sqrt(24.0 / n)
    assert scipy.stats.kstest(z, "norm").pvalue > 1e-3


def test_normal_quantile_against_scipy_and_symmetry():
    from yieldmc.engine.streams import _ppnd

    j = np.concatenate([np.arange(1, 2**12, 2), np.random.default_rng(0).integers(0, 2**52, 50_000) * 2 + 1,
                        2**53 - np.arange(1, 2**12, 2)])
    p = j.astype(np.float64) * 2.0**-53
    z, ref = _ppnd(p), scipy.special.ndtri(p)
    assert np.max(np.abs(z - ref) / np.maximum(1.0, np.abs(ref))) < PPND_RTOL
    assert np.array_equal(_ppnd(1.0 - p), -z)  # p and 1 - p are both on the grid
    assert np.array_equal([_streams._ppnd(v) for v in p[::97]], z[::97])


def test_log_is_fdlibm_accurate_and_libm_free():
    from yieldmc.engine.streams import _log

    x = np.concatenate([2.0**-np.arange(1, 54), np.random.default_rng(1).random(50_000) * 0.08])
    x = x[x > 0]
    got = _log(x)
    ref = np.array([math.log(v) for v in x])
    assert np.max(np.abs(got - ref) / np.abs(ref)) < LOG_RTOL
    assert np.array_equal([_streams._log(v) for v in x[::50]], got[::50])


# ---- interface ------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [-1, 2**64, 1.5, True, "3"])
def test_seed_and_die_are_checked(bad):
    with pytest.raises(ConfigError):
        DieStream(bad, 0)
    with pytest.raises(ConfigError):
        DieStream(0, bad)


def test_compiled_fills_check_their_inputs():
    with pytest.raises(ConfigError):
        uniforms(0, [[1, 2]], 3)
    with pytest.raises(ConfigError):
        uniforms(0, [-1], 3)
    with pytest.raises(ConfigError):
        normals(0, [1], 3, start=2**63)
    assert uniforms(0, np.zeros(0, dtype=np.int64), 4).shape == (0, 4)


def test_a_die_stream_drives_the_readable_sampler():
    """sample_die draws from a DieStream, and a die's stream is one."""
    assert isinstance(die_generator(42, 3), DieStream) and repr(die_generator(42, 3)) == repr(DieStream(42, 3))
    shapes = [(64, 16), (8, 16), (8, 16), (8, 20)]
    s = DieStream(42, 3)
    masks, params = defects.sample_die("mixed", shapes, s, severity=(0.005, 0.05))
    assert s.counter > 4 and len(masks) == 4
    again = defects.sample_die("mixed", shapes, DieStream(42, 3), severity=(0.005, 0.05))
    assert params == again[1] and all(np.array_equal(a, b) for a, b in zip(masks, again[0], strict=True))

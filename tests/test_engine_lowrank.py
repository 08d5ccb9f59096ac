"""The rank-k update of the chunk engine against a fresh direct solve of the faulty array.

The oracle is :func:`yieldmc.circuit.solve_reference` (scipy sparse direct solve of the
nodal system) of the faulty conductances themselves, driven by the M unit inputs
(:func:`tests.reference.lowrank.transfer_reference`): it knows nothing of ``K0``, ``W`` or
Woodbury.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

from tests.reference.lowrank import dense_solve, transfer_reference, wdev_first_order
from tests.tolerances import (
    CACHE_T0_RTOL,
    ENGINE_RTOL,
    EXTREME_RTOL,
    LU_RTOL,
    REORDERED_UPDATE_RTOL,
    WDEV_FIRST_ORDER_RTOL,
)
from yieldmc.circuit import transfer_matrix
from yieldmc.engine import _lowrank
from yieldmc.engine.lowrank import (
    MAX_RANK_ALPHA,
    MEASURED_MAX_RANK,
    LowRankCache,
    cache_memory_bytes,
    changes,
    lowrank_transfer,
    lowrank_transfers,
    max_rank,
    pack_changes,
)
from yieldmc.errors import ConfigError

G_ON, G_OFF = 1e-4, 1e-6

#: (r_row, r_col, r_driver, r_sense) in ohm: plain, strong wires, periphery only, one wire
#: direction only, and all of them.
NETWORKS = [
    (1.0, 1.0, 0.0, 0.0),
    (10.0, 10.0, 0.0, 0.0),
    (0.0, 0.0, 50.0, 100.0),
    (0.0, 2.0, 0.0, 0.0),
    (3.0, 0.0, 20.0, 0.0),
    (0.5, 2.0, 50.0, 100.0),
]


def _g(rng, shape, lo=G_OFF, hi=G_ON):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), shape))


def _cache(G0, net):
    r_row, r_col, r_driver, r_sense = net
    return LowRankCache.from_conductances(G0, r_row, r_col, r_driver=r_driver, r_sense=r_sense)


def _assert_close(T, T_ref, rtol=ENGINE_RTOL):
    err = np.max(np.abs(T - T_ref)) / np.max(np.abs(T_ref))
    assert err < rtol, f"relative error {err:.3g} >= {rtol:g}"


def _stuck(rng, G0, k):
    """G0 with k random cells stuck at g_on or g_off."""
    G1 = G0.copy()
    idx = rng.choice(G0.size, k, replace=False)
    G1.flat[idx] = np.where(rng.random(k) < 0.5, G_ON, G_OFF)
    return G1


# ---- the cache ---------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (6, 1), (8, 16), (8, 20), (64, 16)])
@pytest.mark.parametrize("net", NETWORKS[:3] + NETWORKS[5:])
def test_cache_T0_equals_the_engine_and_the_reference(shape, net):
    rng = np.random.default_rng(hash((shape, net)) % 2**32)
    G0 = _g(rng, shape)
    cache = _cache(G0, net)
    r_row, r_col, r_driver, r_sense = net
    T_cg = transfer_matrix(G0, r_row, r_col, r_driver=r_driver, r_sense=r_sense)
    _assert_close(cache.T0, T_cg, CACHE_T0_RTOL)
    _assert_close(cache.T0, transfer_reference(G0, net))
    n = G0.size
    assert cache.W.shape == (n, n) and cache.Rt.shape == (n, shape[0]) and cache.Cr.shape == (n, shape[1])
    assert np.array_equal(cache.W, cache.W.T)
    assert np.all(cache.wdev <= 0)
    assert cache.nbytes == cache_memory_bytes(*shape)


def test_cache_diagonal_deviation_is_accurate(rng):
    """wdev = diag(W) - G0 without cancellation: against its first-order expansion
    -G0^2 a_cc, exact to 1e-12 with tiny wires."""
    G0 = _g(rng, (8, 6))
    r = 1e-7  # ohm: G a ~ 1e-12, so diag(W) - G0 computed as a difference would keep 4 digits
    cache = LowRankCache.from_conductances(G0, r, r)
    # diag(K^-1) - G = -G^2 a_cc + O(G^3 a^2) with a_cc = r (j + 1) + r (M - i): the second
    # order is 1e-12 of the first here.
    first_order = wdev_first_order(G0, r)
    assert np.allclose(cache.wdev, first_order, rtol=WDEV_FIRST_ORDER_RTOL, atol=0)


def test_cache_is_read_only(rng):
    cache = LowRankCache.from_conductances(_g(rng, (3, 4)))
    with pytest.raises(ValueError):
        cache.W[0, 0] = 1.0


def test_cache_memory_paper_arrays():
    """8.6 MiB for a 64 x 16 array, about 0.2 MiB for each small paper array."""
    assert 8.6 < cache_memory_bytes(64, 16) / 2**20 < 8.7
    assert cache_memory_bytes(8, 20) / 2**20 < 0.25


# ---- the k x k solve ---------------------------------------------------------------


def test_lu_kernel_against_numpy_on_symmetric_indefinite_systems(rng):
    """S = E^-1 + W_cc is symmetric but indefinite where cells get more conductive: the
    kernel must pivot (a zero leading diagonal would stop an unpivoted elimination)."""
    cases = [np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([[1e-12, 1.0], [1.0, 1e-12]])]
    for k in (1, 3, 8, 30):
        Q = rng.normal(size=(k, k))
        cases.append(Q + Q.T)
        cases.append(Q @ np.diag(rng.choice([-1.0, 1.0], k) * rng.uniform(0.1, 10, k)) @ Q.T)
    for S in cases:
        k = S.shape[0]
        B = rng.normal(size=(k, 5))
        lu = np.zeros((k + 2, k + 2))  # larger scratch than needed, as in the chunk kernel
        lu[:k, :k] = S
        x = np.zeros((k + 2, 5))
        x[:k] = B
        assert _lowrank._lu_solve_inplace(lu, x, k, 5) == _lowrank.STATUS_OK
        expect = dense_solve(S, B)
        assert np.max(np.abs(x[:k] - expect)) < LU_RTOL * np.max(np.abs(expect))


def test_lu_kernel_reports_singular_and_non_finite_systems():
    for S in ([[1.0, 2.0], [2.0, 4.0]], [[np.nan, 1.0], [1.0, 1.0]], [[np.inf, 0.0], [0.0, 1.0]]):
        lu = np.array(S)
        assert _lowrank._lu_solve_inplace(lu, np.ones((2, 3)), 2, 3) == _lowrank.STATUS_SINGULAR


def test_update_kernel_passes_on_a_singular_status(rng):
    """A NaN new conductance (the wrappers refuse one) gives S a NaN pivot: ``update_one``
    returns the LU's STATUS_SINGULAR instead of a T1."""
    G0 = _g(rng, (4, 6))
    cache = _cache(G0, NETWORKS[0])
    cells, g_new = np.array([2, 9]), np.array([G_ON, np.nan])
    sel, lu, x, scale = _lowrank.scratch(cells.size, *G0.shape)
    out = np.empty(G0.shape)
    status = _lowrank.update_one(*cache.kernel_args(), cells, g_new, sel, lu, x, scale, out)
    assert status == _lowrank.STATUS_SINGULAR


# ---- the update against the oracle -----------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (7, 1), (3, 4), (8, 16), (8, 20)])
@pytest.mark.parametrize("seed", range(4))
def test_update_equals_direct_solve_small(shape, seed):
    rng = np.random.default_rng([seed, *shape])
    G0 = _g(rng, shape)
    net = NETWORKS[seed % len(NETWORKS)] if seed < 3 else NETWORKS[rng.integers(len(NETWORKS))]
    cache = _cache(G0, net)
    n = G0.size
    for k in sorted({0, 1, min(3, n), max(1, int(0.3 * n))}):
        G1 = G0.copy()
        idx = rng.choice(n, k, replace=False)
        # stuck cells and arbitrary new values (up and down) alike
        G1.flat[idx] = np.where(rng.random(k) < 0.5, _g(rng, k), np.where(rng.random(k) < 0.5, G_ON, G_OFF))
        _assert_close(lowrank_transfer(cache, G1), transfer_reference(G1, net))


@pytest.mark.parametrize("net", [NETWORKS[0], NETWORKS[5]])
def test_update_equals_direct_solve_64x16(net):
    rng = np.random.default_rng(64)
    G0 = _g(rng, (64, 16))
    cache = _cache(G0, net)
    for k in (1, 21, 307):  # one cell, a typical die, 30 % of the array
        G1 = _stuck(rng, G0, k)
        _assert_close(lowrank_transfer(cache, G1), transfer_reference(G1, net))


# ---- named edge cases --------------------------------------------------------------


@pytest.fixture(scope="module")
def array_8x16():
    rng = np.random.default_rng(816)
    G0 = _g(rng, (8, 16))
    net = (1.0, 1.0, 5.0, 10.0)
    return G0, net, _cache(G0, net)


def test_k0_returns_a_copy_of_T0(array_8x16):
    G0, _, cache = array_8x16
    T = lowrank_transfer(cache, G0.copy())
    assert np.array_equal(T, cache.T0)
    T[0, 0] = -1.0
    assert cache.T0[0, 0] != -1.0


def test_whole_row_changed(array_8x16):
    G0, net, cache = array_8x16
    for row in (0, 5, 7):
        G1 = G0.copy()
        G1[row, :] = G_ON
        _assert_close(lowrank_transfer(cache, G1), transfer_reference(G1, net))


@pytest.mark.parametrize("corner", [(0, 0), (0, -1), (-1, 0), (-1, -1), "all"])
@pytest.mark.parametrize("g", [G_ON, G_OFF])
def test_defect_in_each_corner(array_8x16, corner, g):
    G0, net, cache = array_8x16
    G1 = G0.copy()
    for c in ([(0, 0), (0, -1), (-1, 0), (-1, -1)] if corner == "all" else [corner]):
        G1[c] = g
    _assert_close(lowrank_transfer(cache, G1), transfer_reference(G1, net))


def test_all_cells_stuck(array_8x16):
    G0, net, cache = array_8x16
    G1 = np.where(np.random.default_rng(1).random(G0.shape) < 0.5, G_ON, G_OFF)
    _assert_close(lowrank_transfer(cache, G1), transfer_reference(G1, net))


def test_cell_changed_to_its_own_value_changes_nothing(array_8x16):
    G0, _, cache = array_8x16
    flat = G0.ravel()
    offsets, cells, g_new = pack_changes([[5], [5, 40], [40]], [[flat[5]], [flat[5], G_ON], [G_ON]])
    T = lowrank_transfers(cache, offsets, cells, g_new, n_blocks=1)
    assert np.array_equal(T[0], cache.T0)
    assert np.array_equal(T[1], T[2])  # the no-op cell is skipped, not solved with E^-1 = inf
    assert not np.array_equal(T[2], cache.T0)


def test_open_cell_at_zero_siemens(array_8x16):
    """G1 = 0 (an open cell) is exact too: E^-1 = G0 G1 / (G0 - G1) = 0."""
    G0, net, cache = array_8x16
    G1 = G0.copy()
    G1[2, 3] = G1[7, 15] = G1[0, 0] = 0.0
    G1[4, 4] = G_ON
    _assert_close(lowrank_transfer(cache, G1), transfer_reference(G1, net))


@pytest.mark.parametrize("net", [NETWORKS[0], NETWORKS[1], NETWORKS[5]])
def test_extreme_on_off_ratio(net):
    """Cells from 1 nS to 1 mS (ratio 1e6), 30 % of them stuck at either end."""
    rng = np.random.default_rng(7)
    G0 = _g(rng, (8, 16), 1e-9, 1e-3)
    cache = _cache(G0, net)
    for _ in range(3):
        G1 = G0.copy()
        idx = rng.choice(G0.size, 38, replace=False)
        G1.flat[idx] = np.where(rng.random(idx.size) < 0.5, 1e-3, 1e-9)
        _assert_close(lowrank_transfer(cache, G1), transfer_reference(G1, net), EXTREME_RTOL)


def test_unchanged_cells_at_zero_siemens_are_fine(rng):
    G0 = _g(rng, (5, 6))
    G0[1, 2] = G0[4, 0] = 0.0
    net = (1.0, 2.0, 0.0, 3.0)
    cache = _cache(G0, net)
    assert np.all(cache.W[1 * 6 + 2] == 0)
    G1 = G0.copy()
    G1[0, 0], G1[3, 3] = G_ON, G_OFF
    _assert_close(lowrank_transfer(cache, G1), transfer_reference(G1, net))


@pytest.mark.parametrize("shape", [(1, 1), (8, 16), (64, 16)])
def test_ideal_wires_give_the_new_conductances_exactly(rng, shape):
    """All resistances 0: K0 = diag(1/G0), W = diag(G0), and the kernel writes G1 itself."""
    G0 = _g(rng, shape)
    cache = LowRankCache.from_conductances(G0, 0.0, 0.0)
    assert cache.ideal and np.array_equal(cache.T0, G0)
    G1 = _stuck(rng, G0, max(1, G0.size // 5))
    assert np.array_equal(lowrank_transfer(cache, G1), G1)
    offsets, cells, g_new = pack_changes([np.flatnonzero(G1 != G0)] * 2, [G1[G1 != G0]] * 2)
    T = lowrank_transfers(cache, offsets, cells, g_new)
    assert np.array_equal(T[0], G1) and np.array_equal(T[1], G1)


def test_not_ideal_when_only_the_periphery_resists(rng):
    G0 = _g(rng, (4, 4))
    cache = LowRankCache.from_conductances(G0, 0.0, 0.0, r_sense=100.0)
    assert not cache.ideal
    G1 = _stuck(rng, G0, 3)
    _assert_close(lowrank_transfer(cache, G1), transfer_reference(G1, (0.0, 0.0, 0.0, 100.0)))
    assert not np.array_equal(lowrank_transfer(cache, G1), G1)


# ---- many dies ---------------------------------------------------------------------


def _population(rng, G0, n_dies, k_max=None):
    """Per-die changed cells and values: k from 0 to 30 % of the cells (or k_max), some no-ops."""
    cells_list, g_list = [], []
    k_max = k_max or max(1, int(0.3 * G0.size))
    for d in range(n_dies):
        k = int(rng.integers(0, k_max + 1)) if d % 7 else 0
        c = rng.choice(G0.size, k, replace=False)
        g = np.where(rng.random(k) < 0.5, G_ON, G_OFF)
        if k > 2:
            g[0] = G0.flat[c[0]]  # a no-op change
        cells_list.append(c)
        g_list.append(g)
    return cells_list, g_list


@pytest.mark.parametrize("shape", [(8, 16), (64, 16)])
def test_chunk_equals_single_die_bit_for_bit(shape):
    rng = np.random.default_rng(11)
    G0 = _g(rng, shape)
    cache = LowRankCache.from_conductances(G0, 1.0, 1.0, r_sense=10.0)
    cells_list, g_list = _population(rng, G0, 23, k_max=60)  # 60: fast without the JIT too
    offsets, cells, g_new = pack_changes(cells_list, g_list)
    whole = lowrank_transfers(cache, offsets, cells, g_new)
    for d, (c, g) in enumerate(zip(cells_list, g_list, strict=True)):
        G1 = G0.copy()
        G1.flat[c] = g
        single = lowrank_transfer(cache, G1)
        # The single-die path sorts the cells (flatnonzero): same bits only when the chunk
        # lists them sorted too; unsorted cells give the same T to rounding.
        _assert_close(whole[d], single, REORDERED_UPDATE_RTOL)
    order = [np.argsort(c) for c in cells_list]
    offsets, cells, g_new = pack_changes([c[o] for c, o in zip(cells_list, order, strict=True)],
                                         [g[o] for g, o in zip(g_list, order, strict=True)])
    whole = lowrank_transfers(cache, offsets, cells, g_new)
    for d, (c, g) in enumerate(zip(cells_list, g_list, strict=True)):
        G1 = G0.copy()
        G1.flat[c] = g
        assert np.array_equal(whole[d], lowrank_transfer(cache, G1)), f"die {d}"


def test_chunk_invariant_to_split_blocks_and_threads():
    rng = np.random.default_rng(12)
    G0 = _g(rng, (8, 20))
    cache = LowRankCache.from_conductances(G0, 1.0, 2.0, r_driver=5.0)
    cells_list, g_list = _population(rng, G0, 40)
    offsets, cells, g_new = pack_changes(cells_list, g_list)
    ref = lowrank_transfers(cache, offsets, cells, g_new, n_blocks=1)
    for blocks in (2, 3, 7, 40, 100):
        assert np.array_equal(lowrank_transfers(cache, offsets, cells, g_new, n_blocks=blocks), ref)
    parts = []
    for lo, hi in ((0, 1), (1, 13), (13, 14), (14, 40)):
        o, c, g = pack_changes(cells_list[lo:hi], g_list[lo:hi])
        parts.append(lowrank_transfers(cache, o, c, g))
    assert np.array_equal(np.concatenate(parts), ref)
    before = numba.get_num_threads()
    try:
        for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(threads)
            out = np.full_like(ref, np.nan)
            lowrank_transfers(cache, offsets, cells, g_new, out=out)
            assert np.array_equal(out, ref), f"{threads} threads"
    finally:
        numba.set_num_threads(before)


def test_chunk_of_no_dies_and_of_no_changes(rng):
    cache = LowRankCache.from_conductances(_g(rng, (3, 5)))
    assert lowrank_transfers(cache, [0], [], []).shape == (0, 3, 5)
    T = lowrank_transfers(cache, [0, 0, 0], np.empty(0, np.int64), np.empty(0))
    assert np.array_equal(T[0], cache.T0) and np.array_equal(T[1], cache.T0)


def test_pack_changes_and_changes(rng):
    G0 = _g(rng, (4, 5))
    cache = LowRankCache.from_conductances(G0)
    G1 = G0.copy()
    G1[3, 1], G1[0, 4] = G_ON, 0.0
    cells, g_new = changes(cache, G1)
    assert cells.tolist() == [4, 16] and g_new.tolist() == [0.0, G_ON]
    offsets, c, g = pack_changes([[1, 2], [], [3]], [[1e-5, 2e-5], [], [3e-5]])
    assert offsets.tolist() == [0, 2, 2, 3] and c.tolist() == [1, 2, 3] and g.tolist() == [1e-5, 2e-5, 3e-5]


# ---- validation --------------------------------------------------------------------


def test_invalid_inputs_are_refused_with_clear_errors(rng):
    G0 = _g(rng, (4, 5))
    cache = LowRankCache.from_conductances(G0)
    bad = [
        (lambda: lowrank_transfer(cache, G0[:, :4]), "shape"),
        (lambda: lowrank_transfer(cache, -G0), "negative"),
        (lambda: lowrank_transfer(cache, np.full_like(G0, np.nan)), "non-finite"),
        (lambda: lowrank_transfers(cache, [0, 2], [1, 1], [1e-5, 2e-5]), "twice"),
        (lambda: lowrank_transfers(cache, [0, 1], [20], [1e-5]), r"\[0, 20\)"),
        (lambda: lowrank_transfers(cache, [0, 1], [-1], [1e-5]), r"\[0, 20\)"),
        (lambda: lowrank_transfers(cache, [0, 2], [1], [1e-5]), "offsets"),
        (lambda: lowrank_transfers(cache, [1, 1], [1], [1e-5]), "offsets"),
        (lambda: lowrank_transfers(cache, [0, 1], [1], [1e-5, 1e-5]), "one value per cell"),
        (lambda: lowrank_transfers(cache, [0, 1], [1], [-1e-5]), ">= 0"),
        (lambda: lowrank_transfers(cache, [0, 1], [1], [np.inf]), "finite"),
        (lambda: lowrank_transfers(cache, [0, 1], [1.5], [1e-5]), "integer"),
        (lambda: lowrank_transfers(cache, [0, 1], [1], [1e-5], out=np.empty((2, 4, 5))), "out"),
        (lambda: lowrank_transfers(cache, [0, 1], [1], [1e-5], n_blocks=0), "n_blocks"),
        (lambda: LowRankCache.from_conductances(G0, -1.0, 1.0), "r_row"),
        (lambda: LowRankCache.from_conductances(G0, 1.0, 1.0, r_sense=np.nan), "r_sense"),
        (lambda: LowRankCache.from_conductances(np.ones(4)), "2-D"),
        (lambda: LowRankCache.from_conductances(np.full((64, 33), 1e-5)), "max_cells"),
        (lambda: max_rank(0, 4), "positive"),
    ]
    for call, match in bad:
        with pytest.raises(ConfigError, match=match):
            call()


def test_a_changed_cell_must_start_above_zero_siemens(rng):
    G0 = _g(rng, (4, 5))
    G0[2, 3] = 0.0
    cache = LowRankCache.from_conductances(G0)
    G1 = G0.copy()
    G1[2, 3] = G_ON
    with pytest.raises(ConfigError, match=r"cell \(2, 3\) changes from 0 S"):
        lowrank_transfer(cache, G1)
    with pytest.raises(ConfigError, match=r"cell \(2, 3\)"):
        lowrank_transfers(cache, [0, 1], [13], [G_ON])
    G1[2, 3] = 0.0  # listed but unchanged: fine
    assert np.array_equal(lowrank_transfers(cache, [0, 1], [13], [0.0])[0], cache.T0)


def test_max_rank():
    for shape, k in MEASURED_MAX_RANK.items():
        assert max_rank(*shape) == k and 1 <= k <= shape[0] * shape[1]
    assert max_rank(64, 16) > max_rank(8, 20) > max_rank(8, 16)  # a bigger array costs CG more
    # unmeasured shapes: the cost model, capped at the number of cells
    assert max_rank(1, 1) == 1 and max_rank(1, 3) == 3
    assert max_rank(32, 32) == int(MAX_RANK_ALPHA * 32) and max_rank(32, 32) > max_rank(64, 16)

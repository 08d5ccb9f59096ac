"""The numba crossbar engine against the scipy direct solve, the physics it must obey, and
the one core (wire operator, block CG, block driver) that every solver runs on."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from tests.reference.circuit import dense_wire_operator, scaled_operator_product, scaled_system
from tests.tolerances import (
    CG_BITWISE_TOL2,
    CG_CLOSED_FORM_RTOL,
    CG_TIGHT_TOL2,
    CLOSED_FORM_RTOL,
    DENSE_CG_RTOL,
    DIRECT_SOLVE_RTOL,
    ENGINE_RTOL,
    KCL_ATOL,
    OPERATOR_RTOL,
    SUBNORMAL_STEP,
    SUPERPOSITION_RTOL,
    WIRE_DIAGONAL_RTOL,
    ZERO_SCALE_FLOOR,
)
from yieldmc.circuit import (
    SOLVER_RTOL,
    Resistances,
    _kernels,
    _wires,
    node_voltages_reference,
    solve,
    solve_reference,
    transfer_matrix,
    transfer_matrix_info,
)
from yieldmc.circuit.validate import check_network
from yieldmc.config import WireConfig
from yieldmc.errors import ConfigError, SolverError

G_OFF, G_ON = 1e-6, 1e-4
SHAPES = [(1, 1), (1, 9), (9, 1), (8, 8), (8, 20), (20, 8), (64, 16), (32, 32), (7, 13)]
WIRES = [  # (r_row, r_col, r_driver, r_sense) in ohm
    (1.0, 1.0, 0.0, 0.0),
    (10.0, 10.0, 0.0, 0.0),
    (0.0, 0.0, 0.0, 0.0),
    (0.0, 5.0, 0.0, 0.0),
    (5.0, 0.0, 0.0, 0.0),
    (1.0, 1.0, 20.0, 50.0),
    (0.0, 0.0, 10.0, 10.0),
    (2.5, 0.5, 0.0, 100.0),
]


def random_conductances(rng, shape, stuck=0.15):
    """Conductances spanning G_off..G_on (log-uniform) with stuck cells at both extremes."""
    G = np.exp(rng.uniform(np.log(G_OFF), np.log(G_ON), shape))
    G[rng.random(shape) < stuck] = G_ON
    G[rng.random(shape) < stuck] = G_OFF
    return G


def rel_err(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


def assert_matches_oracle(got, ref, m_rows):
    """``|got - ref| <= ENGINE_RTOL max |ref|`` plus ``M + 1`` subnormal steps (SUBNORMAL_STEP)."""
    err = np.abs(got - ref).max(initial=0.0)
    allowed = ENGINE_RTOL * np.abs(ref).max(initial=0.0) + (m_rows + 1) * SUBNORMAL_STEP
    assert err <= allowed, (err, allowed)


#: The smallest subnormal and the smallest normal double (V).
TINY, SMALLEST_NORMAL = 5e-324, 2.2250738585072014e-308
#: Where the scaling-law tests move each tiny input: its largest entry near 2^-600 V (currents
#: and every intermediate of the solvers are then normal numbers, and sinh(v/v0) = v/v0).
UP = -600


def tiny_batch(rng, m_rows, n_batch=42):
    """``n_batch`` inputs (two solver blocks of 32), ordinary ones and, in both blocks,
    subnormal ones, the smallest normal and zero. Returns ``(v, tiny, k)``: the inputs,
    the indices of the tiny ones, and for each input the exponent ``k`` with
    ``ldexp(v, k)`` (exact) largest near 2^UP (``k = 0`` for ordinary and zero inputs)."""
    v = rng.uniform(-0.2, 0.2, (n_batch, m_rows))
    rows = {
        1: np.full(m_rows, TINY),  # every row at 5e-324 V
        2: np.eye(m_rows)[0] * TINY,  # a single row at 5e-324 V
        3: np.full(m_rows, 2.3e-308),
        4: np.eye(m_rows)[-1] * SMALLEST_NORMAL,
        6: np.ldexp(rng.uniform(-1.0, 1.0, m_rows), -1030),  # a few digits left each
        7: np.ldexp(rng.uniform(0.0, 1.0, m_rows), -1060),
        8: np.r_[TINY, rng.choice([-TINY, 0.0, TINY], m_rows - 1)],
        9: np.ldexp(rng.uniform(-1.0, 1.0, m_rows), -1015),  # normal inputs, subnormal currents
    }
    v[[5, 37]] = 0.0
    for i, row in rows.items():
        v[i] = row
        v[i + 32] = -row
    tiny = np.array(sorted(rows) + [i + 32 for i in sorted(rows)])
    k = np.zeros(n_batch, dtype=int)
    k[tiny] = UP - np.frexp(np.abs(v[tiny]).max(axis=1))[1]
    return v, tiny, k


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("wires", WIRES)
def test_engine_matches_direct_solve(rng, shape, wires):
    r_row, r_col, r_drv, r_snk = wires
    G = random_conductances(rng, shape)
    v = rng.uniform(-0.2, 0.2, (5, shape[0]))
    ref = solve_reference(G, v, r_row, r_col, r_driver=r_drv, r_sense=r_snk)
    got = solve(G, v, r_row, r_col, r_driver=r_drv, r_sense=r_snk)
    assert rel_err(got, ref) < ENGINE_RTOL
    T = transfer_matrix(G, r_row, r_col, r_driver=r_drv, r_sense=r_snk)
    assert rel_err(v @ T, ref) < ENGINE_RTOL


@pytest.mark.parametrize("shape", [(64, 16), (16, 64), (33, 33)])
def test_single_vector_path_equals_transfer_matrix(rng, shape):
    """Few inputs are solved directly, many through T: both routes agree."""
    G = random_conductances(rng, shape)
    v = rng.uniform(0, 0.2, shape[0])
    direct = solve(G, v, 3.0, 2.0)
    assert direct.shape == (shape[1],)
    assert rel_err(direct, v @ transfer_matrix(G, 3.0, 2.0)) < ENGINE_RTOL


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(128, 128), (256, 64)])
def test_engine_matches_direct_solve_large(rng, shape):
    G = random_conductances(rng, shape)
    v = rng.uniform(0, 0.2, (3, shape[0]))
    ref = solve_reference(G, v, 1.0, 1.0)
    assert rel_err(solve(G, v, 1.0, 1.0), ref) < ENGINE_RTOL


def test_ideal_wires_are_exactly_v_at_G(rng):
    G = random_conductances(rng, (12, 7))
    v = rng.uniform(0, 0.2, (4, 12))
    assert np.array_equal(solve(G, v, 0.0, 0.0), v @ G)
    assert np.array_equal(transfer_matrix(G, 0.0, 0.0), G)


def test_reference_ideal_limit_and_kcl(rng):
    """The oracle itself: ideal wires give v @ G; every row node obeys Kirchhoff's law."""
    G = random_conductances(rng, (6, 9))
    v = rng.uniform(0, 0.2, 6)
    assert_allclose(solve_reference(G, v, 0.0, 0.0), v @ G, rtol=DIRECT_SOLVE_RTOL)
    r = 2.0
    row_v, col_v = node_voltages_reference(G, v, r, r)
    cell = G * (row_v - col_v)
    # Row node (i, j): current in from the left = current out to the right + cell current.
    left = np.concatenate([v[:, None], row_v[:, :-1]], axis=1)
    right = np.concatenate([row_v[:, 1:], row_v[:, -1:]], axis=1)  # open far end
    assert_allclose((left - row_v) / r - (row_v - right) / r, cell, atol=KCL_ATOL)
    # Column node (i, j): from above + cell = down to the next (ground below the last).
    above = np.concatenate([col_v[:1, :], col_v[:-1, :]], axis=0)  # open far end
    below = np.concatenate([col_v[1:, :], np.zeros((1, 9))], axis=0)
    assert_allclose((above - col_v) / r + cell, (col_v - below) / r, atol=KCL_ATOL)


def test_hand_computed_single_cell():
    """1x1 array: source, r_driver + r_row, cell, r_col + r_sense in series."""
    g, v = 1e-4, 0.2
    for r_row, r_col, r_drv, r_snk in [(1.0, 2.0, 3.0, 4.0), (0.0, 0.0, 0.0, 0.0)]:
        expected = v / (1 / g + r_row + r_col + r_drv + r_snk)
        got = solve([[g]], [v], r_row, r_col, r_driver=r_drv, r_sense=r_snk)
        assert_allclose(got, [expected], rtol=CLOSED_FORM_RTOL)


def test_hand_computed_two_cells_on_one_row():
    """1x2 array, ideal columns: a ladder whose answer follows from series/parallel rules."""
    g1, g2, r, v = 1e-4, 5e-5, 100.0, 0.2
    # Node 0 sees cell 1 in parallel with (r + cell 2); the source sees r + that.
    z_branch = 1 / g1 * (r + 1 / g2) / (1 / g1 + r + 1 / g2)
    i_total = v / (r + z_branch)
    v0 = v - r * i_total
    expected = [v0 * g1, v0 / (r + 1 / g2)]
    assert_allclose(solve([[g1, g2]], [v], r, 0.0), expected, rtol=CG_CLOSED_FORM_RTOL)


def test_all_cells_stuck_and_zero_conductance(rng):
    for G in (np.full((16, 16), G_ON), np.full((16, 16), G_OFF), np.zeros((4, 5))):
        v = rng.uniform(0, 0.2, (3, G.shape[0]))
        ref = solve_reference(G, v, 1.0, 1.0)
        got = solve(G, v, 1.0, 1.0)
        assert_allclose(got, ref, rtol=0, atol=ENGINE_RTOL * max(np.abs(ref).max(), ZERO_SCALE_FLOOR))


@pytest.mark.parametrize("corner", [(0, 0), (0, -1), (-1, 0), (-1, -1)])
def test_defect_in_each_corner(rng, corner):
    G = np.full((16, 12), G_OFF)
    G[corner] = G_ON
    v = rng.uniform(0, 0.2, (2, 16))
    assert rel_err(solve(G, v, 5.0, 5.0), solve_reference(G, v, 5.0, 5.0)) < ENGINE_RTOL


def test_extreme_on_off_ratio(rng):
    G = np.where(rng.random((24, 24)) < 0.5, 1e-9, 1e-3)  # ratio 1e6, strong IR drop
    v = rng.uniform(0, 0.2, (2, 24))
    assert rel_err(solve(G, v, 2.0, 2.0), solve_reference(G, v, 2.0, 2.0)) < ENGINE_RTOL


def test_non_convergence_is_reported_not_hidden(rng):
    G = random_conductances(rng, (32, 32))
    T, info = transfer_matrix_info(G, 10.0, 10.0, max_iter=1, raise_on_failure=False)
    assert not info.converged and info.max_residual > SOLVER_RTOL
    with pytest.raises(SolverError, match="residual"):
        transfer_matrix_info(G, 10.0, 10.0, max_iter=1)


@pytest.mark.parametrize(
    "G, v, kw, match",
    [
        (np.ones((2, 3)) * 1e-5, np.ones(3), {}, "shape"),
        (np.ones((2, 3)) * 1e-5, np.ones((4, 2, 2)), {}, "shape"),
        (np.zeros((0, 3)), np.ones(0), {}, "empty"),
        (np.ones(3), np.ones(3), {}, "2-D"),
        (-np.ones((2, 2)), np.ones(2), {}, "negative"),
        (np.full((2, 2), np.nan), np.ones(2), {}, "non-finite"),
        (np.ones((2, 2)), np.array([np.inf, 0]), {}, "NaN or inf"),
        (np.ones((2, 2)), np.ones(2), {"r_row": -1.0}, "r_row"),
        (np.ones((2, 2)), np.ones(2), {"r_sense": np.inf}, "r_sense"),
        (np.ones((2, 2)), np.ones(2), {"r_driver": "x"}, "r_driver"),
    ],
)
def test_bad_input_is_refused_clearly(G, v, kw, match):
    with pytest.raises(ConfigError, match=match):
        solve(G, v, **kw)
    with pytest.raises(ConfigError, match=match):
        solve_reference(G, v, **kw)


# ---- physics, as properties -------------------------------------------------------------

shapes = st.tuples(st.integers(1, 12), st.integers(1, 12))
seeds = st.integers(0, 2**32 - 1)
resistance = st.floats(0.0, 10.0)


@settings(max_examples=40, deadline=None)
@given(shape=shapes, seed=seeds, r=resistance, dr=st.floats(0.01, 10.0))
def test_more_wire_resistance_never_raises_current(shape, seed, r, dr):
    rng = np.random.default_rng(seed)
    G = random_conductances(rng, shape)
    v = rng.uniform(0, 0.2, shape[0])  # non-negative inputs
    low = solve(G, v, r, r)
    high = solve(G, v, r + dr, r + dr)
    # Allow round-off at the solver's tolerance only.
    assert np.all(high <= low + ENGINE_RTOL * np.abs(low).max())
    assert np.all(low >= 0)


@settings(max_examples=30, deadline=None)
@given(shape=shapes, seed=seeds, r=resistance)
def test_zero_input_gives_zero_current(shape, seed, r):
    G = random_conductances(np.random.default_rng(seed), shape)
    assert np.array_equal(solve(G, np.zeros(shape[0]), r, r), np.zeros(shape[1]))


@settings(max_examples=30, deadline=None)
@given(shape=shapes, seed=seeds, r=resistance, a=st.floats(-3, 3), b=st.floats(-3, 3))
def test_superposition(shape, seed, r, a, b):
    rng = np.random.default_rng(seed)
    G = random_conductances(rng, shape)
    v1, v2 = rng.uniform(-0.2, 0.2, (2, shape[0]))
    combined = solve(G, a * v1 + b * v2, r, r)
    parts = a * solve(G, v1, r, r) + b * solve(G, v2, r, r)
    scale = max(np.abs(combined).max(), np.abs(parts).max(), ZERO_SCALE_FLOOR)
    # three solves, each within ENGINE_RTOL, weighted by up to 3: SUPERPOSITION_RTOL is 10x
    assert np.max(np.abs(combined - parts)) <= SUPERPOSITION_RTOL * scale


@pytest.mark.parametrize("scale", [1e-300, 1e-245, 1e-160, 1e100])
def test_tiny_and_huge_inputs_are_solved_not_waved_through(rng, scale):
    """A few inputs take the CG path (not T); their squares could under- or overflow the
    residual norms, which are therefore taken of v / 2^e (exact for a linear network)."""
    G = random_conductances(rng, (6, 9))
    v = rng.uniform(-1.0, 1.0, (2, 6)) * scale
    assert rel_err(solve(G, v, 1.0, 1.0, r_sense=5.0),
                   solve_reference(G, v, 1.0, 1.0, r_sense=5.0)) < ENGINE_RTOL


@pytest.mark.parametrize("path, shape, wires", [
    ("cg", (48, 44), (1.0, 1.0, 0.0, 5.0)),  # 40 inputs < min(M, N): the CG kernel, 2 blocks
    ("cg", (48, 44), (20.0, 20.0, 10.0, 1000.0)),
    ("transfer", (7, 13), (1.0, 1.0, 0.0, 5.0)),  # 40 inputs >= min(M, N): v @ T
    ("ideal", (7, 13), (0.0, 0.0, 0.0, 0.0)),  # v @ G
])
def test_subnormal_inputs_linear_engine(rng, path, shape, wires):
    """Inputs of 5e-324 V to 2.3e-308 V amid ordinary ones. The CG path solves each input
    as v / 2^e and rounds its currents once: it obeys ``solve(G, v) = 2^-k solve(G, 2^k v)``
    bit for bit. ``v @ T`` and ``v @ G`` round every subnormal product (numpy's matmul):
    within M + 1 steps of 5e-324 A of that. All paths agree with the oracle."""
    r_row, r_col, r_drv, r_snk = wires
    G = random_conductances(rng, shape)
    v, tiny, k = tiny_batch(rng, shape[0])
    got = solve(G, v, r_row, r_col, r_driver=r_drv, r_sense=r_snk)
    up = solve(G, np.ldexp(v, k[:, None]), r_row, r_col, r_driver=r_drv, r_sense=r_snk)
    scaled = np.ldexp(up, -k[:, None])
    if path == "cg":
        assert_array_equal(got, scaled)
    else:
        assert_matches_oracle(got, scaled, shape[0])
        assert_array_equal(got[k == 0], up[k == 0])
    assert np.count_nonzero(got[tiny]) > 0  # the test reaches currents above 0
    assert_array_equal(got[[5, 37]], 0.0)
    ref = solve_reference(G, v[tiny], r_row, r_col, r_driver=r_drv, r_sense=r_snk)
    assert_matches_oracle(got[tiny], ref, shape[0])
    ref_up = solve_reference(G, np.ldexp(v, k[:, None]), r_row, r_col, r_driver=r_drv,
                             r_sense=r_snk)
    assert rel_err(up, ref_up) < ENGINE_RTOL


@pytest.mark.parametrize("value", [TINY, 1e-320, SMALLEST_NORMAL, 2.3e-308])
def test_a_single_subnormal_input_linear_engine(rng, value):
    """One input vector (the CG path) at 5e-324 V ... 2.3e-308 V on one row, and on all."""
    G = random_conductances(rng, (6, 9)) * 1e3  # 1 mS - 0.1 S: 1e-320 V gives currents > 0
    for v in (np.eye(6)[2] * value, np.full(6, value)):
        k = UP - np.frexp(value)[1]
        got = solve(G, v, 1.0, 1.0, r_sense=5.0)
        assert_array_equal(got, np.ldexp(solve(G, np.ldexp(v, k), 1.0, 1.0, r_sense=5.0), -k))
        assert_matches_oracle(got, solve_reference(G, v, 1.0, 1.0, r_sense=5.0), 6)


# ---- the one circuit core (yieldmc.circuit._wires) and the one block driver ---------------

CORE_WIRES = [(1.5, 2.0, 3.0, 4.0), (2.0, 0.0, 0.0, 0.0), (0.0, 2.0, 0.0, 0.0),
              (0.0, 0.0, 7.0, 0.0), (0.0, 0.0, 0.0, 7.0)]  # (r_row, r_col, r_driver, r_sense)


def assert_close_to(got, expected, rtol=OPERATOR_RTOL):
    assert np.abs(got - expected).max() <= rtol * np.abs(expected).max(), rtol


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (6, 1), (7, 5)])
@pytest.mark.parametrize("wires", CORE_WIRES)
def test_wire_operator_against_its_dense_matrix(rng, shape, wires):
    """``apply_wires``: ``A p``; ``H p = p + s A (s p)`` with the linear engine's scale per
    cell and Newton's per cell and input, and the dot products ``p . H p`` it sums on the
    way; ``wire_diagonal`` is ``A``'s diagonal. Every resistance alone, every edge shape."""
    m, n = shape
    k = 3
    A = dense_wire_operator(m, n, wires)
    w = Resistances(*wires)
    p = rng.normal(size=(m, n, k))
    flat = p.reshape(m * n, k)
    work = np.empty((3, n, k))
    out = np.empty_like(p)
    _wires.apply_wires(p, w, out, work)
    assert_close_to(out.reshape(m * n, k), A @ flat)
    s_cell = np.sqrt(random_conductances(rng, shape)) * 30.0  # G r of order 1: A matters
    s_input = s_cell[:, :, None] * rng.uniform(0.5, 2.0, (m, n, k))
    dots = np.empty(k)
    for s in (s_cell, s_input):
        s3 = np.broadcast_to(s.reshape(m, n, -1), (m, n, k)).reshape(m * n, k)
        expected = scaled_operator_product(A, s3, flat)
        _wires.apply_wires(p, w, out, work, s)
        assert_close_to(out.reshape(m * n, k), expected)
        _wires.apply_wires(p, w, out, work, s, dots)
        assert_close_to(out.reshape(m * n, k), expected)
        assert_close_to(dots, np.sum(flat * expected, axis=0))
    diag = np.array([[_wires.wire_diagonal(w, i, j, m) for j in range(n)] for i in range(m)])
    assert_allclose(diag.ravel(), np.diag(A), rtol=WIRE_DIAGONAL_RTOL)


def test_a_scale_per_input_runs_the_linear_engines_arithmetic(rng):
    """Newton's per-input scale, equal across the inputs, gives the linear engine's per-cell
    results bit for bit: the operator and the CG read either through one code."""
    m, n, k = 7, 5, 4
    w = Resistances(1.5, 2.0, 3.0, 4.0)
    s = np.sqrt(random_conductances(rng, (m, n))) * 30.0
    dinv = 1.0 / (1.0 + s * s * np.diag(dense_wire_operator(m, n, w)).reshape(m, n))
    wide = lambda a: np.ascontiguousarray(np.repeat(a[:, :, None], k, axis=2))  # noqa: E731
    p = rng.normal(size=(m, n, k))
    results = []
    for scale, pre in ((s, dinv), (wide(s), wide(dinv))):
        out, dots, work = np.empty((m, n, k)), np.empty(k), np.empty((3, n, k))
        _wires.apply_wires(p, w, out, work, scale, dots)
        z, r = np.zeros((m, n, k)), p.copy()
        tol2 = np.full(k, CG_BITWISE_TOL2)
        its = _wires.cg_iterations(scale, pre, w, tol2, np.ones(k, bool), 100, True, z, r,
                                   np.empty((m, n, k)), np.empty((m, n, k)), work)
        results.append((out, dots, z, r, its))
    for a, b in zip(*results, strict=True):
        assert_array_equal(a, b)


@pytest.mark.parametrize("per_input", [False, True])
def test_block_cg_solves_the_scaled_system(rng, per_input):
    """``cg_iterations`` against a dense solve of ``(I + s A s) z = b``, with both orders of
    ``p . H p`` (they differ by round-off only); a zero right-hand side stops at once and an
    inactive one is left alone."""
    m, n, k = 6, 5, 4
    w = Resistances(1.0, 2.0, 3.0, 4.0)
    A = dense_wire_operator(m, n, w)
    s_cell = np.sqrt(random_conductances(rng, (m, n))) * 30.0
    s = s_cell[:, :, None] * rng.uniform(0.5, 2.0, (m, n, k)) if per_input else s_cell
    s3 = np.broadcast_to(s.reshape(m, n, -1), (m, n, k)).reshape(m * n, k)
    dinv = 1.0 / (1.0 + s * s * (np.diag(A).reshape(m, n, 1) if per_input else np.diag(A).reshape(m, n)))
    b = rng.normal(size=(m, n, k))
    b[:, :, 1] = 0.0
    solutions = []
    for fused_dot in (True, False):
        z, r = np.zeros((m, n, k)), b.copy()
        tol2 = CG_TIGHT_TOL2 * np.sum(b * b, axis=(0, 1))
        active = np.array([True, True, True, False])
        its = _wires.cg_iterations(s, dinv, w, tol2, active, 500, fused_dot, z, r, np.empty((m, n, k)),
                                   np.empty((m, n, k)), np.empty((3, n, k)))
        assert 0 < its < 500 and active.tolist() == [True, True, True, False]  # the caller's
        for c in (0, 2):
            H = scaled_system(A, s3[:, c])
            assert_close_to(z[:, :, c].ravel(), np.linalg.solve(H, b[:, :, c].ravel()), DENSE_CG_RTOL)
        assert not z[:, :, 1].any() and not z[:, :, 3].any()
        assert_array_equal(r[:, :, 3], b[:, :, 3])
        solutions.append(z)
    assert_close_to(solutions[0], solutions[1], DENSE_CG_RTOL)


@pytest.mark.parametrize("block", [1, 3, 32])
def test_block_driver_gives_every_kind_of_right_hand_side(rng, block):
    """The one block driver: ``T`` by columns (reciprocity), by unit inputs on the rows and
    from the responses to a source in series with each cell, for any block size (a short
    last block included), against the oracle."""
    m, n = 7, 5
    G = random_conductances(rng, (m, n))
    w = Resistances(1.0, 2.0, 3.0, 4.0)
    ref = solve_reference(G, np.eye(m), **w._asdict())
    t_cols, t_rows = np.empty((m, n)), np.empty((m, n))
    u = np.empty((m, n, m * n))
    ci, cj = np.divmod(np.arange(m * n), n)
    for worst, its in (_kernels.transfer_by_columns(G, w, SOLVER_RTOL, 2000, block, t_cols),
                       _kernels.solve_inputs(G, np.eye(m), w, SOLVER_RTOL, 2000, block, t_rows),
                       _kernels.cell_responses(G, ci, cj, w, SOLVER_RTOL, 2000, block, u)):
        assert worst <= SOLVER_RTOL and its > 0
    assert rel_err(t_cols, ref) < ENGINE_RTOL
    assert rel_err(t_rows, ref) < ENGINE_RTOL
    # a unit source in series with each cell of row i, summed: the row driven at 1 V
    t_cells = np.einsum("ajib->ij", u.reshape(m, n, m, n))
    assert rel_err(t_cells, ref) < ENGINE_RTOL


def test_resistances_one_order_and_names_everywhere():
    """``(r_row, r_col, r_driver, r_sense)``: the config's order, the public keywords, the
    checked tuple the kernels take."""
    assert Resistances._fields == tuple(f for f in WireConfig.__dataclass_fields__)
    w = check_network(1, 2.0, 3, 4.5)
    assert w == Resistances(1.0, 2.0, 3.0, 4.5) and all(type(x) is float for x in w)
    assert Resistances.of(WireConfig(r_sense=50.0)) == Resistances(1.0, 1.0, 0.0, 50.0)
    assert Resistances(0.0, 0.0).ideal and not Resistances(0.0, 0.0, 0.0, 1e-9).ideal
    G = np.full((3, 4), 1e-4)
    assert_array_equal(transfer_matrix(G, **w._asdict()),
                       transfer_matrix(G, 1.0, 2.0, r_driver=3.0, r_sense=4.5))


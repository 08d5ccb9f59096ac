"""The sinh-device Newton solver against its oracle (MNA Newton with direct solves),
its limits (ideal wires, small signal), its physics and its failure reporting."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from tests.reference.nonlinear import gap_model_currents, ideal_wire_currents, kvl_residual
from tests.test_circuit import (
    SMALLEST_NORMAL,
    TINY,
    UP,
    WIRES,
    assert_matches_oracle,
    random_conductances,
    rel_err,
    seeds,
    shapes,
    tiny_batch,
)
from tests.tolerances import (
    ASINH_RTOL,
    CLOSED_FORM_RTOL,
    ENGINE_RTOL,
    IDEAL_SINH_RTOL,
    KVL_ATOL,
    NEWTON_CG_RESIDUAL_RTOL,
    NEWTON_CG_TOL2,
    ODD_SYMMETRY_ATOL,
    ROUND_OFF_FLOOR,
    SECOND_ORDER_RATIO_RTOL,
    SMALL_SIGNAL_BOUND_FACTOR,
    WIRE_VOLTAGE_ATOL,
    WIRE_VOLTAGE_RTOL,
)
from yieldmc.circuit import Resistances, _newton, _wires, solve, solve_sinh, solve_sinh_info, solve_sinh_reference
from yieldmc.circuit.nonlinear import NEWTON_RTOL
from yieldmc.config import load_config
from yieldmc.errors import ConfigError, SolverError

V0 = 0.25
SHAPES = [(1, 1), (1, 9), (9, 1), (8, 8), (8, 20), (20, 8), (16, 16), (7, 13)]
#: Newton steps the preset operating range needs (measured 2-3 on the paper die); a
#: regression that made the start or the step worse would show here first.
PRESET_NEWTON_MAX = 6


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("wires", WIRES)
def test_newton_matches_the_direct_newton_oracle(rng, shape, wires):
    r_row, r_col, r_driver, r_sense = wires
    G = random_conductances(rng, shape)
    v = rng.uniform(-0.3, 0.3, (4, shape[0]))
    ref = solve_sinh_reference(G, v, V0, r_row, r_col, r_driver=r_driver, r_sense=r_sense)
    got = solve_sinh(G, v, V0, r_row, r_col, r_driver=r_driver, r_sense=r_sense)
    assert rel_err(got, ref) < ENGINE_RTOL


@pytest.mark.parametrize("v0", [0.01, 0.02, 0.05, 0.1, 1.0])
@pytest.mark.parametrize("r_wire", [1.0, 20.0])
def test_strong_non_linearity_and_heavy_wires(rng, v0, r_wire):
    """sinh(0.3 / 0.01) = 1e11x the linear current at the top: the ideal-wire start
    overshoots by orders of magnitude, damping must bring Newton home (tens of steps), and
    the residual it reports must be the true one (A x and F recomputed from scratch)."""
    G = random_conductances(rng, (24, 12))
    v = rng.uniform(0.0, 0.3, (6, 24))
    got, info = solve_sinh_info(G, v, v0, r_wire, r_wire, r_sense=10.0)
    ref = solve_sinh_reference(G, v, v0, r_wire, r_wire, r_sense=10.0)
    assert info.converged and info.max_residual <= NEWTON_RTOL
    assert rel_err(got, ref) < ENGINE_RTOL


def test_ideal_wires_are_the_device_law(rng):
    G = random_conductances(rng, (6, 5))
    v = rng.uniform(-0.2, 0.2, (3, 6))
    got = solve_sinh(G, v, V0, 0.0, 0.0)
    expected = ideal_wire_currents(G, v, V0)
    assert_allclose(got, expected, rtol=IDEAL_SINH_RTOL, atol=0)


def test_gap_model_currents_without_wires(rng):
    """The die's conductance parameterisation is the gap model I0 exp(-g/g0) sinh(V/V0)."""
    from yieldmc.devices import SinhDevice

    dev = SinhDevice()
    gaps = rng.uniform(0.1, 1.7, (4, 3))
    v = rng.uniform(0.0, 0.3, 4)
    direct = gap_model_currents(dev, gaps, v)
    got = solve_sinh(dev.conductance(gaps), v, dev.v0, 0.0, 0.0)
    assert_allclose(got, direct, rtol=CLOSED_FORM_RTOL)


@pytest.mark.parametrize("wires", [(1.0, 1.0, 0.0, 0.0), (2.0, 0.5, 10.0, 30.0)])
def test_small_signal_limit_is_the_linear_engine(rng, wires):
    """sinh(u) = u (1 + u^2/6 + ...): with v0 -> inf the cell is ohmic; the gap shrinks as 1/v0^2."""
    r_row, r_col, r_driver, r_sense = wires
    G = random_conductances(rng, (16, 12))
    v = rng.uniform(0.0, 0.2, (5, 16))
    linear = solve(G, v, r_row, r_col, r_driver=r_driver, r_sense=r_sense)
    gaps = []
    for v0 in (10.0, 100.0, 1000.0):
        got = solve_sinh(G, v, v0, r_row, r_col, r_driver=r_driver, r_sense=r_sense)
        gaps.append(rel_err(got, linear))
        assert gaps[-1] < (0.2 / v0) ** 2 / 6 * SMALL_SIGNAL_BOUND_FACTOR + ENGINE_RTOL
    assert gaps[0] / gaps[1] == pytest.approx(100, rel=SECOND_ORDER_RATIO_RTOL)  # second order in 1/v0


def test_sinh_cells_conduct_more_than_linear_ones(rng):
    """For positive inputs every current grows (sinh(u) > u), and by at most sinh(0.8)/0.8."""
    G = random_conductances(rng, (16, 16))
    v = rng.uniform(0.0, 0.2, (4, 16))
    lin, nl = solve(G, v, 1.0, 1.0), solve_sinh(G, v, V0, 1.0, 1.0)
    assert np.all(nl > lin)
    assert np.all(nl < lin * np.sinh(0.2 / V0) / (0.2 / V0))


def test_odd_symmetry_and_zero_input(rng):
    G = random_conductances(rng, (9, 7))
    v = rng.uniform(-0.2, 0.2, (3, 9))
    assert_allclose(solve_sinh(G, -v, V0), -solve_sinh(G, v, V0), rtol=0, atol=ODD_SYMMETRY_ATOL)
    assert_array_equal(solve_sinh(G, np.zeros(9), V0), np.zeros(7))


def test_more_wire_resistance_never_raises_the_current(rng):
    G = random_conductances(rng, (16, 16))
    v = rng.uniform(0.0, 0.2, (4, 16))
    currents = [solve_sinh(G, v, V0, r, r) for r in (0.0, 1.0, 5.0)]
    assert np.all(currents[1] < currents[0]) and np.all(currents[2] < currents[1])


def test_open_cells_carry_nothing(rng):
    G = random_conductances(rng, (8, 6))
    G[:, 2] = 0.0
    G[3, :] = 0.0
    v = rng.uniform(0.0, 0.2, (3, 8))
    got = solve_sinh(G, v, V0, 1.0, 1.0)
    assert_array_equal(got[:, 2], 0.0)
    assert rel_err(got, solve_sinh_reference(G, v, V0, 1.0, 1.0)) < ENGINE_RTOL


def test_each_input_is_independent_of_its_batch(rng):
    """Blocks share loops, not arithmetic: one input at a time gives the same bits."""
    G = random_conductances(rng, (20, 8))
    v = rng.uniform(0.0, 0.2, (37, 20))
    together = solve_sinh(G, v, V0)
    alone = np.stack([solve_sinh(G, row, V0) for row in v])
    assert_array_equal(together, alone)
    assert_array_equal(solve_sinh_info(G, v, V0, block=5)[0], together)


def test_warm_start_from_the_previous_input(rng):
    """On a fine ramp the previous input's wire drops are a better start: fewer Newton steps."""
    G = random_conductances(rng, (16, 8))
    ramp = np.linspace(0.0, 1.0, 40)[:, None] * rng.uniform(0.0, 0.2, 16)
    ideal, info_ideal = solve_sinh_info(G, ramp, V0, block=1)
    warm, info_warm = solve_sinh_info(G, ramp, V0, block=1, warm_start="previous")
    assert info_warm.converged and rel_err(warm, ideal) < ENGINE_RTOL
    steps = {}
    for name, previous in (("ideal", False), ("previous", True)):
        out, rel = np.empty((40, 8)), np.empty(40)
        newton = np.zeros(40, dtype=np.int64)
        _newton.solve_sinh_inputs(G, ramp, V0, Resistances(1.0, 1.0, 0.0, 0.0), NEWTON_RTOL, 50, 2000,
                                  1, previous, out, rel, newton)
        steps[name] = newton.sum()
    assert steps["previous"] < steps["ideal"]


@pytest.mark.parametrize("preset", ["paper", "large"])
def test_newton_converges_over_the_presets_operating_range(rng, preset):
    """Every array shape of the presets, conductances at and between g_off and g_on, inputs
    from 0 to v_read (pixels and hidden activations), sense impedances up to 1 kOhm."""
    cfg = load_config(preset)
    v_read, dev = cfg.arrays.v_read, cfg.device
    shapes = {(min(n, cfg.arrays.max_rows), min(2 * m, cfg.arrays.max_cols))
              for n, m in [(64, 8), (8, 8), (8, 10), (784, 256), (256, 10)]}
    for shape in sorted(shapes):
        patterns = [np.full(shape, dev.g_on), np.full(shape, dev.g_off),
                    random_conductances(rng, shape, stuck=0.3)]
        v = np.vstack([np.full(shape[0], v_read), rng.uniform(0, v_read, (3, shape[0])),
                       v_read * (rng.random((2, shape[0])) < 0.5)])
        for G in patterns:
            for r_sense in (0.0, 1000.0):
                _, info = solve_sinh_info(G, v, dev.v0, cfg.wires.r_row, cfg.wires.r_col,
                                          r_sense=r_sense)
                assert info.converged, (shape, r_sense)
                assert info.iterations <= PRESET_NEWTON_MAX, (shape, r_sense, info)


def test_an_unreachable_tolerance_stalls_early_and_is_reported(rng):
    """rtol = 0: once at the round-off floor no step decreases the residual strictly; the
    inputs stall after some steps (not 50 steps of 40 halvings) and report failure."""
    G = random_conductances(rng, (16, 16))
    v = rng.uniform(0.0, 0.2, (3, 16))
    out, info = solve_sinh_info(G, v, V0, rtol=0.0, raise_on_failure=False)
    assert not info.converged and info.iterations < 20  # measured 6 (of 50 allowed)
    assert info.max_residual < ROUND_OFF_FLOOR  # it did get to the floor
    assert rel_err(out, solve_sinh_reference(G, v, V0)) < ENGINE_RTOL


def test_inputs_beyond_the_range_of_sinh_are_refused():
    with pytest.raises(ConfigError, match="sinh overflows"):
        solve_sinh(np.full((2, 2), 1e-5), [0.2, 0.0], v0=1e-4)


def test_newton_reports_failure_and_never_returns_silently(rng):
    G = random_conductances(rng, (16, 16))
    v = rng.uniform(0.0, 0.2, (3, 16))
    with pytest.raises(SolverError, match="Newton"):
        solve_sinh_info(G, v, V0, max_newton=1)
    out, info = solve_sinh_info(G, v, V0, max_newton=1, raise_on_failure=False)
    assert not info.converged and info.max_residual > NEWTON_RTOL and info.iterations == 1
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("kwargs, match", [
    ({"v0": 0.0}, "v0"), ({"v0": float("nan")}, "v0"), ({"v0": "x"}, "v0"),
    ({"warm_start": "neighbour"}, "warm_start"), ({"block": 0}, "block"),
])
def test_bad_solver_arguments(rng, kwargs, match):
    args = {"v0": V0} | kwargs
    v0 = args.pop("v0")
    with pytest.raises(ConfigError, match=match):
        solve_sinh_info(np.full((2, 2), 1e-5), [0.1, 0.1], v0, **args)


def test_wire_operator_matches_the_circuit_oracle(rng):
    """``v - A x`` are the cell voltages the MNA oracle gives for the cell currents ``x``
    (``A``: the one wire operator, :func:`yieldmc.circuit._wires.apply_wires`)."""
    from yieldmc.circuit import node_voltages_reference

    G = random_conductances(rng, (6, 4))
    v = rng.uniform(0.0, 0.2, 6)
    row_v, col_v = node_voltages_reference(G, v, 1.5, 2.0, r_driver=3.0, r_sense=4.0)
    x = ((row_v - col_v) * G)[:, :, None]
    w = np.empty_like(x)
    _wires.apply_wires(x, Resistances(1.5, 2.0, r_driver=3.0, r_sense=4.0), w, np.empty((3, 4, 1)))
    assert_allclose(v[:, None] - w[:, :, 0], row_v - col_v, rtol=WIRE_VOLTAGE_RTOL, atol=WIRE_VOLTAGE_ATOL)



def test_fast_asinh_is_accurate_to_round_off():
    """The kernels' asinh (series below 1/8, log(2u) above 1e8, logarithm between) against
    numpy's, relatively."""
    u = np.concatenate([np.geomspace(1e-300, 1e300, 6000), np.linspace(0.12, 0.13, 101), [0.999e8, 1.001e8]])
    u = np.concatenate([u, -u, [0.0]])
    got = np.array([_newton._asinh(x) for x in u])
    assert_allclose(got, np.arcsinh(u), rtol=ASINH_RTOL, atol=0)


def test_cg_kernel_solves_the_scaled_system_and_skips_a_zero_right_hand_side(rng):
    """A Newton step's CG (``_cg_step``: the shared block CG from ``y = 0``) solves
    ``(I + sd A sd) y = r`` to its tolerance for an active right-hand side; one that is zero
    on entry stops there, and an inactive one is left alone (y = 0)."""
    m, n, k = 6, 5, 3
    wires = Resistances(2.0, 3.0, 1.0, 4.0)
    sd = np.repeat(np.sqrt(random_conductances(rng, (m, n)))[:, :, None], k, axis=2)
    dinv = np.ones((m, n, k))  # no preconditioning: CG converges all the same
    rhs = rng.normal(size=(m, n, k))
    rhs[:, :, 1] = 0.0
    r = rhs.copy()  # overwritten by the recursive residual
    tol2 = NEWTON_CG_TOL2 * np.sum(rhs * rhs, axis=(0, 1))
    active = np.array([True, True, False])
    y, p, q = (np.full((m, n, k), np.nan) for _ in range(3))  # contents ignored
    work = np.empty((3, n, k))
    iterations = _newton._cg_step(sd, dinv, wires, tol2, active, 200, y, r, p, q, work)
    assert 0 < iterations < 200
    _wires.apply_wires(y, wires, q, work, sd)
    assert np.linalg.norm(q[:, :, 0] - rhs[:, :, 0]) <= NEWTON_CG_RESIDUAL_RTOL * np.linalg.norm(rhs[:, :, 0])
    assert not y[:, :, 1:].any()


def test_a_step_that_cannot_decrease_the_merit_stalls_the_input():
    """With no CG iteration allowed the Newton step is zero and no step length lowers the
    merit (conductances that are powers of 4 make the trial merit equal it bit for bit): the
    line search halves the step MAX_HALVINGS times, then the input stalls and comes back
    unconverged (rel = 1 at x = 0), x unchanged."""
    m, n, k = 3, 4, 2
    g = np.full((m, n), 4.0**-7)  # S: sqrt(g) exact
    vt = np.array([[0.1, -0.2], [0.05, 0.3], [-0.15, 0.2]])  # row voltages (V), (M, K)
    x = np.zeros((m, n, k))
    bufs = np.zeros((9, m, n, k))
    rel, newton, cg = _newton._newton_block(g, vt, np.ones(k), V0, Resistances(1.0, 1.0, 1.0, 1.0), NEWTON_RTOL,
                                            10, 0, x, bufs)
    assert (newton, cg) == (1, 0)
    assert rel.tolist() == [1.0, 1.0] and not x.any()


def test_kvl_residual_is_the_device_law_in_any_units(rng):
    """``_kvl``'s ``F(x) = v0 asinh(x / (G v0)) + w - v`` (0 at an open cell) against numpy
    without ``scale`` (its default, units of 1); in units of powers of two it is the same
    residual bit for bit, divided by them."""
    m, n, k = 5, 4, 3
    G = random_conductances(rng, (m, n))
    G[2, 1] = 0.0  # an open cell
    x = G[:, :, None] * V0 * rng.uniform(-3.0, 3.0, (m, n, k))  # both branches of asinh
    w = rng.uniform(-0.1, 0.1, (m, n, k))
    vt = rng.uniform(-1.0, 1.0, (m, k))
    f = np.empty((m, n, k))
    _newton._kvl(G, x, w, vt, V0, f)
    expected = kvl_residual(G, x, w, vt, V0)
    assert f[2, 1].tolist() == [0.0] * k
    assert_allclose(f, expected, rtol=0, atol=KVL_ATOL)  # |F| <= 2 V: a few ulps
    scale = np.array([2.0**-20, 1.0, 2.0**7])
    fs = np.empty((m, n, k))
    _newton._kvl(G, x / scale, w / scale, vt / scale, V0, fs, scale)
    assert_array_equal(fs * scale, f)


def test_solve_device_dispatches_on_the_cell_model(rng):
    from yieldmc.circuit import solve_device
    from yieldmc.devices import LinearDevice, SinhDevice

    G = random_conductances(rng, (6, 4))
    v = rng.uniform(0.0, 0.2, (2, 6))
    assert_array_equal(solve_device(LinearDevice(), G, v, 1.0, 2.0, r_sense=3.0),
                       solve(G, v, 1.0, 2.0, r_sense=3.0))
    assert_array_equal(solve_device(SinhDevice(v0=0.3), G, v, 1.0, 2.0, r_sense=3.0),
                       solve_sinh(G, v, 0.3, 1.0, 2.0, r_sense=3.0))


@pytest.mark.parametrize("v0, expected_max", [(0.25, 8), (0.01, 30)])
def test_rtol_zero_stalls_at_the_round_off_floor(rng, v0, expected_max):
    """In Newton's basin two steps that do not halve the residual are round-off: the input
    stops (was: 10,000 steps when allowed, each accepting a noise-level 'decrease')."""
    G = random_conductances(rng, (16, 16))
    G[rng.random(G.shape) < 0.2] = 0.0
    v = rng.uniform(-0.2, 0.2, (8, 16)) * (0.3 if v0 < 0.1 else 1.0)
    out, info = solve_sinh_info(G, v, v0, 20.0, 20.0, rtol=0.0, max_newton=10_000,
                                raise_on_failure=False)
    assert not info.converged and info.iterations <= expected_max
    assert info.max_residual < ROUND_OFF_FLOOR


@pytest.mark.parametrize("ratio", [360.0, 690.0])
def test_huge_cell_voltages_without_wires_do_not_overflow(ratio):
    """sqrt(1 + u^2) and asinh(u) for u = sinh(690) = 1e299: no overflow to inf."""
    v0 = 1e-3
    got, info = solve_sinh_info(np.full((1, 1), 1e-4), [ratio * v0], v0, 0.0, 0.0)
    assert info.converged
    assert got[0] == pytest.approx(1e-4 * v0 * np.sinh(ratio), rel=CLOSED_FORM_RTOL)


def test_the_oracle_settles_with_kilo_ohm_periphery(rng):
    G = random_conductances(rng, (12, 10))
    v = rng.uniform(0.0, 0.2, (3, 12))
    kw = {"r_driver": 1e3, "r_sense": 1e4}
    assert rel_err(solve_sinh(G, v, V0, 1.0, 1.0, **kw),
                   solve_sinh_reference(G, v, V0, 1.0, 1.0, **kw)) < ENGINE_RTOL


@settings(max_examples=30, deadline=None)
@given(shape=shapes, seed=seeds, r=st.one_of(st.just(0.0), st.floats(1e-3, 10.0)),
       r_sense=st.one_of(st.just(0.0), st.floats(1e-3, 200.0)), v0=st.floats(0.05, 2.0),
       scale=st.floats(0.0, 0.4))
# Subnormal inputs once failed (SolverError, relative residual 1): currents were held in
# amperes, below 2.2e-308 A they lose digits or round to 0.
@example(shape=(6, 9), seed=1, r=1.0, r_sense=5.0, v0=0.25, scale=TINY)
@example(shape=(12, 12), seed=2, r=0.0, r_sense=0.0, v0=2.0, scale=1e-320)
@example(shape=(3, 4), seed=3, r=0.0, r_sense=200.0, v0=0.05, scale=SMALLEST_NORMAL)
@example(shape=(8, 5), seed=4, r=10.0, r_sense=0.0, v0=1.0, scale=2.3e-308)
@example(shape=(1, 1), seed=5, r=1e-3, r_sense=1e-3, v0=0.05, scale=TINY)
# The oracle's round-off floor (milliohm wires, 143 ohm sense) once stayed at 2e-11: it never
# settled (about 1 draw in 30,000).
@example(shape=(11, 11), seed=1021, r=1e-3, r_sense=143.37031004356874, v0=1.2124019035229785,
         scale=0.3223923943702407)
def test_property_newton_matches_the_oracle(shape, seed, r, r_sense, v0, scale):
    """Resistances are 0 or >= 1 milliohm: the MNA oracle cannot stamp 1 / 1e-300 ohm."""
    rng = np.random.default_rng(seed)
    G = random_conductances(rng, shape)
    v = rng.uniform(-scale, scale, (2, shape[0]))
    ref = solve_sinh_reference(G, v, v0, r, r, r_sense=r_sense)
    got, info = solve_sinh_info(G, v, v0, r, r, r_sense=r_sense)
    assert info.converged
    assert_matches_oracle(got, ref, shape[0])  # ENGINE_RTOL, and subnormal steps
    if not v.any():
        assert np.array_equal(got, np.zeros_like(got))


@pytest.mark.parametrize("scale", [1e-300, 1e-245, 1e-160, 1e-3])
def test_tiny_inputs_are_solved_not_waved_through(rng, scale):
    """Squares of inputs below 1e-154 V underflow: norms are taken of v / 2^e, so a tiny
    input is still solved to the tolerance (it once passed at its ideal-wire start)."""
    G = random_conductances(rng, (6, 9))
    v = rng.uniform(-1.0, 1.0, (2, 6)) * scale
    got, info = solve_sinh_info(G, v, V0, 1.0, 1.0, r_sense=5.0)
    assert info.converged and info.iterations >= 1
    assert rel_err(got, solve_sinh_reference(G, v, V0, 1.0, 1.0, r_sense=5.0)) < ENGINE_RTOL


@pytest.mark.parametrize("wires", [(1.0, 1.0, 0.0, 5.0), (0.0, 0.0, 0.0, 0.0),
                                   (20.0, 20.0, 10.0, 1000.0)])
def test_subnormal_inputs_in_a_batch_meet_the_tolerance(rng, wires):
    """Inputs of 5e-324 V to 2.3e-308 V, in both blocks of a batch of ordinary inputs. They
    once stopped at relative residual 1 (SolverError): currents held in amperes were
    subnormal or 0. Now each converges, obeys the small-signal scaling law
    ``I(v) = 2^-k I(2^k v)`` bit for bit (currents rounded once), agrees with the oracle and
    the linear engine, and leaves its neighbours' bits alone."""
    r_row, r_col, r_driver, r_sense = wires
    kw = {"r_driver": r_driver, "r_sense": r_sense}
    G = random_conductances(rng, (7, 13))
    v, tiny, k = tiny_batch(rng, 7)
    got, info = solve_sinh_info(G, v, V0, r_row, r_col, **kw)
    assert info.converged and info.max_residual <= NEWTON_RTOL
    v_up = np.ldexp(v[tiny], k[tiny, None])  # exact; largest entries near 2^-600 V
    up = solve_sinh(G, v_up, V0, r_row, r_col, **kw)
    assert_array_equal(got[tiny], np.ldexp(up, -k[tiny, None]))
    assert rel_err(up, solve_sinh_reference(G, v_up, V0, r_row, r_col, **kw)) < ENGINE_RTOL
    assert np.count_nonzero(got[tiny]) > 0  # the test reaches currents above 0
    assert_array_equal(got[[5, 37]], 0.0)
    ordinary = np.setdiff1d(np.arange(len(v)), tiny)
    assert_array_equal(got[ordinary], solve_sinh(G, v[ordinary], V0, r_row, r_col, **kw))
    assert_matches_oracle(got[tiny], solve_sinh_reference(G, v[tiny], V0, r_row, r_col, **kw), 7)
    assert_matches_oracle(got[tiny], solve(G, v[tiny], r_row, r_col, **kw), 7)  # sinh(u) = u here


@pytest.mark.parametrize("value", [TINY, 1e-320, SMALLEST_NORMAL, 2.3e-308])
@pytest.mark.parametrize("shape", [(1, 1), (6, 9)])
def test_a_single_subnormal_input_meets_the_tolerance(rng, value, shape):
    """One input vector, ``value`` on one row and on all rows, e.g. exactly 5e-324 V."""
    G = random_conductances(rng, shape) * 1e3  # 1 mS - 0.1 S: 1e-320 V gives currents > 0
    for v in (np.eye(shape[0])[-1] * value, np.full(shape[0], value)):
        k = UP - np.frexp(value)[1]
        got, info = solve_sinh_info(G, v, V0, 1.0, 1.0, r_sense=5.0)
        assert info.converged and info.max_residual <= NEWTON_RTOL
        up = solve_sinh(G, np.ldexp(v, k), V0, 1.0, 1.0, r_sense=5.0)
        assert_array_equal(got, np.ldexp(up, -k))
        assert_matches_oracle(got, solve_sinh_reference(G, v, V0, 1.0, 1.0, r_sense=5.0), shape[0])


def test_all_zero_inputs_take_no_step(rng):
    G = random_conductances(rng, (6, 9))
    got, info = solve_sinh_info(G, np.zeros((33, 6)), V0, 1.0, 1.0, r_sense=5.0)
    assert_array_equal(got, 0.0)
    assert info.iterations == 0 and info.max_residual == 0.0
    for n_inputs in (1, 2, 33):  # the CG path and v @ T
        assert_array_equal(solve(G, np.zeros((n_inputs, 6)), 1.0, 1.0, r_sense=5.0), 0.0)

"""The lifetime model: keyed Weibull faults, the update route against fresh solves, the batched
forward pass, the on-line incremental ridge against its closed form, and Kaplan-Meier by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_array_equal

from tests.tolerances import FORMULA_RTOL, FORWARD_MANY_RTOL, ONLINE_RTOL, ROUTE_RTOL
from yieldmc import defects
from yieldmc.circuit import solve_reference
from yieldmc.correctors.batched import BatchedRidgeCorrector
from yieldmc.correctors.online import OnlineRidge, weighted_ridge
from yieldmc.engine.lowrank import max_rank
from yieldmc.errors import ConfigError
from yieldmc.lifetime.circuit import CheckpointCircuit, checkpoint_transfers, drift_factor, forward_many
from yieldmc.lifetime.faults import YEAR_S, FaultModel, codes_at, fault_history
from yieldmc.lifetime.policies import PolicySettings
from yieldmc.lifetime.run import LifetimeSettings, check_times, parse_duration
from yieldmc.lifetime.survival import kaplan_meier, time_to_failure

SHAPES = [(8, 8), (4, 6)]
CELL_OFF = np.array([0, 64, 88])


def _t0_codes(n_dies: int, seed: int = 3) -> np.ndarray:
    r = np.random.default_rng(seed)
    codes = np.zeros((n_dies, 88), np.int8)
    codes[:, 10:14] = r.integers(1, 3, size=(n_dies, 4))
    return codes


# --- faults -------------------------------------------------------------------------------------
def test_faults_accumulate_and_keep_the_t0_defects():
    t0 = _t0_codes(5)
    ages, codes = fault_history(FaultModel(scale_s=10.0), 7, np.arange(5), t0, SHAPES, CELL_OFF)
    assert_array_equal(codes_at(ages, codes, 0.0), t0)  # at t0 the die is the run's
    prev = codes_at(ages, codes, 0.0)
    for age in np.geomspace(0.1, 100.0, 12):
        now = codes_at(ages, codes, age)
        assert np.all(now[prev != 0] == prev[prev != 0])  # a stuck cell stays stuck, in its state
        assert np.count_nonzero(now) >= np.count_nonzero(prev)
        prev = now
    assert np.count_nonzero(prev) > np.count_nonzero(t0)


def test_history_is_keyed_by_die_not_by_the_set_asked_for():
    t0 = _t0_codes(9)
    ages, codes = fault_history(FaultModel(cluster_gain=4.0), 11, np.arange(9), t0, SHAPES, CELL_OFF)
    pick = np.array([7, 2])
    ages2, codes2 = fault_history(FaultModel(cluster_gain=4.0), 11, pick, t0[pick], SHAPES, CELL_OFF)
    assert_array_equal(ages[pick], ages2)
    assert_array_equal(codes[pick], codes2)
    other, _ = fault_history(FaultModel(cluster_gain=4.0), 12, pick, t0[pick], SHAPES, CELL_OFF)
    assert not np.array_equal(other, ages2)


def test_share_of_failed_cells_follows_the_weibull_cdf():
    model = FaultModel(shape=1.5, scale_s=100.0, on_fraction=0.3)
    n_dies = 400
    ages, codes = fault_history(model, 5, np.arange(n_dies), np.zeros((n_dies, 88), np.int8), SHAPES, CELL_OFF)
    n = ages.size
    for age in (10.0, 50.0, 200.0):
        p = float(model.cdf(age))
        k = np.count_nonzero(ages <= age)
        assert abs(k - n * p) < 5 * math.sqrt(n * p * (1 - p))  # 5 sigma
    failed = ages <= 200.0
    on = np.count_nonzero(codes[failed] == defects.STUCK_ON)
    m = np.count_nonzero(failed)
    assert abs(on - 0.3 * m) < 5 * math.sqrt(m * 0.3 * 0.7)


def test_clustering_makes_cells_near_a_defect_fail_first():
    n_dies = 300
    t0 = np.zeros((n_dies, 88), np.int8)
    t0[:, 0] = defects.STUCK_OFF  # corner (0, 0) of the 8 x 8 array
    model = FaultModel(shape=1.0, scale_s=1000.0, cluster_gain=20.0, cluster_radius=1.0)
    ages, _ = fault_history(model, 1, np.arange(n_dies), t0, SHAPES, CELL_OFF)
    near = (ages[:, 1] <= 10.0).mean()  # cell (0, 1): hazard 1 + 20 / e
    far = (ages[:, 63] <= 10.0).mean()  # cell (7, 7)
    assert near > 4 * far + 0.02
    assert np.all(ages[:, 64:] > 0)  # the other array has no defect: h = 1 there


def test_a_new_pattern_appears_at_its_onset():
    model = FaultModel(scale_s=1e12, pattern_scale_s=10.0, pattern_kind="row", pattern_severity=0.5)
    n_dies = 20
    ages, codes = fault_history(model, 2, np.arange(n_dies), np.zeros((n_dies, 88), np.int8), SHAPES, CELL_OFF)
    for a in ages:
        onsets, counts = np.unique(a[a < 1e6], return_counts=True)
        assert onsets.size == 1 and counts[0] >= 4  # one event: a whole row of one array at once


@pytest.mark.parametrize("kw, word", [({"shape": -1.0}, "shape"), ({"scale_s": 0.0}, "scale"),
                                      ({"scale_s": math.inf}, "scale"), ({"on_fraction": 1.5}, "--on-fraction"),
                                      ({"cluster_gain": -1.0}, "--cluster-gain"), ({"pattern_kind": "blob"}, "kind")])
def test_bad_fault_settings_are_refused(kw, word):
    with pytest.raises(ConfigError, match=word):
        FaultModel(**kw)


@pytest.mark.parametrize("times", [("1h", "1h"), ("1d", "1h"), ("1h",), ("1h", "-2d"), ("1h", "soon")])
def test_checkpoint_times_must_increase(times):
    with pytest.raises(ConfigError):
        check_times(times)


def test_durations_and_bad_policies():
    assert parse_duration("10y") == 10 * YEAR_S and parse_duration("2h") == 7200.0 and parse_duration(5) == 5.0
    with pytest.raises(ConfigError, match="unknown policy 'sometimes'"):
        PolicySettings(policies=("none", "sometimes"))
    with pytest.raises(ConfigError, match="forgetting"):
        PolicySettings(forgetting=0.0)
    with pytest.raises(ConfigError, match="--drift-nu"):
        LifetimeSettings(times_s=(1.0, 2.0), drift_nu=-0.1)


# --- the update route ---------------------------------------------------------------------------
def test_checkpoint_transfers_match_fresh_solves(paper, rng):
    """Drifted circuit, stuck cells below and above the rank-k crossover: every array's T
    equals a fresh direct solve of the same conductances."""
    factor = float(drift_factor(3e7, 3600.0, 0.05))
    circuit = CheckpointCircuit.build(paper, factor)
    shapes = [s.shape for s in paper.layout.arrays]
    cell_off = np.concatenate([[0], np.cumsum([m * n for m, n in shapes])])
    codes = np.zeros((4, cell_off[-1]), np.int8)
    codes[1, rng.choice(cell_off[1], 12, replace=False)] = 2
    codes[2, cell_off[1] + rng.choice(128, 5, replace=False)] = 1
    big = max_rank(*shapes[0]) + 20  # above the crossover: the CG route
    codes[3, rng.choice(cell_off[1], big, replace=False)] = rng.integers(1, 3, big)
    transfers, routes = checkpoint_transfers(circuit, codes, cell_off)
    assert routes["update"] >= 2 and routes["solve"] == 1
    eye = [np.eye(m) for m, _ in shapes]
    for d in range(4):
        for a, (m, n) in enumerate(shapes):
            G = defects.apply(paper.layout.arrays[a].G * factor, codes[d, cell_off[a]:cell_off[a + 1]].reshape(m, n),
                              paper.config.device.g_on, paper.config.device.g_off)
            w = paper.wires
            ref = solve_reference(G, eye[a], r_row=w.r_row, r_col=w.r_col, r_driver=w.r_driver, r_sense=w.r_sense)
            assert np.abs(transfers[a][d] - ref).max() <= ROUTE_RTOL * np.abs(ref).max()


def test_forward_many_is_the_die_models_forward(paper, rng):
    transfers = [np.stack([T * (1 + 0.1 * rng.standard_normal(T.shape)) for _ in range(3)]) for T in paper.T0]
    x, _ = paper.images("test")
    got = forward_many(paper, transfers, x[:40])
    for d in range(3):
        ref = paper.forward([t[d] for t in transfers], x[:40])
        assert np.abs(got[d] - ref).max() <= FORWARD_MANY_RTOL * np.abs(ref).max()


# --- on-line correction ----------------------------------------------------------------------------
def _voltages(rng, n_dies, n, shift=0.0):
    y = np.arange(n) % 4
    X = rng.standard_normal((n_dies, n, 6)) * 0.1 + shift
    X[:, :, :4] += np.eye(4)[y] * 0.3
    return X, y


def test_online_starts_as_the_batch_ridge_and_follows_the_closed_form(rng):
    X0, y0 = _voltages(rng, 3, 60)
    base = BatchedRidgeCorrector(n_features=32, random_state=0).fit(X0, y0)
    online = OnlineRidge(base, X0, y0, forgetting=0.8)
    Xt, _ = _voltages(rng, 3, 50)
    assert_array_equal(online.predict(Xt), base.predict(Xt))
    blocks = [(online.features(X0), online.targets(y0))]
    for shift in (0.05, 0.1, 0.2):
        Xb, yb = _voltages(rng, 3, 12, shift)
        online.update(Xb, yb)
        blocks.append((online.features(Xb), online.targets(yb)))
    for d in range(3):
        ref = weighted_ridge([(Z[d], Y) for Z, Y in blocks], 0.8, base.alpha)
        assert np.abs(online.W[d] - ref).max() <= ONLINE_RTOL * np.abs(ref).max()


# --- survival -------------------------------------------------------------------------------------
def test_kaplan_meier_by_hand():
    # times 1 (fail), 2 (fail), 2 (censored), 3 (fail), 4 (censored)
    km = kaplan_meier([1, 2, 2, 3, 4], [True, True, False, True, False])
    s1, s2, s3 = 4 / 5, 4 / 5 * 3 / 4, 4 / 5 * 3 / 4 * 1 / 2
    np.testing.assert_allclose(km["survival"], [s1, s2, s3], rtol=FORMULA_RTOL, atol=0)
    assert km["at_risk"].tolist() == [5, 4, 2]
    greenwood = 1 / (5 * 4) + 1 / (4 * 3) + 1 / (2 * 1)
    assert km["low"].iloc[2] < s3 < km["high"].iloc[2]
    z = 1.959963984540054
    half = z * math.sqrt(greenwood) / abs(math.log(s3))
    np.testing.assert_allclose(km["low"].iloc[2], s3 ** math.exp(half), rtol=FORMULA_RTOL, atol=0)


def test_kaplan_meier_upper_bound_and_an_empty_end():
    km = kaplan_meier([1, 2, 2, 3, 4], [True, True, False, True, False])
    s3 = km["survival"].iloc[2]
    z = 1.959963984540054
    half = z * math.sqrt(1 / 20 + 1 / 12 + 1 / 2) / abs(math.log(s3))
    np.testing.assert_allclose(km["high"].iloc[2], s3 ** math.exp(-half), rtol=FORMULA_RTOL, atol=0)
    every = kaplan_meier([1.0, 2.0, 2.0], [True, True, True])  # no die left: survival 0, interval [0, 0]
    assert every["survival"].iloc[-1] == 0 and every["low"].iloc[-1] == 0 and every["high"].iloc[-1] == 0
    assert kaplan_meier([1.0, 2.0], [False, False]).empty


def test_the_drift_check_fires_where_the_outputs_moved(rng):
    from yieldmc.lifetime.policies import PolicyRun

    y = np.arange(40) % 4
    v = rng.standard_normal((6, 40, 4)) * 0.05 + np.eye(4)[y] * 0.3
    run = PolicyRun(PolicySettings(policies=("drift",), budget=40, drift_threshold=0.5), y, y)
    first = run.step(0, v, v)
    assert first["labels_drift"].tolist() == [40] * 6
    moved = v.copy()
    moved[:3] += 0.3  # half the dies' outputs shift by about twice their spread
    out = run.step(1, moved, moved)
    assert out["drift_recalibrated"].tolist() == [True] * 3 + [False] * 3
    assert out["labels_drift"].tolist() == [80] * 3 + [40] * 3
    assert np.all(out["drift_score"][:3] > 0.5) and np.all(out["drift_score"][3:] == 0)


def test_time_to_failure_is_the_first_checkpoint_below():
    df = pd.DataFrame({"die": [0, 0, 0, 1, 1, 1], "checkpoint": [0, 1, 2] * 2, "time_s": [1.0, 2.0, 3.0] * 2,
                       "accuracy_recal": [0.9, 0.7, 0.9, 0.9, 0.85, 0.95]})
    ttf = time_to_failure(df, "recal", 0.8)
    assert ttf["time_s"].tolist() == [2.0, 3.0] and ttf["failed"].tolist() == [True, False]

"""Corrector sweeps (yieldmc.sweeps) and the stratified calibration subsample they use."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from pandas.testing import assert_frame_equal

from yieldmc import stats, sweeps
from yieldmc.correction import correct_per_die, correct_voltages, stratified_order, stratified_subsample
from yieldmc.correctors import MLPCorrector, fit_predict_many
from yieldmc.errors import ConfigError

N_CLASSES = 10


def _labels(n: int, rng: np.random.Generator) -> np.ndarray:
    """Every class, unequal class sizes (as the digits' 156-165 per class)."""
    return rng.permutation(np.concatenate([np.arange(N_CLASSES), rng.integers(0, N_CLASSES, n - N_CLASSES)]))


@pytest.fixture(scope="module")
def synthetic():
    """Six small synthetic 'circuits' of three types: noisy one-hot voltages through a random
    mixing and gain (10 outputs), 150 training and 60 test images."""
    rng = np.random.default_rng(7)
    y_train, y_test = _labels(150, rng), _labels(60, rng)
    circuits = {}
    for kind in ("ring", "row", "column"):
        for i in range(2):
            mix = np.eye(N_CLASSES) + 0.6 * rng.normal(size=(N_CLASSES, N_CLASSES))

            def volts(y, mix=mix):
                return 0.1 * np.tanh(0.4 * (np.eye(N_CLASSES)[y] + 0.25 * rng.normal(size=(len(y), N_CLASSES))) @ mix)

            circuits[kind, 0.05, i] = (volts(y_train), volts(y_test))
    return circuits, (y_train, y_test)


# ---- the stratified subsample -------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_subsample_has_every_class_its_exact_size_and_proportions(seed):
    y = _labels(1617, np.random.default_rng(seed))
    share = np.bincount(y) / len(y)
    for n in (10, 11, 25, 50, 99, 100, 400, 1616):
        idx = stratified_subsample(y, n, seed)
        assert len(idx) == n == len(np.unique(idx)), n
        assert np.all(np.diff(idx) > 0)  # sorted indices
        counts = np.bincount(y[idx], minlength=N_CLASSES)
        assert counts.min() >= 1, n
        # Proportional allocation: within 2 images of n * share (the claim of stratified_order).
        assert np.abs(counts - n * share).max() <= 2, (n, counts)


def test_subsample_is_deterministic_nested_and_keyed():
    y = _labels(500, np.random.default_rng(3))
    order = stratified_order(y, seed=5)
    assert_array_equal(np.sort(order), np.arange(len(y)))
    assert_array_equal(order, stratified_order(y, seed=5))
    small, large = stratified_subsample(y, 30, 5), stratified_subsample(y, 200, 5)
    assert set(small) <= set(large)  # nested budgets
    assert_array_equal(small, np.sort(order[:30]))  # a prefix of the one order
    assert_array_equal(small, stratified_subsample(y, 30, 5))
    assert not np.array_equal(small, stratified_subsample(y, 30, 6))  # another key, other images


def test_subsample_full_budget_is_every_image_in_order():
    y = _labels(100, np.random.default_rng(0))
    for n in (None, 100, 5000):
        assert_array_equal(stratified_subsample(y, n), np.arange(100))


@pytest.mark.parametrize("bad", [9, 0, -3, 50.0, True, "50"])
def test_subsample_refuses_fewer_images_than_classes_or_a_non_integer(bad):
    y = _labels(100, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="n_calibration"):
        stratified_subsample(y, bad)


# ---- size sweep ---------------------------------------------------------------------------

def _closed_form(hidden: tuple[int, ...], n_in: int = 10, n_out: int = 10) -> int:
    """Weights and biases of a dense net n_in -> hidden... -> n_out (no hidden: linear)."""
    sizes = [n_in, *hidden, n_out]
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=False))


def test_size_sweep_parameter_counts_match_the_closed_form(synthetic):
    circuits, labels = synthetic
    one = dict(list(circuits.items())[:1])
    df = sweeps.size_sweep(one, labels)
    assert list(df.columns) == ["defect_type", "corrector", "depth", "hidden", "corrector_params",
                                "accuracy_raw_mean", "accuracy_corrected_mean", "accuracy_corrected_std",
                                "n_circuits"]
    specs = sweeps.default_specs()
    assert list(df.corrector) == [s.name for s in specs]
    assert {1, 2, 3} <= set(df.depth) and df.corrector.iloc[0] == "linear"
    expected = [_closed_form(s.hidden) for s in specs]
    assert df.corrector_params.tolist() == expected
    named = dict(zip(df.corrector, df.corrector_params, strict=True))
    assert named["linear"] == 110 and named["mlp-2"] == 52 and named["mlp-16"] == 346
    assert named["mlp-8x8"] == 10 * 8 + 8 + 8 * 8 + 8 + 8 * 10 + 10
    assert (df.hidden == [s.hidden_str for s in specs]).all() and df.hidden.iloc[0] == ""


def test_size_sweep_groups_by_type_and_scores_each_circuits_own_corrector(synthetic):
    circuits, (y_train, y_test) = synthetic
    df = sweeps.size_sweep(circuits, (y_train, y_test), correctors=["mlp-4", "linear"], seed=3)
    assert df.defect_type.tolist() == ["ring", "ring", "row", "row", "column", "column"]
    assert (df.n_circuits == 2).all()
    row = df[(df.defect_type == "row") & (df.corrector == "mlp-4")].iloc[0]
    acc = [MLPCorrector(hidden=(4,), random_state=3).fit(circuits["row", 0.05, i][0], y_train)
           .score(circuits["row", 0.05, i][1], y_test) for i in range(2)]
    assert row.accuracy_corrected_mean == np.mean(acc)
    assert row.accuracy_corrected_std == np.std(acc, ddof=1)
    raw = [np.mean(circuits["row", 0.05, i][1].argmax(axis=1) == y_test) for i in range(2)]
    assert row.accuracy_raw_mean == np.mean(raw)
    linear = df[df.corrector == "linear"]
    assert (linear.accuracy_corrected_mean > linear.accuracy_raw_mean + 0.2).all()  # the mixing is undone


def test_size_sweep_does_not_depend_on_n_jobs(synthetic):
    circuits, labels = synthetic
    some = dict(list(circuits.items())[1:4])
    kw = {"correctors": ["linear", "mlp-4x4"], "seed": 1}
    assert_frame_equal(sweeps.size_sweep(some, labels, n_jobs=1, **kw),
                       sweeps.size_sweep(some, labels, n_jobs=2, **kw))


@pytest.mark.parametrize("bad", ["mlp", "mlp-0", "mlp-4x", "ridge", "linear-4"])
def test_unknown_corrector_names_are_refused(bad):
    with pytest.raises(ConfigError):
        sweeps.parse_spec(bad)


def test_specs_round_trip_their_names():
    for spec in sweeps.default_specs():
        assert sweeps.parse_spec(spec.name) == spec


# ---- budget sweep -------------------------------------------------------------------------

def test_full_budget_reproduces_the_full_training_set_exactly(synthetic):
    circuits, (y_train, y_test) = synthetic
    circuits = {k: v for k, v in circuits.items() if k[0] in ("ring", "row")}
    n = len(y_train)
    df = sweeps.budget_sweep(circuits, (y_train, y_test), budgets=(n, 10 * n), seed=2)
    v_train = np.stack([v for v, _ in circuits.values()])
    v_test = np.stack([v for _, v in circuits.values()])
    for method in sweeps.BUDGET_METHODS:
        pred = fit_predict_many(v_train, y_train, v_test, method, random_state=2)
        acc = ((pred == y_test).sum(axis=1) / len(y_test))[:2]  # the two ring circuits
        rows = df[(df.method == method) & (df.defect_type == "ring")]
        assert rows.accuracy_corrected_mean.tolist() == [np.mean(acc)] * 2
        assert rows.n_calibration.tolist() == [n, n]


def test_a_budget_trains_on_exactly_its_subsample(synthetic):
    circuits, (y_train, y_test) = synthetic
    circuits = {k: v for k, v in circuits.items() if k[0] == "column"}
    df = sweeps.budget_sweep(circuits, (y_train, y_test), budgets=(40,), methods=("mlp",), seed=4)
    pick = stratified_subsample(y_train, 40, 4)
    acc = [MLPCorrector(hidden=(16,), random_state=4).fit(circuits["column", 0.05, i][0][pick], y_train[pick])
           .score(circuits["column", 0.05, i][1], y_test) for i in range(2)]
    row = df[df.defect_type == "column"].iloc[0]
    assert row.accuracy_corrected_mean == np.mean(acc)
    assert row.corrector_params == 346 and row.budget == 40 and row.n_calibration == 40


def test_budget_sweep_columns_and_n_jobs(synthetic):
    circuits, labels = synthetic
    kw = {"budgets": (20, 80), "seed": 0}
    one = sweeps.budget_sweep(circuits, labels, n_jobs=1, **kw)
    assert list(one.columns) == ["defect_type", "method", "budget", "n_calibration", "corrector_params",
                                 "accuracy_raw_mean", "accuracy_corrected_mean", "accuracy_corrected_std",
                                 "n_circuits"]
    assert len(one) == 3 * 2 * 2
    assert set(one[one.method == "rff-ridge"].corrector_params) == {(256 + 1) * 10}
    assert_frame_equal(one, sweeps.budget_sweep(circuits, labels, n_jobs=2, **kw))


def test_budget_below_the_classes_is_refused(synthetic):
    circuits, labels = synthetic
    with pytest.raises(ConfigError, match="at least the number of classes"):
        sweeps.budget_sweep(circuits, labels, budgets=(100, 5))


# ---- population yield per budget (a few real paper dies) ----------------------------------

@pytest.fixture(scope="module")
def paper_model(network_cache):
    from yieldmc.config import load_config
    from yieldmc.die import DieModel

    return DieModel.build(load_config("paper"), cache_dir=network_cache)


def test_population_budget_is_correct_per_die_at_each_budget(paper_model):
    dies = [0, 3, 5, 8, 11, 12]
    n_train = len(paper_model.images("train")[1])
    df = sweeps.population_budget(paper_model, dies, (30, n_train), thresholds=(0.5, 0.8), seed=1, batch=4)
    assert df[["budget", "threshold"]].values.tolist() == [[30, 0.5], [30, 0.8], [n_train, 0.5], [n_train, 0.8]]
    for budget, n_cal in ((30, 30), (n_train, None)):
        before, after = correct_per_die(paper_model, dies, seed=1, n_calibration=n_cal)
        acc = after / 180
        for t in (0.5, 0.8):
            row = df[(df.budget == budget) & (df.threshold == t)].iloc[0]
            k = int(np.sum(acc >= t))
            assert row.k_after == k and row.n_dies == len(dies) and row.yield_after == k / len(dies)
            assert (row.lo, row.hi) == stats.wilson_interval(k, len(dies))
            assert row.yield_before == np.mean(before / 180 >= t)
            assert row.accuracy_after_mean == acc.mean()


def test_population_budget_reuses_given_voltages(paper_model):
    from yieldmc.correction import die_voltages

    v = die_voltages(paper_model, range(3), ("train", "test"))
    a = sweeps.population_budget(paper_model, 3, (50,), voltages=v)
    b = sweeps.population_budget(paper_model, range(3), (50,))
    assert_frame_equal(a, b)
    with pytest.raises(ConfigError, match="voltages hold 3 dies"):
        sweeps.population_budget(paper_model, 4, (50,), voltages=v)


def test_correct_voltages_budget_none_is_the_plain_fit(synthetic):
    circuits, (y_train, y_test) = synthetic
    v_train = np.stack([v for v, _ in circuits.values()])
    v_test = np.stack([v for _, v in circuits.values()])
    before, after = correct_voltages(v_train, y_train, v_test, y_test, seed=0)
    pred = fit_predict_many(v_train, y_train, v_test, "rff-ridge", random_state=0)
    assert_array_equal(after, (pred == y_test).sum(axis=1))
    assert_array_equal(before, (v_test.argmax(axis=2) == y_test).sum(axis=1))

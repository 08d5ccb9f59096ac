"""Corrector models (yieldmc.correctors: single, batched, many).

The stand-in for defective dies needs no circuit simulator: digits are classified by a fixed
linear map (least squares on the pixels, 95 % test accuracy), and each "die" distorts the ten
outputs -- crosstalk (I + 0.3 N), random gain in [0.3, 3], offsets, tanh saturation and 1-3
outputs stuck at +-1 -- so that the raw argmax is poor (about 20 %) and a corrector must learn
to undo the distortion from the die's own outputs.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.kernel_approximation import RBFSampler
from sklearn.model_selection import train_test_split
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

import yieldmc.correctors.batched as cb
from tests.tolerances import BATCH_ATOL, RFF_ATOL
from yieldmc.correctors import (
    METHODS,
    BatchedRidgeCorrector,
    LinearCorrector,
    MLPCorrector,
    RidgeCorrector,
    fit_predict_many,
    method_parameters,
    n_parameters,
)
from yieldmc.errors import ConfigError

#: A corrector must beat the raw argmax by at least this much (accuracy fraction).
MIN_GAP = 0.20


@pytest.fixture(autouse=True, scope="module")
def _single_threaded_blas():
    # These problems are small: threaded BLAS only adds overhead (5x slower on a busy 2-core
    # machine), and results do not depend on it.
    with threadpool_limits(limits=1):
        yield


@functools.cache
def _digit_outputs(split_seed: int = 0):
    """Outputs of a fixed linear digits classifier: (L_train, y_train, L_test, y_test)."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X / 16.0, y, test_size=180, stratify=y, random_state=split_seed
    )
    A_train = np.column_stack([X_train, np.ones(len(X_train))])
    W, *_ = np.linalg.lstsq(A_train, np.eye(10)[y_train], rcond=None)
    A_test = np.column_stack([X_test, np.ones(len(X_test))])
    return A_train @ W, y_train, A_test @ W, y_test


def distorted_dies(n_dies: int, seed: int):
    """Synthetic defective dies: (V_train (D, 1617, 10), y_train, V_test (D, 180, 10), y_test)."""
    L_train, y_train, L_test, y_test = _digit_outputs()
    V_train = np.empty((n_dies, *L_train.shape))
    V_test = np.empty((n_dies, *L_test.shape))
    for d in range(n_dies):
        rng = np.random.default_rng([seed, d])
        mix = np.eye(10) + 0.3 * rng.standard_normal((10, 10))
        gain = rng.uniform(0.3, 3.0, 10)
        offset = rng.normal(0.0, 0.5, 10)
        stuck = rng.choice(10, size=rng.integers(1, 4), replace=False)
        level = rng.choice([-1.0, 1.0], size=stuck.size)
        for L, V in ((L_train, V_train), (L_test, V_test)):
            V[d] = np.tanh(1.5 * ((L @ mix) * gain + offset))
            V[d][:, stuck] = level
    return V_train, y_train, V_test, y_test


# --------------------------------------------------------------------------------------------
# scikit-learn conformance
# --------------------------------------------------------------------------------------------


@parametrize_with_checks(
    [
        # max_iter=100 keeps the ~60 MLP checks fast; every one passes at this budget.
        MLPCorrector(max_iter=100, random_state=0),
        LinearCorrector(),
        RidgeCorrector(n_features=64, random_state=0),
    ]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# --------------------------------------------------------------------------------------------
# batched ridge == single-die scikit-learn pipeline
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("features, method", [("rff", "rff-ridge"), ("linear", "linear-ridge")])
def test_batched_matches_single_die(features, method):
    V_train, y_train, V_test, _ = distorted_dies(4, seed=5)
    batched = BatchedRidgeCorrector(features=features, n_features=128, random_state=3)
    batched.fit(V_train, y_train)
    scores = batched.decision_function(V_test)
    for d in range(4):
        single = RidgeCorrector(features=features, n_features=128, random_state=3)
        single.fit(V_train[d], y_train)
        assert_allclose(scores[d], single.decision_function(V_test[d]), rtol=0, atol=BATCH_ATOL)
        assert_array_equal(batched.predict(V_test)[d], single.predict(V_test[d]))
        assert_allclose(batched.coef_[d], single.pipeline_[-1].coef_.T, rtol=0, atol=BATCH_ATOL)
    many = fit_predict_many(V_train, y_train, V_test, method, n_features=128, random_state=3)
    assert_array_equal(many, batched.predict(V_test))


def test_rff_features_match_rbf_sampler():
    # rff_features rounds the phase to float32 before the cosine: within ~|phase| * 6e-8 of
    # RBFSampler's float64 features, times sqrt(2 / F).
    X = np.random.default_rng(4).normal(size=(300, 10))
    sampler = RBFSampler(gamma=0.1, n_components=64, random_state=2).fit(X)
    W, b = cb.rff_projection(10, 64, 0.1, random_state=2)
    assert_array_equal(W, sampler.random_weights_)
    assert_array_equal(b, sampler.random_offset_)
    ours = cb.rff_features(X, W, b)
    assert ours.dtype == np.float64
    assert_allclose(ours, sampler.transform(X), rtol=0, atol=RFF_ATOL)
    # Exact functions of each image: the same in any batch shape.
    assert_array_equal(cb.rff_features(X[None, 100:200], W, b)[0], ours[100:200])


def test_batched_matches_single_die_binary_labels_and_stuck_outputs():
    rng = np.random.default_rng(0)
    D, n, f = 3, 120, 5
    X = rng.normal(size=(D, n + 40, f))
    X[:, :, 2] = 0.7  # a stuck output: constant, scale set to 1
    X[1, :, 4] = 0.25  # stuck on one die only
    y = np.where(X[0, :, 0] + X[0, :, 1] ** 2 > 0.8, "pass", "fail")
    X_train, X_test, y_train = X[:, :n], X[:, n:], y[:n]
    batched = BatchedRidgeCorrector(n_features=32, alpha=0.5, gamma=0.3, random_state=1)
    batched.fit(X_train, y_train)
    assert batched.coef_.shape == (D, 32, 1)  # two classes: a single +-1 target column
    assert_array_equal(batched.classes_, ["fail", "pass"])
    assert batched.scale_[0, 0, 2] == 1.0 and batched.scale_[1, 0, 4] == 1.0
    for d in range(D):
        single = RidgeCorrector(n_features=32, alpha=0.5, gamma=0.3, random_state=1)
        single.fit(X_train[d], y_train)
        assert_allclose(
            batched.decision_function(X_test)[d],
            single.decision_function(X_test[d]),
            rtol=0,
            atol=BATCH_ATOL,
        )
        assert_array_equal(batched.predict(X_test)[d], single.predict(X_test[d]))


@pytest.mark.parametrize("n", [20, 150, 255])
def test_dual_ridge_weights_equal_the_primal_solve(n):
    """Fewer images than features (a small calibration budget) takes the dual form: the same
    weights as the plain primal solve on the same centred features."""
    rng = np.random.default_rng(n)
    Z = rng.normal(size=(3, n, 256)) * 0.09
    Z -= Z.mean(axis=1, keepdims=True)
    Yc = rng.choice([-1.0, 1.0], size=(n, 10))
    Yc -= Yc.mean(axis=0)
    got = cb._ridge_weights(Z, Yc, 0.01)
    for d in range(3):
        primal = np.linalg.solve(Z[d].T @ Z[d] + 0.01 * np.eye(256), Z[d].T @ Yc)
        assert_allclose(got[d], primal, rtol=0, atol=BATCH_ATOL * np.abs(primal).max())


@pytest.mark.parametrize("budget", [60, 200])
def test_batched_matches_single_die_on_a_small_budget(budget):
    V_train, y_train, V_test, _ = distorted_dies(3, seed=6)
    V_train, y_train = V_train[:, :budget], y_train[:budget]  # fewer images than the 256 features
    batched = BatchedRidgeCorrector(random_state=2).fit(V_train, y_train)
    scores = batched.decision_function(V_test)
    for d in range(3):
        single = RidgeCorrector(random_state=2).fit(V_train[d], y_train)
        assert_allclose(scores[d], single.decision_function(V_test[d]), rtol=0, atol=BATCH_ATOL)
        assert_array_equal(batched.predict(V_test)[d], single.predict(V_test[d]))


@pytest.mark.parametrize("method", ["rff-ridge", "linear-ridge"])
def test_ridge_predictions_do_not_depend_on_n_jobs(method):
    V_train, y_train, V_test, _ = distorted_dies(5, seed=4)
    one = fit_predict_many(V_train[:, :200], y_train[:200], V_test, method, random_state=np.random.default_rng(3))
    for n_jobs in (2, 3, 8):
        many = fit_predict_many(V_train[:, :200], y_train[:200], V_test, method, n_jobs=n_jobs,
                                random_state=np.random.default_rng(3))
        assert_array_equal(many, one)


def test_batched_results_do_not_depend_on_chunking_or_batch(monkeypatch):
    V_train, y_train, V_test, _ = distorted_dies(5, seed=8)
    whole = BatchedRidgeCorrector(random_state=4).fit(V_train, y_train)
    scores = whole.decision_function(V_test)
    monkeypatch.setattr(cb, "CHUNK_BYTES", 1)  # one die per chunk
    chunked = BatchedRidgeCorrector(random_state=4).fit(V_train, y_train)
    assert_allclose(chunked.decision_function(V_test), scores, rtol=0, atol=BATCH_ATOL)
    part = BatchedRidgeCorrector(random_state=4).fit(V_train[2:4], y_train)
    assert_allclose(part.decision_function(V_test[2:4]), scores[2:4], rtol=0, atol=BATCH_ATOL)
    threaded = BatchedRidgeCorrector(random_state=4, blas_threads=None).fit(V_train, y_train)
    assert_allclose(threaded.decision_function(V_test), scores, rtol=0, atol=BATCH_ATOL)


# --------------------------------------------------------------------------------------------
# correctors recover accuracy
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_correctors_beat_raw_argmax(seed):
    V_train, y_train, V_test, y_test = distorted_dies(4, seed)
    raw = (V_test.argmax(axis=2) == y_test).mean(axis=1)
    assert raw.mean() < 0.5  # the distortion really breaks the die
    for method, floor in (("rff-ridge", 0.85), ("linear-ridge", 0.7)):  # measured 0.92, 0.82
        pred = fit_predict_many(V_train, y_train, V_test, method, random_state=seed)
        acc = (pred == y_test).mean(axis=1)
        assert np.all(acc >= raw + MIN_GAP) and acc.mean() >= floor, (method, acc, raw)
    for model in (MLPCorrector(random_state=seed), LinearCorrector()):
        acc = model.fit(V_train[0], y_train).score(V_test[0], y_test)
        assert acc >= raw[0] + MIN_GAP and acc >= 0.85, (model, acc, raw[0])


# --------------------------------------------------------------------------------------------
# per-die MLP loop, determinism, convergence bookkeeping
# --------------------------------------------------------------------------------------------


def test_fit_predict_many_mlp_equals_loop():
    V_train, y_train, V_test, _ = distorted_dies(2, seed=3)
    V_train, y_train = V_train[:, :300], y_train[:300]  # small: this test is about plumbing
    kwargs = dict(hidden=(8,), max_iter=30, random_state=7)
    pred = fit_predict_many(V_train, y_train, V_test, "mlp", **kwargs)
    assert pred.shape == (2, 180)
    for d in range(2):
        model = MLPCorrector(hidden=(8,), max_iter=30, random_state=7).fit(V_train[d], y_train)
        assert_array_equal(pred[d], model.predict(V_test[d]))
    parallel = fit_predict_many(V_train, y_train, V_test, "mlp", n_jobs=2, **kwargs)
    assert_array_equal(parallel, pred)


def test_random_state_determinism():
    V_train, y_train, V_test, _ = distorted_dies(2, seed=9)
    X, Xt = V_train[0], V_test[0]
    a = RidgeCorrector(random_state=0).fit(X, y_train).decision_function(Xt)
    b = RidgeCorrector(random_state=0).fit(X, y_train).decision_function(Xt)
    c = RidgeCorrector(random_state=1).fit(X, y_train).decision_function(Xt)
    assert_array_equal(a, b)
    assert not np.allclose(a, c)
    p = MLPCorrector(max_iter=50, random_state=0).fit(X[:300], y_train[:300]).predict_proba(Xt)
    q = MLPCorrector(max_iter=50, random_state=0).fit(X[:300], y_train[:300]).predict_proba(Xt)
    assert_array_equal(p, q)
    r1 = fit_predict_many(V_train, y_train, V_test, random_state=12)
    r2 = fit_predict_many(V_train, y_train, V_test, random_state=12)
    assert_array_equal(r1, r2)
    # A numpy Generator is accepted; it seeds the shared projection from its stream.
    g1 = fit_predict_many(V_train, y_train, V_test, random_state=np.random.default_rng(5))
    g2 = fit_predict_many(V_train, y_train, V_test, random_state=np.random.default_rng(5))
    assert_array_equal(g1, g2)


def test_convergence_is_recorded_not_warned():
    V_train, y_train, _, _ = distorted_dies(1, seed=2)
    # pytest turns warnings into errors: a leaked ConvergenceWarning would fail here.
    short = MLPCorrector(max_iter=3, random_state=0).fit(V_train[0], y_train)
    assert short.converged_ is False and short.n_iter_ == 3
    full = MLPCorrector(random_state=0).fit(V_train[0], y_train)
    assert full.converged_ is True and full.n_iter_ < 500
    linear = LinearCorrector().fit(V_train[0], y_train)
    assert linear.converged_ is True and linear.n_iter_ >= 1


# --------------------------------------------------------------------------------------------
# parameter counts
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ten_by_ten():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 10))
    y = np.arange(300) % 10
    return X, y


@pytest.mark.parametrize(
    "model, expected",
    [
        (MLPCorrector(hidden=(16,), max_iter=5), 10 * 16 + 16 + 16 * 10 + 10),  # 346
        (
            MLPCorrector(hidden=(16, 8), max_iter=5, standardize=False),
            10 * 16 + 16 + 16 * 8 + 8 + 8 * 10 + 10,  # 402
        ),
        (LinearCorrector(), 10 * 10 + 10),
        (RidgeCorrector(n_features=64), (64 + 1) * 10),
        (RidgeCorrector(features="linear"), (10 + 1) * 10),
    ],
)
def test_n_parameters_hand_counts(model, expected, ten_by_ten):
    X, y = ten_by_ten
    assert n_parameters(model.fit(X, y)) == expected


def test_n_parameters_binary_and_batched(ten_by_ten):
    X, y = ten_by_ten
    yb = y % 2
    # Two classes: one output unit / one score column.
    assert n_parameters(MLPCorrector(hidden=(16,), max_iter=5).fit(X, yb)) == 10 * 16 + 16 + 16 + 1
    assert n_parameters(LinearCorrector().fit(X, yb)) == 11
    batched = BatchedRidgeCorrector(n_features=64).fit(np.stack([X, X[::-1]]), y)
    assert n_parameters(batched) == (64 + 1) * 10  # per die
    assert n_parameters(BatchedRidgeCorrector(features="linear").fit(X[None], yb)) == 11
    assert n_parameters(MLPCorrector(max_iter=5).fit(X, y).pipeline_) == 346
    with pytest.raises(NotFittedError):
        n_parameters(MLPCorrector())
    with pytest.raises(ConfigError):
        n_parameters(object())


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        MLPCorrector(hidden=()),
        MLPCorrector(hidden=(16, 0)),
        MLPCorrector(alpha=-1.0),
        MLPCorrector(max_iter=0),
        LinearCorrector(C=0.0),
        RidgeCorrector(features="poly"),
        RidgeCorrector(n_features=0),
        RidgeCorrector(alpha=0.0),
        RidgeCorrector(gamma=-1.0),
    ],
)
def test_bad_parameters_fail_in_fit(model, ten_by_ten):
    X, y = ten_by_ten
    with pytest.raises(ConfigError):
        model.fit(X, y)


def test_batched_input_validation():
    X = np.zeros((2, 20, 3))
    X[:, :, 0] = np.arange(20)
    y = np.arange(20) % 2
    with pytest.raises(ConfigError, match="method"):
        fit_predict_many(X, y, X, "svm")
    with pytest.raises(ConfigError, match="dies"):
        fit_predict_many(X, y, X[:1])
    with pytest.raises(ConfigError, match="outputs"):
        fit_predict_many(X, y, X[:, :, :2])
    with pytest.raises(ConfigError, match="shape"):
        fit_predict_many(X[0], y, X[0])
    with pytest.raises(ConfigError, match="label"):
        fit_predict_many(X, y[:-1], X)
    with pytest.raises(ConfigError, match="two classes"):
        fit_predict_many(X, np.zeros(20), X)
    bad = X.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        fit_predict_many(bad, y, X)
    with pytest.raises(ConfigError, match="alpha"):
        BatchedRidgeCorrector(alpha=0).fit(X, y)
    with pytest.raises(ConfigError, match="blas_threads"):
        BatchedRidgeCorrector(blas_threads=0).fit(X, y)
    with pytest.raises(ConfigError, match="random_state"):
        fit_predict_many(X, y, X, random_state="seed")
    with pytest.raises(NotFittedError):
        BatchedRidgeCorrector().predict(X)
    model = BatchedRidgeCorrector().fit(X, y)
    with pytest.raises(ConfigError, match="dies"):
        model.predict(X[:1])
    assert_allclose(model.score(X, y), (model.predict(X) == y).mean(axis=1))


@pytest.mark.parametrize("method", METHODS)
def test_method_parameters_count_what_fit_predict_many_builds(method, ten_by_ten):
    X, y = ten_by_ten
    expected = {"rff-ridge": (256 + 1) * 10, "linear-ridge": (10 + 1) * 10, "mlp": 10 * 16 + 16 + 16 * 10 + 10}
    assert method_parameters(method, X, y) == expected[method]
    assert method_parameters("mlp", X, y, hidden=(4,)) == 10 * 4 + 4 + 4 * 10 + 10
    with pytest.raises(ConfigError, match="method"):
        method_parameters("svm", X, y)


def test_the_model_modules_import_in_one_direction():
    """batched imports no other corrector module, single only batched, many both: no cycle."""
    import ast
    from pathlib import Path

    import yieldmc.correctors as pkg

    imported = {}
    for name in ("batched", "single", "many"):
        tree = ast.parse((Path(pkg.__file__).parent / f"{name}.py").read_text())
        imported[name] = {n.module.rsplit(".", 1)[-1] for n in ast.walk(tree)
                          if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("yieldmc.correctors")}
    assert imported == {"batched": set(), "single": {"batched"}, "many": {"batched", "single"}}

"""Correctors by method name: one corrector per die for a stack of dies, and its size.

The names a user picks (``yieldmc correct --method``) are :data:`METHODS`; this module is the
one place that maps a name to a model: :func:`fit_predict_many` trains one corrector per die
(``"rff-ridge"`` and ``"linear-ridge"``: one batched closed-form solve,
:class:`~yieldmc.correctors.batched.BatchedRidgeCorrector`; ``"mlp"``: a scikit-learn
:class:`~yieldmc.correctors.single.MLPCorrector` per die, in a loop) and
:func:`method_parameters` counts the trainable parameters of one die's corrector of a method.
It imports both model modules; neither imports it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

from yieldmc.correctors.batched import (
    DEFAULT_N_FEATURES,
    DEFAULT_RIDGE_ALPHA,
    BatchedRidgeCorrector,
    as_sklearn_seed,
    check_stack,
)
from yieldmc.correctors.single import DEFAULT_MLP_ALPHA, MLPCorrector, RidgeCorrector, n_parameters
from yieldmc.errors import ConfigError
from yieldmc.rng import SeedLike

ManyMethod = Literal["rff-ridge", "linear-ridge", "mlp"]

#: Per-die correction methods, in the order the command line lists them.
METHODS: tuple[str, ...] = ("rff-ridge", "linear-ridge", "mlp")
#: The ridge methods' feature maps (:class:`BatchedRidgeCorrector` ``features``).
_FEATURES = {"rff-ridge": "rff", "linear-ridge": "linear"}


def _fit_predict_mlp(X_train, y_train, X_test, hidden, alpha, max_iter, seed, n_jobs):
    alpha = DEFAULT_MLP_ALPHA if alpha is None else alpha

    def one(d: int) -> np.ndarray:
        # Small matrices: single-threaded BLAS is faster, and dies run in parallel instead.
        with threadpool_limits(limits=1):
            model = MLPCorrector(hidden=hidden, alpha=alpha, max_iter=max_iter, random_state=seed)
            return model.fit(X_train[d], y_train).predict(X_test[d])

    if n_jobs == 1:
        rows = [one(d) for d in range(X_train.shape[0])]
    else:
        rows = Parallel(n_jobs=n_jobs)(delayed(one)(d) for d in range(X_train.shape[0]))
    return np.stack(rows)


def fit_predict_many(
    X_train,
    y_train,
    X_test,
    method: ManyMethod = "rff-ridge",
    *,
    n_features: int = DEFAULT_N_FEATURES,
    alpha: float | None = None,
    gamma: float | None = None,
    hidden: tuple[int, ...] = (16,),
    max_iter: int = 500,
    random_state: SeedLike = None,
    n_jobs: int = 1,
    blas_threads: int | None = 1,
) -> np.ndarray:
    """Train one corrector per die on its training voltages and predict its test images.

    Parameters
    ----------
    X_train : array_like, shape (D, n_train, f)
        Output voltages (volts) of D dies for the training images.
    y_train : array_like, shape (n_train,)
        Training labels, shared by all dies.
    X_test : array_like, shape (D, n_test, f)
        Output voltages of the same dies for the test images.
    method : {"rff-ridge", "linear-ridge", "mlp"}, default "rff-ridge"
        Batched ridge on random Fourier features, batched ridge on the standardized voltages,
        or a scikit-learn MLP (:class:`~yieldmc.correctors.single.MLPCorrector`) per die in a loop
        (the slow yardstick).
    n_features : int, default 256
        Random features (``"rff-ridge"`` only).
    alpha : float or None
        Ridge penalty (default 0.01) for the ridge methods; L2 penalty of the MLP
        (default 1.0) for ``"mlp"``.
    gamma : float or None
        RBF width for ``"rff-ridge"``; None means ``1 / f``.
    hidden, max_iter
        MLP hidden layer sizes and iteration cap (``"mlp"`` only).
    random_state : None, int or Generator
        Ridge: seed of the projection shared by all dies. MLP: every die's network starts from
        the same initial weights drawn from this seed. Either way a die's result does not
        depend on which other dies are in the batch.
    n_jobs : int, default 1
        joblib workers: processes for ``"mlp"``, each fitting with single-threaded BLAS;
        threads for the ridge methods, each fitting a contiguous block of dies with
        ``blas_threads`` BLAS threads. A die's prediction does not depend on ``n_jobs``.
    blas_threads : int or None, default 1
        BLAS threads of the ridge methods (see :class:`BatchedRidgeCorrector`).

    Returns
    -------
    ndarray, shape (D, n_test)
        Predicted labels per die and test image.
    """
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    X_train = check_stack(X_train, "X_train")
    X_test = check_stack(X_test, "X_test", X_train.shape[2])
    if X_test.shape[0] != X_train.shape[0]:
        raise ConfigError(
            f"X_train holds {X_train.shape[0]} dies but X_test holds {X_test.shape[0]}"
        )
    y_train = np.asarray(y_train)
    seed = as_sklearn_seed(random_state)
    if isinstance(seed, np.random.RandomState):
        # one seed for every die (MLP) or block of dies (ridge), not a stream they share
        seed = int(seed.randint(0, 2**31 - 1))
    if method == "mlp":
        return _fit_predict_mlp(X_train, y_train, X_test, hidden, alpha, max_iter, seed, n_jobs)

    def block(dies: slice) -> np.ndarray:
        model = BatchedRidgeCorrector(
            features=_FEATURES[method],
            n_features=n_features,
            alpha=DEFAULT_RIDGE_ALPHA if alpha is None else alpha,
            gamma=gamma,
            random_state=seed,
            blas_threads=blas_threads,
        )
        return model.fit(X_train[dies], y_train).predict(X_test[dies])

    D = X_train.shape[0]
    if n_jobs == 1 or D == 1:
        return block(slice(0, D))
    # NumPy's matrix products, solves and cosines release the GIL: threads over blocks of
    # dies use the cores without copying the voltages into processes
    edges = np.linspace(0, D, min(n_jobs, D) + 1).astype(int)
    parts = Parallel(n_jobs=n_jobs, prefer="threads")(
        delayed(block)(slice(a, b)) for a, b in zip(edges[:-1], edges[1:], strict=True))
    return np.concatenate(parts)


def method_parameters(method: ManyMethod, X, y, *, hidden: tuple[int, ...] = (16,)) -> int:
    """Trainable parameters of one die's corrector of ``method``, as :func:`fit_predict_many` builds it.

    The count depends on the shapes only (outputs, classes, features, hidden sizes), so the
    model is fitted briefly (an MLP for 5 iterations) on any voltages of the right shape.

    Parameters
    ----------
    method : {"rff-ridge", "linear-ridge", "mlp"}
    X : array_like, shape (n_images, n_outputs)
        Output voltages of one die (any die: the fault-free one will do).
    y : array_like, shape (n_images,)
        Their labels; every class should occur.
    hidden : tuple of int
        MLP hidden layer sizes (``"mlp"`` only).

    Returns
    -------
    int
        :func:`~yieldmc.correctors.single.n_parameters` of the fitted single-die twin.

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(60, 10))
    >>> method_parameters("linear-ridge", X, np.arange(60) % 10)
    110
    """
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if method == "mlp":
        est = MLPCorrector(hidden=hidden, random_state=0, max_iter=5)
    else:
        est = RidgeCorrector(features=_FEATURES[method], random_state=0)
    return n_parameters(est.fit(X, y))

"""Single-die correctors: small classifiers that read one die's output voltages and recover the class.

All three are scikit-learn estimators (``__init__`` only stores arguments; ``fit`` validates
them; learned attributes end in ``_``), each a thin shell around a scikit-learn
:class:`~sklearn.pipeline.Pipeline` kept in ``pipeline_``:

* :class:`MLPCorrector` -- ``StandardScaler -> MLPClassifier`` (one hidden layer by default);
* :class:`LinearCorrector` -- ``StandardScaler -> LogisticRegression`` (multinomial);
* :class:`RidgeCorrector` -- ``StandardScaler -> random Fourier features -> RidgeClassifier``,
  the one-die version of the batched population corrector in :mod:`yieldmc.correctors.batched`.

:func:`n_parameters` counts trainable weights and biases of any of them (the scaler and the
fixed random projection of the ridge model are not trained and not counted).

Default sizes were measured on a synthetic stand-in for defective dies (digits classified by a
linear map, then per-output random gain, crosstalk, offset, tanh saturation and 1-3 stuck
outputs; raw argmax accuracy about 19 %); see ``tests/test_corrector.py``.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from yieldmc.correctors.batched import (
    DEFAULT_N_FEATURES,
    DEFAULT_RIDGE_ALPHA,
    BatchedRidgeCorrector,
    rff_features,
    rff_projection,
)
from yieldmc.errors import ConfigError

#: Default L2 penalty of :class:`MLPCorrector` (scikit-learn scales it by 1 / n_images).
DEFAULT_MLP_ALPHA = 1.0
#: Default hidden layer of :class:`MLPCorrector`.
DEFAULT_HIDDEN = (16,)


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _positive_real(value, name: str, allow_zero: bool = False) -> float:
    ok = isinstance(value, Real) and not isinstance(value, bool) and np.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


class _PipelineCorrector(ClassifierMixin, BaseEstimator):
    """Shared fit/predict around a scikit-learn pipeline built by ``_make_steps``."""

    #: Input dtypes kept as they are (others are converted to the first).
    _dtypes: tuple = (np.float64, np.float32)

    def _make_steps(self, n_inputs: int) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, X, y):
        """Fit on voltages ``X`` (n_images, n_outputs) and labels ``y`` (n_images,).

        ConvergenceWarning of the inner solver is silenced and recorded in ``converged_``;
        other warnings pass through.
        """
        X, y = validate_data(self, X, y, dtype=list(self._dtypes))
        check_classification_targets(y)
        steps = self._make_steps(X.shape[1])
        if self.standardize:
            steps.insert(0, ("scale", StandardScaler()))
        pipeline = Pipeline(steps)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            pipeline.fit(X, y)
        self.converged_ = True
        for w in caught:
            if issubclass(w.category, ConvergenceWarning):
                self.converged_ = False
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        self.pipeline_ = pipeline
        self.classes_ = pipeline.classes_
        n_iter = getattr(pipeline[-1], "n_iter_", None)
        self.n_iter_ = None if n_iter is None else int(np.max(n_iter))
        return self

    def _checked(self, X) -> np.ndarray:
        check_is_fitted(self, "pipeline_")
        return validate_data(self, X, reset=False, dtype=list(self._dtypes))

    def predict(self, X) -> np.ndarray:
        """Predicted class of each image, shape (n_images,)."""
        X = self._checked(X)
        return self.pipeline_.predict(X)


class _ProbaMixin:
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n_images, n_classes), columns in ``classes_`` order."""
        X = self._checked(X)
        return self.pipeline_.predict_proba(X)

    def predict_log_proba(self, X) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`."""
        X = self._checked(X)
        return self.pipeline_.predict_log_proba(X)


class MLPCorrector(_ProbaMixin, _PipelineCorrector):
    """A compact neural network on a die's output voltages (scikit-learn ``MLPClassifier``).

    Defaults measured on the synthetic distorted-digits dies (16 dies, 2 seeds; test
    accuracy, raw argmax about 19 %): tanh, alpha = 1, lbfgs: hidden (8,) 92.4 %, (16,)
    93.5 %, (32,) 93.8 % -- (16,) is within half a point of (32,) at half the size; relu
    reached the same accuracy but rarely converged in 500 iterations, and alpha = 1e-4
    (scikit-learn's default) lost 3-5 points to over-fitting.

    Parameters
    ----------
    hidden : tuple of int, default (16,)
        Hidden layer sizes; the default is a two-layer network (one hidden layer of 16, then
        the output layer): 346 parameters on 10 outputs and 10 classes.
    standardize : bool, default True
        Standardize voltages first (``StandardScaler``; constant, stuck outputs stay 0).
    alpha : float, default 1.0
        L2 penalty (scikit-learn divides it by the number of images).
    activation : {"tanh", "relu", "logistic", "identity"}, default "tanh"
        Saturating, like the die's own neurons.
    solver : {"lbfgs", "adam", "sgd"}, default "lbfgs"
        L-BFGS suits the small, full-batch problem (about 1,600 images).
    max_iter : int, default 500
        Iteration cap; reaching it is recorded in ``converged_``, not warned.
    random_state : None, int or RandomState
        Initial weights.

    Attributes
    ----------
    pipeline_ : sklearn.pipeline.Pipeline
    classes_ : ndarray
    n_features_in_ : int
    n_iter_ : int
    converged_ : bool
        False when the solver stopped at ``max_iter`` (a ConvergenceWarning was silenced).
    """

    def __init__(
        self,
        hidden: tuple[int, ...] = DEFAULT_HIDDEN,
        standardize: bool = True,
        alpha: float = DEFAULT_MLP_ALPHA,
        activation: str = "tanh",
        solver: str = "lbfgs",
        max_iter: int = 500,
        random_state=None,
    ) -> None:
        self.hidden = hidden
        self.standardize = standardize
        self.alpha = alpha
        self.activation = activation
        self.solver = solver
        self.max_iter = max_iter
        self.random_state = random_state

    def _make_steps(self, n_inputs: int) -> list:
        hidden = (self.hidden,) if isinstance(self.hidden, Integral) else tuple(self.hidden)
        if not hidden:
            raise ConfigError("hidden must name at least one hidden layer size, e.g. (16,)")
        hidden = tuple(_positive_int(h, "each hidden layer size") for h in hidden)
        mlp = MLPClassifier(
            hidden_layer_sizes=hidden,
            activation=self.activation,
            solver=self.solver,
            alpha=_positive_real(self.alpha, "alpha", allow_zero=True),
            max_iter=_positive_int(self.max_iter, "max_iter"),
            random_state=self.random_state,
        )
        return [("mlp", mlp)]


class LinearCorrector(_ProbaMixin, _PipelineCorrector):
    """Multinomial logistic regression on a die's output voltages: the baseline corrector.

    Parameters
    ----------
    C : float, default 1.0
        Inverse L2 penalty strength.
    standardize : bool, default True
    max_iter : int, default 1000
        L-BFGS iteration cap; reaching it is recorded in ``converged_``.
    random_state : None, int or RandomState
        Stored and passed on (L-BFGS itself is deterministic).

    Attributes
    ----------
    pipeline_, classes_, n_features_in_, n_iter_, converged_
        As in :class:`MLPCorrector`.
    """

    def __init__(
        self,
        C: float = 1.0,
        standardize: bool = True,
        max_iter: int = 1000,
        random_state=None,
    ) -> None:
        self.C = C
        self.standardize = standardize
        self.max_iter = max_iter
        self.random_state = random_state

    def _make_steps(self, n_inputs: int) -> list:
        model = LogisticRegression(
            C=_positive_real(self.C, "C"),
            max_iter=_positive_int(self.max_iter, "max_iter"),
            random_state=self.random_state,
        )
        return [("logistic", model)]


class RidgeCorrector(_PipelineCorrector):
    """Ridge regression on random Fourier features of one die's voltages (closed form).

    The single-die twin of :class:`~yieldmc.correctors.batched.BatchedRidgeCorrector`: same
    parameters, same projection for the same ``random_state``, same predictions.
    It has ``decision_function`` but no ``predict_proba`` (ridge scores are not
    probabilities).

    Parameters
    ----------
    features : {"rff", "linear"}, default "rff"
        Random Fourier features (projection drawn by ``RBFSampler``, evaluated by
        :func:`~yieldmc.correctors.batched.rff_features`) or the standardized voltages.
    n_features : int, default 256
        Random features ``F``; the trainable size is ``(F + 1) * n_classes``.
    alpha : float, default 0.01
        Ridge penalty.
    gamma : float or None, default None
        RBF kernel width on standardized voltages; None means ``1 / n_features_in_``.
    standardize : bool, default True
    random_state : None, int or RandomState
        Seed of the random projection.

    Attributes
    ----------
    pipeline_, classes_, n_features_in_
        As in :class:`MLPCorrector`; ``converged_`` is always True, ``n_iter_`` None.
    """

    def __init__(
        self,
        features: str = "rff",
        n_features: int = DEFAULT_N_FEATURES,
        alpha: float = DEFAULT_RIDGE_ALPHA,
        gamma: float | None = None,
        standardize: bool = True,
        random_state=None,
    ) -> None:
        self.features = features
        self.n_features = n_features
        self.alpha = alpha
        self.gamma = gamma
        self.standardize = standardize
        self.random_state = random_state

    _dtypes = (np.float64,)  # the closed-form solve needs float64, as the batched twin uses

    def _make_steps(self, n_inputs: int) -> list:
        if self.features not in ("rff", "linear"):
            raise ConfigError(f"features must be 'rff' or 'linear', got {self.features!r}")
        steps = []
        if self.features == "rff":
            gamma = 1.0 / n_inputs if self.gamma is None else _positive_real(self.gamma, "gamma")
            weights, offset = rff_projection(
                n_inputs, _positive_int(self.n_features, "n_features"), gamma, self.random_state
            )
            kw_args = {"weights": weights, "offset": offset}
            steps.append(("rff", FunctionTransformer(rff_features, kw_args=kw_args)))
        steps.append(("ridge", RidgeClassifier(alpha=_positive_real(self.alpha, "alpha"))))
        return steps

    def decision_function(self, X) -> np.ndarray:
        """Ridge scores, shape (n_images, n_classes), or (n_images,) for two classes."""
        X = self._checked(X)
        return self.pipeline_.decision_function(X)


def n_parameters(estimator) -> int:
    """Trainable parameters (weights + biases) of a fitted corrector.

    Counts the MLP's or linear model's weights and biases; a standardizing scaler and the
    fixed random projection of the ridge models are not trained and not counted. For a
    :class:`~yieldmc.correctors.batched.BatchedRidgeCorrector` the count is per die.

    Parameters
    ----------
    estimator
        A fitted :class:`MLPCorrector`, :class:`LinearCorrector`, :class:`RidgeCorrector`,
        :class:`BatchedRidgeCorrector`, or a fitted scikit-learn linear model, MLP or
        pipeline ending in one.

    Returns
    -------
    int

    Examples
    --------
    One hidden layer of 16 on 10 outputs, 10 classes: ``10*16 + 16 + 16*10 + 10 = 346``.
    """
    if isinstance(estimator, BatchedRidgeCorrector):
        check_is_fitted(estimator, "coef_")
        return int(estimator.coef_[0].size + estimator.intercept_[0].size)
    if isinstance(estimator, _PipelineCorrector):
        check_is_fitted(estimator, "pipeline_")
        estimator = estimator.pipeline_
    if isinstance(estimator, Pipeline):
        estimator = estimator[-1]
    if hasattr(estimator, "coefs_"):
        arrays = [*estimator.coefs_, *estimator.intercepts_]
        return int(sum(np.size(a) for a in arrays))
    if hasattr(estimator, "coef_"):
        return int(np.size(estimator.coef_) + np.size(getattr(estimator, "intercept_", 0)))
    raise ConfigError(
        f"cannot count the parameters of {type(estimator).__name__}: "
        "pass a fitted corrector, linear model or MLP"
    )

"""Per-die correctors for a whole population at once: batched closed-form ridge regression.

The population use case (DESIGN.md section 10): thousands of dies, each with its own small
corrector trained on *that die's* output voltages for the training images and evaluated on
its voltages for the test images. All dies share the image labels. An MLP per die costs
seconds; ridge regression on fixed random features has a closed form, so every die's model
comes from one batched linear solve:

1. standardize each die's voltages with its own training mean and standard deviation
   (exactly as :class:`sklearn.preprocessing.StandardScaler`, near-constant outputs -- stuck
   columns -- get scale 1);
2. ``"rff"``: random Fourier features ``z = sqrt(2/F) cos(x W + b)`` with one projection
   ``(W, b)`` shared by all dies, drawn by :class:`sklearn.kernel_approximation.RBFSampler`
   from ``random_state``, cosine in float32 (:func:`rff_features`); ``"linear"``: the
   standardized voltages themselves;
3. ridge regression with an unpenalised intercept onto the targets ``{-1, +1}``
   (one column per class, a single column for two classes), as
   :class:`sklearn.linear_model.RidgeClassifier` does: ``(Zc' Zc + alpha I) W = Zc' Yc``
   on centred features and targets, solved for all dies with :func:`numpy.linalg.solve` on a
   stack of ``(F, F)`` systems; with fewer training images ``n`` than features (a small
   calibration budget) in the dual form ``W = Zc' (Zc Zc' + alpha I)^-1 Yc``, the same
   weights from a stack of ``(n, n)`` systems (the push-through identity; about 1.7x faster
   at ``n = 200``, ``F = 256``).

:class:`yieldmc.correctors.RidgeCorrector` (:mod:`~yieldmc.correctors.single`) is the same
model for one die, built from the scikit-learn pieces named above (with :func:`rff_features` as
the feature map); the tests check that both give the same predictions, and that
:func:`rff_features` matches ``RBFSampler``. This module imports no other corrector module:
:mod:`~yieldmc.correctors.single` builds on its feature maps, and
:mod:`~yieldmc.correctors.many` dispatches a method name to either.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.kernel_approximation import RBFSampler
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from yieldmc.errors import ConfigError
from yieldmc.rng import SeedLike

FeatureKind = Literal["rff", "linear"]

#: Default number of random Fourier features. Measured on 200 synthetic distorted-digits dies
#: (1617 training, 180 test images, 10 outputs; tests/test_corrector.py), one BLAS thread, on a
#: 2-core machine busy with other work (load ~6): F = 128: 91.0 % mean accuracy, 102 dies/s;
#: 256: 92.3 %, 45 dies/s; 512: 92.6 %, 14 dies/s. (Raw argmax 18.9 %; a scikit-learn MLP
#: per die, hidden (16,): 92.6 % at 0.7 dies/s.)
DEFAULT_N_FEATURES = 256
#: Default ridge penalty (targets are +-1, random features of size ~ sqrt(1/F)); accuracy on
#: the synthetic task is flat from 0.001 to 0.01 and falls by 2 points at 1.
DEFAULT_RIDGE_ALPHA = 0.01
#: Feature tensors of one chunk of dies are kept below this size (bytes): chunks that stay in
#: the CPU's cache. Measured on this 2-core machine, one thread (2026-12-05), rff-ridge dies/s
#: at 64 MiB / 4 MiB / 1 MiB: 1,617 images 77 / 113 / 109, 200 images 374 / 529 / 532, 50
#: images 1,132 / 2,135 / 2,248.
CHUNK_BYTES = 2 * 2**20

_FEATURE_KINDS = ("rff", "linear")


def standardize_stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale of each feature over the samples axis (-2), as StandardScaler sets them.

    Parameters
    ----------
    X : ndarray, shape (..., n_samples, n_features)

    Returns
    -------
    mean, scale : ndarray, shape (..., 1, n_features)
        ``scale`` is the population standard deviation, replaced by 1 where the feature is
        constant up to the rounding error of the variance (Chan, Golub & LeVeque bound, the
        rule of :class:`sklearn.preprocessing.StandardScaler`).
    """
    n = X.shape[-2]
    mean = X.mean(axis=-2, keepdims=True)
    var = X.var(axis=-2, keepdims=True)
    eps = np.finfo(np.float64).eps
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    scale = np.where(constant, 1.0, np.sqrt(var))
    return mean, scale


def as_sklearn_seed(random_state: SeedLike | np.random.RandomState):
    """An argument scikit-learn accepts as ``random_state``.

    ``None``, ints and ``RandomState`` pass through (so ``random_state=0`` means the same
    draws here and in a scikit-learn estimator); a ``Generator`` or ``SeedSequence`` yields
    one 32-bit integer seed.
    """
    if random_state is None or isinstance(random_state, (int, np.integer, np.random.RandomState)):
        return random_state
    if isinstance(random_state, np.random.SeedSequence):
        return int(random_state.generate_state(1)[0])
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**32 - 1))
    raise ConfigError(
        f"random_state must be None, an int or a numpy Generator, got {random_state!r}"
    )


def rff_projection(
    n_inputs: int, n_features: int, gamma: float, random_state
) -> tuple[np.ndarray, np.ndarray]:
    """The random Fourier projection ``(W, b)`` that ``RBFSampler`` draws for these settings.

    Returns ``W`` of shape (n_inputs, n_features), ``W ~ N(0, 2 gamma)``, and ``b`` of shape
    (n_features,), ``b ~ U(0, 2 pi)``, float64.
    """
    sampler = RBFSampler(gamma=gamma, n_components=n_features, random_state=random_state)
    sampler.fit(np.zeros((1, n_inputs)))
    return sampler.random_weights_, sampler.random_offset_


def rff_features(X_std: np.ndarray, weights: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Random Fourier features ``sqrt(2/F) cos(x W + b)`` of standardized voltages.

    Parameters
    ----------
    X_std : ndarray, shape (..., n, f)
        Standardized voltages.
    weights, offset : ndarray, shapes (f, F) and (F,)
        The projection from :func:`rff_projection`.

    Returns
    -------
    ndarray, shape (..., n, F), float64

    Notes
    -----
    The phase ``x W + b`` is computed in float64 and rounded to float32 before the cosine:
    numpy's float32 cosine is SIMD-vectorised, about 10x faster than its float64 one on
    AVX2, and the cosine was most of the cost of a die (the whole batched fit ran 2x faster).
    The features are then exact functions of the rounded phase -- the same for any batch
    or chunk -- and within ~2e-7 of ``RBFSampler.transform`` in float64, far below the effect
    of the ridge penalty (accuracy unchanged to 4 decimals on the synthetic dies).
    """
    phase = X_std @ weights
    phase += offset
    features = np.cos(phase.astype(np.float32)).astype(np.float64)
    features *= (2.0 / weights.shape[1]) ** 0.5
    return features


def _check_features_args(features: str, n_features: int, alpha: float, gamma, threads) -> None:
    if features not in _FEATURE_KINDS:
        raise ConfigError(f"features must be 'rff' or 'linear', got {features!r}")
    if not (isinstance(n_features, (int, np.integer)) and n_features >= 1):
        raise ConfigError(f"n_features must be a positive integer, got {n_features!r}")
    if not (np.isscalar(alpha) and float(alpha) > 0):
        raise ConfigError(f"ridge alpha must be > 0, got {alpha!r}")
    if gamma is not None and not (np.isscalar(gamma) and float(gamma) > 0):
        raise ConfigError(f"gamma must be None or > 0, got {gamma!r}")
    if threads is not None and not (isinstance(threads, (int, np.integer)) and threads >= 1):
        raise ConfigError(f"blas_threads must be None or a positive integer, got {threads!r}")


def check_stack(X, name: str, n_inputs: int | None = None) -> np.ndarray:
    """``X`` as a float64 stack of voltages (dies, images, outputs), checked.

    Raises :class:`~yieldmc.errors.ConfigError` (naming ``name``) for another number of
    axes, an empty axis, NaN or infinite values, or ``n_inputs`` outputs expected and others
    given.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 3:
        raise ConfigError(f"{name} must have shape (dies, images, outputs), got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0 or X.shape[2] == 0:
        raise ConfigError(f"{name} is empty (shape {X.shape})")
    if not np.all(np.isfinite(X)):
        raise ConfigError(f"{name} contains NaN or infinite voltages")
    if n_inputs is not None and X.shape[2] != n_inputs:
        raise ConfigError(
            f"{name} has {X.shape[2]} outputs per image; the model was fitted on {n_inputs}"
        )
    return X


def _ridge_weights(Z: np.ndarray, Yc: np.ndarray, alpha: float, ridge: np.ndarray | None = None) -> np.ndarray:
    """Ridge weights ``(Z' Z + alpha I)^-1 Z' Yc`` of a stack of centred features.

    ``Z`` (d, n, F), ``Yc`` (n, T); returns (d, F, T). Primal ``(F, F)`` systems when
    ``n >= F``, else the dual ``Z' (Z Z' + alpha I)^-1 Yc`` with ``(n, n)`` systems: equal
    in exact arithmetic, cheaper for a small calibration budget.
    """
    d, n, width = Z.shape
    Zt = Z.transpose(0, 2, 1)
    if n >= width:
        return np.linalg.solve(Zt @ Z + (alpha * np.eye(width) if ridge is None else ridge), Zt @ Yc)
    K = Z @ Zt
    K += alpha * np.eye(n)
    return Zt @ np.linalg.solve(K, np.broadcast_to(Yc, (d, *Yc.shape)))


class BatchedRidgeCorrector(BaseEstimator):
    """One ridge corrector per die, fitted for a stack of dies at once.

    Not a scikit-learn classifier (its inputs are 3-D); use
    `yieldmc.correctors.RidgeCorrector` for one die. Same parameters and math.

    Parameters
    ----------
    features : {"rff", "linear"}, default "rff"
        Random Fourier features of the standardized voltages, or the voltages themselves.
    n_features : int, default 256
        Number of random features ``F`` (ignored for ``"linear"``).
    alpha : float, default 0.01
        Ridge penalty (intercept not penalised).
    gamma : float or None, default None
        RBF kernel width on standardized voltages; None means ``1 / n_outputs``.
    standardize : bool, default True
        Standardize each die's voltages with its own training statistics.
    random_state : None, int, RandomState or Generator
        Seed of the random projection shared by all dies.
    blas_threads : int or None, default 1
        BLAS threads while fitting and predicting (set with threadpoolctl). Each die's
        matrices are small: on a busy 2-core machine threaded BLAS made the fit 9x slower
        (4.8 vs 45 dies/s), so the default is 1; run dies in parallel processes instead.
        None leaves the current setting.

    Attributes
    ----------
    classes_ : ndarray, shape (K,)
    n_features_in_ : int
        Outputs per image (circuit outputs ``f``).
    n_dies_ : int
    mean_, scale_ : ndarray, shape (D, 1, f)
        Per-die standardization.
    random_weights_, random_offset_ : ndarray or None
        The shared projection, shapes (f, F) and (F,); None for ``"linear"``.
    coef_ : ndarray, shape (D, F, T)
        Ridge weights per die; ``T = K`` targets, or 1 when there are two classes.
    intercept_ : ndarray, shape (D, T)
    """

    def __init__(
        self,
        features: FeatureKind = "rff",
        n_features: int = DEFAULT_N_FEATURES,
        alpha: float = DEFAULT_RIDGE_ALPHA,
        gamma: float | None = None,
        standardize: bool = True,
        random_state=None,
        blas_threads: int | None = 1,
    ) -> None:
        self.features = features
        self.n_features = n_features
        self.alpha = alpha
        self.gamma = gamma
        self.standardize = standardize
        self.random_state = random_state
        self.blas_threads = blas_threads

    def _chunk(self, n_samples: int) -> int:
        width = self.n_features if self.features == "rff" else self.n_features_in_
        return max(1, int(CHUNK_BYTES // (8 * n_samples * max(width, 1))))

    def _transform(self, X: np.ndarray, dies: slice) -> np.ndarray:
        """Features of images ``X`` (d, m, f) for the dies ``dies``: (d, m, F)."""
        Z = (X - self.mean_[dies]) / self.scale_[dies]
        if self.features == "rff":
            Z = rff_features(Z, self.random_weights_, self.random_offset_)
        return Z

    def fit(self, X, y) -> BatchedRidgeCorrector:
        """Fit one corrector per die.

        Parameters
        ----------
        X : array_like, shape (D, n_train, f)
            Output voltages of D dies for the training images (volts).
        y : array_like, shape (n_train,)
            Labels of the training images, shared by all dies.
        """
        _check_features_args(
            self.features, self.n_features, self.alpha, self.gamma, self.blas_threads
        )
        X = check_stack(X, "X")
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != X.shape[1]:
            raise ConfigError(
                f"y must have shape ({X.shape[1]},) (one label per image), got {y.shape}"
            )
        check_classification_targets(y)
        with threadpool_limits(limits=self.blas_threads):
            return self._fit(X, y)

    def _fit(self, X: np.ndarray, y: np.ndarray) -> BatchedRidgeCorrector:
        binarizer = LabelBinarizer(neg_label=-1, pos_label=1)
        Y = binarizer.fit_transform(y).astype(np.float64)
        if binarizer.classes_.size < 2:
            raise ConfigError("a corrector needs at least two classes in y")
        self.classes_ = binarizer.classes_
        D, n, f = X.shape
        self.n_features_in_ = f
        self.n_dies_ = D
        if self.standardize:
            self.mean_, self.scale_ = standardize_stats(X)
        else:
            self.mean_, self.scale_ = np.zeros((D, 1, f)), np.ones((D, 1, f))
        if self.features == "rff":
            gamma = 1.0 / f if self.gamma is None else float(self.gamma)
            self.random_weights_, self.random_offset_ = rff_projection(
                f, self.n_features, gamma, as_sklearn_seed(self.random_state)
            )
            width = self.n_features
        else:
            self.random_weights_ = self.random_offset_ = None
            width = f
        Yc = Y - Y.mean(axis=0)
        self.coef_ = np.empty((D, width, Y.shape[1]))
        self.intercept_ = np.empty((D, Y.shape[1]))
        ridge = self.alpha * np.eye(width)
        step = self._chunk(n)
        for start in range(0, D, step):
            dies = slice(start, min(start + step, D))
            Z = self._transform(X[dies], dies)
            z_mean = Z.mean(axis=1, keepdims=True)
            Z -= z_mean
            coef = _ridge_weights(Z, Yc, self.alpha, ridge)
            self.coef_[dies] = coef
            self.intercept_[dies] = Y.mean(axis=0) - (z_mean @ coef)[:, 0, :]
        return self

    def decision_function(self, X) -> np.ndarray:
        """Ridge scores, shape (D, m, T) (T = 1 for two classes, squeezed to (D, m))."""
        check_is_fitted(self, "coef_")
        X = check_stack(X, "X", self.n_features_in_)
        if X.shape[0] != self.n_dies_:
            raise ConfigError(f"X holds {X.shape[0]} dies; the model was fitted on {self.n_dies_}")
        D, m, _ = X.shape
        scores = np.empty((D, m, self.coef_.shape[2]))
        step = self._chunk(m)
        with threadpool_limits(limits=self.blas_threads):
            for start in range(0, D, step):
                dies = slice(start, min(start + step, D))
                Z = self._transform(X[dies], dies)
                scores[dies] = Z @ self.coef_[dies] + self.intercept_[dies, None, :]
        return scores[:, :, 0] if scores.shape[2] == 1 else scores

    def predict(self, X) -> np.ndarray:
        """Predicted labels, shape (D, m), for images ``X`` of shape (D, m, f)."""
        scores = self.decision_function(X)
        index = (scores > 0).astype(int) if scores.ndim == 2 else scores.argmax(axis=2)
        return self.classes_[index]

    def score(self, X, y) -> np.ndarray:
        """Accuracy of each die's corrector on images ``X`` (D, m, f) with labels ``y`` (m,)."""
        return (self.predict(X) == np.asarray(y)[None, :]).mean(axis=1)

"""On-line update of many dies' ridge correctors: incremental ridge with forgetting.

The on-chip version of the random-feature ridge corrector
(:class:`~yieldmc.correctors.batched.BatchedRidgeCorrector`): the feature map (each die's
standardization and the shared random projection) is fixed at the first calibration, and the
linear read-out ``W`` (features plus an intercept column) follows a stream of labelled images.
With augmented features ``a = [z, 1]`` and targets ``y`` in ``{-1, +1}`` (one column per
class), after blocks ``0 .. c`` the weights minimise, exactly::

    sum_j lam^(c - j) ||Y_j - A_j W||^2 + alpha ||W[:F]||^2          (intercept unpenalised)

Block 0 (the calibration) gives the batch ridge's own weights on the same images. The state
is the weighted Gram matrix and right-hand side, ``G <- lam G + A'A + (1 - lam) alpha D`` and
``b <- lam b + A'Y`` (``D`` = identity with a 0 for the intercept, so the penalty stays
``alpha``), and each block solves ``G W = b``: O(s F^2 + F^3) per die, whatever the number
of images seen before. (Recursive least squares in its Woodbury form would avoid the solve,
but it lets the penalty decay as ``lam^c alpha``: with ``lam = 0.7`` it is 3 % of ``alpha``
after 10 blocks and the 257 weights over-fit the few effective images, measured 4 to 27
points of accuracy lost on synthetic dies.) :func:`weighted_ridge` is the same solution
written directly (the tests' reference).
"""

from __future__ import annotations

import numpy as np
from sklearn.preprocessing import LabelBinarizer

from yieldmc.correctors.batched import BatchedRidgeCorrector
from yieldmc.errors import ConfigError


def _augment(Z: np.ndarray) -> np.ndarray:
    return np.concatenate([Z, np.ones((*Z.shape[:-1], 1))], axis=-1)


def _penalty(width: int, alpha: float) -> np.ndarray:
    d = np.full(width + 1, float(alpha))
    d[-1] = 0.0
    return np.diag(d)


def weighted_ridge(blocks: list[tuple[np.ndarray, np.ndarray]], lam: float, alpha: float) -> np.ndarray:
    """Reference solution of the objective above for one die: ``W`` (F + 1, T).

    ``blocks`` are ``(Z_j, Y_j)`` pairs (features (s_j, F), targets (s_j, T)), oldest first."""
    c = len(blocks) - 1
    width = blocks[0][0].shape[1]
    G = _penalty(width, alpha)
    b = np.zeros((width + 1, blocks[0][1].shape[1]))
    for j, (Z, Y) in enumerate(blocks):
        A = _augment(np.asarray(Z, dtype=np.float64))
        G += lam ** (c - j) * A.T @ A
        b += lam ** (c - j) * A.T @ Y
    return np.linalg.solve(G, b)


class OnlineRidge:
    """Incremental ridge with forgetting on the features of a fitted batch ridge, for a stack of dies.

    Parameters
    ----------
    base : BatchedRidgeCorrector
        Fitted on the calibration images; its feature map (standardization, projection) is
        kept, its weights are recomputed in this form (the same to rounding).
    X : numpy.ndarray, shape (D, n, f)
        The calibration voltages ``base`` was fitted on.
    y : numpy.ndarray, shape (n,)
        Their labels.
    forgetting : float
        ``lam`` in (0, 1]: weight of what was learnt before each new block (1: never forgets).

    Attributes
    ----------
    G : numpy.ndarray, shape (D, F + 1, F + 1)
        Weighted Gram matrices plus the penalty.
    b : numpy.ndarray, shape (D, F + 1, T)
    W : numpy.ndarray, shape (D, F + 1, T)
        Weights, the intercept last.
    """

    def __init__(self, base: BatchedRidgeCorrector, X: np.ndarray, y: np.ndarray, forgetting: float) -> None:
        if not 0 < forgetting <= 1:
            raise ConfigError(f"forgetting must lie in (0, 1], got {forgetting!r}")
        self.base = base
        self.forgetting = float(forgetting)
        self._binarizer = LabelBinarizer(neg_label=-1, pos_label=1).fit(base.classes_)
        A = _augment(self.features(X))
        self._penalty = _penalty(A.shape[2] - 1, base.alpha)
        At = A.transpose(0, 2, 1)
        self.G = At @ A + self._penalty
        self.b = At @ self.targets(y)
        self.W = np.linalg.solve(self.G, self.b)

    def features(self, X: np.ndarray) -> np.ndarray:
        """The fixed feature map of voltages ``X`` (D, m, f): (D, m, F)."""
        return np.asarray(self.base._transform(np.asarray(X, dtype=np.float64), slice(None)), dtype=np.float64)

    def targets(self, y: np.ndarray) -> np.ndarray:
        """Targets in {-1, +1} of labels ``y`` (one column per class; one for two classes)."""
        return self._binarizer.transform(np.asarray(y)).astype(np.float64)

    def update(self, X: np.ndarray, y: np.ndarray) -> OnlineRidge:
        """Forget by ``forgetting``, then learn the block of labelled voltages ``X`` (D, s, f)."""
        A = _augment(self.features(X))
        At = A.transpose(0, 2, 1)
        lam = self.forgetting
        self.G *= lam
        self.G += At @ A
        self.G += (1.0 - lam) * self._penalty
        self.b *= lam
        self.b += At @ self.targets(y)
        self.W = np.linalg.solve(self.G, self.b)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted labels (D, m) of voltages ``X`` (D, m, f)."""
        scores = _augment(self.features(X)) @ self.W
        classes = self.base.classes_
        if scores.shape[2] == 1:
            return classes[(scores[:, :, 0] > 0).astype(int)]
        return classes[scores.argmax(axis=2)]


def online_flops(n_images: int, n_inputs: int, width: int, n_targets: int) -> float:
    """Floating-point operations per die of one block of ``n_images`` (a multiply-add counts 2):
    the features (``2 n f F + 4 n F``, as :func:`yieldmc.lifetime.policies.fit_flops`), the
    Gram update and right-hand side (``2 n F1^2 + 2 n F1 T``, ``F1 = F + 1``), forgetting
    (``2 F1^2 + 2 F1 T``) and the solve (LU ``(2/3) F1^3`` and ``2 F1^2 T``)."""
    n, f, F, t = n_images, n_inputs, width, n_targets
    f1 = F + 1
    return (2 * n * f * F + 4 * n * F + 2 * n * f1 * f1 + 2 * n * f1 * t + 2 * f1 * f1 + 2 * f1 * t
            + (2 / 3) * f1**3 + 2 * f1 * f1 * t)


__all__ = ["OnlineRidge", "online_flops", "weighted_ridge"]

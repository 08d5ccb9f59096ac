"""On-line update of many dies' ridge correctors: recursive least squares with forgetting.

The on-chip version of the random-feature ridge corrector
(:class:`~yieldmc.correctors.batched.BatchedRidgeCorrector`): the feature map (each die's
standardization and the shared random projection) is fixed at the first calibration, and the
linear read-out ``W`` (features plus an intercept column) follows a stream of labelled images.
With augmented features ``a = [z, 1]`` and targets ``y`` in ``{-1, +1}`` (one column per
class), after blocks ``0 .. c`` the weights minimise, exactly::

    sum_j lam^(c - j) ||Y_j - A_j W||^2 + lam^c alpha ||W[:F]||^2        (intercept unpenalised)

Block 0 (the calibration) gives ``P = (A_0' A_0 + alpha D)^-1`` (``D`` = identity with a 0 for
the intercept) and ``W = P A_0' Y_0``: the same weights as the batch ridge on the same
images. A later block ``(A, Y)`` of ``s`` images costs O(s F^2) per die (no F x F inverse):
``P <- P / lam``, ``K = P A' (I_s + A P A')^-1``, ``W <- W + K (Y - A W)``, ``P <- P - K A P``
(the Woodbury form of recursive least squares; ``lam = 1`` never forgets).
:func:`weighted_ridge` is the same solution written directly (the tests' reference).
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
    G = lam**c * _penalty(width, alpha)
    b = np.zeros((width + 1, blocks[0][1].shape[1]))
    for j, (Z, Y) in enumerate(blocks):
        A = _augment(np.asarray(Z, dtype=np.float64))
        G += lam ** (c - j) * A.T @ A
        b += lam ** (c - j) * A.T @ Y
    return np.linalg.solve(G, b)


class OnlineRidge:
    """Recursive least squares on the features of a fitted batch ridge, for a stack of dies.

    Parameters
    ----------
    base : BatchedRidgeCorrector
        Fitted on the calibration images; its feature map (standardization, projection) is
        kept, its weights are recomputed in this form.
    X : numpy.ndarray, shape (D, n, f)
        The calibration voltages ``base`` was fitted on.
    y : numpy.ndarray, shape (n,)
        Their labels.
    forgetting : float
        ``lam`` in (0, 1]: weight of what was learnt before each new block.

    Attributes
    ----------
    P : numpy.ndarray, shape (D, F + 1, F + 1)
    W : numpy.ndarray, shape (D, F + 1, T)
    """

    def __init__(self, base: BatchedRidgeCorrector, X: np.ndarray, y: np.ndarray, forgetting: float) -> None:
        if not 0 < forgetting <= 1:
            raise ConfigError(f"forgetting must lie in (0, 1], got {forgetting!r}")
        self.base = base
        self.forgetting = float(forgetting)
        self._binarizer = LabelBinarizer(neg_label=-1, pos_label=1).fit(base.classes_)
        A = _augment(self.features(X))
        Y = self.targets(y)
        width = A.shape[2] - 1
        G = A.transpose(0, 2, 1) @ A + _penalty(width, base.alpha)
        self.P = np.linalg.inv(G)
        self.P = 0.5 * (self.P + self.P.transpose(0, 2, 1))
        self.W = self.P @ (A.transpose(0, 2, 1) @ Y)

    def features(self, X: np.ndarray) -> np.ndarray:
        """The fixed feature map of voltages ``X`` (D, m, f): (D, m, F)."""
        return np.asarray(self.base._transform(np.asarray(X, dtype=np.float64), slice(None)), dtype=np.float64)

    def targets(self, y: np.ndarray) -> np.ndarray:
        """Targets in {-1, +1} of labels ``y`` (one column per class; one for two classes)."""
        return self._binarizer.transform(np.asarray(y)).astype(np.float64)

    def update(self, X: np.ndarray, y: np.ndarray) -> OnlineRidge:
        """Forget by ``forgetting``, then learn the block of labelled voltages ``X`` (D, s, f)."""
        A = _augment(self.features(X))
        Y = self.targets(y)
        P = self.P / self.forgetting
        PAt = P @ A.transpose(0, 2, 1)  # (D, F+1, s)
        S = A @ PAt
        S += np.eye(A.shape[1])
        K = np.linalg.solve(S, PAt.transpose(0, 2, 1)).transpose(0, 2, 1)  # S symmetric
        self.W = self.W + K @ (Y - A @ self.W)
        P -= K @ PAt.transpose(0, 2, 1)
        self.P = 0.5 * (P + P.transpose(0, 2, 1))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted labels (D, m) of voltages ``X`` (D, m, f)."""
        scores = _augment(self.features(X)) @ self.W
        classes = self.base.classes_
        if scores.shape[2] == 1:
            return classes[(scores[:, :, 0] > 0).astype(int)]
        return classes[scores.argmax(axis=2)]


def rls_flops(n_dies: int, width: int, block: int, n_targets: int) -> float:
    """Floating-point operations of one :meth:`OnlineRidge.update` per die (multiply-adds
    counted as 2): ``P A'``, ``A P A'``, the s x s solve, ``K``, the ``W`` and ``P`` updates."""
    f1, s, t = width + 1, block, n_targets
    return n_dies * (2 * f1 * f1 * s + 2 * s * s * f1 + (2 / 3) * s**3 + 2 * s * s * f1
                     + 4 * s * f1 * t + 2 * f1 * f1 * s)


__all__ = ["OnlineRidge", "rls_flops", "weighted_ridge"]

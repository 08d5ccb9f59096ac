"""numpy / scipy twins of the chunk engine's scalar activations
(``yieldmc/engine/_forward.py``), compared in ``tests/test_engine_chunk.py``.

The whole forward pass of a die has the readable reference :class:`yieldmc.die.DieModel`
(``die_outputs``, ``forward``), which is part of yieldmc's API; the plain-loop twin of
the software network is :func:`tests.reference.network.forward_loops`.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit


def exp(x: np.ndarray) -> np.ndarray:
    """``e^x``. Mirrors ``_forward._exp`` (the kernels' libm-free exponential). Obviously
    correct: numpy's exp (the platform's libm)."""
    return np.exp(x)


def logistic(z: np.ndarray) -> np.ndarray:
    """``1 / (1 + e^-z)``. Mirrors ``_forward._logistic``. Obviously correct: scipy's expit,
    accurate and saturating at both ends."""
    return expit(z)


def hard_sigmoid(z: np.ndarray) -> np.ndarray:
    """``clip(0.5 + z / 4, 0, 1)``. Mirrors ``_forward._hard_sigmoid`` (and
    ``yieldmc.network``'s ``hard_sigmoid`` activation). Obviously correct: the definition, the
    logistic's tangent at 0 clipped to [0, 1]."""
    return np.clip(0.5 + 0.25 * z, 0.0, 1.0)

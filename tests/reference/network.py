"""A plain-loop twin of the software network's forward pass (``yieldmc.network.Network.
forward``, whose arithmetic the chunk engine's ``yieldmc/engine/_forward.py`` repeats on
the die), compared in ``tests/test_network.py``.

scikit-learn's ``MLPClassifier`` (through ``yieldmc.network.from_sklearn``) is the other
reference of the same pass, in the same test file.
"""

from __future__ import annotations

import numpy as np


def forward_loops(weights, biases, x) -> list[list[float]]:
    """The outputs of every layer for one input vector ``x`` of a logistic network: the
    hidden activations of each hidden layer, then the logits.

    Mirrors ``Network.forward(x, return_hidden=True)`` for ``activation="logistic"``.
    Obviously correct: one Python sum per neuron, ``z_j = sum_i h_i w_ij + b_j``, then
    ``1 / (1 + e^-z)`` on every layer but the last.
    """
    h = list(x)
    layers = []
    for layer, (w, b) in enumerate(zip(weights, biases, strict=True)):
        z = [sum(h[i] * w[i, j] for i in range(w.shape[0])) + b[j] for j in range(w.shape[1])]
        last = layer == len(weights) - 1
        h = z if last else [1.0 / (1.0 + np.exp(-v)) for v in z]
        layers.append(h)
    return layers

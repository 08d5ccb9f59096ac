"""numpy twins of the sinh-device kernels (``yieldmc/circuit/_newton.py``), compared in
``tests/test_nonlinear.py``.

The Newton oracle of whole arrays, :func:`yieldmc.circuit.solve_sinh_reference` (Newton on
the nodal voltages with direct solves), is part of yieldmc's API and stays there;
``tests/reference/__init__.py`` lists it with these.
"""

from __future__ import annotations

import numpy as np


def ideal_wire_currents(G: np.ndarray, v: np.ndarray, v0: float) -> np.ndarray:
    """Column currents of sinh cells with ideal wires: ``sum_i G_ij v0 sinh(v_bi / v0)``.

    Mirrors ``solve_sinh`` with all resistances 0 (no Newton step: every cell sees its row
    voltage). Obviously correct: the device law ``I = G v0 sinh(V / v0)`` summed down each
    column, with ``v`` of shape (B, M).
    """
    return np.einsum("bi,ij->bj", v0 * np.sinh(v / v0), G)


def gap_model_currents(device, gaps: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Column currents of a wire-free array of gap-model cells: ``sum_i I0 exp(-g_ij / g0)
    sinh(v_i / v0)``.

    Mirrors ``solve_sinh`` on ``device.conductance(gaps)`` with ideal wires (the die's
    parameterisation of the sinh device by its gap). Obviously correct: the published gap
    model, one input vector ``v`` (M), written out.
    """
    return (device.i0 * np.exp(-gaps / device.gap0) * np.sinh(v[:, None] / device.v0)).sum(axis=0)


def kvl_residual(G: np.ndarray, x: np.ndarray, w: np.ndarray, vt: np.ndarray, v0: float) -> np.ndarray:
    """Newton's residual ``F(x) = v0 asinh(x / (G v0)) + w - v`` per cell and input (0 at an
    open cell, ``G = 0``).

    Mirrors ``_newton._kvl`` without its ``scale``: ``x`` (M, N, K) are the cell currents,
    ``w`` (M, N, K) the wire drops ``A x``, ``vt`` (M, K) the row voltages. Obviously
    correct: Kirchhoff's voltage law around each cell, with the device law inverted by
    numpy's arcsinh.
    """
    a = np.where(G > 0.0, G * v0, 1.0)[:, :, None]
    return np.where(G[:, :, None] > 0.0, v0 * np.arcsinh(x / a) + w - vt[:, None, :], 0.0)

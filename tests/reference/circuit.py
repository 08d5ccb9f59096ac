"""Dense twins of the one circuit core (``yieldmc/circuit/_wires.py``: the wire operator,
its diagonal and the block CG), compared in ``tests/test_circuit.py``.

The nodal oracle of whole arrays, :func:`yieldmc.circuit.solve_reference` (scipy sparse
direct solve of the modified nodal system), is part of yieldmc's API and stays there;
``tests/reference/__init__.py`` lists it with these.
"""

from __future__ import annotations

import numpy as np


def dense_wire_operator(m_rows: int, n_cols: int, wires) -> np.ndarray:
    """``A`` (MN x MN, flat index ``i N + j``) from docs/circuit.md's min-kernels.

    Mirrors ``_wires.apply_wires`` (``A p``) and ``_wires.wire_diagonal`` (``diag A``).
    Obviously correct: the voltage a unit current drawn at cell ``(i, j')`` drops at cell
    ``(i, j)`` along row ``i`` is ``r_driver + r_row (min(j, j') + 1)`` (the shared stretch of
    wire from the driver), and along column ``j`` it is ``r_sense + r_col (M - max(i, i'))``;
    ``A`` is the Kronecker sum of the two, built densely. ``wires`` is
    ``(r_row, r_col, r_driver, r_sense)`` in ohm.
    """
    r_row, r_col, r_driver, r_sense = wires
    k_row = r_driver + r_row * (np.minimum.outer(np.arange(n_cols), np.arange(n_cols)) + 1.0)
    k_col = r_sense + r_col * (m_rows - np.maximum.outer(np.arange(m_rows), np.arange(m_rows)))
    return np.kron(np.eye(m_rows), k_row) + np.kron(k_col, np.eye(n_cols))


def scaled_operator_product(A: np.ndarray, s: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``H p = p + s A (s p)`` for flat ``p`` (MN x K) and scales ``s`` of the same shape.

    Mirrors ``_wires.apply_wires(p, w, out, work, s)``: the diagonally scaled operator the
    linear engine (a scale per cell) and Newton (per cell and input) iterate on. Obviously
    correct: the definition, with the dense ``A`` of :func:`dense_wire_operator`.
    """
    return p + s * (A @ (s * p))


def scaled_system(A: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The dense matrix ``I + diag(s) A diag(s)`` for one input's flat scales ``s`` (MN).

    Mirrors ``_wires.cg_iterations`` (the one Jacobi block CG) through its dense solve by
    ``np.linalg.solve``. Obviously correct: the definition, element by element.
    """
    return np.eye(A.shape[0]) + s[:, None] * A * s[None, :]

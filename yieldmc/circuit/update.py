"""Transfer matrix of a faulty array from its fault-free one: re-solve or low-rank update.

Changing the conductance of k cells changes only k diagonal entries of the cell system
``K = diag(1/G) + A`` (the wire operator of ``_wires``): ``K' = K + P E P^T`` with
``E = diag(1/G'_c - 1/G_c)``. With ``T = B^T K^{-1} C`` (B: row-drive, C: column-sum
incidence) the Woodbury identity gives, exactly,

    T' = T - (B^T U) (E^{-1} + P^T U)^{-1} (C^T U)^T        U = K^{-1} P

which costs k solves (one per changed cell) instead of min(M, N). :func:`faulty_transfer`
picks the cheaper route per array.
"""

from __future__ import annotations

import numpy as np

from yieldmc.circuit import _kernels
from yieldmc.circuit.resistances import Resistances
from yieldmc.circuit.solver import (
    RHS_BLOCK,
    SOLVER_MAX_ITER,
    SOLVER_RTOL,
    SolveInfo,
    transfer_matrix_checked,
)
from yieldmc.circuit.validate import check_conductances, check_network

#: Use the low-rank update when the changed cells number at most this share of min(M, N).
WOODBURY_MAX_SHARE = 0.5


#: Arrays with fewer cells than this are always re-solved: the update's fixed cost
#: (a few numpy calls) exceeds a whole solve there (measured, docs/performance.md).
WOODBURY_MIN_CELLS = 256


def _woodbury(G0, T0, G1, ci, cj, wires: Resistances):
    """The update itself, on validated arrays; returns (T1, max residual, iterations)."""
    m_rows, n_cols = G0.shape
    U = np.empty((m_rows, n_cols, ci.size))
    worst, its = _kernels.cell_responses(G0, ci, cj, wires, SOLVER_RTOL, SOLVER_MAX_ITER,
                                         RHS_BLOCK, U)
    row_resp = U.sum(axis=1)  # B^T U: (M, k)
    col_resp = U.sum(axis=0)  # C^T U: (N, k)
    S = U[ci, cj, :]
    S[np.diag_indices_from(S)] += 1.0 / (1.0 / G1[ci, cj] - 1.0 / G0[ci, cj])
    return T0 - row_resp @ np.linalg.solve(S, col_resp.T), worst, its


def woodbury_transfer(G0, T0, G1, r_row: float = 1.0, r_col: float = 1.0, *,
                      r_driver: float = 0.0, r_sense: float = 0.0,
                      raise_on_failure: bool = True) -> tuple[np.ndarray, SolveInfo]:
    """Transfer matrix of ``G1`` by an exact low-rank update of the one of ``G0``.

    Parameters
    ----------
    G0 : array_like, shape (M, N)
        Fault-free conductances (S), all > 0 where they change.
    T0 : numpy.ndarray, shape (M, N)
        ``transfer_matrix(G0, ...)`` with the same resistances.
    G1 : array_like, shape (M, N)
        Faulty conductances (S), > 0 where they differ from ``G0``.

    Returns
    -------
    T1 : numpy.ndarray, shape (M, N)
    info : SolveInfo
        Of the k cell solves.
    """
    G0 = check_conductances(G0)
    G1 = check_conductances(G1)
    wires = check_network(r_row, r_col, r_driver, r_sense)
    ci, cj = np.nonzero(G1 != G0)
    if ci.size == 0:
        return np.array(T0, dtype=np.float64, copy=True), SolveInfo.exact()
    if wires.ideal:
        return G1.copy(), SolveInfo.exact()
    if np.any(G0[ci, cj] == 0) or np.any(G1[ci, cj] == 0):
        raise ValueError("the low-rank update needs non-zero conductances at changed cells")
    T1, worst, its = _woodbury(G0, np.asarray(T0, dtype=np.float64), G1, ci, cj, wires)
    return T1, SolveInfo.of(worst, its, SOLVER_RTOL, raise_on_failure=raise_on_failure)


def faulty_transfer(G0, T0, G1, r_row: float = 1.0, r_col: float = 1.0, *,
                    r_driver: float = 0.0, r_sense: float = 0.0,
                    raise_on_failure: bool = True) -> tuple[np.ndarray, SolveInfo, str]:
    """Transfer matrix of a faulty array by the cheaper exact route.

    ``G0`` and ``T0`` are trusted (the die validated and solved them); ``G1`` is checked.
    Returns ``(T1, info, method)`` with method ``"reuse"`` (nothing changed),
    ``"woodbury"`` (few changed cells on a large enough array) or ``"solve"``.
    """
    G1 = check_conductances(G1)
    changed = G1 != G0
    n_changed = int(np.count_nonzero(changed))
    if n_changed == 0:
        return T0, SolveInfo.exact(), "reuse"
    wires = check_network(r_row, r_col, r_driver, r_sense)
    small = n_changed <= WOODBURY_MAX_SHARE * min(G0.shape) and G0.size >= WOODBURY_MIN_CELLS
    if small and not wires.ideal:
        ci, cj = np.nonzero(changed)
        if np.all(G0[ci, cj] > 0) and np.all(G1[ci, cj] > 0):
            T1, worst, its = _woodbury(G0, T0, G1, ci, cj, wires)
            info = SolveInfo.of(worst, its, SOLVER_RTOL, raise_on_failure=raise_on_failure)
            return T1, info, "woodbury"
    T1, info = transfer_matrix_checked(G1, wires, raise_on_failure=raise_on_failure)
    return T1, info, "solve"

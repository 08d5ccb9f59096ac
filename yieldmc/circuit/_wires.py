"""Numba kernels of the circuit core: the wire operator and block CG, for every solver.

The linear engine (:mod:`yieldmc.circuit._kernels`: transfer matrices, batched inputs,
cell responses for the low-rank update, the chunk engine's fresh solves) and the sinh
device's Newton solver (:mod:`yieldmc.circuit._newton`) solve systems with the same wire
operator ``A`` (docs/circuit.md section 2). Unknowns are cell currents ``x[i, j, k]`` of
right-hand side ``k``; ``(A x)[i, j]`` is the voltage lost along row i up to node j plus
the rise of column node (i, j) above the virtual ground:

    (A x)[i, j] = r_driver S_i + r_row sum_j' (min(j, j') + 1) x[i, j']
                + r_sense  C_j + r_col sum_i' (M - max(i, i'))  x[i', j]

(``S_i``, ``C_j``: row and column totals). Both solvers scale it by the square root of a
cell conductance, ``H = I + s A s``, symmetric positive definite with eigenvalues >= 1:
the linear engine with ``s = sqrt(G)`` per cell (shape (M, N)), Newton with the square
root of each cell's differential conductance per right-hand side (shape (M, N, K)).

* :func:`apply_wires` computes ``A p`` or ``H p`` with running sums (one sweep along each
  row, one up each column), never forming the MN x MN matrix;
* :func:`cg_iterations` runs Jacobi-preconditioned CG on ``H`` for a block of right-hand
  sides, each with its own step sizes, until each meets its tolerance;
* :func:`wire_diagonal` is ``A``'s diagonal, for the preconditioner.

Per-cell and per-right-hand-side arrays take the same code: :func:`cell` reads either
(numba compiles one version per shape). Arrays and scalars in, arrays out; the
resistances come as a :class:`yieldmc.circuit.resistances.Resistances`.
"""

from __future__ import annotations

import numpy as np
from numba.extending import overload

from yieldmc._numba import njit


def cell(a, i, j, k):
    """``a[i, j]`` of a per-cell array (M, N), ``a[i, j, k]`` of a per-right-hand-side one
    (M, N, K): a scale or preconditioner that may or may not depend on the input."""
    return a[i, j] if a.ndim == 2 else a[i, j, k]


@overload(cell)
def _cell_compiled(a, i, j, k):  # pragma: no cover - numba's compiler runs this, not Python
    """:func:`cell` in compiled code: chooses the indexing once, by the array's dimensions."""
    if a.ndim == 2:
        return lambda a, i, j, k: a[i, j]
    return lambda a, i, j, k: a[i, j, k]


@njit
def wire_diagonal(wires, i, j, m_rows):
    """``A[(i, j), (i, j)]`` (ohm): every segment of row i up to node j, of column j below
    node (i, j), and the driver and sense resistances."""
    r_row, r_col, r_driver, r_sense = wires
    return r_driver + r_row * (j + 1) + r_sense + r_col * (m_rows - i)


@njit
def apply_wires(p, wires, out, work, scale=None, dots=None):
    """``out = A p``, or with ``scale`` ``s``: ``out = p + s A (s p)`` (the scaled system).

    Parameters
    ----------
    p, out : arrays (M, N, K)
        Operand and result (distinct).
    wires : Resistances
    work : array (3, N, K)
        Scratch (column totals, running column currents and drops); contents ignored.
    scale : array (M, N) or (M, N, K), optional
        ``s``, per cell or per cell and right-hand side.
    dots : array (K,), optional
        With ``scale``: receives ``p . out`` per right-hand side, summed inside the column
        sweep (rows bottom-up), which saves a pass over both arrays.

    Notes
    -----
    Row i: ``out[i, j] = r_driver S_i + r_row sum_{k<=j} s_k`` with ``s_k`` the current of
    row segment k (the row total minus the cells before node k). Column j, bottom-up:
    ``d = r_sense C_j + r_col sum_{m>=i} c_m`` with ``c_m`` the current in the segment
    below node m; ``out[i, j] += d`` (or ``p + s (out + d)``).
    """
    r_row, r_col, r_driver, r_sense = wires
    m_rows, n_cols, n_rhs = p.shape
    colsum, run, drop = work[0], work[1], work[2]
    acc = np.empty(n_rhs)
    row_run = np.empty(n_rhs)
    row_drop = np.empty(n_rhs)
    colsum[:, :] = 0.0
    for i in range(m_rows):
        acc[:] = 0.0
        for j in range(n_cols):
            for k in range(n_rhs):
                x = p[i, j, k] if scale is None else cell(scale, i, j, k) * p[i, j, k]
                acc[k] += x
                colsum[j, k] += x
        for k in range(n_rhs):
            row_run[k] = acc[k]  # current in the next row segment
            row_drop[k] = r_driver * acc[k]
        for j in range(n_cols):
            for k in range(n_rhs):
                row_drop[k] += r_row * row_run[k]
                out[i, j, k] = row_drop[k]
                row_run[k] -= p[i, j, k] if scale is None else cell(scale, i, j, k) * p[i, j, k]
    for j in range(n_cols):
        for k in range(n_rhs):
            run[j, k] = colsum[j, k]  # current in the segment below the node
            drop[j, k] = r_sense * colsum[j, k]
    if dots is not None:
        dots[:] = 0.0
    for i in range(m_rows - 1, -1, -1):
        for j in range(n_cols):
            for k in range(n_rhs):
                d = drop[j, k] + r_col * run[j, k]
                drop[j, k] = d
                pv = p[i, j, k]
                if scale is None:
                    out[i, j, k] = out[i, j, k] + d
                    run[j, k] -= pv
                else:
                    s = cell(scale, i, j, k)
                    qv = pv + s * (out[i, j, k] + d)
                    out[i, j, k] = qv
                    if dots is not None:
                        dots[k] += pv * qv
                    run[j, k] -= s * pv


@njit
def cg_iterations(scale, dinv, wires, tol2, active, max_iter, fused_dot, z, r, p, q, work):
    """Jacobi-preconditioned CG on ``(I + s A s) z = b`` for a block of right-hand sides.

    Parameters
    ----------
    scale, dinv : arrays (M, N) or (M, N, K)
        ``s`` and the inverse of the diagonal of ``H`` (the preconditioner).
    wires : Resistances
    tol2 : array (K,)
        Squared residual norm at which a right-hand side stops.
    active : bool array (K,)
        Right-hand sides to solve; the others are left alone (not modified).
    max_iter : int
        Iteration cap.
    fused_dot : bool
        Sum ``p . H p`` inside the operator's column sweep (rows bottom-up, one pass fewer:
        the linear engine) or in a pass after it (rows top-down: the Newton steps). The
        two orders round differently; each solver keeps the one its results were made with.
    z : array (M, N, K)
        The starting iterate on entry, the solution on exit.
    r : array (M, N, K)
        ``b - H z`` on entry; the recursive residual on exit.
    p, q : arrays (M, N, K)
        Work arrays, contents ignored.
    work : array (3, N, K)
        The operator's scratch.

    Returns
    -------
    int
        Iterations made. Each right-hand side has its own step sizes; one stops (its step
        is then 0) once its recursive residual norm squared is ``<= tol2[k]``, or when its
        preconditioned residual vanishes.
    """
    m_rows, n_cols, n_rhs = r.shape
    run = active.copy()
    rz = np.zeros(n_rhs)
    rn2 = np.zeros(n_rhs)
    pq = np.zeros(n_rhs)
    alpha = np.zeros(n_rhs)
    beta = np.zeros(n_rhs)
    rz_new = np.zeros(n_rhs)
    p[:] = 0.0
    for i in range(m_rows):
        for j in range(n_cols):
            for k in range(n_rhs):
                res = r[i, j, k]
                rz[k] += cell(dinv, i, j, k) * res * res
                rn2[k] += res * res
    n_run = 0
    for k in range(n_rhs):
        if run[k] and (rn2[k] <= tol2[k] or rz[k] == 0.0):
            run[k] = False
        n_run += run[k]
    iterations = 0
    while n_run > 0 and iterations < max_iter:
        iterations += 1
        # p = M^-1 r + beta p (beta = 0 first time and for finished columns: alpha = 0 there)
        for i in range(m_rows):
            for j in range(n_cols):
                for k in range(n_rhs):
                    p[i, j, k] = cell(dinv, i, j, k) * r[i, j, k] + beta[k] * p[i, j, k]
        if fused_dot:
            apply_wires(p, wires, q, work, scale, pq)
        else:
            apply_wires(p, wires, q, work, scale)
            pq[:] = 0.0
            for i in range(m_rows):
                for j in range(n_cols):
                    for k in range(n_rhs):
                        pq[k] += p[i, j, k] * q[i, j, k]
        for k in range(n_rhs):
            alpha[k] = rz[k] / pq[k] if run[k] and pq[k] > 0.0 else 0.0
            rn2[k] = 0.0
            rz_new[k] = 0.0
        for i in range(m_rows):
            for j in range(n_cols):
                for k in range(n_rhs):
                    a = alpha[k]
                    z[i, j, k] += a * p[i, j, k]
                    res = r[i, j, k] - a * q[i, j, k]
                    r[i, j, k] = res
                    rn2[k] += res * res
                    rz_new[k] += cell(dinv, i, j, k) * res * res
        n_run = 0
        for k in range(n_rhs):
            if run[k] and rn2[k] > tol2[k] and rz_new[k] > 0.0:
                n_run += 1
                beta[k] = rz_new[k] / rz[k]
                rz[k] = rz_new[k]
            else:
                run[k] = False
                beta[k] = 0.0
    return iterations

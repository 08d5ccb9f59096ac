"""Numba kernels of the crossbar engine: arrays and scalars in, arrays out, no I/O.

Formulation (see docs/circuit.md). Unknowns are the cell currents ``x[i, j]`` (row node
to column node). With ``D = diag(G)`` the cell equations read

    x / G + A x = v[i]        A = A_row + A_col   (wire-resistance operator, PSD)

where ``(A_row x)[i, j] = r_drv * S_i + r_row * sum_j' (min(j, j') + 1) x[i, j']`` is the
voltage lost along row i up to node j (``S_i`` is the row's total current) and
``(A_col x)[i, j] = r_snk * C_j + r_col * sum_i' (M - max(i, i')) x[i', j]`` is the
voltage of column node (i, j) above the virtual ground (``C_j`` is the column total,
``r_snk`` the sense impedance). Substituting ``x = sqrt(G) z`` gives the symmetric
positive-definite system

    H z = (I + D^1/2 A D^1/2) z = D^1/2 v

whose eigenvalues are >= 1; for the default devices it is well conditioned, so
Jacobi-preconditioned conjugate gradients converge in a handful of iterations.
Zero conductances are allowed (``z = 0`` there). The right-hand-side index ``k`` is the
innermost (contiguous) axis so that every inner loop vectorises.
"""

from __future__ import annotations

import math

import numpy as np

from yieldmc._numba import njit


@njit
def _row_pass(p, sg, r_drv, r_row, q, colsum):
    """Row part of ``H p``: ``q[i, j] = r_drv * S_i + r_row * sum_{k<=j} s_k``.

    ``s_k`` is the current in row segment k (``S_i - sum_{j'<k} x_j'``) of the cell
    currents ``x = sg * p``. Also accumulates the column totals ``colsum[j] = C_j``.
    """
    m_rows, n_cols, n_rhs = p.shape
    acc = np.empty(n_rhs)
    run = np.empty(n_rhs)
    drop = np.empty(n_rhs)
    colsum[:, :] = 0.0
    for i in range(m_rows):
        acc[:] = 0.0
        for j in range(n_cols):
            g = sg[i, j]
            for k in range(n_rhs):
                x = g * p[i, j, k]
                acc[k] += x
                colsum[j, k] += x
        for k in range(n_rhs):
            run[k] = acc[k]  # current in the next row segment
            drop[k] = r_drv * acc[k]
        for j in range(n_cols):
            g = sg[i, j]
            for k in range(n_rhs):
                drop[k] += r_row * run[k]
                q[i, j, k] = drop[k]
                run[k] -= g * p[i, j, k]


@njit
def _col_pass(p, sg, r_col, r_snk, q, colsum, run, drop, pq):
    """Column part: ``q = p + sg * (q + rise)`` and the dot products ``pq[k] = p . q``.

    ``rise(i) = r_snk * C_j + r_col * sum_{m>=i} c_m`` with ``c_m`` the current in the
    column segment below node m. Sweeps the rows bottom-up with all columns at once,
    so memory is read in order.
    """
    m_rows, n_cols, n_rhs = p.shape
    for j in range(n_cols):
        for k in range(n_rhs):
            run[j, k] = colsum[j, k]  # current in the segment below the node
            drop[j, k] = r_snk * colsum[j, k]
    pq[:] = 0.0
    for i in range(m_rows - 1, -1, -1):
        for j in range(n_cols):
            g = sg[i, j]
            for k in range(n_rhs):
                d = drop[j, k] + r_col * run[j, k]
                drop[j, k] = d
                pv = p[i, j, k]
                qv = pv + g * (q[i, j, k] + d)
                q[i, j, k] = qv
                pq[k] += pv * qv
                run[j, k] -= g * pv


@njit
def _apply_h(z, sg, r_drv, r_row, r_col, r_snk, out):
    """``out = H z`` for a block of right-hand sides ``z`` of shape (M, N, K)."""
    n_cols, n_rhs = z.shape[1], z.shape[2]
    colsum = np.empty((n_cols, n_rhs))
    run = np.empty((n_cols, n_rhs))
    drop = np.empty((n_cols, n_rhs))
    pq = np.empty(n_rhs)
    _row_pass(z, sg, r_drv, r_row, out, colsum)
    _col_pass(z, sg, r_col, r_snk, out, colsum, run, drop, pq)


#: Restarts of CG from its current iterate when the residual recomputed from scratch misses
#: the tolerance that the recursive residual met (round-off drift of about 1e-6 relative:
#: 2 dies in 20,000 stopped at 1.000003e-12 against 1e-12 and were flagged unconverged).
TRUE_RESIDUAL_RESTARTS = 2


@njit
def _cg_block(sg, rhs, r_drv, r_row, r_col, r_snk, rtol, max_iter, z, r, p, q):
    """Jacobi-preconditioned CG on ``H z = rhs`` for every right-hand side at once.

    ``z`` holds the initial guess on entry (the ideal-wire solution ``rhs`` is a good
    one) and the solution on exit. Returns ``(relative_residuals, iterations)`` where
    the residuals are recomputed from scratch (``|rhs - H z| / |rhs|`` per column k),
    so drift of the recursive residual cannot hide a wrong answer. Finished columns
    are frozen (``alpha = beta = 0``) while the others iterate. ``r, p, q`` are work
    arrays of the shape of ``rhs`` (contents ignored), owned by the caller so that
    repeated solves do not allocate (fresh pages cost page faults).
    """
    m_rows, n_cols, n_rhs = rhs.shape
    inv_diag = np.empty((m_rows, n_cols))
    for i in range(m_rows):
        for j in range(n_cols):
            g2 = sg[i, j] * sg[i, j]
            a_ii = r_drv + r_row * (j + 1) + r_snk + r_col * (m_rows - i)
            inv_diag[i, j] = 1.0 / (1.0 + g2 * a_ii)
    colsum = np.empty((n_cols, n_rhs))
    run = np.empty((n_cols, n_rhs))
    drop = np.empty((n_cols, n_rhs))
    bnorm2 = np.zeros(n_rhs)
    rz = np.zeros(n_rhs)
    rnorm2 = np.zeros(n_rhs)
    pq = np.zeros(n_rhs)
    alpha = np.zeros(n_rhs)
    beta = np.zeros(n_rhs)
    rz_new = np.zeros(n_rhs)
    active = np.ones(n_rhs, dtype=np.bool_)
    iterations = 0
    rel = np.zeros(n_rhs)
    for _attempt in range(1 + TRUE_RESIDUAL_RESTARTS):
        p[:] = 0.0
        bnorm2[:] = 0.0
        rz[:] = 0.0
        rnorm2[:] = 0.0
        beta[:] = 0.0
        active[:] = True
        _apply_h(z, sg, r_drv, r_row, r_col, r_snk, q)
        for i in range(m_rows):
            for j in range(n_cols):
                d = inv_diag[i, j]
                for k in range(n_rhs):
                    b = rhs[i, j, k]
                    res = b - q[i, j, k]
                    r[i, j, k] = res
                    bnorm2[k] += b * b
                    rz[k] += d * res * res
                    rnorm2[k] += res * res
        tol2 = rtol * rtol * bnorm2
        n_active = 0
        for k in range(n_rhs):
            if rnorm2[k] <= tol2[k] or rz[k] == 0.0:
                active[k] = False
            else:
                n_active += 1
        while n_active > 0 and iterations < max_iter:
            iterations += 1
            # p = M^-1 r + beta p (beta = 0 first time and for finished columns: alpha=0 there)
            for i in range(m_rows):
                for j in range(n_cols):
                    d = inv_diag[i, j]
                    for k in range(n_rhs):
                        p[i, j, k] = d * r[i, j, k] + beta[k] * p[i, j, k]
            _row_pass(p, sg, r_drv, r_row, q, colsum)
            _col_pass(p, sg, r_col, r_snk, q, colsum, run, drop, pq)
            for k in range(n_rhs):
                alpha[k] = rz[k] / pq[k] if active[k] and pq[k] > 0.0 else 0.0
                rnorm2[k] = 0.0
                rz_new[k] = 0.0
            for i in range(m_rows):
                for j in range(n_cols):
                    d = inv_diag[i, j]
                    for k in range(n_rhs):
                        a = alpha[k]
                        z[i, j, k] += a * p[i, j, k]
                        res = r[i, j, k] - a * q[i, j, k]
                        r[i, j, k] = res
                        rnorm2[k] += res * res
                        rz_new[k] += d * res * res
            n_active = 0
            for k in range(n_rhs):
                if active[k] and rnorm2[k] > tol2[k] and rz_new[k] > 0.0:
                    n_active += 1
                    beta[k] = rz_new[k] / rz[k]
                    rz[k] = rz_new[k]
                else:
                    active[k] = False
                    beta[k] = 0.0
        _apply_h(z, sg, r_drv, r_row, r_col, r_snk, q)
        rel[:] = 0.0
        for i in range(m_rows):
            for j in range(n_cols):
                for k in range(n_rhs):
                    res = rhs[i, j, k] - q[i, j, k]
                    rel[k] += res * res
        for k in range(n_rhs):
            rel[k] = np.sqrt(rel[k] / bnorm2[k]) if bnorm2[k] > 0.0 else np.sqrt(rel[k])
        worst = 0.0
        for k in range(n_rhs):
            worst = max(worst, rel[k])
        if worst <= rtol or iterations >= max_iter:
            break
    return rel, iterations


@njit
def _pow2_exponent(x):
    """Exponent ``e`` of the power of two just above ``|x|`` (0 for ``x = 0``), clamped to
    +-1021 so that ``2^e`` and ``2^-e`` are finite: dividing by ``2^e`` is exact."""
    return min(max(math.frexp(x)[1], -1021), 1021) if x != 0.0 else 0


@njit
def _workspace(m_rows, n_cols, n_rhs):
    """One flat buffer for rhs, z, r, p, q of up to ``n_rhs`` right-hand sides."""
    return np.empty(5 * m_rows * n_cols * max(n_rhs, 1))


@njit
def _views(buf, m_rows, n_cols, nb):
    """Contiguous (M, N, nb) views rhs, z, r, p, q into the workspace."""
    size = m_rows * n_cols * nb
    return (buf[0:size].reshape((m_rows, n_cols, nb)),
            buf[size:2 * size].reshape((m_rows, n_cols, nb)),
            buf[2 * size:3 * size].reshape((m_rows, n_cols, nb)),
            buf[3 * size:4 * size].reshape((m_rows, n_cols, nb)),
            buf[4 * size:5 * size].reshape((m_rows, n_cols, nb)))


@njit
def _transfer_by_columns(g, r_drv, r_row, r_col, r_snk, rtol, max_iter, block, t_out):
    """Transfer matrix by reciprocity: one solve per column (use when N <= M).

    Right-hand side of column c is ``sqrt(G[:, c])`` in column c, zero elsewhere;
    ``T[i, c] = sum_j sqrt(G[i, j]) z[i, j]``. Returns (max residual, max iterations).
    """
    m_rows, n_cols = g.shape
    sg = np.sqrt(g)
    worst = 0.0
    most = 0
    buf = _workspace(m_rows, n_cols, min(block, n_cols))
    for c0 in range(0, n_cols, block):
        nb = min(block, n_cols - c0)
        rhs, z, r, p, q = _views(buf, m_rows, n_cols, nb)
        rhs[:] = 0.0
        for i in range(m_rows):
            for k in range(nb):
                rhs[i, c0 + k, k] = sg[i, c0 + k]
        z[:] = rhs  # warm start: the ideal-wire solution
        rel, its = _cg_block(sg, rhs, r_drv, r_row, r_col, r_snk, rtol, max_iter, z, r, p, q)
        for k in range(nb):
            worst = max(worst, rel[k])
        most = max(most, its)
        for i in range(m_rows):
            for k in range(nb):
                t_out[i, c0 + k] = 0.0
            for j in range(n_cols):
                s = sg[i, j]
                for k in range(nb):
                    t_out[i, c0 + k] += s * z[i, j, k]
    return worst, most


@njit
def _solve_inputs(g, v, r_drv, r_row, r_col, r_snk, rtol, max_iter, block, i_out):
    """Column currents for a batch of row-voltage vectors ``v`` (B, M) -> ``i_out`` (B, N).

    Also the route to the transfer matrix when M < N (drive the rows with unit inputs).
    Returns (max residual, max iterations).
    """
    m_rows, n_cols = g.shape
    n_batch = v.shape[0]
    sg = np.sqrt(g)
    worst = 0.0
    most = 0
    buf = _workspace(m_rows, n_cols, min(block, n_batch))
    for b0 in range(0, n_batch, block):
        nb = min(block, n_batch - b0)
        rhs, z, r, p, q = _views(buf, m_rows, n_cols, nb)
        # Each input is solved as v / 2^e (2^e near max |v|): the network is linear, the
        # power of two is exact, and squares of inputs below 1e-154 V cannot underflow
        # the residual norms (which would pass any tolerance).
        scale = np.empty(nb)
        for k in range(nb):
            biggest = 0.0
            for i in range(m_rows):
                biggest = max(biggest, abs(v[b0 + k, i]))
            scale[k] = math.ldexp(1.0, _pow2_exponent(biggest))
        for i in range(m_rows):
            for j in range(n_cols):
                s = sg[i, j]
                for k in range(nb):
                    rhs[i, j, k] = s * (v[b0 + k, i] / scale[k])
        z[:] = rhs  # warm start: the ideal-wire solution
        rel, its = _cg_block(sg, rhs, r_drv, r_row, r_col, r_snk, rtol, max_iter, z, r, p, q)
        for k in range(nb):
            worst = max(worst, rel[k])
        most = max(most, its)
        for j in range(n_cols):
            for k in range(nb):
                i_out[b0 + k, j] = 0.0
        for i in range(m_rows):
            for j in range(n_cols):
                s = sg[i, j]
                for k in range(nb):
                    i_out[b0 + k, j] += s * z[i, j, k]
        for j in range(n_cols):
            for k in range(nb):
                i_out[b0 + k, j] *= scale[k]
    return worst, most


@njit
def _cell_responses(g, cell_i, cell_j, r_drv, r_row, r_col, r_snk, rtol, max_iter, block, u_out):
    """Cell currents ``u[:, :, c] = K^{-1} e_c`` for unit voltage across each listed cell.

    ``K = diag(1/G) + A`` is the unscaled cell system; column c of ``u_out`` (shape
    (M, N, n_cells)) is the response to a unit source in series with cell
    ``(cell_i[c], cell_j[c])``. Used by the low-rank (Woodbury) update of T.
    Returns (max residual, max iterations).
    """
    m_rows, n_cols = g.shape
    n_cells = cell_i.shape[0]
    sg = np.sqrt(g)
    worst = 0.0
    most = 0
    buf = _workspace(m_rows, n_cols, min(block, n_cells))
    for c0 in range(0, n_cells, block):
        nb = min(block, n_cells - c0)
        rhs, z, r, p, q = _views(buf, m_rows, n_cols, nb)
        rhs[:] = 0.0
        for k in range(nb):
            i, j = cell_i[c0 + k], cell_j[c0 + k]
            rhs[i, j, k] = sg[i, j]
        z[:] = rhs  # warm start: the ideal-wire solution
        rel, its = _cg_block(sg, rhs, r_drv, r_row, r_col, r_snk, rtol, max_iter, z, r, p, q)
        for k in range(nb):
            worst = max(worst, rel[k])
        most = max(most, its)
        for i in range(m_rows):
            for j in range(n_cols):
                s = sg[i, j]
                for k in range(nb):
                    u_out[i, j, c0 + k] = s * z[i, j, k]
    return worst, most

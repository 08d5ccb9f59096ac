"""Numba kernels of the linear crossbar engine: arrays and scalars in, arrays out, no I/O.

Formulation (see docs/circuit.md). Unknowns are the cell currents ``x[i, j]`` (row node
to column node). With ``D = diag(G)`` and the wire operator ``A`` of
:mod:`yieldmc.circuit._wires` the cell equations read ``x / G + A x = v[i]``.
Substituting ``x = sqrt(G) z`` gives the symmetric positive-definite system

    H z = (I + D^1/2 A D^1/2) z = D^1/2 v

whose eigenvalues are >= 1; for the default devices it is well conditioned, so
Jacobi-preconditioned conjugate gradients (:func:`yieldmc.circuit._wires.cg_iterations`)
converge in a handful of iterations. Zero conductances are allowed (``z = 0`` there).
The right-hand-side index ``k`` is the innermost (contiguous) axis so that every inner
loop vectorises.

Tiers: :func:`cg_block` solves one block of right-hand sides and checks the true
residual; :func:`solve_blocks` is the one block driver (right-hand sides of three kinds,
:data:`BY_COLUMNS`, :data:`BY_INPUTS`, :data:`BY_CELLS`); :func:`transfer_by_columns`,
:func:`solve_inputs`, :func:`cell_responses` and :func:`transfer` are its entry points.
The resistances come as a :class:`yieldmc.circuit.resistances.Resistances`.
"""

from __future__ import annotations

import math

import numpy as np

from yieldmc._numba import njit
from yieldmc.circuit._wires import apply_wires, cg_iterations, wire_diagonal

#: Restarts of CG from its current iterate when the residual recomputed from scratch misses
#: the tolerance that the recursive residual met (round-off drift of about 1e-6 relative:
#: 2 dies in 20,000 stopped at 1.000003e-12 against 1e-12 and were flagged unconverged).
TRUE_RESIDUAL_RESTARTS = 2

#: Kinds of right-hand side of :func:`solve_blocks`: a unit voltage across every cell of
#: one column (a column of T, by reciprocity), a vector of row voltages, one cell.
BY_COLUMNS, BY_INPUTS, BY_CELLS = 0, 1, 2


@njit
def cg_block(sg, rhs, wires, rtol, max_iter, z, r, p, q):
    """Jacobi-preconditioned CG on ``H z = rhs`` for every right-hand side at once.

    ``sg = sqrt(G)`` (M, N); ``z`` holds the initial guess on entry (the ideal-wire
    solution ``rhs`` is a good one) and the solution on exit. Returns
    ``(relative_residuals, iterations)`` where the residuals are recomputed from scratch
    (``|rhs - H z| / |rhs|`` per column k), so drift of the recursive residual cannot
    hide a wrong answer; a miss restarts CG from ``z`` (:data:`TRUE_RESIDUAL_RESTARTS`).
    ``r, p, q`` are work arrays of the shape of ``rhs`` (contents ignored), owned by the
    caller so that repeated solves do not allocate (fresh pages cost page faults).
    """
    m_rows, n_cols, n_rhs = rhs.shape
    inv_diag = np.empty((m_rows, n_cols))
    for i in range(m_rows):
        for j in range(n_cols):
            g2 = sg[i, j] * sg[i, j]
            inv_diag[i, j] = 1.0 / (1.0 + g2 * wire_diagonal(wires, i, j, m_rows))
    work = np.empty((3, n_cols, n_rhs))
    every = np.ones(n_rhs, dtype=np.bool_)
    bnorm2 = np.zeros(n_rhs)
    iterations = 0
    rel = np.zeros(n_rhs)
    for _attempt in range(1 + TRUE_RESIDUAL_RESTARTS):
        bnorm2[:] = 0.0
        apply_wires(z, wires, q, work, sg)
        for i in range(m_rows):
            for j in range(n_cols):
                for k in range(n_rhs):
                    b = rhs[i, j, k]
                    r[i, j, k] = b - q[i, j, k]
                    bnorm2[k] += b * b
        tol2 = rtol * rtol * bnorm2
        iterations += cg_iterations(sg, inv_diag, wires, tol2, every, max_iter - iterations, True,
                                    z, r, p, q, work)
        apply_wires(z, wires, q, work, sg)
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
def pow2_exponent(x):
    """Exponent ``e`` of the power of two just above ``|x|`` (0 for ``x = 0``), clamped to
    +-1021 so that ``2^e`` and ``2^-e`` are finite: dividing by ``2^e`` is exact."""
    return min(max(math.frexp(x)[1], -1021), 1021) if x != 0.0 else 0


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
def _right_hand_sides(kind, sg, v, cell_i, cell_j, b0, rhs, scale):
    """Block ``b0 ..`` of right-hand sides ``D^1/2 e`` into ``rhs`` (M, N, nb).

    ``e`` is the voltage across every cell: 1 V on column ``b0 + k`` (:data:`BY_COLUMNS`),
    row voltages ``v[b0 + k] / scale[k]`` with ``scale[k]`` the power of two near
    ``max |v[b0 + k]|`` (:data:`BY_INPUTS`: the network is linear and the power of two
    exact, so squares of inputs below 1e-154 V cannot underflow the residual norms, which
    would pass any tolerance), or 1 V across cell ``(cell_i, cell_j)[b0 + k]``
    (:data:`BY_CELLS`). ``scale`` is 1 but for inputs.
    """
    m_rows, n_cols, nb = rhs.shape
    scale[:] = 1.0
    if kind == BY_INPUTS:
        for k in range(nb):
            biggest = 0.0
            for i in range(m_rows):
                biggest = max(biggest, abs(v[b0 + k, i]))
            scale[k] = math.ldexp(1.0, pow2_exponent(biggest))
        for i in range(m_rows):
            for j in range(n_cols):
                s = sg[i, j]
                for k in range(nb):
                    rhs[i, j, k] = s * (v[b0 + k, i] / scale[k])
        return
    rhs[:] = 0.0
    if kind == BY_COLUMNS:
        for i in range(m_rows):
            for k in range(nb):
                rhs[i, b0 + k, k] = sg[i, b0 + k]
    else:
        for k in range(nb):
            i, j = cell_i[b0 + k], cell_j[b0 + k]
            rhs[i, j, k] = sg[i, j]


@njit
def _gather(kind, sg, z, b0, scale, out):
    """The block's results from ``z`` (M, N, nb): for :data:`BY_COLUMNS` the row sums of
    the cell currents ``sg z`` into ``out[:, b0 + k]`` (columns of T), for
    :data:`BY_INPUTS` their column sums times ``scale[k]`` into ``out[b0 + k, :]``, for
    :data:`BY_CELLS` the cell currents themselves into ``out[i * N + j, b0 + k]``."""
    m_rows, n_cols, nb = z.shape
    if kind == BY_COLUMNS:
        for i in range(m_rows):
            for k in range(nb):
                out[i, b0 + k] = 0.0
            for j in range(n_cols):
                s = sg[i, j]
                for k in range(nb):
                    out[i, b0 + k] += s * z[i, j, k]
    elif kind == BY_INPUTS:
        for j in range(n_cols):
            for k in range(nb):
                out[b0 + k, j] = 0.0
        for i in range(m_rows):
            for j in range(n_cols):
                s = sg[i, j]
                for k in range(nb):
                    out[b0 + k, j] += s * z[i, j, k]
        for j in range(n_cols):
            for k in range(nb):
                out[b0 + k, j] *= scale[k]
    else:
        for i in range(m_rows):
            for j in range(n_cols):
                s = sg[i, j]
                for k in range(nb):
                    out[i * n_cols + j, b0 + k] = s * z[i, j, k]


@njit
def solve_blocks(kind, g, v, cell_i, cell_j, wires, rtol, max_iter, block, out):
    """The block driver: every right-hand side of one ``kind``, ``block`` at a time.

    ``g`` (M, N) conductances; ``v`` (B, M) row voltages (:data:`BY_INPUTS`, else unused),
    ``cell_i, cell_j`` cell indices (:data:`BY_CELLS`, else unused); ``out`` as
    :func:`_gather` fills it. Each block starts CG from the ideal-wire solution; one
    workspace serves every block. Returns (max residual, max iterations).
    """
    m_rows, n_cols = g.shape
    if kind == BY_COLUMNS:
        n_rhs = n_cols
    elif kind == BY_INPUTS:
        n_rhs = v.shape[0]
    else:
        n_rhs = cell_i.shape[0]
    sg = np.sqrt(g)
    worst = 0.0
    most = 0
    buf = np.empty(5 * m_rows * n_cols * max(min(block, n_rhs), 1))
    scale = np.empty(max(min(block, n_rhs), 1))
    for b0 in range(0, n_rhs, block):
        nb = min(block, n_rhs - b0)
        rhs, z, r, p, q = _views(buf, m_rows, n_cols, nb)
        _right_hand_sides(kind, sg, v, cell_i, cell_j, b0, rhs, scale)
        z[:] = rhs  # warm start: the ideal-wire solution
        rel, its = cg_block(sg, rhs, wires, rtol, max_iter, z, r, p, q)
        for k in range(nb):
            worst = max(worst, rel[k])
        most = max(most, its)
        _gather(kind, sg, z, b0, scale, out)
    return worst, most


@njit
def transfer_by_columns(g, wires, rtol, max_iter, block, t_out):
    """Transfer matrix by reciprocity: one solve per column (use when N <= M).

    Right-hand side of column c is ``sqrt(G[:, c])`` in column c, zero elsewhere;
    ``T[i, c] = sum_j sqrt(G[i, j]) z[i, j]``. Returns (max residual, max iterations).
    """
    none = np.empty(0, dtype=np.int64)
    return solve_blocks(BY_COLUMNS, g, np.empty((0, g.shape[0])), none, none, wires, rtol,
                        max_iter, block, t_out)


@njit
def solve_inputs(g, v, wires, rtol, max_iter, block, i_out):
    """Column currents for a batch of row-voltage vectors ``v`` (B, M) -> ``i_out`` (B, N).

    Also the route to the transfer matrix when M < N (drive the rows with unit inputs).
    Returns (max residual, max iterations).
    """
    none = np.empty(0, dtype=np.int64)
    return solve_blocks(BY_INPUTS, g, v, none, none, wires, rtol, max_iter, block, i_out)


@njit
def cell_responses(g, cell_i, cell_j, wires, rtol, max_iter, block, u_out):
    """Cell currents ``u[:, :, c] = K^{-1} e_c`` for unit voltage across each listed cell.

    ``K = diag(1/G) + A`` is the unscaled cell system; column c of ``u_out`` (shape
    (M, N, n_cells), C-contiguous) is the response to a unit source in series with cell
    ``(cell_i[c], cell_j[c])``. Used by the low-rank (Woodbury) update of T.
    Returns (max residual, max iterations).
    """
    m_rows, n_cols = g.shape
    return solve_blocks(BY_CELLS, g, np.empty((0, m_rows)), cell_i, cell_j, wires, rtol, max_iter,
                        block, u_out.reshape((m_rows * n_cols, u_out.shape[2])))


@njit
def transfer(g, wires, rtol, max_iter, block, t_out):
    """Transfer matrix ``t_out`` (M, N) by the cheaper side: N column solves when N <= M
    (reciprocity), else M row solves with unit inputs. Returns (max residual, max
    iterations)."""
    m_rows, n_cols = g.shape
    if n_cols <= m_rows:
        return transfer_by_columns(g, wires, rtol, max_iter, block, t_out)
    return solve_inputs(g, np.eye(m_rows), wires, rtol, max_iter, block, t_out)

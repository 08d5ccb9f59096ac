"""Numba kernels of the exact rank-k update of a transfer matrix: arrays and scalars only.

A die that changes k cells ``c_1..c_k`` of an array from ``G0`` to ``G1`` changes k
diagonal entries of the cell system ``K = diag(1/G) + A`` (docs/circuit.md section 2):
``K1 = K0 + P E P^T`` with ``E = diag(1/G1_c - 1/G0_c)``. With the fault-free inverse
``W = K0^-1`` (MN x MN) and its row / column responses ``Rt = W B`` (MN x M),
``Cr = W C`` (MN x N), the Woodbury identity gives, exactly,

    T1 = T0 - Rt[c, :]^T S^-1 Cr[c, :]          S = E^-1 + W[c, c]     (k x k, symmetric)

``E^-1 = G0 G1 / (G0 - G1)`` is finite for ``G1 = 0`` (an open cell), so only ``G0 > 0``
is needed at a changed cell. The diagonal of ``S`` is formed as
``(W_cc - G0_c) + G0_c^2 / (G0_c - G1_c)`` from the precomputed ``wdev = diag(W) - G0``
(``-G0 < wdev <= 0``): where G1 > G0 both terms are negative, where G1 < G0 the second
is at least G0, so nothing cancels (``W_cc + E^-1`` itself would lose log10(G1 / G0) digits). ``S`` may be
indefinite (``E < 0`` where a cell gets more conductive), hence LU with partial pivoting,
after a symmetric power-of-two scaling to a unit diagonal: with extreme ON/OFF ratios the
diagonal spans 12 decades, and unscaled LU would lose up to 4 digits (measured: 4e-11
instead of 2e-13 of max |T| with cells of 1 nS to 1 mS).

Cells are flat indices ``i * N + j``. A listed cell whose new value equals ``G0`` is
skipped (``E^-1`` would be infinite; it changes nothing). Tiers (STYLE.md): the serial
kernel :func:`update_one`, the ``prange`` driver :func:`update_chunk` writing into a
preallocated output, and the validating wrappers in :mod:`yieldmc.engine.lowrank`.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from yieldmc._numba import njit

#: Status codes a kernel returns per die.
STATUS_OK = 0
#: A zero or non-finite pivot in the k x k solve (cannot happen for G0 > 0, G1 >= 0).
STATUS_SINGULAR = 1


@njit
def _lu_solve_inplace(lu, x, k, n_rhs):
    """Solve ``S X = B`` for the leading k x k block of ``lu`` (holding S, destroyed) and
    the leading k x n_rhs block of ``x`` (holding B, overwritten by X). LU with partial
    pivoting, the row swaps and eliminations applied to ``x`` as they happen (no pivot
    vector is kept). Returns a status code."""
    for col in range(k):
        p = col
        big = abs(lu[col, col])
        for r in range(col + 1, k):
            a = abs(lu[r, col])
            if a > big:
                big = a
                p = r
        if not (big > 0.0 and big < np.inf):
            return STATUS_SINGULAR
        if p != col:
            for q in range(k):
                t = lu[col, q]
                lu[col, q] = lu[p, q]
                lu[p, q] = t
            for n in range(n_rhs):
                t = x[col, n]
                x[col, n] = x[p, n]
                x[p, n] = t
        d = lu[col, col]
        for r in range(col + 1, k):
            f = lu[r, col] / d
            lu[r, col] = f
            if f != 0.0:
                for q in range(col + 1, k):
                    lu[r, q] -= f * lu[col, q]
                for n in range(n_rhs):
                    x[r, n] -= f * x[col, n]
    for r in range(k - 1, -1, -1):
        for q in range(r + 1, k):
            f = lu[r, q]
            if f != 0.0:
                for n in range(n_rhs):
                    x[r, n] -= f * x[q, n]
        d = lu[r, r]
        for n in range(n_rhs):
            x[r, n] /= d
    return STATUS_OK


@njit
def scratch(kmax, m_rows, n_cols):
    """Work arrays of :func:`update_one` for up to ``kmax`` changed cells:
    ``(sel, lu, x, scale)``. Allocate once per thread and reuse for every die."""
    kmax = max(kmax, 1)
    return (np.empty(kmax, dtype=np.int64), np.empty((kmax, kmax)),
            np.empty((kmax, min(m_rows, n_cols))), np.empty(kmax))


@njit
def update_one(w, wdev, rt, cr, t0, g0, ideal, cells, g_new, sel, lu, x, scale, out):
    """Transfer matrix of one die: ``out = T0 - Rt_c^T S^-1 Cr_c`` (trusts its inputs).

    Parameters
    ----------
    w, wdev, rt, cr, t0, g0 : arrays
        The fault-free cache: ``W`` (MN, MN), ``diag(W) - G0`` (MN,), ``Rt`` (MN, M),
        ``Cr`` (MN, N), ``T0`` (M, N), ``G0`` flat (MN,).
    ideal : bool
        All resistances are 0: ``T1`` is ``G1`` itself, written exactly.
    cells, g_new : arrays (k,)
        Distinct flat cell indices and their new conductances (S); ``G0 > 0`` at every
        cell whose value changes.
    sel, lu, x, scale : arrays
        Scratch of at least k / (k, k) / (k, min(M, N)) / k entries, contents ignored
        (:func:`scratch`).
    out : array (M, N)
        Receives ``T1``.

    Returns
    -------
    int
        :data:`STATUS_OK` or :data:`STATUS_SINGULAR` (``out`` is then not meaningful).
    """
    m_rows, n_cols = t0.shape
    for i in range(m_rows):
        for n in range(n_cols):
            out[i, n] = t0[i, n]
    k = 0
    for a in range(cells.shape[0]):
        if g_new[a] != g0[cells[a]]:
            sel[k] = a
            k += 1
    if k == 0:
        return STATUS_OK
    if ideal:
        for p in range(k):
            c = cells[sel[p]]
            out[c // n_cols, c % n_cols] = g_new[sel[p]]
        return STATUS_OK
    by_rows = m_rows < n_cols  # solve with the smaller of Rt_c (k x M) and Cr_c (k x N)
    n_rhs = m_rows if by_rows else n_cols
    for p in range(k):
        cp = cells[sel[p]]
        for q in range(k):
            lu[p, q] = w[cp, cells[sel[q]]]
        g0c = g0[cp]
        lu[p, p] = wdev[cp] + g0c * g0c / (g0c - g_new[sel[p]])
        if by_rows:
            for i in range(m_rows):
                x[p, i] = rt[cp, i]
        else:
            for n in range(n_cols):
                x[p, n] = cr[cp, n]
    # Equilibrate: S_pp ranges from G0^2 / G1 (a cell of 1 nS turned ON at 1 mS: 1e-15 S)
    # to G0 (1e-3 S), and LU's backward error is relative to max |S|. Scale row and column
    # p by a power of two near |S_pp|^-1/2 (exact): unit diagonal. S_pp != 0 for G0 > 0.
    for p in range(k):
        scale[p] = math.ldexp(1.0, -(math.frexp(lu[p, p])[1] // 2))
    for p in range(k):
        for q in range(k):
            lu[p, q] *= scale[p] * scale[q]
        for n in range(n_rhs):
            x[p, n] *= scale[p]
    status = _lu_solve_inplace(lu, x, k, n_rhs)
    if status != STATUS_OK:
        return status
    for p in range(k):
        for n in range(n_rhs):
            x[p, n] *= scale[p]
    # T1 = T0 - Rt_c^T (S^-1 Cr_c) = T0 - (S^-1 Rt_c)^T Cr_c   (S is symmetric)
    for p in range(k):
        cp = cells[sel[p]]
        if by_rows:
            for i in range(m_rows):
                r = x[p, i]
                for n in range(n_cols):
                    out[i, n] -= r * cr[cp, n]
        else:
            for i in range(m_rows):
                r = rt[cp, i]
                for n in range(n_cols):
                    out[i, n] -= r * x[p, n]
    return STATUS_OK


@njit(parallel=True)
def update_chunk(w, wdev, rt, cr, t0, g0, ideal, offsets, cells, g_new, n_blocks, out, status):
    """Transfer matrices of many dies of one array, in parallel over dies.

    Die ``d`` changes ``cells[offsets[d]:offsets[d+1]]`` to ``g_new[...]`` (CSR layout);
    its ``T1`` goes to ``out[d]`` and its status code to ``status[d]``. The dies are split
    into ``n_blocks`` contiguous blocks run by ``prange``; each block allocates its scratch
    once, for its largest k. A die's result depends only on its own changes: the same bits
    for any ``n_blocks``, thread count or split of the dies across calls.
    """
    n_dies = offsets.shape[0] - 1
    m_rows, n_cols = t0.shape
    nb = max(1, min(n_blocks, n_dies))
    for b in numba.prange(nb):
        d0 = (b * n_dies) // nb
        d1 = ((b + 1) * n_dies) // nb
        kmax = 1
        for d in range(d0, d1):
            kmax = max(kmax, offsets[d + 1] - offsets[d])
        sel, lu, x, scale = scratch(kmax, m_rows, n_cols)
        for d in range(d0, d1):
            a0 = offsets[d]
            a1 = offsets[d + 1]
            status[d] = update_one(w, wdev, rt, cr, t0, g0, ideal, cells[a0:a1], g_new[a0:a1],
                                   sel, lu, x, scale, out[d])

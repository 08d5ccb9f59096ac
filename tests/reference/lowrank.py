"""Twins of the rank-k update (``yieldmc/engine/_lowrank.py`` via ``engine/lowrank.py``),
compared in ``tests/test_engine_lowrank.py`` and ``tests/test_engine_chunk.py``.

The oracle of a faulty array's transfer matrix is :func:`yieldmc.circuit.solve_reference`
(the scipy sparse direct solve of the nodal system) of the faulty conductances themselves:
it knows nothing of ``K0``, ``W`` or Woodbury.
"""

from __future__ import annotations

import numpy as np

from yieldmc.circuit import solve_reference


def transfer_reference(G: np.ndarray, wires) -> np.ndarray:
    """The transfer matrix ``T`` (M x N) of conductances ``G``: the currents of the M unit
    inputs, each solved directly.

    Mirrors ``lowrank_transfer`` / ``lowrank_transfers`` (the rank-k update of a cached
    ``T0``) and the cache's ``T0`` itself. Obviously correct: row ``i`` of ``T`` is by
    definition the column currents with 1 V on row ``i`` and 0 V elsewhere, which
    ``solve_reference`` computes by a direct sparse solve. ``wires`` is
    ``(r_row, r_col, r_driver, r_sense)`` in ohm.
    """
    r_row, r_col, r_driver, r_sense = wires
    return solve_reference(G, np.eye(G.shape[0]), r_row, r_col, r_driver=r_driver, r_sense=r_sense)


def wdev_first_order(G0: np.ndarray, r: float) -> np.ndarray:
    """``diag(W) - G0`` to first order in the wire resistance ``r`` (rows and columns alike,
    no periphery): ``-G0^2 a_cc`` with ``a_cc = r (j + 1) + r (M - i)``, flat over cells.

    Mirrors the cache's ``wdev`` (``LowRankCache.from_conductances``), which must hold the
    deviation without cancellation. Obviously correct: ``W = (K0)^-1`` with
    ``K0 = diag(1 / G0) + A``; expanding ``(diag(1/G0) + A)^-1`` in ``A`` gives
    ``diag(G0) - G0 A G0 + O(A^2)``, whose diagonal deviation is ``-G0^2 A_cc``, and
    ``A_cc`` is the wire resistance from the driver to cell ``(i, j)`` plus that from it to
    the sense end.
    """
    m, n = G0.shape
    i, j = np.divmod(np.arange(m * n), n)
    return -G0.ravel() ** 2 * r * (j + 1 + m - i)


def dense_solve(S: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``S^-1 B`` by numpy (LAPACK's partially pivoted LU).

    Mirrors ``_lowrank._lu_solve_inplace``, the k x k solve of the update, on symmetric
    indefinite systems. Obviously correct: the library's solve.
    """
    return np.linalg.solve(S, B)


def update_from_scratch(T0: np.ndarray, Rt: np.ndarray, cells: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``T1 = T0 - Rt_c^T x[:k]`` from the solve ``x = S^-1 Cr_c`` that
    ``_lowrank.update_one`` leaves in its scratch (M >= N; ``k`` changed ``cells``).

    Mirrors the chunk engine's layer-0 correction (``engine/_chunk.py`` reads that scratch)
    and ``update_one``'s own ``T1``. Obviously correct: the Woodbury identity's last step,
    written as one dense product.
    """
    return T0 - Rt[cells].T @ x[:cells.size, :T0.shape[1]]

"""Exact transfer matrices of faulty arrays by a rank-k update of a dense fault-free inverse.

For an array small enough (the ``paper`` arrays: at most 64 x 16 = 1024 cells), the
fault-free cell system ``K0 = diag(1/G0) + A`` (docs/circuit.md section 2) is inverted
once, densely, and kept in a :class:`LowRankCache`. A die that changes k cells then gets
its exact transfer matrix from a k x k solve and an M x k x N product
(:mod:`yieldmc.engine._lowrank`), with no iterative solve::

    from yieldmc.engine.lowrank import LowRankCache, lowrank_transfer, lowrank_transfers
    cache = LowRankCache.from_conductances(G0, r_row=1.0, r_col=1.0)   # once per array
    T1 = lowrank_transfer(cache, G1)                                    # one die
    T = lowrank_transfers(cache, offsets, cells, g_new)                 # many dies (CSR)

Above :func:`max_rank` changed cells a fresh CG solve (:func:`yieldmc.circuit.transfer_matrix`)
is cheaper (measured, ``benchmarks/bench_lowrank.py``).

How ``W = K0^-1`` is built: in the scaled form ``H = I + D^1/2 A D^1/2`` (``D = diag(G0)``,
symmetric positive definite with eigenvalues >= 1) ``K0^-1 = D^1/2 H^-1 D^1/2``. ``A`` is
formed densely from the min-kernels of docs/circuit.md, ``H`` is Cholesky-factorised by
scipy and inverted. This also holds for cells with ``G0 = 0`` (their rows of ``W`` are 0)
and for ideal wires (``H = I``, ``W = D``; the update then writes ``G1`` exactly).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import scipy.linalg

from yieldmc.circuit.resistances import Resistances
from yieldmc.circuit.validate import check_conductances, check_network
from yieldmc.engine import _lowrank
from yieldmc.errors import ConfigError, SolverError

#: Largest array (cells) a cache is built for by default: ``W`` takes 8 (MN)^2 bytes
#: (8 MiB at 64 x 16, 32 MiB at 2048 cells) and its build O((MN)^3) time (0.1 s at 1024
#: cells, about 1 s at 2048). Larger arrays use CG (DESIGN.md section 11).
MAX_CACHE_CELLS = 2048

#: Measured crossover (changed cells k) above which a fresh CG transfer matrix is cheaper
#: than the rank-k update, per array shape (M, N); see :func:`max_rank`.
#: ``python benchmarks/bench_lowrank.py`` (one core of the 2-core dev machine, Xeon, load
#: 2.6-2.8, float64, the ``paper`` preset's G0 and 1 ohm wires, exactly k cells stuck at
#: g_on / g_off); update = the compiled kernel per die, CG = the compiled CG kernel; three
#: runs, the lowest crossover kept:
#:
#:   shape   update us at k = 2 / 20 / 50 / 100   CG us      crossover k   k / s^(1/3)
#:   64x16   3.4 / 14 / 57 / 278                  377-520    113 114 116   4.45
#:   8x16    0.7 / 4.4 / 33 / 216                 28-33      48 49 50      4.76
#:   8x20    0.8 / 4.7 / 36 / 229                 38-40      51 52 53      4.70
#:
#: (s = min(M, N) M N; the update grows as k^3 near the crossover, CG as s.) More wire
#: resistance or periphery costs CG more iterations, so these are conservative there.
MEASURED_MAX_RANK: dict[tuple[int, int], int] = {(64, 16): 113, (8, 16): 48, (8, 20): 51}

#: Cost model for shapes not measured: ``k* = MAX_RANK_ALPHA (min(M, N) M N)^(1/3)``, the
#: smallest ratio measured above, rounded down (k^3 update work against s CG work).
MAX_RANK_ALPHA = 4.4


def max_rank(m_rows: int, n_cols: int) -> int:
    """Most changed cells for which the rank-k update beats a fresh CG solve.

    Measured shapes use :data:`MEASURED_MAX_RANK`; others the cost model
    ``MAX_RANK_ALPHA * (min(M, N) M N)^(1/3)``. Never more than ``M * N``.

    Examples
    --------
    >>> max_rank(64, 16), max_rank(8, 16), max_rank(32, 32)
    (113, 48, 140)
    """
    if m_rows < 1 or n_cols < 1:
        raise ConfigError(f"array shape must be positive, got {m_rows}x{n_cols}")
    k = MEASURED_MAX_RANK.get((int(m_rows), int(n_cols)))
    if k is None:
        s = min(m_rows, n_cols) * m_rows * n_cols
        k = int(MAX_RANK_ALPHA * s ** (1 / 3) + 1e-9)
    return int(max(1, min(k, m_rows * n_cols)))


@dataclass(frozen=True, eq=False)
class LowRankCache:
    """The fault-free system of one array, in the form a rank-k update needs.

    Build it with :meth:`from_conductances`; the arrays are read-only.

    Attributes
    ----------
    G0 : numpy.ndarray, shape (M, N)
        Fault-free conductances (S).
    W : numpy.ndarray, shape (M*N, M*N)
        ``K0^-1`` (S): cell currents per volt across each cell; flat cell index ``i*N + j``.
    wdev : numpy.ndarray, shape (M*N,)
        ``diag(W) - G0`` (S, <= 0), computed without cancellation.
    Rt : numpy.ndarray, shape (M*N, M)
        ``K0^-1 B``: ``Rt[c, i]`` is cell c's current per volt on row i (equivalently, by
        reciprocity, the current drawn from row i's source per volt in series with cell c).
    Cr : numpy.ndarray, shape (M*N, N)
        ``K0^-1 C``: ``Cr[c, j]`` is cell c's current per unit source in every cell of column j
        (equivalently the current into column j per volt across cell c).
    T0 : numpy.ndarray, shape (M, N)
        Fault-free transfer matrix (A/V) ``B^T K0^-1 C``, from the dense inverse.
    r_row, r_col, r_driver, r_sense : float
        Resistances (ohm) the cache was built for.
    """

    G0: np.ndarray
    W: np.ndarray
    wdev: np.ndarray
    Rt: np.ndarray
    Cr: np.ndarray
    T0: np.ndarray
    r_row: float
    r_col: float
    r_driver: float
    r_sense: float

    @classmethod
    def from_conductances(cls, G0, r_row: float = 1.0, r_col: float = 1.0, *,
                          r_driver: float = 0.0, r_sense: float = 0.0,
                          max_cells: int = MAX_CACHE_CELLS) -> LowRankCache:
        """Invert the fault-free cell system of ``G0`` once (dense Cholesky).

        Parameters
        ----------
        G0 : array_like, shape (M, N)
            Fault-free conductances (S), finite and >= 0 (cells at 0 S cannot be updated).
        r_row, r_col, r_driver, r_sense : float
            Resistances (ohm), as for :func:`yieldmc.circuit.transfer_matrix`.
        max_cells : int
            Refuse arrays with more cells (memory grows as ``8 (MN)^2`` bytes).

        Raises
        ------
        ConfigError
            Invalid conductances or resistances, or an array above ``max_cells``.
        """
        G0 = check_conductances(G0)
        wires = check_network(r_row, r_col, r_driver, r_sense)
        m_rows, n_cols = G0.shape
        n = m_rows * n_cols
        if n > max_cells:
            raise ConfigError(
                f"a {m_rows}x{n_cols} array has {n} cells, above max_cells = {max_cells}: its "
                f"dense inverse would take {8 * n * n / 2**20:.0f} MiB; use the CG solver")
        sg = np.sqrt(G0).ravel()
        sas = wire_operator(m_rows, n_cols, *wires)
        sas *= sg[:, None]
        sas *= sg[None, :]  # D^1/2 A D^1/2
        H = sas + np.eye(n)
        hinv = scipy.linalg.cho_solve(scipy.linalg.cho_factor(H, lower=True), np.eye(n))
        hinv = 0.5 * (hinv + hinv.T)
        W = hinv * np.outer(sg, sg)  # exactly symmetric: s_c s_d == s_d s_c
        # diag(W) - G0 = G0 (H^-1 - I)_cc = -G0 (H^-1 (H - I))_cc: no cancellation.
        wdev = -G0.ravel() * np.einsum("cd,dc->c", hinv, sas)
        W3 = W.reshape(n, m_rows, n_cols)
        Rt = np.ascontiguousarray(W3.sum(axis=2))
        Cr = np.ascontiguousarray(W3.sum(axis=1))
        if wires.ideal:
            T0 = G0.copy()
        else:
            T0 = np.ascontiguousarray(Cr.reshape(m_rows, n_cols, n_cols).sum(axis=1))
        if not (np.all(np.isfinite(W)) and np.all(np.isfinite(T0))):
            raise SolverError("the dense fault-free inverse is not finite; use the CG solver")
        arrays = (G0.copy(), W, wdev, Rt, Cr, T0)
        for a in arrays:
            a.setflags(write=False)
        return cls(*arrays, *wires)

    def __repr__(self) -> str:
        m_rows, n_cols = self.shape
        return (f"LowRankCache({m_rows}x{n_cols}, r_row={self.r_row:g}, r_col={self.r_col:g}, "
                f"r_driver={self.r_driver:g}, r_sense={self.r_sense:g}, "
                f"{self.nbytes / 2**20:.2f} MiB)")

    @property
    def shape(self) -> tuple[int, int]:
        """``(M, N)`` of the array."""
        return self.G0.shape

    @property
    def wires(self) -> Resistances:
        """The resistances the cache was built for."""
        return Resistances.of(self)

    @property
    def ideal(self) -> bool:
        """All resistances are 0: a die's transfer matrix is its conductances."""
        return self.wires.ideal

    @property
    def nbytes(self) -> int:
        """Memory held by the cache's arrays (bytes)."""
        return sum(a.nbytes for a in (self.G0, self.W, self.wdev, self.Rt, self.Cr, self.T0))

    def kernel_args(self) -> tuple:
        """The cache as the kernels of :mod:`yieldmc.engine._lowrank` take it:
        ``(W, wdev, Rt, Cr, T0, G0 flat, ideal)``."""
        return (self.W, self.wdev, self.Rt, self.Cr, self.T0, self.G0.reshape(-1), self.ideal)


def wire_operator(m_rows: int, n_cols: int, r_row: float, r_col: float,
                  r_driver: float = 0.0, r_sense: float = 0.0) -> np.ndarray:
    """The wire-resistance operator ``A`` (ohm) as a dense (MN, MN) matrix, flat index ``i*N + j``.

    ``A[(i, j), (i', j')] = [i = i'] (r_driver + r_row (min(j, j') + 1))
    + [j = j'] (r_sense + r_col (M - max(i, i')))`` (docs/circuit.md section 2).
    """
    k_row = r_driver + r_row * (np.minimum.outer(np.arange(n_cols), np.arange(n_cols)) + 1.0)
    k_col = r_sense + r_col * (m_rows - np.maximum.outer(np.arange(m_rows), np.arange(m_rows)))
    return np.kron(np.eye(m_rows), k_row) + np.kron(k_col, np.eye(n_cols))


def changes(cache: LowRankCache, G1) -> tuple[np.ndarray, np.ndarray]:
    """The cells where ``G1`` differs from the cache's ``G0``: ``(cells, g_new)``, sorted."""
    G1 = check_conductances(G1)
    if G1.shape != cache.shape:
        raise ConfigError(f"G1 has shape {G1.shape}, the cache's array is {cache.shape}")
    cells = np.flatnonzero(G1 != cache.G0)
    return cells, G1.reshape(-1)[cells]


def pack_changes(cells_list, g_list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-die lists of changed cells and new conductances -> CSR ``(offsets, cells, g_new)``."""
    cells_list = [np.asarray(c, dtype=np.int64).reshape(-1) for c in cells_list]
    g_list = [np.asarray(g, dtype=np.float64).reshape(-1) for g in g_list]
    if len(cells_list) != len(g_list):
        raise ConfigError(f"{len(cells_list)} cell lists but {len(g_list)} conductance lists")
    for d, (c, g) in enumerate(zip(cells_list, g_list, strict=True)):
        if c.size != g.size:
            raise ConfigError(f"die {d}: {c.size} cells but {g.size} new conductances")
    offsets = np.zeros(len(cells_list) + 1, dtype=np.int64)
    np.cumsum([c.size for c in cells_list], out=offsets[1:])
    cat = lambda parts, dt: np.concatenate(parts) if parts else np.empty(0, dt)  # noqa: E731
    return offsets, cat(cells_list, np.int64), cat(g_list, np.float64)


def _check_changes(cache: LowRankCache, offsets, cells, g_new):
    """Validate CSR changes against the cache; return them as contiguous int64/float64."""
    offsets = np.ascontiguousarray(offsets)
    cells = np.ascontiguousarray(cells)
    g_new = np.ascontiguousarray(g_new, dtype=np.float64)
    if offsets.ndim != 1 or offsets.size < 1 or offsets.dtype.kind not in "iu":
        raise ConfigError("offsets must be a 1-D integer array of n_dies + 1 entries")
    if cells.ndim != 1 or (cells.size and cells.dtype.kind not in "iu"):
        raise ConfigError("cells must be a 1-D integer array of flat cell indices i * N + j")
    if g_new.shape != cells.shape:
        raise ConfigError(f"g_new has shape {g_new.shape}, cells {cells.shape}: one value per cell")
    offsets = offsets.astype(np.int64, copy=False)
    cells = cells.astype(np.int64, copy=False)
    if offsets[0] != 0 or offsets[-1] != cells.size or np.any(np.diff(offsets) < 0):
        raise ConfigError(f"offsets must rise from 0 to len(cells) = {cells.size}")
    n = cache.G0.size
    if cells.size:
        if cells.min() < 0 or cells.max() >= n:
            raise ConfigError(f"cell indices must lie in [0, {n}) for a {cache.shape} array")
        if not np.all(np.isfinite(g_new)) or np.any(g_new < 0):
            raise ConfigError("new conductances must be finite and >= 0 S")
        die = np.repeat(np.arange(offsets.size - 1), np.diff(offsets))
        if np.unique(die * n + cells).size != cells.size:
            raise ConfigError("a die lists the same cell twice")
        g0 = cache.G0.reshape(-1)[cells]
        bad = (g0 <= 0) & (g_new != g0)
        if np.any(bad):
            c = int(cells[np.argmax(bad)])
            raise ConfigError(
                f"cell ({c // cache.shape[1]}, {c % cache.shape[1]}) changes from 0 S: the rank-k "
                "update needs G0 > 0 at every changed cell; use the CG solver")
    return offsets, cells, g_new


def _raise_status(status, where: str) -> None:
    if status != _lowrank.STATUS_OK:
        raise SolverError(f"{where}: the k x k update system is singular or not finite")


def lowrank_transfer(cache: LowRankCache, G1) -> np.ndarray:
    """Exact transfer matrix (A/V) of conductances ``G1`` by a rank-k update of the cache.

    k is the number of cells where ``G1`` differs from ``cache.G0``; each must have
    ``G0 > 0`` (``G1 = 0``, an open cell, is allowed). Cost O(k^3 + k M N).

    Parameters
    ----------
    cache : LowRankCache
    G1 : array_like, shape (M, N)
        The die's conductances (S), finite and >= 0.

    Returns
    -------
    numpy.ndarray, shape (M, N)
        ``T1`` such that ``I = v @ T1``; a copy of ``cache.T0`` when nothing changed and
        ``G1`` itself (exactly) when all resistances are 0.

    Raises
    ------
    ConfigError
        Shape mismatch, invalid conductances, or a changed cell with ``G0 = 0``.

    Examples
    --------
    >>> import numpy as np
    >>> from yieldmc.circuit import transfer_matrix
    >>> G0 = np.full((4, 3), 1e-5); G1 = G0.copy(); G1[1, 2] = 1e-4
    >>> cache = LowRankCache.from_conductances(G0, 1.0, 1.0)
    >>> T1 = lowrank_transfer(cache, G1)
    >>> T_cg = transfer_matrix(G1, 1.0, 1.0)
    >>> bool(np.abs(T1 - T_cg).max() < 1e-11 * np.abs(T_cg).max())
    True
    """
    cells, g_new = changes(cache, G1)  # distinct, in range, finite and >= 0 by construction
    if np.any(cache.G0.reshape(-1)[cells] <= 0):
        _check_changes(cache, np.array([0, cells.size]), cells, g_new)  # raises, naming the cell
    out = np.empty(cache.shape)
    status = _lowrank.update_one(*cache.kernel_args(), cells, g_new,
                                 *_lowrank.scratch(cells.size, *cache.shape), out)
    _raise_status(status, "lowrank_transfer")
    return out


def lowrank_transfers(cache: LowRankCache, offsets, cells, g_new, *, out=None,
                      n_blocks: int | None = None) -> np.ndarray:
    """Exact transfer matrices of many dies of one array (CSR changes), in parallel.

    Die ``d`` changes the flat cells ``cells[offsets[d]:offsets[d+1]]`` (index ``i*N + j``,
    distinct within a die) to ``g_new[offsets[d]:offsets[d+1]]`` (S). Dies are run on
    numba's threads (``numba.set_num_threads``); each die's result is bit for bit that
    of :func:`lowrank_transfer`, whatever the threads or the split into calls.

    Parameters
    ----------
    cache : LowRankCache
    offsets : array_like of int, shape (n_dies + 1,)
    cells : array_like of int, shape (total,)
    g_new : array_like of float, shape (total,)
    out : numpy.ndarray, shape (n_dies, M, N), optional
        Preallocated C-contiguous float64 output.
    n_blocks : int, optional
        Blocks of dies for ``prange`` (default: numba's thread count).

    Returns
    -------
    numpy.ndarray, shape (n_dies, M, N)
    """
    offsets, cells, g_new = _check_changes(cache, offsets, cells, g_new)
    n_dies = offsets.size - 1
    shape = (n_dies, *cache.shape)
    if out is None:
        out = np.empty(shape)
    elif (not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != np.float64
          or not out.flags.c_contiguous or not out.flags.writeable):
        raise ConfigError(f"out must be a writeable C-contiguous float64 array of shape {shape}")
    if n_dies == 0:
        return out
    status = np.zeros(n_dies, dtype=np.int64)
    blocks = numba.get_num_threads() if n_blocks is None else int(n_blocks)
    if blocks < 1:
        raise ConfigError(f"n_blocks must be >= 1, got {n_blocks!r}")
    _lowrank.update_chunk(*cache.kernel_args(), offsets, cells, g_new, blocks, out, status)
    bad = np.flatnonzero(status != _lowrank.STATUS_OK)
    if bad.size:
        _raise_status(status[bad[0]], f"lowrank_transfers, die {int(bad[0])}")
    return out


def cache_memory_bytes(m_rows: int, n_cols: int) -> int:
    """Bytes a :class:`LowRankCache` of an M x N array holds, ``8 n (n + M + N + 3)`` with
    ``n = M N`` (``W``, ``Rt``, ``Cr``, and ``G0``, ``wdev``, ``T0``): 8.6 MiB at 64 x 16."""
    n = m_rows * n_cols
    return 8 * n * (n + m_rows + n_cols + 3)


__all__ = ["MAX_CACHE_CELLS", "MAX_RANK_ALPHA", "MEASURED_MAX_RANK", "LowRankCache", "cache_memory_bytes", "changes",
           "lowrank_transfer", "lowrank_transfers", "max_rank", "pack_changes", "wire_operator"]

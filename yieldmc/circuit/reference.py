"""The test oracle: the crossbar's modified nodal analysis, solved directly by scipy.

Slow and obviously correct. Every element of the circuit convention of DESIGN.md
section 4 is stamped one by one; a zero resistance is stamped as a 0 V voltage source
(an extra branch-current unknown), exactly as SPICE does, so ideal wires are exact.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from yieldmc.circuit.validate import check_inputs, check_network


class _Stamper:
    """Collects MNA stamps as COO triplets, vectorised over element arrays. Node -1 is ground."""

    def __init__(self, n_nodes: int) -> None:
        self.n_nodes = n_nodes
        self.n_branches = 0
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []

    def _add(self, r, c, v) -> None:
        r, c, v = np.broadcast_arrays(np.asarray(r), np.asarray(c), np.asarray(v, float))
        keep = (r >= 0) & (c >= 0)
        self.rows.append(r[keep].ravel())
        self.cols.append(c[keep].ravel())
        self.vals.append(v[keep].ravel())

    def conductance(self, a, b, g) -> None:
        """Stamp conductances ``g`` between node arrays ``a`` and ``b``."""
        g = np.asarray(g, dtype=float)
        self._add(a, a, g)
        self._add(b, b, g)
        self._add(a, b, -g)
        self._add(b, a, -g)

    def voltage_sources(self, plus, minus) -> np.ndarray:
        """Voltage sources ``V(plus) - V(minus) = e``; returns their branch unknowns."""
        plus, minus = np.broadcast_arrays(np.asarray(plus).ravel(), np.asarray(minus).ravel())
        k = self.n_nodes + self.n_branches + np.arange(plus.size)
        self.n_branches += plus.size
        one = np.ones(plus.size)
        self._add(plus, k, one)
        self._add(k, plus, one)
        self._add(minus, k, -one)
        self._add(k, minus, -one)
        return k

    def resistors(self, a, b, resistance: float) -> None:
        """Equal resistors between node arrays; 0 ohm is stamped as a 0 V source."""
        if resistance > 0.0:
            self.conductance(a, b, 1.0 / resistance)
        else:
            self.voltage_sources(a, b)

    def matrix(self) -> sp.csc_matrix:
        n = self.n_nodes + self.n_branches
        return sp.coo_matrix(
            (np.concatenate(self.vals), (np.concatenate(self.rows), np.concatenate(self.cols))),
            shape=(n, n),
        ).tocsc()


def assemble_mna(G: np.ndarray, r_row: float, r_col: float, r_driver: float, r_sense: float):
    """Modified-nodal-analysis system of a crossbar: its matrix and how inputs drive it.

    Parameters
    ----------
    G : numpy.ndarray, shape (M, N)
        Cell conductances (S).
    r_row, r_col, r_driver, r_sense : float
        Wire segment, driver and sense resistances (ohm), as in :func:`solve_reference`.

    Returns
    -------
    A : scipy.sparse.csc_matrix
        The MNA matrix (row-wire nodes, column-wire nodes, then branch currents).
    drive : scipy.sparse.csr_matrix, shape (unknowns, M)
        Maps row input voltages to the right-hand side: ``b = drive @ v``.
    row_node, col_node : numpy.ndarray of int, shape (M, N)
        Index of each cell's row-wire and column-wire node in the unknowns.
    """
    m_rows, n_cols = G.shape
    row_node = np.arange(m_rows * n_cols).reshape(m_rows, n_cols)
    col_node = row_node + m_rows * n_cols
    st = _Stamper(2 * m_rows * n_cols)
    st.conductance(row_node, col_node, G)  # the cells (G = 0 stamps zeros: an open cell)
    if r_driver + r_row > 0.0:
        # Norton form of source + first segment: a conductance to ground at node (i, 0)
        # and an injected current v[i] / (r_driver + r_row). Keeps the matrix SPD.
        g_in = 1.0 / (r_driver + r_row)
        st.conductance(row_node[:, 0], -1, g_in)
        inject, scale = row_node[:, 0], g_in
    else:
        inject, scale = st.voltage_sources(row_node[:, 0], -1), 1.0  # V(i, 0) = v[i]
    st.resistors(row_node[:, :-1], row_node[:, 1:], r_row)
    st.resistors(col_node[:-1, :], col_node[1:, :], r_col)
    st.resistors(col_node[-1, :], -1, r_col + r_sense)
    n = st.n_nodes + st.n_branches
    drive = sp.csr_matrix((np.full(m_rows, scale), (inject, np.arange(m_rows))), shape=(n, m_rows))
    return st.matrix(), drive, row_node, col_node


def node_voltages_reference(
    G, v, r_row: float = 1.0, r_col: float = 1.0, *, r_driver: float = 0.0, r_sense: float = 0.0
):
    """Row- and column-node voltages of the crossbar, by a direct sparse solve.

    Returns
    -------
    row_v, col_v : ndarray, shape (B, M, N) (or (M, N) for a single input vector)
        Voltages (V) of the row node and of the column node of every cell.
    """
    G, v, single = check_inputs(G, v)
    check_network(r_row, r_col, r_driver, r_sense)
    A, drive, row_node, col_node = assemble_mna(G, r_row, r_col, r_driver, r_sense)
    x = spla.splu(A, permc_spec="MMD_AT_PLUS_A").solve(np.asarray(drive @ v.T))  # one factorisation, all inputs at once
    row_v = x[row_node].transpose(2, 0, 1)
    col_v = x[col_node].transpose(2, 0, 1)
    return (row_v[0], col_v[0]) if single else (row_v, col_v)


def solve_reference(
    G, v, r_row: float = 1.0, r_col: float = 1.0, *, r_driver: float = 0.0, r_sense: float = 0.0
) -> np.ndarray:
    """Column currents of the crossbar by a scipy sparse direct solve of its nodal system.

    The test oracle of :func:`yieldmc.circuit.solve`; same arguments and shapes.
    The output current of column j is the sum of its cell currents (KCL: the column's far
    end is open, so they all reach the virtual ground).

    Parameters
    ----------
    G : array_like, shape (M, N)
        Cell conductances (S), finite and >= 0.
    v : array_like, shape (M,) or (B, M)
        Row source voltages (V).
    r_row, r_col, r_driver, r_sense : float
        Wire segment, driver and sense resistances (ohm), finite and >= 0.

    Returns
    -------
    ndarray, shape (N,) or (B, N)
        Currents (A) into the columns' virtual grounds.
    """
    row_v, col_v = node_voltages_reference(
        G, v, r_row, r_col, r_driver=r_driver, r_sense=r_sense
    )
    G = np.asarray(G, dtype=float)
    return ((row_v - col_v) * G).sum(axis=-2)


def solve_sinh_reference(
    G, v, v0: float, r_row: float = 1.0, r_col: float = 1.0, *, r_driver: float = 0.0,
    r_sense: float = 0.0, tol: float = 1e-14, max_iter: int = 100,
) -> np.ndarray:
    """Column currents of a sinh-device crossbar: Newton on the node voltages, direct solves.

    The oracle of :func:`yieldmc.circuit.solve_sinh`, formulated independently of it: the
    unknowns are the MNA node voltages (and 0 V source currents), a cell of small-signal
    conductance ``G`` carries ``G v0 sinh(dv / v0)``, and every Newton step is a scipy
    sparse direct solve of the full Jacobian. Steps are halved until ``|F|`` decreases.
    Iteration ends with a full (undamped) Newton step that changes no voltage by more than
    ``tol`` relative to the largest, or by at most ``1e4 tol`` while no longer shrinking
    (the round-off floor of ill-conditioned circuits: kilo-ohm periphery, or milliohm wires
    beside a 100-ohm sense resistance, measured at 2e-11 relative).

    Parameters
    ----------
    G : array_like, shape (M, N)
        Small-signal cell conductances (S).
    v : array_like, shape (M,) or (B, M)
        Row source voltages (V).
    v0 : float
        Voltage scale of the sinh non-linearity (V).
    r_row, r_col, r_driver, r_sense : float
        Resistances (ohm), as in :func:`yieldmc.circuit.solve`.

    Returns
    -------
    ndarray, shape (N,) or (B, N)
        Currents (A) into the columns' virtual grounds.

    Raises
    ------
    RuntimeError
        Newton did not settle within ``max_iter`` steps.
    """
    G, v2, single = check_inputs(G, v)
    check_network(r_row, r_col, r_driver, r_sense)
    A_wires, drive, row_node, col_node = assemble_mna(np.zeros_like(G), r_row, r_col, r_driver, r_sense)
    A_small, *_ = assemble_mna(G, r_row, r_col, r_driver, r_sense)
    n = A_wires.shape[0]
    m_rows, n_cols = G.shape
    cells = np.arange(G.size)
    C = sp.csr_matrix(
        (np.r_[np.ones(G.size), -np.ones(G.size)], (np.r_[cells, cells], np.r_[row_node.ravel(), col_node.ravel()])),
        shape=(G.size, n),
    )
    a = G.ravel() * v0

    def residual(u, b):
        return A_wires @ u + C.T @ (a * np.sinh((C @ u) / v0)) - b

    out = np.empty((v2.shape[0], n_cols))
    for k, vk in enumerate(v2):
        b = np.asarray(drive @ vk).ravel()
        u = spla.spsolve(A_small, b)  # start: the small-signal (linear) circuit
        f = residual(u, b)
        last = np.inf
        for _ in range(max_iter):
            J = A_wires + C.T @ sp.diags(G.ravel() * np.cosh((C @ u) / v0)) @ C
            du = spla.spsolve(J.tocsc(), -f)
            size = np.max(np.abs(du)) / max(np.max(np.abs(u)), 1e-300)
            # settled: the full Newton step is tiny, or small and no longer shrinking (the
            # round-off floor of an ill-conditioned circuit, e.g. kilo-ohm periphery)
            if size <= tol or (size <= 1e4 * tol and size > 0.5 * last):
                u = u + du  # take that last full step and stop
                break
            last = size
            t = 1.0
            f_new = residual(u + du, b)
            while np.linalg.norm(f_new) > np.linalg.norm(f) and t > 1e-12:
                t *= 0.5
                f_new = residual(u + t * du, b)
            u, f = u + t * du, f_new
        else:
            raise RuntimeError(f"reference Newton did not settle in {max_iter} steps")
        out[k] = (a * np.sinh((C @ u) / v0)).reshape(m_rows, n_cols).sum(axis=0)
    return out[0] if single else out

"""The fast crossbar engine: validation and the public functions around the kernels.

The kernels are :mod:`yieldmc.circuit._kernels` (the linear engine's block driver) on the
shared core :mod:`yieldmc.circuit._wires` (wire operator, block CG). :class:`SolveInfo`
reports every solve of the package, linear or not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from yieldmc.circuit import _kernels
from yieldmc.circuit.resistances import Resistances
from yieldmc.circuit.validate import check_conductances, check_inputs, check_network
from yieldmc.errors import SolverError

#: Relative residual ``|b - H z| / |b|`` that the CG solver must reach. The system's
#: condition number is small (eigenvalues >= 1), so the current error is of the same order;
#: tests require 1e-9 of max |I| against the direct solve.
SOLVER_RTOL = 1e-12
#: Hard cap on CG iterations; reaching it without the tolerance is a failure.
SOLVER_MAX_ITER = 2000
#: Right-hand sides solved together (innermost axis of the kernels' working arrays);
#: 32 measured 2x faster than 16 at 32x32 and 64x64 (docs/performance.md).
RHS_BLOCK = 32


@dataclass(frozen=True)
class SolveInfo:
    """How a solve went.

    Attributes
    ----------
    max_residual : float
        Largest true relative residual over the right-hand sides (0 for exact paths).
    iterations : int
        Largest number of CG iterations over the blocks (0 for exact paths).
    converged : bool
        Whether ``max_residual <= rtol``.
    """

    max_residual: float
    iterations: int
    converged: bool

    @classmethod
    def exact(cls) -> SolveInfo:
        """The info of a result obtained without iterating (a copy, ideal wires)."""
        return cls(0.0, 0, True)

    @classmethod
    def of(cls, worst: float, iterations: int, rtol: float, *, raise_on_failure: bool = True,
           solver: str = "crossbar CG solver") -> SolveInfo:
        """The info of an iterative solve that reached residual ``worst`` after ``iterations``.

        Raises
        ------
        SolverError
            With ``raise_on_failure``, if ``worst > rtol`` (or NaN), naming ``solver``.
        """
        info = cls(float(worst), int(iterations), bool(worst <= rtol))
        if raise_on_failure and not info.converged:
            raise SolverError(
                f"{solver} stopped at relative residual {worst:.3g} > {rtol:.1g} "
                f"after {iterations} iterations; the result is not returned"
            )
        return info


def transfer_matrix_info(
    G,
    r_row: float = 1.0,
    r_col: float = 1.0,
    *,
    r_driver: float = 0.0,
    r_sense: float = 0.0,
    rtol: float = SOLVER_RTOL,
    max_iter: int = SOLVER_MAX_ITER,
    raise_on_failure: bool = True,
) -> tuple[np.ndarray, SolveInfo]:
    """:func:`transfer_matrix` that also returns how the solve went (see :class:`SolveInfo`).

    With ``raise_on_failure=False`` a non-converged solve returns its best ``T`` with
    ``info.converged == False``; the caller must flag it.
    """
    G = check_conductances(G)
    wires = check_network(r_row, r_col, r_driver, r_sense)
    return transfer_matrix_checked(G, wires, rtol=rtol, max_iter=max_iter,
                                   raise_on_failure=raise_on_failure)


def transfer_matrix_checked(G: np.ndarray, wires: Resistances, *, rtol: float = SOLVER_RTOL,
                            max_iter: int = SOLVER_MAX_ITER,
                            raise_on_failure: bool = True) -> tuple[np.ndarray, SolveInfo]:
    """:func:`transfer_matrix_info` on inputs already validated.

    Parameters
    ----------
    G : numpy.ndarray, shape (M, N)
        C-contiguous float64 conductances (S), as :func:`~yieldmc.circuit.validate.check_conductances`
        returns them.
    wires : Resistances
        Floats, as :func:`~yieldmc.circuit.validate.check_network` returns them.
    """
    if wires.ideal:
        return G.copy(), SolveInfo.exact()
    T = np.empty(G.shape)  # N column solves (reciprocity) when N <= M, else M row solves
    worst, its = _kernels.transfer(G, wires, float(rtol), int(max_iter), RHS_BLOCK, T)
    return T, SolveInfo.of(worst, its, rtol, raise_on_failure=raise_on_failure)


def transfer_matrix(
    G, r_row: float = 1.0, r_col: float = 1.0, *, r_driver: float = 0.0, r_sense: float = 0.0
) -> np.ndarray:
    """Effective transfer matrix ``T`` of a crossbar with wire resistance.

    The array is a linear network, so its column currents are ``I = v @ T`` for any
    row voltages ``v``. ``T`` costs min(M, N) solves (the network is reciprocal).

    Parameters
    ----------
    G : array_like, shape (M, N)
        Cell conductances (S), finite and >= 0.
    r_row, r_col : float
        Resistance of one row / column wire segment (ohm).
    r_driver, r_sense : float
        Source resistance of each row driver and input impedance of each column's
        amplifier (ohm), in series with the first row / last column segment.

    Returns
    -------
    ndarray, shape (M, N)
        ``T[i, j]`` is the current (A) into column j's virtual ground per volt on row i.

    Raises
    ------
    SolverError
        If the iterative solver does not reach :data:`SOLVER_RTOL`.

    Examples
    --------
    >>> import numpy as np
    >>> from yieldmc.circuit import transfer_matrix
    >>> G = np.full((2, 3), 1e-4)
    >>> bool(np.allclose(transfer_matrix(G, 0.0, 0.0), G))
    True
    """
    return transfer_matrix_info(G, r_row, r_col, r_driver=r_driver, r_sense=r_sense)[0]


def solve(
    G,
    v,
    r_row: float = 1.0,
    r_col: float = 1.0,
    *,
    r_driver: float = 0.0,
    r_sense: float = 0.0,
) -> np.ndarray:
    """Column currents of a crossbar with wire resistance (IR drop), exactly.

    Solves the resistive network of DESIGN.md section 4: rows driven at their j = 0 end,
    columns held at 0 V beyond their last row. With all resistances 0 the result is
    exactly ``v @ G``.

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

    Raises
    ------
    SolverError
        If the iterative solver does not reach :data:`SOLVER_RTOL`.
    """
    G, v2, single = check_inputs(G, v)
    wires = check_network(r_row, r_col, r_driver, r_sense)
    m_rows, n_cols = G.shape
    if wires.ideal:
        out = v2 @ G
    elif v2.shape[0] >= min(m_rows, n_cols):  # cheaper through the transfer matrix
        out = v2 @ transfer_matrix_checked(G, wires)[0]
    else:
        out = np.empty((v2.shape[0], n_cols))
        worst, its = _kernels.solve_inputs(G, v2, wires, SOLVER_RTOL, SOLVER_MAX_ITER, RHS_BLOCK, out)
        SolveInfo.of(worst, its, SOLVER_RTOL)
    return out[0] if single else out

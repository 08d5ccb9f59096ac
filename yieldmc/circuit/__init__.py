"""The crossbar engine: exact column currents of a ReRAM array with wire resistance.

Public contract (DESIGN.md section 4)::

    I = solve(G, v, r_row=1.0, r_col=1.0)           # (M, N), (M,) | (B, M) -> (N,) | (B, N)
    T = transfer_matrix(G, r_row=1.0, r_col=1.0)    # (M, N): solve(G, v) == v @ T
    I = solve_reference(G, v, r_row=1.0, r_col=1.0) # scipy sparse direct solve (oracle)
"""

from yieldmc.circuit.reference import node_voltages_reference, solve_reference
from yieldmc.circuit.solver import (
    SOLVER_RTOL,
    SolveInfo,
    solve,
    transfer_matrix,
    transfer_matrix_info,
)

__all__ = [
    "SOLVER_RTOL",
    "SolveInfo",
    "node_voltages_reference",
    "solve",
    "solve_reference",
    "transfer_matrix",
    "transfer_matrix_info",
]

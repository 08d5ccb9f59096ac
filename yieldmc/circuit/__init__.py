"""The crossbar engine: exact column currents of a ReRAM array with wire resistance.

Public contract (DESIGN.md section 4)::

    I = solve(G, v, r_row=1.0, r_col=1.0)           # (M, N), (M,) | (B, M) -> (N,) | (B, N)
    T = transfer_matrix(G, r_row=1.0, r_col=1.0)    # (M, N): solve(G, v) == v @ T
    I = solve_reference(G, v, r_row=1.0, r_col=1.0) # scipy sparse direct solve (oracle)

Non-linear (sinh gap-model) cells, no transfer matrix: ``solve_sinh(G, v, v0, ...)``
and its oracle ``solve_sinh_reference`` (Newton with direct solves on node voltages).
Faulty arrays from fault-free ones: :mod:`yieldmc.circuit.update` (``faulty_transfer``).

The resistances are named and ordered alike everywhere, ``(r_row, r_col, r_driver,
r_sense)``; :class:`Resistances` holds them (``solve(G, v, **wires._asdict())``). Every
solver runs on one core, :mod:`yieldmc.circuit._wires` (the wire operator and block CG).
"""

from yieldmc.circuit.nonlinear import solve_device, solve_sinh, solve_sinh_info
from yieldmc.circuit.reference import (
    node_voltages_reference,
    solve_reference,
    solve_sinh_reference,
)
from yieldmc.circuit.resistances import Resistances
from yieldmc.circuit.solver import (
    SOLVER_RTOL,
    SolveInfo,
    solve,
    transfer_matrix,
    transfer_matrix_info,
)

__all__ = [
    "SOLVER_RTOL",
    "Resistances",
    "SolveInfo",
    "node_voltages_reference",
    "solve",
    "solve_device",
    "solve_reference",
    "solve_sinh",
    "solve_sinh_info",
    "solve_sinh_reference",
    "transfer_matrix",
    "transfer_matrix_info",
]

"""The IR-drop demonstration behind ``yieldmc demo``: one random crossbar with and without
wire resistance.

>>> d = ir_drop_demo(8, 4, r_wire=1.0, seed=0)
>>> d.ideal.shape, bool((d.loss_percent > 0).all())
((4,), True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from yieldmc.circuit.solver import SolveInfo, solve, transfer_matrix_info

#: Conductance range of the demo's cells (S) and of its input voltages (V).
DEMO_G_RANGE = (1e-6, 1e-4)
DEMO_V_RANGE = (0.0, 0.2)


@dataclass(frozen=True)
class IrDropDemo:
    """Column currents of one random array, ideal wires against resistive ones.

    Attributes
    ----------
    G : numpy.ndarray, shape (rows, cols)
        Cell conductances (S), uniform in :data:`DEMO_G_RANGE`.
    v : numpy.ndarray, shape (rows,)
        Input voltages (V), uniform in :data:`DEMO_V_RANGE`.
    r_wire : float
        Row and column wire segment resistance (ohm).
    ideal, wired : numpy.ndarray, shape (cols,)
        Column currents (A) without and with wire resistance.
    info : SolveInfo
        The wired solve's iterations and residual.
    """

    G: np.ndarray
    v: np.ndarray
    r_wire: float
    ideal: np.ndarray
    wired: np.ndarray
    info: SolveInfo

    @property
    def loss_percent(self) -> np.ndarray:
        """Current lost to IR drop per column (% of the ideal current; 0 where that is 0)."""
        safe = np.where(self.ideal != 0.0, self.ideal, 1.0)
        return np.where(self.ideal != 0.0, 100.0 * (1.0 - self.wired / safe), 0.0)


def ir_drop_demo(rows: int = 32, cols: int = 16, *, r_wire: float = 1.0, seed: int = 0) -> IrDropDemo:
    """Solve a random ``rows`` x ``cols`` crossbar with ideal and with resistive wires.

    Parameters
    ----------
    rows, cols : int
        Array size (inputs, outputs).
    r_wire : float
        Row and column wire segment resistance (ohm).
    seed : int
        Seed of the conductances and inputs.

    Returns
    -------
    IrDropDemo
    """
    rng = np.random.default_rng(seed)
    G = rng.uniform(*DEMO_G_RANGE, (rows, cols))
    v = rng.uniform(*DEMO_V_RANGE, rows)
    ideal = solve(G, v, 0.0, 0.0)
    T, info = transfer_matrix_info(G, r_wire, r_wire)
    return IrDropDemo(G, v, r_wire, ideal, v @ T, info)

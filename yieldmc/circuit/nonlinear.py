"""Crossbars of non-linear (sinh gap-model) cells: the Newton solver's public functions.

A non-linear array has no transfer matrix: every input vector is its own solve. The
kernels (:mod:`yieldmc.circuit._newton`) run damped inexact Newton with the linear
engine's CG inside, batched over input vectors; this module validates, dispatches and
reports. See docs/circuit.md, "Non-linear devices".
"""

from __future__ import annotations

import math

import numpy as np

from yieldmc.circuit import _newton
from yieldmc.circuit.solver import RHS_BLOCK, SOLVER_MAX_ITER, SolveInfo, solve
from yieldmc.circuit.validate import check_inputs, check_network
from yieldmc.devices import LinearDevice, SinhDevice
from yieldmc.errors import ConfigError

#: Relative residual ``|Dd^1/2 F| / |Dd^1/2 v|`` Newton must reach (the weighted KVL
#: error of every cell, as a share of the input; same measure as the linear engine).
NEWTON_RTOL = 1e-12
#: Newton steps allowed per block of inputs; the presets need 3-5 (docs/performance.md).
NEWTON_MAX_ITER = 50
#: Largest |v| / v0 accepted: sinh overflows double precision beyond about 710.
MAX_V_OVER_V0 = 700.0
#: Starting points of :func:`solve_sinh_info`.
WARM_STARTS = ("ideal", "previous")


def _check_v0(v0: float) -> float:
    try:
        x = float(v0)
    except (TypeError, ValueError):
        raise ConfigError(f"v0 must be a voltage (V), got {v0!r}") from None
    if not (math.isfinite(x) and x > 0):
        raise ConfigError(f"v0 must be finite and > 0 V, got {v0!r}")
    return x


def solve_sinh_info(
    G,
    v,
    v0: float,
    r_row: float = 1.0,
    r_col: float = 1.0,
    *,
    r_driver: float = 0.0,
    r_sense: float = 0.0,
    rtol: float = NEWTON_RTOL,
    max_newton: int = NEWTON_MAX_ITER,
    max_cg: int = SOLVER_MAX_ITER,
    warm_start: str = "ideal",
    block: int = RHS_BLOCK,
    raise_on_failure: bool = True,
) -> tuple[np.ndarray, SolveInfo]:
    """:func:`solve_sinh` with solver controls; also returns how the solve went.

    Parameters
    ----------
    rtol : float
        Relative residual each input must reach (:data:`NEWTON_RTOL`).
    max_newton, max_cg : int
        Newton steps per block of inputs; CG iterations per Newton step.
    warm_start : {"ideal", "previous"}
        Start of each input: the ideal-wire solution (default; every input's result is
        then independent of the others), or the wire drops of the input ``block``
        places earlier (for sweeps whose neighbouring inputs are close; for digit
        images it saves no Newton step, docs/performance.md).
    block : int
        Inputs solved together.
    raise_on_failure : bool
        Raise :class:`~yieldmc.errors.SolverError` when an input misses ``rtol``;
        otherwise return the last iterate with ``info.converged == False`` (the caller
        must flag it).

    Returns
    -------
    currents : ndarray, shape (N,) or (B, N)
        As :func:`solve_sinh`.
    info : SolveInfo
        ``iterations`` is the largest number of Newton steps over the blocks,
        ``max_residual`` the largest final relative residual.
    """
    G, v2, single = check_inputs(G, v)
    wires = check_network(r_row, r_col, r_driver, r_sense)
    v0 = _check_v0(v0)
    if warm_start not in WARM_STARTS:
        raise ConfigError(f"warm_start must be one of {', '.join(WARM_STARTS)}, got {warm_start!r}")
    if int(block) < 1 or int(max_newton) < 0 or int(max_cg) < 1:
        raise ConfigError("block and max_cg must be >= 1 and max_newton >= 0")
    ratio = float(np.max(np.abs(v2))) / v0 if v2.size else 0.0
    if ratio > MAX_V_OVER_V0:
        raise ConfigError(f"input voltages reach {ratio:.3g} v0 (v0 = {v0:g} V): sinh overflows "
                          f"beyond {MAX_V_OVER_V0:g} v0; check v0 and the read voltage")
    out = np.empty((v2.shape[0], G.shape[1]))
    rel = np.empty(v2.shape[0])
    newton = np.zeros(v2.shape[0], dtype=np.int64)
    _newton.solve_sinh_inputs(G, v2, v0, wires, float(rtol), int(max_newton), int(max_cg), int(block),
                              warm_start == "previous", out, rel, newton)
    worst = float(rel.max()) if rel.size else 0.0
    if not np.isfinite(worst):
        worst = math.inf
    info = SolveInfo.of(worst, int(newton.max()) if newton.size else 0, rtol,
                        raise_on_failure=raise_on_failure,
                        solver="sinh-device Newton solver" + (
                            f" (inputs up to {ratio:.3g} v0: the ideal-wire start overshoots far; "
                            "a larger max_newton may help)" if ratio > 5 else ""))
    return (out[0] if single else out), info


def solve_sinh(
    G, v, v0: float, r_row: float = 1.0, r_col: float = 1.0, *, r_driver: float = 0.0,
    r_sense: float = 0.0,
) -> np.ndarray:
    """Column currents of a crossbar of sinh gap-model cells, with IR drop, exactly.

    A cell of small-signal conductance ``G`` carries ``G v0 sinh(dv / v0)`` at cell
    voltage ``dv`` (the gap model ``i0 exp(-gap/gap0) sinh(dv/v0)`` with
    ``G = i0 exp(-gap/gap0) / v0``, see :class:`yieldmc.devices.SinhDevice`). Wires,
    driver and sense resistances as in :func:`yieldmc.circuit.solve`.

    Parameters
    ----------
    G : array_like, shape (M, N)
        Small-signal cell conductances (S), finite and >= 0.
    v : array_like, shape (M,) or (B, M)
        Row source voltages (V).
    v0 : float
        Voltage scale of the non-linearity (V), > 0. As ``v0`` grows the result tends
        to the linear engine's ``solve(G, v, ...)``.
    r_row, r_col, r_driver, r_sense : float
        Resistances (ohm), finite and >= 0.

    Returns
    -------
    ndarray, shape (N,) or (B, N)
        Currents (A) into the columns' virtual grounds.

    Raises
    ------
    SolverError
        If Newton does not reach :data:`NEWTON_RTOL` within :data:`NEWTON_MAX_ITER` steps.

    Examples
    --------
    >>> import numpy as np
    >>> from yieldmc.circuit import solve_sinh
    >>> I = solve_sinh(np.full((1, 1), 1e-4), [0.2], v0=0.25, r_row=0.0, r_col=0.0)
    >>> bool(np.isclose(I[0], 1e-4 * 0.25 * np.sinh(0.2 / 0.25)))
    True
    """
    return solve_sinh_info(G, v, v0, r_row, r_col, r_driver=r_driver, r_sense=r_sense)[0]


def solve_device(
    device: LinearDevice | SinhDevice, G, v, r_row: float = 1.0, r_col: float = 1.0, *,
    r_driver: float = 0.0, r_sense: float = 0.0,
) -> np.ndarray:
    """Column currents of a crossbar of ``device`` cells (see :mod:`yieldmc.devices`)."""
    if device.is_linear:
        return solve(G, v, r_row, r_col, r_driver=r_driver, r_sense=r_sense)
    return solve_sinh(G, v, device.v0, r_row, r_col, r_driver=r_driver, r_sense=r_sense)

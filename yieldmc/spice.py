"""SPICE export of a crossbar, an ngspice runner, and the cross-check of the engine.

The netlist follows the circuit convention of DESIGN.md section 4 element by element.
Column currents are measured by 0 V sources (``Vsense_j``) between each column's last
node and ground: the current through a voltage source is exactly what the virtual
ground absorbs. A zero resistance is written as a 0 V source as well (ngspice rejects
0 ohm resistors).

:func:`spice_check` is ``yieldmc spice-check``: one random array solved by the engine
(:func:`yieldmc.circuit.solve_device`) and by ngspice, compared against
:data:`CHECK_RTOL`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from yieldmc.circuit import solve_device
from yieldmc.circuit.validate import check_inputs, check_network
from yieldmc.devices import DEVICE_MODELS, LinearDevice, SinhDevice
from yieldmc.errors import ConfigError, YieldmcError

#: ngspice's Newton tolerances for non-linear cells: its defaults (reltol 1e-3,
#: vntol 1 uV) stop far from the 1e-7 agreement we check; these stop at round-off.
NONLINEAR_OPTIONS = ".options reltol=1e-12 vntol=1e-15 abstol=1e-20 itl1=500"
#: :func:`spice_check` passes when the worst |engine - ngspice| is below this share of the
#: largest |column current|, per device model. Linear: both solve one linear system to
#: round-off (measured 6e-14 at 32x32, docs/circuit.md section 4); sinh: ngspice's Newton
#: stops at its ``reltol`` (:data:`NONLINEAR_OPTIONS`; measured 1.3e-11 at 16x16).
CHECK_RTOL = {"linear": 1e-8, "sinh": 1e-7}
#: Rows of :func:`spice_check`'s random array when none are given, per device model (a
#: behavioural-source netlist is slower for ngspice).
CHECK_ROWS = {"linear": 32, "sinh": 16}
#: Voltage scale (V) of the sinh cells of :func:`spice_check` when none is given.
CHECK_V0 = 0.25


class SpiceError(YieldmcError, RuntimeError):
    """ngspice is missing, failed, or printed something we cannot parse."""


def _two_terminal(lines: list[str], name: str, a: str, b: str, resistance: float) -> None:
    if resistance > 0:
        lines.append(f"R{name} {a} {b} {resistance:.17g}")
    else:
        lines.append(f"V{name} {a} {b} DC 0")


def netlist(G, v, r_row: float = 1.0, r_col: float = 1.0, *, r_driver: float = 0.0,
            r_sense: float = 0.0, device: LinearDevice | SinhDevice | None = None,
            title: str = "yieldmc crossbar") -> str:
    """The crossbar with one input vector as an ngspice netlist (operating point).

    Parameters
    ----------
    G : array_like, shape (M, N)
        Cell (small-signal) conductances (S); a zero conductance is left out (an open cell).
    v : array_like, shape (M,)
        Row source voltages (V).
    r_row, r_col, r_driver, r_sense : float
        Resistances (ohm), as in :func:`yieldmc.circuit.solve`.
    device : LinearDevice or SinhDevice, optional
        Cell model (default linear: ``R`` elements). Sinh cells become behavioural
        current sources (``B`` elements with ``I = G v0 sinh(v(r, c) / v0)``).

    Returns
    -------
    str
        The netlist. Nodes ``r<i>_<j>`` / ``c<i>_<j>`` are the row / column nodes of
        cell (i, j); the current of column j is ``i(vsense_<j>)``.
    """
    G, v2, single = check_inputs(G, v)
    if not single:
        raise ValueError("netlist takes one input vector of shape (M,)")
    check_network(r_row, r_col, r_driver, r_sense)
    device = LinearDevice() if device is None else device
    m_rows, n_cols = G.shape
    lines = [f"* {title}: {m_rows} x {n_cols} cells ({device.name} device)", ".options noacct"]
    if not device.is_linear:
        lines.append(NONLINEAR_OPTIONS)
    for i in range(m_rows):
        lines.append(f"Vin{i} s{i} 0 DC {v2[0, i]:.17g}")
        _two_terminal(lines, f"drv{i}", f"s{i}", f"r{i}_0", r_driver + r_row)
        for j in range(n_cols - 1):
            _two_terminal(lines, f"row{i}_{j}", f"r{i}_{j}", f"r{i}_{j + 1}", r_row)
    for j in range(n_cols):
        for i in range(m_rows - 1):
            _two_terminal(lines, f"col{i}_{j}", f"c{i}_{j}", f"c{i + 1}_{j}", r_col)
        _two_terminal(lines, f"snk{j}", f"c{m_rows - 1}_{j}", f"g{j}", r_col + r_sense)
        lines.append(f"Vsense{j} g{j} 0 DC 0")
    for i in range(m_rows):
        for j in range(n_cols):
            if G[i, j] > 0:
                lines.append(device.spice_element(f"cell{i}_{j}", f"r{i}_{j}", f"c{i}_{j}", G[i, j]))
    lines += [
        ".control",
        "set numdgt=15",
        "op",
        *[f"print i(vsense{j})" for j in range(n_cols)],
        "quit 0",
        ".endc",
        ".end",
    ]
    return "\n".join(lines) + "\n"


def ngspice_path() -> str | None:
    """Path of the ngspice binary, or None when it is not installed."""
    return shutil.which("ngspice")


_PRINT = re.compile(r"^\s*i\(vsense(\d+)\)\s*=\s*([-+0-9.eE]+)\s*$", re.MULTILINE)


def run_ngspice(G, v, r_row: float = 1.0, r_col: float = 1.0, *, r_driver: float = 0.0,
                r_sense: float = 0.0, device: LinearDevice | SinhDevice | None = None,
                timeout: float = 600.0) -> np.ndarray:
    """Column currents of the crossbar computed by ``ngspice -b``.

    Returns
    -------
    ndarray, shape (N,)
        Current (A) into each column's virtual ground (SPICE reports the current
        through a source from + to -, here from the column into ground: same sign as
        :func:`yieldmc.circuit.solve`).

    Raises
    ------
    SpiceError
        ngspice is not installed, fails, or its output cannot be parsed.
    """
    exe = ngspice_path()
    if exe is None:
        raise SpiceError("ngspice is not installed (apt-get install -y ngspice)")
    text = netlist(G, v, r_row, r_col, r_driver=r_driver, r_sense=r_sense, device=device)
    n_cols = np.asarray(G).shape[1]
    with tempfile.TemporaryDirectory(prefix="yieldmc-spice-") as tmp:
        path = Path(tmp) / "crossbar.cir"
        path.write_text(text)
        try:
            done = subprocess.run([exe, "-b", str(path)], capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise SpiceError(f"ngspice did not finish within {timeout} s") from exc
    found = {int(j): float(x) for j, x in _PRINT.findall(done.stdout)}
    if done.returncode != 0 or len(found) != n_cols:
        tail = (done.stderr or done.stdout)[-800:]
        raise SpiceError(f"ngspice failed (exit {done.returncode}, {len(found)}/{n_cols} "
                         f"currents parsed): {tail}")
    return np.array([found[j] for j in range(n_cols)])


@dataclass(frozen=True)
class SpiceCheckResult:
    """The outcome of :func:`spice_check`.

    Attributes
    ----------
    rows, cols : int
        Shape of the random array.
    seed : int
        Seed of its conductances and inputs.
    device : str
        Cell model (:data:`yieldmc.devices.DEVICE_MODELS`).
    max_rel_error : float
        ``max |I_engine - I_ngspice| / max |I_ngspice|`` over the columns (NaN if either
        is NaN).
    limit : float
        The tolerance of ``device`` (:data:`CHECK_RTOL`).
    passed : bool
        ``max_rel_error < limit`` (False for NaN).
    """

    rows: int
    cols: int
    seed: int
    device: str
    max_rel_error: float
    limit: float
    passed: bool

    def to_dict(self) -> dict:
        """The JSON object of ``yieldmc spice-check --json``."""
        return asdict(self)


def _check_device(device: str, v0: float | None) -> LinearDevice | SinhDevice:
    """The cell model named ``device``; ``v0`` (V) only for ``sinh`` (default :data:`CHECK_V0`)."""
    if device not in DEVICE_MODELS:
        raise ConfigError(f"--device must be one of {', '.join(DEVICE_MODELS)}, got {device!r}")
    if v0 is not None and device != "sinh":
        raise ConfigError("--v0 applies to --device sinh only")
    v0 = CHECK_V0 if v0 is None else v0
    if not v0 > 0:
        raise ConfigError(f"--v0 must be > 0 V, got {v0!r}")
    return SinhDevice(v0=v0) if device == "sinh" else LinearDevice()


def spice_check(rows: int | None = None, cols: int | None = None, *, seed: int = 0, r_wire: float = 1.0,
                r_sense: float = 0.0, device: str = "linear", v0: float | None = None) -> SpiceCheckResult:
    """Solve one random crossbar with the engine and with ngspice; compare the column currents.

    Conductances are log-uniform in [1e-6, 1e-4] S and inputs uniform in [0, 0.2] V, drawn
    from ``numpy.random.default_rng(seed)``.

    Parameters
    ----------
    rows, cols : int, optional
        Array shape; ``rows`` defaults to :data:`CHECK_ROWS` of the device, ``cols`` to
        ``rows``.
    seed : int
        Seed of the conductances and inputs.
    r_wire : float
        Row and column segment resistance (ohm).
    r_sense : float
        Sense-amplifier input impedance (ohm).
    device : {"linear", "sinh"}
        Cell model: ``R`` elements, or behavioural ``B`` elements and the Newton solver.
    v0 : float, optional
        ``sinh`` only: voltage scale of the non-linearity (V); default :data:`CHECK_V0`.

    Returns
    -------
    SpiceCheckResult
        ``passed`` when the worst relative error is below :data:`CHECK_RTOL` of the device.

    Raises
    ------
    ConfigError
        An unknown device, ``v0`` without ``sinh``, or ``v0 <= 0``.
    SpiceError
        ngspice is missing or fails.
    """
    cell = _check_device(device, v0)
    rows = rows or CHECK_ROWS[device]
    cols = cols or rows
    rng = np.random.default_rng(seed)
    G = np.exp(rng.uniform(np.log(1e-6), np.log(1e-4), (rows, cols)))
    v = rng.uniform(0.0, 0.2, rows)
    ours = solve_device(cell, G, v, r_wire, r_wire, r_sense=r_sense)
    spice = run_ngspice(G, v, r_wire, r_wire, r_sense=r_sense, device=cell)
    worst = float(np.max(np.abs(ours - spice)) / np.max(np.abs(spice)))
    limit = CHECK_RTOL[device]
    return SpiceCheckResult(rows=rows, cols=cols, seed=seed, device=device, max_rel_error=worst,
                            limit=limit, passed=bool(worst < limit))

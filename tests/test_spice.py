"""The engine against ngspice on small arrays, and the netlist's own conventions."""

from __future__ import annotations

import re

import numpy as np
import pytest

import yieldmc.spice
from tests.tolerances import SPICE_ERROR_READBACK_RTOL, SPICE_RTOL, SPICE_SINH_RTOL
from yieldmc.circuit import solve, solve_device, solve_sinh
from yieldmc.devices import LinearDevice, SinhDevice
from yieldmc.errors import ConfigError
from yieldmc.spice import CHECK_ROWS, CHECK_RTOL, CHECK_V0, SpiceCheckResult, netlist, run_ngspice, spice_check


@pytest.mark.ngspice
@pytest.mark.parametrize(
    "shape, wires",
    [
        ((1, 1), (1.0, 1.0, 0.0, 0.0)),
        ((4, 6), (1.0, 1.0, 0.0, 0.0)),
        ((8, 20), (2.0, 3.0, 10.0, 25.0)),
        ((16, 16), (0.0, 4.0, 0.0, 0.0)),
        ((12, 5), (5.0, 0.0, 0.0, 7.0)),
        ((32, 32), (1.0, 1.0, 0.0, 0.0)),
    ],
)
def test_engine_matches_ngspice(rng, shape, wires):
    r_row, r_col, r_drv, r_snk = wires
    G = np.exp(rng.uniform(np.log(1e-6), np.log(1e-4), shape))
    G[rng.random(shape) < 0.1] = 1e-4
    v = rng.uniform(0, 0.2, shape[0])
    spice = run_ngspice(G, v, r_row, r_col, r_driver=r_drv, r_sense=r_snk)
    ours = solve(G, v, r_row, r_col, r_driver=r_drv, r_sense=r_snk)
    assert np.max(np.abs(spice - ours)) < SPICE_RTOL * np.abs(ours).max()


@pytest.mark.ngspice
@pytest.mark.parametrize(
    "shape, wires, v0",
    [
        ((1, 1), (1.0, 1.0, 0.0, 0.0), 0.25),
        ((4, 6), (1.0, 1.0, 0.0, 0.0), 0.25),
        ((8, 20), (2.0, 3.0, 10.0, 25.0), 0.25),
        ((16, 16), (0.0, 4.0, 0.0, 0.0), 0.25),
        ((12, 5), (5.0, 0.0, 0.0, 7.0), 0.1),
        ((16, 16), (1.0, 1.0, 0.0, 0.0), 0.25),
        ((16, 8), (10.0, 10.0, 0.0, 100.0), 0.05),
    ],
)
def test_sinh_solver_matches_ngspice_behavioural_cells(rng, shape, wires, v0):
    """The same cells as ngspice B elements ``I = G v0 sinh(v(r, c) / v0)``."""
    r_row, r_col, r_drv, r_snk = wires
    G = np.exp(rng.uniform(np.log(1e-6), np.log(1e-4), shape))
    G[rng.random(shape) < 0.1] = 1e-4
    v = rng.uniform(0, 0.3, shape[0])
    spice = run_ngspice(G, v, r_row, r_col, r_driver=r_drv, r_sense=r_snk, device=SinhDevice(v0=v0))
    ours = solve_sinh(G, v, v0, r_row, r_col, r_driver=r_drv, r_sense=r_snk)
    assert np.max(np.abs(spice - ours)) < SPICE_SINH_RTOL * np.abs(ours).max()
    # and the check can fail: the linear engine is ~10 % away from the same netlist
    assert np.max(np.abs(spice - solve(G, v, r_row, r_col, r_driver=r_drv, r_sense=r_snk))) \
        > 100 * SPICE_SINH_RTOL * np.abs(ours).max()


def test_sinh_netlist_uses_behavioural_sources(rng):
    G = rng.uniform(1e-6, 1e-4, (2, 3))
    text = netlist(G, [0.1, 0.2], 1.0, 1.0, device=SinhDevice(v0=0.3))
    cells = [ln for ln in text.splitlines() if ln.startswith(("Bcell", "Rcell"))]
    assert len(cells) == 6 and all(ln.startswith("Bcell") for ln in cells)
    assert "sinh(v(r0_0,c0_0)/0.29999999999999999)" in cells[0]
    assert ".options" in text and "reltol=1e-12" in text


def test_netlist_conventions(rng):
    G = rng.uniform(1e-6, 1e-4, (3, 4))
    G[1, 2] = 0.0  # an open cell is left out
    text = netlist(G, rng.uniform(0, 0.2, 3), 1.0, 0.0, r_sense=5.0)
    elements = [ln for ln in text.splitlines() if ln and ln[0] not in "*." and ln != "quit 0"]
    body = elements[: elements.index("set numdgt=15")] if "set numdgt=15" in elements else elements
    cells = [ln for ln in body if ln.startswith("Rcell")]
    assert len(cells) == 11
    for line in body:
        assert line[0] in "RV", line  # element names start with their type letter
    # 17 significant digits: the value round-trips exactly.
    name, a, b, value = cells[0].split()
    assert float(value) == 1.0 / G[0, 0]
    assert "set numdgt=15" in text
    # r_col = 0: column segments become 0 V sources, never 0 ohm resistors.
    assert not re.search(r"^R\S+ \S+ \S+ 0$", text, re.MULTILINE)
    assert re.search(r"^Vcol0_0 c0_0 c1_0 DC 0$", text, re.MULTILINE)
    assert re.search(r"^Rsnk0 c2_0 g0 5$", text, re.MULTILINE)


# ---- spice_check: `yieldmc spice-check` ----------------------------------------------

@pytest.mark.ngspice
@pytest.mark.parametrize("device, rows, cols", [("linear", 12, 8), ("sinh", 6, 5)])
def test_spice_check_passes_against_ngspice(device, rows, cols):
    result = spice_check(rows, cols, seed=3, r_wire=2.0, r_sense=10.0, device=device)
    assert (result.rows, result.cols, result.seed, result.device) == (rows, cols, 3, device)
    assert result.limit == CHECK_RTOL[device] and result.passed
    assert 0 < result.max_rel_error < result.limit  # two solvers, not one copied


@pytest.fixture
def fake_ngspice(monkeypatch):
    """ngspice replaced by the engine times ``factor[0]``; records the cells and shapes."""
    factor, seen = [1.0], []

    def run(G, v, r_row, r_col, *, r_sense=0.0, device=None):
        seen.append((G.shape, device, r_row, r_col, r_sense, float(G.sum())))
        return solve_device(device, G, v, r_row, r_col, r_sense=r_sense) * factor[0]

    monkeypatch.setattr(yieldmc.spice, "run_ngspice", run)
    return factor, seen


def test_spice_check_verdict_follows_the_device_tolerance(fake_ngspice):
    factor, seen = fake_ngspice
    exact = spice_check(6, 4)
    assert exact == SpiceCheckResult(6, 4, 0, "linear", 0.0, CHECK_RTOL["linear"], True)
    assert list(exact.to_dict()) == ["rows", "cols", "seed", "device", "max_rel_error", "limit", "passed"]
    # an error between the two tolerances fails linear cells and passes sinh cells
    middle = (CHECK_RTOL["linear"] * CHECK_RTOL["sinh"]) ** 0.5
    factor[0] = 1.0 + middle
    linear, sinh = spice_check(6, 4), spice_check(6, 4, device="sinh")
    assert not linear.passed and sinh.passed
    assert linear.max_rel_error == pytest.approx(middle / (1 + middle), rel=SPICE_ERROR_READBACK_RTOL)
    factor[0] = np.nan
    assert not spice_check(3, 3).passed  # NaN never passes


def test_spice_check_defaults_and_cells(fake_ngspice):
    _, seen = fake_ngspice
    assert spice_check().rows == spice_check().cols == CHECK_ROWS["linear"]
    result = spice_check(device="sinh", r_wire=3.0, r_sense=7.0)
    assert (result.rows, result.cols) == (CHECK_ROWS["sinh"], CHECK_ROWS["sinh"])
    assert seen[-1][:5] == ((16, 16), SinhDevice(v0=CHECK_V0), 3.0, 3.0, 7.0)
    spice_check(5, device="sinh", v0=0.1)
    assert seen[-1][0] == (5, 5) and seen[-1][1] == SinhDevice(v0=0.1)
    spice_check(5, 2)
    assert seen[-1][:2] == ((5, 2), LinearDevice())
    spice_check(4, seed=1)
    spice_check(4, seed=1)
    spice_check(4, seed=2)
    g1, g1_again, g2 = (entry[-1] for entry in seen[-3:])
    assert g1 == g1_again != g2  # the seed draws the array


@pytest.mark.parametrize("kwargs, message", [
    ({"device": "memristor"}, "--device must be one of linear, sinh, got 'memristor'"),
    ({"v0": 0.1}, "--v0 applies to --device sinh only"),
    ({"device": "sinh", "v0": 0.0}, "--v0 must be > 0 V, got 0.0"),
    ({"device": "sinh", "v0": float("nan")}, "--v0 must be > 0 V"),
])
def test_spice_check_refuses_bad_arguments(fake_ngspice, kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        spice_check(4, **kwargs)
    assert fake_ngspice[1] == []  # refused before anything ran

"""The circuit benchmarks' array and yardsticks: the conductances every size uses, scipy's
direct solve (``solve_reference``) and ngspice, one process per input or one for all of T.
"""

from __future__ import annotations

import multiprocessing as mp
import re
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from yieldmc.circuit import solve_reference
from yieldmc.spice import netlist, ngspice_path, run_ngspice

from _timing import Clock

SIZES = [(8, 20), (64, 16), (32, 32), (64, 64), (128, 128), (256, 256)]
QUICK_SIZES = [(8, 20), (64, 16), (32, 32)]
G_MIN, G_MAX = 1e-6, 1e-4  # S, log-uniform
R_WIRE = 1.0  # ohm per row / column segment
SEED = 20240601
PERMC_SPEC = "MMD_AT_PLUS_A"  # the ordering yieldmc/circuit/reference.py uses
#: Above this, scipy with OpenBLAS at its default threads is not timed: it was 5 to 30 times
#: slower than with 1 thread from 64x16 up (docs/performance.md), and costs minutes.
BLAS_DEFAULT_MAX_CELLS = 64 * 64
_PRINT = re.compile(r"^\s*i\(vsense(\d+)\)\s*=\s*([-+0-9.eE]+)\s*$", re.MULTILINE)


def conductances(rows: int, cols: int, seed: int = SEED) -> np.ndarray:
    """The benchmark array: log-uniform conductances (S), one fixed stream per size."""
    rng = np.random.default_rng([seed, rows, cols])
    return np.exp(rng.uniform(np.log(G_MIN), np.log(G_MAX), (rows, cols)))


# --- scipy yardstick -----------------------------------------------------------------------

def scipy_call(G: np.ndarray, threads: int | None) -> np.ndarray:
    if threads is None:
        return solve_reference(G, np.eye(G.shape[0]), R_WIRE, R_WIRE)
    with threadpool_limits(limits=threads, user_api="blas"):
        return solve_reference(G, np.eye(G.shape[0]), R_WIRE, R_WIRE)


def _probe_child(rows: int, cols: int, threads: int | None, conn) -> None:
    G = conductances(rows, cols)
    t0 = time.perf_counter()
    scipy_call(G, threads)
    conn.send(time.perf_counter() - t0)


def probe_scipy(rows: int, cols: int, threads: int | None, limit_s: float) -> float | None:
    """Time one yardstick call in a child process; None if it runs past ``limit_s``."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_probe_child, args=(rows, cols, threads, child))
    proc.start()
    elapsed = parent.recv() if parent.poll(limit_s + 30.0) else None  # + interpreter start
    proc.join(1.0)
    if proc.is_alive():
        proc.terminate()
        proc.join()
    return elapsed if elapsed is not None and elapsed <= limit_s else None


# --- ngspice ---------------------------------------------------------------------------------

def ngspice_version() -> str | None:
    exe = ngspice_path()
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout
    found = re.search(r"ngspice-\S+", out)
    return found.group(0) if found else out.strip()[:60]


def batched_netlist(G: np.ndarray, r_row: float = R_WIRE, r_col: float = R_WIRE) -> str:
    """One deck for the whole T: the crossbar of yieldmc.spice.netlist, then a control block
    that sets input i to 1 V (the others to 0), runs ``op`` and prints every column current,
    for i = 0 .. M-1 (unrolled: ``alter`` takes literal source names)."""
    rows, cols = G.shape
    text = netlist(G, np.zeros(rows), r_row, r_col, title="yieldmc crossbar, all unit inputs")
    deck = text[: text.index(".control")].rstrip("\n").splitlines()
    control = [".control", "set numdgt=15"]
    for i in range(rows):
        if i:
            control.append(f"alter vin{i - 1} dc = 0")
        control += [f"alter vin{i} dc = 1", "op"]
        control += [f"print i(vsense{j})" for j in range(cols)]
    control += ["quit 0", ".endc", ".end"]
    return "\n".join(deck + control) + "\n"


def run_batched(G: np.ndarray) -> tuple[np.ndarray, float, float]:
    """T from one ngspice process; returns (T, wall s, CPU s), all of write + run + parse."""
    rows, cols = G.shape
    clock = Clock()
    with tempfile.TemporaryDirectory(prefix="bench-spice-") as tmp:
        path = Path(tmp) / "batched.cir"
        path.write_text(batched_netlist(G))
        done = subprocess.run([ngspice_path(), "-b", str(path)], capture_output=True,
                              text=True, check=False)
    found = _PRINT.findall(done.stdout)
    T = np.array([float(x) for _, x in found])
    wall, thread_cpu, child_cpu = clock.stop()
    order = np.array([int(j) for j, _ in found])
    in_order = T.size == rows * cols and np.all(order == np.tile(np.arange(cols), rows))
    if done.returncode != 0 or not in_order:
        raise RuntimeError(f"batched ngspice failed (exit {done.returncode}, {T.size} of "
                           f"{rows * cols} currents): {(done.stderr or done.stdout)[-600:]}")
    return T.reshape(rows, cols), wall, thread_cpu + child_cpu


def bench_ngspice(G: np.ndarray, T: np.ndarray, budget_s: float, n_inputs: int) -> dict:
    rows = G.shape[0]
    inputs = sorted({0, rows // 2, rows - 1})[:n_inputs]
    per_input, per_cpu, errors = [], [], []
    for i in inputs:
        clock = Clock()
        current = run_ngspice(G, np.eye(rows)[i], R_WIRE, R_WIRE)
        wall, thread_cpu, child_cpu = clock.stop()
        per_input.append(wall)
        per_cpu.append(thread_cpu + child_cpu)
        errors.append(float(np.max(np.abs(current - T[i])) / np.max(np.abs(T[i]))))
    per = float(np.median(per_input))
    out = {"naive": {"inputs_timed": inputs, "per_input_s": per_input, "per_input_median_s": per,
                     "T_s": per * rows, "T_cpu_s": float(np.median(per_cpu)) * rows,
                     "how": f"median per-input time x M = {per:.4g} s x {rows}",
                     "max_rel_error_vs_engine": max(errors)}}
    if per * rows > budget_s:
        out["batched"] = {"skipped": f"naive estimate {per * rows:.0f} s > --spice-budget "
                                     f"{budget_s:.0f} s"}
        return out
    S, wall, cpu = run_batched(G)
    out["batched"] = {"T_s": wall, "T_cpu_s": cpu, "ops": rows,
                      "max_rel_error_vs_engine": float(np.max(np.abs(S - T)) / np.max(np.abs(T)))}
    return out

"""Benchmark of the crossbar engine: time per transfer matrix against scipy and ngspice.

Run from the repository root::

    python benchmarks/bench_circuit.py            # full run: 2.5 to 7 minutes on 2 cores
    python benchmarks/bench_circuit.py --quick    # 8x20, 64x16, 32x32 only: 35 to 80 s

For each array size it times, in the same run and interleaved, the numba engine
(``transfer_matrix``), the scipy yardstick (``solve_reference(G, np.eye(M), 1, 1)``: one
SuperLU factorisation applied to all M unit inputs; skipped, never extrapolated, where one
call exceeds ``--scipy-limit`` s) and ngspice up to 64x64 (naive: one process per unit input,
a few timed and multiplied by M; batched: one process looping over the M inputs, measured
in full and checked against the engine to 1e-8). Wall times are medians of several repeats
after a warm-up; the CPU time of the same calls is recorded as a load-independent check.
A second part (docs/performance.md) explains the numbers. What every column means:
benchmarks/README.md. Exit status 1 means a correctness check failed, not a missed target.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np
import scipy
import scipy.sparse.linalg as spla
from threadpoolctl import threadpool_limits

import yieldmc
import yieldmc.circuit.solver as solver_mod
from yieldmc.circuit import _kernels, solve_reference, transfer_matrix, transfer_matrix_info
from yieldmc.circuit.reference import _assemble
from yieldmc.spice import netlist, ngspice_path, run_ngspice

from _machine import cpu_model, git_commit

SIZES = [(8, 20), (64, 16), (32, 32), (64, 64), (128, 128), (256, 256)]
QUICK_SIZES = [(8, 20), (64, 16), (32, 32)]
G_MIN, G_MAX = 1e-6, 1e-4  # S, log-uniform
R_WIRE = 1.0  # ohm per row / column segment
SEED = 20240601
N_IMAGES = 180  # the reference network's test batch
SPICE_MAX_CELLS = 64 * 64
SPICE_RTOL = 1e-8  # batched/naive ngspice T vs the engine (max |dT| / max |T|)
ENGINE_RTOL = 1e-9  # engine vs scipy (DESIGN.md section 4)
LONG_CALL_S = 1.0  # calls longer than this get LONG_REPEATS samples
LONG_REPEATS = 3
PROBE_CELLS = 128 * 128  # scipy calls this large are first probed in a child with a timeout
#: Above this, scipy with OpenBLAS at its default threads is not timed: it was 5 to 30 times
#: slower than with 1 thread from 64x16 up (docs/performance.md), and costs minutes.
BLAS_DEFAULT_MAX_CELLS = 64 * 64
PERMC_SPEC = "MMD_AT_PLUS_A"  # the ordering yieldmc/circuit/reference.py uses
#: Passes over an (M, N, K) float64 array per CG iteration in _kernels._cg_block:
#: H p: 4 reads of p, 1 read and 2 writes of q; p.q: 2 reads; z, r update: 4 reads,
#: 2 writes; p update: 2 reads, 1 write.
PASSES_PER_ITERATION = 18
#: Floating-point operations per (cell, right-hand side) per CG iteration (same count).
FLOPS_PER_ITERATION = 29
#: (M, N, K) arrays alive during CG: rhs, z, r, p, q.
ARRAYS_IN_CG = 5
#: (kind, size, required speed-up of the engine) from issue 2.
TARGETS = [("scipy", (32, 32), 20.0), ("scipy", (64, 16), 20.0), ("ngspice", (32, 32), 10_000.0)]
_PRINT = re.compile(r"^\s*i\(vsense(\d+)\)\s*=\s*([-+0-9.eE]+)\s*$", re.MULTILINE)


def conductances(rows: int, cols: int, seed: int = SEED) -> np.ndarray:
    """The benchmark array: log-uniform conductances (S), one fixed stream per size."""
    rng = np.random.default_rng([seed, rows, cols])
    return np.exp(rng.uniform(np.log(G_MIN), np.log(G_MAX), (rows, cols)))


class Clock:
    """Wall time, CPU time of this thread, and CPU time of finished child processes (s).

    On a shared machine the wall time of a call depends on the other jobs; the CPU time a
    single-threaded call consumes hardly does, so both are recorded.
    """

    def __init__(self) -> None:
        self.wall, self.cpu, self.child = time.perf_counter(), time.thread_time(), _child_cpu()

    def stop(self) -> tuple[float, float, float]:
        return (time.perf_counter() - self.wall, time.thread_time() - self.cpu,
                _child_cpu() - self.child)


def _child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _faults(func, calls: int = 3) -> float:
    """Minor page faults per call: fresh memory the call touches (allocation, not compute)."""
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        func()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / calls


def _stats(samples: list[float], cpu: list[float], loops: int, first: float | None) -> dict:
    return {"median_s": float(np.median(samples)), "min_s": float(np.min(samples)),
            "cpu_median_s": float(np.median(cpu)), "samples_s": [float(s) for s in samples],
            "loops_per_sample": loops, "first_call_s": first}


def time_interleaved(funcs: dict, repeats: int, min_sample_s: float = 0.05,
                     first: dict | None = None) -> dict:
    """Median time per call of each function, samples interleaved so all see the same load.

    Each function is called once as a warm-up (unless its first-call time is given in
    ``first``), then ``repeats`` samples are taken round-robin (LONG_REPEATS for calls
    over LONG_CALL_S); a sample repeats the call until it lasts ``min_sample_s``.
    """
    first = dict(first or {})
    for name, f in funcs.items():
        if name not in first:
            t0 = time.perf_counter()
            f()
            first[name] = time.perf_counter() - t0
    loops = {k: max(1, int(np.ceil(min_sample_s / max(first[k], 1e-7)))) for k in funcs}
    wanted = {k: repeats if first[k] < LONG_CALL_S else min(repeats, LONG_REPEATS) for k in funcs}
    samples: dict[str, list[float]] = {k: [] for k in funcs}
    cpu: dict[str, list[float]] = {k: [] for k in funcs}
    for rep in range(max(wanted.values())):
        for name, f in funcs.items():
            if rep >= wanted[name]:
                continue
            clock = Clock()
            for _ in range(loops[name]):
                f()
            wall, thread_cpu, _ = clock.stop()
            samples[name].append(wall / loops[name])
            cpu[name].append(thread_cpu / loops[name])
    return {k: _stats(samples[k], cpu[k], loops[k], first[k]) for k in funcs}


# --- scipy yardstick -----------------------------------------------------------------------

def _scipy_call(G: np.ndarray, threads: int | None) -> np.ndarray:
    if threads is None:
        return solve_reference(G, np.eye(G.shape[0]), R_WIRE, R_WIRE)
    with threadpool_limits(limits=threads, user_api="blas"):
        return solve_reference(G, np.eye(G.shape[0]), R_WIRE, R_WIRE)


def _probe_child(rows: int, cols: int, threads: int | None, conn) -> None:
    G = conductances(rows, cols)
    t0 = time.perf_counter()
    _scipy_call(G, threads)
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


# --- one size --------------------------------------------------------------------------------

def bench_size(rows: int, cols: int, args) -> dict:
    G = conductances(rows, cols)
    res: dict = {"rows": rows, "cols": cols}
    T, info = transfer_matrix_info(G, R_WIRE, R_WIRE)
    res.update(iterations=info.iterations, max_residual=info.max_residual)

    # The engine and scipy with OpenBLAS at 1 thread: both single-threaded, interleaved.
    funcs = {"numba": lambda: transfer_matrix(G, R_WIRE, R_WIRE)}
    first: dict = {}
    scipy_res: dict = {}
    probe = None
    if rows * cols >= PROBE_CELLS:
        probe = probe_scipy(rows, cols, 1, args.scipy_limit)
        if probe is None:
            scipy_res["blas_1_thread"] = {
                "skipped": f"one call takes more than {args.scipy_limit:g} s"}
        else:
            first["blas_1_thread"] = probe  # the probe is the warm-up (scipy compiles nothing)
    if probe is not None or rows * cols < PROBE_CELLS:
        funcs["blas_1_thread"] = lambda: _scipy_call(G, 1)
    timing = time_interleaved(funcs, args.repeats, first=first)
    res["numba"] = timing.pop("numba")
    res["numba"]["minor_page_faults_per_call"] = _faults(funcs["numba"])
    scipy_res.update(timing)
    # OpenBLAS at its default threads: timed on its own, since after each call its worker
    # threads spin for a while and would steal the CPU from whatever is timed next.
    if rows * cols <= BLAS_DEFAULT_MAX_CELLS:
        scipy_res["blas_default"] = time_interleaved({"t": lambda: _scipy_call(G, None)},
                                                     args.repeats)["t"]
        time.sleep(0.5)  # let the spinning threads go idle
    else:
        scipy_res["blas_default"] = {"skipped": "not timed above 64x64 (slower than 1 thread)"}
    res["scipy"] = scipy_res
    t_numba, c_numba = res["numba"]["median_s"], res["numba"]["cpu_median_s"]
    done = {k: v for k, v in scipy_res.items() if "median_s" in v}
    res["speedup_vs_scipy"] = {k: v["median_s"] / t_numba for k, v in done.items()}
    if done:
        speedup = res["speedup_vs_scipy"]
        speedup["fastest_scipy"] = min(v["median_s"] for v in done.values()) / t_numba
        speedup["fastest_scipy_by_min_times"] = (
            min(v["min_s"] for v in done.values()) / res["numba"]["min_s"])
        R = _scipy_call(G, 1)
        res["accuracy_vs_scipy"] = {
            "max_abs_over_max": float(np.max(np.abs(T - R)) / np.max(np.abs(R))),
            "max_elementwise_rel": float(np.max(np.abs(T - R) / np.abs(R))),
        }
    if "blas_1_thread" in done:  # single-threaded on both sides: CPU times compare
        res["cpu_speedup_vs_scipy_1_thread"] = done["blas_1_thread"]["cpu_median_s"] / c_numba

    if ngspice_path() and rows * cols <= SPICE_MAX_CELLS:
        spice = bench_ngspice(G, T, args.spice_budget, args.spice_inputs)
        res["ngspice"] = spice
        res["speedup_vs_ngspice"] = {k: x["T_s"] / t_numba for k, x in spice.items() if "T_s" in x}
        res["cpu_speedup_vs_ngspice"] = {k: x["T_cpu_s"] / c_numba for k, x in spice.items()
                                         if "T_cpu_s" in x}

    # Ideal wires: validation + a copy of G. Compared with the numba time measured above.
    ideal = time_interleaved({"t": lambda: transfer_matrix(G, 0.0, 0.0)}, args.repeats)["t"]
    res["ideal_vs_ir_drop"] = {"ideal_s": ideal["median_s"], "ir_drop_s": t_numba,
                               "ratio": t_numba / ideal["median_s"]}
    v = np.random.default_rng([SEED, rows, cols, 1]).uniform(0.0, 0.2, (N_IMAGES, rows))
    with threadpool_limits(limits=1, user_api="blas"):  # as in a Monte Carlo worker
        inf = time_interleaved({"v_at_G": lambda: v @ G, "v_at_T": lambda: v @ T}, args.repeats)
    res["inference_180"] = {"v_at_G_s": inf["v_at_G"]["median_s"],
                            "v_at_T_s": inf["v_at_T"]["median_s"],
                            "ratio": inf["v_at_T"]["median_s"] / inf["v_at_G"]["median_s"]}
    return res


# --- compile time ----------------------------------------------------------------------------

_COMPILE_CHILD = """
import time, numpy as np
t0 = time.perf_counter()
from yieldmc.circuit import transfer_matrix
t1 = time.perf_counter()
transfer_matrix(np.full((3, 5), 1e-5)); transfer_matrix(np.full((5, 3), 1e-5))
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def compile_times() -> dict:
    """First calls (both routes) in fresh processes: cold numba cache, then warm cache."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="bench-numba-cache-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("cold_cache", "warm_cache"):
            done = subprocess.run([sys.executable, "-c", _COMPILE_CHILD], capture_output=True,
                                  text=True, env=env, check=True)
            imp, call = (float(x) for x in done.stdout.split())
            out[label] = {"import_s": imp, "first_calls_s": call}
    return out


# --- analysis (docs/performance.md) -----------------------------------------------------------

@numba.njit(cache=False)
def _triad(a, b, c, s):
    for i in range(a.size):
        a[i] = b[i] + s * c[i]


def triad_bandwidth(n_bytes: float) -> float:
    """Streaming bandwidth (GB/s, 3 x 8 bytes per element) at a given working-set size."""
    n = max(1024, int(n_bytes / 24))
    a, b, c = np.zeros(n), np.ones(n), np.ones(n)
    _triad(a, b, c, 2.0)
    loops = max(1, int(2e8 / (24 * n)))
    samples = []
    for _ in range(5):
        t0 = time.thread_time()
        for _ in range(loops):
            _triad(a, b, c, 2.0)
        samples.append((time.thread_time() - t0) / loops)
    return 24 * n / float(np.median(samples)) / 1e9


def per_iteration(rows: int, cols: int, block: int, n_iter: int) -> dict:
    """Time of one CG iteration: (run with n_iter iterations - run with 0) / n_iter."""
    G = conductances(rows, cols)
    sg = np.sqrt(G)
    rhs = np.random.default_rng([SEED, rows, cols, 2]).standard_normal((rows, cols, block))
    work = tuple(np.empty_like(rhs) for _ in range(3))  # r, p, q work arrays

    def run(iterations: int) -> float:  # CPU time of this thread: robust to other jobs
        z = rhs.copy()
        t0 = time.thread_time()
        _kernels._cg_block(sg, rhs, 0.0, R_WIRE, R_WIRE, 0.0, 0.0, iterations, z, *work)  # rtol 0
        return time.thread_time() - t0

    run(1)
    t0 = float(np.median([run(0) for _ in range(5)]))
    t1 = float(np.median([run(n_iter) for _ in range(5)]))
    per = (t1 - t0) / n_iter
    cells_rhs = rows * cols * block
    moved = PASSES_PER_ITERATION * 8 * cells_rhs
    working = ARRAYS_IN_CG * 8 * cells_rhs
    return {"rows": rows, "cols": cols, "block": block, "seconds": per,
            "ns_per_cell_rhs": per / cells_rhs * 1e9, "bytes_model": moved,
            "effective_GBps": moved / per / 1e9,
            "GFlops": FLOPS_PER_ITERATION * cells_rhs / per / 1e9,
            "working_set_bytes": working, "triad_GBps_same_size": triad_bandwidth(working)}


RHS_BLOCKS = (4, 8, 16, 32, 64)


def _with_block(G: np.ndarray, block: int):
    def call() -> None:
        solver_mod.RHS_BLOCK = block  # a module constant, monkeypatched and restored
        transfer_matrix(G, R_WIRE, R_WIRE)
    return call


def analysis(quick: bool, skip_lu_above: int) -> dict:
    out: dict = {}
    sizes = [(32, 32)] if quick else [(32, 32), (128, 128)]
    out["iterations_vs_r"] = []
    for rows, cols in sizes:
        G = conductances(rows, cols)
        for r in (0.1, 1.0, 10.0):
            _, info = transfer_matrix_info(G, r, r)
            t = time_interleaved({"t": lambda G=G, r=r: transfer_matrix(G, r, r)}, 3)["t"]
            out["iterations_vs_r"].append({"rows": rows, "cols": cols, "r_ohm": r,
                                           "iterations": info.iterations,
                                           "seconds": t["median_s"], "cpu_s": t["cpu_median_s"]})
    block = solver_mod.RHS_BLOCK
    sizes = [(32, 32)] if quick else [(32, 32), (64, 64), (128, 128), (256, 256)]
    out["per_iteration"] = [per_iteration(m, n, block, 20 if m * n <= 128 * 128 else 4)
                            for m, n in sizes]
    out["per_iteration"] += [per_iteration(32, 32, 32, 20)]
    sizes = [(32, 32)] if quick else [(64, 16), (32, 32), (64, 64), (128, 128)]
    out["rhs_block"] = []
    try:
        for rows, cols in sizes:
            G = conductances(rows, cols)
            funcs = {str(b): _with_block(G, b) for b in RHS_BLOCKS}  # interleaved
            t = time_interleaved(funcs, 5 if rows * cols <= 64 * 64 else 3)
            faults = {b: _faults(f) for b, f in funcs.items()}
            out["rhs_block"].append({"rows": rows, "cols": cols,
                                     "cpu_s": {b: x["cpu_median_s"] for b, x in t.items()},
                                     "wall_s": {b: x["median_s"] for b, x in t.items()},
                                     "minor_page_faults": faults})
    finally:
        solver_mod.RHS_BLOCK = block
    out["lu"] = []
    for rows, cols in (QUICK_SIZES if quick else SIZES):
        if rows * cols > skip_lu_above:
            continue
        G = conductances(rows, cols)
        with threadpool_limits(limits=1, user_api="blas"):  # CPU times of this thread
            t0 = time.thread_time()
            A, drive, _, _ = _assemble(G, R_WIRE, R_WIRE, 0.0, 0.0)
            t1 = time.thread_time()
            lu = spla.splu(A, permc_spec=PERMC_SPEC)
            t2 = time.thread_time()
            b = np.asarray(drive @ np.eye(rows))
            lu.solve(b)
            t3 = time.thread_time()
        t4 = time.perf_counter()  # OpenBLAS threads at their default: wall time
        if rows * cols <= BLAS_DEFAULT_MAX_CELLS:
            lu.solve(b)
        t5 = time.perf_counter() if rows * cols <= BLAS_DEFAULT_MAX_CELLS else None
        n = A.shape[0]
        out["lu"].append({"rows": rows, "cols": cols, "unknowns": n, "A_nnz": int(A.nnz),
                          "L_nnz": int(lu.L.nnz), "U_nnz": int(lu.U.nnz),
                          "fill_ratio": (lu.L.nnz + lu.U.nnz - n) / A.nnz,
                          "assemble_s": t1 - t0, "splu_s": t2 - t1, "solve_M_rhs_s": t3 - t2,
                          "solve_M_rhs_blas_default_s": None if t5 is None else t5 - t4})
    return out


# --- report ----------------------------------------------------------------------------------

def _caches() -> dict:
    out = {}
    for d in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind = (d / "level").read_text().strip(), (d / "type").read_text().strip()
            out[f"L{level} {kind}"] = (d / "size").read_text().strip()
        except OSError:
            continue
    return out


def machine() -> dict:
    return {"cpu_model": cpu_model(), "logical_cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "scipy": scipy.__version__,
            "yieldmc": yieldmc.__version__, "ngspice": ngspice_version(), "git_commit": git_commit(),
            "caches": _caches(), "environment": {k: v for k, v in os.environ.items()
                                                 if k.startswith(("OPENBLAS", "OMP", "MKL",
                                                                  "NUMBA", "MALLOC"))},
            "loadavg_start": list(os.getloadavg())}


def _ms(x: float | None) -> str:
    return "skipped" if x is None else f"{x * 1e3:.3f}"


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _x(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def _e(x: float | None) -> str:
    return "-" if x is None else f"{x:.1e}"


def print_tables(report: dict) -> None:
    rows = report["sizes"]
    print("\nWall time per transfer matrix T (medians; numba compiled, warm-up excluded)")
    head = (f"{'size':>9} {'it':>3} {'numba ms':>9} {'scipy1 ms':>10} {'scipyD ms':>10} "
            f"{'x scipy':>8} {'spice naive s':>13} {'spice batch s':>13} {'x naive':>8} "
            f"{'x batch':>8} {'err vs scipy':>12}")
    print(head + "\n" + "-" * len(head))
    for r in rows:
        sc, sp = r["scipy"], r.get("ngspice", {})
        batch = sp.get("batched", {})
        sx = r.get("speedup_vs_ngspice", {})
        print(f"{r['rows']:>4}x{r['cols']:<4} {r['iterations']:>3} "
              f"{_ms(r['numba']['median_s']):>9} "
              f"{_ms(sc.get('blas_1_thread', {}).get('median_s')):>10} "
              f"{_ms(sc.get('blas_default', {}).get('median_s')):>10} "
              f"{_x(r['speedup_vs_scipy'].get('fastest_scipy')):>8} "
              f"{_s(sp.get('naive', {}).get('T_s')):>13} "
              f"{'skipped' if 'skipped' in batch else _s(batch.get('T_s')):>13} "
              f"{_x(sx.get('naive')):>8} {_x(sx.get('batched')):>8} "
              f"{_e(r.get('accuracy_vs_scipy', {}).get('max_abs_over_max')):>12}")
    print("it: CG iterations. scipy1 / scipyD: solve_reference with OpenBLAS at 1 thread / at "
          "its default; x scipy: over the faster.\nskipped: one call exceeds --scipy-limit, or "
          "(scipyD) above 64x64, not timed.\nspice naive: median per-input time of a few "
          "run_ngspice processes x M. spice batch: one process, M x (alter + op + print), "
          "measured in full.")
    print("\nCPU time (load-independent check: CPU consumed by this thread, or by ngspice; "
          "faults: minor page faults per numba call)")
    head = (f"{'size':>9} {'numba ms':>9} {'faults':>7} {'scipy1 ms':>10} {'x scipy1':>9} "
            f"{'spice naive s':>13} {'spice batch s':>13} {'x naive':>8} {'x batch':>8}")
    print(head + "\n" + "-" * len(head))
    for r in rows:
        sp = r.get("ngspice", {})
        batch = sp.get("batched", {})
        cx = r.get("cpu_speedup_vs_ngspice", {})
        print(f"{r['rows']:>4}x{r['cols']:<4} {_ms(r['numba']['cpu_median_s']):>9} "
              f"{r['numba']['minor_page_faults_per_call']:>7.0f} "
              f"{_ms(r['scipy'].get('blas_1_thread', {}).get('cpu_median_s')):>10} "
              f"{_x(r.get('cpu_speedup_vs_scipy_1_thread')):>9} "
              f"{_s(sp.get('naive', {}).get('T_cpu_s')):>13} "
              f"{'skipped' if 'skipped' in batch else _s(batch.get('T_cpu_s')):>13} "
              f"{_x(cx.get('naive')):>8} {_x(cx.get('batched')):>8}")
    print("\nIdeal wires (r = 0: a copy of G) against IR drop; 180-image inference "
          "with OpenBLAS at 1 thread; errors: max |dT| / max |T|.")
    head = (f"{'size':>9} {'ideal ms':>9} {'IR ms':>9} {'IR/ideal':>9} {'v@G us':>8} "
            f"{'v@T us':>8} {'T/G':>5} {'spice naive err':>15} {'spice batch err':>15}")
    print(head + "\n" + "-" * len(head))
    for r in rows:
        iv, inf, sp = r["ideal_vs_ir_drop"], r["inference_180"], r.get("ngspice", {})
        print(f"{r['rows']:>4}x{r['cols']:<4} {iv['ideal_s'] * 1e3:>9.4f} "
              f"{iv['ir_drop_s'] * 1e3:>9.3f} {iv['ratio']:>9,.0f} "
              f"{inf['v_at_G_s'] * 1e6:>8.1f} {inf['v_at_T_s'] * 1e6:>8.1f} {inf['ratio']:>5.2f} "
              f"{_e(sp.get('naive', {}).get('max_rel_error_vs_engine')):>15} "
              f"{_e(sp.get('batched', {}).get('max_rel_error_vs_engine')):>15}")
    c = report["compile"]
    print("\nnumba first calls in a fresh process: "
          f"cold cache {c['cold_cache']['first_calls_s']:.2f} s (compile), "
          f"warm cache {c['warm_cache']['first_calls_s']:.2f} s (load)")
    print("\nTargets (speed-up of the numba transfer matrix, same run; MET is judged on the "
          "wall-time medians):")
    for t in report["targets"]:
        extra = [f"{_x(t[k])}x {label}" for k, label in
                 (("measured_by_min_times", "by fastest samples"), ("measured_cpu", "by CPU time"))
                 if t[k] is not None]
        print(f"  vs {t['against']:<8} at {t['size']:>6}: {_x(t['measured'])}x"
              f"{' (' + ', '.join(extra) + ')' if extra else ''}; needed {t['required']:,.0f}x, "
              f"against {t['compared_with']} -> {'MET' if t['met'] else 'NOT MET'}")


def print_analysis(a: dict) -> None:
    print("\nCG iterations against wire resistance (r_row = r_col = r):")
    for x in a["iterations_vs_r"]:
        print(f"  {x['rows']:>4}x{x['cols']:<4} r = {x['r_ohm']:>4} ohm: {x['iterations']:>3} "
              f"iterations, {x['seconds'] * 1e3:.2f} ms wall, {x['cpu_s'] * 1e3:.2f} ms CPU")
    print("\nOne CG iteration, CPU time (K = right-hand sides per block; bytes = "
          f"{PASSES_PER_ITERATION} passes x 8 B x M N K; triad: a[i] = b[i] + s c[i]):")
    for x in a["per_iteration"]:
        print(f"  {x['rows']:>4}x{x['cols']:<4} K={x['block']:<3} {x['seconds'] * 1e6:>9.1f} us "
              f"{x['ns_per_cell_rhs']:>6.2f} ns/(cell rhs) {x['effective_GBps']:>6.1f} GB/s "
              f"{x['GFlops']:>5.2f} GFlop/s; "
              f"working set {x['working_set_bytes'] / 2**20:>6.2f} MiB, "
              f"triad there {x['triad_GBps_same_size']:.1f} GB/s")
    print("\nCPU time per transfer matrix (ms) against RHS_BLOCK, and minor page faults per "
          "call [in brackets]:")
    for x in a["rhs_block"]:
        cells = " ".join(f"{b}:{t * 1e3:.3f} [{x['minor_page_faults'][b]}]"
                         for b, t in x["cpu_s"].items())
        print(f"  {x['rows']:>4}x{x['cols']:<4} {cells}")
    print("\nscipy LU (ordering MMD_AT_PLUS_A; CPU times with OpenBLAS at 1 thread, and the "
          "wall time of the solve with its default threads):")
    for x in a["lu"]:
        t = x["solve_M_rhs_blas_default_s"]
        dflt = "not timed" if t is None else f"{t * 1e3:.1f} ms"
        print(f"  {x['rows']:>4}x{x['cols']:<4} n={x['unknowns']:>6} nnz(A)={x['A_nnz']:>7} "
              f"nnz(L)={x['L_nnz']:>8} nnz(U)={x['U_nnz']:>8} fill x{x['fill_ratio']:.1f}; "
              f"assemble {x['assemble_s'] * 1e3:.1f} ms, splu {x['splu_s'] * 1e3:.1f} ms, "
              f"solve M rhs {x['solve_M_rhs_s'] * 1e3:.1f} ms (default BLAS threads: {dflt})")


def targets(report: dict) -> list[dict]:
    out = []
    by_size = {f"{r['rows']}x{r['cols']}": r for r in report["sizes"]}
    for against, (rows, cols), required in TARGETS:
        key = f"{rows}x{cols}"
        r = by_size.get(key)
        if r is None:
            continue
        if against == "scipy":
            measured = r["speedup_vs_scipy"].get("fastest_scipy")
            by_min = r["speedup_vs_scipy"].get("fastest_scipy_by_min_times")
            cpu = r.get("cpu_speedup_vs_scipy_1_thread")
            which = "the faster BLAS setting (CPU time: 1 thread)"
        else:  # the cheapest honest way to get T from ngspice
            sx, cx = r.get("speedup_vs_ngspice", {}), r.get("cpu_speedup_vs_ngspice", {})
            measured, by_min = (min(sx.values()) if sx else None), None
            cpu = min(cx.values()) if cx else None
            which = "the faster of naive and batched"
        out.append({"against": against, "size": key, "required": required, "measured": measured,
                    "measured_by_min_times": by_min, "measured_cpu": cpu,
                    "compared_with": which,
                    "met": measured is not None and measured >= required,
                    "met_by_cpu": cpu is not None and cpu >= required})
    return out


def parse_size(text: str) -> tuple[int, int]:
    rows, cols = text.lower().split("x")
    return int(rows), int(cols)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="8x20, 64x16, 32x32; fewer repeats")
    p.add_argument("--out", type=Path, default=Path("results/bench/circuit.json"))
    p.add_argument("--sizes", type=parse_size, nargs="+", help="e.g. 32x32 64x64 (overrides)")
    p.add_argument("--repeats", type=int, help="timing samples (default 7, quick 5)")
    p.add_argument("--scipy-limit", type=float, default=20.0,
                   help="skip scipy at sizes where one call exceeds this (s)")
    p.add_argument("--spice-budget", type=float, help="skip batched ngspice when the naive "
                   "estimate exceeds this (s; default 90, quick 30)")
    p.add_argument("--spice-inputs", type=int, default=3, help="inputs timed, naive ngspice")
    p.add_argument("--no-analysis", action="store_true", help="skip the explanatory part")
    p.add_argument("--from-json", type=Path, help="print the tables of a previous run's JSON "
                   "and exit (measures nothing)")
    args = p.parse_args(argv)
    args.repeats = args.repeats or (5 if args.quick else 7)
    if args.spice_budget is None:
        args.spice_budget = 30.0 if args.quick else 90.0
    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    if args.from_json:
        old = json.loads(args.from_json.read_text())
        print(f"{old['command']}  # {old['date']}, {old['wall_s']:.0f} s, load average "
              f"{old['machine']['loadavg_start'][0]:.1f} -> {old['machine']['loadavg_end'][0]:.1f}")
        print_tables(old)
        if "analysis" in old:
            print_analysis(old["analysis"])
        return 0

    start = time.perf_counter()
    report: dict = {"benchmark": "circuit", "command": " ".join(["python", *sys.argv]),
                    "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "machine": machine(),
                    "settings": {"sizes": [f"{m}x{n}" for m, n in sizes],
                                 "g_range_S": [G_MIN, G_MAX],
                                 "r_row_ohm": R_WIRE, "r_col_ohm": R_WIRE, "seed": SEED,
                                 "repeats": args.repeats, "rhs_block": solver_mod.RHS_BLOCK,
                                 "solver_rtol": solver_mod.SOLVER_RTOL,
                                 "scipy_limit_s": args.scipy_limit,
                                 "spice_budget_s": args.spice_budget}}
    report["compile"] = compile_times()
    transfer_matrix(conductances(3, 5))  # load both kernels' routes from the cache
    transfer_matrix(conductances(5, 3))
    report["sizes"] = []
    for rows, cols in sizes:
        print(f"measuring {rows}x{cols} ...", file=sys.stderr, flush=True)
        report["sizes"].append(bench_size(rows, cols, args))
    report["targets"] = targets(report)
    print_tables(report)
    if not args.no_analysis:
        print("analysis ...", file=sys.stderr, flush=True)
        largest = min(128 * 128, max(m * n for m, n in sizes))
        report["analysis"] = analysis(args.quick, skip_lu_above=largest)
        print_analysis(report["analysis"])

    failures = []
    for r in report["sizes"]:
        err = r.get("accuracy_vs_scipy", {}).get("max_abs_over_max")
        if err is not None and not err <= ENGINE_RTOL:
            failures.append(f"{r['rows']}x{r['cols']}: engine vs scipy {err:.2e} > {ENGINE_RTOL}")
        for kind, x in r.get("ngspice", {}).items():
            e = x.get("max_rel_error_vs_engine")
            if e is not None and not e <= SPICE_RTOL:
                failures.append(f"{r['rows']}x{r['cols']}: ngspice {kind} {e:.2e} > {SPICE_RTOL}")
    report["checks_failed"] = failures
    report["machine"]["loadavg_end"] = list(os.getloadavg())
    report["wall_s"] = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    os.replace(tmp, args.out)
    load = report["machine"]["loadavg_start"][0]
    print(f"\nwall time {report['wall_s']:.0f} s; load average {load:.1f}"
          f" -> {report['machine']['loadavg_end'][0]:.1f}; written {args.out}")
    for f in failures:
        print(f"CHECK FAILED: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

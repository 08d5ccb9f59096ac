"""Why the crossbar engine takes the time it does: the explanatory part of the circuit benchmark.

Run from the repository root::

    python benchmarks/bench_circuit_analysis.py           # about 1 to 2 minutes on 2 cores
    python benchmarks/bench_circuit_analysis.py --quick   # 32x32 only, about 15 s
    python benchmarks/bench_circuit_analysis.py --from-json results/bench/circuit_analysis.json

``bench_circuit.py`` runs it too (unless ``--no-analysis``), with its sizes. It measures
(docs/performance.md, "Why the engine is fast"):

* CG iterations and time against the wire resistance ``r_row = r_col = r``;
* the CPU time of one CG iteration (the shared block CG of ``yieldmc.circuit._wires`` as
  ``_kernels.cg_block`` runs it, with rtol 0: a run of n iterations minus a run of 0),
  as ns per (cell, right-hand side), effective bandwidth against a streaming triad of the
  same working set, and GFlop/s;
* the time per transfer matrix against the right-hand-side block size ``RHS_BLOCK``
  (monkeypatched, then restored), with minor page faults per call;
* scipy's sparse LU of the reference (fill-in, and the time to assemble, factorise, solve).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numba
import numpy as np
import scipy.sparse.linalg as spla
from threadpoolctl import threadpool_limits

import yieldmc.circuit.solver as solver_mod
from yieldmc.circuit import Resistances, _kernels, transfer_matrix, transfer_matrix_info
from yieldmc.circuit.reference import assemble_mna

from _machine import machine_record, write_record
from _timing import faults, time_interleaved
from _yardsticks import BLAS_DEFAULT_MAX_CELLS, PERMC_SPEC, QUICK_SIZES, R_WIRE, SEED, SIZES, conductances

WIRES = Resistances(R_WIRE, R_WIRE, 0.0, 0.0)
#: Passes over an (M, N, K) float64 array per CG iteration (``_wires.cg_iterations`` with
#: the dot product fused into the operator's column sweep, as the linear engine runs it):
#: H p: 4 reads of p, 1 read and 2 writes of q; p.q: 2 reads; z, r update: 4 reads,
#: 2 writes; p update: 2 reads, 1 write.
PASSES_PER_ITERATION = 18
#: Floating-point operations per (cell, right-hand side) per CG iteration (same count).
FLOPS_PER_ITERATION = 29
#: (M, N, K) arrays alive during CG: rhs, z, r, p, q.
ARRAYS_IN_CG = 5


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
        _kernels.cg_block(sg, rhs, WIRES, 0.0, iterations, z, *work)  # rtol 0: no early stop
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
            page_faults = {b: faults(f) for b, f in funcs.items()}
            out["rhs_block"].append({"rows": rows, "cols": cols,
                                     "cpu_s": {b: x["cpu_median_s"] for b, x in t.items()},
                                     "wall_s": {b: x["median_s"] for b, x in t.items()},
                                     "minor_page_faults": page_faults})
    finally:
        solver_mod.RHS_BLOCK = block
    out["lu"] = []
    for rows, cols in (QUICK_SIZES if quick else SIZES):
        if rows * cols > skip_lu_above:
            continue
        G = conductances(rows, cols)
        with threadpool_limits(limits=1, user_api="blas"):  # CPU times of this thread
            t0 = time.thread_time()
            A, drive, _, _ = assemble_mna(G, R_WIRE, R_WIRE, 0.0, 0.0)
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="32x32 only")
    p.add_argument("--out", type=Path, default=Path("results/bench/circuit_analysis.json"))
    p.add_argument("--from-json", type=Path, help="print a previous run's JSON and exit")
    args = p.parse_args(argv)
    if args.from_json:
        old = json.loads(args.from_json.read_text())
        print(f"{old['command']}  # {old['date']}")
        print_analysis(old["analysis"])
        return 0
    info = machine_record()
    start = time.perf_counter()
    result = analysis(args.quick, skip_lu_above=128 * 128)
    print_analysis(result)
    write_record(args.out, "circuit_analysis", " ".join(["python", *sys.argv]), info,
                 {"quick": args.quick, "g_range_S": [1e-6, 1e-4], "r_row_ohm": R_WIRE,
                  "r_col_ohm": R_WIRE, "seed": SEED, "rhs_block": solver_mod.RHS_BLOCK},
                 {"analysis": result, "wall_s": time.perf_counter() - start})
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

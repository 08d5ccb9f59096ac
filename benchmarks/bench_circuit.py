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
A second part, ``bench_circuit_analysis.py`` (run here too unless ``--no-analysis``), explains
the numbers (docs/performance.md). What every column means: benchmarks/README.md. Exit
status 1 means a correctness check failed, not a missed target.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy
from threadpoolctl import threadpool_limits

import yieldmc.circuit.solver as solver_mod
from yieldmc.circuit import transfer_matrix, transfer_matrix_info
from yieldmc.spice import ngspice_path

from _machine import machine_record, write_record
from _timing import faults, time_interleaved
from _yardsticks import (
    BLAS_DEFAULT_MAX_CELLS,
    G_MAX,
    G_MIN,
    QUICK_SIZES,
    R_WIRE,
    SEED,
    SIZES,
    bench_ngspice,
    conductances,
    ngspice_version,
    probe_scipy,
    scipy_call,
)
from bench_circuit_analysis import analysis, print_analysis

N_IMAGES = 180  # the reference network's test batch
SPICE_MAX_CELLS = 64 * 64
SPICE_RTOL = 1e-8  # batched/naive ngspice T vs the engine (max |dT| / max |T|)
ENGINE_RTOL = 1e-9  # engine vs scipy (DESIGN.md section 4)
PROBE_CELLS = 128 * 128  # scipy calls this large are first probed in a child with a timeout
#: (kind, size, required speed-up of the engine) from issue 2.
TARGETS = [("scipy", (32, 32), 20.0), ("scipy", (64, 16), 20.0), ("ngspice", (32, 32), 10_000.0)]


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
        funcs["blas_1_thread"] = lambda: scipy_call(G, 1)
    timing = time_interleaved(funcs, args.repeats, first=first)
    res["numba"] = timing.pop("numba")
    res["numba"]["minor_page_faults_per_call"] = faults(funcs["numba"])
    scipy_res.update(timing)
    # OpenBLAS at its default threads: timed on its own, since after each call its worker
    # threads spin for a while and would steal the CPU from whatever is timed next.
    if rows * cols <= BLAS_DEFAULT_MAX_CELLS:
        scipy_res["blas_default"] = time_interleaved({"t": lambda: scipy_call(G, None)},
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
        R = scipy_call(G, 1)
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
    """:func:`_machine.machine_record`, with scipy, ngspice, the caches and the environment."""
    return {**machine_record(), "scipy": scipy.__version__, "ngspice": ngspice_version(),
            "caches": _caches(), "environment": {k: v for k, v in os.environ.items()
                                                 if k.startswith(("OPENBLAS", "OMP", "MKL",
                                                                  "NUMBA", "MALLOC"))}}


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
    info = machine()
    settings = {"sizes": [f"{m}x{n}" for m, n in sizes], "g_range_S": [G_MIN, G_MAX],
                "r_row_ohm": R_WIRE, "r_col_ohm": R_WIRE, "seed": SEED, "repeats": args.repeats,
                "rhs_block": solver_mod.RHS_BLOCK, "solver_rtol": solver_mod.SOLVER_RTOL,
                "scipy_limit_s": args.scipy_limit, "spice_budget_s": args.spice_budget}
    report: dict = {}
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
    report["wall_s"] = time.perf_counter() - start
    record = write_record(args.out, "circuit", " ".join(["python", *sys.argv]), info, settings, report)
    load = record["machine"]["loadavg_start"][0]
    print(f"\nwall time {report['wall_s']:.0f} s; load average {load:.1f}"
          f" -> {record['machine']['loadavg_end'][0]:.1f}; written {args.out}")
    for f in failures:
        print(f"CHECK FAILED: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

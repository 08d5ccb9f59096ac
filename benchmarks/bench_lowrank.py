"""Benchmark of the rank-k transfer-matrix update against a fresh CG solve, on one core.

Run from the repository root::

    python benchmarks/bench_lowrank.py                                  # about 5 s
    python benchmarks/bench_lowrank.py --quick                          # about 3 s
    python benchmarks/bench_lowrank.py --out                            # + results/bench/lowrank.json
    python benchmarks/bench_lowrank.py --quick --out /tmp/lowrank.json

For each of the four arrays of the ``paper`` preset (64x16, 8x16, 8x16, 8x20; real
fault-free conductances from ``DieModel.build``, the preset's wires) it builds a
:class:`~yieldmc.engine.lowrank.LowRankCache` (build time, memory, T0 against the die's
CG T0), then, for k = 1, 2, 5, 10, 20, 50, 100, 200, 400 changed cells (k <= M N; cells
drawn uniformly, each stuck at g_on or g_off with probability 1/2, or at the other one
where the cell already has that value, so that exactly k cells change: half the paper
cells sit at g_off; ``--patterns`` draws per k), times one transfer matrix by

* ``update``: the compiled rank-k update per die, as the chunk engine runs it (the kernel
  ``_lowrank.update_chunk`` on all the patterns in one call, one block, no Python
  validation, divided by the number of patterns);
* ``wrapper``: the public ``lowrank_transfer(cache, G1)`` (validation included);
* ``cg_kernel``: the compiled CG transfer matrix itself (``_kernels.transfer``: by columns
  or by rows, no Python validation): what the chunk engine calls above the crossover;
* ``cg``: the public ``transfer_matrix_info(G1, ...)``;
* ``faulty``: today's ``yieldmc.circuit.update.faulty_transfer(G0, T0, G1, ...)``.

The calls are interleaved (every method sees the same load), each pattern is timed
``--repeats`` times and keeps its fastest time (the machine is shared: slower samples are
other jobs), and a method's time is the median over the patterns. The **crossover** is
the k where ``update`` and ``cg_kernel`` cost the same, interpolated log-log between the
grid points that bracket it (``update`` grows as k^3, CG hardly depends on k); the same
against ``faulty``. Accuracy: the largest ``max |T - T_ref| / max |T_ref|`` of the update
against ``solve_reference`` (scipy direct solve of the faulty array) over one pattern
per k, and against the CG engine over all patterns.

A second table times the preset's own die population (``mixed`` defects, dies
0..``--dies``-1): per array the median k and the per-die time of ``update`` and ``faulty``.
"""

from __future__ import annotations

import os

# One core: set before numpy / numba are imported.
for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from yieldmc.circuit import Resistances, _kernels, solve_reference, transfer_matrix_info  # noqa: E402
from yieldmc.circuit.solver import RHS_BLOCK, SOLVER_MAX_ITER, SOLVER_RTOL  # noqa: E402
from yieldmc.circuit.update import faulty_transfer  # noqa: E402
from yieldmc.config import load_config  # noqa: E402
from yieldmc.die import DieModel  # noqa: E402
from yieldmc.engine import _lowrank  # noqa: E402
from yieldmc.engine.lowrank import (  # noqa: E402
    LowRankCache,
    lowrank_transfer,
    lowrank_transfers,
    max_rank,
    pack_changes,
)

from _machine import machine_record, pin_one_core, write_record  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "results" / "bench" / "lowrank.json"
KS = (1, 2, 5, 10, 20, 50, 100, 200, 400)
METHODS = ("update", "wrapper", "cg_kernel", "cg", "faulty")


def cg_kernel(G, w) -> np.ndarray:
    """The compiled CG transfer matrix, as ``transfer_matrix_checked`` calls it (no validation)."""
    T = np.empty(G.shape)
    _kernels.transfer(G, Resistances.of(w), SOLVER_RTOL, SOLVER_MAX_ITER, RHS_BLOCK, T)
    return T


def rel_err(T, ref) -> float:
    return float(np.abs(T - ref).max() / np.abs(ref).max())


def update_kernel(cache, packed, out) -> None:
    """The chunk kernel on all dies of ``packed`` in one block: what the chunk engine runs."""
    offsets, cells, g_new = packed
    status = np.zeros(offsets.size - 1, dtype=np.int64)
    _lowrank.update_chunk(*cache.kernel_args(), offsets, cells, g_new, 1, out, status)
    if np.any(status):
        raise RuntimeError("the rank-k update reported a singular system")


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def crossover(ks, upd, other) -> float | None:
    """k where ``upd(k) = other(k)``, log-log interpolated; None when never crossed in the grid."""
    ks, upd, other = map(np.asarray, (ks, upd, other))
    diff = np.log(upd) - np.log(other)
    if diff[0] >= 0:
        return float(ks[0]) if diff[0] == 0 else 0.0
    for a in range(len(ks) - 1):
        if diff[a + 1] >= 0:
            t = -diff[a] / (diff[a + 1] - diff[a])
            return float(np.exp(np.log(ks[a]) + t * (np.log(ks[a + 1]) - np.log(ks[a]))))
    return None


def bench_array(spec, T0_cg, w, cfg, args, rng) -> dict:
    G0 = spec.G
    m_rows, n_cols = G0.shape
    t = time.perf_counter()
    cache = LowRankCache.from_conductances(G0, w.r_row, w.r_col, r_driver=w.r_driver, r_sense=w.r_sense)
    build_s = time.perf_counter() - t
    res = {"shape": [m_rows, n_cols], "cache_build_s": build_s, "cache_mib": cache.nbytes / 2**20,
           "T0_vs_cg_engine": rel_err(cache.T0, T0_cg), "max_rank": max_rank(m_rows, n_cols), "k": {}}
    ks = [k for k in KS if k <= m_rows * n_cols]
    for k in ks:
        n_pat = args.patterns if k <= 100 else max(3, args.patterns // 4)
        G1s, cells_list, g_list = [], [], []
        for _ in range(n_pat):
            cells = np.sort(rng.choice(G0.size, k, replace=False))
            g = np.where(rng.random(k) < 0.5, cfg.device.g_on, cfg.device.g_off)
            g = np.where(g == G0.flat[cells], cfg.device.g_on + cfg.device.g_off - g, g)
            G1 = G0.copy()
            G1.flat[cells] = g
            G1s.append(G1)
            cells_list.append(cells)
            g_list.append(G1.flat[cells].copy())
        packed = pack_changes(cells_list, g_list)
        out = np.empty((n_pat, m_rows, n_cols))
        kw = {"r_driver": w.r_driver, "r_sense": w.r_sense}
        calls = {
            "wrapper": lambda G1: lowrank_transfer(cache, G1),
            "cg_kernel": lambda G1: cg_kernel(G1, w),
            "cg": lambda G1, kw=kw: transfer_matrix_info(G1, w.r_row, w.r_col, **kw),
            "faulty": lambda G1, kw=kw: faulty_transfer(G0, T0_cg, G1, w.r_row, w.r_col, raise_on_failure=False,
                                                        **kw),
        }
        update_kernel(cache, packed, out)  # warm-up
        assert np.array_equal(out, lowrank_transfers(cache, *packed, n_blocks=1))
        for fn in calls.values():
            fn(G1s[0])
        samples = {m: np.empty((args.repeats, n_pat)) for m in METHODS}
        for r in range(args.repeats):
            samples["update"][r, :] = timed(lambda packed=packed, out=out: update_kernel(cache, packed, out)) / n_pat
            for p, G1 in enumerate(G1s):
                for name, fn in calls.items():
                    samples[name][r, p] = timed(lambda fn=fn, G1=G1: fn(G1))
        err_cg = max(rel_err(out[p], transfer_matrix_info(G1s[p], w.r_row, w.r_col, **kw)[0])
                     for p in range(n_pat))
        ref = solve_reference(G1s[0], np.eye(m_rows), w.r_row, w.r_col, **kw)
        res["k"][k] = {
            "patterns": n_pat,
            "us": {m: float(np.median(samples[m].min(axis=0)) * 1e6) for m in METHODS},
            "err_vs_reference": rel_err(out[0], ref),
            "err_vs_cg": err_cg,
            "faulty_method": faulty_transfer(G0, T0_cg, G1s[0], w.r_row, w.r_col, **kw)[2],
            "samples_us": {m: (s * 1e6).round(3).tolist() for m, s in samples.items()},
        }
    us = {m: [res["k"][k]["us"][m] for k in ks] for m in METHODS}
    res["crossover"] = {other: crossover(ks, us["update"], us[other]) for other in ("cg_kernel", "cg", "faulty")}
    return res


def bench_population(model, caches, args) -> dict:
    """The preset's own dies: per array, the median k and per-die update vs faulty_transfer."""
    w = model.wires
    kw = {"r_driver": w.r_driver, "r_sense": w.r_sense}
    dies = [model.die_conductances(d)[0] for d in range(args.dies)]
    res = {}
    for a, (spec, cache, T0) in enumerate(zip(model.layout.arrays, caches, model.T0, strict=True)):
        G1s = [Gs[a] for Gs in dies]
        ch = [np.flatnonzero(G1 != spec.G) for G1 in G1s]
        packed = pack_changes(ch, [G1.ravel()[c] for G1, c in zip(G1s, ch, strict=True)])
        out = np.empty((len(G1s), *spec.G.shape))
        update_kernel(cache, packed, out)
        faulty = lambda G1, spec=spec, T0=T0: faulty_transfer(  # noqa: E731
            spec.G, T0, G1, w.r_row, w.r_col, raise_on_failure=False, **kw)
        for G1 in G1s[:2]:
            faulty(G1)
        upd, fty = np.empty(args.repeats), np.empty((args.repeats, len(G1s)))
        for r in range(args.repeats):
            upd[r] = timed(lambda cache=cache, packed=packed, out=out: update_kernel(cache, packed, out)) / len(G1s)
            for d, G1 in enumerate(G1s):
                fty[r, d] = timed(lambda faulty=faulty, G1=G1: faulty(G1))
        ks = np.array([c.size for c in ch])
        res[f"{a}:{spec.shape[0]}x{spec.shape[1]}"] = {
            "dies": len(G1s), "k_median": float(np.median(ks)), "k_mean": float(ks.mean()),
            "k_max": int(ks.max()), "dies_with_faults": int(np.count_nonzero(ks)),
            "update_us_per_die": float(upd.min() * 1e6),
            "faulty_us_per_die_mean": float(fty.min(axis=0).mean() * 1e6),
            "faulty_us_per_faulty_die_median": float(np.median(fty.min(axis=0)[ks > 0]) * 1e6) if np.any(ks) else 0.0,
        }
    return res


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer patterns, repeats and dies")
    parser.add_argument("--repeats", type=int, default=None, help="timings per pattern (default 5, quick 3)")
    parser.add_argument("--patterns", type=int, default=None, help="patterns per k (default 16, quick 6)")
    parser.add_argument("--dies", type=int, default=None, help="population dies (default 200, quick 50)")
    parser.add_argument("--out", type=Path, nargs="?", const=DEFAULT_OUT, default=None,
                        help=f"write the JSON (default path {DEFAULT_OUT.relative_to(ROOT)})")
    args = parser.parse_args()
    args.repeats = args.repeats or (3 if args.quick else 5)
    args.patterns = args.patterns or (6 if args.quick else 16)
    args.dies = args.dies or (50 if args.quick else 200)

    pin_one_core()
    info = machine_record()
    cfg = load_config("paper")
    model = DieModel.build(cfg)
    w = model.wires
    rng = np.random.default_rng(20240601)
    arrays, caches = {}, []
    with threadpool_limits(limits=1):
        for a, (spec, T0) in enumerate(zip(model.layout.arrays, model.T0, strict=True)):
            arrays[f"{a}:{spec.shape[0]}x{spec.shape[1]}"] = bench_array(spec, T0, w, cfg, args, rng)
            caches.append(LowRankCache.from_conductances(spec.G, w.r_row, w.r_col,
                                                         r_driver=w.r_driver, r_sense=w.r_sense))
        population = bench_population(model, caches, args)
    info["loadavg_end"] = list(os.getloadavg())

    print(f"rank-k update vs fresh CG solve, paper arrays, one core ({info['cpu_model']}), "
          f"load {info['loadavg_start'][0]:.1f} -> {info['loadavg_end'][0]:.1f}, "
          f"{args.repeats} repeats, times in us per transfer matrix (median over patterns)")
    for name, res in arrays.items():
        print(f"\narray {name}: cache {res['cache_mib']:.2f} MiB, built in {res['cache_build_s'] * 1e3:.1f} ms, "
              f"T0 vs CG engine {res['T0_vs_cg_engine']:.1e}; max_rank() = {res['max_rank']}")
        print(f"{'k':>5} {'update':>9} {'wrapper':>9} {'cg_kernel':>9} {'cg':>9} {'faulty':>9} "
              f"{'cg/upd':>7} {'flt/upd':>7}  {'err ref':>8} {'err cg':>8}  faulty route")
        for k, r in res["k"].items():
            u = r["us"]
            print(f"{k:>5} {u['update']:>9.2f} {u['wrapper']:>9.2f} {u['cg_kernel']:>9.1f} {u['cg']:>9.1f} "
                  f"{u['faulty']:>9.1f} {u['cg_kernel'] / u['update']:>7.1f} {u['faulty'] / u['update']:>7.1f}  "
                  f"{r['err_vs_reference']:>8.1e} {r['err_vs_cg']:>8.1e}  {r['faulty_method']}")
        c = res["crossover"]
        fmt = lambda x: "beyond the grid" if x is None else f"k = {x:.0f}"  # noqa: E731
        print(f"crossover: update = cg_kernel at {fmt(c['cg_kernel'])}, = cg at {fmt(c['cg'])}, "
              f"= faulty_transfer at {fmt(c['faulty'])}")
    print(f"\npaper population ({args.dies} dies, mixed defects): per array, us per die")
    print(f"{'array':<9} {'k med':>6} {'k max':>6} {'faulty dies':>11} {'update':>8} {'faulty':>8} "
          f"{'faulty|k>0':>10}")
    for name, r in population.items():
        print(f"{name:<9} {r['k_median']:>6.0f} {r['k_max']:>6} {r['dies_with_faults']:>11} "
              f"{r['update_us_per_die']:>8.2f} {r['faulty_us_per_die_mean']:>8.1f} "
              f"{r['faulty_us_per_faulty_die_median']:>10.1f}")
    tot_u = sum(r["update_us_per_die"] for r in population.values())
    tot_f = sum(r["faulty_us_per_die_mean"] for r in population.values())
    print(f"all four arrays: update {tot_u:.2f} us per die, faulty_transfer {tot_f:.1f} us per die "
          f"({tot_f / tot_u:.0f}x)")

    if args.out is not None:
        write_record(args.out, "lowrank", "python benchmarks/bench_lowrank.py" + (" --quick" if args.quick else ""),
                     info, {"preset": "paper", "ks": list(KS), "repeats": args.repeats,
                            "patterns": args.patterns, "dies": args.dies,
                            "wires": Resistances.of(w)._asdict(),
                            "statistic": "per pattern: fastest of the repeats; per k: median over patterns"},
                     {"arrays": arrays, "population": population})
        print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

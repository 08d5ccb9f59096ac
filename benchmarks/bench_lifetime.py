"""Lifetime throughput: ``yieldmc lifetime`` against ``yieldmc sample`` of the same dies, same run.

    python benchmarks/bench_lifetime.py [--dies 1000] [--checkpoints 10] [--jobs 2]
                                        [--out results/bench/lifetime.json]

Samples ``--dies`` dies of the ``paper`` preset into a temporary run (``run_sample``, the
compiled engine, ``--jobs`` threads), then follows them with ``run_lifetime`` over
``--checkpoints`` log-spaced checkpoints from 1 hour to 10 years, twice: policies ``none``
only (the circuit: fault growth, drifted inverses, update route, forward pass) and
``none,once,recal,online`` (the issue's command: the correctors' training on top). Reports
each wall time and its ratio to the sample's, and, on one chunk of 64 dies at the last
checkpoint, the update route (:func:`yieldmc.lifetime.circuit.checkpoint_transfers`) against
fresh CG solves of every faulty array (:func:`yieldmc.circuit.solver.transfer_matrix_checked`),
both single-threaded and interleaved, and the time to build the checkpoints' inverses
(:class:`yieldmc.lifetime.run.LifetimeContext`, 2 threads). Read the ratios, not the times: the machine is shared.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from yieldmc import defects
from yieldmc.circuit.solver import transfer_matrix_checked
from yieldmc.config import load_config
from yieldmc.die import DieModel
from yieldmc.lifetime import LifetimeSettings, PolicySettings, checkpoint_times, run_lifetime
from yieldmc.lifetime.circuit import array_conductances, checkpoint_transfers
from yieldmc.lifetime.faults import YEAR_S, codes_at
from yieldmc.lifetime.run import LifetimeContext
from yieldmc.montecarlo import run_sample
from yieldmc.store import RunStore

from _machine import machine_record, write_record
from _timing import time_interleaved


def _route_ratio(run: Path, settings: LifetimeSettings) -> dict:
    """Update route vs fresh CG solves, one chunk of 64 dies at the last checkpoint, 1 thread."""
    import numba

    from yieldmc.config import from_dict
    from yieldmc.engine.chunk import simulate_chunk_compiled
    from yieldmc.lifetime.faults import fault_history

    store = RunStore.open(run)
    model = DieModel.build(from_dict(store.info["config"]), store.network_path)
    t = time.perf_counter()
    ctx = LifetimeContext(model, settings, 2)
    context_s = time.perf_counter() - t
    dies = np.arange(64)
    t0 = simulate_chunk_compiled(ctx.design, dies, keep_masks=True)
    ages, codes = fault_history(settings.faults, ctx.design.seed, dies, t0.masks, ctx.shapes, ctx.cell_off)
    now = codes_at(ages, codes, float(settings.ages_s[-1]))
    circuit = ctx.circuits[-1]

    def fresh():
        for i in range(dies.size):
            for a in range(len(circuit.G0)):
                block = now[i, ctx.cell_off[a]:ctx.cell_off[a + 1]]
                if np.any(block != defects.HEALTHY):
                    transfer_matrix_checked(array_conductances(circuit, a, block), circuit.wires)

    numba.set_num_threads(1)
    try:
        times = time_interleaved({"update": lambda: checkpoint_transfers(circuit, now, ctx.cell_off),
                                  "fresh_cg": fresh}, repeats=5)
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    _, routes = checkpoint_transfers(circuit, now, ctx.cell_off)
    return {"context_s_2_threads": context_s, "dies": int(dies.size), "routes": routes,
            "stuck_cells_mean": float(np.count_nonzero(now, 1).mean()),
            "update_ms": times["update"]["median_s"] * 1e3, "fresh_cg_ms": times["fresh_cg"]["median_s"] * 1e3,
            "speedup": times["fresh_cg"]["median_s"] / times["update"]["median_s"], "samples": times}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dies", type=int, default=1000)
    ap.add_argument("--checkpoints", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("results/bench/lifetime.json"))
    args = ap.parse_args()
    machine = machine_record()
    settings = {"dies": args.dies, "checkpoints": args.checkpoints, "jobs": args.jobs, "preset": "paper",
                "t0": "1h", "t_end": "10y"}
    times = tuple(checkpoint_times(3600.0, 10 * YEAR_S, args.checkpoints))
    with tempfile.TemporaryDirectory(prefix="bench-lifetime-") as tmp:
        run = Path(tmp) / "run"
        run_sample(load_config("paper"), 64, Path(tmp) / "warm", jobs=args.jobs)  # compile, network cache
        t = time.perf_counter()
        summary = run_sample(load_config("paper"), args.dies, run, jobs=args.jobs)
        sample_s = time.perf_counter() - t
        results = {"sample_wall_s": sample_s, "sample_dies_per_s": summary["dies_per_s"], "lifetime": {}}
        print(f"sample: {args.dies} dies in {sample_s:.2f} s")
        for name, pols in (("none", ("none",)), ("none,once,recal,online", ("none", "once", "recal", "online"))):
            ls = LifetimeSettings(times_s=times, policies=PolicySettings(policies=pols))
            t = time.perf_counter()
            out = run_lifetime(run, ls, jobs=args.jobs, overwrite=True)
            wall = time.perf_counter() - t
            results["lifetime"][name] = {"wall_s": wall, "ratio_to_sample": wall / sample_s,
                                         "die_checkpoints_per_s": args.dies * len(times) / wall,
                                         "routes": out["routes_this_call"],
                                         "policies": out["policies"]}
            print(f"lifetime --policies {name}: {wall:.2f} s = {wall / sample_s:.1f}x the sample, "
                  f"{args.dies * len(times) / wall:,.0f} die-checkpoints/s, routes {out['routes_this_call']}")
        results["route"] = _route_ratio(run, LifetimeSettings(times_s=times))
        r = results["route"]
        print(f"update route vs fresh CG (64 dies, last checkpoint, 1 thread): {r['update_ms']:.1f} ms vs "
              f"{r['fresh_cg_ms']:.1f} ms = {r['speedup']:.1f}x; the checkpoints' inverses (LifetimeContext, "
              f"2 threads): {r['context_s_2_threads']:.2f} s")
    write_record(args.out, "lifetime", "python " + " ".join(sys.argv), machine, settings, results)


if __name__ == "__main__":
    main()

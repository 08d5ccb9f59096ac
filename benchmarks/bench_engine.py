"""Benchmark of the compiled chunk engine against the readable reference, on one core.

Run from the repository root::

    python benchmarks/bench_engine.py                          # about 30 s
    python benchmarks/bench_engine.py --quick                  # about 10 s
    python benchmarks/bench_engine.py --out                    # + results/bench/engine.json
    python benchmarks/bench_engine.py --quick --out /tmp/engine.json

The ``paper`` preset as it ships (``mixed`` defects, severity 0.005-0.05, 1 ohm wires: IR
drop, the 180 test images' output voltages kept), one numba and BLAS thread, the process
pinned to one CPU. Both engines simulate the same dies: the reference is
:func:`yieldmc.montecarlo.simulate_chunk` with its die streams switched to
``DieStream(seed, die)`` (the edit pending in yieldmc/rng.py, patched here), so the two
draw the same defects; the script checks that the predictions agree on every die timed.

Rows of the table (times per die; each the median of ``--repeats`` interleaved runs):

* ``compiled kernel``: :func:`yieldmc.engine.chunk.simulate_chunk_compiled` on a chunk of
  ``--dies`` dies (the one numba call; float32 voltages and typed columns preallocated);
* ``compiled + columns``: plus :meth:`ChunkResult.columns` (defect_params as a typed
  pyarrow column, layers_affected strings: the Parquet table's columns);
* ``reference``: ``montecarlo.simulate_chunk`` on ``--ref-dies`` of the same dies;
* per stage, the same kernel stopped early (``upto``): ``sampling`` (stream + defects),
  ``transfer`` (changed cells and T of every array: reuse / rank-k / CG), ``forward``
  (the analog forward pass of the images, predictions, outputs), by difference;
* ``forward, full layer 0``: the design without the layer-0 shortcut (P0 + rank-k
  correction), for comparison; ``sample_chunk``: the public compiled sampler alone.

Read the ratio (same run, same load), not the absolute times: the machine is shared.
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

from yieldmc import montecarlo  # noqa: E402
from yieldmc.config import load_config  # noqa: E402
from yieldmc.die import DieModel  # noqa: E402
from yieldmc.engine import _chunk  # noqa: E402
from yieldmc.engine.chunk import ROUTE_NAMES, EngineDesign, simulate_chunk_compiled  # noqa: E402
from yieldmc.engine.sampling import sample_chunk  # noqa: E402

from _machine import machine_record, pin_one_core, write_record  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "results" / "bench" / "engine.json"
FIRST_DIE = 10_000  # dies FIRST_DIE.. (any range: each die depends only on its index)


def per_die_us(seconds: float, n: int) -> float:
    return seconds / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer dies and repeats")
    parser.add_argument("--dies", type=int, default=None, help="compiled chunk (default 4000, quick 1000)")
    parser.add_argument("--ref-dies", type=int, default=None, help="reference dies (default 200, quick 50)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved runs (default 5, quick 3)")
    parser.add_argument("--out", type=Path, nargs="?", const=DEFAULT_OUT, default=None,
                        help=f"write the JSON (default path {DEFAULT_OUT.relative_to(ROOT)})")
    args = parser.parse_args()
    args.dies = args.dies or (1000 if args.quick else 4000)
    args.ref_dies = args.ref_dies or (50 if args.quick else 200)
    args.repeats = args.repeats or (3 if args.quick else 5)

    pin_one_core()
    info = machine_record()
    with threadpool_limits(limits=1):
        t = time.perf_counter()
        model = DieModel.build(load_config("paper"))
        model_s = time.perf_counter() - t
        design = EngineDesign.from_model(model)
        design_cold_s = design.build_s
        full0 = EngineDesign.from_model(model, shortcut=False)  # dense inverses reused
        t = time.perf_counter()
        simulate_chunk_compiled(design, np.arange(4))  # compile, or load numba's cache
        first_call_s = time.perf_counter() - t

        spec = montecarlo.ModelSpec(model.config, "bench", model=model)  # the model in hand
        dies = np.arange(FIRST_DIE, FIRST_DIE + args.dies)
        ref_dies = range(FIRST_DIE, FIRST_DIE + args.ref_dies)
        d = model.config.defects
        samples: dict[str, list[float]] = {k: [] for k in (
            "compiled", "columns", "reference", "upto_sample", "upto_transfer", "full_layer0",
            "sample_chunk")}
        for _ in range(args.repeats):
            res = simulate_chunk_compiled(design, dies)
            samples["compiled"].append(per_die_us(res.elapsed_s, dies.size))
            t = time.perf_counter()
            res.columns()
            samples["columns"].append(per_die_us(time.perf_counter() - t, dies.size))
            for key, stage in (("upto_sample", _chunk.STAGE_SAMPLE), ("upto_transfer", _chunk.STAGE_TRANSFER)):
                samples[key].append(per_die_us(simulate_chunk_compiled(design, dies, upto=stage).elapsed_s,
                                               dies.size))
            samples["full_layer0"].append(per_die_us(simulate_chunk_compiled(full0, dies).elapsed_s, dies.size))
            t = time.perf_counter()
            sample_chunk(d.kind, model.layout.shapes, model.config.seed, dies, affected=model.affected,
                         severity=d.severity_arg, on_fraction=d.on_fraction, on_mode=d.on_mode)
            samples["sample_chunk"].append(per_die_us(time.perf_counter() - t, dies.size))
            t = time.perf_counter()
            ref_cols, _ = montecarlo.simulate_chunk(spec, ref_dies, "test")
            samples["reference"].append(per_die_us(time.perf_counter() - t, len(ref_dies)))
        # the same dies agree (predictions -> accuracy, defect columns)
        check = simulate_chunk_compiled(design, np.asarray(ref_dies)).columns()
        agree = check["defect_params"].equals(ref_cols["defect_params"]) and all(
            np.array_equal(check[k], ref_cols[k]) for k in (
                "defect_type", "layers_affected", "n_stuck_on", "n_stuck_off", "n_correct", "accuracy"))
    info["loadavg_end"] = list(os.getloadavg())

    med = {k: float(np.median(v)) for k, v in samples.items()}
    stages = {
        "sampling": med["upto_sample"],
        "transfer": med["upto_transfer"] - med["upto_sample"],
        "forward": med["compiled"] - med["upto_transfer"],
        "everything (kernel)": med["compiled"],
        "forward, full layer 0": med["full_layer0"] - med["upto_transfer"],
        "columns() (typed params, layer strings)": med["columns"],
        "sample_chunk (public sampler)": med["sample_chunk"],
    }
    routes = np.bincount(res.route.ravel().astype(np.int64), minlength=len(ROUTE_NAMES))
    rank = res.rank[res.rank > 0]
    speedup = med["reference"] / med["compiled"]
    speedup_cols = med["reference"] / (med["compiled"] + med["columns"])

    print(f"compiled chunk engine vs reference, paper preset (mixed, severity "
          f"{list(model.config.defects.severity)}, 1 ohm wires, 180 test images), one core "
          f"({info['cpu_model']}), load {info['loadavg_start'][0]:.1f} -> {info['loadavg_end'][0]:.1f}")
    print(f"model build {model_s:.2f} s, design build {design_cold_s:.2f} s "
          f"({design.nbytes / 2**20:.1f} MiB), first compiled call {first_call_s:.2f} s "
          f"(compile or numba cache load); {args.repeats} interleaved repeats, medians")
    print(f"\n{'engine':<28} {'us/die':>9} {'dies/s':>9} {'dies':>6}")
    for name, key, n in (("compiled kernel", "compiled", args.dies),
                         ("compiled + columns()", None, args.dies),
                         ("reference (montecarlo)", "reference", args.ref_dies)):
        us = med["compiled"] + med["columns"] if key is None else med[key]
        print(f"{name:<28} {us:>9.1f} {1e6 / us:>9.0f} {n:>6}")
    print(f"speed-up: {speedup:.1f}x (kernel), {speedup_cols:.1f}x (with columns()); "
          f"same dies agree: {agree}")
    print(f"\n{'stage':<32} {'us/die':>9}")
    for name, us in stages.items():
        print(f"{name:<32} {us:>9.1f}")
    print("\nroutes over the chunk's arrays: " + ", ".join(
        f"{n} {c}" for n, c in zip(ROUTE_NAMES, routes.tolist(), strict=True)) +
        (f"; changed cells per faulty array: median {np.median(rank):.0f}, max {rank.max()}"
         if rank.size else ""))

    if args.out is not None:
        settings = {"preset": "paper", "dies": args.dies, "ref_dies": args.ref_dies,
                    "repeats": args.repeats, "first_die": FIRST_DIE,
                    "statistic": "median over interleaved repeats of the per-die time"}
        results = {
            "model_build_s": model_s, "design_build_s": design_cold_s,
            "design_mib": design.nbytes / 2**20, "first_call_s": first_call_s,
            "us_per_die": med, "stages_us_per_die": stages,
            "dies_per_s": {"compiled": 1e6 / med["compiled"],
                           "compiled_with_columns": 1e6 / (med["compiled"] + med["columns"]),
                           "reference": 1e6 / med["reference"]},
            "speedup": speedup, "speedup_with_columns": speedup_cols, "same_dies_agree": agree,
            "routes": dict(zip(ROUTE_NAMES, routes.tolist(), strict=True)),
            "samples_us_per_die": samples,
        }
        command = "python benchmarks/bench_engine.py" + (" --quick" if args.quick else "")
        write_record(args.out, "engine", command, info, settings, results)
        print(f"-> {args.out}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())

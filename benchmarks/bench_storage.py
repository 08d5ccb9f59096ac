"""Where a compiled sweep's time goes per chunk: the kernel, the columns, the chunk's files.

    python benchmarks/bench_storage.py [--chunks 10] [--dies 2000] [--threads 2]

In this process, on the ``paper`` preset (mixed defects, IR drop, test voltages), for each
of ``--chunks`` chunks of ``--dies`` dies: ``simulate_chunk_compiled`` on ``--threads``
numba threads, ``ChunkResult.columns()``, then ``RunStore.write_chunk_files`` (Parquet,
the HDF5 image built in memory and written, sha256, fsyncs) and ``record_chunk`` (the
manifest), one after the other (the sweep overlaps the writes with the next kernel).
Prints the median milliseconds of each step; the first chunk (compilation, imports) is
left out. The run directory is a temporary one under ``runs/``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

from yieldmc import montecarlo as mc
from yieldmc.config import load_config
from yieldmc.die import DieModel
from yieldmc.engine.chunk import design_for, simulate_chunk_compiled
from yieldmc.store import RunStore

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=10)
    ap.add_argument("--dies", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    cfg = load_config("paper")
    model = DieModel.build(cfg)
    spec = mc.ModelSpec(cfg, "unused", model=model)
    design = design_for(model)
    labels = mc.labels_for(spec, "test")
    (ROOT / "runs").mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-storage-", dir=ROOT / "runs"))
    n = args.chunks + 1
    store = RunStore.create(tmp / "run", {"config": cfg.to_dict(), "seed": cfg.seed, "n_dies": n * args.dies,
                                          "chunk_size": args.dies, "store_voltages": "test"})
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    steps: dict[str, list[float]] = {"kernel": [], "columns": [], "write_files": [], "record": []}
    try:
        for c in range(n):
            t0 = time.perf_counter()
            res = simulate_chunk_compiled(design, np.arange(c * args.dies, (c + 1) * args.dies))
            t1 = time.perf_counter()
            cols, volts = res.columns(), res.voltages(("test",))
            t2 = time.perf_counter()
            record = store.write_chunk_files(c, cols, volts, labels)
            t3 = time.perf_counter()
            store.record_chunk(record)
            t4 = time.perf_counter()
            if c:  # the first chunk compiles and imports
                for key, dt in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                    steps[key].append(1e3 * dt)
        store.release()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = {k: float(np.median(v)) for k, v in steps.items()}
    print(f"{args.chunks} chunks of {args.dies} dies, {numba.get_num_threads()} numba threads, "
          f"load {os.getloadavg()[0]:.1f}: median ms per chunk: "
          + ", ".join(f"{k} {v:.1f}" for k, v in med.items())
          + f"; per die: kernel {1e3 * med['kernel'] / args.dies:.1f} us, "
          f"files {1e3 * med['write_files'] / args.dies:.1f} us")


if __name__ == "__main__":
    main()

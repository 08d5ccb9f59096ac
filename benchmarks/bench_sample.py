"""Throughput and memory of `yieldmc sample` (the whole pipeline, storage included).

    python benchmarks/bench_sample.py [--dies 10000] [--big 100000] [--quick] [--out results/bench/sample.json]

Runs `yieldmc sample --defect mixed --store-voltages test` as subprocesses, in one run:
  * IR drop (1 ohm wires) vs ideal wires (r_row = r_col = 0), 1 worker each;
  * IR drop with 1 vs 2 workers;
  * peak memory (max RSS of the process tree) for --dies N vs --big dies.
Reported rates are the sweep's own dies/s (simulation + Parquet/HDF5 writing, after the
model is built and workers started) and the wall-clock rate of the whole command.
Compare numbers within one run only: these machines have 2 cores and are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(dies: int, jobs: int, extra: list[str], workdir: Path) -> dict:
    out = workdir / f"run-{dies}-{jobs}-{len(extra)}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "yieldmc.cli", "sample", "--dies", str(dies), "--defect", "mixed",
           "--store-voltages", "test", "--jobs", str(jobs), "--out", str(out), "--json", "--quiet", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    shutil.rmtree(out, ignore_errors=True)
    return {"dies": dies, "jobs": jobs, "extra": extra, "wall_s": wall, "wall_dies_per_s": dies / wall,
            "sweep_dies_per_s": summary["dies_per_s"], "sweep_s": summary["elapsed_s"],
            "mean_accuracy": summary["mean_accuracy"], "yield": summary["yield"],
            "peak_rss_mib_so_far": peak_kib / 1024, "peak_rss_grew": peak_kib > before,
            "output_mib": size / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dies", type=int, default=10_000)
    ap.add_argument("--big", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true", help="2,000 and 10,000 dies")
    ap.add_argument("--out", type=Path, default=Path("results/bench/sample.json"))
    args = ap.parse_args()
    if args.quick:
        args.dies, args.big = 2_000, 10_000
    ideal = ["--set", "wires.r_row=0.0", "--set", "wires.r_col=0.0"]
    with tempfile.TemporaryDirectory(prefix="yieldmc-bench-") as tmp:
        work = Path(tmp)
        run(200, 1, [], work)  # warm the network cache and numba's on-disk cache
        res = {}
        res["ir_1"] = run(args.dies, 1, [], work)
        res["ideal_1"] = run(args.dies, 1, ideal, work)
        res["ir_2"] = run(args.dies, 2, [], work)
        # Peak memory: the small run first, so the running maximum of the big one is its own.
        res["mem_small"] = run(args.dies, 2, [], work)
        res["mem_big"] = run(args.big, 2, [], work)
    for key, r in res.items():
        print(f"{key:10s} {r['dies']:>7} dies, {r['jobs']} job(s): sweep {r['sweep_dies_per_s']:8.0f} dies/s, "
              f"wall {r['wall_s']:6.1f} s ({r['wall_dies_per_s']:6.0f} dies/s), mean acc {r['mean_accuracy']:.3f}, "
              f"yield {r['yield']:.3f}, peak RSS so far {r['peak_rss_mib_so_far']:.0f} MiB, output {r['output_mib']:.1f} MiB")
    ratios = {
        "ir_over_ideal": res["ir_1"]["sweep_dies_per_s"] / res["ideal_1"]["sweep_dies_per_s"],
        "two_over_one_worker": res["ir_2"]["sweep_dies_per_s"] / res["ir_1"]["sweep_dies_per_s"],
        "two_over_one_worker_wall": res["ir_2"]["wall_dies_per_s"] / res["ir_1"]["wall_dies_per_s"],
        "peak_rss_big_over_small": res["mem_big"]["peak_rss_mib_so_far"] / res["mem_small"]["peak_rss_mib_so_far"],
    }
    print("ratios (same run):", json.dumps({k: round(v, 3) for k, v in ratios.items()}))
    print(f"targets: IR >= 5,000 dies/s on 2 cores: {res['ir_2']['sweep_dies_per_s']:.0f}; "
          f"IR/ideal >= 0.3: {ratios['ir_over_ideal']:.2f}; 2/1 workers >= 1.7: {ratios['two_over_one_worker']:.2f}; "
          f"{args.big} dies wall {res['mem_big']['wall_s']:.0f} s (target < 60 s for 100,000)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"results": res, "ratios": ratios, "cores": os.cpu_count(),
                                    "load_avg_at_end": os.getloadavg()}, indent=2) + "\n")


if __name__ == "__main__":
    main()

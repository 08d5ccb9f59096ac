"""Throughput and memory of `yieldmc sample` end to end (start-up and storage included).

    python benchmarks/bench_sample.py [--quick] [--big 100000] [--ref-dies 30000] \
        [--million] [--out results/bench/sample.json]

Every case runs `yieldmc sample --preset paper --defect mixed --store-voltages test` as its own
subprocess (under a small wrapper that reports the largest process's peak RSS), in one run,
so that the ratios compare like with like on a noisy machine:

* ``compiled_2``: the compiled engine (threads backend), ``--jobs 2``, ``--big`` dies, IR drop:
  issue 12's target is <= 10 s wall for 100,000 dies (>= 10,000 dies/s, start-up included);
* ``compiled_1``: the same on one thread (thread scaling);
* ``no_voltages_2``: ``--store-voltages none`` (what storing 7 KB of voltages per die costs);
* ``reference_2``: the reference engine (loky, 2 worker processes) on ``--ref-dies`` dies:
  the compiled engine must be >= 10x its wall-clock rate;
* ``ideal_2``: ideal wires (what IR drop costs now);
* ``gzip_2``: ``--compress gzip`` (what compression costs, and saves);
* ``noise_2``: programming noise 2 % (every cell changes: CG for every array; target
  >= 2,000 dies/s on 2 cores);
* ``sinh_2``: the sinh device (the reference engine on loky: no compiled path);
* ``large_2``: the ``large`` preset (128 x 128 tiles: CG, no dense inverse);
* ``million_2`` (``--million``): 1,000,000 dies, peak memory against ``compiled_2``'s
  (target < 1 GiB, the same as at 100,000).

"wall" is the whole command (Python start-up, model build, numba's cache load, every
write); "sweep" is the sweep's own rate after the model is built. The load average at the
start and end is recorded with the machine (benchmarks/_machine.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_record, write_record

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "results" / "bench" / "sample.json"
IDEAL = ["--set", "wires.r_row=0.0", "--set", "wires.r_col=0.0"]
#: Runs the command given as arguments; prints the largest child's peak RSS (KiB) last.
WRAPPER = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")


def run(name: str, dies: int, jobs: int, extra: list[str], workdir: Path) -> dict:
    """One `yieldmc sample` subprocess: its rates, peak RSS and output size."""
    out = workdir / name
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "yieldmc", "sample", "--dies", str(dies), "--defect", "mixed",
           "--store-voltages", "test", "--jobs", str(jobs), "--out", str(out), "--json", "--quiet", *extra]
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"{name} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    lines = done.stdout.strip().splitlines()
    summary, peak_kib = json.loads(lines[-2]), int(lines[-1])
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    shutil.rmtree(out, ignore_errors=True)
    r = {"dies": dies, "jobs": jobs, "extra": extra, "engine": summary["engine"],
         "backend": summary["backend"], "wall_s": wall, "wall_dies_per_s": dies / wall,
         "sweep_dies_per_s": summary["dies_per_s"], "sweep_s": summary["elapsed_s"],
         "mean_accuracy": summary["mean_accuracy"], "yield": summary["yield"],
         "peak_rss_mib": peak_kib / 1024, "output_mib": size / 2**20}
    print(f"{name:12s} {dies:>9,} dies {summary['engine']:>9}/{summary['backend']:<7} jobs {jobs}: "
          f"wall {wall:6.1f} s = {r['wall_dies_per_s']:8,.0f} dies/s, sweep {r['sweep_dies_per_s']:8,.0f} dies/s, "
          f"peak RSS {r['peak_rss_mib']:5.0f} MiB, output {r['output_mib']:7.1f} MiB, "
          f"mean acc {r['mean_accuracy']:.4f}", flush=True)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big", type=int, default=None, help="compiled-engine dies (default 100,000; quick 20,000)")
    ap.add_argument("--ref-dies", type=int, default=None, help="reference-engine dies (default 30,000; quick 2,000)")
    ap.add_argument("--million", action="store_true", help="also 1,000,000 dies (peak memory)")
    ap.add_argument("--quick", action="store_true", help="smaller runs (a smoke test of the script)")
    ap.add_argument("--out", type=Path, nargs="?", const=DEFAULT_OUT, default=None,
                    help=f"write the JSON (default path {DEFAULT_OUT.relative_to(ROOT)})")
    args = ap.parse_args()
    big = args.big or (20_000 if args.quick else 100_000)
    ref = args.ref_dies or (2_000 if args.quick else 30_000)
    small = max(1_000, big // 10)
    info = machine_record()
    with tempfile.TemporaryDirectory(prefix="yieldmc-bench-") as tmp:
        work = Path(tmp)
        run("warm_up", 200, 2, [], work)  # the network cache and numba's on-disk cache
        run("warm_up_ref", 50, 1, ["--engine", "reference"], work)
        res = {
            "compiled_2": run("compiled_2", big, 2, [], work),
            "compiled_1": run("compiled_1", big, 1, [], work),
            "no_voltages_2": run("no_voltages_2", big, 2, ["--store-voltages", "none"], work),
            "reference_2": run("reference_2", ref, 2, ["--engine", "reference"], work),
            "ideal_2": run("ideal_2", big, 2, IDEAL, work),
            "gzip_2": run("gzip_2", big, 2, ["--compress", "gzip"], work),
            "noise_2": run("noise_2", small * 2, 2, ["--set", "device.programming_noise=0.02"], work),
            "sinh_2": run("sinh_2", 400 if args.quick else 1_000, 2, ["--device", "sinh"], work),
            "large_2": run("large_2", 10 if args.quick else 40, 2, ["--preset", "large"], work),
        }
        if args.million:
            res["million_2"] = run("million_2", 1_000_000, 2, [], work)
    info["loadavg_end"] = list(os.getloadavg())
    c2 = res["compiled_2"]
    ratios = {
        "compiled_over_reference_wall": c2["wall_dies_per_s"] / res["reference_2"]["wall_dies_per_s"],
        "compiled_over_reference_sweep": c2["sweep_dies_per_s"] / res["reference_2"]["sweep_dies_per_s"],
        "two_over_one_thread_sweep": c2["sweep_dies_per_s"] / res["compiled_1"]["sweep_dies_per_s"],
        "test_voltages_over_none_sweep": c2["sweep_dies_per_s"] / res["no_voltages_2"]["sweep_dies_per_s"],
        "ir_over_ideal_sweep": c2["sweep_dies_per_s"] / res["ideal_2"]["sweep_dies_per_s"],
        "gzip_over_none_sweep": res["gzip_2"]["sweep_dies_per_s"] / c2["sweep_dies_per_s"],
        "gzip_over_none_size": res["gzip_2"]["output_mib"] / c2["output_mib"],
    }
    if "million_2" in res:
        ratios["peak_rss_million_over_big"] = res["million_2"]["peak_rss_mib"] / c2["peak_rss_mib"]
    print("ratios (same run):", json.dumps({k: round(v, 3) for k, v in ratios.items()}))
    per_100k = 100_000 / c2["wall_dies_per_s"]
    print(f"targets: {big:,} dies on 2 cores in {c2['wall_s']:.1f} s wall "
          f"({per_100k:.1f} s per 100,000; target <= 10); "
          f"compiled/reference {ratios['compiled_over_reference_wall']:.1f}x wall (target >= 10); "
          f"noise 2 %: {res['noise_2']['wall_dies_per_s']:,.0f} dies/s wall, "
          f"{res['noise_2']['sweep_dies_per_s']:,.0f} sweep "
          f"(target >= 2,000)"
          + (f"; 1,000,000 dies: peak {res['million_2']['peak_rss_mib']:.0f} MiB (target < 1024)"
             if "million_2" in res else ""))
    if args.out:
        command = " ".join(["python", "benchmarks/bench_sample.py", *(["--quick"] if args.quick else []),
                            *(["--million"] if args.million else [])])
        write_record(args.out, "sample", command, info,
                     {"preset": "paper", "big_dies": big, "reference_dies": ref, "small_dies": small,
                      "million": args.million},
                     {"results": res, "ratios": ratios})
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Benchmark of defect sampling per die: the compiled chunk sampler against the readable one.

Run from the repository root::

    python benchmarks/bench_sampling.py                       # about 30 s
    python benchmarks/bench_sampling.py --quick               # about 10 s
    python benchmarks/bench_sampling.py --out                 # + results/bench/sampling.json
    python benchmarks/bench_sampling.py --quick --out /tmp/sampling.json

On one core, for the four arrays of the ``paper`` preset (64x16, 8x16, 8x16, 8x20) and
``mixed`` defects, per-cell ON/OFF, with the preset's severity range [0.005, 0.05] and
with the default geometry ranges (``severity=None``), it times one die's defects by

* ``compiled``: :func:`yieldmc.engine.sampling.sample_chunk` on a chunk of dies (one
  call, one block, validation and output packing included), divided by the dies;
* ``readable_generator``: ``defects.sample_die(..., numpy.random.default_rng([seed, d]))``,
  the stream set-up included: today's reference path (``yieldmc.rng.die_generator``);
* ``readable_diestream``: the same with ``DieStream(seed, d)``, set-up included: the
  reference path once it switches to the counter-based streams;
* ``setup_generator`` / ``setup_diestream``: the stream set-up alone.

The readable calls are interleaved die by die (every method sees the same load); each is
repeated ``--repeats`` times and the fastest repeat of each die kept, then averaged over
the dies; the compiled chunk keeps its fastest repeat. Wall time and process CPU time
(``time.process_time``: it hardly depends on other jobs) are both reported. Before timing,
the compiled masks and parameters are checked bit for bit against ``readable_diestream``
on every benchmarked die (exit status 1 if they differ).
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

from yieldmc import defects  # noqa: E402
from yieldmc.engine.sampling import die_masks, die_params, sample_chunk  # noqa: E402
from yieldmc.engine.streams import DieStream  # noqa: E402

from _machine import machine_record, pin_one_core, write_record  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "results" / "bench" / "sampling.json"
PAPER = [(64, 16), (8, 16), (8, 16), (8, 20)]
SEED = 20240601
READABLE = ("readable_generator", "readable_diestream", "setup_generator", "setup_diestream")


def timed(fn) -> tuple[float, float]:
    """(wall, process CPU) seconds of one call."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def check_identical(severity, dies) -> int:
    """Dies whose compiled masks or params differ from the readable DieStream path."""
    masks, params = sample_chunk("mixed", PAPER, SEED, dies, severity=severity, n_blocks=1)
    bad = 0
    for i, d in enumerate(dies):
        ref_m, ref_p = defects.sample_die("mixed", PAPER, DieStream(SEED, int(d)), severity=severity)
        same = all(np.array_equal(a, b) for a, b in zip(die_masks(masks, params, i), ref_m, strict=True))
        bad += not (same and die_params(params, i) == ref_p)
    return bad


def bench(severity, args) -> dict:
    dies = np.arange(args.dies)
    readable_dies = dies[: args.readable_dies]
    calls = {
        "readable_generator": lambda d: defects.sample_die(
            "mixed", PAPER, np.random.default_rng([SEED, int(d)]), severity=severity),
        "readable_diestream": lambda d: defects.sample_die(
            "mixed", PAPER, DieStream(SEED, int(d)), severity=severity),
        "setup_generator": lambda d: np.random.default_rng([SEED, int(d)]),
        "setup_diestream": lambda d: DieStream(SEED, int(d)),
    }
    chunk = lambda: sample_chunk("mixed", PAPER, SEED, dies, severity=severity, n_blocks=1)  # noqa: E731
    chunk()  # warm-up (compiles on a cold cache)
    for fn in calls.values():
        fn(0)
    wall = {m: np.full((args.repeats, readable_dies.size), np.inf) for m in READABLE}
    cpu = {m: np.full((args.repeats, readable_dies.size), np.inf) for m in READABLE}
    c_wall, c_cpu = np.empty(args.repeats), np.empty(args.repeats)
    for r in range(args.repeats):
        w, c = timed(chunk)
        c_wall[r], c_cpu[r] = w / dies.size, c / dies.size
        for k, d in enumerate(readable_dies):
            for m, fn in calls.items():
                wall[m][r, k], cpu[m][r, k] = timed(lambda fn=fn, d=d: fn(d))
    us = {"compiled": float(c_wall.min() * 1e6)}
    us_cpu = {"compiled": float(c_cpu.min() * 1e6)}
    for m in READABLE:
        us[m] = float(wall[m].min(axis=0).mean() * 1e6)
        us_cpu[m] = float(cpu[m].min(axis=0).mean() * 1e6)
    return {"severity": severity, "compiled_dies": int(dies.size), "readable_dies": int(readable_dies.size),
            "us_per_die": us, "cpu_us_per_die": us_cpu,
            "compiled_samples_us": (c_wall * 1e6).round(3).tolist()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer dies and repeats")
    parser.add_argument("--repeats", type=int, default=None, help="repeats (default 5, quick 3)")
    parser.add_argument("--dies", type=int, default=None, help="compiled chunk (default 20000, quick 4000)")
    parser.add_argument("--readable-dies", type=int, default=None,
                        help="readable dies (default 300, quick 60)")
    parser.add_argument("--out", type=Path, nargs="?", const=DEFAULT_OUT, default=None,
                        help=f"write the JSON (default path {DEFAULT_OUT.relative_to(ROOT)})")
    args = parser.parse_args()
    args.repeats = args.repeats or (3 if args.quick else 5)
    args.dies = args.dies or (4000 if args.quick else 20000)
    args.readable_dies = min(args.dies, args.readable_dies or (60 if args.quick else 300))

    pin_one_core()
    info = machine_record()
    results, mismatches = [], 0
    for severity in ((0.005, 0.05), None):
        mismatches += check_identical(severity, np.arange(args.readable_dies))
        results.append(bench(severity, args))
    info["loadavg_end"] = list(os.getloadavg())

    print(f"defect sampling per die, mixed kind, paper arrays, one core ({info['cpu_model']}), "
          f"load {info['loadavg_start'][0]:.1f} -> {info['loadavg_end'][0]:.1f}, "
          f"{args.repeats} repeats; us per die, wall (process CPU)")
    names = ("compiled", "readable_generator", "readable_diestream", "setup_generator", "setup_diestream")
    print(f"{'severity':<14}" + "".join(f"{n:>22}" for n in names) + f"{'gen/compiled':>14}")
    for res in results:
        u, c = res["us_per_die"], res["cpu_us_per_die"]
        cells = "".join(f"{f'{u[n]:.1f} ({c[n]:.1f})':>22}" for n in names)
        print(f"{str(res['severity']):<14}{cells}{u['readable_generator'] / u['compiled']:>13.0f}x")
    status = "identical" if mismatches == 0 else f"{mismatches} DIES DIFFER"
    print(f"compiled vs readable (DieStream): {status} on {args.readable_dies} dies per setting")

    if args.out is not None:
        write_record(args.out, "sampling", "python benchmarks/bench_sampling.py" + (" --quick" if args.quick else ""),
                     info, {"preset": "paper", "shapes": PAPER, "kind": "mixed", "on_mode": "cell",
                            "seed": SEED, "repeats": args.repeats,
                            "statistic": "compiled: fastest repeat of the chunk / dies; readable: per die "
                                         "the fastest repeat, averaged over dies"},
                     {"mismatches": mismatches, "results": results})
        print(f"-> {args.out}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())

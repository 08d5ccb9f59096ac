"""The ``realistic`` preset effect by effect: accuracy and yield of the paper die with each
non-ideality alone, all together, and with the ``midrange`` mapping as a mitigation.

Run from the repository root (about 80 s on a 2-core machine, timings included)::

    python results/die/realistic_effects.py

Every row starts from the ``paper`` preset and sets the values of
``yieldmc/presets/realistic.toml`` (read from that preset, not repeated here) for one effect:

* ``programming variation``  ``device.programming_noise`` (3 % of g_on - g_off, per die)
* ``read noise (+thermal)``  ``device.read_noise`` (2 % of G per read), ``read_bandwidth``
                              (1 MHz) and ``temperature`` (300 K): Johnson noise
* ``drift``                  ``device.drift_nu``, ``drift_t0``, ``read_time`` (factor 0.893)
* ``output rail``            ``arrays.output_rail`` (+-0.5 V)
* ``bias row``               ``mapping.bias_row`` and ``arrays.max_rows`` (65: the 64-input
                              layer stays on one array)
* ``midrange mapping``       ``mapping.scheme = "midrange"`` (a mitigation, not in realistic)

plus ``paper`` itself, two pairs (programming variation with the bias row, and with drift:
their losses do not add), ``realistic`` (everything at once) and ``realistic + midrange``.
The defect population is the presets' own (mixed kinds, severity 0.005-0.05 per array).

For each row: the software network's accuracy; the fault-free accuracy (the mean over 20
dies without a stuck cell, ``DieModel.mask_outputs`` with all-zero masks and die 0..19,
because programming and read noise are drawn per die; die 0 alone where nothing is random);
over ``--dies`` (300) defective dies the raw mean accuracy and yield at accuracy >= 0.8 and
>= 0.9 (the accuracies ``yieldmc sample`` records: ``DieModel.die_outputs`` on the test
images), and the same after per-die correction (``yieldmc.correction.correct_per_die``,
``rff-ridge``), each yield with its Wilson 95 % interval (``yieldmc.stats.yield_estimate``).
With read noise the corrector's scores come from reads of the test images made after the
die's reads of the training images, so its uncorrected accuracy is another draw of the
same noise; ``corr_raw_mean_accuracy`` records it beside the raw mean.

Then it times ``run_sample`` (what ``yieldmc sample`` runs) of ``--timing-dies`` (500) dies of
``--preset paper`` (the compiled engine) and ``--preset realistic`` (the reference engine:
the compiled kernels lack read noise, the bias row and the rails), with 1 and 2 jobs.

Outputs, next to this script: ``realistic_effects.csv`` (one row per configuration, written
atomically) and ``realistic_effects.json`` (the rows' settings, the sampling timings and the
machine); a Markdown table on stdout. BLAS runs on one thread (``threadpoolctl``).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from yieldmc.atomic import atomic_path, atomic_write_bytes
from yieldmc.config import Config, load_config
from yieldmc.correction import correct_per_die
from yieldmc.die import DieModel
from yieldmc.montecarlo import effective_engine, run_sample
from yieldmc.stats import yield_estimate

HERE = Path(__file__).resolve().parent
THRESHOLDS = (0.8, 0.9)
#: Pairs of effects whose losses do not add (the fault-free realistic die loses more than
#: any effect alone): programming variation with the bias row, and with drift.
PAIRS = (("programming variation", "bias row"), ("programming variation", "drift"))
#: Fault-free dies averaged where programming or read noise make each die different.
FAULT_FREE_DIES = 20


def effect_overrides(real: Config) -> dict[str, dict]:
    """One override set per effect, with the realistic preset's values."""
    d, a, m = real.device, real.arrays, real.mapping
    return {
        "programming variation": {"device.programming_noise": d.programming_noise},
        "read noise (+thermal)": {"device.read_noise": d.read_noise, "device.read_bandwidth": d.read_bandwidth,
                                  "device.temperature": d.temperature},
        "drift": {"device.drift_nu": d.drift_nu, "device.drift_t0": d.drift_t0, "device.read_time": d.read_time},
        "output rail": {"arrays.output_rail": a.output_rail},
        "bias row": {"mapping.bias_row": m.bias_row, "arrays.max_rows": a.max_rows},
        "midrange mapping": {"mapping.scheme": "midrange"},
    }


def configurations() -> list[tuple[str, str, dict, Config]]:
    """``(row name, base preset, overrides, config)`` of every row, in table order."""
    paper, real = load_config("paper"), load_config("realistic")
    rows = [("paper", "paper", {}, paper)]
    effects = effect_overrides(real)
    rows += [(name, "paper", o, paper.replace(**o)) for name, o in effects.items()]
    for a, b in PAIRS:
        o = {**effects[a], **effects[b]}
        rows.append((f"{a} + {b}", "paper", o, paper.replace(**o)))
    midrange = {"mapping.scheme": "midrange"}
    rows += [("realistic", "realistic", {}, real), ("realistic + midrange", "realistic", midrange,
                                                   real.replace(**midrange))]
    return rows


def is_random(config: Config) -> bool:
    """Do fault-free dies differ from one another (programming or read noise)?"""
    d = config.device
    return d.programming_noise > 0 or d.read_noise > 0 or d.read_bandwidth > 0


def fault_free_accuracy(model: DieModel) -> tuple[float, int]:
    """Mean test accuracy of fault-free dies, and how many were averaged."""
    x, y = model.images("test")
    masks = [np.zeros(s, dtype=np.int8) for s in model.layout.shapes]
    n = FAULT_FREE_DIES if is_random(model.config) else 1
    acc = [float(np.mean(model.mask_outputs(masks, [x], die=d)[0][0].argmax(axis=1) == y)) for d in range(n)]
    return float(np.mean(acc)), n


def raw_accuracies(model: DieModel, dies: range) -> np.ndarray:
    """Per-die test accuracy as a sweep records it (``DieModel.die_outputs``, test images only)."""
    x, y = model.images("test")
    return np.array([np.mean(model.die_outputs(d, [x])[0][0].argmax(axis=1) == y) for d in dies])


def yields(prefix: str, acc: np.ndarray) -> dict:
    out = {f"{prefix}_mean_accuracy": float(acc.mean())}
    for t in THRESHOLDS:
        est = yield_estimate(acc, t, method="wilson")
        key = f"{prefix}_yield_{round(100 * t)}"
        out.update({key: est.yield_, f"{key}_lo": est.lo, f"{key}_hi": est.hi})
    return out


def measure(name: str, base: str, overrides: dict, config: Config, network, dataset, n_dies: int) -> dict:
    t0 = time.perf_counter()
    model = DieModel(config, network, dataset)
    ff, n_ff = fault_free_accuracy(model)
    dies = range(n_dies)
    raw = raw_accuracies(model, dies)
    before, after = correct_per_die(model, dies, method="rff-ridge")
    n_test = len(model.images("test")[1])
    row = {"effect": name, "base": base, "overrides": json.dumps(overrides, sort_keys=True),
           "engine": effective_engine("compiled", config),
           "software_accuracy": model.software_accuracy(), "fault_free_accuracy": ff, "fault_free_dies": n_ff,
           "n_dies": n_dies, **yields("raw", raw), "corr_raw_mean_accuracy": float(np.mean(before / n_test)),
           **yields("corrected", after / n_test), "elapsed_s": time.perf_counter() - t0}
    return row


def time_sampling(n_dies: int) -> list[dict]:
    """``run_sample`` of ``n_dies`` dies of each preset, 1 and 2 jobs, wall clock and dies/s."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        run_sample(load_config("paper"), 20, Path(tmp) / "warm-up", jobs=1)  # numba compiles once
        for preset in ("paper", "realistic"):
            config = load_config(preset)
            for jobs in (1, 2):
                t0 = time.perf_counter()
                s = run_sample(config, n_dies, Path(tmp) / f"{preset}-{jobs}", jobs=jobs)
                wall = time.perf_counter() - t0
                out.append({"preset": preset, "engine": effective_engine("compiled", config), "jobs": s["jobs"],
                            "backend": s["backend"], "dies": n_dies, "wall_s": wall,
                            "sweep_s": s["elapsed_s"], "dies_per_s": s["dies_per_s"],
                            "mean_accuracy": s["mean_accuracy"]})
    return out


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def yield_cell(row: dict, key: str) -> str:
    return f"{pct(row[key])} [{pct(row[key + '_lo'])}, {pct(row[key + '_hi'])}]"


def markdown(rows: list[dict]) -> str:
    head = ("| configuration | fault-free acc. | raw mean acc. | raw Y(>=0.8) | raw Y(>=0.9) "
            "| corrected mean acc. | corrected Y(>=0.8) | corrected Y(>=0.9) |")
    lines = [head, "|---|" + "---:|" * 7]
    for r in rows:
        lines.append(f"| {r['effect']} | {pct(r['fault_free_accuracy'])} | {pct(r['raw_mean_accuracy'])} "
                     f"| {yield_cell(r, 'raw_yield_80')} | {yield_cell(r, 'raw_yield_90')} "
                     f"| {pct(r['corrected_mean_accuracy'])} | {yield_cell(r, 'corrected_yield_80')} "
                     f"| {yield_cell(r, 'corrected_yield_90')} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dies", type=int, default=300, help="defective dies per row (default 300)")
    parser.add_argument("--timing-dies", type=int, default=500,
                        help="dies of each timed run_sample (default 500; 0: no timing)")
    parser.add_argument("--out", type=Path, default=HERE / "realistic_effects.csv",
                        help="CSV to write (the JSON goes beside it)")
    args = parser.parse_args()
    start = time.perf_counter()
    with threadpool_limits(1):
        paper = DieModel.build(load_config("paper"))
        rows = []
        for name, base, overrides, config in configurations():
            rows.append(measure(name, base, overrides, config, paper.network, paper.dataset, args.dies))
            print(f"{name}: {rows[-1]['elapsed_s']:.1f} s", flush=True)
        effects_s = time.perf_counter() - start
        timings = time_sampling(args.timing_dies) if args.timing_dies else []
    total_s = time.perf_counter() - start

    rows = [{k: float(f"{v:.6g}") if isinstance(v, float) else v for k, v in r.items()} for r in rows]  # as stored
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(args.out) as tmp:
        tmp.write_text(buf.getvalue())
    meta = {"command": "python results/die/realistic_effects.py", "dies": args.dies,
            "fault_free_dies": FAULT_FREE_DIES, "thresholds": list(THRESHOLDS), "interval": "wilson 95 %",
            "correction": "correct_per_die, rff-ridge", "effects_s": effects_s, "total_s": total_s,
            "sampling": timings, "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                            "processor": platform.processor() or platform.machine()}}
    atomic_write_bytes(args.out.with_suffix(".json"), (json.dumps(meta, indent=2) + "\n").encode())

    print()
    print(markdown(rows))
    print()
    for t in timings:
        print(f"run_sample {t['dies']} dies --preset {t['preset']} ({t['engine']} engine, {t['backend']}, "
              f"jobs {t['jobs']}): {t['wall_s']:.1f} s wall, {t['dies_per_s']:.0f} dies/s in the sweep")
    print(f"\neffects: {effects_s:.0f} s; total: {total_s:.0f} s on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()

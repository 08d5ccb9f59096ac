"""Accuracy of ``paper`` dies with linear vs sinh (gap-model) cells: the table in docs/die.md.

Run from the repository root (about 6 minutes on 2 cores)::

    python results/device/compare_devices.py                 # -> results/device/
    python results/device/compare_devices.py --dies 200 --on-off-dies 60 --correct-dies 40   # ~1.5 min

Every population below is sampled with :func:`yieldmc.montecarlo.run_sample` into
``runs/device/<name>`` (reused when already complete, resumed when interrupted). Die ``d``
draws the same defects whatever the device (its stream is ``DieStream(seed, d)``), so
linear and sinh are compared die by die (paired differences).

1. fault-free die: software, linear and sinh, with IR drop and with ideal wires;
2. the preset's population (``mixed``, 0.5-5 % stuck cells per array, half ON, half OFF):
   mean accuracy, yield at 0.8 with Wilson / Clopper-Pearson intervals, the paired
   difference sinh - linear with a 95 % interval, per defect type;
3. all stuck cells ON vs all OFF (``defects.on_fraction`` 1 and 0);
4. per-die correction (``correct_run``, rff-ridge) of a subsample of each population;
5. the sweeps' rate (dies/s, storage included) when this call sampled them.

Writes ``results/device/summary.json`` and ``results/device/table.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from yieldmc.config import load_config
from yieldmc.correction import correct_run, load_corrected
from yieldmc.die import DieModel
from yieldmc.montecarlo import run_sample
from yieldmc.stats import yield_estimate
from yieldmc.store import atomic_write_bytes, load_dies, read_run_info

ROOT = Path(__file__).resolve().parents[2]
DEVICES = ("linear", "sinh")
THRESHOLD = 0.8


def population(name: str, n_dies: int, runs: Path, jobs: int, rates: dict, **changes) -> dict[str, Path]:
    """Sample (or reuse) the population ``name`` for both devices; return the run folders.

    ``rates[name][device]`` gets the sweep's dies/s when this call simulated every die.
    """
    out = {}
    for device in DEVICES:
        cfg = load_config("paper", overrides={"device.model": device, **changes})
        path = runs / f"{name}-{device}"
        resume = (path / "run.json").exists()
        if resume and read_run_info(path).get("n_dies") != n_dies:
            sys.exit(f"{path} holds a run of another size; remove it or choose --runs")
        print(f"  {name} {device}: {n_dies} dies -> {path}", file=sys.stderr)
        summary = run_sample(cfg, n_dies, path, jobs=jobs, resume=resume)
        if summary["dies_simulated_now"] == n_dies:
            rates.setdefault(name, {})[device] = summary["dies_per_s"]
        out[device] = path
    return out


def paired(a: np.ndarray, b: np.ndarray) -> dict:
    """Mean of ``b - a`` with a normal 95 % interval, and the shares of dies better / worse."""
    d = b - a
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
    return {"mean": float(d.mean()), "ci95": [float(d.mean() - half), float(d.mean() + half)],
            "better": float(np.mean(d > 0)), "worse": float(np.mean(d < 0))}


def summarise(paths: dict[str, Path]) -> dict:
    tables = {dev: load_dies(p, columns=["die", "defect_type", "accuracy", "solver_converged"])
              .sort_values("die").reset_index(drop=True) for dev, p in paths.items()}
    assert (tables["linear"]["die"].to_numpy() == tables["sinh"]["die"].to_numpy()).all()
    assert (tables["linear"]["defect_type"] == tables["sinh"]["defect_type"]).all()
    out: dict = {"dies": int(len(tables["linear"]))}
    for dev, t in tables.items():
        est = yield_estimate(t["accuracy"], THRESHOLD)
        out[dev] = {"mean_accuracy": float(t["accuracy"].mean()), "yield": est.yield_,
                    "yield_ci95": [est.lo, est.hi], "unconverged": int((~t["solver_converged"]).sum())}
    acc = {dev: t["accuracy"].to_numpy() for dev, t in tables.items()}
    out["sinh_minus_linear"] = paired(acc["linear"], acc["sinh"])
    by_type = {}
    for kind, idx in tables["linear"].groupby("defect_type").groups.items():
        idx = np.asarray(idx)
        by_type[kind] = {"dies": int(len(idx)),
                         **{dev: float(acc[dev][idx].mean()) for dev in DEVICES},
                         "sinh_minus_linear": paired(acc["linear"][idx], acc["sinh"][idx])}
    out["by_type"] = by_type
    return out


def corrected(paths: dict[str, Path], n_dies: int) -> dict:
    out = {}
    for dev, path in paths.items():
        summary = correct_run(path, "per-die", sample=n_dies, overwrite=True)
        table = load_corrected(path, "per-die")
        before = load_dies(path, columns=["die", "accuracy"]).set_index("die").loc[table["die"], "accuracy"]
        out[dev] = {"dies": int(len(table)), "before": float(before.mean()),
                    "after": float(table["accuracy_corrected"].mean()),
                    "yield_before": yield_estimate(before, THRESHOLD).yield_,
                    "yield_after": yield_estimate(table["accuracy_corrected"], THRESHOLD).yield_,
                    "corrector_parameters": summary["corrector_params"]}
    return out


def markdown(result: dict) -> str:
    ff = result["fault_free"]
    lines = ["| fault-free die | linear | sinh |", "|---|---|---|",
             f"| software network | {ff['software']:.4f} | {ff['software']:.4f} |",
             f"| with IR drop (1 ohm wires) | {ff['linear']['ir_drop']:.4f} | {ff['sinh']['ir_drop']:.4f} |",
             f"| ideal wires | {ff['linear']['ideal_wires']:.4f} | {ff['sinh']['ideal_wires']:.4f} |", ""]
    lines += ["| population | dies | mean acc. linear | mean acc. sinh | sinh - linear (95 % CI) | "
              f"yield@{THRESHOLD} linear | yield@{THRESHOLD} sinh |", "|---|---|---|---|---|---|---|"]
    for name, res in result["populations"].items():
        d = res["sinh_minus_linear"]
        ys = [f"{res[dev]['yield']:.3f} [{res[dev]['yield_ci95'][0]:.3f}, {res[dev]['yield_ci95'][1]:.3f}]"
              for dev in DEVICES]
        lines.append(f"| {name} | {res['dies']} | {res['linear']['mean_accuracy']:.4f} | "
                     f"{res['sinh']['mean_accuracy']:.4f} | {d['mean']:+.4f} [{d['ci95'][0]:+.4f}, "
                     f"{d['ci95'][1]:+.4f}] | {ys[0]} | {ys[1]} |")
    lines += ["", "| defect type (mixed) | dies | linear | sinh | sinh - linear (95 % CI) | sinh better / worse |",
              "|---|---|---|---|---|---|"]
    for kind, res in result["populations"]["mixed"]["by_type"].items():
        d = res["sinh_minus_linear"]
        lines.append(f"| {kind} | {res['dies']} | {res['linear']:.4f} | {res['sinh']:.4f} | "
                     f"{d['mean']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}] | "
                     f"{d['better']:.2f} / {d['worse']:.2f} |")
    lines += ["", "| per-die correction (mixed) | dies | before | after | yield before | yield after |",
              "|---|---|---|---|---|---|"]
    for dev, res in result["corrected"].items():
        lines.append(f"| {dev} | {res['dies']} | {res['before']:.4f} | {res['after']:.4f} | "
                     f"{res['yield_before']:.3f} | {res['yield_after']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dies", type=int, default=2000, help="dies of the mixed population")
    parser.add_argument("--on-off-dies", type=int, default=500, help="dies of the all-ON / all-OFF populations")
    parser.add_argument("--correct-dies", type=int, default=200, help="dies corrected per device")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "device")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "device")
    args = parser.parse_args()

    models = {dev: DieModel.build(load_config("paper", overrides={"device.model": dev})) for dev in DEVICES}
    fault_free = {"software": models["linear"].software_accuracy(),
                  **{dev: {"ir_drop": m.fault_free_accuracy(),
                           "ideal_wires": m.fault_free_accuracy(ideal_wires=True)}
                     for dev, m in models.items()}}
    rates: dict = {}
    runs = {"mixed": population("mixed", args.dies, args.runs, args.jobs, rates),
            "all stuck ON": population("on", args.on_off_dies, args.runs, args.jobs, rates,
                                       **{"defects.on_fraction": 1.0}),
            "all stuck OFF": population("off", args.on_off_dies, args.runs, args.jobs, rates,
                                        **{"defects.on_fraction": 0.0})}
    result = {"command": "python results/device/compare_devices.py" + "".join(
                  f" --{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                  if k in ("dies", "on_off_dies", "correct_dies") and v != parser.get_default(k)),
              "threshold": THRESHOLD, "fault_free": fault_free,
              "populations": {name: summarise(paths) for name, paths in runs.items()},
              "corrected": corrected(runs["mixed"], args.correct_dies),
              "sweep_dies_per_s": {"jobs": args.jobs, **rates,
                                   "note": "storage included; only populations sampled by this call"}}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / "summary.json", (json.dumps(result, indent=1) + "\n").encode())
    table = f"<!-- made by: {result['command']} -->\n" + markdown(result)
    atomic_write_bytes(args.out / "table.md", table.encode())
    print(table)
    print(f"-> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

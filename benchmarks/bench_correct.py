"""Per-die correction throughput: batched ridge vs a plain scikit-learn MLP loop, same run.

    python benchmarks/bench_correct.py [--dies 128] [--mlp-dies 16] [--budget 200] [--budget-dies 1024]
                                      [--out results/bench/correct.json]

Uses real dies of the ``paper`` preset (default ``mixed`` population). The die voltages
(1,617 training and 180 test images per die) are simulated first and not timed; the
timings cover fitting and predicting only, as ``yieldmc correct --mode per-die`` does
after it has the voltages. Also reports ``yieldmc correct``'s end-to-end rate (voltages
included) on the same dies, and the batched ``rff-ridge`` with a calibration budget
(``--budget`` stratified training images per die, ``yieldmc correct --calibration``) on
``--budget-dies`` dies, with one thread and with two (``fit_predict_many(n_jobs=2)``), as a
ratio to the full-budget rate of the same run. Throughputs are ratios measured in one run: the machine is
noisy, compare the numbers of one run with each other, not across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from yieldmc.config import load_config
from yieldmc.correction import stratified_subsample
from yieldmc.correctors import fit_predict_many
from yieldmc.die import DieModel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dies", type=int, default=128)
    ap.add_argument("--mlp-dies", type=int, default=16)
    ap.add_argument("--budget", type=int, default=200, help="labelled images per die of the budget case")
    ap.add_argument("--budget-dies", type=int, default=1024, help="dies of the budget case")
    ap.add_argument("--out", type=Path, default=Path("results/bench/correct.json"))
    args = ap.parse_args()

    model = DieModel.build(load_config("paper"))
    x_tr, y_tr = model.images("train")
    x_te, y_te = model.images("test")
    t0 = time.perf_counter()
    v_tr, v_te = [], []
    for d in range(args.dies):
        T, _ = model.die_transfers(d)
        v_tr.append(model.forward(T, x_tr))
        v_te.append(model.forward(T, x_te))
    v_tr, v_te = np.stack(v_tr), np.stack(v_te)
    simulate_s = time.perf_counter() - t0
    raw = (v_te.argmax(axis=2) == y_te).mean(axis=1)

    results = {"dies": args.dies, "raw_mean_accuracy": float(raw.mean()),
               "simulate_train_and_test_dies_per_s": args.dies / simulate_s, "methods": {}}
    print(f"{args.dies} paper dies (mixed), raw accuracy {raw.mean():.4f}; "
          f"simulating their train+test voltages: {args.dies / simulate_s:.1f} dies/s")
    cases = [("rff-ridge", args.dies, {}), ("linear-ridge", args.dies, {}),
             ("mlp", args.mlp_dies, {"hidden": (16,)})]
    with threadpool_limits(1):
        for method, n, kw in cases:
            fit_predict_many(v_tr[:2], y_tr, v_te[:2], method=method, random_state=0, **kw)  # warm-up
            t = time.perf_counter()
            pred = fit_predict_many(v_tr[:n], y_tr, v_te[:n], method=method, random_state=0, **kw)
            dt = time.perf_counter() - t
            acc = (pred == y_te).mean(axis=1)
            same = (pred[: args.mlp_dies] == y_te).mean(axis=1).mean()
            results["methods"][method] = {"dies": n, "dies_per_s": n / dt, "mean_accuracy": float(acc.mean()),
                                          "mean_accuracy_first_mlp_dies": float(same)}
            print(f"{method:13s} {n / dt:8.1f} dies/s   corrected accuracy {acc.mean():.4f} "
                  f"(first {args.mlp_dies} dies: {same:.4f})")
    m = results["methods"]
    ratio = m["rff-ridge"]["dies_per_s"] / m["mlp"]["dies_per_s"]
    results["ratio_rff_ridge_over_mlp"] = ratio
    end_to_end = 1.0 / (1.0 / m["rff-ridge"]["dies_per_s"] + simulate_s / args.dies)
    results["correct_per_die_end_to_end_dies_per_s"] = end_to_end
    print(f"batched rff-ridge / MLP loop: {ratio:.0f}x; `yieldmc correct --mode per-die` "
          f"end to end (voltages + fit): {end_to_end:.1f} dies/s on one core (target >= 30 on 2 cores)")
    results["budget"] = budget_case(model, args.budget, args.budget_dies, m["rff-ridge"]["dies_per_s"])
    results["machine"] = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "load_avg": os.getloadavg()[0]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


def budget_case(model: DieModel, budget: int, n_dies: int, full_rate: float) -> dict:
    """rff-ridge on ``budget`` calibration images per die: 1 and 2 threads, same run."""
    x_tr, y_tr = model.images("train")
    x_te, y_te = model.images("test")
    idx = stratified_subsample(y_tr, budget, seed=0)
    v_cal, v_te = [], []
    for d in range(n_dies):
        T, _ = model.die_transfers(d)
        v_cal.append(model.forward(T, x_tr[idx]))
        v_te.append(model.forward(T, x_te))
    v_cal, v_te, y_cal = np.stack(v_cal), np.stack(v_te), y_tr[idx]
    out = {"budget": len(idx), "dies": n_dies, "full_budget_dies_per_s": full_rate}
    with threadpool_limits(1):
        fit_predict_many(v_cal[:8], y_cal, v_te[:8], random_state=0, n_jobs=2)  # warm-up
        for n_jobs in (1, 2):
            t = time.perf_counter()  # one run, as the full-budget case is timed
            pred = fit_predict_many(v_cal, y_cal, v_te, random_state=0, n_jobs=n_jobs)
            rate = n_dies / (time.perf_counter() - t)
            acc = float((pred == y_te).mean())
            out[f"jobs_{n_jobs}"] = {"dies_per_s": rate, "ratio_to_full_budget": rate / full_rate,
                                     "mean_accuracy": acc}
            print(f"rff-ridge, {len(idx)} images/die, {n_jobs} thread(s): {rate:8.1f} dies/s "
                  f"({rate / full_rate:.1f}x the 1,617-image rate), corrected accuracy {acc:.4f}")
    return out


if __name__ == "__main__":
    main()

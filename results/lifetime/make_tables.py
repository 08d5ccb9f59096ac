"""The lifetime tables of docs/lifetime.md: 1,000 paper dies from test to 10 years.

    python results/lifetime/make_tables.py            # about 2 minutes on 2 cores

Samples 1,000 dies (``yieldmc sample --dies 1000``, the paper preset's mixed defects, seed 0)
into ``runs/lifetime-demo`` (not committed), then runs ``yieldmc lifetime`` on them twice with
the default fault and drift model (10 log-spaced checkpoints from 1 h to 10 y):

* ``budget200``: ``--policies none,once,recal,online,drift --budget 200 --stream 50``;
* ``budget50``: ``--policies recal,online --budget 50 --stream 50``: re-calibration and the
  on-line update with the same 50 labelled images per checkpoint.

Writes ``summary.csv`` (one row per setting and policy; yield at t0, at the 3.2-year checkpoint
and at 10 years), ``yield_curve.csv`` (yield per
checkpoint and policy with Wilson intervals) and ``lifetime.png`` (the report's figure of
the first setting).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from yieldmc.config import load_config
from yieldmc.lifetime import LifetimeSettings, PolicySettings, checkpoint_times, load_lifetime, run_lifetime
from yieldmc.lifetime.faults import YEAR_S
from yieldmc.lifetime.report import lifetime_section
from yieldmc.lifetime.run import read_settings, yield_over_time
from yieldmc.lifetime.survival import kaplan_meier, time_to_failure
from yieldmc.montecarlo import run_sample

HERE = Path(__file__).parent
RUN = Path("runs/lifetime-demo")
SETTINGS = {
    "budget200": PolicySettings(policies=("none", "once", "recal", "online", "drift"), budget=200, stream=50),
    "budget50": PolicySettings(policies=("recal", "online"), budget=50, stream=50),
}


def main() -> None:
    if not (RUN / "run.json").exists():
        shutil.rmtree(RUN, ignore_errors=True)
        run_sample(load_config("paper"), 1000, RUN, jobs=2)
    times = tuple(checkpoint_times(3600.0, 10 * YEAR_S, 10))
    rows, curves = [], []
    for name, policies in SETTINGS.items():
        settings = LifetimeSettings(times_s=times, policies=policies)
        summary = run_lifetime(RUN, settings, jobs=2, overwrite=True)
        df = load_lifetime(RUN)
        curve = yield_over_time(df, settings.threshold)
        curves.append(curve.assign(setting=name))
        for p, r in summary["policies"].items():
            ttf = time_to_failure(df, p, settings.threshold)
            km = kaplan_meier(ttf["time_s"], ttf["failed"])
            half = km[km["survival"] <= 0.5]
            rows.append({"setting": name, "policy": p, "budget": policies.budget, "stream": policies.stream,
                         "yield_t0": r["yield_t0"],
                         "yield_3.2y": curve[(curve.policy == p) & (curve.checkpoint == 9)]["yield"].iloc[0],
                         "yield_end": r["yield_end"], "yield_end_low": r["yield_end_ci"][0],
                         "yield_end_high": r["yield_end_ci"][1], "mean_accuracy_end": r["mean_accuracy_end"],
                         "median_life_y": half["time_s"].iloc[0] / YEAR_S if len(half) else float("inf"),
                         "labelled_images_per_die": r["labelled_images_per_die"],
                         "training_mflop_per_die": r["training_mflop_per_die"]})
        if name == "budget200":
            section = lifetime_section(df, read_settings(RUN), settings.threshold, 0.95)
            (HERE / "lifetime.png").write_bytes(section.blocks[-1].png)
    pd.DataFrame(rows).to_csv(HERE / "summary.csv", index=False, float_format="%.4g")
    pd.concat(curves).to_csv(HERE / "yield_curve.csv", index=False, float_format="%.4g")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main()

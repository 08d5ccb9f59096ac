"""Draw docs/img/die_voltages.png: output voltages of a healthy and a defective paper die.

Run from the repository root::

    python docs/img/make_die_voltages.py

The healthy die is the fault-free paper die with 1 ohm wires (``yieldmc die --defect
none``); the defective die is die 1 of ``yieldmc die --defect random --severity 0.02 --die 1``
(seed 0). Both run the 180 test images. Top row: per image, the output voltage of the
correct class and the largest output voltage of the nine wrong classes (an image is
classified correctly exactly when the first exceeds the second). Bottom row: the mean
output voltage of each of the ten outputs for the images of each true class.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from yieldmc.config import load_config
from yieldmc.die import DieModel

OUT = Path(__file__).resolve().parent / "die_voltages.png"
DEFECT = {"defects.kind": "random", "defects.severity": [0.02, 0.02]}
DEFECTIVE_DIE = 1


def main() -> None:
    cfg = load_config("paper")
    base = DieModel.build(cfg)
    healthy = DieModel(cfg.replace(**{"defects.kind": "none"}), base.network, base.dataset).simulate(0)
    sick_model = DieModel(cfg.replace(**DEFECT), base.network, base.dataset)
    sick = sick_model.simulate(DEFECTIVE_DIE)
    _, y = base.images("test")
    panels = [
        (healthy, "healthy die (no defects, 1 ohm wires)"),
        (sick, f"defective die {DEFECTIVE_DIE}: random, {sick.n_stuck_on} stuck ON + "
               f"{sick.n_stuck_off} OFF ({100 * sick.fault_fraction:.1f}% of cells)"),
    ]
    idx = np.arange(len(y))
    plotted = np.concatenate([r.outputs[idx, y] for r, _ in panels] +
                             [np.sort(r.outputs, axis=1)[:, -2:].ravel() for r, _ in panels])
    lo, hi = np.floor(plotted.min() * 10) / 10, np.ceil(plotted.max() * 10) / 10
    bins = np.linspace(lo, hi, round((hi - lo) / 0.025) + 1)  # 25 mV bins
    means = [np.array([r.outputs[y == c].mean(axis=0) for c in range(10)]) for r, _ in panels]
    vmax = max(np.abs(m).max() for m in means)

    fig, axes = plt.subplots(2, 2, figsize=(11, 9), constrained_layout=True)
    for col, ((res, title), mean) in enumerate(zip(panels, means, strict=True)):
        correct = res.outputs[idx, y]
        wrong = res.outputs.copy()
        wrong[idx, y] = -np.inf
        best_wrong = wrong.max(axis=1)
        ax = axes[0, col]
        ax.hist(correct, bins=bins, histtype="stepfilled", alpha=0.35, color="tab:green")
        ax.hist(correct, bins=bins, histtype="step", lw=1.8, color="tab:green",
                label="correct class's output")
        ax.hist(best_wrong, bins=bins, histtype="stepfilled", alpha=0.35, color="tab:red")
        ax.hist(best_wrong, bins=bins, histtype="step", lw=1.8, color="tab:red",
                label="largest wrong-class output")
        ax.axvline(0.0, color="0.6", lw=0.8)
        ax.set_title(f"{title}\naccuracy {res.accuracy:.3f} on {len(y)} test images", fontsize=10)
        ax.set_xlabel("output voltage (V)")
        ax.set_ylabel("images")
        ax.legend(fontsize=9, loc="upper left")

        ax = axes[1, col]
        im = ax.imshow(mean, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_xticks(range(10))
        ax.set_yticks(range(10))
        ax.set_xlabel("output (class)")
        ax.set_ylabel("true class of the images")
        ax.set_title("mean output voltage per true class (V)", fontsize=10)
        counts = np.bincount(res.predictions, minlength=10)
        ax.set_xticklabels([f"{c}\n{n}" for c, n in enumerate(counts)], fontsize=8)
        ax.text(-0.9, 10.1, "predicted\nimages:", fontsize=7, ha="right", va="top")
    fig.colorbar(im, ax=axes[1, :], shrink=0.8, label="mean output voltage (V)")
    fig.suptitle("paper die (64-8-8-8-10, 180 digits test images): output voltages, healthy vs defective",
                 fontsize=11)
    fig.savefig(OUT, dpi=110)
    print(OUT)


if __name__ == "__main__":
    main()

"""Run ``yieldmc die ... --json`` over dies, defect kinds, layers and r_sense; write the tables.

Run from the repository root (about two minutes on a loaded 2-core machine)::

    python results/die/make_tables.py

Every row comes from the ``yieldmc die`` command itself, invoked in-process (typer's
``CliRunner``, the same code path as the shell command, without paying the interpreter
and numba start-up per call). Outputs, next to this script:

* ``default.json``    ``yieldmc die --json`` (die 0 of the default population)
* ``fault_free.json`` ``yieldmc die --defect none --json``
* ``large_fault_free.json``  ``yieldmc die --preset large --defect none --json`` (trains the
                      784-256-10 network on first use, about half a minute)
* ``kinds.csv``       ``yieldmc die --defect KIND --severity S --die D --json``,
                      KIND in every kind, S in 0.02 and 0.05, D in 0..19
* ``layers.csv``      ``yieldmc die --defect KIND --severity 0.02 --layers L --die D --json``,
                      KIND in random and mixed, L in 0..3, D in 0..49
* ``r_sense.csv``     ``yieldmc die --set wires.r_sense=R --defect KIND --severity 0.05 --die D --json``,
                      R in 0, 100, 1000, 10000 ohm, KIND in none and mixed, D in 0..19
* ``design.json``     the mapped paper die through the Python API: array shapes, max |W|,
                      g_scale, TIA feedback resistance and column conductances per layer,
                      and the deviation of the fault-free outputs from the ideal (software)
                      ones, one array per layer and tiled on 16x4 arrays
* ``summary.json``    mean and standard deviation of every group above

``python results/die/make_tables.py design kinds`` runs only the named parts (default: all).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from yieldmc.cli import app
from yieldmc.defects import KINDS

HERE = Path(__file__).resolve().parent
RUNNER = CliRunner()
FIELDS = ("software_accuracy", "fault_free_accuracy", "circuit_accuracy", "ideal_wire_accuracy",
          "defect_type", "fault_fraction", "n_stuck_on", "n_stuck_off", "layers_affected")


def die(*args: str) -> dict:
    result = RUNNER.invoke(app, ["die", *args, "--json"])
    if result.exit_code != 0:
        sys.exit(f"yieldmc die {' '.join(args)} failed: {result.stderr}")
    return json.loads(result.stdout)


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()})


def stats(rows: list[dict], **match) -> dict:
    sel = [r for r in rows if all(r[k] == v for k, v in match.items())]
    acc = np.array([r["circuit_accuracy"] for r in sel])
    ff = np.array([r["fault_fraction"] for r in sel])
    return {**match, "dies": len(sel), "accuracy_mean": round(float(acc.mean()), 4),
            "accuracy_std": round(float(acc.std(ddof=1)), 4),
            "accuracy_min": round(float(acc.min()), 4),
            "fault_fraction_mean": round(float(ff.mean()), 5)}


def design() -> dict:
    from yieldmc.config import load_config
    from yieldmc.die import DieModel

    cfg = load_config("paper").replace(**{"defects.kind": "none"})
    model = DieModel.build(cfg)
    arr = cfg.arrays
    x, _ = model.images("test")
    ideal = arr.output_gain * model.network.forward(x)
    out = {"array_shapes": [list(s) for s in model.layout.shapes],
           "max_abs_weight": [float(abs(w).max()) for w in model.network.weights],
           "g_scale_S": list(model.layout.g_scales),
           "tia_feedback_ohm": [arr.output_gain / (g * arr.v_read) for g in model.layout.g_scales],
           "max_abs_bias": [float(abs(b).max()) for b in model.network.biases],
           # total conductance of each physical column (S): min, median, max per array
           "column_conductance_S": [[float(q) for q in np.percentile(a.G.sum(axis=0), [0, 50, 100])]
                                    for a in model.layout.arrays]}
    for name, changes in (("one_array_per_layer", {}),
                          ("tiled_16x4", {"arrays.max_rows": 16, "arrays.max_cols": 4})):
        m = DieModel(cfg.replace(**changes), model.network, model.dataset)
        got = m.forward(m.T0, x)
        out[name] = {"n_arrays": len(m.layout.arrays),
                     "max_dev_over_max_output": float(abs(got - ideal).max() / abs(ideal).max()),
                     "rms_dev_V": float(((got - ideal) ** 2).mean() ** 0.5),
                     "fault_free_accuracy": m.fault_free_accuracy(),
                     "fault_free_ideal_wire_accuracy": m.fault_free_accuracy(ideal_wires=True)}
    return out


def main(parts: list[str]) -> None:
    summary_path = HERE / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    if "design" in parts:
        (HERE / "default.json").write_text(json.dumps(die(), indent=1) + "\n")
        (HERE / "fault_free.json").write_text(json.dumps(die("--defect", "none"), indent=1) + "\n")
        (HERE / "design.json").write_text(json.dumps(design(), indent=1) + "\n")
        large = die("--preset", "large", "--defect", "none")
        (HERE / "large_fault_free.json").write_text(json.dumps(large, indent=1) + "\n")
    if "kinds" in parts:
        kinds_table(summary)
    if "layers" in parts:
        layers_table(summary)
    if "r_sense" in parts:
        r_sense_table(summary)
    summary_path.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


def kinds_table(summary: dict) -> None:
    summary["kinds"] = []
    kinds = []
    for severity in ("0.02", "0.05"):
        for kind in KINDS:
            for d in range(20):
                out = die("--defect", kind, "--severity", severity, "--die", str(d))
                kinds.append({"kind": kind, "severity": float(severity), "die": d,
                              **{k: out[k] for k in FIELDS}})
            summary["kinds"].append(stats(kinds, kind=kind, severity=float(severity)))
    write_csv(HERE / "kinds.csv", kinds)


def layers_table(summary: dict) -> None:
    summary["layers"] = []
    layers = []
    for kind in ("random", "mixed"):
        for layer in range(4):
            for d in range(50):
                out = die("--defect", kind, "--severity", "0.02", "--layers", str(layer), "--die", str(d))
                layers.append({"kind": kind, "layer": layer, "severity": 0.02, "die": d,
                               **{k: out[k] for k in FIELDS}})
            row = stats(layers, kind=kind, layer=layer)
            sel = [r for r in layers if r["kind"] == kind and r["layer"] == layer]
            stuck = np.mean([r["n_stuck_on"] + r["n_stuck_off"] for r in sel])
            loss = sel[0]["software_accuracy"] - row["accuracy_mean"]
            row.update(stuck_cells_mean=round(float(stuck), 2),
                       accuracy_loss_per_stuck_cell=round(float(loss / stuck), 4))
            summary["layers"].append(row)
    write_csv(HERE / "layers.csv", layers)


def r_sense_table(summary: dict) -> None:
    summary["r_sense"] = []
    rsense = []
    for r in (0, 100, 1000, 10000):
        for kind in ("none", "mixed"):
            for d in range(20 if kind == "mixed" else 1):
                out = die("--set", f"wires.r_sense={r}.0", "--defect", kind, "--severity", "0.05",
                          "--die", str(d))
                rsense.append({"r_sense": r, "kind": kind, "die": d, **{k: out[k] for k in FIELDS}})
            summary["r_sense"].append(stats(rsense, r_sense=r, kind=kind) if kind == "mixed"
                                      else {"r_sense": r, "kind": kind,
                                            "accuracy": rsense[-1]["circuit_accuracy"],
                                            "ideal_wire_accuracy": rsense[-1]["ideal_wire_accuracy"]})
    write_csv(HERE / "r_sense.csv", rsense)


if __name__ == "__main__":
    PARTS = ("design", "kinds", "layers", "r_sense")
    chosen = sys.argv[1:] or list(PARTS)
    unknown = sorted(set(chosen) - set(PARTS))
    if unknown:
        sys.exit(f"unknown part(s) {', '.join(unknown)}; valid: {', '.join(PARTS)}")
    main(chosen)

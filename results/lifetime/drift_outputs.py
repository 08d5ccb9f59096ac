"""How much drift shrinks the paper die's outputs (docs/lifetime.md section 1).

    python results/lifetime/drift_outputs.py

The fault-free paper die at test (t0 = 1 hour) and after 1 day and 10 years of drift with the
lifetime's default nu = 0.01: the factor on every programmed cell, and the RMS shrink of the ten
output voltages over the 180 test images (the layers compound it).
"""

from __future__ import annotations

import numpy as np

from yieldmc.config import load_config
from yieldmc.die import DieModel
from yieldmc.lifetime.circuit import CheckpointCircuit, drift_factor, forward_many
from yieldmc.lifetime.faults import YEAR_S


def main() -> None:
    model = DieModel.build(load_config("paper"))
    x, _ = model.images("test")
    base = forward_many(model, [np.asarray(T)[None] for T in model.T0], x)[0]
    for name, t in (("1 day", 86400.0), ("10 years", 10 * YEAR_S)):
        f = drift_factor(t, 3600.0, 0.01)
        out = forward_many(model, [T[None] for T in CheckpointCircuit.build(model, f).T0], x)[0]
        shrink = 1 - np.sqrt((out**2).mean() / (base**2).mean())
        print(f"{name}: cells x {f:.4f} ({1 - f:.1%} smaller), outputs {shrink:.1%} smaller (RMS)")


if __name__ == "__main__":
    main()

"""A slow twin of the defect geometry (``yieldmc.defects.mask``, and through it the
compiled sampler's pattern builder ``yieldmc/engine/_sampling.py``), compared in
``tests/test_defects.py``.

The compiled sampler's whole-die oracle is :func:`yieldmc.defects.sample_die` on a
``DieStream`` (``tests/test_engine_sampling.py``), part of yieldmc's API.
"""

from __future__ import annotations

import numpy as np


def naive_faulty(kind: str, shape: tuple[int, int], p: dict) -> np.ndarray:
    """The faulty-cell map (bool, ``shape``) of a spatial pattern with parameters ``p``.

    Mirrors ``defects.mask(kind, shape, p) > 0`` (numpy, vectorised) and the compiled
    ``_sampling._build``. Obviously correct: one loop iteration per cell, testing the cell's
    normalized centre ``((j + 0.5) / N, (i + 0.5) / M)`` against docs/defects.md's definition
    of each kind (disk, its complement, ring, whole rows or columns, a checkerboard region).
    """
    m, n = shape
    out = np.zeros(shape, dtype=bool)
    for i in range(m):
        for j in range(n):
            x, y = (j + 0.5) / n, (i + 0.5) / m  # normalized cell centre
            if kind in ("circular", "circular_complement", "ring"):
                d2 = (x - p["cx"]) * (x - p["cx"]) + (y - p["cy"]) * (y - p["cy"])
                inside = d2 <= p["radius"] * p["radius"]
                if kind == "circular":
                    out[i, j] = inside
                elif kind == "circular_complement":
                    out[i, j] = not inside
                else:
                    r_in = max(p["radius"] - p["width"], 0.0)
                    out[i, j] = inside and d2 > r_in * r_in
            elif kind == "row":
                out[i, j] = i in p["rows"]
            elif kind == "column":
                out[i, j] = j in p["columns"]
            elif kind == "checkerboard":
                r0, c0, h, w = p["region"]
                b, (pi, pj) = p["block"], p["phase"]
                in_region = r0 <= i < r0 + h and c0 <= j < c0 + w
                colour = ((i - r0 + pi) // b + (j - c0 + pj) // b) % 2
                out[i, j] = in_region and colour == 0
    return out

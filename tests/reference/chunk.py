"""Twins of the chunk engine's per-die bookkeeping (``yieldmc/engine/_chunk.py`` via
``engine/chunk.py``), compared in ``tests/test_engine_chunk.py``.

The chunk engine's whole-die oracle is :class:`yieldmc.die.DieModel` (masks, conductances,
transfer matrices, outputs), which is part of yieldmc's API.
"""

from __future__ import annotations

import numpy as np


def changed_cells(model, die: int) -> list[int]:
    """Per array, the reference die's cells whose conductance differs from the fault-free G.

    Mirrors ``_chunk._changes``' count, reported as ``ChunkResult.rank`` (the rank of each
    array's update). Obviously correct: ``DieModel.die_conductances`` gives the die's
    conductances; count the cells that are not those of the fault-free layout.
    """
    Gs = model.die_conductances(die)[0]
    return [int(np.count_nonzero(G != s.G)) for s, G in zip(model.layout.arrays, Gs, strict=True)]

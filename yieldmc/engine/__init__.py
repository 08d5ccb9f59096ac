"""The compiled chunk engine (DESIGN.md section 11): kernels apart, validated wrappers beside.

So far: exact transfer matrices of faulty arrays by a rank-k update of a dense fault-free
inverse (:mod:`yieldmc.engine.lowrank`). Names are imported lazily, so that
``import yieldmc.engine`` stays cheap.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "LowRankCache": "yieldmc.engine.lowrank",
    "lowrank_transfer": "yieldmc.engine.lowrank",
    "lowrank_transfers": "yieldmc.engine.lowrank",
    "max_rank": "yieldmc.engine.lowrank",
    "pack_changes": "yieldmc.engine.lowrank",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'yieldmc.engine' has no attribute {name!r}")

"""The compiled chunk engine (DESIGN.md section 11): kernels apart, validated wrappers beside.

Pieces: counter-based per-die streams (:mod:`yieldmc.engine.streams`), compiled defect
sampling (:mod:`yieldmc.engine.sampling`), exact transfer matrices of faulty arrays by a
rank-k update of a dense fault-free inverse (:mod:`yieldmc.engine.lowrank`), and the fused
chunk kernel over them with the analog forward pass (:mod:`yieldmc.engine.chunk`), the
sweep's default engine (``yieldmc sample --engine compiled``). Names are imported lazily,
so that ``import yieldmc.engine`` stays cheap.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "ChunkResult": "yieldmc.engine.chunk",
    "EngineDesign": "yieldmc.engine.chunk",
    "check_supported": "yieldmc.engine.chunk",
    "design_for": "yieldmc.engine.chunk",
    "simulate_chunk_compiled": "yieldmc.engine.chunk",
    "DieStream": "yieldmc.engine.streams",
    "sample_chunk": "yieldmc.engine.sampling",
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

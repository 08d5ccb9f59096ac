"""Compiled defect sampling for a chunk of dies: the same masks as :mod:`yieldmc.defects`.

One numba call draws the defects of many dies (``prange`` over dies) from their
counter-based streams (:mod:`yieldmc.engine.streams`). Die ``d``'s masks and parameters
are bit for bit those of the readable path run on the same stream::

    masks, params = sample_chunk("mixed", shapes, seed, dies, severity=(0.005, 0.05))
    m_ref, p_ref = defects.sample_die("mixed", shapes, DieStream(seed, dies[i]),
                                      severity=(0.005, 0.05))
    die_masks(masks, params, i)   # == m_ref, array by array
    die_params(params, i)         # == p_ref, dict by dict (same keys, order and types)

(``defects.sample_die`` needs ``yieldmc.rng.as_generator`` to pass a :class:`DieStream`
through unchanged.) Masks come back as one ``int8`` row per die, the arrays concatenated
flat (cell ``i * N + j`` of array ``a`` at column ``cell_offsets[a] + i * N + j``);
parameters as typed arrays, one entry per die and array (:func:`sample_chunk`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from types import MappingProxyType
from typing import Any

import numba
import numpy as np

from yieldmc import defect_kinds, defects
from yieldmc.defect_kinds import MIXED, NONE
from yieldmc.engine import _sampling as K
from yieldmc.engine.streams import check_index
from yieldmc.errors import ConfigError

#: The kinds with a compiled twin in :mod:`yieldmc.engine._sampling`, by name: their code
#: in the kernels. A kind of :data:`yieldmc.defect_kinds.REGISTRY` missing here runs on the
#: reference engine (:func:`unsupported_kinds`); porting one is a kernel branch and an entry
#: here (docs/architecture.md section 4). ``mixed`` draws pool index ``i`` as code ``i``:
#: the spatial kinds hold codes ``0 .. n - 1`` in registry order (:func:`check_twins`).
TWIN_CODES: Mapping[str, int] = MappingProxyType({
    "circular": K.CIRCULAR, "circular_complement": K.COMPLEMENT, "ring": K.RING, "row": K.ROW,
    "column": K.COLUMN, "checkerboard": K.CHECKERBOARD, "random": K.RANDOM, MIXED: K.MIXED,
    NONE: K.NONE})

#: Typed float parameters: their slot in the kernels' ``fpar``.
FLOAT_FIELDS: Mapping[str, int] = MappingProxyType({
    "cx": K.F_CX, "cy": K.F_CY, "radius": K.F_RADIUS, "width": K.F_WIDTH, "density": K.F_DENSITY,
    "on_fraction": K.F_ON_FRACTION})
#: Parameters the kernels write to ``lines`` (the first ``n_lines``).
LINE_FIELDS = ("rows", "columns")


def unsupported_kinds(kind: str) -> list[str]:
    """The kinds ``kind`` may draw (``mixed``: every spatial kind) that have no compiled twin."""
    pool = defect_kinds.REGISTRY.spatial if kind == MIXED else (kind,)
    return [k for k in pool if k not in TWIN_CODES]


def check_twins(kind: str) -> int:
    """The kernel code of ``kind``; ConfigError when the compiled sampler cannot draw it.

    Raises
    ------
    ConfigError
        ``kind`` (or, for ``mixed``, a spatial kind) has no compiled twin: use the
        reference engine, which draws every registered kind.
    RuntimeError
        The twins are out of step with the registry (a developer's error).
    """
    if kind not in (MIXED, NONE):
        defect_kinds.REGISTRY.get(kind)  # ConfigError for an unknown kind
    missing = unsupported_kinds(kind)
    if missing:
        drawn = f"may draw {', '.join(map(repr, missing))}" if kind == MIXED else "is"
        raise ConfigError(f"defects.kind = {kind!r} {drawn}: no compiled twin in the compiled engine "
                          f"(yieldmc.engine.sampling.TWIN_CODES); simulate these dies with the "
                          f"reference engine")
    registry = defect_kinds.REGISTRY
    if kind == MIXED and [TWIN_CODES[k] for k in registry.spatial] != list(range(len(registry.spatial))):
        raise RuntimeError("mixed's pool index is not the kernel code of its kind; renumber "
                           "engine/_sampling.py's codes (spatial kinds first, in registry order)")
    return TWIN_CODES[kind]


def kind_indices() -> np.ndarray:
    """Kernel code -> index in the registry's kinds (:data:`yieldmc.defects.KINDS` as
    registered now): what the typed ``kind`` arrays hold."""
    kinds = defect_kinds.REGISTRY.kinds
    out = np.full(max(TWIN_CODES.values()) + 1, -1, dtype=np.int64)
    for name, code in TWIN_CODES.items():
        out[code] = kinds.index(name)
    return out


def kind_code(kind: str) -> int:
    """The typed ``kind`` value of ``kind``: its index in the registry's kinds."""
    return defect_kinds.REGISTRY.kinds.index(kind)


def sampler_consts() -> np.ndarray:
    """yieldmc.defect_kinds' constants, read now (``_sampling.C_*`` order)."""
    d = defect_kinds
    vals = [*d.CIRCLE_CENTRE, *d.CIRCLE_RADIUS, *d.COMPLEMENT_CENTRE, *d.COMPLEMENT_RADIUS,
            *d.RING_CENTRE, *d.RING_RADIUS, *d.RING_WIDTH, *d.RING_AREA, *d.RANDOM_DENSITY,
            d.LINE_SHARE, d.CHECKER_REGION, math.log(d.CHECKER_ASPECT), d.CHECKER_SLACK,
            d.SEED_BOUND, 2.0]
    out = np.array(vals, dtype=np.float64)
    assert out.size == K.N_CONSTS
    return out


def mixed_weights(kind: str, weights: Mapping[str, float] | None = None) -> np.ndarray:
    """The kernels' ``cum``: ``mixed``'s cumulative weights (unused, ones, for other kinds)."""
    if kind == MIXED:
        return np.asarray(defects.mixed_cumulative(weights), dtype=np.float64)
    return np.ones(len(defect_kinds.REGISTRY.spatial))


@lru_cache(maxsize=64)
def log_aspect(m: int, n: int) -> np.ndarray:
    """numpy's ``log(((h + 1) N) / ((w + 1) M))`` per cell ``h N + w``, as the readable
    checkerboard computes it (numpy's SIMD log, not libm's)."""
    hh, ww = np.divmod(np.arange(m * n), n)
    out = np.log((hh + 1) * n / ((ww + 1) * m))
    out.flags.writeable = False
    return out


def check_dies(dies: Any) -> np.ndarray:
    """Die indices as int64; ConfigError unless a 1-d sequence of integers in [0, 2**63)."""
    arr = np.asarray(dies)
    if arr.ndim != 1 or (arr.size and (arr.dtype.kind not in "iu" or arr.min() < 0
                                       or arr.max() >= 1 << 63)):
        raise ConfigError("dies must be a 1-d sequence of integer die indices in [0, 2**63)")
    return arr.astype(np.int64)


def die_flags(affected: Any, n_dies: int, n_arrays: int) -> np.ndarray:
    """The kernels' ``affected``: a C-contiguous, writable bool matrix (dies x arrays).

    ``affected`` is one setting for every die (as :func:`yieldmc.defects.sample_die` takes
    it: None, indices or one flag per array) or a 2-d array of flags, one row per die.

    Raises
    ------
    ConfigError
        Flags of the wrong shape or type, or bad indices.
    """
    if isinstance(affected, np.ndarray) and affected.ndim == 2:
        if affected.shape != (n_dies, n_arrays) or affected.dtype != np.bool_:
            raise ConfigError(f"affected per die must be a bool array of shape ({n_dies}, {n_arrays}) "
                              f"(dies x arrays), got {affected.dtype} {affected.shape}")
        return affected.copy(order="C")  # writable and contiguous: one kernel signature
    row = np.array(defects.affected_flags(affected, n_arrays), dtype=np.bool_)
    return np.broadcast_to(row, (n_dies, n_arrays)).copy(order="C")


def typed_params(dies: np.ndarray, shapes: np.ndarray, cell_off: np.ndarray, fpar: np.ndarray,
                 ipar: np.ndarray, lines: np.ndarray, die_kind: np.ndarray,
                 n_draws: np.ndarray) -> dict[str, np.ndarray]:
    """The typed parameters of :func:`sample_chunk` from the kernels' outputs (kernel
    codes turned into indices in the registry's kinds)."""
    to_index = kind_indices()
    params = {"die": dies, "die_kind": to_index[die_kind].astype(np.int8), "n_draws": n_draws,
              "shapes": shapes, "cell_offsets": cell_off,
              "kind": to_index[ipar[..., K.I_KIND]].astype(np.int8)}
    params.update({name: np.ascontiguousarray(fpar[..., f]) for name, f in FLOAT_FIELDS.items()})
    params.update({
        "block": ipar[..., K.I_BLOCK].astype(np.int32),
        "phase": ipar[..., K.I_PHASE0:K.I_PHASE1 + 1].astype(np.int32),
        "region": ipar[..., K.I_ROW0:K.I_WIDTH + 1].astype(np.int32),
        "n_lines": ipar[..., K.I_NLINES].astype(np.int32),
        "lines": lines.astype(np.int32),
        "state": ipar[..., K.I_STATE].astype(np.int8),
        "seed": ipar[..., K.I_SEED].copy(),
    })
    return params


def sample_chunk(kind: str, shapes: Sequence[Sequence[int]], seed: int, dies: Any,
                 affected: Any = None, severity: Any = None,
                 on_fraction: float = defects.DEFAULT_ON_FRACTION, *, on_mode: str = "cell",
                 weights: Mapping[str, float] | None = None,
                 n_blocks: int | None = None) -> tuple[np.ndarray, dict]:
    """Draw the defects of many dies in one compiled call.

    Parameters
    ----------
    kind, shapes, severity, on_fraction, on_mode, weights
        As in :func:`yieldmc.defects.sample_die` (validated the same way).
    affected : None, sequence of int or bool, or 2-d bool array
        As in :func:`yieldmc.defects.sample_die`, the same for every die; or one row of
        flags per die (dies x arrays): die ``dies[i]`` draws as ``sample_die`` with
        ``affected=affected[i]``.
    seed : int
        Root seed in ``[0, 2**64)``.
    dies : sequence of int
        Die indices in ``[0, 2**63)``; die ``d`` draws from ``DieStream(seed, d)``.
    n_blocks : int, optional
        Contiguous blocks of dies run in parallel (default: numba's thread count); the
        results do not depend on it.

    Returns
    -------
    masks : numpy.ndarray, int8, shape (n_dies, cells)
        Row ``i``: die ``dies[i]``'s masks, flat and concatenated (``cell_offsets``).
    params : dict of numpy.ndarray
        Per die (``(n_dies,)``): ``die``, ``die_kind`` (:func:`kind_code` of the kind
        drawn, ``mixed`` resolved), ``n_draws`` (draws used: programming noise starts at
        this counter). Per die and array (``(n_dies, n_arrays, ...)``; NaN or -1 where the
        array's params lack the key, as for unaffected arrays, whose ``kind`` is ``none``):
        ``kind`` (int8 :func:`kind_code`, the index in ``yieldmc.defects.KINDS``), ``cx``,
        ``cy``, ``radius``, ``width``, ``density``, ``on_fraction`` (float64), ``block`` (int32), ``phase`` (int32,
        ``[pi, pj]``), ``region`` (int32, ``[row0, col0, height, width]``), ``n_lines``
        and ``lines`` (int32, sorted, -1 padded: ``rows`` or ``columns``), ``state``
        (int8: 1 on, 0 off), ``seed`` (int64). Per array: ``shapes`` and
        ``cell_offsets`` (int64).

    Raises
    ------
    ConfigError
        As :func:`yieldmc.defects.sample_die`; bad seed or die indices; a kind without a
        compiled twin (:func:`check_twins`).
    """
    shape_list = [defects.check_shape(s) for s in shapes]
    q, sev = defects.check_draw_settings(kind, on_fraction, on_mode, severity)
    code = check_twins(kind)
    cum = mixed_weights(kind, weights)
    seed = check_index("seed", seed)
    dies = check_dies(dies)
    flags = die_flags(affected, dies.size, len(shape_list))
    shp = np.array(shape_list, dtype=np.int64).reshape(-1, 2)
    sizes = shp[:, 0] * shp[:, 1]
    cell_off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    logr = (np.concatenate([log_aspect(m, n) for m, n in shape_list]) if shape_list
            else np.empty(0))
    n_dies, n_arrays = dies.size, len(shape_list)
    max_lines = int(shp.max()) if n_arrays else 1
    masks = np.empty((n_dies, int(cell_off[-1])), dtype=np.int8)
    fpar = np.empty((n_dies, n_arrays, K.NF))
    ipar = np.empty((n_dies, n_arrays, K.NI), dtype=np.int64)
    lines = np.empty((n_dies, n_arrays, max_lines), dtype=np.int64)
    die_kind = np.empty(n_dies, dtype=np.int64)
    n_draws = np.empty(n_dies, dtype=np.int64)
    if n_blocks is None:
        n_blocks = numba.get_num_threads()
    if isinstance(n_blocks, bool) or not isinstance(n_blocks, (int, np.integer)) or n_blocks < 1:
        raise ConfigError(f"n_blocks must be an integer >= 1, got {n_blocks!r}")
    lo, hi = sev if sev is not None else (0.0, 0.0)
    K.sample_chunk(np.uint64(seed), dies.astype(np.uint64), shp, cell_off, logr, sampler_consts(),
                    code, cum, sev is not None, float(lo), float(hi), float(q), on_mode == "pattern",
                    flags, int(n_blocks), masks, fpar, ipar, lines, die_kind, n_draws)
    return masks, typed_params(dies, shp, cell_off, fpar, ipar, lines, die_kind, n_draws)


def die_masks(masks: np.ndarray, params: Mapping[str, np.ndarray], i: int) -> list[np.ndarray]:
    """Die row ``i``'s masks, one ``(M, N)`` view per array (as ``sample_die`` returns)."""
    off, shp = params["cell_offsets"], params["shapes"]
    return [masks[i, off[a]:off[a + 1]].reshape(int(shp[a, 0]), int(shp[a, 1]))
            for a in range(shp.shape[0])]


def die_params(params: Mapping[str, np.ndarray], i: int) -> list[dict]:
    """Die row ``i``'s parameters as ``sample_die``'s dicts: same keys, order and types."""
    registry = defect_kinds.REGISTRY
    out = []
    for a in range(params["shapes"].shape[0]):
        kind = registry.kinds[int(params["kind"][i, a])]
        p: dict[str, Any] = {"kind": kind}
        if kind == NONE:
            out.append(p)
            continue
        for prm in registry.get(kind).params:  # the kind's parameters, in its order
            if prm.name in LINE_FIELDS:
                p[prm.name] = params["lines"][i, a, :params["n_lines"][i, a]].tolist()
            elif prm.type == "float":
                p[prm.name] = float(params[prm.name][i, a])
            elif prm.type == "int":
                p[prm.name] = int(params[prm.name][i, a])
            else:
                p[prm.name] = params[prm.name][i, a].tolist()
        state, seed = int(params["state"][i, a]), int(params["seed"][i, a])
        if state >= 0:
            p["state"] = "on" if state == 1 else "off"
            if seed >= 0:
                p["seed"] = seed
        else:
            p["on_fraction"] = float(params["on_fraction"][i, a])
            p["seed"] = seed
        out.append(p)
    return out

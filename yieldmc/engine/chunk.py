"""The compiled chunk engine: one numba call simulates a chunk of dies (DESIGN.md section 11).

A run's design is turned once per process into an :class:`EngineDesign`: the layout of
the arrays as flat typed arrays, a :class:`~yieldmc.engine.lowrank.LowRankCache` per array
small enough for a dense fault-free inverse, the evaluation images as row voltages
(features x images) and the layer-0 products that every die shares. Then::

    design = EngineDesign.from_model(model)            # once per process (about 0.1-0.3 s)
    res = simulate_chunk_compiled(design, range(0, 2000))
    columns, voltages = res.columns(), res.voltages()  # as montecarlo.simulate_chunk returns

Die ``d`` draws from ``DieStream(seed, d)`` (:mod:`yieldmc.engine.streams`) and its defects
are those of :func:`yieldmc.defects.sample_die` on that stream, bit for bit; with
``device.programming_noise > 0`` so are its noisy conductances (the draws after the
defects', as :meth:`yieldmc.die.DieModel.die_conductances` takes them). Its transfer
matrices are exact (rank-k update of the cached inverse up to the measured crossover
:func:`~yieldmc.engine.lowrank.max_rank`, else the CG kernels of the reference engine,
which give the reference's fresh solve bit for bit: every noisy array takes that route,
as most of its cells change);
its output voltages agree with :meth:`yieldmc.die.DieModel.forward` within 1e-9 of the
largest |V| (measured 2e-11 and below over 4000 dies: the reference's own CG tolerance)
and its predictions, defect columns and masks are the same.

Scope: the linear device, with or without programming noise. ``sinh`` devices raise
:class:`~yieldmc.errors.ConfigError` (use the reference engine).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

from yieldmc import defect_kinds, defects, schema
from yieldmc.circuit.solver import RHS_BLOCK, SOLVER_MAX_ITER, SOLVER_RTOL
from yieldmc.defect_params import params_array_from_typed
from yieldmc.engine import _chunk as K
from yieldmc.engine import _forward
from yieldmc.engine._sampling import NF, NI
from yieldmc.engine.lowrank import MAX_CACHE_CELLS, LowRankCache, max_rank
from yieldmc.engine.sampling import (
    check_dies,
    check_twins,
    die_flags,
    kind_indices,
    log_aspect,
    mixed_weights,
    sampler_consts,
    typed_params,
)
from yieldmc.errors import ConfigError

ROUTE_NAMES = K.ROUTE_NAMES
#: The message for designs this engine does not cover.
UNSUPPORTED = ("the compiled engine covers the linear device without read noise, bias rows or "
               "output rails only; simulate these dies with DieModel (the readable path)")
#: Blocks of dies per numba thread in one chunk: handed out one at a time, so a thread that
#: shares its core (with the sweep's writer thread, say) takes fewer of them.
BLOCKS_PER_THREAD = 8
#: Largest layer-0 response table (cells x images x 8 bytes) kept per array for the
#: changed-cells-only product of layer 0; larger arrays use the full product.
MAX_VR_BYTES = 64 * 2**20
IMAGE_SETS = ("test", "train")


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    if a.flags.writeable:
        a = a.copy()
        a.setflags(write=False)
    return a


def check_supported(config) -> None:
    """Raise :class:`ConfigError` unless the compiled engine covers ``config``: the linear
    device (programming noise or drift, not both, and ``mapping.scheme``: they only change
    the layout's conductances, from which ``g0`` and ``t0`` come), no read noise, bias row or
    output rail (the forward pass's, which the kernels lack), and a defect kind whose every
    kind it may draw has a compiled twin (:func:`yieldmc.engine.sampling.check_twins`). The
    sweep then runs the reference engine (:func:`yieldmc.montecarlo.effective_engine`)."""
    dev, rail = config.device, config.arrays.output_rail
    for bad, setting in ((dev.model != "linear", f"device.model = {dev.model!r}"),
                         (dev.read_noise > 0, f"device.read_noise = {dev.read_noise:g}"),
                         (dev.read_bandwidth > 0, f"device.read_bandwidth = {dev.read_bandwidth:g} Hz"),
                         (config.mapping.bias_row, "mapping.bias_row = true"),
                         (rail > 0, f"arrays.output_rail = {rail:g} V"),
                         # the kernels clip noisy drifted cells at [g_off, g_on], not at the
                         # drifted bounds that DieModel uses (noise at t0, drift after it)
                         (dev.drift_nu > 0 and dev.programming_noise > 0,
                          "device.drift_nu > 0 with device.programming_noise > 0")):
        if bad:
            raise ConfigError(f"{setting}: {UNSUPPORTED}")
    check_twins(config.defects.kind)


@dataclass(eq=False)
class EngineDesign:
    """Everything a chunk of dies shares, in the form the kernels take (read-only).

    Build it with :meth:`from_model` (or :func:`design_for`, once per process). Per-array
    data are flat concatenations at offsets (numba cannot pass tuples of arrays into a
    ``prange`` body); :meth:`kernel_args` lists them in the kernel's order.

    Attributes
    ----------
    seed : int
        Root seed of the run.
    shapes, cell_off, layer_of, row0, col0 : numpy.ndarray (int64)
        Array shapes (A, 2), flat cell offsets (A + 1), layer, first input row and first
        physical column in its layer.
    g0, t0 : numpy.ndarray (float64, cells)
        Fault-free conductances (S) and transfer matrices (A/V, the die model's own ``T0``),
        flat and concatenated.
    caches : tuple of LowRankCache or None
        Per array (None: too large, ideal wires, or programming noise, which changes most
        cells of every array: each takes the CG route).
    max_rank : numpy.ndarray (int64, A)
        Most changed cells updated by rank k (0: no cache; CG for every change).
    images : tuple of str
        Image sets, in the order of ``x``'s columns (``"test"`` first).
    set_bounds : dict
        Image set -> ``(first, end)`` column of ``x``.
    x : numpy.ndarray (n_in, images)
        Row voltages (V) of layer 0, images innermost.
    labels : numpy.ndarray (int64, images)
    p0, vr : tuple of (numpy.ndarray, numpy.ndarray)
        Layer-0 arrays' fault-free currents ``T0^T x`` (N x images) and cell responses
        ``Rt x`` (MN x images), flat, and their offsets per array (empty spans elsewhere,
        and everywhere with programming noise).
    samp, samp_scalars : tuple
        The defect sampler's arrays and scalars (:mod:`yieldmc.engine._sampling`); the
        last array, ``affected`` (bool, A), flags the arrays of ``defects.layers``: every
        die's flags unless :func:`simulate_chunk_compiled` is given flags per die.
    phys : tuple
        Device, wire, solver and neuron scalars (:mod:`yieldmc.engine._chunk`), among them
        the programming noise's standard deviation ``programming_noise * (g_on - g_off)``
        (S; 0.0 without noise).
    flat_cache : tuple
        ``(W, W offsets, wdev, Rt, Rt offsets, Cr, Cr offsets)``, the caches' arrays flat
        (each LowRankCache in ``caches`` holds views of them).
    build_s : float
        Seconds :meth:`from_model` took (dense inverses and layer-0 products).
    """

    seed: int
    n_layers: int
    shapes: np.ndarray
    cell_off: np.ndarray
    layer_of: np.ndarray
    row0: np.ndarray
    col0: np.ndarray
    g0: np.ndarray
    t0: np.ndarray
    caches: tuple
    max_rank: np.ndarray
    layer_sizes: np.ndarray
    g_scales: np.ndarray
    biases: np.ndarray
    images: tuple[str, ...]
    set_bounds: dict
    x: np.ndarray
    labels: np.ndarray
    p0: tuple
    vr: tuple
    samp: tuple
    samp_scalars: tuple
    phys: tuple
    flat_cache: tuple = field(repr=False)
    build_s: float = 0.0

    @classmethod
    def from_model(cls, model, images: Sequence[str] = ("test",), *, shortcut: bool = True,
                   max_cache_cells: int = MAX_CACHE_CELLS) -> EngineDesign:
        """The design of ``model`` (a :class:`yieldmc.die.DieModel`) for the compiled engine.

        Parameters
        ----------
        model : DieModel
            Its config must use the linear device (with or without programming noise).
        images : sequence of {"test", "train"}
            Image sets run through every die (the test set always, first: its labels give
            ``n_correct``).
        shortcut : bool
            Layer 0 (the same images for every die) as the fault-free product plus a
            correction over the changed cells (exact to rounding), instead of the full
            product per die. Without effect under programming noise (every array changes
            most of its cells: the full product).
        max_cache_cells : int
            Arrays with more cells get no dense inverse (CG for every change).

        Raises
        ------
        ConfigError
            A device or setting outside the engine's scope, or unknown image sets.
        """
        t_start = time.perf_counter()
        cfg = model.config
        check_supported(cfg)
        act = _forward.ACTIVATION_CODES.get(model.network.activation)
        if act is None:
            raise ConfigError(f"activation {model.network.activation!r} has no compiled neuron; "
                              "simulate these dies with DieModel (the readable path)")
        sets = ["test", *[s for s in images if s != "test"]]
        bad = [s for s in sets if s not in IMAGE_SETS]
        if bad or len(set(sets)) != len(sets):
            raise ConfigError(f"images must be distinct names among {', '.join(IMAGE_SETS)}, "
                              f"got {list(images)}")
        layout = model.layout
        specs = layout.arrays
        n_arrays = len(specs)
        shapes = np.array([s.shape for s in specs], dtype=np.int64).reshape(-1, 2)
        sizes = shapes[:, 0] * shapes[:, 1]
        cell_off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        layer_of = np.array([s.layer for s in specs], dtype=np.int64)
        row0 = np.array([s.rows.start or 0 for s in specs], dtype=np.int64)
        col0 = np.array([s.cols.start or 0 for s in specs], dtype=np.int64)
        g0 = _readonly(np.concatenate([s.G.ravel() for s in specs]))
        t0 = _readonly(np.concatenate([np.asarray(T, dtype=np.float64).ravel() for T in model.T0]))
        w = cfg.wires
        ideal = w.r_row == 0 and w.r_col == 0 and w.r_driver == 0 and w.r_sense == 0
        dev = cfg.device
        # the reference's scale: DieModel.die_conductances draws normal(0.0, noise)
        noise = (float(dev.programming_noise) * (float(dev.g_on) - float(dev.g_off))
                 if dev.programming_noise > 0 else 0.0)
        # a noisy array changes most of its cells (far above any rank-k crossover): its
        # dense inverse would never be used
        caches, ranks, flat = _array_caches(specs, w, ideal or noise > 0, max_cache_cells)
        n_layers = len(layout.g_scales)
        sizes_l = np.array(layout.layer_sizes, dtype=np.int64)
        biases = np.zeros((n_layers, int(sizes_l[1:].max())))
        for layer, b in enumerate(model.network.biases):
            biases[layer, :len(b)] = b
        v_read = float(cfg.arrays.v_read)
        xs, ys, bounds, start = [], [], {}, 0
        for name in sets:
            xi, yi = model.images(name)
            xs.append(np.asarray(xi, dtype=np.float64) * v_read)  # as DieModel.forward
            ys.append(np.asarray(yi, dtype=np.int64))
            bounds[name] = (start, start + len(yi))
            start += len(yi)
        x = np.ascontiguousarray(np.concatenate(xs).T)
        labels = np.ascontiguousarray(np.concatenate(ys))
        nb = x.shape[1]
        p0_parts, vr_parts = [], []
        for a, s in enumerate(specs):
            m_rows, n_cols = s.shape
            if not shortcut or s.layer != 0 or noise > 0:
                p0_parts.append(np.empty(0))
                vr_parts.append(np.empty(0))
                continue
            p0 = np.empty((n_cols, nb))
            want = (caches[a] is not None and m_rows >= n_cols
                    and m_rows * n_cols * nb * 8 <= MAX_VR_BYTES)
            vr = np.empty((m_rows * n_cols, nb)) if want else np.empty((0, nb))
            rt = caches[a].Rt if caches[a] is not None else _readonly(np.empty((0, m_rows)))
            K.precompute(t0[cell_off[a]:cell_off[a + 1]], int(m_rows), int(n_cols), x,
                          int(row0[a]), rt, p0, vr)
            p0_parts.append(p0.ravel())
            vr_parts.append(vr.ravel())
        p0flat, p0_off = _concat(p0_parts)
        vrflat, vr_off = _concat(vr_parts)
        d = cfg.defects
        q, sev = defects.check_draw_settings(d.kind, d.on_fraction, d.on_mode, d.severity_arg)
        flags = np.array(defects.affected_flags(model.affected, n_arrays), dtype=np.bool_)
        logr = (np.concatenate([log_aspect(int(m), int(n)) for m, n in shapes]) if n_arrays
                else np.empty(0))
        samp = (shapes, cell_off, np.ascontiguousarray(logr), sampler_consts(),
                mixed_weights(d.kind), flags)
        lo, hi = sev if sev is not None else (0.0, 0.0)
        samp_scalars = (int(check_twins(d.kind)), sev is not None, float(lo), float(hi), float(q),
                        d.on_mode == "pattern")
        phys = (float(dev.g_on), float(dev.g_off), float(noise), bool(ideal), float(w.r_row),
                float(w.r_col), float(w.r_driver), float(w.r_sense), float(SOLVER_RTOL),
                int(SOLVER_MAX_ITER), int(RHS_BLOCK), int(act), v_read,
                float(cfg.arrays.output_gain), int(bounds["test"][0]), int(bounds["test"][1]),
                bool(shortcut))
        design = cls(
            seed=int(cfg.seed), n_layers=n_layers, shapes=shapes, cell_off=cell_off,
            layer_of=layer_of, row0=row0, col0=col0, g0=g0, t0=t0, caches=tuple(caches),
            max_rank=np.array(ranks, dtype=np.int64), layer_sizes=sizes_l,
            g_scales=np.array(layout.g_scales, dtype=np.float64), biases=biases,
            images=tuple(sets), set_bounds=bounds, x=x, labels=labels, p0=(p0flat, p0_off),
            vr=(vrflat, vr_off), samp=samp, samp_scalars=samp_scalars, phys=phys,
            flat_cache=(flat["W"][0], flat["W"][1], flat["wdev"][0], flat["Rt"][0], flat["Rt"][1],
                        flat["Cr"][0], flat["Cr"][1]))
        design.build_s = time.perf_counter() - t_start
        return design

    @property
    def n_arrays(self) -> int:
        return int(self.shapes.shape[0])

    @property
    def n_cells(self) -> int:
        return int(self.cell_off[-1])

    @property
    def n_classes(self) -> int:
        return int(self.layer_sizes[-1])

    @property
    def nbytes(self) -> int:
        """Memory held by the design (dense inverses, layer-0 tables, images), bytes."""
        arrays = [self.g0, self.t0, self.x, self.p0[0], self.vr[0]]
        return (sum(a.nbytes for a in arrays)
                + sum(c.nbytes for c in self.caches if c is not None))

    def kernel_args(self, affected: np.ndarray) -> tuple:
        """The design's arguments of :func:`yieldmc.engine._chunk.run_chunk`, in order (from
        ``shapes`` to ``phys``), with ``affected`` (dies x arrays, bool) for the sampler's
        per-array flags."""
        return (*self.samp[:-1], affected, *self.samp_scalars, self.layer_of, self.row0, self.col0,
                self.max_rank, self.g0, self.t0, self.layer_sizes, self.g_scales, self.biases,
                *self.flat_cache, self.x, self.labels, *self.p0, *self.vr, self.phys)

    def die_args(self) -> tuple:
        """``(samp, kind, has_sev, lo, hi, q, pattern, lay, layer_sizes, g_scales, biases,
        cache, img, phys)`` as the serial :func:`yieldmc.engine._chunk._die` takes them."""
        lay = (self.layer_of, self.row0, self.col0, self.max_rank, self.g0, self.t0)
        img = (self.x, self.labels, *self.p0, *self.vr)
        return (self.samp, *self.samp_scalars, lay, self.layer_sizes, self.g_scales, self.biases,
                self.flat_cache, img, self.phys)


#: Sets of dense inverses kept per process (:func:`_array_caches`).
CACHES_KEPT = 4


@dataclass(frozen=True)
class _CacheKey:
    """What a design's dense inverses depend on, and the arrays to build them from (not
    compared: ``key`` holds their shapes and a sha256 of their conductances)."""

    key: tuple
    specs: tuple = field(compare=False)
    wires: Any = field(compare=False)


def _array_caches(specs, wires, skip: bool, max_cells: int) -> tuple[list, list, dict]:
    """Per array a LowRankCache (or None: every array with ``skip`` (ideal wires, or
    programming noise), or above ``max_cells``), its
    :func:`max_rank` (0 without a cache) and the caches' arrays flat and concatenated
    (``name -> (buffer, offsets)``; each LowRankCache holds views of the buffers).

    Dense inverses already built in this process are reused, by (conductances, wires, max
    cells): a design that differs only in its defects or images (a study's next kind or
    severity) skips their 0.1-0.3 s (:func:`_built_caches`, :data:`CACHES_KEPT` sets)."""
    key = (tuple((s.shape, hashlib.sha256(np.ascontiguousarray(s.G).tobytes()).hexdigest())
                 for s in specs),
           (float(wires.r_row), float(wires.r_col), float(wires.r_driver), float(wires.r_sense)),
           int(max_cells), bool(skip))
    caches, ranks, flat = _built_caches(_CacheKey(key, tuple(specs), wires))
    return list(caches), list(ranks), flat


@functools.lru_cache(maxsize=CACHES_KEPT)
def _built_caches(k: _CacheKey) -> tuple[tuple, tuple, dict]:
    """:func:`_array_caches`' work, kept for the last :data:`CACHES_KEPT` keys."""
    specs, wires = k.specs, k.wires
    max_cells, skip = k.key[2], k.key[3]
    caches, ranks = [], []
    for s in specs:
        m_rows, n_cols = s.shape
        if skip or m_rows * n_cols > max_cells:
            caches.append(None)
            ranks.append(0)
            continue
        caches.append(LowRankCache.from_conductances(s.G, wires.r_row, wires.r_col,
                                                     r_driver=wires.r_driver, r_sense=wires.r_sense,
                                                     max_cells=max_cells))
        ranks.append(max_rank(m_rows, n_cols))
    # numba cannot hand tuples of arrays to a prange body: the caches go flat, and each
    # LowRankCache is rebuilt on views of the flat buffers (no second copy is kept)
    flat = {}
    for name in ("W", "Rt", "Cr", "wdev"):
        parts = [getattr(c, name).ravel() if c is not None
                 else np.zeros(s.G.size if name == "wdev" else 0)
                 for s, c in zip(specs, caches, strict=True)]
        flat[name] = _concat(parts)
    for a, c in enumerate(caches):
        if c is not None:
            views = {name: flat[name][0][flat[name][1][a]:flat[name][1][a + 1]].reshape(
                getattr(c, name).shape) for name in flat}
            caches[a] = dataclasses.replace(c, **views)
    return tuple(caches), tuple(ranks), flat


def design_for(model, images: Sequence[str] = ("test",), **kw) -> EngineDesign:
    """:meth:`EngineDesign.from_model`, built once per process per model and settings.

    The sweep asks for the design of every chunk it runs, and a design costs 0.1-0.3 s
    (dense inverses, layer-0 products): the last one is kept (:func:`_last_design`). One
    entry, since a process simulates one run's model at a time; it holds that model until
    another is asked for.
    """
    return _last_design(model, tuple(images), tuple(sorted(kw.items())))


@functools.lru_cache(maxsize=1)
def _last_design(model, images: tuple[str, ...], kw: tuple) -> EngineDesign:
    """The design of ``model`` (hashed by identity) for ``images`` and the options ``kw``."""
    return EngineDesign.from_model(model, images, **dict(kw))


@dataclass(eq=False)
class ChunkResult:
    """The typed outputs of :func:`simulate_chunk_compiled`, one row per die.

    Attributes
    ----------
    dies : numpy.ndarray (int64)
    defect_code : numpy.ndarray (int8)
        Index in ``defects.KINDS`` of the die's label: the kind drawn when a cell is stuck,
        else ``none`` (:func:`yieldmc.defects.die_label`).
    die_kind : numpy.ndarray (int8)
        Kind drawn (``mixed`` resolved), whether or not it hit a cell.
    n_draws : numpy.ndarray (int64)
        Draws of the die's stream used by the defects (with programming noise, the next
        ``n_cells`` draws are the cells' noise).
    n_stuck_on, n_stuck_off, n_correct : numpy.ndarray (int32)
    layers_mask : numpy.ndarray (int64)
        Bit ``l`` set when layer ``l`` has a stuck cell.
    fault_fraction, accuracy, solver_max_residual : numpy.ndarray (float64)
    solver_converged : numpy.ndarray (bool)
    route : numpy.ndarray (int8, dies x arrays)
        How each array's T was made: :data:`ROUTE_NAMES` index.
    rank : numpy.ndarray (int32, dies x arrays)
        Cells whose conductance changed.
    params : dict of numpy.ndarray
        Typed defect parameters, as :func:`yieldmc.engine.sampling.sample_chunk` returns them.
    masks : numpy.ndarray (int8, dies x cells) or None
        With ``keep_masks``.
    volts : numpy.ndarray (float32, dies x images x outputs)
        Output voltages (V), all image sets (``set_bounds``).
    volts64 : numpy.ndarray (float64) or None
        The same before rounding to float32, with ``keep_float64``.
    predictions : numpy.ndarray (int16, dies x images)
    elapsed_s : float
        Wall time of the compiled call.
    """

    dies: np.ndarray
    defect_code: np.ndarray
    die_kind: np.ndarray
    n_draws: np.ndarray
    n_stuck_on: np.ndarray
    n_stuck_off: np.ndarray
    layers_mask: np.ndarray
    fault_fraction: np.ndarray
    n_images: int
    n_correct: np.ndarray
    accuracy: np.ndarray
    solver_max_residual: np.ndarray
    solver_converged: np.ndarray
    route: np.ndarray
    rank: np.ndarray
    params: dict
    masks: np.ndarray | None
    volts: np.ndarray
    volts64: np.ndarray | None
    predictions: np.ndarray
    set_bounds: dict
    elapsed_s: float

    def voltages(self, sets: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Image set -> float32 output voltages (dies, images, outputs), contiguous."""
        names = list(self.set_bounds) if sets is None else list(sets)
        out = {}
        for name in names:
            a, b = self.set_bounds[name]
            v = self.volts[:, a:b, :]
            out[name] = v if len(self.set_bounds) == 1 else np.ascontiguousarray(v)
        return out

    def defect_params(self, i: int) -> list[dict]:
        """Row ``i``'s parameters as ``defects.sample_die`` returns them."""
        from yieldmc.engine.sampling import die_params

        return die_params(self.params, i)

    def columns(self) -> dict[str, np.ndarray]:
        """The per-die columns of :func:`yieldmc.montecarlo.simulate_chunk` (same names,
        values and dtypes; ``defect_params`` as a pyarrow array of
        ``yieldmc.defect_params.PARAMS_TYPE``, ``layers_affected`` as ``"0,2"``;
        ``elapsed_s`` is the chunk's time shared equally)."""
        n = self.dies.size
        kinds = np.asarray(defect_kinds.REGISTRY.kinds)
        masks, which = np.unique(self.layers_mask, return_inverse=True)  # a handful of distinct sets
        layers = np.asarray([schema.encode_layers(_bits(int(m))) for m in masks] or [""])[which]
        return {
            "die": self.dies.copy(),
            "defect_type": kinds[self.defect_code.astype(np.int64)] if n else np.empty(0, str),
            "defect_params": params_array_from_typed(self.params),
            "layers_affected": layers if n else np.empty(0, str),
            "n_stuck_on": self.n_stuck_on.astype(np.int64),
            "n_stuck_off": self.n_stuck_off.astype(np.int64),
            "fault_fraction": self.fault_fraction.copy(),
            "accuracy": self.accuracy.copy(),
            "n_images": np.full(n, self.n_images, dtype=np.int64),
            "n_correct": self.n_correct.astype(np.int64),
            "solver_max_residual": self.solver_max_residual.copy(),
            "solver_converged": self.solver_converged.copy(),
            "elapsed_s": np.full(n, self.elapsed_s / max(n, 1)),
        }


def _concat(parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Flat concatenation (read-only) and int64 offsets of 1-d arrays."""
    off = np.concatenate([[0], np.cumsum([p.size for p in parts])]).astype(np.int64)
    buf = np.concatenate(parts) if parts else np.empty(0)
    buf.setflags(write=False)
    return buf, off


def _bits(mask: int) -> list[int]:
    return [b for b in range(64) if mask >> b & 1]


def simulate_chunk_compiled(design: EngineDesign, dies: Any, *, affected: Any = None,
                            n_blocks: int | None = None, keep_masks: bool = False,
                            keep_float64: bool = False, upto: int = K.STAGE_ALL) -> ChunkResult:
    """Simulate the dies ``dies`` of ``design`` in one compiled call (threads across dies).

    Parameters
    ----------
    design : EngineDesign
    dies : sequence of int
        Die indices in ``[0, 2**63)``, any order; die ``d`` draws from ``DieStream(seed, d)``.
    affected : numpy.ndarray of bool (dies x arrays), optional
        The arrays each die's defects hit (a wafer run's: :func:`yieldmc.waferdies.wafer_dies`),
        row ``i`` for ``dies[i]``; default every array of ``defects.layers`` on every die.
        A die draws every array's pattern whatever its flags: the flags only decide which
        patterns it keeps, so a hit array's defects are those of the die without wafers.
    n_blocks : int, optional
        Contiguous blocks of dies, handed to numba's threads one at a time (default
        :data:`BLOCKS_PER_THREAD` per thread, 1 on one thread); results do not depend on it.
    keep_masks : bool
        Also return every die's stuck-at masks (int8, dies x cells).
    keep_float64 : bool
        Also return the output voltages in float64 (``volts64``), for comparisons.
    upto : int
        ``_chunk.STAGE_ALL``; benchmarks stop after the defects (``STAGE_SAMPLE``) or the
        transfer matrices (``STAGE_TRANSFER``) to time the stages (outputs then partial).

    Returns
    -------
    ChunkResult

    Raises
    ------
    ConfigError
        Bad die indices, flags or ``n_blocks``.
    """
    dies = check_dies(dies)
    flags = die_flags(design.samp[-1] if affected is None else affected, dies.size, design.n_arrays)
    threads = numba.get_num_threads()
    if n_blocks is None:  # a few blocks per thread, handed out as threads free up
        n_blocks = 1 if threads == 1 else BLOCKS_PER_THREAD * threads
    if isinstance(n_blocks, bool) or not isinstance(n_blocks, (int, np.integer)) or n_blocks < 1:
        raise ConfigError(f"n_blocks must be an integer >= 1, got {n_blocks!r}")
    n, n_arrays = dies.size, design.n_arrays
    n_img = design.x.shape[1]
    max_lines = int(design.shapes.max()) if n_arrays else 1
    nb_eff = max(1, min(int(n_blocks), n))
    masks = np.empty((n if keep_masks else 0, design.n_cells), dtype=np.int8)
    fpar = np.empty((n, n_arrays, NF))
    ipar = np.empty((n, n_arrays, NI), dtype=np.int64)
    lines = np.empty((n, n_arrays, max_lines), dtype=np.int64)
    die_kind = np.empty(n, dtype=np.int64)
    n_draws = np.empty(n, dtype=np.int64)
    code = np.empty(n, dtype=np.int64)
    n_on = np.empty(n, dtype=np.int64)
    n_off = np.empty(n, dtype=np.int64)
    layers = np.empty(n, dtype=np.int64)
    n_correct = np.empty(n, dtype=np.int64)
    residual = np.empty(n)
    converged = np.empty(n, dtype=np.bool_)
    route = np.empty((n, n_arrays), dtype=np.int8)
    rank = np.empty((n, n_arrays), dtype=np.int64)
    volts = np.empty((n, n_img, design.n_classes), dtype=np.float32)
    volts64 = np.empty((n, n_img if keep_float64 else 0, design.n_classes))
    preds = np.empty((n, n_img), dtype=np.int64)
    t = time.perf_counter()
    if n:
        with numba.parallel_chunksize(1):  # dynamic: a thread slowed down takes fewer blocks
            K.run_chunk(int(upto), np.uint64(design.seed), dies.astype(np.uint64), *design.kernel_args(flags),
                     nb_eff, keep_masks, masks, fpar, ipar, lines, die_kind, n_draws, code, n_on, n_off,
                     layers, n_correct, residual, converged, route, rank, volts, volts64, preds)
    elapsed = time.perf_counter() - t
    n_test = design.set_bounds["test"][1] - design.set_bounds["test"][0]
    total = design.n_cells
    params = typed_params(dies, design.shapes, design.cell_off, fpar, ipar, lines, die_kind, n_draws)
    return ChunkResult(
        dies=dies, defect_code=kind_indices()[code].astype(np.int8), die_kind=params["die_kind"],
        n_draws=n_draws, n_stuck_on=n_on.astype(np.int32), n_stuck_off=n_off.astype(np.int32),
        layers_mask=layers, fault_fraction=(n_on + n_off) / total,
        n_images=int(n_test), n_correct=n_correct.astype(np.int32),
        accuracy=n_correct / n_test if n_test else np.full(n, np.nan),
        solver_max_residual=residual, solver_converged=converged, route=route,
        rank=rank.astype(np.int32), params=params, masks=masks if keep_masks else None,
        volts=volts, volts64=volts64 if keep_float64 else None,
        predictions=preds.astype(np.int16), set_bounds=dict(design.set_bounds), elapsed_s=elapsed)


__all__ = ["IMAGE_SETS", "ROUTE_NAMES", "UNSUPPORTED", "ChunkResult", "EngineDesign",
           "check_supported", "design_for", "simulate_chunk_compiled"]

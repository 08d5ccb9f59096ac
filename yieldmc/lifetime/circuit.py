"""A die at a checkpoint: drifted conductances, exact transfer matrices by update, forward pass.

At age ``tau = t - t_0`` a die's programmed cells have drifted by the factor
``f(t) = (t / t_0)^-nu`` (the law of :func:`yieldmc.readout.drift_factor`, from the test
time ``t_0`` instead of ``device.drift_t0``: at ``t_0`` the die is exactly the run's), and
its stuck cells sit at ``g_on`` / ``g_off`` (stuck cells do not drift, as in
:mod:`yieldmc.mapping`). The neurons keep the gains they were given at programming
(``DieLayout.g_scales``), so drift shrinks every layer's output.

**The update route.** Drift scales every healthy cell of an array by the same ``f``, so the
fault-free system of checkpoint ``t`` is the design's with conductances ``f G0``, shared by
every die: :class:`CheckpointCircuit` inverts it once per checkpoint and array
(:class:`yieldmc.engine.lowrank.LowRankCache`, about 0.1 s for a 64 x 16 array). A die's
transfer matrix at ``t`` is then the exact rank-k update of that inverse over its k stuck
cells (the ``t_0`` defects plus the faults grown since, :mod:`yieldmc.lifetime.faults`),
with no iterative solve; above the measured crossover :func:`~yieldmc.engine.lowrank.max_rank`
(or for arrays without a dense inverse) a fresh CG solve is cheaper and is used. The tests
check both against fresh solves of the same conductances.

Scope: the designs of the compiled engine (:func:`yieldmc.engine.chunk.check_supported`)
without programming noise (noise gives every die its own fault-free conductances, so there
is no shared inverse to update) and without the run's own drift (``device.drift_nu = 0``:
the lifetime's drift starts from the die at test).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from yieldmc import defects
from yieldmc.circuit.resistances import Resistances
from yieldmc.circuit.solver import transfer_matrix_checked
from yieldmc.engine.chunk import UNSUPPORTED, check_supported
from yieldmc.engine.lowrank import MAX_CACHE_CELLS, LowRankCache, lowrank_transfers, max_rank
from yieldmc.errors import ConfigError, SolverError
from yieldmc.network import ACTIVATIONS
from yieldmc.readout import saturate

#: numba's parallel kernels are entered by one Python thread at a time.
NUMBA_LOCK = threading.Lock()


def drift_factor(t_s, t0_s: float, nu: float) -> np.ndarray | float:
    """``(t / t0)^-nu``: the factor drift has scaled programmed cells by at time ``t`` (s)."""
    t = np.asarray(t_s, dtype=np.float64)
    if nu < 0:
        raise ConfigError(f"drift nu must be >= 0, got {nu!r}")
    f = (t / float(t0_s)) ** -float(nu) if nu else np.ones_like(t)
    return float(f) if f.ndim == 0 else f


def check_lifetime_design(config) -> None:
    """Raise :class:`ConfigError` unless the lifetime covers the run's design (one line)."""
    try:
        check_supported(config)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace(UNSUPPORTED, "the lifetime covers the designs of the compiled "
                                           "engine (linear device, no read noise, bias row or output rail)")) from None
    if config.device.drift_nu > 0:
        raise ConfigError(f"device.drift_nu = {config.device.drift_nu:g}: the run's dies are read after their own "
                          "drift, and the lifetime's drift starts from the die at test; sample the run without "
                          "drift and give the lifetime --drift-nu")
    if config.device.programming_noise > 0:
        raise ConfigError(f"device.programming_noise = {config.device.programming_noise:g}: the lifetime updates one "
                          "fault-free inverse shared by all dies, and programming noise gives every die its own")


@dataclass(eq=False)
class CheckpointCircuit:
    """The fault-free arrays of a design at one checkpoint (drift factor ``factor``).

    Attributes
    ----------
    factor : float
        Drift factor of the programmed cells.
    G0 : tuple of numpy.ndarray
        Drifted fault-free conductances per array (S).
    T0 : tuple of numpy.ndarray
        Their transfer matrices (A/V).
    caches : tuple of LowRankCache or None
        Per array (None: ideal wires, or too many cells for a dense inverse).
    wires : Resistances
    g_on, g_off : float
        Conductances (S) of stuck ON / OFF cells (they do not drift).
    """

    factor: float
    G0: tuple
    T0: tuple
    caches: tuple
    wires: Resistances
    g_on: float
    g_off: float

    @classmethod
    def build(cls, model, factor: float, max_cells: int = MAX_CACHE_CELLS) -> CheckpointCircuit:
        """The checkpoint of ``model`` (a :class:`yieldmc.die.DieModel`) at drift ``factor``."""
        wires = Resistances.of(model.wires)
        G0, T0, caches = [], [], []
        for spec, t0 in zip(model.layout.arrays, model.T0, strict=True):
            G = np.ascontiguousarray(spec.G if factor == 1.0 else spec.G * factor, dtype=np.float64)
            cache = None
            if not wires.ideal and G.size <= max_cells:
                cache = LowRankCache.from_conductances(G, wires.r_row, wires.r_col, r_driver=wires.r_driver,
                                                       r_sense=wires.r_sense, max_cells=max_cells)
            if factor == 1.0:
                T = np.asarray(t0)  # the model's own fault-free solve: the run's t_0 die
            elif wires.ideal:
                T = G.copy()
            elif cache is not None:
                T = cache.T0
            else:
                T = transfer_matrix_checked(G, wires)[0]
            G0.append(G)
            T0.append(T)
            caches.append(cache)
        dev = model.config.device
        return cls(float(factor), tuple(G0), tuple(T0), tuple(caches), wires, float(dev.g_on), float(dev.g_off))

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.caches if c is not None)


def array_conductances(circuit: CheckpointCircuit, a: int, codes: np.ndarray) -> np.ndarray:
    """Conductances (S) of array ``a`` of one die with stuck-at ``codes`` (M*N,)."""
    G = circuit.G0[a]
    return defects.apply(G, codes.reshape(G.shape), circuit.g_on, circuit.g_off)


def checkpoint_transfers(circuit: CheckpointCircuit, codes: np.ndarray, cell_off: np.ndarray
                         ) -> tuple[list[np.ndarray], dict]:
    """Transfer matrices of a chunk of dies at one checkpoint.

    Parameters
    ----------
    circuit : CheckpointCircuit
    codes : numpy.ndarray of int8, shape (dies, cells)
        Every die's stuck-at codes at the checkpoint, arrays flat at ``cell_off``.
    cell_off : numpy.ndarray of int

    Returns
    -------
    transfers : list of numpy.ndarray, one (dies, M, N) per array
    routes : dict
        Arrays taken by ``"same"`` (no stuck cell), ``"update"`` (rank-k update) and ``"solve"``
        (fresh CG solve) over the chunk.

    Raises
    ------
    SolverError
        A CG solve that missed its tolerance.
    """
    n_dies = codes.shape[0]
    routes = {"same": 0, "update": 0, "solve": 0}
    out = []
    for a, (G0, T0, cache) in enumerate(zip(circuit.G0, circuit.T0, circuit.caches, strict=True)):
        m_rows, n_cols = G0.shape
        block = codes[:, int(cell_off[a]):int(cell_off[a + 1])]
        stuck = block != defects.HEALTHY
        k = stuck.sum(axis=1)
        T = np.empty((n_dies, m_rows, n_cols))
        T[:] = T0
        routes["same"] += int(np.count_nonzero(k == 0))
        if circuit.wires.ideal:
            for i in np.flatnonzero(k):
                T[i] = array_conductances(circuit, a, block[i])
            routes["update"] += int(np.count_nonzero(k))
            out.append(T)
            continue
        upd = (k > 0) & (k <= (max_rank(m_rows, n_cols) if cache is not None else -1))
        if upd.any():
            rows, cells = np.nonzero(stuck[upd])
            g_new = np.where(block[upd][rows, cells] == defects.STUCK_ON, circuit.g_on, circuit.g_off)
            offsets = np.concatenate([[0], np.cumsum(k[upd])]).astype(np.int64)
            with NUMBA_LOCK:
                T[upd] = lowrank_transfers(cache, offsets, cells.astype(np.int64), g_new)
            routes["update"] += int(upd.sum())
        for i in np.flatnonzero((k > 0) & ~upd):
            T[i], info = transfer_matrix_checked(array_conductances(circuit, a, block[i]), circuit.wires,
                                                 raise_on_failure=False)
            if not info.converged:
                raise SolverError(f"array {a}: a CG solve stopped at relative residual {info.max_residual:.3g}")
            routes["solve"] += 1
        out.append(T)
    return out, routes


def forward_many(model, transfers: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    """Output voltages (V) of many dies for the same images: :meth:`DieModel.forward`, batched.

    Parameters
    ----------
    model : DieModel
        Its design (no bias row: :func:`check_lifetime_design`).
    transfers : list of numpy.ndarray
        Per array, the dies' transfer matrices (dies, M, N).
    x : numpy.ndarray, shape (B, n_in)
        Images in [0, 1].

    Returns
    -------
    numpy.ndarray, shape (dies, B, n_classes)
    """
    arr = model.config.arrays
    layout = model.layout
    act = ACTIVATIONS[model.network.activation]
    biases = layout.periphery_biases(model.network.biases)
    n_dies = transfers[0].shape[0] if transfers else 0
    v = np.asarray(x, dtype=np.float64) * arr.v_read  # (B, n_in) for layer 0, then (dies, B, n)
    n_layers = len(layout.g_scales)
    out = None
    for layer in range(n_layers):
        n_out = layout.layer_sizes[layer + 1]
        current = np.zeros((n_dies, x.shape[0], 2 * n_out))
        for spec, T in zip(layout.arrays, transfers, strict=True):
            if spec.layer != layer:
                continue
            if v.ndim == 2:  # layer 0: the same images for every die, one large product
                m_rows, n_cols = T.shape[1:]
                wide = np.ascontiguousarray(T.transpose(1, 0, 2)).reshape(m_rows, n_dies * n_cols)
                part = (v[:, spec.rows] @ wide).reshape(-1, n_dies, n_cols).transpose(1, 0, 2)
            else:
                part = np.matmul(v[..., spec.rows], T)
            current[:, :, spec.cols] += part
        z = (current[..., 0::2] - current[..., 1::2]) / (layout.g_scales[layer] * arr.v_read)
        z += biases[layer]
        if layer < n_layers - 1:
            v = arr.v_read * act(z)
        else:
            out = saturate(arr.output_gain * z, arr.output_rail)
    return out


__all__ = ["NUMBA_LOCK", "CheckpointCircuit", "array_conductances", "check_lifetime_design",
           "checkpoint_transfers", "drift_factor", "forward_many"]

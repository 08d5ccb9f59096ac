"""Numba kernels of the compiled chunk engine: one call simulates a chunk of dies.

Per die (:func:`_die`), in order, with nothing but arrays and scalars:

1. stream key ``die_key(seed, die)`` and the defects (:func:`yieldmc.engine._sampling.sample_die`,
   which uses the stream's first ``n_draws`` draws);
2. per array, its conductances ``G1`` and the cells where they differ from ``G0``
   (:func:`_changes`): with programming noise (``noise`` > 0, the scale
   ``programming_noise * (g_on - g_off)``) cell ``c`` of array ``a`` (row-major) first
   becomes ``clip(G0 + (0.0 + noise * z), g_off, g_on)``, ``z`` the standard normal of draw
   ``n_draws + cell_off[a] + c`` (exactly :meth:`yieldmc.die.DieModel.die_conductances`
   on ``DieStream``); then stuck cells are overwritten (mask 1 -> ``g_off``, 2 -> ``g_on``;
   a stuck cell already at that value is counted as stuck but changes nothing). The
   array's transfer matrix comes by one of four routes (:data:`ROUTE_REUSE` ..
   :data:`ROUTE_IDEAL`): the fault-free ``T0`` when nothing changes, the exact rank-k update
   (:func:`yieldmc.engine._lowrank.update_one`) up to the array's measured crossover, a
   fresh CG solve (:func:`yieldmc.circuit._kernels.transfer`, exactly as
   :func:`yieldmc.circuit.transfer_matrix_info` calls it: the reference's fresh solve
   bit for bit) above it or where no dense inverse is cached (every noisy array: most of
   its cells change), and ``T = G1`` written exactly with ideal wires;
3. the analog forward pass of every image through all layers (:mod:`yieldmc.engine._forward`),
   the predictions, the correct count on the evaluation (test) images, the per-die
   defect counts and the solver status.

:func:`run_chunk` runs the dies in ``n_blocks`` contiguous blocks under ``prange``; each block
allocates its scratch once. A die's outputs depend only on its index and the design: the
same bits for any chunk split, block count or thread count.

numba cannot hand tuples of arrays to a ``prange`` body, so :func:`run_chunk` takes every
array on its own and packs the groups inside the block. The groups :func:`_die` takes:

* ``samp``: ``(shapes, cell_off, logr, consts, cum, affected)`` and the scalars
  ``kind, has_sev, sev_lo, sev_hi, q, pattern`` (the sampler's inputs; ``affected``: the
  die's own flags, one per array, row ``d`` of :func:`run_chunk`'s (dies x arrays) matrix);
* ``lay``: ``(layer_of, row0, col0, max_rank, g0, t0)`` per array (flat ``g0``, ``t0`` at
  ``cell_off``), ``layer_sizes``, ``g_scales``, ``biases`` (layers x max outputs);
* ``cache``: ``(w, w_off, wdev, rt, rt_off, cr, cr_off)``: every array's dense inverse
  ``W`` (MN x MN), ``diag(W) - G0`` (at ``cell_off``), ``Rt`` (MN x M) and ``Cr`` (MN x N)
  flat and concatenated at their offsets (an empty span where none is cached);
* ``img``: ``(x, labels, p0, p0_off, vr, vr_off)``: input voltages ``(n_in, images)``,
  labels, and per layer-0 array the precomputed products ``P0`` (N x images) and
  ``Rt v0`` (MN x images), flat at their offsets (empty spans where not used). They
  describe the fault-free ``T0``: a die adds ``P0`` (plus a correction over its changed
  cells) only without programming noise;
* ``phys``: ``(g_on, g_off, noise, ideal, r_row, r_col, r_driver, r_sense, rtol,
  max_iter, block, act, v_read, gain, test0, test1, shortcut)`` (the resistances in the
  order of :class:`~yieldmc.circuit.resistances.Resistances`; :func:`_die` passes them on as a
  :class:`~yieldmc.circuit.resistances.Resistances`); ``noise`` is the programming
  noise's standard deviation in siemens, ``programming_noise * (g_on - g_off)``, 0.0 for
  none.
"""

from __future__ import annotations

import numba
import numpy as np

from yieldmc._numba import njit
from yieldmc.circuit import _kernels
from yieldmc.circuit.resistances import Resistances
from yieldmc.engine import _forward as F
from yieldmc.engine._lowrank import STATUS_OK, scratch, update_one
from yieldmc.engine._sampling import NONE, STUCK_ON, sample_die
from yieldmc.engine._streams import die_key, std_normal

#: How far :func:`_die` goes (benchmarks time the stages apart): the defects only, the
#: defects and transfer matrices, or everything.
STAGE_SAMPLE, STAGE_TRANSFER, STAGE_ALL = 1, 2, 3

#: How an array's transfer matrix was obtained (per die and array, ``route`` output).
ROUTE_REUSE, ROUTE_LOWRANK, ROUTE_CG, ROUTE_IDEAL = 0, 1, 2, 3
ROUTE_NAMES = ("reuse", "lowrank", "cg", "ideal")


@njit
def _changes(mask, off, size, g0, g_on, g_off, noise, key, ctr, cells, g_new):
    """Changed cells of one array: ``(k, n_on, n_off)``; ``cells[:k]``, ``g_new[:k]`` filled.

    The die's conductances, cell by cell (flat index ``c`` within the array, row-major):
    ``G0``; with ``noise > 0`` then ``G0 + (0.0 + noise * z)`` clipped to
    ``[g_off, g_on]`` (``max`` then ``min``, as ``numpy.clip``), ``z`` the standard normal
    of draw ``ctr + c`` of stream ``key`` (the reference's
    ``rng.normal(0.0, noise, G.shape)`` after the defects, same operations, same bits);
    last a stuck cell's ``g_on`` / ``g_off`` (``defects.apply``). ``n_on``/``n_off`` count
    every stuck cell (as the reference counts the mask); ``k`` only the cells whose
    conductance differs from ``G0``, with their new value.
    """
    k = 0
    n_on = 0
    n_off = 0
    for c in range(size):
        g = g0[off + c]
        if noise > 0.0:
            g = g + (0.0 + noise * std_normal(key, ctr + c))
            g = g_off if g < g_off else g
            g = g_on if g > g_on else g
        mv = mask[off + c]
        if mv != 0:
            if mv == STUCK_ON:
                n_on += 1
                g = g_on
            else:
                n_off += 1
                g = g_off
        if g != g0[off + c]:
            cells[k] = c
            g_new[k] = g
            k += 1
    return k, n_on, n_off


@njit
def _transfer_cg(g0, off, m, n, cells, g_new, k, wires, rtol, max_iter, block, out):
    """Fresh transfer matrix of the changed array by CG, as
    :func:`yieldmc.circuit.solver.transfer_matrix_checked` runs it (same kernel, same
    inputs: the same bits); writes ``out`` (flat M N), returns the largest relative
    residual."""
    g1 = g0[off:off + m * n].copy().reshape((m, n))
    for p in range(k):
        c = cells[p]
        g1[c // n, c % n] = g_new[p]
    worst, _ = _kernels.transfer(g1, wires, rtol, max_iter, block, out.reshape((m, n)))
    return worst


@njit
def _die(upto, key, samp, kind, has_sev, sev_lo, sev_hi, q, pattern, lay, layer_sizes, g_scales,
         biases, cache, img, phys, scr, mask, fpar, ipar, lines, route, rank, volts, volts64,
         preds):
    """One die end to end; trusts its inputs. Writes its rows of the outputs (``mask``,
    ``fpar``, ``ipar``, ``lines``: the sampler's; ``route``, ``rank`` (A,); ``volts``
    (images, outputs) float32, and ``volts64`` the same in float64 when it has rows;
    ``preds`` (images,)) and returns ``(n_draws, kind drawn,
    defect code, n_on, n_off, layers bitmask, n_correct, max residual, converged)``;
    ``n_draws`` counts the defects' draws (the programming noise, if any, takes the next
    ``cell_off[-1]``). ``upto`` < :data:`STAGE_ALL` stops early (benchmarks): the outputs
    are then partial."""
    shapes, cell_off, logr, consts, cum, affected = samp
    layer_of, row0, col0, max_rank, g0, t0 = lay
    wflat, w_off, wdev, rtflat, rt_off, crflat, cr_off = cache
    x, labels, p0flat, p0_off, vrflat, vr_off = img
    (g_on, g_off, noise, ideal, r_row, r_col, r_driver, r_sense, rtol, max_iter, block, act,
     v_read, gain, test0, test1, shortcut) = phys
    wires = Resistances(r_row, r_col, r_driver, r_sense)
    (xbuf, perm, d2, cnt, cells, g_new, sel, lu, xs, scale, tbuf, va, vb, cur, tmp, xk, gather,
     out64) = scr
    n_arrays = shapes.shape[0]
    n_layers = g_scales.shape[0]
    nb = x.shape[1]

    ctr, drawn = sample_die(key, shapes, cell_off, logr, consts, kind, cum, has_sev, sev_lo,
                             sev_hi, q, pattern, affected, xbuf, perm, d2, cnt, mask, fpar, ipar,
                             lines)
    n_on = 0
    n_off = 0
    layers = np.int64(0)
    worst = 0.0
    converged = True
    n_correct = 0
    if upto == STAGE_SAMPLE:
        return ctr, drawn, NONE, n_on, n_off, layers, n_correct, worst, converged
    fwd = upto == STAGE_ALL
    # ---- layer by layer: each layer's transfer matrices, then its neurons -----------
    vin = x.reshape(x.size)  # layer 0 reads the images; hidden layers alternate va, vb
    for layer in range(n_layers):
        n_out = layer_sizes[layer + 1]
        cur[:2 * n_out * nb] = 0.0
        for a in range(n_arrays):
            if layer_of[a] != layer:
                continue
            off = cell_off[a]
            m = shapes[a, 0]
            n = shapes[a, 1]
            size = m * n
            # the programming noise of array a: draws ctr + off .. ctr + off + size - 1
            k, a_on, a_off = _changes(mask, off, size, g0, g_on, g_off, noise, key, ctr + off,
                                      cells, g_new)
            n_on += a_on
            n_off += a_off
            if a_on + a_off > 0:
                layers |= np.int64(1) << np.int64(layer)
            rank[a] = k
            t = tbuf[off:off + size]
            # layer 0 from the fault-free products P0 (+ a correction over the k changed
            # cells) only without noise: a noisy array changes most of its cells
            first = (layer == 0 and shortcut and noise == 0.0
                     and p0_off[a + 1] - p0_off[a] == n * nb)
            p0 = p0flat[p0_off[a]:p0_off[a + 1]]
            c0 = col0[a]
            if k == 0:
                route[a] = ROUTE_REUSE
                if not fwd:
                    pass
                elif first:
                    F.add_flat(p0, cur, c0 * nb, n * nb)
                else:
                    F.add_currents(t0[off:off + size], m, n, vin, row0[a], cur, c0, nb, tmp)
                continue
            if ideal:
                route[a] = ROUTE_IDEAL
                if first and fwd:
                    F.add_flat(p0, cur, c0 * nb, n * nb)
                    F.ideal_correction(cells, g_new, g0[off:off + size], k, n, vin, row0[a], cur,
                                        c0, nb)
                else:
                    for c in range(size):
                        t[c] = t0[off + c]
                    for p in range(k):
                        t[cells[p]] = g_new[p]
                    if fwd:
                        F.add_currents(t, m, n, vin, row0[a], cur, c0, nb, tmp)
                continue
            done = False
            if k <= max_rank[a]:
                w = wflat[w_off[a]:w_off[a + 1]].reshape((size, size))
                rt = rtflat[rt_off[a]:rt_off[a + 1]].reshape((size, m))
                cr = crflat[cr_off[a]:cr_off[a + 1]].reshape((size, n))
                status = update_one(w, wdev[off:off + size], rt, cr,
                                     t0[off:off + size].reshape((m, n)), g0[off:off + size], False,
                                     cells[:k], g_new[:k], sel, lu, xs, scale, t.reshape((m, n)))
                if status == STATUS_OK:
                    done = True
                    route[a] = ROUTE_LOWRANK
                    # xs[:k, :n] holds S^-1 Cr_c when M >= N (update_one's by-columns case)
                    if not fwd:
                        pass
                    elif (first and m >= n and 5 * k < 2 * m
                          and vr_off[a + 1] - vr_off[a] == size * nb):
                        # k n nb (+ a k nb gather) instead of m n nb multiply-adds: measured
                        # faster up to k = 0.4 M at 64 x 16 (2.3 vs 5.6 us at k = 4)
                        F.add_flat(p0, cur, c0 * nb, n * nb)
                        F.lowrank_correction(xs, cells, k, n, vrflat[vr_off[a]:vr_off[a + 1]],
                                              cur, c0, nb, xk, gather, tmp)
                    else:
                        F.add_currents(t, m, n, vin, row0[a], cur, c0, nb, tmp)
            if not done:
                route[a] = ROUTE_CG
                res = _transfer_cg(g0, off, m, n, cells, g_new, k, wires, rtol, max_iter, block, t)
                worst = max(worst, res)
                if not res <= rtol:
                    converged = False
                if fwd:
                    F.add_currents(t, m, n, vin, row0[a], cur, c0, nb, tmp)
        denom = g_scales[layer] * v_read
        if not fwd:
            continue
        if layer < n_layers - 1:
            vout = va if layer % 2 == 0 else vb
            F.neuron(cur, n_out, denom, biases[layer], act, v_read, vout, nb)
            vin = vout
        else:
            F.output(cur, n_out, denom, biases[layer], gain, out64, nb)
    # ---- outputs, predictions -----------------------------------------------------------
    code = drawn if n_on + n_off > 0 else NONE
    if not fwd:
        return ctr, drawn, code, n_on, n_off, layers, n_correct, worst, converged
    n_cls = layer_sizes[n_layers]
    if volts64.shape[0] > 0:
        for b in range(nb):
            for o in range(n_cls):
                volts64[b, o] = out64[b, o]
    for b in range(nb):
        best = 0
        for o in range(n_cls):
            volts[b, o] = np.float32(out64[b, o])
            if out64[b, o] > out64[b, best]:  # first maximum, as numpy's argmax
                best = o
        preds[b] = best
        if b >= test0 and b < test1 and best == labels[b]:
            n_correct += 1
    return ctr, drawn, code, n_on, n_off, layers, n_correct, worst, converged


@njit
def _block_scratch(shapes, layer_sizes, max_rank, nb):
    """Work arrays of one block of dies (see :func:`_die`'s ``scr``)."""
    n_arrays = shapes.shape[0]
    max_cells = 1
    max_lines = 1
    total = 0
    kmax = 1
    mm = 1
    for a in range(n_arrays):
        m = shapes[a, 0]
        n = shapes[a, 1]
        max_cells = max(max_cells, m * n)
        max_lines = max(max_lines, max(m, n))
        total += m * n
        if max_rank[a] > 0:
            kmax = max(kmax, max_rank[a])
            mm = max(mm, min(m, n))
    width = 1
    for layer in range(layer_sizes.shape[0]):
        width = max(width, layer_sizes[layer])
    n_cls = max(layer_sizes[layer_sizes.shape[0] - 1], 1)
    sel, lu, xs, scale = scratch(kmax, mm, mm)
    return (np.empty(max_lines), np.empty(max_lines, dtype=np.int64), np.empty(max_cells),
            np.empty(max_cells, dtype=np.int64), np.empty(max_cells, dtype=np.int64),
            np.empty(max_cells), sel, lu, xs, scale, np.empty(max(total, 1)),
            np.empty(width * nb), np.empty(width * nb), np.empty(2 * width * nb),
            np.empty(2 * width * nb), np.empty(kmax * mm), np.empty(kmax * nb),
            np.empty((nb, n_cls)))


@njit(parallel=True)
def run_chunk(upto, seed, dies, shapes, cell_off, logr, consts, cum, affected, kind, has_sev,
              sev_lo, sev_hi, q, pattern, layer_of, row0, col0, max_rank, g0, t0, layer_sizes,
              g_scales, biases, wflat, w_off, wdev, rtflat, rt_off, crflat, cr_off, x, labels,
              p0flat, p0_off, vrflat, vr_off, phys, n_blocks, keep_masks, masks, fpar, ipar, lines,
              die_kind, n_draws, code, n_on, n_off, layers, n_correct, residual, converged, route,
              rank, volts, volts64, preds):
    """Many dies in parallel (``n_blocks`` contiguous blocks); row ``d`` of every output is
    die ``dies[d]``'s, whose defects hit the arrays of ``affected[d]`` (``affected``: dies x
    arrays, bool) (``upto``: :data:`STAGE_ALL`, or an earlier stage for benchmarks).
    ``masks`` (dies x cells) is written with ``keep_masks`` only, and
    ``volts64`` (dies x images x outputs, float64) only when its image axis is not empty."""
    n_dies = dies.shape[0]
    nb = max(1, min(n_blocks, n_dies))
    for blk in numba.prange(nb):
        d0 = (blk * n_dies) // nb
        d1 = ((blk + 1) * n_dies) // nb
        lay = (layer_of, row0, col0, max_rank, g0, t0)
        cache = (wflat, w_off, wdev, rtflat, rt_off, crflat, cr_off)
        img = (x, labels, p0flat, p0_off, vrflat, vr_off)
        scr = _block_scratch(shapes, layer_sizes, max_rank, x.shape[1])
        own = np.empty(cell_off[cell_off.shape[0] - 1], dtype=np.int8)
        for d in range(d0, d1):
            mrow = masks[d] if keep_masks else own
            key = die_key(seed, dies[d])
            samp = (shapes, cell_off, logr, consts, cum, affected[d])
            (n_draws[d], die_kind[d], code[d], n_on[d], n_off[d], layers[d], n_correct[d],
             residual[d], converged[d]) = _die(
                upto, key, samp, kind, has_sev, sev_lo, sev_hi, q, pattern, lay, layer_sizes, g_scales,
                biases, cache, img, phys, scr, mrow, fpar[d], ipar[d], lines[d], route[d],
                rank[d], volts[d], volts64[d], preds[d])


@njit
def precompute(t0, m, n, x, r0, rt, p0, vr):
    """One layer-0 array's products with the images ``x`` (features x images):
    :func:`yieldmc.engine._forward.precompute_layer0`."""
    F.precompute_layer0(t0, m, n, x.reshape(x.size), r0, rt, x.shape[1], p0, vr)


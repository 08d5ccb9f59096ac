"""Numba kernels of the compiled defect sampler: arrays and scalars only.

:func:`sample_die` is a twin of :func:`yieldmc.defects.sample_die` called with
``DieStream(seed, die)``: it makes the same draws of the die's counter-based stream
(:mod:`yieldmc.engine._streams`), in the same order, and writes the same masks and
parameters (``yieldmc.defects._resolve``, ``_draw``, ``_build``; the kinds' samplers and
cell rules of :data:`yieldmc.defect_kinds.REGISTRY`, ``_draw_disk``, ``_draw_checkerboard``,
``bernoulli``: the functions below carry the same names and the same order of draws).
Only the kinds of ``engine/sampling.TWIN_CODES`` have a twin here; the wrapper refuses the
others. Where the readable path computes with numpy or CPython
rather than plain IEEE operations, the kernel is given those values or reproduces the
call:

* ``np.sort`` of all squared distances then ``_radius_for_count``: only the ``count``-th
  and ``(count + 1)``-th smallest values are used, which a selection (:func:`_select`)
  finds exactly, whatever the ties.
* checkerboard ``np.log`` of the region aspect ratios: numpy's SIMD logarithm differs
  from libm's in the last bit for about 1 value in 800, so the wrapper passes the table
  ``np.log(((h + 1) N) / ((w + 1) M))`` per array, computed by numpy (``logr``).
* ``radius ** 2`` of a Python float is libm ``pow(r, 2.0)``, which differs from
  ``r * r`` in about 1 case in 1100; ``r ** two`` with ``two = 2.0`` read at run time
  (``consts[C_TWO]``) keeps LLVM from rewriting it into ``r * r``, so both call libm pow.
* Python's ``round`` (half to even), ``int`` (towards zero) and ``math.ceil`` are
  written out on doubles.

Outputs per die (rows of the chunk arrays, ``A`` arrays): the mask row (int8, arrays
concatenated flat at ``cell_off``), ``fpar`` (A, NF) floats (NaN absent), ``ipar``
(A, NI) integers (-1 absent), ``lines`` (A, L) sorted line indices (-1 padded).
Tiers (STYLE.md): :func:`sample_die` serial, :func:`sample_chunk` the ``prange``
driver, :mod:`yieldmc.engine.sampling` the validating wrapper.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from yieldmc._numba import njit
from yieldmc.engine._streams import GOLDEN, die_key, finalise, mix64, permute, uniform

# Kind codes of the kinds with a twin here (engine/sampling.TWIN_CODES maps names to them;
# the spatial kinds first, so that mixed's pool index is the code).
CIRCULAR, COMPLEMENT, RING, ROW, COLUMN, CHECKERBOARD, RANDOM, MIXED, NONE = range(9)
HEALTHY, STUCK_OFF, STUCK_ON = 0, 1, 2

# fpar fields (float64, NaN when absent)
F_CX, F_CY, F_RADIUS, F_WIDTH, F_DENSITY, F_ON_FRACTION = range(6)
NF = 6
# ipar fields (int64, -1 when absent)
I_KIND, I_BLOCK, I_PHASE0, I_PHASE1, I_ROW0, I_COL0, I_HEIGHT, I_WIDTH, I_NLINES, I_STATE, \
    I_SEED = range(11)
NI = 11

# consts: yieldmc.defect_kinds' module constants, passed at run time (a compiled, cached kernel
# must not freeze values that defect_kinds.py may change).
(C_CIRCLE_C0, C_CIRCLE_C1, C_CIRCLE_R0, C_CIRCLE_R1, C_COMP_C0, C_COMP_C1, C_COMP_R0,
 C_COMP_R1, C_RING_C0, C_RING_C1, C_RING_R0, C_RING_R1, C_RING_W0, C_RING_W1, C_RING_A0,
 C_RING_A1, C_DENS0, C_DENS1, C_LINE_SHARE, C_CHECKER_REGION, C_LOG_ASPECT, C_CHECKER_SLACK,
 C_SEED_BOUND, C_TWO) = range(24)
N_CONSTS = 24

_TWO53 = 9007199254740992.0
_S7, _S11, _S13, _S17 = (np.uint64(v) for v in (7, 11, 13, 17))


@njit
def _round_half_even(x):
    """Python's ``round(x)`` for a finite double: the nearest integer, ties to even."""
    f = math.floor(x)
    diff = x - f
    i = int(f)
    if diff > 0.5 or (diff == 0.5 and i % 2 != 0):
        i += 1
    return i


@njit
def _ceil(x):
    return int(math.ceil(x))


@njit
def _select(a, size, k):
    """Reorder ``a[:size]`` so that ``a[k]`` is its k-th smallest (0-based) with nothing
    larger before it and nothing smaller after it; return ``a[k]``.

    Hoare's quickselect with pseudo-random pivots (a fixed xorshift sequence): squared
    distances on a grid come in bowls, on which a median-of-three pivot is nearly the
    maximum and the selection quadratic. Only values are returned, so the pivots do not
    change the result.
    """
    lo = 0
    hi = size - 1
    state = np.uint64(0x9E3779B97F4A7C15)
    while hi > lo:
        state ^= state << _S13
        state ^= state >> _S7
        state ^= state << _S17
        pivot = a[lo + int(state % np.uint64(hi - lo + 1))]
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                t = a[i]
                a[i] = a[j]
                a[j] = t
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return a[k]
    return a[k]


@njit
def _radius_for_count(d2, size, count):
    """``defect_kinds.radius_for_count(np.sort(d2[:size]), count)``; reorders ``d2``."""
    if count <= 0:
        v = d2[0]
        for c in range(1, size):
            v = min(v, d2[c])
        return math.sqrt(v / 2)
    if count >= size:
        v = d2[0]
        for c in range(1, size):
            v = max(v, d2[c])
        return math.sqrt(v) + 1.0
    a = _select(d2, size, count - 1)
    b = d2[count]
    for c in range(count + 1, size):
        b = min(b, d2[c])
    return math.sqrt((a + b) / 2)


@njit
def _dist2(m, n, cx, cy, xbuf, out):
    """``defect_kinds.dist2`` flat: ``(x_j - cx)^2 + (y_i - cy)^2`` at cell ``i n + j``
    (``xbuf``: scratch of ``n`` entries)."""
    for j in range(n):
        dx = (j + 0.5) / n - cx
        xbuf[j] = dx * dx
    for i in range(m):
        dy = (i + 0.5) / m - cy
        dy2 = dy * dy
        for j in range(n):
            out[i * n + j] = xbuf[j] + dy2


@njit
def _bernoulli_threshold(q):
    """``u < q`` at 53-bit resolution is ``bits < (int(q 2**53) << 11)`` (0 < q < 1)."""
    return np.uint64(int(q * _TWO53)) << _S11


@njit
def _bernoulli_offset(seed, stream):
    return mix64(mix64(np.uint64(seed)) ^ np.uint64(stream))


@njit
def _bernoulli_bits(offset, idx):
    """``defect_kinds.bernoulli``'s hash of cell ``idx``: finalise(idx GOLDEN + offset)."""
    return finalise(np.uint64(idx) * GOLDEN + offset)


@njit
def _draw_disk(kind, m, n, key, ctr, k, consts, xbuf, d2, fpar):
    """``defect_kinds._draw_disk``: centre, radius (and ring width) into ``fpar``; next counter."""
    if kind == CIRCULAR:
        lo, hi = consts[C_CIRCLE_C0], consts[C_CIRCLE_C1]
    elif kind == RING:
        lo, hi = consts[C_RING_C0], consts[C_RING_C1]
    else:
        lo, hi = consts[C_COMP_C0], consts[C_COMP_C1]
    cx = lo + (hi - lo) * uniform(key, ctr)  # cx, cy = rng.uniform(lo, hi, size=2)
    cy = lo + (hi - lo) * uniform(key, ctr + 1)
    ctr += 2
    width = np.nan
    size = m * n
    if k >= 0:
        _dist2(m, n, cx, cy, xbuf, d2)
        if kind == RING:
            a = consts[C_RING_A0] + (consts[C_RING_A1] - consts[C_RING_A0]) * uniform(key, ctr)
            ctr += 1
            k_out = min(size, _ceil(k / a))
            r = _radius_for_count(d2, size, k_out)
            width = r - _radius_for_count(d2, size, k_out - k)
        else:
            r = _radius_for_count(d2, size, k if kind == CIRCULAR else size - k)
    elif kind == RING:
        r = consts[C_RING_R0] + (consts[C_RING_R1] - consts[C_RING_R0]) * uniform(key, ctr)
        w = consts[C_RING_W0] + (consts[C_RING_W1] - consts[C_RING_W0]) * uniform(key, ctr + 1)
        ctr += 2
        width = min(r, max(w * r, 1 / m, 1 / n))
    elif kind == CIRCULAR:
        r = consts[C_CIRCLE_R0] + (consts[C_CIRCLE_R1] - consts[C_CIRCLE_R0]) * uniform(key, ctr)
        ctr += 1
    else:
        r = consts[C_COMP_R0] + (consts[C_COMP_R1] - consts[C_COMP_R0]) * uniform(key, ctr)
        ctr += 1
    fpar[F_CX] = cx
    fpar[F_CY] = cy
    fpar[F_RADIUS] = r
    fpar[F_WIDTH] = width
    return ctr


@njit
def _draw_lines(size, key, ctr, has_sev, s, consts, perm, lines):
    """Rows / columns: ``sorted(rng.permutation(size)[:count])`` into ``lines``;
    returns ``(count, next counter)``."""
    if has_sev:
        count = _round_half_even(s * size)
    else:
        count = 1 + int(uniform(key, ctr) * max(1, _ceil(size * consts[C_LINE_SHARE])))
        ctr += 1
    ctr = permute(key, ctr, perm, size)
    count = min(count, size)
    for c in range(count):  # insertion sort of the first `count` items
        v = perm[c]
        p = c
        while p > 0 and lines[p - 1] > v:
            lines[p] = lines[p - 1]
            p -= 1
        lines[p] = v
    return count, ctr


@njit
def _draw_checkerboard(m, n, key, ctr, k, consts, logr, colour, cnt, ipar):
    """``defect_kinds._draw_checkerboard``: block, phase, region into ``ipar``; next counter."""
    u0 = uniform(key, ctr)  # u = rng.random(7)
    u1 = uniform(key, ctr + 1)
    u2 = uniform(key, ctr + 2)
    u3 = uniform(key, ctr + 3)
    u4 = uniform(key, ctr + 4)
    u5 = uniform(key, ctr + 5)
    u6 = uniform(key, ctr + 6)
    ctr += 7
    b = 1 + int(u0 * max(1, min(m, n) // 4))
    ph0 = int(u1 * 2 * b)
    ph1 = int(u2 * 2 * b)
    if k < 0:
        h_lo = _ceil(m * consts[C_CHECKER_REGION])
        w_lo = _ceil(n * consts[C_CHECKER_REGION])
        h = h_lo + int(u3 * (m + 1 - h_lo))
        w = w_lo + int(u4 * (n + 1 - w_lo))
    elif k == 0:
        h = 0
        w = 0
    else:
        # counts[h - 1, w - 1]: colour-0 cells of the (0, 0)-anchored region h x w
        emin = m * n + k
        for j in range(n):  # the checker's column parities (``colour``: n entries)
            colour[j] = ((j + ph1) // b) & 1
        for i in range(m):
            a = ((i + ph0) // b) & 1
            for j in range(n):
                c = 1 - (a ^ colour[j])
                if i > 0:
                    c += cnt[(i - 1) * n + j]
                if j > 0:
                    c += cnt[i * n + j - 1]
                if i > 0 and j > 0:
                    c -= cnt[(i - 1) * n + j - 1]
                cnt[i * n + j] = c
                emin = min(emin, abs(c - k))
        bound = emin + int(math.floor(consts[C_CHECKER_SLACK] * m * n))
        target = (2 * u3 - 1) * consts[C_LOG_ASPECT]
        best = np.inf
        h = 0
        w = 0
        for c in range(m * n):  # row-major, the first minimum (np.nonzero, np.argmin)
            if abs(cnt[c] - k) <= bound:
                v = abs(logr[c] - target)
                if v < best:
                    best = v
                    h = c // n + 1
                    w = c % n + 1
    ipar[I_BLOCK] = b
    ipar[I_PHASE0] = ph0
    ipar[I_PHASE1] = ph1
    ipar[I_ROW0] = int(u5 * (m - h + 1))
    ipar[I_COL0] = int(u6 * (n - w + 1))
    ipar[I_HEIGHT] = h
    ipar[I_WIDTH] = w
    return ctr


@njit
def _build(kind, m, n, fpar, ipar, lines, two, xbuf, colour, d2, out):
    """``defects._build``: the int8 mask of one array into ``out`` (zeros on entry);
    ``xbuf``, ``colour``, ``d2``: scratch."""
    size = m * n
    if kind == CIRCULAR or kind == COMPLEMENT or kind == RING:
        _dist2(m, n, fpar[F_CX], fpar[F_CY], xbuf, d2)
        r2 = fpar[F_RADIUS] ** two  # libm pow, as Python's radius ** 2
        if kind == RING:
            r_in2 = max(fpar[F_RADIUS] - fpar[F_WIDTH], 0.0) ** two
            for c in range(size):
                if d2[c] <= r2 and d2[c] > r_in2:
                    out[c] = 1
        else:
            inside = kind == CIRCULAR
            for c in range(size):
                if (d2[c] <= r2) == inside:
                    out[c] = 1
    elif kind == ROW:
        for t in range(ipar[I_NLINES]):
            for j in range(n):
                out[lines[t] * n + j] = 1
    elif kind == COLUMN:
        for t in range(ipar[I_NLINES]):
            for i in range(m):
                out[i * n + lines[t]] = 1
    elif kind == CHECKERBOARD:
        b = ipar[I_BLOCK]
        r0, c0 = ipar[I_ROW0], ipar[I_COL0]
        r1 = min(r0 + ipar[I_HEIGHT], m)
        c1 = min(c0 + ipar[I_WIDTH], n)
        for j in range(c0, c1):
            colour[j] = ((j - c0 + ipar[I_PHASE1]) // b) & 1
        for i in range(r0, r1):
            a = ((i - r0 + ipar[I_PHASE0]) // b) & 1
            for j in range(c0, c1):
                if a == colour[j]:  # (a + c) % 2 == 0
                    out[i * n + j] = 1
    elif kind == RANDOM:
        q = fpar[F_DENSITY]
        if q >= 1.0:
            for c in range(size):
                out[c] = 1
        elif q > 0.0:
            off = _bernoulli_offset(ipar[I_SEED], 0)
            thr = _bernoulli_threshold(q)
            for c in range(size):
                if _bernoulli_bits(off, c) < thr:
                    out[c] = 1
    state = ipar[I_STATE]
    if state >= 0:  # one state for the pattern
        v = STUCK_ON if state == 1 else STUCK_OFF
        for c in range(size):
            if out[c] != 0:
                out[c] = v
        return
    q = fpar[F_ON_FRACTION]  # per cell: STUCK_OFF + bernoulli(seed, idx, 1, q)
    if q <= 0.0 or q >= 1.0:
        v = STUCK_ON if q >= 1.0 else STUCK_OFF
        for c in range(size):
            if out[c] != 0:
                out[c] = v
        return
    off = _bernoulli_offset(ipar[I_SEED], 1)
    thr = _bernoulli_threshold(q)
    for c in range(size):
        if out[c] != 0:
            out[c] = STUCK_ON if _bernoulli_bits(off, c) < thr else STUCK_OFF


@njit
def sample_die(key, shapes, cell_off, logr, consts, kind, cum, has_sev, sev_lo, sev_hi, q,
                pattern, affected, xbuf, perm, d2, cnt, mask, fpar, ipar, lines):
    """The defects of one die (``defects.sample_die`` with ``DieStream``); trusts its inputs.

    Parameters
    ----------
    key : uint64
        The die's stream key (``_streams.die_key(seed, die)``).
    shapes, cell_off, logr : arrays
        ``(A, 2)`` shapes, ``(A + 1,)`` flat cell offsets, and per cell of every array the
        numpy ``log`` of its region aspect ``((h + 1) N) / ((w + 1) M)`` (checkerboard).
    consts : float64 array (N_CONSTS,)
        yieldmc.defects' constants (``C_*`` indices); ``consts[C_TWO] = 2.0``.
    kind : int
        Kind code; ``MIXED`` draws one spatial kind with cumulative weights ``cum`` (one
        per spatial kind: pool index ``i`` is code ``i``).
    has_sev, sev_lo, sev_hi : bool, float, float
        Severity range (``lo == hi``: fixed, no draw), or none.
    q, pattern : float, bool
        ``on_fraction`` and ``on_mode == "pattern"``.
    affected : bool array (A,)
    xbuf, perm, d2, cnt : scratch
        At least max lines (float64, int64) and max cells (float64, int64) entries.
    mask, fpar, ipar, lines : outputs
        The die's rows: ``(cells,)`` int8, ``(A, NF)``, ``(A, NI)``, ``(A, L)``.

    Returns
    -------
    (int, int)
        The number of draws made (the stream's next counter) and the kind drawn.
    """
    n_arrays = shapes.shape[0]
    mask[:] = 0
    fpar[:, :] = np.nan
    ipar[:, :] = -1
    lines[:, :] = -1
    ctr = 0
    if kind == MIXED:  # _resolve: searchsorted(cum, u, "right")
        u = uniform(key, ctr)
        ctr += 1
        kind = 0
        while kind < cum.shape[0] - 1 and cum[kind] <= u:
            kind += 1
    for a in range(n_arrays):
        ipar[a, I_KIND] = NONE
        if kind == NONE:
            continue
        m, n = shapes[a, 0], shapes[a, 1]
        fp, ip, ln = fpar[a], ipar[a], lines[a]
        s = np.nan  # _draw: severity, then the target count k
        k = -1
        if has_sev:
            if sev_lo == sev_hi:
                s = sev_lo
            else:
                s = sev_lo + (sev_hi - sev_lo) * uniform(key, ctr)
                ctr += 1
            k = _round_half_even(s * m * n)
        if kind == CIRCULAR or kind == COMPLEMENT or kind == RING:
            ctr = _draw_disk(kind, m, n, key, ctr, k, consts, xbuf, d2, fp)
        elif kind == ROW or kind == COLUMN:
            count, ctr = _draw_lines(m if kind == ROW else n, key, ctr, has_sev, s, consts,
                                     perm, ln)
            ip[I_NLINES] = count
        elif kind == CHECKERBOARD:
            ctr = _draw_checkerboard(m, n, key, ctr, k, consts, logr[cell_off[a]:cell_off[a + 1]],
                                     perm, cnt, ip)
        elif has_sev:  # random
            fp[F_DENSITY] = s
        else:
            fp[F_DENSITY] = consts[C_DENS0] + (consts[C_DENS1] - consts[C_DENS0]) * uniform(key, ctr)
            ctr += 1
        seed = int(uniform(key, ctr) * consts[C_SEED_BOUND])
        ctr += 1
        if pattern:
            ip[I_STATE] = 1 if uniform(key, ctr) < q else 0
            ctr += 1
            if kind == RANDOM:
                ip[I_SEED] = seed
        else:
            fp[F_ON_FRACTION] = q
            ip[I_SEED] = seed
        if not affected[a]:  # drawn all the same: common random numbers
            fp[:] = np.nan
            ip[:] = -1
            ip[I_KIND] = NONE
            ln[:] = -1
            continue
        ip[I_KIND] = kind
        _build(kind, m, n, fp, ip, ln, consts[C_TWO], xbuf, perm, d2,
               mask[cell_off[a]:cell_off[a + 1]])
    return ctr, kind


@njit(parallel=True)
def sample_chunk(seed, dies, shapes, cell_off, logr, consts, kind, cum, has_sev, sev_lo,
                  sev_hi, q, pattern, affected, n_blocks, masks, fpar, ipar, lines, die_kind,
                  n_draws):
    """The defects of many dies, in parallel over dies (``n_blocks`` contiguous blocks).

    Die ``d`` (index ``dies[d]``, stream ``die_key(seed, dies[d])``, the arrays it hits
    ``affected[d]``: a (D, A) bool matrix) writes row ``d`` of ``masks`` (D, cells),
    ``fpar`` (D, A, NF), ``ipar`` (D, A, NI), ``lines`` (D, A, L), ``die_kind`` (D,) and
    ``n_draws`` (D,). A die's rows depend only on its index, its flags and the settings:
    the same bits for any chunk, block count or thread count.
    """
    n_dies = dies.shape[0]
    n_arrays = shapes.shape[0]
    max_cells = 1
    max_lines = 1
    for a in range(n_arrays):
        max_cells = max(max_cells, shapes[a, 0] * shapes[a, 1])
        max_lines = max(max_lines, max(shapes[a, 0], shapes[a, 1]))
    nb = max(1, min(n_blocks, n_dies))
    for blk in numba.prange(nb):
        d0 = (blk * n_dies) // nb
        d1 = ((blk + 1) * n_dies) // nb
        xbuf = np.empty(max_lines)
        perm = np.empty(max_lines, dtype=np.int64)
        d2 = np.empty(max_cells)
        cnt = np.empty(max_cells, dtype=np.int64)
        for d in range(d0, d1):
            key = die_key(seed, dies[d])
            ctr, drawn = sample_die(
                key, shapes, cell_off, logr, consts, kind, cum, has_sev, sev_lo, sev_hi, q,
                pattern, affected[d], xbuf, perm, d2, cnt, masks[d], fpar[d], ipar[d], lines[d])
            n_draws[d] = ctr
            die_kind[d] = drawn

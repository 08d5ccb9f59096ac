"""Numba kernels of the fully analog forward pass of one die: arrays and scalars only.

The same computation as :meth:`yieldmc.die.DieModel.forward` for the linear device, laid
out for compiled code: activations are ``(features, images)`` matrices with the image
index innermost, stored flat (row ``f`` of a buffer is ``buf[f * nb:(f + 1) * nb]``), so
that any block of rows is a C-contiguous matrix handed to BLAS without a copy::

    cur[c0:c0 + N] += T^T @ v[r0:r0 + M]                          each array of the layer
    z[o, b] = (cur[2o, b] - cur[2o + 1, b]) / (g_scale v_read) + bias[o]
    hidden: v_next[o, b] = v_read f(z[o, b])        output: out[b, o] = output_gain z[o, b]

Transfer matrices come flat (cell ``i * N + j``). The products go to BLAS (``np.dot`` into
a preallocated output: dgemm, about 4x faster than vectorised loops here). Layer 0's inputs
are the same images for every die, so the fault-free product ``P0 = T0^T v0`` of each
layer-0 array is computed once per design; a die that leaves the array unchanged adds it,
and a die with k changed cells adds ``P0`` and a rank-k correction
(:func:`lowrank_correction`, :func:`ideal_correction`) when that is cheaper than the
product. The neuron's operations (subtraction, division by the product ``g_scale * v_read``,
bias, activation, ``v_read *``) follow ``DieModel.forward`` in the same order; sums run in
another order than the reference's ``v @ T`` and the logistic uses a vectorisable ``exp``
(:func:`_exp`, within 1e-14 of libm's), so voltages agree to rounding (1e-13 of max |V|
and below), not bit for bit. The neurons compile with numpy's error model (a division
by zero gives inf, as numpy's does) so that their loops vectorise.
"""

from __future__ import annotations

import numpy as np

from yieldmc._numba import njit

#: Activation codes (yieldmc.network.ACTIVATIONS names -> code).
ACT_LOGISTIC, ACT_HARD_SIGMOID = 0, 1
ACTIVATION_CODES = {"logistic": ACT_LOGISTIC, "hard_sigmoid": ACT_HARD_SIGMOID}


@njit(error_model="numpy")
def _exp_abs(a):
    """``exp(min(a, 40))`` for ``a >= 0`` in plain ``+ *`` (vectorisable: no libm call).

    ``exp(a) = (1 + e)^128`` with ``e = expm1(a / 128)`` from its Taylor series to degree
    13 (truncation below 1e-17 relative for ``a / 128 <= 0.3125``), squared seven times as
    ``e <- e (2 + e)`` (no cancellation for e >= 0). Relative error below 2e-14 against
    libm (tests/test_engine_chunk.py).
    """
    a = 40.0 if a > 40.0 else a
    y = a * 0.0078125  # a / 128, exact
    p = 1.6059043836821613e-10
    p = p * y + 2.08767569878681e-09
    p = p * y + 2.505210838544172e-08
    p = p * y + 2.755731922398589e-07
    p = p * y + 2.7557319223985893e-06
    p = p * y + 2.48015873015873e-05
    p = p * y + 0.0001984126984126984
    p = p * y + 0.001388888888888889
    p = p * y + 0.008333333333333333
    p = p * y + 0.041666666666666664
    p = p * y + 0.16666666666666666
    p = p * y + 0.5
    p = p * y + 1.0
    e = y * p
    e = e * (2.0 + e)
    e = e * (2.0 + e)
    e = e * (2.0 + e)
    e = e * (2.0 + e)
    e = e * (2.0 + e)
    e = e * (2.0 + e)
    e = e * (2.0 + e)
    return 1.0 + e


@njit(error_model="numpy")
def _exp(x):
    """``exp(x)`` for ``|x| <= 40`` (clamped beyond): :func:`_exp_abs`, inverted for x < 0."""
    big = _exp_abs(-x if x < 0.0 else x)
    return 1.0 / big if x < 0.0 else big


@njit(error_model="numpy")
def _logistic(z):
    """``1 / (1 + exp(-z))`` with one division and no cancellation: ``E = exp(|z|)``,
    ``E / (1 + E)`` for z > 0 and ``1 / (1 + E)`` otherwise. ``|z|`` is clamped to 40
    (the result is then 1.0, or below 4.3e-18). Within 1e-15 of scipy's ``expit``."""
    big = _exp_abs(-z if z < 0.0 else z)
    num = big if z > 0.0 else 1.0
    return num / (1.0 + big)


@njit(error_model="numpy")
def _hard_sigmoid(z):
    """``clip(0.5 + 0.25 z, 0, 1)``: numpy's operations, the same bits."""
    y = 0.5 + 0.25 * z
    y = 0.0 if y < 0.0 else y
    return 1.0 if y > 1.0 else y


@njit
def _rows(buf, r0, m, nb):
    """Rows ``r0 .. r0 + m - 1`` of a flat ``(features, nb)`` buffer, as a C matrix."""
    return buf[r0 * nb:(r0 + m) * nb].reshape((m, nb))


@njit
def add_flat(src, dst, d0, size):
    """``dst[d0:d0 + size] += src[:size]``."""
    for e in range(size):
        dst[d0 + e] += src[e]


@njit
def _sub_flat(src, dst, d0, size):
    """``dst[d0:d0 + size] -= src[:size]``."""
    for e in range(size):
        dst[d0 + e] -= src[e]


@njit
def add_currents(t, m, n, v, r0, cur, c0, nb, tmp):
    """``cur[c0:c0 + n] += T^T v[r0:r0 + m]`` (flat buffers; ``tmp``: n nb scratch)."""
    out = tmp[:n * nb].reshape((n, nb))
    np.dot(t.reshape((m, n)).T, _rows(v, r0, m, nb), out)
    add_flat(tmp, cur, c0 * nb, n * nb)


@njit
def lowrank_correction(xs, cells, k, n, vr, cur, c0, nb, xk, gather, tmp):
    """``cur[c0:c0 + n] -= xs[:k, :n]^T vr[cells[:k]]``: a rank-k die's change of layer 0's
    currents, ``(T1 - T0)^T v0`` with ``T1 = T0 - Rt_c^T xs`` (``xs = S^-1 Cr_c``, k x n) and
    ``vr = Rt v0`` (cells x images, flat), precomputed. ``xk``, ``gather``, ``tmp``: scratch
    of k n, k nb and n nb entries."""
    x2 = xk[:k * n].reshape((k, n))
    for p in range(k):
        for j in range(n):
            x2[p, j] = xs[p, j]
    g2 = gather[:k * nb].reshape((k, nb))
    for p in range(k):
        src = cells[p] * nb
        for b in range(nb):
            g2[p, b] = vr[src + b]
    out = tmp[:n * nb].reshape((n, nb))
    np.dot(x2.T, g2, out)
    _sub_flat(tmp, cur, c0 * nb, n * nb)


@njit
def ideal_correction(cells, g_new, g0, k, n, v, r0, cur, c0, nb):
    """Ideal wires (``T = G``): ``cur[c0 + j] += (g1 - g0) v[r0 + i]`` per changed cell."""
    for p in range(k):
        c = cells[p]
        i = c // n
        j = c - i * n
        f = g_new[p] - g0[c]
        src = (r0 + i) * nb
        dst = (c0 + j) * nb
        for b in range(nb):
            cur[dst + b] += f * v[src + b]


@njit(error_model="numpy")
def neuron(cur, n_out, denom, bias, code, v_read, vnext, nb):
    """Hidden neurons: ``vnext[o] = v_read f((cur[2o] - cur[2o+1]) / denom + bias[o])``."""
    for o in range(n_out):
        plus = 2 * o * nb
        minus = plus + nb
        dst = o * nb
        bo = bias[o]
        if code == ACT_LOGISTIC:  # one loop per activation: each vectorises
            for b in range(nb):
                z = (cur[plus + b] - cur[minus + b]) / denom
                z += bo
                vnext[dst + b] = v_read * _logistic(z)
        else:
            for b in range(nb):
                z = (cur[plus + b] - cur[minus + b]) / denom
                z += bo
                vnext[dst + b] = v_read * _hard_sigmoid(z)


@njit(error_model="numpy")
def output(cur, n_out, denom, bias, gain, out, nb):
    """Output neurons: ``out[b, o] = gain ((cur[2o] - cur[2o+1]) / denom + bias[o])`` (V)."""
    for o in range(n_out):
        plus = 2 * o * nb
        minus = plus + nb
        bo = bias[o]
        for b in range(nb):
            z = (cur[plus + b] - cur[minus + b]) / denom
            z += bo
            out[b, o] = gain * z


@njit
def precompute_layer0(t, m, n, v, r0, rt, nb, p_out, vr_out):
    """Per-design products of a layer-0 array with the (fixed) input images ``v`` (flat):
    ``p_out = T^T v[r0:r0 + m]`` (n x nb, the fault-free currents) and, when ``vr_out`` has
    rows, ``vr_out = Rt v[r0:r0 + m]`` (cells x nb: each cell's row response to the images)."""
    np.dot(t.reshape((m, n)).T, _rows(v, r0, m, nb), p_out)
    if vr_out.shape[0] > 0:
        np.dot(rt, _rows(v, r0, m, nb), vr_out)

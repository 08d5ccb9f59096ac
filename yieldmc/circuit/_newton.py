"""Numba kernels of the non-linear (sinh device) crossbar solver: arrays in, arrays out.

Formulation (docs/circuit.md, "Non-linear devices"). Unknowns are the cell currents
``x[i, j, k]`` of right-hand side (input vector) ``k``. A cell of small-signal
conductance ``G`` carries ``x = a sinh(dv / v0)`` with ``a = G v0`` at cell voltage
``dv``; the wires take ``(A x)[i, j]`` off the row voltage ``v[i]`` (the wire operator
``A`` of :mod:`yieldmc.circuit._wires`, the linear engine's). Kirchhoff's laws are

    F(x) = v0 asinh(x / a) + A x - v = 0        (volts, one equation per cell)

``F`` is the gradient of the strictly convex co-content ``sum v0 (x asinh(x/a) -
sqrt(x^2 + a^2) + a) + x.A x / 2 - v.x``, so the solution is unique. Newton's method
solves ``J d = -F`` with ``J = diag(1 / gd) + A`` and ``gd = G sqrt(1 + (x/a)^2)``
(the differential conductance). Scaled by ``sqrt(gd)`` the step is the linear engine's
SPD system ``(I + Dd^1/2 A Dd^1/2) y = -Dd^1/2 F`` with ``d = Dd^1/2 y``, solved by
the linear engine's Jacobi-preconditioned CG (:func:`yieldmc.circuit._wires.cg_iterations`,
with a scale per cell and input) to a relative tolerance tied to the Newton residual
(inexact Newton: quadratic convergence without wasted CG iterations). Each step is
damped by backtracking on the weighted residual ``|Dd^1/2 F|`` (the step is a descent
direction for it), so every accepted step lowers it. In the presets' range (v/v0 <= 1.2)
three steps reach 1e-12; cells driven far into the exponential (v/v0 of tens) make the
ideal-wire start overshoot by orders of magnitude and can need tens of steps, which the
step cap turns into a reported failure. Zero conductances (open cells) carry no current
and are skipped.

Units: every input ``k`` is solved in units of ``s_k = 2^e`` near ``max |v|``: the kernels
hold ``v / s``, ``x / s``, ``A x / s`` and ``F / s``, and the column currents are multiplied by
``s`` once at the end. Only the device law sees ``s`` (``asinh(s u') / s``, see
:func:`_asinh_scaled`); the Jacobian ``diag(1 / gd) + A`` does not change. Multiplying by a
power of two is exact between 2.2e-308 and 1.8e308, so inputs whose currents stay in that
range give the same bits as in volts and amperes. Tinier inputs need it: currents below
2.2e-308 A are subnormal (for ``v = 5e-324`` V they round to 0), and no iterate held in
amperes could meet the tolerance.
"""

from __future__ import annotations

import math

import numpy as np

from yieldmc._numba import njit
from yieldmc.circuit._kernels import pow2_exponent
from yieldmc.circuit._wires import apply_wires, cg_iterations, wire_diagonal

#: Largest CG relative tolerance of a Newton step (far from the solution).
ETA_MAX = 0.1
#: Armijo constant of the backtracking line search, and its number of halvings (a step
#: below 2^-40 = 1e-12 of Newton's is no progress: the input stalls).
ARMIJO = 1e-4
MAX_HALVINGS = 40
#: Relative residual below which Newton is in its quadratic basin: two steps there that do
#: not halve the residual mean the round-off floor is reached, and the input stalls.
BASIN = 1e-8
#: Below this ``|z|`` (2^-28) ``sinh(z)`` rounds to ``z`` (libm returns ``z`` itself), so the
#: ideal-wire start can be formed from the scaled voltage without ``z``'s underflow.
SINH_IS_IDENTITY = 2.0 ** -28


@njit
def _cg_step(sd, dinv, wires, tol2, active, max_iter, y, r, p, q, work):
    """The Newton step's scaled system ``(I + sd A sd) y = r`` for the active right-hand
    sides, by the shared CG from ``y = 0`` (``p . q`` summed after each operator pass).
    Returns the iterations."""
    y[:] = 0.0
    return cg_iterations(sd, dinv, wires, tol2, active, max_iter, False, y, r, p, q, work)


@njit
def _asinh(u):
    """``asinh(u)`` to 2e-15 relative (7.5 ulp), about 3x faster than ``np.arcsinh`` here.

    ``|u| < 1/8``: its Taylor series to ``u^15`` (the next term is 4e-17 relative), so
    small currents keep full relative precision (the small-signal limit needs it: there
    ``v0 asinh(u)`` multiplies any absolute error by a large ``v0``); otherwise
    ``log(|u| + sqrt(1 + u^2))``, whose rounding is then relative as well.
    """
    au = abs(u)
    if au > 1e8:  # asinh(u) = log(2u) + 1/(4u^2) - ...: exact in double, and u*u cannot overflow
        r = np.log(2.0 * au)
        return r if u >= 0.0 else -r
    if au < 0.125:
        u2 = u * u
        return u * (1.0 + u2 * (-1.0 / 6.0 + u2 * (3.0 / 40.0 + u2 * (-5.0 / 112.0 + u2 * (
            35.0 / 1152.0 + u2 * (-63.0 / 2816.0 + u2 * (231.0 / 13312.0 + u2 * (-143.0 / 10240.0))))))))
    r = np.log(au + np.sqrt(1.0 + au * au))
    return r if u >= 0.0 else -r


@njit
def _asinh_scaled(us, s, inv_s):
    """``asinh(s us) / s`` for a power of two ``s = 1 / inv_s``, to the precision of ``us``.

    Where ``|s us| < 1/8`` this is ``us`` times :func:`_asinh`'s series factor, so a product
    ``s us`` that underflows (the factor is then 1) costs no digits; elsewhere it is
    ``_asinh(s us) * inv_s``. Both equal ``_asinh(s us) / s`` bit for bit while ``s us``
    and the result are normal numbers.
    """
    u = s * us
    if abs(u) < 0.125:
        u2 = u * u
        return us * (1.0 + u2 * (-1.0 / 6.0 + u2 * (3.0 / 40.0 + u2 * (-5.0 / 112.0 + u2 * (
            35.0 / 1152.0 + u2 * (-63.0 / 2816.0 + u2 * (231.0 / 13312.0 + u2 * (-143.0 / 10240.0))))))))
    return _asinh(u) * inv_s


@njit
def _kvl(g, x, w, vt, v0, f, scale=None):
    """``f = F(x) = v0 asinh(x / a) + w - v`` for every cell; ``w = A x`` given.

    ``x, w, vt, f`` are in units of ``scale[k]`` (A or V divided by it; default 1).
    """
    m_rows, n_cols, n_rhs = x.shape
    if scale is None:
        s = np.ones(n_rhs)
    else:
        s = scale
    inv_s = 1.0 / s  # exact: powers of two
    for i in range(m_rows):
        for j in range(n_cols):
            gij = g[i, j]
            inv_a = 1.0 / (gij * v0) if gij > 0.0 else 0.0
            for k in range(n_rhs):
                f[i, j, k] = (v0 * _asinh_scaled(x[i, j, k] * inv_a, s[k], inv_s[k]) + w[i, j, k]
                              - vt[i, k]) if gij > 0.0 else 0.0


@njit
def _input_scales(vt, scale, inv_scale):
    """Per right-hand side, the power of two nearest ``max |v|`` and its inverse.

    The kernels work in units of ``scale`` (see the module docstring): squares of inputs
    below 1e-154 V would underflow to 0 and pass any tolerance, and currents below
    2.2e-308 A lose digits. A power of two scales exactly, so ordinary inputs give the same
    bits as without scaling. ``|e| <= 1021`` keeps both finite: a subnormal input is then
    solved at ``v * 2^1021 >= 2^-53``, which neither squares nor products with the
    conductances take out of the normal range.
    """
    m_rows, n_rhs = vt.shape
    for k in range(n_rhs):
        biggest = 0.0
        for i in range(m_rows):
            biggest = max(biggest, abs(vt[i, k]))
        e = pow2_exponent(biggest)
        scale[k] = math.ldexp(1.0, e)
        inv_scale[k] = math.ldexp(1.0, -e)


@njit
def _scaled_system(g, x, f, vt, v0, wires, scale, sd, dinv, r, rel):
    """The Newton step's scaled system at ``x`` with residual ``f = F(x)``.

    ``x, f, vt`` are in units of ``scale[k]``. Writes ``sd = sqrt(gd)``, the Jacobi inverse
    ``dinv``, the right-hand side ``r = -sd f`` and the relative residual
    ``rel[k] = |sd f| / |sd v|``; returns the weighted merit ``|sd f|^2`` per right-hand
    side. Open cells (``G = 0``) get ``sd = 0``.
    """
    m_rows, n_cols, n_rhs = x.shape
    merit = np.zeros(n_rhs)
    bn2 = np.zeros(n_rhs)
    for i in range(m_rows):
        for j in range(n_cols):
            gij = g[i, j]
            inv_a = 1.0 / (gij * v0) if gij > 0.0 else 0.0
            a_ii = wire_diagonal(wires, i, j, m_rows)
            for k in range(n_rhs):
                u = (x[i, j, k] * inv_a) * scale[k]  # x / a in units of 1 (may underflow: gd = G)
                au = abs(u)  # sqrt(1 + u^2), without overflowing u^2 (np.hypot: 15x slower)
                gd = gij * (np.sqrt(1.0 + au * au) if au < 1e150 else au)
                s = np.sqrt(gd)
                fv = f[i, j, k]
                vv = vt[i, k]
                sd[i, j, k] = s
                dinv[i, j, k] = 1.0 / (1.0 + gd * a_ii)
                r[i, j, k] = -s * fv
                merit[k] += gd * fv * fv
                bn2[k] += gd * vv * vv
    for k in range(n_rhs):
        rel[k] = np.sqrt(merit[k] / bn2[k]) if bn2[k] > 0.0 else np.sqrt(merit[k])
    return merit


@njit
def _trial(g, x, d, w, ad, vt, v0, scale, sd, step, pending, f, out):
    """``f = F(x + step d)`` and the merit ``|sd f|^2`` of the pending right-hand sides.

    All of ``x, d, w, ad, vt, f`` are in units of ``scale[k]``. ``A`` is linear, so
    ``A (x + t d) = w + t A d`` needs no wire pass.
    """
    m_rows, n_cols, n_rhs = x.shape
    inv_s = 1.0 / scale  # exact: powers of two
    for k in range(n_rhs):
        if pending[k]:
            out[k] = 0.0
    for i in range(m_rows):
        for j in range(n_cols):
            gij = g[i, j]
            if gij == 0.0:
                continue
            inv_a = 1.0 / (gij * v0)
            for k in range(n_rhs):
                if pending[k]:
                    t = step[k]
                    us = (x[i, j, k] + t * d[i, j, k]) * inv_a
                    fv = (v0 * _asinh_scaled(us, scale[k], inv_s[k])
                          + (w[i, j, k] + t * ad[i, j, k]) - vt[i, k])
                    f[i, j, k] = fv
                    s = sd[i, j, k]
                    out[k] += s * s * (fv * fv)


@njit
def _swap_drops(f, w, w_fresh):
    """``f += w_fresh - w``, then ``w = w_fresh``: F with a recomputed ``A x``."""
    m_rows, n_cols, n_rhs = f.shape
    for i in range(m_rows):
        for j in range(n_cols):
            for k in range(n_rhs):
                f[i, j, k] = f[i, j, k] + (w_fresh[i, j, k] - w[i, j, k])
                w[i, j, k] = w_fresh[i, j, k]


@njit
def _newton_block(g, vt, scale, v0, wires, rtol, max_newton, max_cg, x, bufs):
    """Damped inexact Newton for one block of right-hand sides.

    ``vt`` (M, K) holds the row voltages, ``x`` (M, N, K) the initial cell currents on
    entry and the solution on exit, both in units of the powers of two ``scale[k]``
    (:func:`_input_scales`); ``bufs`` is a (9, M, N, K) work array. Returns
    ``(rel, newton_iterations, cg_iterations)`` with ``rel[k]`` the relative residual
    ``|sd F| / |sd v|`` at the returned ``x``, with ``A x`` recomputed from scratch.

    Within the iteration ``F`` is evaluated once per step, by the line search, at exactly
    the point it accepts, and ``A x`` is carried along (``A`` is linear). The carried
    ``A x`` drifts by round-off (far more after a large overshoot), so an input counts as
    converged only once a fresh ``A x`` confirms it; otherwise it iterates on.
    An input stalls, and stops with its residual, when round-off rather than the
    iteration sets it: its line search finds no strict decrease, two steps inside the
    quadratic basin (``rel < BASIN``) fail to halve ``rel``, or a fresh ``A x`` refutes
    its convergence twice.
    """
    m_rows, n_cols, n_rhs = x.shape
    w, f, sd, dinv, y, r, p, q, t_work = (bufs[0], bufs[1], bufs[2], bufs[3], bufs[4], bufs[5],
                                          bufs[6], bufs[7], bufs[8])
    rel = np.zeros(n_rhs)
    active = np.ones(n_rhs, dtype=np.bool_)
    stalled = np.zeros(n_rhs, dtype=np.bool_)
    seemed_done = np.zeros(n_rhs, dtype=np.bool_)  # the carried values said converged
    refuted = np.zeros(n_rhs, dtype=np.int64)  # ...and a fresh A x said no
    last_rel = np.full(n_rhs, np.inf)
    slow = np.zeros(n_rhs, dtype=np.int64)  # steps in Newton's basin that did not halve rel
    tol2 = np.zeros(n_rhs)
    step = np.ones(n_rhs)
    trial = np.zeros(n_rhs)
    pending = np.zeros(n_rhs, dtype=np.bool_)
    work = np.empty((3, n_cols, n_rhs))  # the wire operator's
    newton = 0
    cg_total = 0
    apply_wires(x, wires, w, work)
    _kvl(g, x, w, vt, v0, f, scale)
    fresh = True  # are w and f computed from scratch at the current x?
    while True:
        merit = _scaled_system(g, x, f, vt, v0, wires, scale, sd, dinv, r, rel)
        n_active = 0
        for k in range(n_rhs):
            if fresh and seemed_done[k] and rel[k] > rtol:
                refuted[k] += 1  # twice means the round-off floor is above rtol: stall
                stalled[k] = stalled[k] or refuted[k] >= 2
            seemed_done[k] = not fresh and rel[k] <= rtol
            if active[k] and newton > 0 and not fresh:  # rel after this input's last step
                if last_rel[k] < BASIN and rel[k] > 0.5 * last_rel[k]:
                    slow[k] += 1  # Newton converges quadratically here: this is round-off
                    stalled[k] = stalled[k] or slow[k] >= 2
                last_rel[k] = rel[k]
            active[k] = not stalled[k] and rel[k] > rtol
            n_active += active[k]
        if n_active == 0 or newton >= max_newton:
            if fresh:
                break
            # Confirm (or refute) from scratch. f holds v0 asinh(x/a) + w - v at the current
            # x (the accepted trial's), so swapping the carried w for a fresh A x corrects it
            # without another asinh; a stalled input's f is a rejected trial's: redo all.
            if stalled.any():
                apply_wires(x, wires, w, work)
                _kvl(g, x, w, vt, v0, f, scale)
            else:
                apply_wires(x, wires, t_work, work)
                _swap_drops(f, w, t_work)
            fresh = True
            continue
        newton += 1
        fresh = False
        for k in range(n_rhs):
            if active[k]:
                eta = min(ETA_MAX, rel[k])  # forcing term: quadratic convergence
                tol2[k] = eta * eta * merit[k]
        cg_total += _cg_step(sd, dinv, wires, tol2, active, max_cg, y, r, p, q, work)
        for i in range(m_rows):  # the step d = sd * y, kept in y; A d in q
            for j in range(n_cols):
                for k in range(n_rhs):
                    y[i, j, k] = sd[i, j, k] * y[i, j, k] if active[k] else 0.0
        apply_wires(y, wires, q, work)
        for k in range(n_rhs):
            step[k] = 1.0
            pending[k] = active[k]
        for _ in range(MAX_HALVINGS):
            _trial(g, x, y, w, q, vt, v0, scale, sd, step, pending, f, trial)
            n_pending = 0
            for k in range(n_rhs):
                if pending[k]:
                    if trial[k] < merit[k] and trial[k] <= (1.0 - ARMIJO * step[k]) * merit[k]:
                        pending[k] = False
                    else:
                        step[k] *= 0.5
                        n_pending += 1
            if n_pending == 0:
                break
        for k in range(n_rhs):
            if pending[k]:  # no strict decrease even for a tiny step: stalled
                stalled[k] = True
                step[k] = 0.0
        for i in range(m_rows):
            for j in range(n_cols):
                for k in range(n_rhs):
                    t = step[k]
                    x[i, j, k] = x[i, j, k] + t * y[i, j, k]  # same expressions as in _trial
                    w[i, j, k] = w[i, j, k] + t * q[i, j, k]
    return rel, newton, cg_total


@njit
def solve_sinh_inputs(g, v, v0, wires, rtol, max_newton, max_cg, block, warm_previous, i_out,
                      rel_out, newton_out):
    """Column currents of the sinh-device array for every input vector of ``v`` (B, M).

    Blocks of ``block`` inputs are solved together. Input ``b`` starts from
    ``x = G v0 sinh((v - w) / v0)`` with ``w`` the wire drops: zero (the ideal-wire
    solution, exact without resistances), or with ``warm_previous`` the converged drops of
    input ``b - block`` (the neighbouring input of a sweep in blocks). Writes ``i_out``
    (B, N), the per-input residual ``rel_out`` (B,) and the Newton steps of its block
    ``newton_out`` (B,); returns the total CG iterations.
    """
    m_rows, n_cols = g.shape
    n_batch = v.shape[0]
    cg_total = 0
    nb_max = min(block, n_batch)
    w_prev = np.zeros((m_rows, n_cols, nb_max))  # volts
    # One allocation for all blocks (fresh pages cost page faults); C-contiguous views.
    work = np.empty(10 * m_rows * n_cols * nb_max)
    for b0 in range(0, n_batch, block):
        nb = min(block, n_batch - b0)
        size = m_rows * n_cols * nb
        x = work[:size].reshape((m_rows, n_cols, nb))
        bufs = work[size:10 * size].reshape((9, m_rows, n_cols, nb))
        vt = np.empty((m_rows, nb))
        for i in range(m_rows):
            for k in range(nb):
                vt[i, k] = v[b0 + k, i]
        scale = np.empty(nb)
        inv_scale = np.empty(nb)
        _input_scales(vt, scale, inv_scale)
        for i in range(m_rows):
            for k in range(nb):
                vt[i, k] *= inv_scale[k]  # from here on in units of scale[k]
        for i in range(m_rows):
            for j in range(n_cols):
                a = g[i, j] * v0
                for k in range(nb):
                    ds = vt[i, k] - w_prev[i, j, k] * inv_scale[k]
                    z = (ds * scale[k]) / v0
                    if abs(z) < SINH_IS_IDENTITY:  # sinh(z) = z: keep the digits z may lack
                        x[i, j, k] = a * (ds / v0)
                    else:
                        x[i, j, k] = (a * np.sinh(z)) * inv_scale[k]
        rel, its, cg = _newton_block(g, vt, scale, v0, wires, rtol, max_newton, max_cg, x, bufs)
        if warm_previous:
            for i in range(m_rows):
                for j in range(n_cols):
                    for k in range(nb):
                        w_prev[i, j, k] = bufs[0, i, j, k] * scale[k]
        cg_total += cg
        for k in range(nb):
            rel_out[b0 + k] = rel[k]
            newton_out[b0 + k] = its
            for j in range(n_cols):
                i_out[b0 + k, j] = 0.0
        for i in range(m_rows):
            for j in range(n_cols):
                for k in range(nb):
                    i_out[b0 + k, j] += x[i, j, k]
        for k in range(nb):
            for j in range(n_cols):
                i_out[b0 + k, j] *= scale[k]  # one rounding, also into the subnormals
    return cg_total

"""Numba kernels of the counter-based per-die streams: arrays and scalars only.

Draw ``i`` of die ``d`` under root seed ``s`` is a pure function of ``(s, d, i)``
(:mod:`yieldmc.engine.streams` documents the derivation and holds the numpy twin)::

    key(s, d) = mix64(mix64(s ^ STREAM_TAG) ^ d)
    bits(i)   = mix64(key + i * GOLDEN)                (mod 2**64)
    u(i)      = (bits(i) >> 11) * 2**-53               in [0, 1), 53-bit resolution

``mix64`` is the splitmix64 finaliser with the increment in front, exactly
:func:`yieldmc.defect_kinds.mix64`: ``bits(0), bits(1), ...`` is the splitmix64 generator
seeded with ``key``. A standard normal consumes one draw: ``p = (2 (bits >> 12) + 1) 2**-53``
(odd multiples of ``2**-53``, never 0 or 1, symmetric about 1/2) through Wichura's
AS 241 inverse normal CDF, whose only transcendental, the logarithm of the tails, is
fdlibm's ``log`` written out in ``+ - * /`` (:func:`_log`). No libm call remains
(``sqrt`` is IEEE-exact), so numba and numpy compute every normal with the same
roundings, on any machine, whatever libm or SIMD library either links to.

Every ``uint64`` operation is typed explicitly: numba turns ``int64 op uint64`` into
``float64``, which would silently lose bits.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from yieldmc._numba import njit

# splitmix64 constants: the same values as yieldmc.defects (_GOLDEN, _MIX1, _MIX2).
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)
#: XORed into the root seed before the first mix: the die streams' derivation domain.
#: Its bits above 2**53 are not all zero, so ``s ^ STREAM_TAG`` never equals a per-cell
#: seed of :func:`yieldmc.defect_kinds.bernoulli` (all below 2**53) for ``s < 2**53``.
STREAM_TAG = np.uint64(0x79696C646D634453)  # "yildmcDS"
_S11, _S12, _S27, _S30, _S31 = (np.uint64(v) for v in (11, 12, 27, 30, 31))
_ONE = np.uint64(1)
TWO_M53 = 2.0**-53

# fdlibm e_log.c
LN2_HI, LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10
LG1, LG2, LG3 = 6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01
LG4, LG5 = 2.222219843214978396e-01, 1.818357216161805012e-01
LG6, LG7 = 1.531383769920937332e-01, 1.479819860511658591e-01
SQRT_HALF = 0.7071067811865476

# Wichura (1988), AS 241 (PPND16): numerators a, c, e and denominators b, d, f, highest
# power first (Horner order).
PPND_A = (2509.0809287301226727, 33430.575583588128105, 67265.770927008700853,
      45921.953931549871457, 13731.693765509461125, 1971.5909503065514427,
      133.14166789178437745, 3.387132872796366608)
PPND_B = (5226.495278852854561, 28729.085735721942674, 39307.89580009271061,
      21213.794301586595867, 5394.1960214247511077, 687.1870074920579083,
      42.313330701600911252, 1.0)
PPND_C = (7.7454501427834140764e-4, 0.0227238449892691845833, 0.24178072517745061177,
      1.27045825245236838258, 3.64784832476320460504, 5.7694972214606914055,
      4.6303378461565452959, 1.42343711074968357734)
PPND_D = (1.05075007164441684324e-9, 5.475938084995344946e-4, 0.0151986665636164571966,
      0.14810397642748007459, 0.68976733498510000455, 1.6763848301838038494,
      2.05319162663775882187, 1.0)
PPND_E = (2.01033439929228813265e-7, 2.71155556874348757815e-5, 0.0012426609473880784386,
      0.026532189526576123093, 0.29656057182850489123, 1.7848265399172913358,
      5.4637849111641143699, 6.6579046435011037772)
PPND_F = (2.04426310338993978564e-15, 1.4215117583164458887e-7, 1.8463183175100546818e-5,
      7.868691311456132591e-4, 0.0148753612908506148525, 0.13692988092273580531,
      0.59983220655588793769, 1.0)
SPLIT1, SPLIT2, CONST1, CONST2 = 0.425, 5.0, 0.180625, 1.6


@njit
def finalise(z):
    """splitmix64's finaliser on a uint64 (wrapping arithmetic)."""
    z = np.uint64(z)
    z = (z ^ (z >> _S30)) * MIX1
    z = (z ^ (z >> _S27)) * MIX2
    return z ^ (z >> _S31)


@njit
def mix64(z):
    """splitmix64's step: ``finalise(z + GOLDEN)``, :func:`yieldmc.defect_kinds.mix64`."""
    z = np.uint64(z) + GOLDEN
    z = (z ^ (z >> _S30)) * MIX1
    z = (z ^ (z >> _S27)) * MIX2
    return z ^ (z >> _S31)


@njit
def die_key(seed, die):
    """The stream key of die ``die`` under root seed ``seed`` (both uint64-representable)."""
    return mix64(mix64(np.uint64(seed) ^ STREAM_TAG) ^ np.uint64(die))


@njit
def _bits(key, counter):
    """Raw 64-bit draw number ``counter`` of the stream ``key``."""
    return mix64(np.uint64(key) + np.uint64(counter) * GOLDEN)


@njit
def uniform(key, counter):
    """Draw ``counter`` of stream ``key`` as a double in [0, 1): ``(bits >> 11) * 2**-53``."""
    return float(_bits(key, counter) >> _S11) * TWO_M53


@njit
def _uniform_between(key, counter, lo, hi):
    """``lo + (hi - lo) * u``: what ``DieStream.uniform(lo, hi)`` returns."""
    return lo + (hi - lo) * uniform(key, counter)


@njit
def _open_uniform(key, counter):
    """Draw ``counter`` as an odd multiple of 2**-53 in (0, 1): ``(2 (bits >> 12) + 1) 2**-53``."""
    return float(((_bits(key, counter) >> _S12) << _ONE) | _ONE) * TWO_M53


@njit
def _log(x):
    """Natural logarithm of a normal double ``x > 0``: fdlibm's ``__ieee754_log`` (< 1 ulp),
    its bit tests replaced by ``frexp``; only ``+ - * /``, so numpy computes the same bits."""
    m, e = math.frexp(x)
    if m < SQRT_HALF:
        m = m * 2.0
        e = e - 1
    f = m - 1.0
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (LG2 + w * (LG4 + w * LG6))
    t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)))
    r = t2 + t1
    dk = float(e)
    return dk * LN2_HI - ((hfsq - (s * (hfsq + r) + dk * LN2_LO)) - f)


@njit
def _horner(c, x):
    """``(...((c[0] x + c[1]) x + c[2]) ...) x + c[7]``, each operation rounded."""
    acc = c[0]
    for i in range(1, 8):
        acc = acc * x + c[i]
    return acc


@njit
def _ppnd(p):
    """Standard normal quantile of ``p`` in (0, 1): AS 241 (about 1e-16 relative)."""
    q = p - 0.5
    if abs(q) <= SPLIT1:
        r = CONST1 - q * q
        return q * _horner(PPND_A, r) / _horner(PPND_B, r)
    r = p if q < 0.0 else 1.0 - p
    r = math.sqrt(-_log(r))
    if r <= SPLIT2:
        r = r - CONST2
        val = _horner(PPND_C, r) / _horner(PPND_D, r)
    else:
        r = r - SPLIT2
        val = _horner(PPND_E, r) / _horner(PPND_F, r)
    return -val if q < 0.0 else val


@njit
def std_normal(key, counter):
    """Draw ``counter`` of stream ``key`` as a standard normal deviate (one draw)."""
    return _ppnd(_open_uniform(key, counter))


@njit
def permute(key, counter, out, n):
    """Write a permutation of ``0 .. n-1`` into ``out[:n]``; return the next counter.

    Fisher-Yates from the top: for ``i = n-1 .. 1`` (draws ``counter ..
    counter + n - 2``), ``j = int(u * (i + 1))``, swap ``out[i]`` and ``out[j]``.
    """
    for i in range(n):
        out[i] = i
    for i in range(n - 1, 0, -1):
        j = int(uniform(key, counter) * (i + 1))
        counter += 1
        t = out[i]
        out[i] = out[j]
        out[j] = t
    return counter


@njit(parallel=True)
def fill_chunk(seed, dies, start, normal, out):
    """``out[d, c]`` = draw ``start + c`` of die ``dies[d]``: uniform in [0, 1), or a
    standard normal with ``normal``; in parallel over dies."""
    n_draws = out.shape[1]
    for d in numba.prange(dies.shape[0]):
        key = die_key(seed, dies[d])
        if normal:
            for c in range(n_draws):
                out[d, c] = std_normal(key, start + c)
        else:
            for c in range(n_draws):
                out[d, c] = uniform(key, start + c)

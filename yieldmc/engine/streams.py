"""Counter-based per-die random streams, the same numbers in numpy and in numba.

Die ``d`` of a run with root seed ``s`` draws from a stream whose draw ``i`` is a pure
function of ``(s, d, i)`` (DESIGN.md section 7), so compiled chunk kernels
(:mod:`yieldmc.engine._streams`) and the readable per-die path draw the same numbers
without any generator state to set up or carry between dies:

    key(s, d) = mix64(mix64(s ^ STREAM_TAG) ^ d)
    bits(i)   = mix64(key + i * GOLDEN)                          (mod 2**64)
    u(i)      = (bits(i) >> 11) * 2**-53                          in [0, 1)

``mix64(z)`` is splitmix64's step: ``z + GOLDEN`` through its finaliser, exactly
:func:`yieldmc.defect_kinds.mix64` with the same constants, so ``bits(0), bits(1), ...`` is the
splitmix64 generator seeded with ``key``. The two mixes decorrelate neighbouring seeds and
dies (a die's key is a full-avalanche hash of both integers). ``STREAM_TAG`` separates this
domain from the per-cell streams of :func:`yieldmc.defect_kinds.bernoulli`, whose offsets are
``mix64(mix64(seed) ^ stream)`` with ``seed < 2**53``: ``s ^ STREAM_TAG`` is at least
``2**53`` for every ``s < 2**53``, so no die key is derived from the value a per-cell
stream starts from.

:class:`DieStream` is the numpy twin: a drop-in for the part of ``numpy.random.Generator``
that :mod:`yieldmc.defects` and :mod:`yieldmc.die` call, each method an explicit algorithm
on the draws (one draw per value unless stated):

* ``random(size)``: ``u``.
* ``uniform(lo, hi, size)``: ``lo + (hi - lo) * u``.
* ``permutation(n)``: Fisher-Yates from the top, ``n - 1`` draws: for ``i = n-1 .. 1``,
  ``j = int(u * (i + 1))``, swap items ``i`` and ``j`` of ``0 .. n-1``.
* ``normal(loc, scale, size)``: ``loc + scale * z``, ``z`` = Wichura's AS 241 normal
  quantile of ``p = (2 (bits >> 12) + 1) * 2**-53`` (never 0 or 1; ``p`` and ``1 - p``
  give ``z`` and ``-z`` exactly). Its only transcendental, the tails' logarithm, is
  fdlibm's ``log`` written in ``+ - * /``; with ``sqrt`` (correctly rounded everywhere)
  no libm or SIMD math library is involved, so the twins agree bit for bit on any
  machine. (numpy's SIMD ``log`` and libm's differ in the last bit for about 1 value in
  800 on the development machine.)

>>> s = DieStream(seed=7, die=3)
>>> u = s.random(3)
>>> bool(u[1] == DieStream(7, 3, counter=1).random()), s.counter
(True, 3)
>>> sorted(s.permutation(5).tolist())
[0, 1, 2, 3, 4]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from yieldmc.errors import ConfigError

# The same constants as yieldmc.engine._streams and yieldmc.defects (tests check both).
GOLDEN, MIX1, MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
STREAM_TAG = 0x79696C646D634453
_MASK64 = (1 << 64) - 1
_LIMIT = 1 << 64
_U = tuple(np.uint64(v) for v in (GOLDEN, MIX1, MIX2, 30, 27, 31, 11, 12))
_TWO_M53 = 2.0**-53
_SMALL = 8  # up to this many uniforms: a Python loop (measured faster than numpy)


def _mix64(z: int) -> int:
    """splitmix64's step on a Python int: ``z + GOLDEN`` through the finaliser."""
    z = (z + GOLDEN) & _MASK64
    z = ((z ^ (z >> 30)) * MIX1) & _MASK64
    z = ((z ^ (z >> 27)) * MIX2) & _MASK64
    return z ^ (z >> 31)


def check_index(name: str, value: Any) -> int:
    """``value`` as an int; ConfigError naming ``name`` unless an integer in [0, 2**64)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or not 0 <= int(value) < _LIMIT:
        raise ConfigError(f"{name} must be an integer in [0, 2**64), got {value!r}")
    return int(value)


def die_key(seed: int, die: int) -> int:
    """The 64-bit key of die ``die``'s stream under root seed ``seed``.

    >>> die_key(0, 0) != die_key(0, 1) != die_key(1, 0)
    True
    """
    seed, die = check_index("seed", seed), check_index("die", die)
    return _mix64(_mix64(seed ^ STREAM_TAG) ^ die)


def _bits(key: int, start: int, n: int) -> np.ndarray:
    """Raw draws ``start .. start + n - 1`` of stream ``key``: vectorised splitmix64."""
    z = np.arange(start, start + n, dtype=np.uint64)
    z += np.uint64(1)  # mix64(key + i G) = finalise(key + (i + 1) G)
    z *= _U[0]
    z += np.uint64(key)
    z ^= z >> _U[3]
    z *= _U[1]
    z ^= z >> _U[4]
    z *= _U[2]
    z ^= z >> _U[5]
    return z


# ---- the normal quantile, vectorised with the kernels' exact operation order --------
def _log(x: np.ndarray) -> np.ndarray:
    """fdlibm ``log`` of normal doubles ``x > 0``, as :func:`yieldmc.engine._streams._log`."""
    from yieldmc.engine import _streams as k

    m, e = np.frexp(x)
    small = m < k.SQRT_HALF
    m = np.where(small, m * 2.0, m)
    e = np.where(small, e - 1, e)
    f = m - 1.0
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (k.LG2 + w * (k.LG4 + w * k.LG6))
    t2 = z * (k.LG1 + w * (k.LG3 + w * (k.LG5 + w * k.LG7)))
    r = t2 + t1
    dk = e.astype(np.float64)
    return dk * k.LN2_HI - ((hfsq - (s * (hfsq + r) + dk * k.LN2_LO)) - f)


def _horner(c: tuple, x: np.ndarray) -> np.ndarray:
    acc = c[0] * x + c[1]
    for ci in c[2:]:
        acc = acc * x + ci
    return acc


def _ppnd(p: np.ndarray) -> np.ndarray:
    """AS 241 normal quantile of ``p`` in (0, 1), as :func:`yieldmc.engine._streams._ppnd`."""
    from yieldmc.engine import _streams as k

    q = p - 0.5
    out = np.empty_like(p)
    mid = np.abs(q) <= k.SPLIT1
    qm = q[mid]
    r = k.CONST1 - qm * qm
    out[mid] = qm * _horner(k.PPND_A, r) / _horner(k.PPND_B, r)
    tail = np.flatnonzero(~mid)
    if tail.size:
        qt, pt = q[tail], p[tail]
        r = np.sqrt(-_log(np.where(qt < 0.0, pt, 1.0 - pt)))
        near = r <= k.SPLIT2
        val = np.empty_like(r)
        rn = r[near] - k.CONST2
        val[near] = _horner(k.PPND_C, rn) / _horner(k.PPND_D, rn)
        rf = r[~near] - k.SPLIT2
        val[~near] = _horner(k.PPND_E, rf) / _horner(k.PPND_F, rf)
        out[tail] = np.where(qt < 0.0, -val, val)
    return out


def _size(size: Any) -> tuple[int, tuple[int, ...]]:
    shape = (int(size),) if np.ndim(size) == 0 else tuple(int(s) for s in size)
    if any(s < 0 for s in shape):
        raise ValueError(f"negative dimensions are not allowed, got size={size!r}")
    return math.prod(shape), shape


class DieStream:
    """The random stream of die ``die`` under root seed ``seed``; draw ``i`` is fixed.

    Implements the ``numpy.random.Generator`` methods the readable die path calls:
    :meth:`random`, :meth:`uniform`, :meth:`permutation`, :meth:`normal` (the module
    docstring gives each algorithm). Every call consumes draws from ``counter`` on;
    scalars come back as Python floats, sizes as arrays, as with a Generator.

    Parameters
    ----------
    seed, die : int
        Root seed and die index, each in ``[0, 2**64)``.
    counter : int
        The first draw to use (0: the die's first draw).
    """

    __slots__ = ("seed", "die", "key", "counter")

    def __init__(self, seed: int, die: int, counter: int = 0) -> None:
        self.seed = check_index("seed", seed)
        self.die = check_index("die", die)
        self.key = die_key(self.seed, self.die)
        self.counter = check_index("counter", counter)

    def __repr__(self) -> str:
        return f"DieStream(seed={self.seed}, die={self.die}, counter={self.counter})"

    def _take(self, n: int) -> np.ndarray:
        out = _bits(self.key, self.counter, n)
        self.counter += n
        return out

    def _one(self) -> float:
        z = _mix64((self.key + self.counter * GOLDEN) & _MASK64)
        self.counter += 1
        return (z >> 11) * _TWO_M53

    def random(self, size: Any = None) -> float | np.ndarray:
        """Uniform doubles in [0, 1): ``(bits >> 11) * 2**-53``."""
        if size is None:
            return self._one()
        n, shape = _size(size)
        if n <= _SMALL:  # Python ints beat numpy's per-call overhead here; same values
            return np.array([self._one() for _ in range(n)], dtype=np.float64).reshape(shape)
        return ((self._take(n) >> _U[6]).astype(np.float64) * _TWO_M53).reshape(shape)

    def uniform(self, low: float = 0.0, high: float = 1.0, size: Any = None) -> float | np.ndarray:
        """``low + (high - low) * u`` (``low``, ``high`` as floats)."""
        low, high = float(low), float(high)
        if size is None:
            return low + (high - low) * self._one()
        return low + (high - low) * self.random(size)

    def permutation(self, x: Any) -> np.ndarray:
        """A permutation of ``range(x)`` (int64), or of ``x``'s first axis (a copy).

        Fisher-Yates from the top: ``n - 1`` draws, ``j = int(u * (i + 1))`` for
        ``i = n-1 .. 1``.
        """
        arr = None
        if np.ndim(x) == 0:
            n = int(x)
            if n < 0:
                raise ValueError(f"permutation of a negative count: {x!r}")
        else:
            arr = np.asarray(x)
            n = arr.shape[0]
        out = list(range(n))
        if n > 1:
            j = (self.random(n - 1) * np.arange(n, 1, -1)).astype(np.int64).tolist()
            for t, i in enumerate(range(n - 1, 0, -1)):
                jt = j[t]
                out[i], out[jt] = out[jt], out[i]
        perm = np.array(out, dtype=np.int64)
        return perm if arr is None else arr[perm]

    def normal(self, loc: float = 0.0, scale: float = 1.0, size: Any = None) -> float | np.ndarray:
        """``loc + scale * z``, ``z`` the AS 241 quantile of ``(2 (bits >> 12) + 1) 2**-53``."""
        n, shape = (1, None) if size is None else _size(size)
        p = (((self._take(n) >> _U[7]) << np.uint64(1)) | np.uint64(1)).astype(np.float64)
        z = _ppnd(p * _TWO_M53)
        out = float(loc) + float(scale) * z
        return float(out[0]) if shape is None else out.reshape(shape)


# ---- compiled fills (lazy numba import) ----------------------------------------------
def _fill(seed: int, dies: Any, n: int, start: int, normal: bool) -> np.ndarray:
    from yieldmc.engine import _streams

    seed = check_index("seed", seed)
    dies = np.asarray(dies)
    if dies.ndim != 1 or (dies.size and (dies.dtype.kind not in "iu" or dies.min() < 0)):
        raise ConfigError("dies must be a 1-d array of integers >= 0")
    n, start = check_index("n", n), check_index("start", start)
    if start + n >= 1 << 63:
        raise ConfigError(f"draw counters must stay below 2**63, got start={start}, n={n}")
    out = np.empty((dies.size, n))
    _streams.fill_chunk(np.uint64(seed), dies.astype(np.uint64), np.int64(start), normal, out)
    return out


def uniforms(seed: int, dies: Any, n: int, start: int = 0) -> np.ndarray:
    """Draws ``start .. start + n - 1`` of each die as uniforms, compiled: ``(len(dies), n)``.

    Row ``d`` equals ``DieStream(seed, dies[d], counter=start).random(n)`` bit for bit.
    """
    return _fill(seed, dies, n, start, False)


def normals(seed: int, dies: Any, n: int, start: int = 0) -> np.ndarray:
    """Draws ``start .. start + n - 1`` of each die as standard normals, compiled.

    Row ``d`` equals ``DieStream(seed, dies[d], counter=start).normal(size=n)`` bit for bit.
    """
    return _fill(seed, dies, n, start, True)

"""Plain-Python twins of the counter-based streams (``yieldmc/engine/_streams.py`` and
its numpy twin ``yieldmc.engine.streams.DieStream``), compared in
``tests/test_engine_streams.py``.

Everything here is Python-int arithmetic masked to 64 bits, written from the documented
formulas (the docstring of ``yieldmc.engine.streams``, docs/defects.md): no numpy integer
wrap-around in the streams' own hashes, no code shared with the kernels but their
documented constants.
"""

from __future__ import annotations

import numpy as np

from yieldmc import defect_kinds
from yieldmc.engine.streams import GOLDEN, STREAM_TAG

#: 64-bit mask of Python-int arithmetic.
MASK = (1 << 64) - 1
#: The splitmix64 increment (the golden ratio in 64 bits), written out.
INCREMENT = 0x9E3779B97F4A7C15


def splitmix64(z: int) -> int:
    """The textbook splitmix64 output for state ``z`` (already incremented).

    Mirrors the finaliser of ``_streams`` (``uniform``, ``die_key``) and of
    ``defect_kinds.mix64``. Obviously correct: Steele, Lea and Flood's three xor-shift /
    multiply steps, each masked to 64 bits, on unbounded Python ints.

    >>> hex(splitmix64(INCREMENT))  # splitmix64's first output from seed 0
    '0xe220a8397b1dcdaf'
    """
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def die_uniform(seed: int, die: int, i: int) -> float:
    """Draw ``i`` of die ``die`` under root seed ``seed``, in [0, 1) on the 2^-53 grid.

    Mirrors ``_streams.uniform(die_key(seed, die), i)`` and ``DieStream(seed, die)``'s draw
    ``i``. Obviously correct: the documented formula, key = splitmix(splitmix(seed ^ TAG) ^
    die) and draw i = top 53 bits of splitmix(key + (i + 1) * INCREMENT), with Python ints.
    """
    inner = splitmix64(((seed ^ STREAM_TAG) + INCREMENT) & MASK)
    key = splitmix64(((inner ^ die) + INCREMENT) & MASK)
    return (splitmix64((key + (i + 1) * INCREMENT) & MASK) >> 11) / 2.0**53


def fisher_yates(u, n: int) -> list[int]:
    """The permutation of ``range(n)`` that draws ``u[0], u[1], ...`` make.

    Mirrors ``_streams.permute`` and ``DieStream.permutation``. Obviously correct: the
    Fisher-Yates shuffle from the top written out, swapping ``i`` with ``int(u * (i + 1))``
    for ``i = n - 1, ..., 1`` (n - 1 draws).
    """
    perm = list(range(n))
    for t, i in enumerate(range(n - 1, 0, -1)):
        j = int(u[t] * (i + 1))
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def cell_stream_bits(seed: int, stream: int, n: int) -> np.ndarray:
    """The raw 64-bit outputs of the first ``n`` cells of per-cell stream ``stream``.

    Mirrors the hash behind ``defect_kinds.bernoulli`` (cell ``c`` of stream ``s`` under
    seed ``seed``: splitmix64 of ``c * GOLDEN + mix64(mix64(seed) ^ s)``), so that the die
    streams can be shown apart from it. Obviously correct: one :func:`splitmix64` per cell.
    """
    off = defect_kinds.mix64(defect_kinds.mix64(seed) ^ stream)
    z = np.arange(n, dtype=np.uint64) * np.uint64(GOLDEN) + np.uint64(off)
    return np.array([splitmix64(int(v)) for v in z], dtype=np.uint64)

"""Explicit randomness: every random draw in yieldmc comes from a stream made here.

A die's draws come from its counter-based stream :class:`yieldmc.engine.streams.DieStream`
(DESIGN.md section 7): draw ``i`` of die ``d`` under root seed ``s`` is a pure function
of ``(s, d, i)``, the same in the readable path and in the compiled chunk engine.
Everything else (network training, correctors, study subsets) uses ``numpy.random.Generator``.
"""

from __future__ import annotations

import numpy as np

from yieldmc.engine.streams import DieStream

SeedLike = None | int | np.random.SeedSequence | np.random.Generator | DieStream


def as_generator(seed: SeedLike) -> np.random.Generator | DieStream:
    """Turn ``None | int | SeedSequence | Generator | DieStream`` into a random stream.

    A Generator or a :class:`DieStream` is returned as is (the caller keeps sharing its
    stream); anything else goes through ``numpy.random.default_rng``.
    """
    if isinstance(seed, (np.random.Generator, DieStream)):
        return seed
    return np.random.default_rng(seed)


def die_generator(root_seed: int, die: int) -> DieStream:
    """The random stream of die ``die`` in a run with root seed ``root_seed``.

    It depends only on the two integers, never on workers, chunking or order:
    ``DieStream(root_seed, die)``, the counter-based stream the compiled engine draws
    from too (run format 2; runs of format 1 drew from ``default_rng([root_seed, die])``).
    """
    if root_seed < 0 or die < 0:
        raise ValueError(f"seed and die index must be >= 0, got seed={root_seed}, die={die}")
    return DieStream(int(root_seed), int(die))

"""Explicit randomness: every random draw in yieldmc comes from a Generator made here."""

from __future__ import annotations

import numpy as np

SeedLike = None | int | np.random.SeedSequence | np.random.Generator


def as_generator(seed: SeedLike) -> np.random.Generator:
    """Turn ``None | int | SeedSequence | Generator`` into a ``numpy.random.Generator``.

    A Generator is returned as is (the caller keeps sharing its stream).
    """
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def die_generator(root_seed: int, die: int) -> np.random.Generator:
    """The random stream of die ``die`` in a run with root seed ``root_seed``.

    It depends only on the two integers, never on workers, chunking or order:
    ``numpy.random.default_rng([root_seed, die])`` (DESIGN.md section 7).
    """
    if root_seed < 0 or die < 0:
        raise ValueError(f"seed and die index must be >= 0, got seed={root_seed}, die={die}")
    return np.random.default_rng([int(root_seed), int(die)])

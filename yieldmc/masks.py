"""Masks given rather than drawn: their checks, their files, and the canonical placements.

A die's defects can be given instead of drawn (:meth:`yieldmc.die.DieModel.mask_outputs`,
``yieldmc die --masks FILE``): one ``int8`` mask per array with the codes of
:mod:`yieldmc.defects` (0 healthy, 1 stuck OFF, 2 stuck ON). This module checks such masks
against a die (:func:`check_masks`), writes and reads them as ``.npz`` archives
(:func:`save_masks`, :func:`load_masks`), and makes the fixed, centred placement of each
kind (:func:`canonical_masks`; on a config's die :func:`canonical_die_masks`, ``yieldmc
masks``), whose masks of different kinds compare cell for cell (transfer studies).
Definitions: ``docs/defects.md``.

>>> m = canonical_masks("row", [(4, 4)], 0.5, on_mode="off")[0]
>>> m.sum(axis=1).tolist(), check_masks([m], [(4, 4)])[0].dtype.name
([0, 4, 4, 0], 'int8')
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from yieldmc import defect_kinds
from yieldmc.atomic import atomic_path
from yieldmc.defect_kinds import NONE, mix64
from yieldmc.defects import (
    DEFAULT_ON_FRACTION,
    affected_flags,
    check_shape,
    check_unit,
    set_states,
)
from yieldmc.errors import ConfigError

if TYPE_CHECKING:
    from yieldmc.config import Config
    from yieldmc.mapping import DieLayout

#: The label of masks given rather than drawn (:meth:`yieldmc.die.DieModel.mask_outputs`):
#: the ``defect_type`` of such a die with a stuck cell, the ``kind`` of its arrays' params.
EXPLICIT = "explicit"
#: Kinds with a canonical placement (:func:`canonical_masks`).
CANONICAL_KINDS = ("circular", "circular_complement", "ring", "row", "column", "checkerboard",
                   "random", NONE)
#: ON/OFF of :func:`canonical_masks`: every faulty cell ON, every one OFF, or the shared map.
CANONICAL_ON_MODES = ("cell", "on", "off")
#: :func:`canonical_masks`' ring: the share of its outer disk that is faulty (mid-range of
#: the drawn rings' ``RING_AREA``).
CANONICAL_RING_AREA = 0.675
#: :func:`canonical_masks`' checkerboard block size (cells): the finest pattern.
CANONICAL_CHECKER_BLOCK = 1
_CODES = "0 (healthy), 1 (stuck OFF) or 2 (stuck ON)"

__all__ = ["CANONICAL_CHECKER_BLOCK", "CANONICAL_KINDS", "CANONICAL_ON_MODES", "CANONICAL_RING_AREA", "EXPLICIT",
           "array_seed", "canonical_die_masks", "canonical_masks", "check_masks", "design_layout", "load_masks",
           "save_masks"]


# ----------------------------------------------------------------------------- explicit masks


def _check_one(m: Any, shape: tuple[int, int] | None, where: str) -> np.ndarray:
    """One mask as a contiguous int8 array, or a one-line ConfigError naming ``where``."""
    a = np.asarray(m)
    if a.dtype.kind not in "iub":
        raise ConfigError(f"{where}: mask dtype {a.dtype} is not an integer type; expected integer "
                          f"codes {_CODES}")
    if shape is not None and a.shape != shape:
        raise ConfigError(f"{where}: mask shape {a.shape} does not match the array's shape {shape}")
    if shape is None and (a.ndim != 2 or 0 in a.shape):
        raise ConfigError(f"{where}: a mask must be a 2-D array (rows, columns), got shape {a.shape}")
    bad = np.argwhere((a < 0) | (a > 2)) if a.dtype.kind != "b" else ()
    if len(bad):
        i, j = (int(v) for v in bad[0])
        raise ConfigError(f"{where}: mask holds code {a[i, j]} at row {i}, column {j}; "
                          f"expected {_CODES}")
    return np.ascontiguousarray(a, dtype=np.int8)


def check_masks(masks: Sequence[Any], shapes: Sequence[Sequence[int]]) -> list[np.ndarray]:
    """Validate a die's given masks against its array shapes.

    Parameters
    ----------
    masks : sequence of array_like
        One mask per array, in array order: integer (or bool: ``True`` is stuck OFF) codes
        0 healthy, 1 stuck OFF, 2 stuck ON.
    shapes : sequence of (int, int)
        The die's array shapes (``DieLayout.shapes``).

    Returns
    -------
    list of numpy.ndarray
        Contiguous ``int8`` copies (the dtype :func:`~yieldmc.defects.sample_die` gives).

    Raises
    ------
    ConfigError
        One line naming the array index and what was expected: a wrong count, a wrong
        shape, a non-integer dtype (floats are refused, not rounded), a code outside 0-2.

    >>> [m.dtype.name for m in check_masks([np.zeros((2, 3), np.uint8)], [(2, 3)])]
    ['int8']
    """
    shapes = [check_shape(s) for s in shapes]
    if isinstance(masks, np.ndarray) and masks.ndim == 2 or isinstance(masks, (str, bytes)):
        raise ConfigError(f"expected a sequence of {len(shapes)} masks (one per array), got one array")
    try:
        masks = list(masks)
    except TypeError:
        raise ConfigError(f"expected a sequence of {len(shapes)} masks (one per array), "
                          f"got {type(masks).__name__}") from None
    if len(masks) != len(shapes):
        raise ConfigError(f"expected {len(shapes)} masks (one per array), got {len(masks)}")
    return [_check_one(m, s, f"array {i}") for i, (m, s) in enumerate(zip(masks, shapes, strict=True))]


def save_masks(path: str | os.PathLike, masks: Sequence[Any], *, overwrite: bool = False) -> Path:
    """Write a die's masks to an ``.npz`` file (keys ``array_0``, ``array_1``, ...), atomically.

    Parameters
    ----------
    path : path
        The file to write (an ``.npz`` archive whatever its suffix).
    masks : sequence of array_like
        One 2-D mask per array, codes 0/1/2 (checked as :func:`check_masks` does).
    overwrite : bool
        Replace an existing file; without it an existing ``path`` is a ConfigError.

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    checked = [_check_one(m, None, f"array {i}") for i, m in enumerate(masks)]
    if not checked:
        raise ConfigError("no masks to save: a die has at least one array")
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} exists; pass --overwrite to replace it")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a handle: np.savez adds no suffix
        np.savez_compressed(fh, **{f"array_{i}": m for i, m in enumerate(checked)})
    return path


def load_masks(path: str | os.PathLike) -> list[np.ndarray]:
    """The masks of an ``.npz`` file written by :func:`save_masks` (or by hand).

    Returns
    -------
    list of numpy.ndarray
        ``int8`` masks in array order (``array_0``, ``array_1``, ...); check them against a
        die with :func:`check_masks`.

    Raises
    ------
    ConfigError
        A missing or unreadable file, one that is not an ``.npz`` archive, keys other than
        ``array_0`` .. ``array_{n-1}``, a mask that is not 2-D integer codes 0/1/2.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"mask file {path} does not exist" if not path.exists()
                          else f"mask file {path} is not a file")
    not_npz = f"mask file {path} is not an .npz archive (yieldmc masks --out writes one)"
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):  # a .npy file: one array
            raise ConfigError(not_npz)
        with data:
            keys = sorted(data.files)
            want = [f"array_{i}" for i in range(len(keys))]
            if not keys or sorted(want) != keys:
                raise ConfigError(f"mask file {path}: expected keys array_0 .. array_{{n-1}}, got "
                                  f"{', '.join(keys) or 'none'}")
            return [_check_one(data[k], None, f"{path} {k}") for k in want]
    except ConfigError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"mask file {path} is not a readable .npz archive: {' '.join(str(exc).split())}") from None


def _levels(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distances of the cell centres from the array centre, exactly: ``D`` (integers,
    ``4 M^2 N^2`` times the normalized squared distance) per cell, its distinct values
    ascending and the number of cells at or within each."""
    m, n = shape
    dy = (2 * np.arange(m, dtype=np.int64) + 1 - m)[:, None] ** 2 * n * n
    dx = (2 * np.arange(n, dtype=np.int64) + 1 - n)[None, :] ** 2 * m * m
    d = dy + dx
    levels, counts = np.unique(d, return_counts=True)
    return d, levels, np.cumsum(counts)


def _nearest_level(cum: np.ndarray, k: float) -> int:
    """The level whose disk count is nearest ``k`` (-1: the empty disk; ties: the smaller)."""
    counts = np.concatenate([[0], cum])
    return int(np.argmin(np.abs(counts - k))) - 1


def _within(d: np.ndarray, levels: np.ndarray, j: int) -> np.ndarray:
    """Cells of the centred disk of levels ``0 .. j`` (``j = -1``: none)."""
    return d <= levels[j] if j >= 0 else np.zeros(d.shape, dtype=bool)


def _canonical_cells(kind: str, shape: tuple[int, int], s: float, key: int) -> np.ndarray:
    """The faulty cells of the centred ``kind`` with a share as near ``s`` as it allows."""
    m, n = shape
    k = s * m * n
    if k == 0:
        return np.zeros(shape, dtype=bool)
    if kind in ("circular", "circular_complement", "ring"):
        d, levels, cum = _levels(shape)
        last = len(levels) - 1
        if kind == "circular":
            return _within(d, levels, max(_nearest_level(cum, k), 0))
        if kind == "circular_complement":
            return ~_within(d, levels, min(_nearest_level(cum, m * n - k), last - 1))
        if last < 1:  # one level (a 1x1 or 1x2 array): no room for a hole
            return _within(d, levels, last)
        j_out = min(max(_nearest_level(cum, min(m * n, k / CANONICAL_RING_AREA)), 1), last)
        j_in = min(max(_nearest_level(cum, int(cum[j_out]) - k), 0), j_out - 1)
        return _within(d, levels, j_out) & ~_within(d, levels, j_in)
    if kind in ("row", "column"):
        size = shape[0 if kind == "row" else 1]
        count = max(round(s * size), 1)
        lines = list(range((size - count) // 2, (size - count) // 2 + count))
        p: dict[str, Any] = {"rows" if kind == "row" else "columns": lines}
    elif kind == "checkerboard":
        b = CANONICAL_CHECKER_BLOCK
        counts = defect_kinds.checker(shape, b, (0, 0)).cumsum(0).cumsum(1)  # [h-1, w-1] -> cells
        err = np.abs(counts - k)
        hh, ww = np.nonzero(err <= err.min() + math.floor(defect_kinds.CHECKER_SLACK * m * n))
        best = int(np.argmin(np.abs(np.log((hh + 1) * n / ((ww + 1) * m)))))  # the array's aspect
        h, w = int(hh[best]) + 1, int(ww[best]) + 1
        p = {"block": b, "phase": [0, 0], "region": [(m - h) // 2, (n - w) // 2, h, w]}
    else:  # random
        p = {"density": s, "seed": key}
    return defect_kinds.REGISTRY.get(kind).cells(shape, p)


def array_seed(seed: int, array: int) -> int:
    """The per-cell seed of array ``array`` of :func:`canonical_masks` (below 2**53):
    splitmix64 of ``(seed, array)``, so each array has its own fixed ON/OFF map."""
    return mix64(mix64(int(seed)) ^ int(array)) >> 11


def canonical_masks(kind: str, shapes: Sequence[Sequence[int]], severity: float, *,
                    on_mode: str = "cell", on_fraction: float = DEFAULT_ON_FRACTION,
                    seed: int = 0, affected: Any = None) -> list[np.ndarray]:
    """The fixed, centred placement of ``kind`` on each affected array.

    Unlike :func:`~yieldmc.defects.sample_die` nothing is drawn from a die's stream: the geometry is a
    function of ``(kind, shape, severity)`` and the ON/OFF states of ``(seed, array
    index, on_fraction)``, so masks of different kinds are comparable cell for cell
    (transfer studies: train a corrector on kind A, test it on kind B).

    ============================  =============================================================
    ``circular``                  a disk centred on the array centre (normalized coordinates:
                                  an ellipse on a non-square array)
    ``circular_complement``       the cells outside a centred disk
    ``ring``                      a centred annulus whose faulty cells are about
                                  :data:`CANONICAL_RING_AREA` of its outer disk
    ``row`` / ``column``          ``round(s M)`` rows (``round(s N)`` columns), contiguous
                                  and centred (an odd leftover line goes below / right)
    ``checkerboard``              a block-:data:`CANONICAL_CHECKER_BLOCK` checkerboard in a
                                  centred region of about the array's aspect (at most about
                                  half the cells: larger ``s`` saturate)
    ``random``                    i.i.d. cells of density ``s`` from a fixed draw keyed by
                                  ``(seed, array index)``
    ``none``                      no faulty cell
    ============================  =============================================================

    Disks, complements and rings take whole distance levels (cells equidistant from the
    centre are all in or all out), so they are symmetric under up-down and left-right flips
    and their count is the level count nearest ``s M N``; lines are within half a line.
    No kind vanishes at ``s > 0``: a small array still gets the centre level, the outer
    level, one line or one checkerboard cell (its share is then above ``s``: one row of an
    8-row array at 2 % is 12.5 %), and a ring always keeps the centre level as its hole, so
    two kinds never round to the same cells (a ring that lost its hole was the disk).

    Parameters
    ----------
    kind : str
        One of :data:`CANONICAL_KINDS`.
    shapes : sequence of (int, int)
        The die's array shapes, in order.
    severity : float
        Target faulty share in [0, 1] of each affected array.
    on_mode : {"cell", "on", "off"}
        ``"on"``/``"off"``: every faulty cell stuck ON / OFF. ``"cell"``: a cell is stuck ON
        iff ``u[r, c] < on_fraction``, where ``u`` is a uniform field fixed per ``(seed,
        array index)`` (the counter-based hash of :func:`yieldmc.defects.mask`'s per-cell draws with the
        seed :func:`array_seed`): the same cell has the same state in every kind.
    on_fraction : float
        ``on_mode="cell"`` only: the share of faulty cells stuck ON, in [0, 1].
    seed : int
        Key of the ON/OFF field and of ``random``'s cells (>= 0).
    affected : None, sequence of int or sequence of bool
        Arrays that receive the pattern, as :func:`~yieldmc.defects.sample_die` takes them (default all);
        the others get all-zero masks.

    Returns
    -------
    list of numpy.ndarray
        One ``int8`` mask per array (0 healthy, 1 stuck OFF, 2 stuck ON).

    Raises
    ------
    ConfigError
        Unknown kind or ``on_mode``, ``severity`` or ``on_fraction`` outside [0, 1], a bad
        seed, shapes or ``affected``.

    >>> from yieldmc.defects import STUCK_ON
    >>> m = canonical_masks("circular", [(5, 5)], 0.2, on_mode="on")[0]
    >>> int((m == STUCK_ON).sum()), bool((m == m[::-1, ::-1]).all())
    (5, True)
    """
    shapes = [check_shape(s) for s in shapes]
    if kind not in CANONICAL_KINDS:
        raise ConfigError(f"unknown defect kind {kind!r} for canonical masks; valid kinds: "
                          f"{', '.join(CANONICAL_KINDS)}")
    if on_mode not in CANONICAL_ON_MODES:
        raise ConfigError(f"on_mode must be one of {', '.join(CANONICAL_ON_MODES)}, got {on_mode!r}")
    if isinstance(severity, (tuple, list)):
        raise ConfigError(f"canonical masks need one severity in [0, 1], got {severity!r}")
    s, q = check_unit("severity", severity), check_unit("on_fraction", on_fraction)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    flags = affected_flags(affected, len(shapes))
    out = []
    for i, (shape, hit) in enumerate(zip(shapes, flags, strict=True)):
        if not hit or kind == NONE:
            out.append(np.zeros(shape, dtype=np.int8))
            continue
        key = array_seed(seed, i)
        states = {"on_fraction": q, "seed": key} if on_mode == "cell" else {"state": on_mode}
        out.append(set_states(np.zeros(shape, dtype=np.int8), _canonical_cells(kind, shape, s, key), states))
    return out


# ----------------------------------------------------------------------------- a config's die
def design_layout(config: Config, *, cache_dir: str | Path | None = None) -> DieLayout:
    """The arrays of ``config``'s die without training its network.

    Array shapes and layers depend on the layer sizes only (the data's inputs and classes,
    ``network.hidden``) and ``arrays``, so the layout of zero weights has the trained die's
    :attr:`~yieldmc.mapping.DieLayout.shapes` (its conductances are not the die's).
    """
    from yieldmc.cache import obtain_dataset
    from yieldmc.mapping import map_network

    dataset = obtain_dataset(config, cache_dir)
    sizes = (dataset.n_features, *config.network.hidden, dataset.n_classes)
    weights = [np.zeros((a, b)) for a, b in zip(sizes[:-1], sizes[1:], strict=False)]
    return map_network(weights, config.device, config.arrays, config.mapping, [np.zeros(b) for b in sizes[1:]])


def canonical_die_masks(config: Config, kind: str, severity: float, *, on_mode: str = "cell",
                        on_fraction: float = DEFAULT_ON_FRACTION, seed: int = 0,
                        cache_dir: str | Path | None = None) -> list[np.ndarray]:
    """:func:`canonical_masks` on the arrays of ``config``'s die (:func:`design_layout`).

    The arrays of ``config.defects.layers`` (all when empty) receive the pattern, the others
    get all-zero masks; the result suits :meth:`yieldmc.die.DieModel.mask_outputs` and
    :func:`save_masks` (``yieldmc masks``). Other arguments as in :func:`canonical_masks`.
    """
    layout = design_layout(config, cache_dir=cache_dir)
    return canonical_masks(kind, layout.shapes, severity, on_mode=on_mode, on_fraction=on_fraction,
                           seed=seed, affected=layout.arrays_of_layers(config.defects.layers))

"""Weights -> differential conductance pairs -> tiles on fixed-size arrays.

Layer ``l`` computes ``z = h @ W + b`` in software with ``h`` in [0, 1]. On the die,
``h`` becomes row voltages ``v = v_read * h`` and output ``k`` of the layer is a pair of
physical columns ``2k`` (G+) and ``2k + 1`` (G-)::

    G+ = g_off + g_scale * max(W, 0)        G- = g_off + g_scale * max(-W, 0)
    g_scale = (g_on - g_off) / max|W|       (per layer: the largest weight uses the full range)

so that, with ideal wires, ``I+ - I- = g_scale * v_read * (h @ W)`` exactly (``g_off``
cancels). Biases are applied in the periphery (added at the neuron), not by a driven row.
A layer larger than ``max_rows x max_cols`` is split into tiles; the partial currents of
the tiles that share outputs are summed at the shared virtual ground, which is exact
because that node is held at 0 V.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from yieldmc.config import ArrayConfig, DeviceConfig
from yieldmc.errors import ConfigError


@dataclass(frozen=True)
class ArraySpec:
    """One physical array of a die.

    Attributes
    ----------
    layer : int
        Network layer it belongs to.
    rows : slice
        Inputs of the layer it receives (word lines).
    cols : slice
        Physical columns of the layer it holds (``2 * n_out`` columns in all).
    G : numpy.ndarray
        Programmed conductances (S), shape ``(rows, cols)`` of this array.
    """

    layer: int
    rows: slice
    cols: slice
    G: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.G.shape


def quantize(G: np.ndarray, device: DeviceConfig) -> np.ndarray:
    """Round conductances to ``device.levels`` equally spaced levels in [g_off, g_on]."""
    if device.levels == 0:
        return G
    step = (device.g_on - device.g_off) / (device.levels - 1)
    return device.g_off + np.round((G - device.g_off) / step) * step


def layer_conductances(W: np.ndarray, device: DeviceConfig) -> tuple[np.ndarray, float]:
    """Differential-pair conductances of one layer.

    Parameters
    ----------
    W : numpy.ndarray, shape (n_in, n_out)
        Software weights.
    device : DeviceConfig
        Conductance range and levels.

    Returns
    -------
    G : numpy.ndarray, shape (n_in, 2 * n_out)
        Columns ``2k`` (G+) and ``2k + 1`` (G-) of output k (S).
    g_scale : float
        Siemens per unit weight.
    """
    W = np.asarray(W, dtype=np.float64)
    w_max = float(np.max(np.abs(W)))
    if not np.isfinite(w_max):
        raise ConfigError("weights contain NaN or inf")
    g_scale = (device.g_on - device.g_off) / (w_max if w_max > 0 else 1.0)
    G = np.empty((W.shape[0], 2 * W.shape[1]))
    G[:, 0::2] = device.g_off + g_scale * np.maximum(W, 0.0)
    G[:, 1::2] = device.g_off + g_scale * np.maximum(-W, 0.0)
    return np.clip(quantize(G, device), device.g_off, device.g_on), g_scale


def tiles(n_in: int, n_phys_cols: int, max_rows: int, max_cols: int) -> list[tuple[slice, slice]]:
    """Split an ``n_in x n_phys_cols`` layer into near-equal tiles of at most max size.

    Columns are split on pair boundaries (``max_cols`` is even). Tiles are listed row
    block by row block.
    """
    n_row_tiles = -(-n_in // max_rows)
    n_pairs = n_phys_cols // 2
    n_col_tiles = -(-n_pairs // (max_cols // 2))
    row_edges = np.linspace(0, n_in, n_row_tiles + 1).round().astype(int)
    pair_edges = np.linspace(0, n_pairs, n_col_tiles + 1).round().astype(int)
    return [
        (slice(int(r0), int(r1)), slice(int(2 * c0), int(2 * c1)))
        for r0, r1 in zip(row_edges[:-1], row_edges[1:], strict=True)
        for c0, c1 in zip(pair_edges[:-1], pair_edges[1:], strict=True)
    ]


@dataclass(frozen=True)
class DieLayout:
    """The mapped network: every array of a die, and the per-layer scales."""

    arrays: tuple[ArraySpec, ...]
    g_scales: tuple[float, ...]
    layer_sizes: tuple[int, ...]

    @property
    def shapes(self) -> list[tuple[int, int]]:
        return [a.shape for a in self.arrays]

    def arrays_of_layers(self, layers: tuple[int, ...]) -> list[int]:
        """Indices of the arrays that belong to ``layers`` (all arrays when empty)."""
        n_layers = len(self.g_scales)
        bad = [layer for layer in layers if layer >= n_layers]
        if bad:
            raise ConfigError(
                f"defects.layers {bad} out of range: the network has {n_layers} layers (0..{n_layers - 1})")
        return [i for i, a in enumerate(self.arrays) if not layers or a.layer in layers]


def map_network(weights, device: DeviceConfig, arrays: ArrayConfig) -> DieLayout:
    """Map every layer's weights onto tiles of at most ``max_rows x max_cols`` cells."""
    specs: list[ArraySpec] = []
    scales: list[float] = []
    for layer, W in enumerate(weights):
        G, g_scale = layer_conductances(W, device)
        scales.append(g_scale)
        for rows, cols in tiles(G.shape[0], G.shape[1], arrays.max_rows, arrays.max_cols):
            specs.append(ArraySpec(layer, rows, cols, np.ascontiguousarray(G[rows, cols])))
    sizes = (weights[0].shape[0], *(W.shape[1] for W in weights))
    return DieLayout(tuple(specs), tuple(scales), sizes)

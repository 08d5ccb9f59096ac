"""Weights -> conductance pairs -> tiles on fixed-size arrays.

Layer ``l`` computes ``z = h @ W + b`` in software with ``h`` in [0, 1]. On the die,
``h`` becomes row voltages ``v = v_read * h`` and output ``k`` of the layer is a pair of
physical columns ``2k`` (G+) and ``2k + 1`` (G-). ``[mapping] scheme`` (:class:`MappingConfig`)
chooses the pair::

    differential (default):  G+ = g_off + g_scale * max(W, 0)    G- = g_off + g_scale * max(-W, 0)
    midrange:                G+ = g_mid + g_scale * W / 2        G- = g_mid - g_scale * W / 2
    g_scale = (g_on - g_off) / max|W|   (per layer: the largest weight uses the full range)
    g_mid = (g_on + g_off) / 2

so that, with ideal wires, ``I+ - I- = g_scale * v_read * (h @ W)`` exactly in both (``g_off``
or ``g_mid`` cancels) and the periphery is the same. In ``differential`` most cells sit at
``g_off``: a stuck-OFF cell mostly changes nothing, a stuck-ON one a lot. In ``midrange``
every cell sits near ``g_mid``, and stuck ON and stuck OFF are deviations of equal size.
Conductances are quantized (``device.levels``) and clipped to ``[g_off, g_on]`` in both.

**Biases.** By default (``bias_row = false``) a layer's bias is added in the periphery, at
the neuron: defects never reach it. With ``bias_row = true`` the bias is one more input
row of the layer, the LAST one, driven at ``v_read`` (input value 1) and mapped like a weight
row (``max|W|`` then covers the bias, and defects can hit it). A consumer of the layout
(:class:`DieLayout`) then does, per layer::

    v_aug = layout.layer_inputs(layer, v)          # (B, n_in) volts -> (B, n_in + 1): v_read appended
    I[:, spec.cols] += currents(spec, v_aug[:, spec.rows])   # each array of the layer
    z = (I[:, 0::2] - I[:, 1::2]) / (g_scale * v_read) + layout.periphery_biases(biases)[layer]

``periphery_biases`` returns the network's biases without a bias row and zeros with one;
``layer_rows(layer)`` is ``n_in + 1`` with a bias row, and the tiles cover that many rows
(an array's ``rows`` slice indexes ``v_aug``). ``layer_inputs`` returns ``v`` itself
without a bias row, so the same code serves both.

**Drift.** ``device.drift_nu > 0`` scales every mapped (programmed) conductance by
``f = (read_time / drift_t0)^-nu`` (:func:`yieldmc.readout.drift_factor`, kept as
:attr:`DieLayout.drift`), after quantization and clipping: what was programmed at ``t0``
then relaxed. A drifted cell below ``g_off`` is physical (every state relaxes), so the
result is not clipped again. ``g_scales`` stay those of ``t0`` (the periphery was set up
then), so a fault-free layer's output shrinks by ``f``. Stuck cells are written later,
per die, at exactly ``g_on`` / ``g_off`` (:func:`yieldmc.defects.apply`): they do not drift.

A layer larger than ``max_rows x max_cols`` is split into tiles; the partial currents of
the tiles that share outputs are summed at the shared virtual ground, which is exact
because that node is held at 0 V.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from yieldmc.config import MAPPING_SCHEMES, ArrayConfig, DeviceConfig, MappingConfig
from yieldmc.errors import ConfigError
from yieldmc.readout import drift_factor


@dataclass(frozen=True)
class ArraySpec:
    """One physical array of a die.

    Attributes
    ----------
    layer : int
        Network layer it belongs to.
    rows : slice
        Inputs of the layer it receives (word lines); with a bias row, indices into the
        layer's ``n_in + 1`` inputs (:meth:`DieLayout.layer_inputs`), the bias last.
    cols : slice
        Physical columns of the layer it holds (``2 * n_out`` columns in all).
    G : numpy.ndarray
        Mapped conductances (S) at the time of the reads (drift included), shape
        ``(rows, cols)`` of this array.
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


def layer_conductances(W: np.ndarray, device: DeviceConfig,
                       scheme: str = "differential") -> tuple[np.ndarray, float]:
    """Conductance pairs of one layer (module docstring), quantized and clipped.

    Parameters
    ----------
    W : numpy.ndarray, shape (n_in, n_out)
        Software weights (with a bias row: the bias as the last row).
    device : DeviceConfig
        Conductance range and levels.
    scheme : {"differential", "midrange"}
        The pair's form (:class:`yieldmc.config.MappingConfig`).

    Returns
    -------
    G : numpy.ndarray, shape (n_in, 2 * n_out)
        Columns ``2k`` (G+) and ``2k + 1`` (G-) of output k (S).
    g_scale : float
        Siemens per unit weight: ``G+ - G- = g_scale * W`` (before quantization).
    """
    if scheme not in MAPPING_SCHEMES:
        raise ConfigError(f"mapping.scheme {scheme!r} is not available; valid: {', '.join(MAPPING_SCHEMES)}")
    W = np.asarray(W, dtype=np.float64)
    w_max = float(np.max(np.abs(W)))
    if not np.isfinite(w_max):
        raise ConfigError("weights contain NaN or inf")
    g_scale = (device.g_on - device.g_off) / (w_max if w_max > 0 else 1.0)
    G = np.empty((W.shape[0], 2 * W.shape[1]))
    if scheme == "differential":
        G[:, 0::2] = device.g_off + g_scale * np.maximum(W, 0.0)
        G[:, 1::2] = device.g_off + g_scale * np.maximum(-W, 0.0)
    else:
        g_mid = 0.5 * (device.g_on + device.g_off)
        G[:, 0::2] = g_mid + (0.5 * g_scale) * W
        G[:, 1::2] = g_mid - (0.5 * g_scale) * W
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
    """The mapped network: every array of a die, and the per-layer scales.

    Attributes
    ----------
    arrays : tuple of ArraySpec
        Every array, layer by layer, row block by row block.
    g_scales : tuple of float
        Siemens per unit weight of each layer, at programming time (drift not included).
    layer_sizes : tuple of int
        Software sizes ``(n_in, n_hidden..., n_out)`` (without bias rows).
    bias_row : bool
        Each layer's bias is its arrays' last input row (:meth:`layer_inputs`,
        :meth:`periphery_biases`).
    v_read : float
        Full-scale read voltage (V): the bias row's drive.
    drift : float
        The drift factor already applied to every array's ``G`` (1.0: none).
    scheme : str
        ``"differential"`` or ``"midrange"``.
    """

    arrays: tuple[ArraySpec, ...]
    g_scales: tuple[float, ...]
    layer_sizes: tuple[int, ...]
    bias_row: bool = False
    v_read: float = 0.2
    drift: float = 1.0
    scheme: str = "differential"

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

    def layer_rows(self, layer: int) -> int:
        """Word lines of layer ``layer``'s arrays together: ``n_in``, plus 1 with a bias row."""
        return self.layer_sizes[layer] + int(self.bias_row)

    def layer_inputs(self, layer: int, v: np.ndarray) -> np.ndarray:
        """The row voltages of layer ``layer``'s arrays for its input voltages ``v``.

        Parameters
        ----------
        layer : int
            Layer index.
        v : numpy.ndarray, shape (n_in,) or (B, n_in)
            The layer's input voltages (V): ``v_read`` times the software activations.

        Returns
        -------
        numpy.ndarray, shape (layer_rows,) or (B, layer_rows)
            ``v`` itself without a bias row; with one, ``v`` with a last column of
            ``v_read`` (the bias row's drive). Index it with each array's ``rows``.
        """
        v = np.asarray(v, dtype=np.float64)
        if v.shape[-1] != self.layer_sizes[layer]:
            raise ConfigError(f"layer {layer} takes {self.layer_sizes[layer]} inputs, got shape {v.shape}")
        if not self.bias_row:
            return v
        return np.concatenate([v, np.full((*v.shape[:-1], 1), self.v_read)], axis=-1)

    def periphery_biases(self, biases) -> tuple[np.ndarray, ...]:
        """The biases the neurons add after the arrays: the network's ``biases`` (one array
        per layer) without a bias row, zeros with one (the arrays already hold them)."""
        out = tuple(np.asarray(b, dtype=np.float64) for b in biases)
        return tuple(np.zeros_like(b) for b in out) if self.bias_row else out


def map_network(weights, device: DeviceConfig, arrays: ArrayConfig, mapping: MappingConfig | None = None,
                biases=None) -> DieLayout:
    """Map every layer's weights onto tiles of at most ``max_rows x max_cols`` cells.

    Parameters
    ----------
    weights : sequence of numpy.ndarray
        ``W_l`` of shape (n_in, n_out) per layer.
    device : DeviceConfig
        Conductance range, levels and drift (:func:`yieldmc.readout.drift_factor`).
    arrays : ArrayConfig
        Largest array and ``v_read``.
    mapping : MappingConfig, optional
        Scheme and bias row (default: ``MappingConfig()``, differential, no bias row).
    biases : sequence of numpy.ndarray, optional
        ``b_l`` of shape (n_out,) per layer; needed with ``mapping.bias_row``.

    Returns
    -------
    DieLayout
    """
    mapping = MappingConfig() if mapping is None else mapping
    if mapping.bias_row:
        if biases is None or len(biases) != len(weights):
            raise ConfigError("mapping.bias_row = true needs the network's biases, one per layer")
        weights = [np.vstack([np.asarray(W, dtype=np.float64), np.reshape(b, (1, -1))])
                   for W, b in zip(weights, biases, strict=True)]
    drift = drift_factor(device)
    specs: list[ArraySpec] = []
    scales: list[float] = []
    for layer, W in enumerate(weights):
        G, g_scale = layer_conductances(W, device, mapping.scheme)
        if drift != 1.0:
            G = G * drift
        scales.append(g_scale)
        for rows, cols in tiles(G.shape[0], G.shape[1], arrays.max_rows, arrays.max_cols):
            specs.append(ArraySpec(layer, rows, cols, np.ascontiguousarray(G[rows, cols])))
    sizes = (weights[0].shape[0] - int(mapping.bias_row), *(W.shape[1] for W in weights))
    return DieLayout(tuple(specs), tuple(scales), sizes, bias_row=mapping.bias_row,
                     v_read=float(arrays.v_read), drift=drift, scheme=mapping.scheme)

"""Weights -> differential conductance pairs -> tiles (yieldmc.mapping).

Every expected value is computed here from the definitions in the mapping module's
docstring (DESIGN.md section 5), not by the functions under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tolerances import DIFF_RTOL, G_RTOL, GRID_HALF_STEP_SLACK, GRID_INDEX_ATOL
from yieldmc.config import ArrayConfig, DeviceConfig
from yieldmc.errors import ConfigError
from yieldmc.mapping import layer_conductances, map_network, quantize, tiles

DEVICE = DeviceConfig()  # 1e-4 / 1e-6 S


def _weights(rng, n_in=64, n_out=8, scale=3.0):
    return rng.normal(0.0, scale, (n_in, n_out))


# ---- differential pairs -------------------------------------------------------------

@pytest.mark.parametrize("shape", [(64, 8), (8, 10), (1, 1), (3, 7)])
def test_pair_current_difference_is_proportional_to_v_at_w(rng, shape):
    W = _weights(rng, *shape)
    G, g_scale = layer_conductances(W, DEVICE)
    assert G.shape == (shape[0], 2 * shape[1])
    expected_scale = (DEVICE.g_on - DEVICE.g_off) / np.abs(W).max()
    np.testing.assert_allclose(g_scale, expected_scale, rtol=G_RTOL)
    v = rng.uniform(0.0, 0.2, (50, shape[0]))  # row voltages (V)
    current = v @ G  # ideal wires: I = v @ G (DESIGN.md section 4)
    diff = current[:, 0::2] - current[:, 1::2]
    expected = expected_scale * (v @ W)
    assert np.max(np.abs(diff - expected)) <= DIFF_RTOL * np.abs(expected).max()


def test_conductances_stay_in_range_and_the_largest_weight_uses_it_all(rng):
    W = _weights(rng)
    i, k = np.unravel_index(np.argmax(np.abs(W)), W.shape)
    for w in (W, -W):  # the extreme weight positive, then negative
        G, _ = layer_conductances(w, DEVICE)
        assert G.min() >= DEVICE.g_off and G.max() <= DEVICE.g_on
        hot, cold = (2 * k, 2 * k + 1) if w[i, k] > 0 else (2 * k + 1, 2 * k)
        np.testing.assert_allclose(G[i, hot], DEVICE.g_on, rtol=G_RTOL)
        assert G[i, cold] == DEVICE.g_off
        # exactly one device of every pair is programmed away from g_off
        assert np.all((G[:, 0::2] == DEVICE.g_off) | (G[:, 1::2] == DEVICE.g_off))


def test_zero_weights_give_g_off_everywhere():
    G, _ = layer_conductances(np.zeros((4, 3)), DEVICE)
    assert np.all(G == DEVICE.g_off)


def test_non_finite_weights_raise():
    W = np.ones((4, 3))
    W[1, 2] = np.nan
    with pytest.raises(ConfigError, match="NaN or inf"):
        layer_conductances(W, DEVICE)


@pytest.mark.parametrize("levels", [2, 3, 16])
def test_quantized_conductances_use_at_most_levels_values_on_the_grid(rng, levels):
    device = DeviceConfig(levels=levels)
    W = _weights(rng)
    G, _ = layer_conductances(W, device)
    assert len(np.unique(G)) <= levels
    step = (device.g_on - device.g_off) / (levels - 1)
    k = (G - device.g_off) / step
    np.testing.assert_allclose(k, np.round(k), atol=GRID_INDEX_ATOL)  # on the grid g_off + k * step
    assert G.min() >= device.g_off and G.max() <= device.g_on
    np.testing.assert_allclose(G.max(), device.g_on, rtol=G_RTOL)
    # each conductance is the grid level nearest to its continuous value
    G_cont, _ = layer_conductances(W, DEVICE)
    assert np.all(np.abs(G - G_cont) <= step / 2 * (1 + GRID_HALF_STEP_SLACK))


def test_continuous_devices_are_not_quantized(rng):
    G = rng.uniform(1e-6, 1e-4, (5, 5))
    assert quantize(G, DeviceConfig(levels=0)) is G


# ---- tiling -------------------------------------------------------------------------

def _check_tiling(n_in, n_pairs, max_rows, max_cols):
    n_cols = 2 * n_pairs
    parts = tiles(n_in, n_cols, max_rows, max_cols)
    cover = np.zeros((n_in, n_cols), dtype=int)
    for rows, cols in parts:
        assert rows.step in (None, 1) and cols.step in (None, 1)
        h, w = rows.stop - rows.start, cols.stop - cols.start
        assert 1 <= h <= max_rows and 2 <= w <= max_cols
        assert cols.start % 2 == 0 and w % 2 == 0  # a pair (2k, 2k+1) never straddles tiles
        cover[rows, cols] += 1
    assert np.all(cover == 1)  # every cell exactly once
    # no more tiles than needed: ceil(n_in / max_rows) x ceil(n_pairs / (max_cols / 2))
    assert len(parts) == -(-n_in // max_rows) * -(-n_pairs // (max_cols // 2))
    return parts


@settings(max_examples=200, deadline=None)
@given(n_in=st.integers(1, 300), n_pairs=st.integers(1, 150),
       max_rows=st.integers(1, 128), half_cols=st.integers(1, 64))
def test_tiles_cover_every_cell_once_and_respect_max_sizes(n_in, n_pairs, max_rows, half_cols):
    _check_tiling(n_in, n_pairs, max_rows, 2 * half_cols)


@pytest.mark.parametrize(("n_in", "n_pairs", "max_rows", "max_cols", "n_tiles"), [
    (64, 8, 64, 32, 1),    # paper layer 0 on one 64x16 array
    (784, 256, 128, 128, 28),  # large preset layer 0: 7 x 4 arrays (presets/large.toml)
    (256, 10, 128, 128, 2),    # large preset layer 1
    (64, 8, 16, 4, 16),    # 4 row blocks x 4 pair blocks
    (1, 1, 1, 2, 1),       # a single pair
])
def test_tile_counts_of_named_layouts(n_in, n_pairs, max_rows, max_cols, n_tiles):
    assert len(_check_tiling(n_in, n_pairs, max_rows, max_cols)) == n_tiles


def test_map_network_reassembles_every_layer(rng):
    weights = [_weights(rng, 20, 6), _weights(rng, 6, 5)]
    layout = map_network(weights, DEVICE, ArrayConfig(max_rows=8, max_cols=4))
    assert layout.layer_sizes == (20, 6, 5)
    for layer, W in enumerate(weights):
        G_full, g_scale = layer_conductances(W, DEVICE)
        assert layout.g_scales[layer] == g_scale
        rebuilt = np.full(G_full.shape, np.nan)
        for spec in layout.arrays:
            if spec.layer == layer:
                assert spec.shape[0] <= 8 and spec.shape[1] <= 4
                rebuilt[spec.rows, spec.cols] = spec.G
        np.testing.assert_array_equal(rebuilt, G_full)
    # 20 rows -> 3 blocks; 6 pairs -> 3 blocks; then 1 x 3 blocks
    assert len(layout.arrays) == 3 * 3 + 1 * 3
    assert layout.arrays_of_layers(()) == list(range(12))
    assert layout.arrays_of_layers((1,)) == [9, 10, 11]
    with pytest.raises(ConfigError, match=r"defects\.layers \[2\] out of range.*2 layers"):
        layout.arrays_of_layers((2,))

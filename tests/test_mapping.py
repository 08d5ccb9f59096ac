"""Weights -> differential conductance pairs -> tiles (yieldmc.mapping).

Every expected value is computed here from the definitions in the mapping module's
docstring (DESIGN.md section 5), not by the functions under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tolerances import ARITHMETIC_RTOL, DIFF_RTOL, G_RTOL, GRID_HALF_STEP_SLACK, GRID_INDEX_ATOL
from yieldmc.config import ArrayConfig, DeviceConfig, MappingConfig
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


# ---- midrange scheme (issue 14 item 4) ------------------------------------------------------

@pytest.mark.parametrize("shape", [(64, 8), (8, 10), (1, 1), (3, 7)])
def test_midrange_pair_current_difference_is_proportional_to_v_at_w(rng, shape):
    W = _weights(rng, *shape)
    G, g_scale = layer_conductances(W, DEVICE, "midrange")
    np.testing.assert_allclose(g_scale, (DEVICE.g_on - DEVICE.g_off) / np.abs(W).max(), rtol=G_RTOL)
    g_mid = (DEVICE.g_on + DEVICE.g_off) / 2
    np.testing.assert_allclose(G[:, 0::2] + G[:, 1::2], 2 * g_mid, rtol=G_RTOL)  # symmetric about g_mid
    assert G.min() >= DEVICE.g_off and G.max() <= DEVICE.g_on
    v = rng.uniform(0.0, 0.2, (50, shape[0]))
    current = v @ G  # ideal wires
    diff = current[:, 0::2] - current[:, 1::2]
    expected = g_scale * (v @ W)
    assert np.max(np.abs(diff - expected)) <= DIFF_RTOL * np.abs(expected).max()


def test_midrange_makes_stuck_on_and_stuck_off_symmetric(rng):
    g_mid = (DEVICE.g_on + DEVICE.g_off) / 2
    # a cell at g_mid (weight 0) moves by the same amount stuck ON as stuck OFF
    G0, _ = layer_conductances(np.array([[0.0, 1.0]]), DEVICE, "midrange")
    np.testing.assert_allclose(G0[0, :2], g_mid, rtol=G_RTOL)
    np.testing.assert_allclose(abs(DEVICE.g_on - G0[0, 0]), abs(DEVICE.g_off - G0[0, 0]), rtol=G_RTOL)
    # per pair, sticking both cells ON moves the conductances as much as sticking them OFF ...
    W = _weights(rng)
    G, _ = layer_conductances(W, DEVICE, "midrange")
    on = (DEVICE.g_on - G[:, 0::2]) + (DEVICE.g_on - G[:, 1::2])
    off = (G[:, 0::2] - DEVICE.g_off) + (G[:, 1::2] - DEVICE.g_off)
    np.testing.assert_allclose(on, off, rtol=G_RTOL)
    # ... while the differential scheme, most cells at g_off, is far from it
    Gd, _ = layer_conductances(W, DEVICE, "differential")
    on_d = (DEVICE.g_on - Gd[:, 0::2]) + (DEVICE.g_on - Gd[:, 1::2])
    off_d = (Gd[:, 0::2] - DEVICE.g_off) + (Gd[:, 1::2] - DEVICE.g_off)
    assert on_d.mean() > 5 * off_d.mean()


def test_unknown_scheme_raises():
    with pytest.raises(ConfigError, match="mapping.scheme 'half'"):
        layer_conductances(np.ones((2, 2)), DEVICE, "half")


def test_default_mapping_is_todays(rng):
    weights = [_weights(rng, 20, 6), _weights(rng, 6, 5)]
    a = map_network(weights, DEVICE, ArrayConfig(max_rows=8, max_cols=4))
    b = map_network(weights, DEVICE, ArrayConfig(max_rows=8, max_cols=4), MappingConfig(), [np.ones(6), np.ones(5)])
    assert a.g_scales == b.g_scales and a.layer_sizes == b.layer_sizes == (20, 6, 5)
    assert not a.bias_row and a.drift == 1.0 and a.scheme == "differential"
    for x, y in zip(a.arrays, b.arrays, strict=True):
        assert (x.rows, x.cols) == (y.rows, y.cols)
        np.testing.assert_array_equal(x.G, y.G)


# ---- bias row -------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["differential", "midrange"])
def test_bias_row_currents_reproduce_h_at_w_plus_b(rng, scheme):
    weights = [_weights(rng, 20, 6), _weights(rng, 6, 5)]
    biases = [rng.normal(0.0, 2.0, 6), np.array([9.0, -1.0, 0.5, -12.0, 2.0])]  # |b| > max|W| in layer 1
    arrays = ArrayConfig(max_rows=8, max_cols=4, v_read=0.2)
    layout = map_network(weights, DEVICE, arrays, MappingConfig(scheme=scheme, bias_row=True), biases)
    assert layout.bias_row and layout.layer_sizes == (20, 6, 5)
    assert [layout.layer_rows(layer) for layer in (0, 1)] == [21, 7]
    for layer, (W, b) in enumerate(zip(weights, biases, strict=True)):
        # max|W| covers the bias row
        expected_scale = (DEVICE.g_on - DEVICE.g_off) / max(np.abs(W).max(), np.abs(b).max())
        np.testing.assert_allclose(layout.g_scales[layer], expected_scale, rtol=G_RTOL)
        specs = [s for s in layout.arrays if s.layer == layer]
        assert max(s.rows.stop for s in specs) == W.shape[0] + 1  # the tiles cover n_in + 1 rows
        h = rng.uniform(0.0, 1.0, (30, W.shape[0]))
        v = arrays.v_read * h
        v_aug = layout.layer_inputs(layer, v)
        assert v_aug.shape == (30, W.shape[0] + 1)
        np.testing.assert_array_equal(v_aug[:, :-1], v)
        assert np.all(v_aug[:, -1] == arrays.v_read)  # the bias row is last, driven at v_read
        current = np.zeros((30, 2 * W.shape[1]))
        for s in specs:
            current[:, s.cols] += v_aug[:, s.rows] @ s.G  # ideal wires
        diff = current[:, 0::2] - current[:, 1::2]
        expected = expected_scale * arrays.v_read * (h @ W + b)
        assert np.max(np.abs(diff - expected)) <= DIFF_RTOL * np.abs(expected).max()
        np.testing.assert_array_equal(layout.periphery_biases(biases)[layer], np.zeros_like(b))


def test_without_a_bias_row_the_helpers_change_nothing(rng):
    weights, biases = [_weights(rng, 6, 3)], [np.array([1.0, -2.0, 0.5])]
    layout = map_network(weights, DEVICE, ArrayConfig())
    v = rng.uniform(0.0, 0.2, (4, 6))
    np.testing.assert_array_equal(layout.layer_inputs(0, v), v)
    np.testing.assert_array_equal(layout.periphery_biases(biases)[0], biases[0])
    assert layout.layer_rows(0) == 6
    with pytest.raises(ConfigError, match="layer 0 takes 6 inputs"):
        layout.layer_inputs(0, v[:, :5])


def test_a_bias_row_needs_the_biases(rng):
    with pytest.raises(ConfigError, match="bias_row = true needs the network's biases"):
        map_network([_weights(rng, 6, 3)], DEVICE, ArrayConfig(), MappingConfig(bias_row=True))


# ---- drift ----------------------------------------------------------------------------------

def test_drift_scales_every_mapped_conductance_and_keeps_the_scales(rng):
    weights = [_weights(rng, 20, 6), _weights(rng, 6, 5)]
    drifted = DeviceConfig(drift_nu=0.05, drift_t0=20.0, read_time=86400.0)
    f = (86400.0 / 20.0) ** -0.05
    a = map_network(weights, DEVICE, ArrayConfig(max_rows=8, max_cols=4))
    b = map_network(weights, drifted, ArrayConfig(max_rows=8, max_cols=4))
    np.testing.assert_allclose(b.drift, f, rtol=ARITHMETIC_RTOL)
    assert a.g_scales == b.g_scales  # the periphery was set up at t0
    for x, y in zip(a.arrays, b.arrays, strict=True):
        np.testing.assert_allclose(y.G, f * x.G, rtol=ARITHMETIC_RTOL, atol=0)
    # a cell programmed to g_off drifts below it: physical, not clipped back
    assert min(s.G.min() for s in b.arrays) < DEVICE.g_off
    np.testing.assert_allclose(min(s.G.min() for s in b.arrays), f * DEVICE.g_off, rtol=ARITHMETIC_RTOL)

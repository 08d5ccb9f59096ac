"""The realistic die's effects, seen from the die (docs/circuit.md section 9, docs/die.md).

Each effect of the ``realistic`` preset is switched on alone on the ``paper`` die and checked
against what it must do to the die's outputs or conductances:

* bias row: with ideal wires the die still computes ``output_gain * network.forward(x)``, the
  arrays gain one row, and a defect on that row reaches the outputs;
* read noise: a function of ``(seed, die)``, absent when its settings are 0, and of the size
  that first-order propagation of the cells' fluctuations through the network predicts;
* output rail: outputs clipped at ``+-output_rail``, the others untouched;
* drift: programmed conductances scaled by the drift factor, stuck cells exactly at
  ``g_on`` / ``g_off``, programming noise clipped to the drifted range;
* the sweep: the realistic preset falls back to the reference engine and its dies do not
  depend on the worker count.

The network is the session's (``network_cache``), trained at most once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.tolerances import G_RTOL, IDEAL_RTOL
from yieldmc import schema
from yieldmc.config import load_config
from yieldmc.defects import STUCK_OFF, STUCK_ON
from yieldmc.die import DieModel
from yieldmc.errors import ConfigError
from yieldmc.montecarlo import effective_engine, run_sample
from yieldmc.network import ACTIVATIONS
from yieldmc.readout import ReadNoise, column_noise_std, drift_factor, read_noise_generator, thermal_psd
from yieldmc.store import load_dies, load_voltages

IDEAL = {"wires.r_row": 0.0, "wires.r_col": 0.0, "wires.r_driver": 0.0, "wires.r_sense": 0.0}
NO_DEFECTS = {"defects.kind": "none"}
#: The realistic preset's bias row: one more row per layer, 65 rows keep layer 0 on one array.
BIAS_ROW = {"mapping.bias_row": True, "arrays.max_rows": 65}
#: The realistic preset's read noise (2 % of G per read) and Johnson noise (1 MHz, 300 K).
READ_NOISE = {"device.read_noise": 0.02, "device.read_bandwidth": 1e6}
#: The realistic preset's drift: read one day after programming, nu = 0.01 (factor 0.893).
DRIFT = {"device.drift_nu": 0.01, "device.drift_t0": 1.0, "device.read_time": 86400.0}
#: Repeated reads of one image for the read-noise statistics.
N_READS = 400
#: Empirical std of an output over N_READS reads vs its first-order prediction: the sampling
#: error of a std from 400 normal draws is 1 / sqrt(2 * 400) = 3.5 %, so 20 % is more than 5
#: of its standard deviations plus the second-order terms of the logistic neurons (2 % noise).
NOISE_STD_BOUND = 0.20


@pytest.fixture(scope="module")
def paper(network_cache) -> DieModel:
    """The paper die, built on the session's network cache."""
    return DieModel.build(load_config("paper"), cache_dir=network_cache)


def variant(model: DieModel, **changes) -> DieModel:
    """The same network and data on a changed design (no retraining)."""
    return DieModel(model.config.replace(**changes), model.network, model.dataset)


def rel_dev(a, ref) -> float:
    return float(np.max(np.abs(a - ref)) / np.max(np.abs(ref)))


def healthy(model: DieModel) -> list[np.ndarray]:
    """All-zero masks: a die without a stuck cell."""
    return [np.zeros(s, dtype=np.int8) for s in model.layout.shapes]


# ---- bias row --------------------------------------------------------------------------------

def test_the_bias_row_die_with_ideal_wires_computes_the_software_network(paper):
    model = variant(paper, **IDEAL, **NO_DEFECTS, **BIAS_ROW)
    x, _ = model.images("test")
    (out,), summary = model.mask_outputs(healthy(model), [x])
    ref = model.config.arrays.output_gain * model.network.forward(x)
    assert rel_dev(out, ref) <= IDEAL_RTOL
    without = variant(paper, **IDEAL, **NO_DEFECTS)
    assert rel_dev(out, without.forward(without.T0, x)) <= IDEAL_RTOL
    # the periphery adds no bias: the network's biases really are in the arrays
    assert all(not b.any() for b in model.layout.periphery_biases(model.network.biases))
    assert any(b.any() for b in without.layout.periphery_biases(without.network.biases))


def test_the_bias_row_is_one_more_row_of_every_layer(paper):
    with_row, without = variant(paper, **BIAS_ROW), variant(paper, **{"arrays.max_rows": 65})
    assert len(with_row.layout.shapes) == len(without.layout.shapes) == 4
    for (r1, c1), (r0, c0) in zip(with_row.layout.shapes, without.layout.shapes, strict=True):
        assert (r1, c1) == (r0 + 1, c0)
    assert with_row.layout.shapes[0] == (65, 16) and without.layout.shapes[0] == (64, 16)
    # the bias row's cells are mapped: some differ from g_off (the biases are not all 0)
    g_off = paper.config.device.g_off
    assert all((spec.G[-1] > g_off).any() for spec in with_row.layout.arrays)


def test_a_stuck_on_cell_on_the_bias_row_moves_its_output_by_the_expected_logit(paper):
    model = variant(paper, **IDEAL, **NO_DEFECTS, **BIAS_ROW)
    x, _ = model.images("test")
    masks = healthy(model)
    last = len(masks) - 1  # the output layer's array
    col = 4  # G+ of output 2 (physical columns alternate G+, G-)
    masks[last][-1, col] = STUCK_ON
    (base,), _ = model.mask_outputs(healthy(model), [x])
    (hit,), summary = model.mask_outputs(masks, [x])
    assert summary["n_stuck_on"] == 1 and summary["layers_affected"] == [last]
    arr = model.config.arrays
    g_on, G = model.config.device.g_on, model.layout.arrays[last].G[-1, col]
    # ideal wires: the bias cell adds (g_on - G) v_read to I+ of output 2, i.e. a logit step of
    # (g_on - G) / g_scale at every image; the other outputs do not move
    step = arr.output_gain * (g_on - G) / model.layout.g_scales[last]
    delta = hit - base
    assert step > 0.1 * np.abs(base).max()  # a real change of the outputs
    assert rel_dev(delta[:, col // 2], np.full(len(x), step)) <= IDEAL_RTOL
    np.testing.assert_array_equal(np.delete(delta, col // 2, axis=1), 0.0)


def test_a_stuck_cell_on_the_bias_row_changes_the_die_but_without_it_there_is_no_such_row(paper):
    """With IR drop and the first layer's bias row stuck ON the outputs change; the same
    position (row 64 of layer 0) does not exist without the bias row: the masks are refused."""
    model = variant(paper, **NO_DEFECTS, **BIAS_ROW)
    x, _ = model.images("test")
    masks = healthy(model)
    masks[0][-1, :] = STUCK_ON
    (base,), _ = model.mask_outputs(healthy(model), [x])
    (hit,), _ = model.mask_outputs(masks, [x])
    assert rel_dev(hit, base) > 0.1
    plain = variant(paper, **NO_DEFECTS, **{"arrays.max_rows": 65})
    assert plain.layout.shapes[0][0] == masks[0].shape[0] - 1
    with pytest.raises(ConfigError, match="shape"):
        plain.mask_outputs(masks, [x])


# ---- read noise ------------------------------------------------------------------------------

def test_read_noise_is_a_function_of_seed_and_die(paper):
    model = variant(paper, **READ_NOISE)
    x, _ = model.images("test")
    first = model.simulate(3).outputs
    again = variant(paper, **READ_NOISE).simulate(3).outputs  # another instance, same die
    np.testing.assert_array_equal(first, again)
    (masked,), _ = model.mask_outputs(healthy(model), [x], die=3)
    (masked_again,), _ = model.mask_outputs(healthy(model), [x], die=3)
    np.testing.assert_array_equal(masked, masked_again)
    (other_die,), _ = model.mask_outputs(healthy(model), [x], die=4)
    assert not np.array_equal(masked, other_die)
    (other_seed,), _ = variant(paper, **READ_NOISE, seed=1).mask_outputs(healthy(model), [x], die=3)
    assert not np.array_equal(masked, other_seed)
    # and it is noise: the noiseless die differs from both, by little
    (quiet,), _ = paper.mask_outputs(healthy(paper), [x], die=3)
    assert 0 < rel_dev(masked, quiet) < 0.2


def test_without_read_noise_the_die_is_bit_identical_to_the_noiseless_forward(paper):
    realistic = load_config("realistic")
    model = DieModel(realistic.replace(**{"device.read_noise": 0.0, "device.read_bandwidth": 0.0}),
                     paper.network, paper.dataset)
    x, _ = model.images("test")
    transfers, _ = model.die_transfers(5)
    Gs, _, _ = model.die_conductances(5)
    assert model.read_noise(5, Gs) is None
    (out,), _ = model.die_outputs(5, [x])
    np.testing.assert_array_equal(out, model.forward(transfers, x))
    # a ReadNoise of zero size draws nothing and adds nothing
    rng = read_noise_generator(0, 5)
    np.testing.assert_array_equal(out, model.forward(transfers, x, noise=ReadNoise(Gs, 0.0, 0.0, rng)))
    assert rng.random() == read_noise_generator(0, 5).random()  # nothing was drawn
    # the same die with the realistic noise does differ; thermal noise alone too
    for noise in ({}, {"device.read_noise": 0.0}):
        noisy = DieModel(realistic.replace(**noise), paper.network, paper.dataset)
        assert not np.array_equal(noisy.die_outputs(5, [x])[0][0], out)


def first_order_output_std(model: DieModel, x: np.ndarray) -> np.ndarray:
    """Standard deviation of each output voltage of one image ``x`` (n_in,) from the read
    noise, propagated to first order through the network (ideal wires: ``T = G``).

    Each layer adds independent column-current noise (``column_noise_std`` of its array at its
    noiseless row voltages); ``z = (I+ - I-) / (g_scale v_read) + b`` passes the previous
    layer's voltage noise through ``W`` (the pair differences over ``g_scale``) and the
    neuron's slope ``v_read f'(z)``.
    """
    arr, dev, layout = model.config.arrays, model.config.device, model.layout
    act = ACTIVATIONS[model.network.activation]
    psd = thermal_psd(dev)
    v = x[None, :] * arr.v_read
    cov_v = np.zeros((v.shape[1], v.shape[1]))  # the images are exact
    for layer, spec in enumerate(layout.arrays):  # one array per layer here
        assert spec.layer == layer
        v_in = layout.layer_inputs(layer, v)
        G = spec.G
        scale = layout.g_scales[layer] * arr.v_read
        W = (G[:, 0::2] - G[:, 1::2]) / scale  # dz / dv_in (1/V), (rows, n_out)
        s = column_noise_std(G, v_in, dev.read_noise, psd)[0]  # (2 n_out,)
        own = (s[0::2] ** 2 + s[1::2] ** 2) / scale**2
        cov_in = np.pad(cov_v, (0, v_in.shape[1] - v.shape[1]))  # the bias row is exact
        cov_z = W.T @ cov_in @ W + np.diag(own)
        z = (v_in @ G[:, 0::2] - v_in @ G[:, 1::2]) / scale
        if layer < len(layout.arrays) - 1:
            h = 1e-6
            slope = arr.v_read * (act(z + h) - act(z - h)) / (2 * h)  # dv / dz
            cov_v = slope.T * cov_z * slope
            v = arr.v_read * act(z)
        else:
            return arr.output_gain * np.sqrt(np.diag(cov_z))
    raise AssertionError("no layer")


def test_read_noise_has_the_size_first_order_propagation_predicts(paper):
    model = variant(paper, **IDEAL, **NO_DEFECTS, **READ_NOISE, **BIAS_ROW)
    x, _ = model.images("test")
    image = x[7]
    transfers, _ = model.mask_transfers(healthy(model), die=0)
    Gs, _ = model.mask_conductances(healthy(model), die=0)
    noise = model.read_noise(0, Gs)
    # N_READS reads of one image: the batch's rows are independent reads of the die
    reads = model.forward(transfers, np.repeat(image[None, :], N_READS, axis=0), noise=noise)
    quiet = model.forward(transfers, image[None, :])
    predicted = first_order_output_std(model, image)
    measured = reads.std(axis=0, ddof=1)
    assert predicted.min() > 0
    np.testing.assert_array_less(np.abs(measured / predicted - 1), NOISE_STD_BOUND)
    # the reads are centred on the noiseless output (mean within 5 standard errors)
    se = predicted / np.sqrt(N_READS)
    np.testing.assert_array_less(np.abs(reads.mean(axis=0) - quiet[0]), 5 * se)
    # and repeated calls with one ReadNoise keep drawing: the next reads are new ones
    more = model.forward(transfers, np.repeat(image[None, :], 2, axis=0), noise=noise)
    assert not np.array_equal(more, reads[:2])


# ---- output rail -----------------------------------------------------------------------------

def test_the_output_rail_clips_and_leaves_the_rest_alone(paper):
    rail = 0.5
    bounded = variant(paper, **{"arrays.output_rail": rail})
    clipped = inside = 0
    for die in range(6):
        out = bounded.simulate(die).outputs
        free = paper.simulate(die).outputs
        assert np.abs(out).max() <= rail
        within = np.abs(free) < rail
        np.testing.assert_array_equal(out[within], free[within])
        np.testing.assert_array_equal(out[~within], np.sign(free[~within]) * rail)
        clipped += int(np.count_nonzero(~within))
        inside += int(np.count_nonzero(within))
    assert clipped > 0 and inside > 0  # both cases occur


# ---- drift -----------------------------------------------------------------------------------

def test_drift_scales_programmed_cells_and_leaves_stuck_cells_at_the_bounds(paper):
    drifted = variant(paper, **DRIFT)
    f = drift_factor(drifted.config.device)
    assert drifted.layout.drift == f and 0.89 < f < 0.90
    dev = paper.config.device
    n_stuck = 0
    for die in range(4):
        Gs, masks, _ = drifted.die_conductances(die)
        Gs0, masks0, _ = paper.die_conductances(die)
        for G, m, G0, m0 in zip(Gs, masks, Gs0, masks0, strict=True):
            np.testing.assert_array_equal(m, m0)  # drift draws nothing
            ok = m == 0
            np.testing.assert_allclose(G[ok], f * G0[ok], rtol=G_RTOL, atol=0)
            assert (G[m == STUCK_ON] == dev.g_on).all() and (G[m == STUCK_OFF] == dev.g_off).all()
            n_stuck += int(np.count_nonzero(~ok))
    assert n_stuck > 0
    # cells programmed at g_off drift below it
    assert (drifted.layout.arrays[0].G < dev.g_off).any()


def test_programming_noise_with_drift_stays_in_the_drifted_range(paper):
    noisy = variant(paper, **DRIFT, **{"device.programming_noise": 0.03})
    f = drift_factor(noisy.config.device)
    dev = paper.config.device
    lo, hi = f * dev.g_off, f * dev.g_on
    at_lo = moved = 0
    for die in range(4):
        Gs, masks, _ = noisy.die_conductances(die)
        for G, m, spec in zip(Gs, masks, noisy.layout.arrays, strict=True):
            ok = m == 0
            assert (G[ok] >= lo).all() and (G[ok] <= hi).all()
            assert (G[m == STUCK_ON] == dev.g_on).all() and (G[m == STUCK_OFF] == dev.g_off).all()
            at_lo += int(np.count_nonzero(G[ok] == lo))  # noise below g_off at t0 is clipped there
            moved += int(np.count_nonzero(G[ok] != spec.G[ok]))
    assert at_lo > 0 and moved > at_lo


# ---- engines and the sweep -------------------------------------------------------------------

def test_the_realistic_preset_falls_back_to_the_reference_engine():
    assert effective_engine("compiled", load_config("realistic")) == "reference"
    assert effective_engine("compiled", load_config("paper", overrides=DRIFT)) == "compiled"
    both = load_config("paper", overrides={**DRIFT, "device.programming_noise": 0.03})
    assert effective_engine("compiled", both) == "reference"


@pytest.fixture
def two_cores(monkeypatch):
    """Two workers really start, also on a one-core machine (where --jobs 2 is lowered to 1)."""
    import yieldmc.montecarlo as mc

    monkeypatch.setattr(mc, "available_cores", lambda: 2, raising=False)


def test_a_realistic_sweep_does_not_depend_on_the_worker_count(paper, network_cache, tmp_path, two_cores):
    config = load_config("realistic", overrides={"seed": 3})
    n = 6
    one = run_sample(config, n, tmp_path / "one", chunk_size=n, cache_dir=network_cache)
    two = run_sample(config, n, tmp_path / "two", jobs=2, chunk_size=2, backend="loky", cache_dir=network_cache)
    assert two["jobs"] == 2 and two["backend"] == "loky" and one["dies"] == two["dies"] == n
    tables = [load_dies(tmp_path / name).drop(columns=list(schema.EXECUTION_COLUMNS)) for name in ("one", "two")]
    pd.testing.assert_frame_equal(*tables, check_exact=True)
    volts = [load_voltages(tmp_path / name).voltages for name in ("one", "two")]
    assert np.array_equal(*volts)
    # the stored voltages are the die model's (float32 of the same float64 outputs)
    model = DieModel(config, paper.network, paper.dataset)
    x, _ = model.images("test")
    for d in range(n):
        (out,), _ = model.die_outputs(d, [x])
        np.testing.assert_array_equal(volts[0][d], out.astype(np.float32))
    assert tables[0]["accuracy"].nunique() > 1

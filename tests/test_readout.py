"""Drift, read noise, rails (yieldmc.readout) and the engine's scope for them.

Expected values come from the formulas in the readout module's docstring, computed here
independently (explicit loops, ``math``, a brute-force Monte Carlo of cell fluctuations).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.tolerances import ARITHMETIC_RTOL
from yieldmc.config import DeviceConfig, load_config
from yieldmc.engine.chunk import check_supported
from yieldmc.errors import ConfigError
from yieldmc.montecarlo import effective_engine
from yieldmc.readout import (
    K_BOLTZMANN,
    add_read_noise,
    column_noise_std,
    drift_factor,
    read_noise_generator,
    saturate,
    thermal_psd,
)
from yieldmc.rng import die_generator

# ---- drift ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("nu", "t0", "t"), [(0.05, 20.0, 3600.0), (0.01, 1.0, 86400.0), (0.1, 1.0, 1.0)])
def test_drift_factor_is_the_power_law(nu, t0, t):
    expected = math.exp(-nu * math.log(t / t0))  # (t / t0)^-nu
    got = drift_factor(DeviceConfig(drift_nu=nu, drift_t0=t0, read_time=t))
    np.testing.assert_allclose(got, expected, rtol=ARITHMETIC_RTOL)
    assert 0 < got <= 1


def test_no_drift_by_default():
    assert drift_factor(DeviceConfig()) == 1.0
    assert drift_factor(DeviceConfig(read_time=1e6)) == 1.0  # nu = 0: time does nothing


def test_a_negative_drift_exponent_is_a_config_error():
    with pytest.raises(ConfigError, match=r"^device\.drift_nu must be a finite number >= 0, got -0\.1$"):
        DeviceConfig(drift_nu=-0.1)
    with pytest.raises(ConfigError, match=r"device\.drift_nu"):
        load_config("paper", overrides={"device.drift_nu": -0.01})


def test_reads_before_the_drift_reference_time_are_refused():
    with pytest.raises(ConfigError, match=r"device\.read_time \(10 s\) must be >= device\.drift_t0 \(20 s\)"):
        DeviceConfig(drift_nu=0.05, drift_t0=20.0, read_time=10.0)
    DeviceConfig(drift_t0=20.0, read_time=10.0)  # without drift the times do not matter


# ---- read noise -----------------------------------------------------------------------------


def _loop_std(G, v, read_noise, psd):
    """sigma_j = sqrt(sum_i (read_noise G_ij v_i)^2 + sum_i psd G_ij), one term at a time."""
    M, N = G.shape
    out = np.empty((v.shape[0], N))
    for b in range(v.shape[0]):
        for j in range(N):
            var = 0.0
            for i in range(M):
                var += (read_noise * G[i, j] * v[b, i]) ** 2 + psd * G[i, j]
            out[b, j] = math.sqrt(var)
    return out


@pytest.mark.parametrize(("read_noise", "psd"), [(0.02, 0.0), (0.0, 1.6e-14), (0.05, 3e-13), (0.0, 0.0)])
def test_column_noise_std_matches_an_explicit_loop(rng, read_noise, psd):
    G = rng.uniform(1e-6, 1e-4, (7, 5))
    v = rng.uniform(0.0, 0.2, (4, 7))
    np.testing.assert_allclose(column_noise_std(G, v, read_noise, psd), _loop_std(G, v, read_noise, psd),
                               rtol=ARITHMETIC_RTOL, atol=0)
    np.testing.assert_allclose(column_noise_std(G, v[1], read_noise, psd),
                               _loop_std(G, v[1:2], read_noise, psd)[0], rtol=ARITHMETIC_RTOL, atol=0)


def test_column_noise_std_against_a_monte_carlo_of_cell_fluctuations():
    """Draw every cell's conductance fluctuation and Johnson current, sum each column: the
    sample standard deviation must match the formula within 5 standard errors."""
    rng = np.random.default_rng(11)
    M, N, n = 16, 6, 20000
    G = np.exp(rng.uniform(np.log(1e-6), np.log(1e-4), (M, N)))
    v = rng.uniform(0.0, 0.2, M)
    read_noise = 0.03
    # Johnson term of the same order as the read-noise term, so the test sees both
    psd = read_noise**2 * float(((v**2) @ (G**2)).mean() / G.sum(axis=0).mean())
    xi = rng.standard_normal((n, M, N))
    eta = rng.standard_normal((n, M, N))
    currents = np.einsum("i,kij->kj", v, G * (1.0 + read_noise * xi)) + (np.sqrt(psd * G) * eta).sum(axis=1)
    sample_std = currents.std(axis=0, ddof=1)
    ratio = sample_std / column_noise_std(G, v, read_noise, psd)
    # the sample std of n normal draws has relative standard error 1 / sqrt(2 (n - 1))
    assert np.all(np.abs(ratio - 1.0) <= 5.0 / math.sqrt(2 * (n - 1))), ratio
    # and the mean is the noiseless current (the fluctuations have mean 0)
    assert np.all(np.abs(currents.mean(axis=0) - v @ G) <= 5.0 * sample_std / math.sqrt(n))


def test_thermal_psd_is_four_k_t_bandwidth():
    dev = DeviceConfig(read_bandwidth=1e6, temperature=300.0)
    np.testing.assert_allclose(thermal_psd(dev), 4 * 1.380649e-23 * 300.0 * 1e6, rtol=ARITHMETIC_RTOL)
    assert K_BOLTZMANN == 1.380649e-23  # exact since the 2019 SI
    assert thermal_psd(DeviceConfig()) == 0.0


def test_column_noise_std_refuses_bad_shapes_and_negative_noise():
    with pytest.raises(ConfigError, match="G \\(M, N\\)"):
        column_noise_std(np.ones((3, 2)), np.ones((2, 4)), 0.1, 0.0)
    with pytest.raises(ConfigError, match=">= 0"):
        column_noise_std(np.ones((3, 2)), np.ones(3), -0.1, 0.0)


def test_read_noise_stream_is_keyed_and_leaves_other_draws_alone():
    first = read_noise_generator(3, 7).standard_normal(6)
    # other streams drawn from first, in any order, change nothing
    die_generator(3, 7).random(100)
    read_noise_generator(3, 8).standard_normal(50)
    np.testing.assert_array_equal(read_noise_generator(3, 7).standard_normal(6), first)
    # ... and it does not shift the die's own stream either
    a = die_generator(3, 7).random(5)
    read_noise_generator(3, 7).standard_normal(1000)
    np.testing.assert_array_equal(die_generator(3, 7).random(5), a)
    assert isinstance(read_noise_generator(0, 0).bit_generator, np.random.Philox)
    assert not np.array_equal(read_noise_generator(3, 8).standard_normal(6), first)
    assert not np.array_equal(read_noise_generator(4, 7).standard_normal(6), first)
    with pytest.raises(ConfigError):
        read_noise_generator(-1, 0)


def test_add_read_noise_draws_one_normal_per_read_and_column(rng):
    G = rng.uniform(1e-6, 1e-4, (5, 4))
    v = rng.uniform(0.0, 0.2, (3, 5))
    current = v @ G
    noisy = add_read_noise(current, G, v, 0.02, 1e-14, read_noise_generator(1, 2))
    z = read_noise_generator(1, 2).standard_normal((3, 4))
    np.testing.assert_allclose(noisy, current + column_noise_std(G, v, 0.02, 1e-14) * z,
                               rtol=ARITHMETIC_RTOL, atol=0)
    gen = read_noise_generator(1, 2)
    assert add_read_noise(current, G, v, 0.0, 0.0, gen) is current  # no noise: no draw
    np.testing.assert_array_equal(gen.standard_normal((3, 4)), z)


# ---- rails ----------------------------------------------------------------------------------


def test_saturate_clips_at_the_rails_and_zero_means_unbounded():
    out = np.array([[-0.9, -0.2, 0.0, 0.3, 1.5]])
    np.testing.assert_array_equal(saturate(out, 0.5), [[-0.5, -0.2, 0.0, 0.3, 0.5]])
    assert saturate(out, 0.0) is out
    with pytest.raises(ConfigError, match="output_rail"):
        saturate(out, -0.1)


# ---- the compiled engine's scope ------------------------------------------------------------


@pytest.mark.parametrize(("override", "pattern"), [
    ({"device.read_noise": 0.01}, r"device\.read_noise = 0\.01"),
    ({"device.read_bandwidth": 1e6}, r"device\.read_bandwidth = 1e\+06 Hz"),
    ({"mapping.bias_row": True}, r"mapping\.bias_row = true"),
    ({"arrays.output_rail": 0.5}, r"arrays\.output_rail = 0\.5 V"),
])
def test_the_compiled_engine_refuses_forward_pass_effects(override, pattern):
    cfg = load_config("paper", overrides={"defects.kind": "ring", **override})
    with pytest.raises(ConfigError, match=pattern + r": the compiled engine covers"):
        check_supported(cfg)
    assert effective_engine("compiled", cfg) == "reference"


@pytest.mark.parametrize("override", [{"mapping.scheme": "midrange"},
                                      {"device.drift_nu": 0.01, "device.read_time": 3600.0}])
def test_the_compiled_engine_takes_mapping_only_changes(override):
    cfg = load_config("paper", overrides={"defects.kind": "ring", **override})
    check_supported(cfg)  # they change the layout's conductances only
    assert effective_engine("compiled", cfg) == "compiled"


def test_the_realistic_preset_runs_on_the_reference_engine():
    assert effective_engine("compiled", load_config("realistic")) == "reference"

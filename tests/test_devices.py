"""Cell I-V models (yieldmc.devices) and their settings."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from tests.tolerances import ARITHMETIC_RTOL, CLOSED_FORM_RTOL
from yieldmc.config import DeviceConfig, load_config
from yieldmc.devices import LinearDevice, SinhDevice, device_from_config


def test_gap_and_conductance_are_inverse(rng):
    dev = SinhDevice(i0=2e-3, gap0=0.3, v0=0.4)
    gaps = rng.uniform(0.1, 1.7, 50)
    assert_allclose(dev.gap(dev.conductance(gaps)), gaps, rtol=CLOSED_FORM_RTOL)


def test_sinh_current_is_the_gap_model(rng):
    """I = i0 exp(-gap/gap0) sinh(V/v0), written out independently of the class."""
    i0, gap0, v0 = 1e-3, 0.25, 0.25
    dev = SinhDevice(i0, gap0, v0)
    gaps, V = rng.uniform(0.1, 1.7, 20), rng.uniform(-0.3, 0.3, 20)
    assert_allclose(dev.current(dev.conductance(gaps), V), i0 * np.exp(-gaps / gap0) * np.sinh(V / v0),
                    rtol=CLOSED_FORM_RTOL)
    # the small-signal slope at 0 V is G; at 0.2 V the current is sinh(0.8) / 0.8 = 1.11 x G V
    G = dev.conductance(1.0)
    assert dev.current(G, 1e-9) / 1e-9 == pytest.approx(G, rel=ARITHMETIC_RTOL)
    assert dev.current(G, 0.2) / (G * 0.2) == pytest.approx(np.sinh(0.8) / 0.8)


def test_linear_device_is_ohmic(rng):
    G, V = rng.uniform(1e-6, 1e-4, 5), rng.uniform(-0.2, 0.2, 5)
    assert_allclose(LinearDevice().current(G, V), G * V)


def test_default_gap_range_of_the_sinh_preset():
    """g_on = 1e-4 S and g_off = 1e-6 S need gaps 0.25 ln(40) and 0.25 ln(4000) nm."""
    cfg = load_config("paper", overrides={"device.model": "sinh"})
    gap_min, gap_max = cfg.device.gap_range
    assert gap_min == pytest.approx(0.25 * np.log(40))
    assert gap_max == pytest.approx(0.25 * np.log(4000))
    dev = device_from_config(cfg.device)
    assert isinstance(dev, SinhDevice) and not dev.is_linear
    assert dev.conductance(gap_min) == pytest.approx(cfg.device.g_on)
    assert dev.conductance(gap_max) == pytest.approx(cfg.device.g_off)


def test_linear_is_the_default_model():
    assert isinstance(device_from_config(DeviceConfig()), LinearDevice)
    assert load_config("paper").device.model == load_config("large").device.model == "linear"


def test_spice_elements_name_their_type():
    assert LinearDevice().spice_element("cell0_0", "a", "b", 1e-4).startswith("Rcell0_0 a b 10000")
    line = SinhDevice().spice_element("cell0_0", "a", "b", 1e-4)
    assert line.startswith("Bcell0_0 a b I=")
    assert "sinh(v(a,b)/0.25)" in line
    assert float(line.split("I=")[1].split("*")[0]) == 1e-4 * 0.25


def test_every_model_a_config_may_name_is_built():
    """config.DEVICE_MODELS names the models (config imports no device code); each has its class."""
    from yieldmc import devices
    from yieldmc.config import DEVICE_MODELS

    assert devices.DEVICE_MODELS is DEVICE_MODELS
    for name in DEVICE_MODELS:
        assert device_from_config(DeviceConfig(model=name)).name == name

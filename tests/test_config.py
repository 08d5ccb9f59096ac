"""Settings: presets, TOML round trip, overrides and validation messages (yieldmc.config).

Expected values come from DESIGN.md (sections 4-6) and the preset files' documented
contents, never from the code under test.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yieldmc.config import Config, MappingConfig, from_dict, load_config
from yieldmc.errors import ConfigError
from yieldmc.readout import drift_factor

# No tolerances: every comparison in this file is exact (settings are stored, not computed).


def _write(tmp_path, text: str, name: str = "user.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


# ---- presets ------------------------------------------------------------------------

def test_paper_preset_is_the_reference_die():
    """DESIGN.md section 4/5: 64-8-8-8-10 on digits, 1e-4/1e-6 S, 1 ohm wires, 0.2 V."""
    cfg = load_config("paper")
    assert cfg.name == "paper"
    assert (cfg.device.g_on, cfg.device.g_off) == (1e-4, 1e-6)
    assert (cfg.wires.r_row, cfg.wires.r_col, cfg.wires.r_driver, cfg.wires.r_sense) == (1.0, 1.0, 0.0, 0.0)
    assert cfg.network.dataset == "digits"
    assert cfg.network.hidden == (8, 8, 8)
    assert cfg.network.test_size == 180
    assert cfg.arrays.v_read == 0.2
    # one array per layer: the largest layer needs 64 rows x 16 physical columns
    assert cfg.arrays.max_rows >= 64 and cfg.arrays.max_cols >= 20


def test_large_preset_tiles_a_784_256_10_network():
    cfg = load_config("large")
    assert cfg.name == "large"
    assert cfg.network.upsample_to == 28
    assert cfg.network.hidden == (256,)
    assert (cfg.arrays.max_rows, cfg.arrays.max_cols) == (128, 128)
    # sections the large preset does not name keep the documented defaults
    assert (cfg.device.g_on, cfg.device.g_off, cfg.wires.r_row) == (1e-4, 1e-6, 1.0)


def test_unknown_preset_names_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown preset 'nope'.*paper.*large"):
        load_config("nope")


# ---- TOML round trip ----------------------------------------------------------------

@pytest.mark.parametrize("preset", ["paper", "large", "realistic"])
def test_toml_round_trip_of_presets(tmp_path, preset):
    cfg = load_config(preset)
    back = load_config(preset, _write(tmp_path, cfg.to_toml()))
    assert back == cfg


def test_toml_round_trip_of_a_non_default_config(tmp_path):
    cfg = load_config("paper").replace(**{
        "name": "my run", "seed": 7, "device.levels": 16, "device.programming_noise": 0.01,
        "wires.r_sense": 25.5, "network.hidden": [12, 6], "arrays.max_cols": 8,
        "defects.kind": "ring", "defects.severity": [0.0, 1.0], "defects.layers": [0, 2],
        "defects.on_mode": "pattern",
    })
    text = cfg.to_toml()
    tomllib.loads(text)  # valid TOML
    # read back on top of the *other* preset: every field is written, so nothing leaks in
    back = load_config("large", _write(tmp_path, text))
    assert back == cfg
    assert back.defects.severity == (0.0, 1.0) and back.defects.layers == (0, 2)


_plain_text = st.text(st.characters(min_codepoint=32, max_codepoint=0xFFFF,
                                    blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=40, deadline=None)
@given(name=_plain_text, seed=st.integers(0, 2**63 - 1),
       r=st.floats(0, 1e6, allow_nan=False), g_off=st.floats(1e-9, 1e-5),
       lo=st.floats(0, 1), width=st.floats(0, 1),
       layers=st.lists(st.integers(0, 5), max_size=3))
def test_toml_round_trip_property(name, seed, r, g_off, lo, width, layers):
    hi = min(1.0, lo + width)
    cfg = Config(name=name, seed=seed).replace(**{
        "wires.r_row": r, "device.g_off": g_off, "defects.severity": [lo, hi],
        "defects.layers": layers})
    assert from_dict(tomllib.loads(cfg.to_toml())) == cfg


def test_toml_round_trip_of_a_non_bmp_name():
    cfg = Config(name="run \U0001F600")
    assert from_dict(tomllib.loads(cfg.to_toml())) == cfg


# ---- overrides ----------------------------------------------------------------------

def test_replace_changes_only_the_named_fields():
    cfg = load_config("paper")
    new = cfg.replace(**{"wires.r_row": 2.5, "seed": 3})
    assert new.wires.r_row == 2.5 and new.seed == 3
    assert new.wires.r_col == cfg.wires.r_col
    assert dataclasses.replace(new, seed=cfg.seed, wires=cfg.wires) == cfg
    assert cfg.wires.r_row == 1.0  # the original is untouched (frozen)


def test_load_config_overrides_fields_the_preset_does_not_name():
    """The large preset has no [wires] table; an override must still reach it."""
    cfg = load_config("large", overrides={"wires.r_col": 3.0, "defects.kind": "row"})
    assert cfg.wires.r_col == 3.0 and cfg.defects.kind == "row"
    assert cfg.network.hidden == (256,)


def test_user_toml_overriding_one_field_keeps_the_presets_others(tmp_path):
    path = _write(tmp_path, "[wires]\nr_row = 2\n")  # an int for a float setting is accepted
    cfg = load_config("large", path)
    assert cfg.wires.r_row == 2.0 and isinstance(cfg.wires.r_row, float)
    assert cfg.wires.r_col == 1.0
    assert cfg.network.hidden == (256,) and cfg.network.upsample_to == 28
    assert (cfg.arrays.max_rows, cfg.arrays.max_cols) == (128, 128)


def test_overrides_apply_after_the_user_file(tmp_path):
    path = _write(tmp_path, "seed = 5\n[wires]\nr_row = 2.0\n")
    cfg = load_config("paper", path, overrides={"wires.r_row": 4.0})
    assert cfg.wires.r_row == 4.0 and cfg.seed == 5


# ---- unknown names ------------------------------------------------------------------

@pytest.mark.parametrize(("overrides", "pattern"), [
    ({"wires.r_rw": 1.0}, r"unknown setting 'wires\.r_rw'"),
    ({"wire.r_row": 1.0}, r"no section 'wire'"),
    ({"colour": "red"}, r"unknown setting 'colour'"),
])
def test_unknown_override_names_raise(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config("paper", overrides=overrides)
    with pytest.raises(ConfigError, match=pattern):
        load_config("paper").replace(**overrides)


@pytest.mark.parametrize(("text", "pattern"), [
    ("[wires]\nr_rw = 1.0\n", r"unknown setting\(s\) in \[wires\]: r_rw; valid: r_row, r_col"),
    ("[wire]\nr_row = 1.0\n", r"unknown top-level setting\(s\): wire; valid:.*wires"),
    ("wires = 3\n", r"\[wires\] must be a table"),
    ("[device]\nlevels = \"many\"\n", r"device\.levels must be of type int"),
    ("[defects]\nseverity = 0.1\n", r"defects\.severity must be a list"),
    ("[wires\nr_row = 1\n", r"not valid TOML"),
])
def test_bad_user_files_raise_with_the_setting_named(tmp_path, text, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config("paper", _write(tmp_path, text))


def test_missing_and_binary_config_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("paper", tmp_path / "absent.toml")
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage\x80")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config("paper", binary)


# ---- invalid values -----------------------------------------------------------------

@pytest.mark.parametrize(("overrides", "pattern"), [
    ({"device.g_off": 1e-3}, r"device\.g_off .* must be below device\.g_on"),
    ({"device.g_off": 1e-4}, r"device\.g_off .* must be below device\.g_on"),  # equal
    ({"device.g_on": -1e-4}, r"device\.g_on must be a finite number > 0"),
    ({"device.levels": 1}, r"device\.levels must be 0 .* or an integer >= 2"),
    ({"device.model": "memristor"}, r"device\.model 'memristor' is not available; valid: linear, sinh"),
    ({"device.model": "sinh", "device.v0": 0.0}, r"device\.v0 must be a finite number > 0"),
    ({"device.model": "sinh", "device.i0": -1e-3}, r"device\.i0 must be a finite number > 0"),
    ({"device.model": "sinh", "device.g_on": 5e-3}, r"g_on < i0 / v0 = 0\.004 S"),
    ({"wires.r_row": -1.0}, r"wires\.r_row must be a finite number >= 0, got -1\.0"),
    ({"wires.r_col": float("inf")}, r"wires\.r_col must be a finite number"),
    ({"wires.r_sense": float("nan")}, r"wires\.r_sense must be a finite number"),
    ({"arrays.max_cols": 7}, r"arrays\.max_cols must be an even integer >= 2"),
    ({"arrays.max_cols": 0}, r"arrays\.max_cols must be an even integer >= 2"),
    ({"arrays.max_rows": 0}, r"arrays\.max_rows must be a positive integer"),
    ({"arrays.v_read": 0.0}, r"arrays\.v_read must be a finite number > 0"),
    ({"defects.severity": [0.2, 1.5]}, r"defects\.severity must be \[\] or \[lo, hi\]"),
    ({"defects.severity": [-0.1, 0.5]}, r"defects\.severity must be \[\] or \[lo, hi\]"),
    ({"defects.severity": [0.5, 0.1]}, r"0 <= lo <= hi <= 1, got \[0\.5, 0\.1\]"),
    ({"defects.severity": [0.1]}, r"defects\.severity must be \[\] or \[lo, hi\]"),
    ({"defects.on_fraction": 1.5}, r"defects\.on_fraction must be in \[0, 1\]"),
    ({"defects.on_mode": "die"}, r"defects\.on_mode must be one of cell, pattern"),
    ({"defects.kind": "scratch"}, r"unknown defect kind 'scratch'; valid: circular"),
    ({"defects.layers": [-1]}, r"defects\.layers must be layer indices >= 0"),
    ({"defects.layers": ["first"]}, r"defects\.layers must be layer indices >= 0"),
    ({"network.hidden": []}, r"network\.hidden must be a non-empty list"),
    ({"network.hidden": [8, 0]}, r"network\.hidden must be a non-empty list of positive integers"),
    ({"network.dataset": "cifar"}, r"network\.dataset must be 'digits' or 'mnist'"),
    ({"network.dataset": "mnist"}, r"needs network\.data_path"),
    ({"network.test_size": 0}, r"network\.test_size must be a positive integer"),
    ({"seed": -1}, r"seed must be an integer >= 0"),
    ({"device.drift_nu": -0.1}, r"device\.drift_nu must be a finite number >= 0, got -0\.1"),
    ({"device.drift_t0": 0.0}, r"device\.drift_t0 must be a finite number > 0"),
    ({"device.drift_nu": 0.1, "device.read_time": 0.5}, r"device\.read_time \(0\.5 s\) must be >= device\.drift_t0"),
    ({"device.read_noise": -0.01}, r"device\.read_noise must be a finite number >= 0"),
    ({"device.read_bandwidth": -1.0}, r"device\.read_bandwidth must be a finite number >= 0"),
    ({"device.temperature": 0.0}, r"device\.temperature must be a finite number > 0"),
    ({"arrays.output_rail": -0.5}, r"arrays\.output_rail must be a finite number >= 0"),
    ({"mapping.scheme": "offset"}, r"mapping\.scheme 'offset' is not available; valid: differential, midrange"),
])
def test_invalid_values_raise_a_helpful_config_error(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config("paper", overrides=overrides)


def test_non_numeric_severity_is_a_config_error():
    try:
        load_config("paper", overrides={"defects.severity": ["a", "b"]})
    except ConfigError:
        return
    except Exception as exc:  # the bug: a plain ValueError escapes
        pytest.fail(f"raised {type(exc).__name__}, not ConfigError: {exc}")
    pytest.fail("no error raised")


@pytest.mark.parametrize("text", ["seed = true\n", "[defects]\nlayers = [true]\n"])
def test_booleans_are_not_integers(tmp_path, text):
    with pytest.raises(ConfigError):
        load_config("paper", _write(tmp_path, text))


def test_config_error_is_a_value_error():
    """Callers that catch ValueError keep working."""
    with pytest.raises(ValueError):
        load_config("paper", overrides={"wires.r_row": -1.0})


# ---- settings added after run format 2: [mapping], drift, read noise, rails ---------------

DATA = Path(__file__).parent / "data"
NEW = {"mapping.scheme": "midrange", "mapping.bias_row": True, "device.drift_nu": 0.02,
       "device.drift_t0": 20.0, "device.read_time": 3600.0, "device.read_noise": 0.01,
       "device.read_bandwidth": 1e6, "device.temperature": 350.0, "arrays.output_rail": 0.4}


def test_toml_round_trip_of_the_new_settings(tmp_path):
    cfg = load_config("paper").replace(**NEW)
    text = cfg.to_toml()
    assert "[mapping]" in text and 'scheme = "midrange"' in text and "bias_row = true" in text
    assert from_dict(tomllib.loads(text)) == cfg
    back = load_config("large", _write(tmp_path, text))
    assert back == cfg
    assert back.mapping == MappingConfig(scheme="midrange", bias_row=True)
    assert (back.device.drift_nu, back.device.read_time, back.arrays.output_rail) == (0.02, 3600.0, 0.4)


def test_a_config_without_the_new_settings_writes_none_of_them():
    data = load_config("paper").to_dict()
    assert "mapping" not in data and "wafer" not in data
    later = {"drift_nu", "drift_t0", "read_time", "read_noise", "read_bandwidth", "temperature"}
    assert not later & set(data["device"])
    assert "output_rail" not in data["arrays"]
    assert "[mapping]" not in load_config("paper").to_toml()
    # one new setting away from its default writes that setting only
    one = load_config("paper").replace(**{"device.read_noise": 0.01}).to_dict()
    assert one["device"]["read_noise"] == 0.01 and "drift_nu" not in one["device"] and "mapping" not in one


@pytest.mark.parametrize("run", sorted(p.name for p in DATA.glob("run-format2-*")))
def test_stored_runs_configs_are_written_back_identically(run):
    """--resume compares run.json's config with the config's to_dict: it must not change."""
    stored = json.loads((DATA / run / "run.json").read_text())["config"]
    assert from_dict(stored).to_dict() == stored


def test_mapping_bias_row_must_be_a_boolean(tmp_path):
    with pytest.raises(ConfigError, match=r"mapping\.bias_row must be of type bool"):
        load_config("paper", _write(tmp_path, "[mapping]\nbias_row = 1\n"))
    with pytest.raises(ConfigError, match=r"mapping\.bias_row must be true or false"):
        MappingConfig(bias_row=1)


def test_realistic_preset():
    paper, cfg = load_config("paper"), load_config("realistic")
    assert cfg.name == "realistic"
    assert cfg.network == paper.network  # the same trained network (training key)
    assert cfg.device.model == "linear"  # fast by default
    assert cfg.mapping == MappingConfig(scheme="differential", bias_row=True)
    assert cfg.device.programming_noise > 0 and cfg.device.read_noise > 0 and cfg.device.drift_nu > 0
    assert cfg.device.read_time == 86400.0  # read one day after programming
    assert 0 < cfg.arrays.output_rail < 1.0
    assert cfg.arrays.max_rows >= 65  # 64 inputs + the bias row on one array


def test_realistic_preset_gaps_lie_in_the_gap_models_window():
    """Stanford/PKU gap model: gaps between 0.1 and 1.7 nm (docs/circuit.md section 7)."""
    cfg = load_config("realistic", overrides={"device.model": "sinh"})
    lo, hi = cfg.device.gap_range
    assert 0.1 <= lo < hi <= 1.7
    # drift lowers conductances (widens gaps): the drifted g_off stays inside too
    g = drift_factor(cfg.device) * cfg.device.g_off
    assert cfg.device.gap0 * np.log(cfg.device.i0 / (cfg.device.v0 * g)) <= 1.7

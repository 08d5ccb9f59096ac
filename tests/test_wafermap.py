"""Wafer maps: WM-811K arrays, their files, radial and zone yields, pictures (yieldmc.wafermap)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from yieldmc.errors import ConfigError
from yieldmc.wafer import DensitySpec, WaferSpec, die_sites, sample_lots
from yieldmc.wafermap import (
    FAIL,
    NO_DIE,
    PASS,
    SIGNATURE_CLASSES,
    WM811K_CLASSES,
    ZONES,
    plot_wafer_maps,
    radial_yield,
    save_wm811k,
    wafer_map_arrays,
    zone_yield,
)


def _lots(signature: str = "none", n_wafers: int = 4, spec: WaferSpec | None = None, seed: int = 0,
          **kwargs) -> pd.DataFrame:
    spec = spec or WaferSpec()
    rows = sample_lots(spec, DensitySpec(d0=0.3, alpha=2.0, signature=signature, **kwargs), 1, n_wafers, seed)
    rows["passed"] = rows.n_defects == 0
    return rows


# ---- arrays -----------------------------------------------------------------------------

def test_codes_and_shape_on_the_full_grid():
    spec = WaferSpec()
    rows = _lots(spec=spec)
    maps = wafer_map_arrays(rows, spec=spec)
    assert list(maps) == [0, 1, 2, 3]
    sites = die_sites(spec)
    for w, m in maps.items():
        assert m.shape == spec.grid_shape == (29, 29) and m.dtype == np.uint8
        one = rows[rows.wafer == w]
        want = np.full(spec.grid_shape, NO_DIE, dtype=np.uint8)
        want[one.y, one.x] = np.where(one.passed, PASS, FAIL)
        np.testing.assert_array_equal(m, want)
        assert (m > 0).sum() == len(sites)  # every die has a code; off-wafer sites are 0
        assert (m == FAIL).sum() == (~one.passed).sum()
    assert maps[0][0, 0] == NO_DIE  # a corner of the grid lies off the wafer


def test_dies_missing_from_the_table_are_no_die():
    spec = WaferSpec(diameter_mm=100)
    rows = _lots(spec=spec, n_wafers=2)
    part = rows[~((rows.wafer == 1) & (rows.die < 10))]
    maps = wafer_map_arrays(part, spec=spec)
    assert (maps[1] > 0).sum() == len(die_sites(spec)) - 10 and (maps[0] > 0).sum() == len(die_sites(spec))


def test_without_a_spec_the_grid_is_the_tables_bounding_box():
    df = pd.DataFrame({"wafer": ["a", "a", "b"], "x": [0, 3, 1], "y": [2, 0, 1], "passed": [True, False, False]})
    maps = wafer_map_arrays(df)
    assert list(maps) == ["a", "b"] and maps["a"].shape == maps["b"].shape == (3, 4)
    assert maps["a"][2, 0] == PASS and maps["a"][0, 3] == FAIL and maps["b"][1, 1] == FAIL
    assert (maps["a"] > 0).sum() == 2


def test_bad_tables_are_refused():
    df = pd.DataFrame({"wafer": [0, 0], "x": [1, 1], "y": [2, 2], "passed": [True, False]})
    with pytest.raises(ConfigError, match="more than once"):
        wafer_map_arrays(df)
    with pytest.raises(ConfigError, match="'passed'"):
        wafer_map_arrays(df.drop(columns="passed"))
    with pytest.raises(ConfigError, match="integers >= 0"):
        wafer_map_arrays(df.assign(x=[-1, 0]))
    with pytest.raises(ConfigError, match="die grid"):
        wafer_map_arrays(df.assign(x=[40, 0]), spec=WaferSpec())


# ---- files ------------------------------------------------------------------------------

def test_save_loads_back_and_refuses_to_overwrite(tmp_path):
    spec = WaferSpec(diameter_mm=100)
    rows = _lots("center", spec=spec)
    maps = wafer_map_arrays(rows, spec=spec)
    labels = {w: SIGNATURE_CLASSES[s] for w, s in rows.groupby("wafer").signature.first().items()}
    path = tmp_path / "maps.npz"
    save_wm811k(path, maps, labels=labels)
    with np.load(path) as f:
        assert set(f.files) == {"maps", "wafer", "failure_type"}
        np.testing.assert_array_equal(f["maps"], np.stack(list(maps.values())))
        assert f["maps"].dtype == np.uint8 and f["wafer"].tolist() == list(maps)
        assert f["failure_type"].tolist() == ["Center"] * 4
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_wm811k(path, {0: maps[0]})
    assert path.read_bytes() == before  # untouched
    save_wm811k(path, {0: maps[0]}, overwrite=True)
    with np.load(path) as f:
        assert f["maps"].shape == (1, *spec.grid_shape) and "failure_type" not in f.files
    assert os.listdir(tmp_path) == ["maps.npz"]  # no temporary file left behind


def test_save_refuses_bad_maps(tmp_path):
    good = np.zeros((3, 3), dtype=np.uint8)
    for maps, labels, match in [
        ({}, None, "no wafer maps"),
        ({0: good, 1: np.zeros((2, 3), dtype=np.uint8)}, None, "one shape"),
        ({0: good.astype(np.int64)}, None, "uint8"),
        ({0: good + 3}, None, "uint8"),
        ({0: good}, {0: "Blob"}, "WM-811K class"),
        ({0: good}, {1: "Center"}, "WM-811K class"),
    ]:
        with pytest.raises(ConfigError, match=match):
            save_wm811k(tmp_path / "x.npz", maps, labels=labels)
    assert not list(tmp_path.iterdir())
    assert set(SIGNATURE_CLASSES.values()) <= set(WM811K_CLASSES)


# ---- radial and zone yields -------------------------------------------------------------

def test_radial_yield_counts_every_die_once():
    rows = _lots()
    t = radial_yield(rows, bins=6)
    assert len(t) == 6 and t.n.sum() == len(rows) and t.n_pass.sum() == rows.passed.sum()
    np.testing.assert_allclose(t["yield"], t.n_pass / t.n)
    assert ((t.lo <= t["yield"]) & (t["yield"] <= t.hi)).all()
    edges = radial_yield(rows, bins=[0, 50, 100]).set_index("r_hi")
    inner = rows[rows.r_mm < 50]
    assert edges.loc[50.0, "n"] == len(inner) and edges.loc[50.0, "n_pass"] == inner.passed.sum()
    with pytest.raises(ConfigError, match="increasing"):
        radial_yield(rows, bins=[0, 50, 20])


@pytest.mark.parametrize(("signature", "worst"), [("center", "center"), ("edge_ring", "edge"), ("donut", "middle")])
def test_zone_yield_finds_the_signature(signature, worst):
    spec = WaferSpec()
    rows = _lots(signature, n_wafers=10, spec=spec, strength=8.0)
    zones = zone_yield(rows, radius_mm=spec.usable_radius_mm)
    assert list(zones.index) == [z for z, _ in ZONES] and zones.n.sum() == len(rows)
    assert zones["yield"].idxmin() == worst


def test_zones_hold_about_a_third_of_the_dies_each():
    rows = _lots(n_wafers=1)
    share = zone_yield(rows).n / len(rows)
    np.testing.assert_allclose(share, 1 / 3, atol=0.05)  # equal areas; the grid is coarse at the edge


# ---- pictures ---------------------------------------------------------------------------

def test_one_panel_per_wafer(tmp_path):
    spec = WaferSpec()
    rows = _lots("scratch", n_wafers=5, spec=spec)
    fig = plot_wafer_maps(rows, spec=spec)
    assert isinstance(fig, Figure) and len(fig.axes) == 5
    assert [a.get_title().split(":")[0] for a in fig.axes] == [f"wafer {w}" for w in range(5)]
    fig.savefig(tmp_path / "maps.png", dpi=40)
    assert (tmp_path / "maps.png").stat().st_size > 0
    rows["accuracy"] = np.where(rows.passed, 0.9, 0.2)
    fig = plot_wafer_maps(rows, "accuracy", ncols=2)
    panels = [a for a in fig.axes if a.get_label() != "<colorbar>"]
    assert len(panels) == 5 and len(fig.axes) == 6  # and one colour bar
    image = np.ma.filled(panels[0].get_images()[0].get_array(), np.nan)  # matplotlib masks the NaN
    assert np.isnan(image[0, 0]) and np.nanmax(image) == pytest.approx(0.9)


def test_plot_refuses_what_it_cannot_draw():
    rows = _lots(n_wafers=1, spec=WaferSpec(diameter_mm=100))
    with pytest.raises(ConfigError, match="'accuracy'"):
        plot_wafer_maps(rows, "accuracy")
    with pytest.raises(ConfigError, match="no wafers"):
        plot_wafer_maps(rows.iloc[:0])

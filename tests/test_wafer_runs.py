"""Runs whose dies lie on wafers (issue 15, items 1-2): settings, die order, hit arrays, engines.

A wafer run (``wafer.wafers > 0``) holds every die site of ``lots x wafers`` wafers. Die
``d``'s wafer columns are the wafer library's (:func:`yieldmc.wafer.sample_lots`, row
``d``), its defect count decides how many of its eligible arrays are hit, and a hit
array's cell-level defects are exactly those die ``d`` draws in a run without wafers.
Per-die results must be identical whatever the chunk size, worker count, backend or
engine (but ``solver_max_residual``, each route's own, and voltages within 1e-9).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.tolerances import VOLT_RTOL
from yieldmc import defects, schema, wafer
from yieldmc.config import WAFER_SIGNATURES, Config, WaferConfig, from_dict, load_config
from yieldmc.die import DieModel
from yieldmc.engine.sampling import die_masks, die_params, sample_chunk
from yieldmc.errors import ConfigError
from yieldmc.montecarlo import check_dies_count, run_sample
from yieldmc.rng import die_generator
from yieldmc.store import MANIFEST_FILE, RUN_FILE, load_dies, load_voltages, read_run_info
from yieldmc.waferdies import array_uniforms, hit_arrays, wafer_die_count, wafer_dies

#: A small wafer run: 60 mm wafers of 10 x 10 mm dies (13 sites each), 2 lots of 2 wafers,
#: a high density so that most dies have defects, some several.
SMALL = {"seed": 11, "wafer.wafers": 2, "wafer.lots": 2, "wafer.diameter_mm": 60.0, "wafer.d0": 1.5}
N_SMALL = 2 * 2 * 13


@pytest.fixture(autouse=True)
def _use_cache(network_cache, monkeypatch):
    monkeypatch.setenv("YIELDMC_CACHE", str(network_cache))


@pytest.fixture(scope="module")
def config():
    return load_config("paper", None, SMALL)


@pytest.fixture(scope="module")
def model(config, network_cache):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YIELDMC_CACHE", str(network_cache))
        return DieModel.build(config)


@pytest.fixture(scope="module")
def reference_run(config, network_cache, tmp_path_factory):
    """The small wafer run on the compiled engine, all dies in one chunk."""
    out = tmp_path_factory.mktemp("wafer") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YIELDMC_CACHE", str(network_cache))
        summary = run_sample(config, None, out, chunk_size=N_SMALL)
    return out, summary


def dies_table(out) -> pd.DataFrame:
    """Every column of a run's parts (read directly), sorted by die, without execution columns."""
    table = pq.read_table(out / "dies").sort_by("die")
    return schema.dies_to_pandas(table).drop(columns=list(schema.EXECUTION_COLUMNS))


# --- settings --------------------------------------------------------------------------------

def test_a_config_without_wafers_is_written_as_before():
    cfg = load_config("paper")
    assert cfg.wafer == WaferConfig() and not cfg.wafer.enabled
    assert "wafer" not in cfg.to_dict() and "[wafer]" not in cfg.to_toml()
    assert from_dict(cfg.to_dict()) == cfg


def test_wafer_settings_round_trip_and_take_overrides(tmp_path):
    cfg = load_config("paper", None, {"wafer.wafers": 25, "wafer.lots": 3, "wafer.die_w_mm": 8,
                                      "wafer.alpha": 0.0, "wafer.signature": "edge_ring"})
    assert cfg.wafer.wafers == 25 and cfg.wafer.die_w_mm == 8.0 and cfg.wafer.signature == "edge_ring"
    path = tmp_path / "w.toml"
    path.write_text(cfg.to_toml())
    assert "[wafer]" in path.read_text()
    assert load_config("paper", path) == cfg
    assert cfg.replace(**{"wafer.wafers": 0}).wafer.wafers == 0
    assert WAFER_SIGNATURES == wafer.SIGNATURES  # config names them without importing the wafer library


def test_wafer_config_builds_the_wafer_library_specs():
    w = WaferConfig(wafers=1, diameter_mm=200.0, die_w_mm=5.0, alpha=0.0, lot_alpha=4.0, signature="donut")
    assert w.spec() == wafer.WaferSpec(200.0, 5.0, 10.0, 3.0)
    dens = w.density()
    assert dens.alpha is None and dens.lot_alpha == 4.0 and dens.signature == "donut" and dens.strength == 5.0
    assert not dens.clustered and WaferConfig().density().clustered


@pytest.mark.parametrize("overrides, pattern", [
    ({"wafer.wafers": -1}, "wafer.wafers must be an integer >= 0"),
    ({"wafer.lots": 0}, "wafer.lots must be an integer >= 1"),
    ({"wafer.wafers": True}, "wafer.wafers must be of type int"),
    ({"wafer.d0": -0.1}, "wafer.d0 must be a finite number >= 0"),
    ({"wafer.alpha": -2.0}, "wafer.alpha must be a finite number >= 0"),
    ({"wafer.alpha": float("inf")}, "wafer.alpha must be a finite number >= 0"),
    ({"wafer.lot_alpha": -1.0}, "wafer.lot_alpha"),
    ({"wafer.diameter_mm": 0.0}, "wafer.diameter_mm must be a finite number > 0"),
    ({"wafer.die_h_mm": -10.0}, "wafer.die_h_mm"),
    ({"wafer.edge_exclusion_mm": -1.0}, "wafer.edge_exclusion_mm"),
    ({"wafer.signature": "spiral"}, "unknown wafer.signature 'spiral'; valid: none, center"),
    ({"wafer.signature_strength": -1.0}, "wafer.signature_strength"),
    ({"wafer.signature_prob": 1.5}, r"wafer.signature_prob must lie in \[0, 1\]"),
    ({"wafer.wafers": 2, "wafer.diameter_mm": 12.0}, "wafer smaller than a die"),
    ({"wafer.wafers": 2, "wafer.die_w_mm": 400.0}, "wafer smaller than a die"),
    ({"wafer.wafer": 2}, "unknown setting"),
])
def test_bad_wafer_settings_are_one_clear_config_error(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config("paper", None, overrides)


def test_the_number_of_dies(config):
    assert wafer_die_count(config) == N_SMALL == 2 * 2 * len(wafer.die_sites(config.wafer.spec()))
    assert wafer_die_count(Config()) == 0
    assert check_dies_count(config, None) == check_dies_count(config, N_SMALL) == N_SMALL
    with pytest.raises(ConfigError, match=r"--dies 50 does not match the wafers: 2 lot\(s\) x 2 wafer\(s\) x 13 dies "
                                          "= 52 dies; leave --dies out"):
        check_dies_count(config, 50)
    with pytest.raises(ConfigError, match="--dies N"):
        check_dies_count(Config(), None)
    with pytest.raises(ConfigError, match="positive integer"):
        check_dies_count(config, 0)
    big = load_config("paper", None, {"wafer.wafers": 25})  # the 300 mm wafer, 10 x 10 mm dies
    assert wafer_die_count(big) == 25 * 621


# --- die order, counts and hit arrays ----------------------------------------------------------

def test_die_order_and_counts_are_the_wafer_librarys(config, model):
    w = config.wafer
    rows = wafer.sample_lots(w.spec(), w.density(), w.lots, w.wafers, config.seed)
    got = wafer_dies(config, model.eligible, np.arange(N_SMALL))
    for name in ("lot", "wafer", "x", "y", "r_mm", "expected_defects", "n_defects"):
        np.testing.assert_array_equal(got.columns[name], rows[name].to_numpy(), err_msg=name)
    assert {k: v.dtype for k, v in got.columns.items()} == {
        "lot": np.int32, "wafer": np.int32, "x": np.int32, "y": np.int32, "r_mm": np.float64,
        "expected_defects": np.float64, "n_defects": np.int32}
    assert got.columns["n_defects"].max() >= 2 and (got.columns["n_defects"] == 0).any()  # a useful case
    # any subset, in any order, gives the same rows: nothing depends on the chunking
    part = np.array([40, 3, 17, 51, 16])
    sub = wafer_dies(config, model.eligible, part)
    for name, col in sub.columns.items():
        np.testing.assert_array_equal(col, got.columns[name][part])
    np.testing.assert_array_equal(sub.affected, got.affected[part])
    with pytest.raises(ConfigError, match=r"die indices must lie in \[0, 51\]"):
        wafer_dies(config, model.eligible, [52])
    with pytest.raises(ConfigError, match="wafer run"):
        wafer_dies(Config(), model.eligible, [0])


def test_counts_follow_the_clustered_density():
    """Many dies: the counts are negative binomial with mean D0 A and variance m + m^2 / alpha."""
    cfg = load_config("paper", None, {"wafer.wafers": 25, "wafer.lots": 8, "wafer.d0": 0.5, "wafer.alpha": 2.0})
    w = wafer_dies(cfg, np.ones(4, dtype=bool), np.arange(wafer_die_count(cfg)))
    n = w.columns["n_defects"].astype(float)
    m = 0.5  # 1 cm^2 dies
    # 200 wafers: the wafer densities' spread dominates the error of the mean (sd m / sqrt(200 alpha))
    assert abs(n.mean() - m) < 4 * m / np.sqrt(200 * 2)
    assert 0.5 * (m + m * m / 2) < n.var() < 1.5 * (m + m * m / 2)
    assert n.var() > 1.1 * n.mean()  # clustered: over-dispersed against Poisson


def test_hit_arrays_takes_distinct_eligible_arrays():
    rng = np.random.default_rng(0)
    eligible = np.array([True, False, True, True, False])
    n = np.array([0, 1, 2, 3, 4, 9])
    u = rng.random((len(n), 3))
    hit = hit_arrays(n, eligible, u)
    np.testing.assert_array_equal(hit.sum(axis=1), np.minimum(n, 3))
    assert not hit[:, ~eligible].any()
    first = np.flatnonzero(eligible)[np.argmin(u[1])]
    assert hit[1].tolist() == [i == first for i in range(5)]  # one defect: the smallest uniform's array


def test_array_uniforms_are_keyed_by_the_site():
    a = array_uniforms(3, 1, 5, np.arange(20), 6)
    b = array_uniforms(3, 1, 5, np.array([17, 2]), 6)
    np.testing.assert_array_equal(b, a[[17, 2]])
    assert a.shape == (20, 6) and 0 < a.min() and a.max() < 1
    assert not np.array_equal(array_uniforms(3, 1, 6, np.arange(20), 6), a)  # another wafer
    assert not np.array_equal(array_uniforms(4, 1, 5, np.arange(20), 6), a)  # another seed
    # every die and array is chosen about equally often
    u = array_uniforms(0, 0, 0, np.arange(20000), 4)
    hits = hit_arrays(np.ones(20000, dtype=int), np.ones(4, dtype=bool), u).mean(axis=0)
    np.testing.assert_allclose(hits, 0.25, atol=0.015)


def test_a_die_model_of_a_wafer_config_hits_its_wafer_arrays(config, model):
    w = model.wafer_dies(np.arange(N_SMALL))
    for d in (0, 7, 30):
        np.testing.assert_array_equal(model.die_affected(d), w.affected[d])
    no_wafers = DieModel(config.replace(**{"wafer.wafers": 0}), model.network, model.dataset)
    np.testing.assert_array_equal(no_wafers.die_affected(7), model.eligible)


def test_compiled_sampler_takes_flags_per_die(model):
    """The compiled sampler with a (dies x arrays) flag matrix, against defects.sample_die
    with each die's row: masks and parameters bit for bit."""
    shapes = model.layout.shapes
    dies = np.arange(30)
    flags = np.random.default_rng(1).random((30, len(shapes))) < 0.5
    masks, params = sample_chunk("mixed", shapes, 5, dies, affected=flags, severity=(0.005, 0.05))
    for i, d in enumerate(dies):
        ref_m, ref_p = defects.sample_die("mixed", shapes, die_generator(5, int(d)), affected=list(flags[i]),
                                          severity=(0.005, 0.05))
        assert die_params(params, i) == ref_p
        for got, ref in zip(die_masks(masks, params, i), ref_m, strict=True):
            np.testing.assert_array_equal(got, ref)
    with pytest.raises(ConfigError, match=r"shape \(30, 4\)"):
        sample_chunk("mixed", shapes, 5, dies, affected=flags[:3])
    with pytest.raises(ConfigError, match="bool"):
        sample_chunk("mixed", shapes, 5, dies, affected=flags.astype(np.int8))


# --- runs ----------------------------------------------------------------------------------------

def test_a_wafer_run_has_the_wafer_columns(config, reference_run, model):
    out, summary = reference_run
    assert summary["dies"] == N_SMALL and read_run_info(out)["n_dies"] == N_SMALL
    assert read_run_info(out)["config"]["wafer"] == json.loads(json.dumps(config.to_dict()["wafer"]))
    part = pq.read_schema(out / "dies" / "part-00000.parquet")
    assert part.names == [c.name for c in schema.die_columns(wafer=True)]
    assert [f.type for f in part] == [c.arrow_type for c in schema.die_columns(wafer=True)]
    assert json.loads(part.metadata[b"yieldmc.units"])["r_mm"] == "mm"
    df = dies_table(out)
    w = model.wafer_dies(np.arange(N_SMALL))
    for name, col in w.columns.items():
        np.testing.assert_array_equal(df[name].to_numpy(), col, err_msg=name)
    # the verified reader, with the columns asked for, reads them as well
    got = load_dies(out, columns=["die", "defect_type"])
    assert got["defect_type"].tolist() == df["defect_type"].tolist()


def test_load_dies_reads_the_wafer_columns(config, reference_run, tmp_path):
    """``load_dies`` returns a wafer run's columns by default (yieldmc.runcheck picks the
    columns from the run's config: schema.die_columns, schema.is_wafer_run)."""
    out, _ = reference_run
    df = load_dies(out)
    assert list(df.columns) == [c.name for c in schema.die_columns(wafer=True)]
    pd.testing.assert_frame_equal(df.drop(columns=list(schema.EXECUTION_COLUMNS)), dies_table(out))
    assert load_dies(out, columns=["die", "n_defects"]).shape == (N_SMALL, 2)
    plain = tmp_path / "plain"
    run_sample(config.replace(**{"wafer.wafers": 0}), 3, plain)
    assert list(load_dies(plain).columns) == [c.name for c in schema.DIE_COLUMNS]
    with pytest.raises(ConfigError, match=r"has no wafers, so no column\(s\) \['lot'\]"):
        load_dies(plain, columns=["die", "lot"])
    with pytest.raises(ConfigError, match="unknown per-die column"):
        load_dies(out, columns=["lots"])


def test_dies_without_defects_are_fault_free_and_hit_arrays_carry_the_dies_own_defects(
        config, reference_run, model, tmp_path):
    out, _ = reference_run
    df = dies_table(out)
    clean = df[df["n_defects"] == 0]
    assert len(clean) >= 3
    assert (clean["defect_type"] == "none").all() and (clean["layers_affected"] == "").all()
    assert (clean["n_stuck_on"] + clean["n_stuck_off"] == 0).all()
    assert (clean["accuracy"] == model.fault_free_accuracy()).all()
    # the same dies without wafers: every eligible array carries its pattern
    plain = tmp_path / "plain"
    run_sample(config.replace(**{"wafer.wafers": 0}), N_SMALL, plain)
    no_wafer = dies_table(plain)
    assert "lot" not in no_wafer.columns
    w = model.wafer_dies(np.arange(N_SMALL))
    layer_of = [a.layer for a in model.layout.arrays]
    for d in range(N_SMALL):
        hit = w.affected[d]
        assert hit.sum() == min(int(df["n_defects"][d]), int(model.eligible.sum()))
        for a, (p, p_plain) in enumerate(zip(df["defect_params"][d], no_wafer["defect_params"][d], strict=True)):
            assert p == (p_plain if hit[a] else {"kind": "none"}), (d, a)
        layers = schema.decode_layers(df["layers_affected"][d])
        assert set(layers) <= {layer_of[a] for a in np.flatnonzero(hit)}
    full = df["n_defects"] >= model.eligible.sum()  # every array hit: the die of the run without wafers
    assert full.any()
    for name in ("defect_type", "layers_affected", "n_stuck_on", "accuracy", "n_correct"):
        assert df.loc[full, name].tolist() == no_wafer.loc[full, name].tolist(), name


def test_wafer_runs_do_not_depend_on_chunks_jobs_backend_or_engine(config, reference_run, tmp_path):
    ref_out, _ = reference_run
    ref = dies_table(ref_out)
    ref_volts = load_voltages(ref_out).voltages
    same = [c for c in ref.columns if c != "solver_max_residual"]
    for name, kw in [("chunks", {"chunk_size": 5, "jobs": 2}),
                     ("reference", {"chunk_size": 9, "jobs": 2, "engine": "reference", "backend": "loky"})]:
        out = tmp_path / name
        run_sample(config, N_SMALL, out, **kw)
        got = dies_table(out)
        pd.testing.assert_frame_equal(got[same], ref[same], check_exact=True, obj=name)
        volts = load_voltages(out).voltages
        if name == "chunks":
            np.testing.assert_array_equal(volts, ref_volts)
            np.testing.assert_array_equal(got["solver_max_residual"], ref["solver_max_residual"])
        else:  # each engine's own route and rounding (tests/test_engine_chunk.py)
            scale = np.abs(ref_volts).max(axis=(1, 2), keepdims=True)
            assert (np.abs(volts.astype(float) - ref_volts) <= VOLT_RTOL * scale + 2e-7 * np.abs(ref_volts)).all()


def test_a_wafer_run_resumes(config, reference_run, tmp_path):
    out = tmp_path / "run"
    run_sample(config, None, out, chunk_size=10)
    (out / "dies" / "part-00002.parquet").unlink()
    (out / "voltages" / "part-00002.h5").unlink()
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    del manifest["chunks"]["2"]
    (out / MANIFEST_FILE).write_text(json.dumps(manifest))
    info = json.loads((out / RUN_FILE).read_text())
    (out / RUN_FILE).write_text(json.dumps(info | {"status": "running"}))
    summary = run_sample(config, None, out, resume=True)
    assert summary["dies_simulated_now"] == 10
    pd.testing.assert_frame_equal(dies_table(out), dies_table(reference_run[0]), check_exact=True)
    with pytest.raises(ConfigError, match="differ"):  # other wafers: another run
        run_sample(config.replace(**{"wafer.d0": 1.0}), None, out, resume=True)


def test_bad_wafer_runs_are_refused_before_writing(config, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="leave --dies out"):
        run_sample(config, 10, out)
    with pytest.raises(ConfigError, match="--dies N"):
        run_sample(config.replace(**{"wafer.wafers": 0}), None, out)
    assert not out.exists()


# --- the per-die table's schema ------------------------------------------------------------------

def test_wafer_columns_are_declared_once():
    names = [c.name for c in schema.WAFER_COLUMNS]
    assert names == ["lot", "wafer", "x", "y", "r_mm", "expected_defects", "n_defects"]
    cols = schema.die_columns(wafer=True)
    assert [c.name for c in cols[:4]] == ["run_id", "die", "seed", "chunk"] and cols[4:11] == schema.WAFER_COLUMNS
    assert schema.die_columns() == schema.DIE_COLUMNS
    assert schema.arrow_schema().names == [c.name for c in schema.DIE_COLUMNS]
    assert schema.is_wafer_run({"wafer": {"wafers": 3}}) and not schema.is_wafer_run({"wafer": {"wafers": 0}})
    assert not schema.is_wafer_run({}) and not schema.is_wafer_run({"wafer": {"wafers": True}})


def test_conform_takes_the_wafer_group_whole(reference_run):
    out, _ = reference_run
    table = pq.read_table(out / "dies" / "part-00000.parquet")
    assert schema.conform(table).schema.equals(schema.arrow_schema(wafer=True))
    with pytest.raises(ConfigError, match=r"lacks column\(s\) \['n_defects'\]"):
        schema.conform(table.drop_columns(["n_defects"]))
    with pytest.raises(ConfigError, match="wafer run's.*no wafers"):
        schema.conform(table, wafer=False)
    with pytest.raises(ConfigError, match=r"lacks column\(s\) \['lot'"):
        schema.conform(table.drop_columns([c.name for c in schema.WAFER_COLUMNS]), wafer=True)
    bad = table.set_column(table.schema.get_field_index("x"), "x", pa.array(np.full(len(table), 0.5)))
    with pytest.raises(ConfigError, match="'x'"):
        schema.conform(bad)
    assert schema.read_dies_part(out / "dies" / "part-00000.parquet").column_names == table.column_names


def test_docs_list_the_wafer_columns():
    text = (Path(__file__).resolve().parents[1] / "docs" / "data.md").read_text()
    block = text.split("<!-- wafer:start -->\n", 1)[1].split("<!-- wafer:end -->", 1)[0]
    stale = "docs/data.md is stale: python -m yieldmc.schema wafer"
    assert block == schema.schema_markdown(schema.WAFER_COLUMNS), stale

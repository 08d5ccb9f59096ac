"""The run store: schema, atomic chunk files, manifest, resume/overwrite rules, readers."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from yieldmc import defect_params, schema
from yieldmc.errors import ConfigError, YieldmcError
from yieldmc.store import (
    LOCK_FILE,
    MANIFEST_FILE,
    RUN_FILE,
    RunStore,
    atomic_write_json,
    load_dies,
    load_voltages,
    read_run_info,
    sha256_file,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "data.md"
N_IMAGES, N_OUT = 6, 10


def run_info(**changes):
    info = {"config": {"wires": {"r_row": 1.0, "r_col": 1.0}, "defects": {"kind": "mixed"}},
            "seed": 11, "n_dies": 10, "chunk_size": 4, "store_voltages": "test", "backend": "loky"}
    return info | changes


def chunk_rows(store: RunStore, chunk: int) -> dict:
    """Rows whose values are a function of the die only (as a real sweep's are)."""
    dies = np.arange(store.chunk_range(chunk).start, store.chunk_range(chunk).stop)
    n = dies.size
    return {
        "die": dies,
        "defect_type": np.where(dies % 2 == 0, "ring", "row").tolist(),
        "defect_params": [[{"kind": "ring", "cx": 0.5, "cy": 0.5, "radius": 0.1 * (d % 3), "width": 0.05,
                            "on_fraction": 0.5, "seed": int(d)}, {"kind": "none"}] for d in dies],
        "layers_affected": [schema.encode_layers([0, d % 3]) for d in dies],
        "n_stuck_on": dies * 2,
        "n_stuck_off": dies,
        "fault_fraction": dies / 100.0,
        "accuracy": (dies % 5) / 5.0,
        "n_images": np.full(n, N_IMAGES),
        "n_correct": np.full(n, 3),
        "solver_max_residual": np.full(n, 1e-12),
        "solver_converged": dies != 3,
        "elapsed_s": np.full(n, 0.01),
    }


def chunk_voltages(store: RunStore, chunk: int):
    r = store.chunk_range(chunk)
    v = np.stack([np.random.default_rng([1, d]).normal(0, 0.1, (N_IMAGES, N_OUT)) for d in r])
    return {"test": v}, {"test": np.arange(N_IMAGES) % N_OUT}


def write(store: RunStore, chunk: int, *, record: bool = True, as_type=dict):
    """Write chunk ``chunk``; ``as_type`` (dict, pandas.DataFrame, pyarrow.table) wraps the rows."""
    v, y = chunk_voltages(store, chunk) if store.info["store_voltages"] != "none" else (None, None)
    rows = as_type(chunk_rows(store, chunk))
    if record:
        return store.write_chunk(chunk, rows, v, y)
    return store.write_chunk_files(chunk, rows, v, y)


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore.create(tmp_path / "run", run_info())


# --- schema ----------------------------------------------------------------------------------

def test_docs_hold_the_generated_schema_table():
    text = DOCS.read_text()
    start, end = "<!-- schema:start -->\n", "<!-- schema:end -->"
    assert start in text and end in text, "docs/data.md lost its schema markers"
    block = text.split(start, 1)[1].split(end, 1)[0]
    assert block == schema.schema_markdown(), "docs/data.md is stale: python -m yieldmc.schema"


def test_column_sets():
    assert schema.NONDETERMINISTIC_COLUMNS == ("run_id", "elapsed_s")
    assert schema.EXECUTION_COLUMNS == ("run_id", "chunk", "elapsed_s")
    assert len(schema.COLUMNS_BY_NAME) == len(schema.DIE_COLUMNS)


def test_encoders_round_trip():
    params = [{"kind": "ring", "radius": np.float64(0.25), "centre": np.array([0.5, 0.5])}, {"kind": "none"}]
    text = defect_params.encode_params(params)
    assert defect_params.decode_params(text) == [{"centre": [0.5, 0.5], "kind": "ring", "radius": 0.25},
                                          {"kind": "none"}]
    with pytest.raises(ConfigError, match="finite"):
        defect_params.encode_params([{"r": float("nan")}])
    assert schema.encode_layers([2, 0, 2]) == "0,2"
    assert schema.decode_layers("0,2") == [0, 2] and schema.decode_layers("") == []


def test_conform_names_bad_columns(store):
    rows = chunk_rows(store, 0)
    with pytest.raises(ConfigError, match=r"lacks column\(s\) \['accuracy'\]"):
        schema.conform({k: v for k, v in rows.items() if k != "accuracy"},
                       fill={"run_id": "x", "seed": 1, "chunk": 0})
    with pytest.raises(ConfigError, match="unknown per-die column.*'bogus'"):
        schema.conform(rows | {"bogus": rows["die"]}, fill={"run_id": "x", "seed": 1, "chunk": 0})
    with pytest.raises(ConfigError, match="n_stuck_on"):  # 2.5 cells does not cast safely to int32
        schema.conform(rows | {"n_stuck_on": rows["n_stuck_on"] + 0.5},
                       fill={"run_id": "x", "seed": 1, "chunk": 0})
    with pytest.raises(ConfigError, match="seed"):  # a filled column that disagrees
        store.write_chunk(0, rows | {"seed": np.full(4, 99)}, *chunk_voltages(store, 0))


def test_check_schema_names_missing_and_mistyped_columns():
    s = schema.arrow_schema().remove(1).remove(0)  # no run_id, no die
    with pytest.raises(ConfigError, match=r"\['run_id', 'die'\]"):
        schema.check_schema(s, source="x.parquet")
    s = schema.arrow_schema().set(1, pa.field("die", pa.int32()))
    with pytest.raises(ConfigError, match="die is int32, expected int64"):
        schema.check_schema(s)


# --- written files -------------------------------------------------------------------------

def test_parquet_schema_metadata_and_compression(store):
    write(store, 1)
    path = store.path / "dies" / "part-00001.parquet"
    s = pq.read_schema(path)
    assert s.names == [c.name for c in schema.DIE_COLUMNS]
    assert [f.type for f in s] == [c.arrow_type for c in schema.DIE_COLUMNS]
    assert s.field("elapsed_s").metadata[b"unit"] == b"s"
    meta = {k.decode(): v.decode() for k, v in s.metadata.items()}
    assert meta["yieldmc.run_id"] == store.run_id
    assert json.loads(meta["yieldmc.config"]) == run_info()["config"]
    assert json.loads(meta["yieldmc.units"])["fault_fraction"] == "1"
    assert meta["yieldmc.chunk"] == "1" and meta["yieldmc.seed"] == "11"
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
    table = pq.read_table(path)
    assert set(table.column("run_id").to_pylist()) == {store.run_id}
    assert table.column("chunk").to_pylist() == [1] * 4


def test_rows_round_trip_sorted_across_out_of_order_chunks(store):
    for c, as_type in [(2, dict), (0, pd.DataFrame), (1, pa.table)]:
        write(store, c, as_type=as_type)
    df = load_dies(store.path)
    assert df["die"].tolist() == list(range(10))
    expected = pd.concat([pd.DataFrame(chunk_rows(store, c)) for c in range(3)], ignore_index=True)
    for name in expected:
        if name == "defect_params":  # per die a list of dicts; params_to_python takes any form
            assert defect_params.params_to_python(df[name]) == expected[name].tolist()
            continue
        np.testing.assert_array_equal(df[name].to_numpy(), expected[name].to_numpy(), err_msg=name)
    assert (df["seed"] == 11).all() and (df["chunk"] == df["die"] // 4).all()
    sub = load_dies(store.path, columns=["accuracy", "defect_type"])
    assert list(sub.columns) == ["accuracy", "defect_type"]
    np.testing.assert_array_equal(sub["accuracy"], expected["accuracy"])


def test_voltages_round_trip_and_layout(store):
    for c in (1, 0, 2):
        write(store, c)
    with h5py.File(store.path / "voltages" / "part-00001.h5", "r") as f:
        ds = f["test/voltages"]
        assert ds.dtype == np.float32 and ds.shape == (4, N_IMAGES, N_OUT)
        assert ds.compression is None and not ds.shuffle  # uncompressed unless run_info["compress"]
        assert ds.chunks[1:] == (N_IMAGES, N_OUT)  # chunked along the die axis only
        assert ds.attrs["units"] == "V" and ds.attrs["image_set"] == "test"
        np.testing.assert_array_equal(ds.attrs["output_classes"], np.arange(N_OUT))
        assert [d.label for d in ds.dims] == ["die", "image", "output"]
        np.testing.assert_array_equal(f["die"][()], [4, 5, 6, 7])
        assert f["test/labels"].dtype == np.int16
        assert f.attrs["run_id"] == store.run_id
    dies = [9, 0, 5, 5, 4]
    got = load_voltages(store.path, dies)
    expected = np.concatenate([chunk_voltages(store, c)[0]["test"] for c in range(3)])[dies]
    assert got.voltages.dtype == np.float32 and got.voltages.shape == (5, N_IMAGES, N_OUT)
    np.testing.assert_array_equal(got.voltages, expected.astype(np.float32))
    np.testing.assert_array_equal(got.dies, dies)
    np.testing.assert_array_equal(got.labels, np.arange(N_IMAGES) % N_OUT)
    assert load_voltages(store.path).voltages.shape == (10, N_IMAGES, N_OUT)
    with pytest.raises(ConfigError, match=r"dies \[10\]"):
        load_voltages(store.path, [1, 10])


def test_voltage_arguments_must_match_the_run(tmp_path, store):
    v, y = chunk_voltages(store, 0)
    with pytest.raises(ConfigError, match="store_voltages='test'"):
        store.write_chunk(0, chunk_rows(store, 0))
    with pytest.raises(ConfigError, match="shape"):
        store.write_chunk(0, chunk_rows(store, 0), {"test": v["test"][:2]}, y)
    none = RunStore.create(tmp_path / "none", run_info(store_voltages="none"))
    with pytest.raises(ConfigError, match="stores no voltages"):
        none.write_chunk(0, chunk_rows(none, 0), v, y)
    write(none, 0)
    assert not (none.path / "voltages").exists()
    with pytest.raises(ConfigError, match="stored no voltages"):
        load_voltages(none.path)


def test_rows_must_be_the_chunk_dies(store):
    rows = chunk_rows(store, 0)
    rows["die"] = rows["die"][::-1].copy()
    with pytest.raises(ConfigError, match="dies 0..3 in ascending order"):
        store.write_chunk(0, rows, *chunk_voltages(store, 0))


def test_dataset_readers_ignore_a_stray_temp_file(store):
    for c in range(3):
        write(store, c)
    (store.path / "dies" / ".part-00003.parquet.1234abcd.tmp").write_bytes(b"half a parquet file")
    assert pads.dataset(store.path / "dies").to_table().num_rows == 10
    df = pd.read_parquet(store.path / "dies")
    assert sorted(df["die"]) == list(range(10))


def test_finish_marks_complete_and_builds_virtual_file(store):
    write(store, 0)
    with pytest.raises(YieldmcError, match=r"chunks \[1, 2\]"):
        store.finish({})
    write(store, 2)
    write(store, 1)
    store.finish({"yield": np.float64(0.5)})
    info = read_run_info(store.path)
    assert info["status"] == "complete" and info["summary"] == {"yield": 0.5}
    assert set(info["versions"]) >= {"numpy", "numba", "scipy", "pyarrow", "h5py", "yieldmc"}
    with h5py.File(store.path / "voltages" / "all.h5", "r") as f:
        np.testing.assert_array_equal(f["test/voltages"][()], load_voltages(store.path).voltages)
        np.testing.assert_array_equal(f["die"][()], np.arange(10))


# --- creating, overwriting, resuming -------------------------------------------------------------

def test_new_run_files(store):
    info = read_run_info(store.path)
    assert info["status"] == "running" and info["seed"] == 11 and info["backend"] == "loky"
    assert info["created"].endswith("Z") and len(info["run_id"]) == 36
    assert json.loads((store.path / MANIFEST_FILE).read_text())["chunks"] == {}
    assert store.n_chunks == 3 and store.chunk_range(2) == range(8, 10)


def test_refuses_a_non_empty_directory_and_touches_nothing(store):
    write(store, 0)
    (store.path / "notes.txt").write_text("mine")
    before = snapshot(store.path)
    with pytest.raises(ConfigError, match="exists and is not empty; pass --resume"):
        RunStore.create(store.path, run_info())
    assert snapshot(store.path) == before


def test_overwrite_removes_only_yieldmc_files(store):
    write(store, 0)
    (store.path / "network.npz").write_bytes(b"weights")
    (store.path / ".manifest.json.deadbeef.tmp").write_bytes(b"{")
    new = RunStore.create(store.path, run_info(seed=12), overwrite=True)
    assert new.run_id != store.run_id
    assert sorted(p.name for p in store.path.iterdir()) == [LOCK_FILE, MANIFEST_FILE, RUN_FILE]
    assert read_run_info(store.path)["seed"] == 12


@pytest.mark.parametrize("foreign", ["notes.txt", "dies/my.csv", "dies/.mine.tmp", "dies/part-99999.parquet"])
def test_overwrite_keeps_foreign_files(store, foreign):
    write(store, 0)
    (store.path / foreign).write_text("mine")
    RunStore.create(store.path, run_info(), overwrite=True)
    assert (store.path / foreign).read_text() == "mine"
    assert not (store.path / "dies" / "part-00000.parquet").exists()


@pytest.mark.parametrize("foreign", ["dies/part-00001.parquet", "network.npz", "voltages/all.h5"])
def test_overwrite_refuses_foreign_files_where_it_writes(tmp_path, foreign):
    out = tmp_path / "run"
    (out / "dies").mkdir(parents=True)
    (out / "voltages").mkdir()
    (out / foreign).write_text("mine")
    before = snapshot(out)
    with pytest.raises(ConfigError, match=f"{foreign} was not written by the yieldmc run there"):
        RunStore.create(out, run_info(), overwrite=True)
    assert snapshot(out) == before


def test_resume_keeps_run_and_finished_chunks(store):
    write(store, 0)
    write(store, 2)
    again = RunStore.create(store.path, run_info(backend="dask"), resume=True)
    assert again.run_id == store.run_id
    assert again.finished_chunks() == {0, 2}
    info = read_run_info(store.path)
    assert len(info["resumed"]) == 1 and info["backend"] == "dask"


def test_resume_with_other_settings_is_refused(store):
    changed = run_info()
    changed["config"]["wires"]["r_row"] = 2.0
    before = snapshot(store.path)
    with pytest.raises(ConfigError, match=r"config\.wires\.r_row: 1\.0 -> 2\.0.*chunk_size: 4 -> 5"):
        RunStore.create(store.path, changed | {"chunk_size": 5}, resume=True)
    assert snapshot(store.path) == before


def test_resume_of_a_missing_directory_starts_a_run(tmp_path):
    s = RunStore.create(tmp_path / "a" / "b", run_info(), resume=True)
    assert read_run_info(s.path)["run_id"] == s.run_id


def test_unwritable_directory_is_a_config_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="cannot write to output directory"):
        RunStore.create(tmp_path / "file" / "run", run_info())
    with pytest.raises(ConfigError, match="not a directory"):
        RunStore.create(tmp_path / "file", run_info())


def test_bad_run_info_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="store_voltages"):
        RunStore.create(tmp_path / "r", run_info(store_voltages="some"))
    with pytest.raises(ConfigError, match="n_dies"):
        RunStore.create(tmp_path / "r", run_info(n_dies=0))
    with pytest.raises(ConfigError, match="run_id"):
        RunStore.create(tmp_path / "r", run_info(run_id="mine"))
    assert not (tmp_path / "r").exists()


# --- damage and crashes ----------------------------------------------------------------------

def test_truncated_chunk_is_detected_and_removed(store):
    for c in range(3):
        write(store, c)
    path = store.path / "voltages" / "part-00001.h5"
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)
    assert store.finished_chunks() == {0, 2}
    assert not path.exists() and not (store.path / "dies" / "part-00001.parquet").exists()
    assert "1" not in json.loads((store.path / MANIFEST_FILE).read_text())["chunks"]
    assert sorted(load_dies(store.path, allow_partial=True)["die"]) == [0, 1, 2, 3, 8, 9]


def test_corrupt_chunk_of_the_same_size_is_caught_by_the_checksum(store):
    write(store, 0)
    path = store.path / "dies" / "part-00000.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert store.finished_chunks(verify=False, repair=False) == {0}
    assert store.finished_chunks() == set()


def test_chunk_file_missing_from_the_manifest_is_removed(store):
    write(store, 0)
    write(store, 1, record=False)  # crash between the rename and the manifest update
    (store.path / "dies" / ".part-00002.parquet.0badc0de.tmp").write_bytes(b"x")
    assert (store.path / "dies" / "part-00001.parquet").exists()
    assert store.finished_chunks() == {0}
    assert sorted(p.name for p in (store.path / "dies").iterdir()) == ["part-00000.parquet"]
    assert sorted(p.name for p in (store.path / "voltages").iterdir()) == ["part-00000.h5"]


def test_manifest_update_is_atomic(store, monkeypatch):
    write(store, 0)
    before = (store.path / MANIFEST_FILE).read_bytes()
    record = write(store, 1, record=False)

    seen = []

    def crash(src, dst):
        seen.append(Path(src).name)
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        store.record_chunk(record)
    monkeypatch.undo()
    assert seen and seen[0].startswith(".manifest.json.") and seen[0].endswith(".tmp")  # hidden temp name
    assert (store.path / MANIFEST_FILE).read_bytes() == before
    assert not [p for p in store.path.iterdir() if p.name.endswith(".tmp")]


def test_run_json_update_is_atomic(store, monkeypatch):
    for c in range(3):
        write(store, c)
    before = (store.path / RUN_FILE).read_bytes()
    real = os.replace

    def crash_on_run_json(src, dst):
        if Path(dst).name == RUN_FILE:
            raise OSError("power cut")
        real(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_run_json)
    with pytest.raises(OSError, match="power cut"):
        store.finish({"yield": 1.0})
    assert (store.path / RUN_FILE).read_bytes() == before
    assert read_run_info(store.path)["status"] == "running"


def test_atomic_write_json_leaves_no_temp_on_error(tmp_path):
    path = tmp_path / "x.json"
    atomic_write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_worker_writes_files_parent_records(store):
    worker_copy = pickle.loads(pickle.dumps(store))
    record = write(worker_copy, 2, record=False)
    with pytest.raises(YieldmcError, match="record_chunk"):
        worker_copy.record_chunk(record)
    store.record_chunk(pickle.loads(pickle.dumps(record)))
    assert store.finished_chunks() == {2}
    assert record.files["dies/part-00002.parquet"]["sha256"] == sha256_file(store.path / "dies" / "part-00002.parquet")


def test_load_dies_names_missing_columns(store):
    write(store, 0)
    path = store.path / "dies" / "part-00000.parquet"
    pq.write_table(pq.read_table(path).drop_columns(["accuracy", "n_correct"]), path)
    manifest = json.loads((store.path / MANIFEST_FILE).read_text())  # make the damage look legitimate
    manifest["chunks"]["0"]["files"]["dies/part-00000.parquet"] = {"sha256": sha256_file(path),
                                                                    "bytes": path.stat().st_size}
    (store.path / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match=r"lacks per-die column\(s\) \['accuracy', 'n_correct'\]"):
        load_dies(store.path, allow_partial=True)
    assert load_dies(store.path, columns=["die", "defect_type"], allow_partial=True).shape == (4, 2)
    with pytest.raises(ConfigError, match="unknown per-die column"):
        load_dies(store.path, columns=["yield"])


def test_load_dies_of_an_empty_run_has_the_schema(store):
    with pytest.raises(ConfigError, match=r"incomplete: chunk 0 \(dies 0-3, dies/part-00000.parquet\) is missing"):
        load_dies(store.path)
    df = load_dies(store.path, allow_partial=True)
    assert df.empty and list(df.columns) == [c.name for c in schema.DIE_COLUMNS]
    with pytest.raises(ConfigError, match="yieldmc run directory"):
        load_dies(store.path / "dies")

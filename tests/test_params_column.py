"""The typed ``defect_params`` column (run format 2): one struct per array.

Every dict :func:`yieldmc.defects.sample_die` can return (every kind, on_mode, severity
setting, affected subset) round-trips through :func:`defect_params.params_array` and Parquet;
the compiled engine's vectorised builder gives the same column; format-1 JSON text is
converted on reading.
"""

from __future__ import annotations

import io
import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from yieldmc import defect_params, defects, schema
from yieldmc.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
FORMAT1 = ROOT / "tests" / "data" / "run-format1"
SHAPES = [(64, 16), (8, 16), (8, 16), (8, 20)]
SEVERITIES = (None, 0.0, 0.02, (0.005, 0.05), 1.0)
FILL = {"run_id": "r", "seed": 1, "chunk": 0}


def sampled_rows(n_dies: int = 3) -> list[list[dict]]:
    """sample_die's params for every kind x on_mode x severity x on_fraction, some arrays
    unaffected."""
    rows = []
    settings = itertools.product(defects.KINDS, defects.ON_MODES, SEVERITIES, (0.0, 0.3, 1.0))
    for s, (kind, on_mode, severity, q) in enumerate(settings):
        for die in range(n_dies):
            affected = None if die % 2 == 0 else [0, 2]
            _, params = defects.sample_die(kind, SHAPES, [s, die], affected=affected, severity=severity,
                                           on_fraction=q, on_mode=on_mode)
            rows.append(params)
    return rows


@pytest.fixture(scope="module")
def rows() -> list[list[dict]]:
    return sampled_rows()


def table_row(**changes) -> dict:
    n = 2
    base = {"die": np.arange(n), "defect_type": ["ring", "none"],
            "defect_params": [[{"kind": "ring", "cx": 0.5, "cy": 0.5, "radius": 0.3, "width": 0.1,
                                "state": "off"}, {"kind": "none"}], [{"kind": "none"}, {"kind": "none"}]],
            "layers_affected": ["0", ""], "n_stuck_on": [0, 0], "n_stuck_off": [5, 0],
            "fault_fraction": [0.1, 0.0], "accuracy": [0.5, 1.0], "n_images": [2, 2], "n_correct": [1, 2],
            "solver_max_residual": [1e-12, 1e-12], "solver_converged": [True, True], "elapsed_s": [0.1, 0.1]}
    return base | changes


# --- the type -------------------------------------------------------------------------------

def test_the_kinds_are_those_of_defects():
    assert defect_params.PARAM_KINDS == tuple(k for k in defects.KINDS if k != "mixed")
    assert schema.COLUMNS_BY_NAME["defect_params"].arrow_type == defect_params.PARAMS_TYPE
    assert [f.name for f in defect_params.PARAMS_STRUCT] == [f.name for f in defect_params.PARAMS_FIELDS]
    assert schema.FORMAT_VERSION == 2


def test_every_key_sample_die_returns_is_a_field(rows):
    seen = {k for die in rows for p in die for k in p}
    assert seen == {f.name for f in defect_params.PARAMS_FIELDS}  # each field occurs, nothing else
    kinds = {p["kind"] for die in rows for p in die}
    assert kinds == set(defect_params.PARAM_KINDS)


def test_sampled_params_round_trip_exactly(rows):
    column = defect_params.params_array(rows)
    assert column.type == defect_params.PARAMS_TYPE and len(column) == len(rows)
    column.validate(full=True)
    back = defect_params.params_to_python(column)
    assert back == rows
    for die, die_back in zip(rows, back, strict=True):  # the same key order and Python types
        for p, q in zip(die, die_back, strict=True):
            assert list(p) == list(q)
            assert [type(v) for v in p.values()] == [type(v) for v in q.values()]
    for die in column.to_pylist():  # unaffected arrays: kind none, every other field null
        for p in die:
            if p["kind"] == "none":
                assert all(v is None for k, v in p.items() if k != "kind")


def test_parquet_and_json_round_trip(rows):
    column = defect_params.params_array(rows)
    buf = io.BytesIO()
    pq.write_table(pa.table({"defect_params": column}), buf)
    got = pq.read_table(io.BytesIO(buf.getvalue())).column("defect_params")
    assert got.type == defect_params.PARAMS_TYPE and got.combine_chunks().equals(column)
    as_json = [defect_params.encode_params(r) for r in rows]  # run format 1
    assert defect_params.params_from_json(as_json).equals(column)
    assert defect_params.params_to_python(pa.array(as_json)) == rows


def test_numpy_values_and_none_as_absent():
    row = [{"kind": "checkerboard", "block": np.int32(2), "phase": np.array([1, 0]),
            "region": (np.int64(0), 1, 4, 4), "on_fraction": np.float32(0.5), "seed": np.uint64(7),
            "cx": None}]
    assert defect_params.params_to_python(defect_params.params_array([row])) == [[
        {"kind": "checkerboard", "block": 2, "phase": [1, 0], "region": [0, 1, 4, 4], "on_fraction": 0.5,
         "seed": 7}]]
    assert defect_params.params_array([]).equals(pa.array([], type=defect_params.PARAMS_TYPE))
    assert defect_params.params_to_python(defect_params.params_array([[]])) == [[]]


@pytest.mark.parametrize("params, match", [
    ({"kind": "ring", "radius": float("nan")}, "radius.*finite"),
    ({"kind": "ring", "cx": math.inf}, "cx.*finite"),
    ({"kind": "ring", "centre": [0.5, 0.5]}, "unknown key 'centre'"),
    ({"radius": 0.2}, "kind must be one of"),
    ({"kind": "mixed"}, "kind must be one of"),
    ({"kind": "ring", "state": "stuck"}, "state must be 'on' or 'off'"),
    ({"kind": "row", "rows": [1.5]}, "rows: 1.5 is not an integer"),
    ({"kind": "row", "rows": "12"}, "rows"),
    ({"kind": "checkerboard", "block": 2**40}, "block"),
    ({"kind": "random", "density": "high"}, "density"),
    ({"kind": "random", "seed": True}, "seed"),
])
def test_params_array_rejects_bad_params(params, match):
    with pytest.raises(ConfigError, match=match) as err:
        defect_params.params_array([[{"kind": "none"}], [{"kind": "none"}, params]])
    assert "die row 1, array 1" in str(err.value)


def test_params_array_rejects_a_die_that_is_not_a_list():
    with pytest.raises(ConfigError, match="die row 0 must be a list of dicts"):
        defect_params.params_array([{"kind": "none"}])
    with pytest.raises(ConfigError, match="die row 0 must be a list of dicts"):
        defect_params.params_array(['[{"kind": "none"}]'])


# --- the compiled engine's typed parameters ------------------------------------------------

@pytest.mark.parametrize("kind", defects.KINDS)
@pytest.mark.parametrize("on_mode", defects.ON_MODES)
def test_typed_builder_equals_the_readable_path(kind, on_mode):
    from yieldmc.engine.sampling import TWIN_CODES, die_params, sample_chunk

    if kind not in TWIN_CODES:
        pytest.skip(f"{kind} has no compiled twin: no typed parameters")
    for severity, affected in [(None, None), ((0.005, 0.05), [0, 3]), (0.0, None), (1.0, [1])]:
        _, params = sample_chunk(kind, SHAPES, 7, np.arange(40), affected=affected, severity=severity,
                                 on_fraction=0.3, on_mode=on_mode)
        typed = defect_params.params_array_from_typed(params)
        typed.validate(full=True)
        expected = defect_params.params_array([die_params(params, i) for i in range(40)])
        assert typed.type == defect_params.PARAMS_TYPE
        assert typed.equals(expected), (kind, on_mode, severity, affected)


def test_typed_builder_on_a_realistic_chunk_and_edge_sizes():
    from yieldmc.engine.sampling import die_params, sample_chunk

    _, params = sample_chunk("mixed", SHAPES, 1, np.arange(500), severity=(0.005, 0.05))
    typed = defect_params.params_array_from_typed(params)
    assert typed.equals(defect_params.params_array([die_params(params, i) for i in range(500)]))
    assert defect_params.params_to_python(typed) == [die_params(params, i) for i in range(500)]
    _, empty = sample_chunk("mixed", SHAPES, 1, np.arange(0))
    assert defect_params.params_array_from_typed(empty).equals(pa.array([], type=defect_params.PARAMS_TYPE))
    # the column a chunk writes goes through conform unchanged
    n = 500
    table = schema.conform(table_row(die=np.arange(n), defect_params=typed, **{
        k: np.resize(v, n) for k, v in table_row().items() if k not in ("die", "defect_params")}), fill=FILL)
    assert table.column("defect_params").combine_chunks().equals(typed)


def test_typed_builder_rejects_bad_codes_and_non_finite_values():
    from yieldmc.engine.sampling import sample_chunk

    _, params = sample_chunk("ring", SHAPES, 1, np.arange(4))
    bad = dict(params, kind=np.full_like(params["kind"], defects.KINDS.index("mixed")))
    with pytest.raises(ConfigError, match="kind codes"):
        defect_params.params_array_from_typed(bad)
    radius = params["radius"].copy()
    radius[2, 1] = np.nan
    with pytest.raises(ConfigError, match="radius"):
        defect_params.params_array_from_typed(dict(params, radius=radius))
    density = np.full_like(params["density"], np.nan)  # not set for ring arrays: ignored
    assert defect_params.params_array_from_typed(dict(params, density=density)).equals(
        defect_params.params_array_from_typed(params))


# --- tables: conform, pandas, older runs ------------------------------------------------------

def test_conform_takes_dicts_json_text_dataframes_and_arrow():
    expected = defect_params.params_array(table_row()["defect_params"])
    inputs = {
        "dicts": table_row(),
        "json": table_row(defect_params=[defect_params.encode_params(r) for r in table_row()["defect_params"]]),
        "typed": table_row(defect_params=expected),
        "dataframe": pd.DataFrame(table_row()),
        "arrow": pa.table(table_row()),
        "loaded": pd.DataFrame(table_row(defect_params=list(
            pa.table({"p": expected}).to_pandas()["p"]))),  # what load_dies gives back
    }
    for name, value in inputs.items():
        got = schema.conform(value, fill=FILL).column("defect_params").combine_chunks()
        assert got.type == defect_params.PARAMS_TYPE and got.equals(expected), name
    with pytest.raises(ConfigError, match="unknown key 'centre'"):  # an Arrow cast would drop it
        schema.conform(pa.table(table_row(defect_params=[[{"kind": "ring", "centre": 0.5}]] * 2)), fill=FILL)
    with pytest.raises(ConfigError, match="not JSON text"):
        schema.conform(table_row(defect_params=["{", "["]), fill=FILL)


def test_pandas_holds_dicts_that_go_back_to_params(rows):
    df = pa.table({"defect_params": defect_params.params_array(rows)}).to_pandas()
    first = df.defect_params[0]
    assert [p["kind"] for p in first] == [p["kind"] for p in rows[0]]
    assert defect_params.params_to_python(df.defect_params) == rows


def test_dies_to_pandas_holds_the_dicts_of_sample_die(rows):
    column = defect_params.params_array(rows)
    table = pa.table({"die": np.arange(len(rows)), "defect_params": column, "x": np.ones(len(rows))})
    df = schema.dies_to_pandas(table)
    assert list(df.columns) == ["die", "defect_params", "x"] and df.x.dtype == np.float64
    assert df.defect_params.tolist() == rows and type(df.defect_params[0]) is list
    pd.testing.assert_frame_equal(df, schema.dies_to_pandas(table), check_exact=True)  # == compares
    changed = df.copy()
    changed.loc[3, "defect_params"] = [{"kind": "none"}]
    with pytest.raises(AssertionError, match="defect_params"):
        pd.testing.assert_frame_equal(df, changed)
    assert schema.dies_to_pandas(table.drop_columns("defect_params")).equals(
        table.drop_columns("defect_params").to_pandas())
    empty = schema.dies_to_pandas(table.slice(0, 0))
    assert len(empty) == 0 and list(empty.columns) == ["die", "defect_params", "x"]


def test_params_to_python_of_slices_chunks_and_nulls(rows):
    column = defect_params.params_array(rows)
    assert defect_params.params_to_python(column.slice(5, 7)) == rows[5:12]
    assert defect_params.params_to_python(pa.chunked_array([column.slice(0, 4), column.slice(4)])) == rows
    assert defect_params.params_to_python(pa.chunked_array([], type=defect_params.PARAMS_TYPE)) == []
    with_null = pa.concat_arrays([column.slice(0, 2), pa.nulls(1, type=defect_params.PARAMS_TYPE)])
    assert defect_params.params_to_python(with_null) == [*rows[:2], None]


def test_check_schema_accepts_format_1_text_only_when_upgradable():
    s = schema.arrow_schema().set(5, pa.field("defect_params", pa.string()))
    with pytest.raises(ConfigError, match="defect_params is string, expected list<item: struct<kind"):
        schema.check_schema(s, source="old.parquet")
    schema.check_schema(s, source="old.parquet", upgradable=True)
    s = schema.arrow_schema().set(5, pa.field("defect_params", pa.int64()))
    with pytest.raises(ConfigError, match="defect_params is int64"):
        schema.check_schema(s, upgradable=True)


def test_a_format_1_part_reads_as_the_typed_column():
    part = FORMAT1 / "dies" / "part-00000.parquet"
    raw = pq.read_table(part)
    assert raw.schema.field("defect_params").type == pa.string()
    table = schema.read_dies_part(part)
    assert table.schema.field("defect_params").type == defect_params.PARAMS_TYPE
    assert table.schema.field("defect_params").metadata == schema.COLUMNS_BY_NAME["defect_params"].field.metadata
    assert table.column_names == [c.name for c in schema.DIE_COLUMNS]
    text = raw.column("defect_params").to_pylist()
    expected = [defect_params.decode_params(t) for t in text]
    assert defect_params.params_to_python(table.column("defect_params")) == expected
    assert table.drop_columns("defect_params").equals(raw.drop_columns("defect_params"))
    sub = schema.read_dies_part(part, ["die", "defect_params"])
    assert sub.column_names == ["die", "defect_params"] and sub.column(1).type == defect_params.PARAMS_TYPE
    assert schema.read_dies_part(part, ["die"]).column_names == ["die"]
    assert schema.upgrade_table(table) is table  # today's format: unchanged
    with pytest.raises(ConfigError, match="unknown per-die column"):
        schema.read_dies_part(part, ["bogus"])


def test_docs_hold_the_generated_params_table():
    text = (ROOT / "docs" / "data.md").read_text()
    start, end = "<!-- params:start -->\n", "<!-- params:end -->"
    assert start in text and end in text, "docs/data.md lost its defect_params markers"
    assert text.split(start, 1)[1].split(end, 1)[0] == defect_params.params_markdown(), \
        "docs/data.md is stale: python -m yieldmc.schema params"


def test_a_column_written_before_a_kind_added_fields_converts(rows):
    """A run written before a registry kind added parameters: its struct lacks them."""
    earlier = pa.struct([f for f in defect_params.PARAMS_STRUCT if f.name != "width"])
    old = pa.array([[{k: v for k, v in p.items() if k != "width"} for p in die] for die in rows[:50]
                    if all(p["kind"] != "ring" for p in die)], type=pa.list_(earlier))
    assert defect_params.is_earlier_type(old.type)
    assert not defect_params.is_earlier_type(defect_params.PARAMS_TYPE)
    assert not defect_params.is_earlier_type(pa.list_(pa.struct(list(defect_params.PARAMS_STRUCT)[::-1])))
    assert not defect_params.is_earlier_type(pa.string())
    again = defect_params.params_array(old.to_pylist())
    assert again.type == defect_params.PARAMS_TYPE
    assert defect_params.params_to_python(again) == defect_params.params_to_python(old)

"""The tables yieldmc writes besides the per-die parts (yieldmc.tables.TABLES): docs, build, checks.

The files themselves are checked against these declarations where they are written:
``test_correction.py`` (``corrected/<mode>.parquet``) and ``test_study.py`` (the study's CSV
files and ``voltages.h5``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from yieldmc import schema, stats, tables
from yieldmc.errors import ConfigError

DATA_MD = Path(__file__).resolve().parents[1] / "docs" / "data.md"


def _block(name: str) -> str:
    start, end = f"<!-- {name}:start -->\n", f"<!-- {name}:end -->"
    return DATA_MD.read_text().split(start, 1)[1].split(end, 1)[0]


@pytest.mark.parametrize("name, render", [("corrected", tables.CORRECTED_TABLE.markdown),
                                          ("study", tables.study_markdown)])
def test_docs_tables_are_generated_from_the_schema(name, render):
    assert _block(name) == render(), f"docs/data.md is stale: python -m yieldmc.schema {name}"


def test_every_table_is_registered_once_with_unique_columns():
    assert list(tables.TABLES) == ["corrected", "types", "protocols", "protocol_summary", "size_sweep", "budget",
                                   "yield", "yield_budget"]
    for table in tables.TABLES.values():
        assert len(set(table.names)) == len(table.names), table.name
        for c in table.columns:
            assert c.description.endswith("."), (table.name, c.name)
    assert tables.TABLES["yield"].names == [*stats.CURVE_COLUMNS, "stage"]


def test_csv_tables_use_the_types_a_csv_reader_infers():
    for table in tables.STUDY_TABLES:
        assert table.path.endswith(".csv")
        assert {str(c.arrow_type) for c in table.columns} <= {"int64", "double", "string"}, table.name


def _budget_row(**changes):
    row = {"defect_type": ["ring"], "method": ["mlp"], "budget": np.array([50]), "n_calibration": [50],
           "corrector_params": [346], "accuracy_raw_mean": [np.float64(0.4)], "accuracy_corrected_mean": [0.8],
           "accuracy_corrected_std": [0.0], "n_circuits": [3]}
    return {**row, **changes}


def test_build_gives_exactly_the_declared_table():
    table = tables.TABLES["budget"]
    built = table.build(_budget_row(), metadata={"yieldmc.x": "1"})
    assert built.schema.equals(table.arrow_schema({"yieldmc.x": "1"}), check_metadata=True)
    assert built.column("budget").type == pa.int64() and built.schema.field("budget").metadata[b"unit"] == b"images"
    extra = _budget_row(extra=[1])
    del extra["budget"]
    with pytest.raises(ConfigError, match=r"unknown \['extra'\], missing \['budget'\]"):
        table.build(extra)
    with pytest.raises(ConfigError, match="budget"):
        table.build(_budget_row(budget=[50.5]))


def test_build_accepts_a_dataframe_and_empty_columns():
    curve = stats.yield_curve([0.5, 0.9], [0.6, 0.8]).assign(stage="before")
    built = tables.TABLES["yield"].build(curve)
    assert built.num_rows == 2 and built.column("stage").to_pylist() == ["before"] * 2
    empty = tables.TABLES["protocols"].build({n: [] for n in tables.TABLES["protocols"].names})
    assert empty.num_rows == 0 and empty.column("train_type").type == pa.string()


def test_read_csv_checks_header_and_types(tmp_path):
    table = tables.TABLES["budget"]
    frame = table.build(_budget_row()).to_pandas()
    frame.to_csv(tmp_path / "ok.csv", index=False)
    back = table.read_csv(tmp_path / "ok.csv")
    assert list(back.columns) == table.names and back.accuracy_corrected_mean.dtype == np.float64
    frame[["method", "defect_type", *table.names[2:]]].to_csv(tmp_path / "swapped.csv", index=False)
    with pytest.raises(ConfigError, match="has columns"):
        table.read_csv(tmp_path / "swapped.csv")
    (tmp_path / "bad.csv").write_text(",".join(table.names) + "\nring,mlp,50.5,50,346,0.4,0.8,0,3\n")
    with pytest.raises(ConfigError, match="does not parse"):
        table.read_csv(tmp_path / "bad.csv")


def test_study_voltage_paths_name_every_circuit_once():
    per_circuit = [d.path for d in schema.STUDY_VOLTAGES if "{" in d.path]
    values = {"defect_type": "ring", "severity": 0.05, "die": 1}
    assert [p.format(**values) for p in per_circuit] == ["ring/severity_0.05/instance_1/train",
                                                         "ring/severity_0.05/instance_1/test"]
    assert {p.format(**values).rsplit("/", 1)[0] for p in per_circuit} == {"ring/severity_0.05/instance_1"}

"""The tables yieldmc writes besides the per-die parts (yieldmc.schema.TABLES): docs, build, checks.

The files themselves are checked against these declarations where they are written:
``test_correction.py`` (``corrected/<mode>.parquet``) and ``test_study.py`` (the study's CSV
files and ``voltages.h5``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from yieldmc import schema, stats
from yieldmc.errors import ConfigError

DATA_MD = Path(__file__).resolve().parents[1] / "docs" / "data.md"


def _block(name: str) -> str:
    start, end = f"<!-- {name}:start -->\n", f"<!-- {name}:end -->"
    return DATA_MD.read_text().split(start, 1)[1].split(end, 1)[0]


@pytest.mark.parametrize("name, render", [("corrected", schema.CORRECTED_TABLE.markdown),
                                          ("study", schema.study_markdown)])
def test_docs_tables_are_generated_from_the_schema(name, render):
    assert _block(name) == render(), f"docs/data.md is stale: python -m yieldmc.schema {name}"


def test_every_table_is_registered_once_with_unique_columns():
    assert list(schema.TABLES) == ["corrected", "types", "generalization", "size_sweep", "yield"]
    for table in schema.TABLES.values():
        assert len(set(table.names)) == len(table.names), table.name
        for c in table.columns:
            assert c.description.endswith("."), (table.name, c.name)
    assert schema.TABLES["yield"].names == [*stats.CURVE_COLUMNS, "stage"]


def test_csv_tables_use_the_types_a_csv_reader_infers():
    for table in schema.STUDY_TABLES:
        assert table.path.endswith(".csv")
        assert {str(c.arrow_type) for c in table.columns} <= {"int64", "double", "string"}, table.name


def test_build_gives_exactly_the_declared_table():
    table = schema.TABLES["size_sweep"]
    built = table.build({"defect_type": ["ring"], "hidden": np.array([4]), "corrector_params": [94],
                         "accuracy_corrected_mean": [np.float64(0.5)], "accuracy_corrected_std": [0.0]},
                        metadata={"yieldmc.x": "1"})
    assert built.schema.equals(table.arrow_schema({"yieldmc.x": "1"}), check_metadata=True)
    assert built.column("hidden").type == pa.int64() and built.schema.field("hidden").metadata[b"unit"] == b"neurons"
    with pytest.raises(ConfigError, match=r"unknown \['extra'\], missing \['hidden'\]"):
        table.build({"defect_type": ["ring"], "extra": [1], "corrector_params": [94],
                     "accuracy_corrected_mean": [0.5], "accuracy_corrected_std": [0.0]})
    with pytest.raises(ConfigError, match="hidden"):
        table.build({"defect_type": ["ring"], "hidden": [4.5], "corrector_params": [94],
                     "accuracy_corrected_mean": [0.5], "accuracy_corrected_std": [0.0]})


def test_build_accepts_a_dataframe_and_empty_columns():
    curve = stats.yield_curve([0.5, 0.9], [0.6, 0.8]).assign(stage="before")
    built = schema.TABLES["yield"].build(curve)
    assert built.num_rows == 2 and built.column("stage").to_pylist() == ["before"] * 2
    empty = schema.TABLES["generalization"].build({n: [] for n in schema.TABLES["generalization"].names})
    assert empty.num_rows == 0 and empty.column("train_type").type == pa.string()


def test_read_csv_checks_header_and_types(tmp_path):
    table = schema.TABLES["generalization"]
    frame = table.build({"train_type": ["mixed"], "test_type": ["ring"], "accuracy_defective_mean": [0.25],
                         "accuracy_corrected_mean": [0.5]}).to_pandas()
    frame.to_csv(tmp_path / "ok.csv", index=False)
    back = table.read_csv(tmp_path / "ok.csv")
    assert list(back.columns) == table.names and back.accuracy_corrected_mean.dtype == np.float64
    frame[["test_type", "train_type", "accuracy_defective_mean", "accuracy_corrected_mean"]].to_csv(
        tmp_path / "swapped.csv", index=False)
    with pytest.raises(ConfigError, match="has columns"):
        table.read_csv(tmp_path / "swapped.csv")
    sweep = schema.TABLES["size_sweep"]
    (tmp_path / "bad.csv").write_text(",".join(sweep.names) + "\nring,4.5,94,0.5,0\n")
    with pytest.raises(ConfigError, match="does not parse"):
        sweep.read_csv(tmp_path / "bad.csv")


def test_study_voltage_paths_name_every_circuit_once():
    per_circuit = [d.path for d in schema.STUDY_VOLTAGES if "{" in d.path]
    values = {"defect_type": "ring", "severity": 0.05, "die": 1}
    assert [p.format(**values) for p in per_circuit] == ["ring/severity_0.05/instance_1/train",
                                                         "ring/severity_0.05/instance_1/test"]
    assert {p.format(**values).rsplit("/", 1)[0] for p in per_circuit} == {"ring/severity_0.05/instance_1"}

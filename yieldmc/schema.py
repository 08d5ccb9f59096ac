"""What yieldmc's files contain, as code: every table it writes, and the HDF5 layouts.

:mod:`yieldmc.store` decides *where and when* a run's files are written (run directory,
atomic renames, manifest); this module decides *what is inside* them, for every file
yieldmc writes:

* ``<run>/dies/part-*.parquet``: every column is a :class:`Column` in :data:`DIE_COLUMNS`.
  :mod:`yieldmc.store` builds the Arrow schema from it (:func:`arrow_schema`), checks
  tables against it before writing (:func:`conform`) and files against it when reading
  (:func:`check_schema`, :func:`read_dies_part`).
* ``<run>/voltages/*.h5`` and the study's ``voltages.h5``: :mod:`yieldmc.h5layout`, re-exported here.
* ``<run>/corrected/<mode>.parquet`` (:mod:`yieldmc.correction`) and the study's CSV files
  (:mod:`yieldmc.reproduce`): each a :class:`Table` of :data:`TABLES`; writers write
  :meth:`Table.build`, and :meth:`Table.check` / :meth:`Table.read_csv` check a file.

``docs/data.md`` holds the tables :func:`schema_markdown`, :func:`params_markdown`,
:meth:`Table.markdown` and :func:`study_markdown` render, and tests keep them identical.
Regenerate the docs tables with::

    python -m yieldmc.schema            # the per-die columns
    python -m yieldmc.schema wafer      # the per-die columns of a wafer run
    python -m yieldmc.schema params     # the fields of defect_params
    python -m yieldmc.schema corrected  # corrected/<mode>.parquet
    python -m yieldmc.schema study      # the study's files (yieldmc reproduce)

Design choices
--------------
* **Flat and typed.** One scalar per cell, so every tool (pandas, polars, duckdb, Spark,
  a CSV export, a spreadsheet) reads the table without exploding nested types; the one
  exception is ``defect_params`` (below).
* ``defect_type`` is a plain ``string``, not an Arrow dictionary: Parquet dictionary-encodes
  it on disk anyway, and a logical string avoids categorical surprises (per-file categories,
  pandas ``observed=`` warnings) when runs are concatenated.
* ``layers_affected`` is a comma-separated string of layer indices (``"0,2"``; ``""`` for
  a defect-free die) rather than ``list<int8>``: it groups and filters as a scalar in every
  tool, and :func:`decode_layers` (or ``str.split(",")``) turns it back into a list.
* ``defect_params`` is a typed nested column (:mod:`yieldmc.defect_params`): a list with
  one struct per crossbar array, whose fields are the union of every kind's parameters,
  null where the array's kind has no such parameter. Writers build it from the dicts
  :func:`yieldmc.defects.sample_die` returns or, without a Python loop per die, from the
  compiled engine's typed arrays; :func:`dies_to_pandas` puts the dicts in a DataFrame.
  pandas, polars, duckdb and Spark read it natively (a list of structs), with no JSON to
  parse. Run format 1 stored it as JSON text; readers convert such
  parts on reading (:func:`read_dies_part`, :func:`upgrade_table`), so one type is ever
  in memory. ``kind`` and ``state`` are plain strings (Parquet dictionary-encodes them on
  disk), cell indices ``list<int32>`` rather than fixed-size lists (which not every reader
  maps), seeds ``int64``. A new kind with new parameters adds fields (and a format version).
* Voltages go to HDF5 (float32, volts), with netCDF-4 dimension scales (:mod:`yieldmc.h5layout`).
* The study's CSV columns are ``int64``, ``double`` or ``string`` (what a CSV reader infers).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

import yieldmc
from yieldmc.defect_params import (
    PARAMS_STRUCT,
    PARAMS_TYPE,
    is_earlier_type,
    params_array,
    params_from_json,
    params_to_python,
)
from yieldmc.errors import ConfigError
from yieldmc.h5layout import H5_CHUNK_BYTES as H5_CHUNK_BYTES  # re-exported: the HDF5 layouts
from yieldmc.h5layout import STUDY_GROUP_ATTRS as STUDY_GROUP_ATTRS
from yieldmc.h5layout import STUDY_VOLTAGES as STUDY_VOLTAGES
from yieldmc.h5layout import H5Dataset as H5Dataset
from yieldmc.h5layout import VoltageSets as VoltageSets
from yieldmc.h5layout import check_voltages as check_voltages
from yieldmc.h5layout import read_voltage_rows as read_voltage_rows
from yieldmc.h5layout import write_virtual_file as write_virtual_file
from yieldmc.h5layout import write_voltage_file as write_voltage_file

if TYPE_CHECKING:
    import pandas as pd

#: Version of the on-disk layout (run.json, manifest.json, Parquet and HDF5 files).
#: 2: per-die streams ``DieStream(seed, die)``, ``defect_params`` a typed list of structs
#: (:data:`yieldmc.defect_params.PARAMS_TYPE`); 1: ``default_rng([seed, die])``, ``defect_params`` JSON text.
FORMAT_VERSION = 2


@dataclass(frozen=True)
class Column:
    """One column of the per-die table.

    Attributes
    ----------
    name : str
        Column name in Parquet and pandas.
    arrow_type : pyarrow.DataType
        Exact Arrow type written and required on reading.
    unit : str
        Physical unit; ``"1"`` for a dimensionless ratio, ``""`` for identifiers and text.
    description : str
        One sentence for the docs and the Parquet field metadata.
    deterministic : bool
        ``False`` for columns that differ between two runs of the same config and seed
        (the run's uuid, wall times).
    chunk_invariant : bool
        ``False`` for columns that depend on how the run was split into chunks.
    """

    name: str
    arrow_type: pa.DataType
    unit: str
    description: str
    deterministic: bool = True
    chunk_invariant: bool = True

    @property
    def field(self) -> pa.Field:
        """The Arrow field, with unit and description in its metadata."""
        return pa.field(self.name, self.arrow_type,
                        metadata={"unit": self.unit, "description": self.description})


#: Every column of ``dies/part-*.parquet``, in file order.
DIE_COLUMNS: tuple[Column, ...] = (
    Column("run_id", pa.string(), "", "Unique id (uuid4) of the run that wrote the row; kept on resume.",
           deterministic=False),
    Column("die", pa.int64(), "", "Die index within the run, 0 .. n_dies-1; its random stream is "
           "DieStream(seed, die) (yieldmc.rng.die_generator)."),
    Column("seed", pa.int64(), "", "Root seed of the run (the same on every row)."),
    Column("chunk", pa.int32(), "", "Chunk that simulated the die: die // chunk_size.",
           chunk_invariant=False),
    Column("defect_type", pa.string(), "", "Defect pattern of the die: the kind drawn (mixed resolves "
           "to a spatial kind) when at least one cell is stuck, else none (also when the drawn "
           "pattern hits no cell)."),
    Column("defect_params", PARAMS_TYPE, "", "One struct per array, in array order, of the "
           "pattern parameters as drawn (kept when they hit no cell); fields a kind lacks are null "
           "and unaffected arrays have kind none (fields: yieldmc.defect_params.PARAMS_FIELDS)."),
    Column("layers_affected", pa.string(), "", "Comma-separated indices of the layers with at least "
           "one stuck cell, ascending (\"0,2\"; empty when none)."),
    Column("n_stuck_on", pa.int32(), "cells", "Cells stuck ON (low resistance, G_on) over the whole die."),
    Column("n_stuck_off", pa.int32(), "cells", "Cells stuck OFF (high resistance, G_off) over the whole die."),
    Column("fault_fraction", pa.float64(), "1", "Stuck cells / all cells of the die."),
    Column("accuracy", pa.float64(), "1", "Share of evaluation images classified correctly "
           "(n_correct / n_images)."),
    Column("n_images", pa.int32(), "images", "Evaluation images run through the die."),
    Column("n_correct", pa.int32(), "images", "Evaluation images classified correctly."),
    Column("solver_max_residual", pa.float64(), "1", "Largest relative residual of the die's "
           "circuit solves (iterative solves only: 0 for a die whose arrays were all updated exactly, "
           "so it depends on the engine)."),
    Column("solver_converged", pa.bool_(), "", "True when every circuit solve of the die reached "
           "its tolerance; rows with False must not be trusted."),
    Column("elapsed_s", pa.float64(), "s", "Wall time spent simulating the die.", deterministic=False),
)

#: The optional group of a run whose dies lie on wafers (``config.wafer.wafers > 0``:
#: :func:`is_wafer_run`), in file order; they follow ``chunk``. Runs without wafers do not
#: have them (their files are as before the group existed).
WAFER_COLUMNS: tuple[Column, ...] = (
    Column("lot", pa.int32(), "", "Lot of the die's wafer, 0 .. lots-1."),
    Column("wafer", pa.int32(), "", "Wafer id, unique over the lots: lot * wafers + slot (slot: the wafer's "
           "position in its lot); it keys the wafer's random streams (yieldmc.wafer)."),
    Column("x", pa.int32(), "", "Die grid column on the wafer (yieldmc.wafer.die_sites)."),
    Column("y", pa.int32(), "", "Die grid row on the wafer."),
    Column("r_mm", pa.float64(), "mm", "Distance of the die centre from the wafer centre."),
    Column("expected_defects", pa.float64(), "defects", "Expected killer defects on the die: the local "
           "density (its wafer's, raised inside the wafer's signature) x the die area."),
    Column("n_defects", pa.int32(), "defects", "Killer defects on the die, ~ Poisson(expected_defects); "
           "min(n_defects, eligible arrays) of the arrays of defects.layers receive the die's defects, "
           "and a die with none is fault-free."),
)

COLUMNS_BY_NAME: dict[str, Column] = {c.name: c for c in DIE_COLUMNS}
#: Every column a part may hold: :data:`DIE_COLUMNS` and :data:`WAFER_COLUMNS`.
ALL_COLUMNS_BY_NAME: dict[str, Column] = {c.name: c for c in (*DIE_COLUMNS, *WAFER_COLUMNS)}

#: Columns that differ between two runs with the same config and seed; drop them to
#: compare runs for reproducibility.
NONDETERMINISTIC_COLUMNS: tuple[str, ...] = tuple(c.name for c in DIE_COLUMNS if not c.deterministic)

#: Columns that depend on how a run was executed (identity, timing, chunking); drop them
#: to compare runs that used other worker counts, chunk sizes or backends.
EXECUTION_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in DIE_COLUMNS if not (c.deterministic and c.chunk_invariant))


def die_columns(wafer: bool = False) -> tuple[Column, ...]:
    """The per-die columns in file order: :data:`DIE_COLUMNS`, and with ``wafer`` the
    :data:`WAFER_COLUMNS` after ``chunk``."""
    if not wafer:
        return DIE_COLUMNS
    at = [c.name for c in DIE_COLUMNS].index("chunk") + 1
    return (*DIE_COLUMNS[:at], *WAFER_COLUMNS, *DIE_COLUMNS[at:])


def is_wafer_run(config: Mapping[str, Any]) -> bool:
    """Whether a run's config (run.json's ``config``, a nested dict) places its dies on
    wafers: its parts then hold :data:`WAFER_COLUMNS`."""
    section = config.get("wafer") if isinstance(config, Mapping) else None
    wafers = section.get("wafers", 0) if isinstance(section, Mapping) else 0
    return isinstance(wafers, int) and not isinstance(wafers, bool) and wafers > 0


def arrow_schema(metadata: Mapping[str, str] | None = None, *, wafer: bool = False) -> pa.Schema:
    """The Arrow schema of the per-die table (with ``wafer``, of a wafer run's), with
    optional key-value metadata."""
    return pa.schema([c.field for c in die_columns(wafer)], metadata=dict(metadata) if metadata else None)


def column_units(wafer: bool = False) -> dict[str, str]:
    """``{column name: unit}`` for every column (stored in the Parquet metadata)."""
    return {c.name: c.unit for c in die_columns(wafer)}


def empty_table(*, wafer: bool = False) -> pa.Table:
    """A table with every column (with ``wafer``, the wafer columns too) and no rows."""
    return arrow_schema(wafer=wafer).empty_table()


def conform(table: pa.Table | Mapping[str, Any], *, fill: Mapping[str, Any] | None = None,
            wafer: bool | None = None) -> pa.Table:
    """Return ``table`` with exactly the registry's columns, in order, cast to their types.

    Parameters
    ----------
    table : pyarrow.Table, pandas.DataFrame or mapping of column name -> array-like
        The rows of one chunk.
    fill : mapping, optional
        Values for columns the caller may leave out (a scalar repeated on every row).
        Where ``table`` has the column already, every row must equal the value.
    wafer : bool, optional
        Whether the rows are a wafer run's, with :data:`WAFER_COLUMNS` (:func:`die_columns`);
        default: when ``table`` has any of them.

    Raises
    ------
    ConfigError
        Missing or unknown columns (named), values that do not cast safely to the column's
        type, or a column disagreeing with ``fill``.

    Notes
    -----
    ``defect_params`` may come as per-die lists of dicts (:func:`params_array` builds and
    checks the column), as an array of :data:`PARAMS_TYPE` (kept as it is: the fast path,
    :func:`params_array_from_typed`), as any other Arrow list of structs (pandas'
    inference; rebuilt and checked) or as format 1's JSON text (decoded; slow).
    """
    pd = sys.modules.get("pandas")  # without pandas imported, table cannot be a DataFrame
    if pd is not None and isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    elif not isinstance(table, pa.Table):
        table = pa.table({k: _as_arrow(k, v) for k, v in dict(table).items()})
    present = set(table.column_names)
    fill = dict(fill or {})
    if wafer is None:
        wafer = any(c.name in present for c in WAFER_COLUMNS)
    columns = die_columns(wafer)
    unknown = sorted(present - {c.name for c in columns})
    if unknown and all(n in ALL_COLUMNS_BY_NAME for n in unknown):
        raise ConfigError(f"per-die column(s) {unknown} are a wafer run's (yieldmc.schema.WAFER_COLUMNS), "
                          "and this run has no wafers")
    if unknown:
        raise ConfigError(f"unknown per-die column(s) {unknown}; add them to yieldmc.schema.DIE_COLUMNS "
                          "first (and regenerate docs/data.md)")
    missing = [c.name for c in columns if c.name not in present and c.name not in fill]
    if missing:
        raise ConfigError(f"per-die table lacks column(s) {missing}")
    arrays = []
    for col in columns:
        if col.name in present:
            arr = cast_column(col, table.column(col.name))
            if col.name in fill:
                expected = fill[col.name]
                values = set(arr.to_pylist())
                if values and values != {expected}:
                    raise ConfigError(f"column {col.name!r} holds {sorted(values, key=str)[:5]}, "
                                      f"expected {expected!r} on every row")
        else:
            arr = cast_column(col, pa.array([fill[col.name]] * table.num_rows))
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=arrow_schema(wafer=wafer))


def _as_arrow(name: str, values: Any) -> pa.Array:
    col = ALL_COLUMNS_BY_NAME.get(name)
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    if name == "defect_params":
        try:
            values = list(values)
        except TypeError:
            raise ConfigError(f"column 'defect_params' must hold one list of dicts per die, got "
                              f"{type(values).__name__}") from None
        if values and all(isinstance(v, str) for v in values):
            return params_from_json(values)  # run format 1's JSON text
        return params_array(values)
    try:
        if isinstance(values, np.ndarray):
            return pa.array(values)
        return pa.array(list(values), type=col.arrow_type if col else None)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
        raise ConfigError(f"column {name!r}: cannot convert values to Arrow ({exc})") from None


def cast_column(col: Column, arr: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    if arr.type == col.arrow_type:
        return arr
    if col.name == "defect_params":
        # JSON text (format 1), or lists of structs of other fields (pandas' inference):
        # rebuilt and validated (an Arrow cast would drop unknown fields silently)
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            return params_from_json(arr)
        return params_array(arr.to_pylist())
    try:
        return arr.cast(col.arrow_type, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise ConfigError(f"column {col.name!r} of type {arr.type} does not convert to "
                          f"{col.arrow_type}: {exc}") from None


#: Older types of a column that readers convert (:func:`upgrade_table`): format 1 wrote
#: ``defect_params`` as JSON text.
UPGRADABLE_TYPES: dict[str, tuple[pa.DataType, ...]] = {"defect_params": (pa.string(), pa.large_string())}


def check_schema(schema: pa.Schema, columns: Iterable[str] | None = None, *, source: str = "table",
                 upgradable: bool = False) -> None:
    """Raise :class:`ConfigError` unless ``schema`` has ``columns`` (default: all) with their types.

    The message names every missing column and every type mismatch, and ``source``
    (a file name) says where. With ``upgradable``, the older types of
    :data:`UPGRADABLE_TYPES` pass too (a part of an older run format, which
    :func:`upgrade_table` converts after reading: :func:`read_dies_part` does both).
    ``columns`` may name :data:`WAFER_COLUMNS` too (a wafer run's).
    """
    names = list(columns) if columns is not None else [c.name for c in DIE_COLUMNS]
    unknown = [n for n in names if n not in ALL_COLUMNS_BY_NAME]
    if unknown:
        raise ConfigError(f"unknown per-die column(s) {unknown}; valid: {list(ALL_COLUMNS_BY_NAME)}")
    missing = [n for n in names if schema.get_field_index(n) < 0]
    if missing:
        raise ConfigError(f"{source} lacks per-die column(s) {missing}; it was not written by this "
                          "version of yieldmc or is damaged")
    wrong = [f"{n} is {schema.field(n).type}, expected {ALL_COLUMNS_BY_NAME[n].arrow_type}"
             for n in names if schema.field(n).type != ALL_COLUMNS_BY_NAME[n].arrow_type
             and not (upgradable and (schema.field(n).type in UPGRADABLE_TYPES.get(n, ())
                                      or n == "defect_params" and is_earlier_type(schema.field(n).type)))]
    if wrong:
        raise ConfigError(f"{source} has column(s) of the wrong type: {'; '.join(wrong)}")


def dies_to_pandas(table: pa.Table) -> pd.DataFrame:
    """A per-die table as a pandas DataFrame, ``defect_params`` as lists of dicts.

    ``table.to_pandas()``, except that ``defect_params`` holds, per die, a list of dicts
    without the null fields (:func:`params_to_python`: the dicts
    :func:`yieldmc.defects.sample_die` returned, with Python ints and lists, comparable
    with ``==``) instead of pyarrow's default: per die a numpy array of dicts holding every
    field, ``None`` where null, lists as numpy arrays and integer fields with nulls as
    floats.

    Parameters
    ----------
    table : pyarrow.Table
        Some columns of the per-die table, with or without ``defect_params``.

    Returns
    -------
    pandas.DataFrame
    """
    import pandas as pd

    i = table.schema.get_field_index("defect_params")
    if i < 0:
        return table.to_pandas()
    df = table.remove_column(i).to_pandas()
    df.insert(i, "defect_params", pd.Series(params_to_python(table.column(i)), index=df.index, dtype=object))
    return df


def upgrade_table(table: pa.Table) -> pa.Table:
    """``table`` (some columns of a per-die part) with the columns of an older run format
    converted to today's types (:data:`UPGRADABLE_TYPES`): format 1's JSON ``defect_params``
    becomes :data:`PARAMS_TYPE`. A table of today's format comes back unchanged."""
    i = table.schema.get_field_index("defect_params")
    if i < 0 or table.schema.field(i).type == PARAMS_TYPE:
        return table
    col = COLUMNS_BY_NAME["defect_params"]
    return table.set_column(i, col.field, cast_column(col, table.column(i)))


def read_dies_part(path: str | os.PathLike, columns: Sequence[str] | None = None) -> pa.Table:
    """The per-die table of one Parquet part, schema-checked, in today's types.

    Parameters
    ----------
    path : path
        A ``dies/part-*.parquet`` file, of any run format this yieldmc reads.
    columns : sequence of str, optional
        Columns to read (default all of :data:`DIE_COLUMNS`, and of :data:`WAFER_COLUMNS`
        when the part is a wafer run's).

    Raises
    ------
    ConfigError
        A column is unknown, missing from the file or of another type (named; older types
        of :data:`UPGRADABLE_TYPES` are converted instead).
    """
    import pyarrow.parquet as pq

    file_schema = pq.read_schema(path)
    if columns is None:
        names = [c.name for c in die_columns(file_schema.get_field_index(WAFER_COLUMNS[0].name) >= 0)]
    else:
        names = list(columns)
    check_schema(file_schema, names, source=str(path), upgradable=True)
    return upgrade_table(pq.read_table(path, columns=names))


# --- encoders for the text columns (and format 1's JSON defect_params) -----------------------

def json_default(obj: Any) -> Any:
    """``json.dumps(default=...)`` hook: numpy scalars, arrays, tuples and sets as JSON values."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def encode_layers(layers: Iterable[int]) -> str:
    """The ``layers_affected`` cell: ascending unique layer indices joined by commas.

    >>> encode_layers([2, 0, 2])
    '0,2'
    >>> encode_layers([])
    ''
    """
    return ",".join(str(int(x)) for x in sorted({int(x) for x in layers}))


def decode_layers(text: str) -> list[int]:
    """Inverse of :func:`encode_layers`: ``"0,2"`` -> ``[0, 2]``, ``""`` -> ``[]``."""
    return [int(x) for x in text.split(",") if x.strip()]


# --- Parquet provenance ----------------------------------------------------------------------

def parquet_metadata(run_id: str, seed: int, chunk: int, config: Mapping[str, Any]) -> dict[str, str]:
    """Key-value metadata of a chunk's Parquet file: provenance and column units (of a
    wafer run's columns too when ``config`` places the dies on wafers)."""
    return {"yieldmc.run_id": run_id, "yieldmc.version": yieldmc.__version__,
            "yieldmc.format_version": str(FORMAT_VERSION), "yieldmc.seed": str(seed),
            "yieldmc.chunk": str(chunk), "yieldmc.config": json.dumps(config, sort_keys=True),
            "yieldmc.device": str(config.get("device", {}).get("model", "linear")),
            "yieldmc.units": json.dumps(column_units(is_wafer_run(config)))}


# --- documentation -----------------------------------------------------------------------

def _reproducible(col: Column) -> str:
    if not col.deterministic:
        return "no"
    return "yes" if col.chunk_invariant else "per chunk size"


def type_name(t: pa.DataType) -> str:
    """An Arrow type as the docs show it: nested types without their list item names, the
    struct of ``defect_params`` as ``struct`` (:func:`params_markdown` lists its fields)."""
    if t == PARAMS_STRUCT:
        return "struct"
    if pa.types.is_list(t):
        return f"list<{type_name(t.value_type)}>"
    return str(t)


def schema_markdown(columns: Sequence[Column] = DIE_COLUMNS) -> str:
    """The Markdown table of every per-die column (or of ``columns``, e.g.
    :data:`WAFER_COLUMNS`), as ``docs/data.md`` holds it."""
    lines = ["| column | Arrow type | unit | reproducible | description |",
             "|---|---|---|---|---|"]
    for c in columns:
        unit = c.unit or "-"
        desc = c.description.replace("|", "\\|")
        lines.append(f"| `{c.name}` | `{type_name(c.arrow_type)}` | {unit} | {_reproducible(c)} | {desc} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    from yieldmc.defect_params import params_markdown

    which = sys.argv[1:2]
    from yieldmc.tables import CORRECTED_TABLE, study_markdown

    text = {"params": params_markdown, "corrected": CORRECTED_TABLE.markdown, "study": study_markdown,
            "wafer": lambda: schema_markdown(WAFER_COLUMNS)}
    print(text.get(which[0], schema_markdown)() if which else schema_markdown(), end="")

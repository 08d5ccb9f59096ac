"""What a run's files contain, as code: the per-die Parquet table and the HDF5 voltage layout.

:mod:`yieldmc.store` decides *where and when* files are written (run directory, atomic
renames, manifest); this module decides *what is inside* them.

Every column of ``<out>/dies/part-*.parquet`` is a :class:`Column` in :data:`DIE_COLUMNS`.
:mod:`yieldmc.store` builds the Arrow schema from it (:func:`arrow_schema`), checks tables
against it before writing (:func:`conform`) and files against it when reading
(:func:`check_schema`, :func:`read_dies_part`); ``docs/data.md`` holds the tables
:func:`schema_markdown` and :func:`params_markdown` render, and tests keep them identical.
Regenerate the docs tables with::

    python -m yieldmc.schema          # the per-die columns
    python -m yieldmc.schema params   # the fields of defect_params

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
* Voltages go to HDF5, one file per chunk (:func:`write_voltage_file`): a group per image
  set holding ``voltages`` float32 (dies, images, outputs) and ``labels``; after a run,
  :func:`write_virtual_file` spans all parts with HDF5 virtual datasets. The axes carry
  HDF5 dimension scales ``die``, ``image``, ``output`` (netCDF-4's dimensions), so xarray
  opens a group (``engine="h5netcdf"``) with named dimensions and coordinates.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import pyarrow as pa

import yieldmc
from yieldmc.defect_params import PARAMS_STRUCT, PARAMS_TYPE, params_array, params_from_json, params_to_python
from yieldmc.errors import ConfigError

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

COLUMNS_BY_NAME: dict[str, Column] = {c.name: c for c in DIE_COLUMNS}

#: Columns that differ between two runs with the same config and seed; drop them to
#: compare runs for reproducibility.
NONDETERMINISTIC_COLUMNS: tuple[str, ...] = tuple(c.name for c in DIE_COLUMNS if not c.deterministic)

#: Columns that depend on how a run was executed (identity, timing, chunking); drop them
#: to compare runs that used other worker counts, chunk sizes or backends.
EXECUTION_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in DIE_COLUMNS if not (c.deterministic and c.chunk_invariant))


def arrow_schema(metadata: Mapping[str, str] | None = None) -> pa.Schema:
    """The Arrow schema of the per-die table, with optional key-value metadata."""
    return pa.schema([c.field for c in DIE_COLUMNS], metadata=dict(metadata) if metadata else None)


def column_units() -> dict[str, str]:
    """``{column name: unit}`` for every column (stored in the Parquet metadata)."""
    return {c.name: c.unit for c in DIE_COLUMNS}


def empty_table() -> pa.Table:
    """A table with every column and no rows."""
    return arrow_schema().empty_table()


def conform(table: pa.Table | Mapping[str, Any], *, fill: Mapping[str, Any] | None = None) -> pa.Table:
    """Return ``table`` with exactly the registry's columns, in order, cast to their types.

    Parameters
    ----------
    table : pyarrow.Table, pandas.DataFrame or mapping of column name -> array-like
        The rows of one chunk.
    fill : mapping, optional
        Values for columns the caller may leave out (a scalar repeated on every row).
        Where ``table`` has the column already, every row must equal the value.

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
    unknown = sorted(present - set(COLUMNS_BY_NAME))
    if unknown:
        raise ConfigError(f"unknown per-die column(s) {unknown}; add them to yieldmc.schema.DIE_COLUMNS "
                          "first (and regenerate docs/data.md)")
    missing = [c.name for c in DIE_COLUMNS if c.name not in present and c.name not in fill]
    if missing:
        raise ConfigError(f"per-die table lacks column(s) {missing}")
    arrays = []
    for col in DIE_COLUMNS:
        if col.name in present:
            arr = _cast(col, table.column(col.name))
            if col.name in fill:
                expected = fill[col.name]
                values = set(arr.to_pylist())
                if values and values != {expected}:
                    raise ConfigError(f"column {col.name!r} holds {sorted(values, key=str)[:5]}, "
                                      f"expected {expected!r} on every row")
        else:
            arr = _cast(col, pa.array([fill[col.name]] * table.num_rows))
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=arrow_schema())


def _as_arrow(name: str, values: Any) -> pa.Array:
    col = COLUMNS_BY_NAME.get(name)
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


def _cast(col: Column, arr: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
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
    """
    names = list(columns) if columns is not None else [c.name for c in DIE_COLUMNS]
    unknown = [n for n in names if n not in COLUMNS_BY_NAME]
    if unknown:
        raise ConfigError(f"unknown per-die column(s) {unknown}; valid: {[c.name for c in DIE_COLUMNS]}")
    missing = [n for n in names if schema.get_field_index(n) < 0]
    if missing:
        raise ConfigError(f"{source} lacks per-die column(s) {missing}; it was not written by this "
                          "version of yieldmc or is damaged")
    wrong = [f"{n} is {schema.field(n).type}, expected {COLUMNS_BY_NAME[n].arrow_type}"
             for n in names if schema.field(n).type != COLUMNS_BY_NAME[n].arrow_type
             and not (upgradable and schema.field(n).type in UPGRADABLE_TYPES.get(n, ()))]
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
    return table.set_column(i, col.field, _cast(col, table.column(i)))


def read_dies_part(path: str | os.PathLike, columns: Sequence[str] | None = None) -> pa.Table:
    """The per-die table of one Parquet part, schema-checked, in today's types.

    Parameters
    ----------
    path : path
        A ``dies/part-*.parquet`` file, of any run format this yieldmc reads.
    columns : sequence of str, optional
        Columns to read (default all of :data:`DIE_COLUMNS`).

    Raises
    ------
    ConfigError
        A column is unknown, missing from the file or of another type (named; older types
        of :data:`UPGRADABLE_TYPES` are converted instead).
    """
    import pyarrow.parquet as pq

    names = [c.name for c in DIE_COLUMNS] if columns is None else list(columns)
    check_schema(pq.read_schema(path), names, source=str(path), upgradable=True)
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


# --- Parquet provenance and the HDF5 voltage layout -------------------------------------------

def parquet_metadata(run_id: str, seed: int, chunk: int, config: Mapping[str, Any]) -> dict[str, str]:
    """Key-value metadata of a chunk's Parquet file: provenance and column units."""
    return {"yieldmc.run_id": run_id, "yieldmc.version": yieldmc.__version__,
            "yieldmc.format_version": str(FORMAT_VERSION), "yieldmc.seed": str(seed),
            "yieldmc.chunk": str(chunk), "yieldmc.config": json.dumps(config, sort_keys=True),
            "yieldmc.device": str(config.get("device", {}).get("model", "linear")),
            "yieldmc.units": json.dumps(column_units())}


#: Target size of one HDF5 chunk of a voltage tensor (bytes); an HDF5 chunk is whole dies.
H5_CHUNK_BYTES = 1 << 18
_DIM_LABELS = ("die", "image", "output")
_SCALE_ATTRS = ("DIMENSION_LIST", "DIMENSION_LABELS", "REFERENCE_LIST", "CLASS", "NAME")
VoltageSets = dict[str, tuple[np.ndarray, np.ndarray]]


def check_voltages(voltages: Mapping[str, Any] | None, labels: Mapping[str, Any] | None, n_rows: int,
                   mode: str) -> VoltageSets:
    """Validate a chunk's voltages against the run's ``store_voltages`` ``mode``.

    Returns ``{image set: (float32 (n_rows, images, outputs), int16 labels (images,))}``;
    empty when ``mode`` is ``"none"``.
    """
    voltages, labels = dict(voltages or {}), dict(labels or {})
    if mode == "none":
        if voltages:
            raise ConfigError("this run stores no voltages (store_voltages='none') but some were given")
        return {}
    if not voltages or (mode == "test" and set(voltages) != {"test"}):
        want = "{'test': array}" if mode == "test" else "a dict of image set -> array"
        raise ConfigError(f"store_voltages={mode!r} needs voltages={want}, got {sorted(voltages)}")
    if set(labels) != set(voltages):
        raise ConfigError(f"labels must have the keys of voltages {sorted(voltages)}, got {sorted(labels)}")
    out = {}
    for name, v in voltages.items():
        v, y = np.asarray(v), np.asarray(labels[name])
        if not re.fullmatch(r"[A-Za-z0-9_+-]+", name):
            raise ConfigError(f"image set name {name!r} must be letters, digits, _, + or -")
        if v.ndim != 3 or v.shape[0] != n_rows or 0 in v.shape:
            raise ConfigError(f"voltages[{name!r}] must have shape ({n_rows}, images, outputs), got {v.shape}")
        if y.shape != (v.shape[1],) or not np.issubdtype(y.dtype, np.integer) or \
                (y.size and not 0 <= y.min() <= y.max() < 2**15):
            raise ConfigError(f"labels[{name!r}] must be {v.shape[1]} class indices in [0, 32767]")
        out[name] = (v.astype(np.float32, copy=False), y.astype(np.int16))
    return out


def _scale(parent: h5py.Group, name: str, data: np.ndarray, description: str) -> h5py.Dataset:
    """A coordinate dataset ``parent/name`` made an HDF5 dimension scale named ``name``."""
    ds = parent.create_dataset(name, data=data)
    ds.attrs["description"] = description
    ds.make_scale(name)
    return ds


def _attach(ds: h5py.Dataset, scales: Sequence[h5py.Dataset], labels: Sequence[str]) -> None:
    """Label every axis of ``ds`` and attach its dimension scale (netCDF-4 / xarray dims)."""
    for axis, (scale, label) in enumerate(zip(scales, labels, strict=True)):
        ds.dims[axis].label = label
        ds.dims[axis].attach_scale(scale)


_DIE_DESCRIPTION = "die index of each slab along axis 0 of */voltages"
_IMAGE_DESCRIPTION = "index of each image within its image set (axis 1 of voltages, axis 0 of labels)"
_OUTPUT_DESCRIPTION = "class each output neuron stands for (axis 2 of voltages)"
_LABELS_DESCRIPTION = "true class of each image (axis 1 of voltages)"
_VOLTAGES_DESCRIPTION = ("output voltage of each die (axis 0), image (axis 1) and output neuron (axis 2); "
                         "the prediction is the argmax over axis 2")


def _set_scales(group: h5py.Group, dies: np.ndarray, n_images: int,
                classes: np.ndarray) -> tuple[h5py.Dataset, h5py.Dataset, h5py.Dataset]:
    """An image set's coordinates ``die``, ``image``, ``output``, each a dimension scale.

    The group holds its own copy of ``die`` because netCDF readers opening one group
    (xarray ``group="test"``) see only that group's coordinate variables.
    """
    die = _scale(group, "die", np.asarray(dies, dtype=np.int64), _DIE_DESCRIPTION)
    image = _scale(group, "image", np.arange(n_images, dtype=np.int64), _IMAGE_DESCRIPTION)
    output = _scale(group, "output", np.asarray(classes).astype(np.int16), _OUTPUT_DESCRIPTION)
    return die, image, output


def write_voltage_file(path: Any, dies: np.ndarray, sets: VoltageSets, attrs: Mapping[str, Any],
                       output_classes: Sequence[int] | None = None, compression: str | None = None) -> None:
    """Write one chunk's voltage file (the layout docs/data.md describes).

    Root: ``die`` (int64 die indices) and ``attrs``; per image set ``name``:
    ``name/voltages`` float32 (dies, images, outputs) in volts, HDF5 chunks
    of whole dies, attributes ``units``, ``image_set``, ``output_classes``, ``description``;
    ``name/labels`` int16 (images,); the coordinates ``name/die`` (a copy of ``die``),
    ``name/image`` (int64 image index) and ``name/output`` (int16 class of each output),
    HDF5 dimension scales attached to the axes of the same name, so netCDF-4 readers
    (``xarray.open_dataset(path, engine="h5netcdf", group=name)``) see named dimensions with
    coordinates. The root ``die`` is a dimension scale too (the root group's coordinate).
    ``compression``: None (uncompressed, the default: fastest to write and read), ``"lzf"``
    or ``"gzip"`` (both with the shuffle filter; gzip about 16 % smaller on output voltages).
    """
    with h5py.File(path, "w") as f:
        f.attrs.update(dict(attrs))
        dies = np.asarray(dies, dtype=np.int64)
        _scale(f, "die", dies, _DIE_DESCRIPTION)
        for name, (v, y) in sets.items():
            classes = np.arange(v.shape[2]) if output_classes is None else np.asarray(output_classes)
            if classes.shape != (v.shape[2],):
                raise ConfigError(f"output_classes must have {v.shape[2]} entries, got {classes.shape}")
            per_die = v.shape[1] * v.shape[2] * v.itemsize
            chunks = (max(1, min(v.shape[0], H5_CHUNK_BYTES // per_die)),) + v.shape[1:]
            group = f.create_group(name)
            die, image, output = _set_scales(group, dies, v.shape[1], classes)
            ds = group.create_dataset("voltages", data=v, chunks=chunks, compression=compression,
                                      shuffle=compression is not None)
            ds.attrs.update({"units": "V", "image_set": name, "output_classes": classes.astype(np.int16),
                             "description": _VOLTAGES_DESCRIPTION})
            _attach(ds, (die, image, output), _DIM_LABELS)
            lab = group.create_dataset("labels", data=y)
            lab.attrs["description"] = _LABELS_DESCRIPTION
            _attach(lab, (image,), ("image",))



def write_virtual_file(path: Any, parts: Sequence[tuple[str, int, int]], n_dies: int,
                       attrs: Mapping[str, Any], *, folder: str | os.PathLike | None = None) -> None:
    """Write ``<set>/voltages`` as HDF5 virtual datasets spanning chunk files, with coordinates.

    ``parts`` lists ``(file name relative to folder, die_start, die_stop)``; ``folder``, where
    the parts are, defaults to ``path``'s folder (give it when ``path`` is a file object, e.g.
    an image built in memory). The virtual datasets refer to the parts by those relative
    names, so the file must end up in ``folder``. The first part gives the image sets,
    shapes, labels and output classes (parts written before the dimension scales existed
    work too). ``die`` (root and in each set) is a plain int64 dataset ``0 .. n_dies-1``;
    with each set's ``image`` and ``output`` it is a dimension scale attached to the virtual
    datasets: the same layout as a part. Dies no part covers read as NaN.
    """
    folder = Path(path).parent if folder is None else Path(folder)
    with h5py.File(folder / parts[0][0], "r") as f0:
        sets = {}
        for name in f0:
            if not isinstance(f0[name], h5py.Group):
                continue
            ds = f0[f"{name}/voltages"]
            set_attrs = {k: v for k, v in ds.attrs.items() if k not in _SCALE_ATTRS}
            classes = (f0[f"{name}/output"][()] if f"{name}/output" in f0
                       else set_attrs.get("output_classes", np.arange(ds.shape[2])))
            sets[name] = (ds.shape[1:], f0[f"{name}/labels"][()], set_attrs, classes)
    with h5py.File(path, "w", libver="latest") as f:
        f.attrs.update(dict(attrs))
        dies = np.arange(n_dies, dtype=np.int64)
        _scale(f, "die", dies, _DIE_DESCRIPTION)
        for name, (shape, labels, set_attrs, classes) in sets.items():
            group = f.create_group(name)
            die, image, output = _set_scales(group, dies, shape[0], classes)
            layout = h5py.VirtualLayout((n_dies,) + shape, np.float32)
            for part, start, stop in parts:
                layout[start:stop] = h5py.VirtualSource(part, f"{name}/voltages", (stop - start,) + shape)
            ds = group.create_virtual_dataset("voltages", layout, fillvalue=np.nan)
            ds.attrs.update(set_attrs)
            _attach(ds, (die, image, output), _DIM_LABELS)
            lab = group.create_dataset("labels", data=labels)
            lab.attrs["description"] = _LABELS_DESCRIPTION
            _attach(lab, (image,), ("image",))


def read_voltage_rows(path: Any, image_set: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slabs ``rows`` (positions within the file, any order, repeats allowed) and the labels."""
    with h5py.File(path, "r") as f:
        if f"{image_set}/voltages" not in f:
            raise ConfigError(f"image set {image_set!r} is not stored in {path}; stored: {sorted(f)}")
        ds = f[f"{image_set}/voltages"]
        uniq, inverse = np.unique(rows, return_inverse=True)
        if uniq[-1] - uniq[0] + 1 == uniq.size:  # contiguous: one hyperslab, much faster than a list
            block = ds[int(uniq[0]):int(uniq[-1]) + 1]
        else:
            block = ds[uniq.tolist()]
        return block[inverse], f[f"{image_set}/labels"][()]


# --- documentation -----------------------------------------------------------------------

def _reproducible(col: Column) -> str:
    if not col.deterministic:
        return "no"
    return "yes" if col.chunk_invariant else "per chunk size"


def _type_name(t: pa.DataType) -> str:
    """An Arrow type as the docs show it: nested types without their list item names, the
    struct of ``defect_params`` as ``struct`` (:func:`params_markdown` lists its fields)."""
    if t == PARAMS_STRUCT:
        return "struct"
    if pa.types.is_list(t):
        return f"list<{_type_name(t.value_type)}>"
    return str(t)


def schema_markdown() -> str:
    """The Markdown table of every per-die column, as ``docs/data.md`` holds it."""
    lines = ["| column | Arrow type | unit | reproducible | description |",
             "|---|---|---|---|---|"]
    for c in DIE_COLUMNS:
        unit = c.unit or "-"
        desc = c.description.replace("|", "\\|")
        lines.append(f"| `{c.name}` | `{_type_name(c.arrow_type)}` | {unit} | {_reproducible(c)} | {desc} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    from yieldmc.defect_params import params_markdown

    print(params_markdown() if sys.argv[1:] == ["params"] else schema_markdown(), end="")

"""The tables yieldmc writes besides a run's per-die parts, as code: ``corrected/<mode>.parquet``
and the study's CSV files.

Each is a :class:`Table` of :data:`TABLES` (its columns are :class:`yieldmc.schema.Column`,
as the per-die ones): writers write :meth:`Table.build`, :meth:`Table.check` and
:meth:`Table.read_csv` check a file, and ``docs/data.md`` holds :meth:`Table.markdown` and
:func:`study_markdown` (``python -m yieldmc.schema corrected`` / ``study``; tests keep them
identical).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from yieldmc.errors import ConfigError
from yieldmc.h5layout import study_voltages_markdown
from yieldmc.schema import Column, cast_column, type_name

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Table:
    """A table yieldmc writes besides the per-die parts: its file and columns.

    Attributes
    ----------
    name : str
        Key in :data:`TABLES` (``"corrected"``, ``"types"``, ...).
    path : str
        The file, relative to a run directory (``corrected/<mode>.parquet``, written by
        ``yieldmc correct``) or to the study's ``--out`` (``types.csv``, ``yieldmc reproduce``).
    columns : tuple of Column
        Every column, in file order.
    """

    name: str
    path: str
    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        """Column names in file order."""
        return [c.name for c in self.columns]

    def arrow_schema(self, metadata: Mapping[str, str] | None = None) -> pa.Schema:
        """The Arrow schema: every column with its unit and description in the field metadata."""
        return pa.schema([c.field for c in self.columns], metadata=dict(metadata) if metadata else None)

    def build(self, data: pa.Table | Mapping[str, Any], metadata: Mapping[str, str] | None = None) -> pa.Table:
        """``data`` (an Arrow table, a DataFrame or column name -> values) as exactly this table.

        Raises
        ------
        ConfigError
            Missing or unknown columns (named), or values that do not convert safely to a
            column's type.
        """
        pd = sys.modules.get("pandas")
        if pd is not None and isinstance(data, pd.DataFrame):
            data = pa.Table.from_pandas(data, preserve_index=False)
        given = data.column_names if isinstance(data, pa.Table) else list(data)
        unknown, missing = sorted(set(given) - set(self.names)), [n for n in self.names if n not in given]
        if unknown or missing:
            raise ConfigError(f"the {self.name} table ({self.path}) needs exactly the columns of "
                              f"yieldmc.tables.TABLES; unknown {unknown}, missing {missing}")
        arrays = []
        for col in self.columns:
            values = data.column(col.name) if isinstance(data, pa.Table) else data[col.name]
            arrays.append(cast_column(col, values if isinstance(values, (pa.Array, pa.ChunkedArray))
                                else pa.array(np.asarray(values))))
        return pa.Table.from_arrays(arrays, schema=self.arrow_schema(metadata))

    def check(self, schema: pa.Schema, *, source: str | None = None) -> None:
        """Raise :class:`ConfigError` unless ``schema`` has exactly these columns, in order, with their types."""
        found = [(f.name, f.type) for f in schema]
        want = [(c.name, c.arrow_type) for c in self.columns]
        if found != want:
            raise ConfigError(f"{source or self.path} does not hold the {self.name} table: columns "
                              f"{[f'{n}: {t}' for n, t in found]}, expected {[f'{n}: {t}' for n, t in want]}")

    def read_csv(self, path: str | os.PathLike) -> pd.DataFrame:
        """Read a CSV file of this table with the declared types (after checking its header).

        Raises
        ------
        ConfigError
            The header is not this table's, or a value does not parse as its column's type.
        """
        import pandas as pd

        header = list(pd.read_csv(path, nrows=0).columns)
        if header != self.names:
            raise ConfigError(f"{path} has columns {header}, expected {self.names} ({self.name} table)")
        types = {c.name: str if pa.types.is_string(c.arrow_type) else c.arrow_type.to_pandas_dtype()
                 for c in self.columns}
        try:
            return pd.read_csv(path, dtype=types, keep_default_na=False)
        except ValueError as exc:
            raise ConfigError(f"{path}: a value does not parse as its column's type: {exc}") from None

    def markdown(self) -> str:
        """The Markdown table of the columns, as ``docs/data.md`` holds it."""
        lines = ["| column | Arrow type | unit | description |", "|---|---|---|---|"]
        lines += [f"| `{c.name}` | `{type_name(c.arrow_type)}` | {c.unit or '-'} | {c.description} |"
                  for c in self.columns]
        return "\n".join(lines) + "\n"


def _share(name: str, description: str) -> Column:
    return Column(name, pa.float64(), "1", description)


#: ``corrected/<mode>.parquet``, one row per corrected die (:mod:`yieldmc.correction`).
CORRECTED_TABLE = Table("corrected", "corrected/<mode>.parquet", (
    Column("die", pa.int64(), "", "Die index, as in the die table (join on it for `accuracy` before correction)."),
    Column("accuracy_corrected", pa.float64(), "1", "Share of the test images the corrected die classifies "
           "correctly (n_correct_corrected / images)."),
    Column("n_correct_corrected", pa.int32(), "images", "Test images classified correctly after correction."),
    Column("role", pa.string(), "", "`corrected` (per-die: the die's own corrector, trained on its "
           "training-image voltages) or `evaluated` (population: a die of the held-out half, scored with the "
           "corrector trained on the other half)."),
    Column("mode", pa.string(), "", "`per-die` or `population` (the same on every row)."),
    Column("method", pa.string(), "", "The corrector: `rff-ridge`, `linear-ridge` or `mlp` (population "
           "mode: always `mlp`)."),
    Column("corrector_params", pa.int32(), "", "Trainable parameters of one corrector."),
))

_TYPE = Column("defect_type", pa.string(), "", "Spatial defect kind of the circuits (`defects.SPATIAL_KINDS`).")
_PARAMS = Column("corrector_params", pa.int64(), "", "Trainable parameters of one corrector.")

#: The study's files (:mod:`yieldmc.reproduce`), relative to its ``--out``.
STUDY_TABLES: tuple[Table, ...] = (
    Table("types", "types.csv", (
        _TYPE,
        Column("severity", pa.float64(), "1", "Share of stuck cells on every array (`defects.severity = [s, s]`)."),
        Column("layers", pa.string(), "", "Layers with defects: `all`."),
        Column("n_instances", pa.int64(), "circuits", "Circuits of this type and severity (dies 0 .. n-1)."),
        _share("accuracy_fault_free", "Test accuracy of the fault-free die (with IR drop)."),
        _share("accuracy_defective_mean", "Mean over the circuits of the raw argmax test accuracy."),
        _share("accuracy_defective_std", "Its sample standard deviation (ddof 1)."),
        _share("accuracy_corrected_mean", "Mean test accuracy of each circuit's own corrector (MLP), "
               "trained on that circuit's training-image voltages."),
        _share("accuracy_corrected_std", "Its sample standard deviation (ddof 1)."),
        _PARAMS,
    )),
    Table("protocols", "protocols.csv", (
        Column("protocol", pa.string(), "", "`A` (train on one canonical type, test on another), `B` (leave one "
               "type out), `C` (defects on one layer, leave one type out) or `D` (a family of drawn dies, "
               "tested on unseen dies); `yieldmc.protocols`."),
        Column("severity", pa.float64(), "1", "Share of stuck cells on every defective array."),
        Column("on_mode", pa.string(), "", "`on` (every stuck cell ON), `off` (every one OFF) or `cell` (ON/OFF "
               "per cell from one map shared by all types)."),
        Column("scheme", pa.string(), "", "Weight mapping of the die (`mapping.scheme`)."),
        Column("layers", pa.string(), "", "Layers with defects: `all`, or the one layer of protocol C."),
        Column("train_type", pa.string(), "", "Type the corrector was trained on; `others`: every other type, "
               "stacked; `mixed`: every type's family (D)."),
        Column("test_type", pa.string(), "", "Type of the test circuit."),
        Column("test_die", pa.int64(), "", "Protocol D: the unseen die tested; -1 for canonical circuits."),
        _share("accuracy_raw", "Raw argmax test accuracy of the test circuit."),
        _share("accuracy_corrected", "Test accuracy of the training set's corrector on the test circuit."),
        _share("accuracy_own", "Test accuracy of the test circuit's own corrector (fitted on its training images)."),
        Column("n_train_circuits", pa.int64(), "circuits", "Circuits whose training voltages the corrector saw."),
        _PARAMS,
    )),
    Table("protocol_summary", "protocol_summary.csv", (
        Column("protocol", pa.string(), "", "As in `protocols.csv`."),
        Column("severity", pa.float64(), "1", "As in `protocols.csv`."),
        Column("on_mode", pa.string(), "", "As in `protocols.csv`."),
        Column("scheme", pa.string(), "", "As in `protocols.csv`."),
        Column("layers", pa.string(), "", "As in `protocols.csv`."),
        Column("training", pa.string(), "", "What the corrector saw: `own` (A's diagonal), `one type` (A), "
               "`others` (B, C), `family` or `mixed` (D)."),
        Column("n", pa.int64(), "rows", "Rows of `protocols.csv` averaged."),
        _share("accuracy_raw", "Mean raw accuracy of the test circuits."),
        _share("accuracy_corrected", "Mean corrected accuracy."),
        _share("accuracy_own", "Mean accuracy of the test circuits' own correctors."),
        _share("transfer_gain", "accuracy_corrected - accuracy_raw: positive where transfer helps."),
        _share("gain_sem", "Standard error of the mean per-row gain (0 for one row)."),
    )),
    Table("size_sweep", "size_sweep.csv", (
        _TYPE,
        Column("corrector", pa.string(), "", "`linear` (logistic regression) or `mlp-H` (`H`: hidden sizes "
               "joined by `x`)."),
        Column("depth", pa.int64(), "layers", "Hidden layers (0: linear)."),
        Column("hidden", pa.string(), "", "Hidden sizes joined by `x` (empty for linear)."),
        _PARAMS,
        _share("accuracy_raw_mean", "Mean raw argmax accuracy of the circuits: the floor."),
        _share("accuracy_corrected_mean", "Mean corrected test accuracy over the sweep's circuits."),
        _share("accuracy_corrected_std", "Its sample standard deviation (0 for one circuit)."),
        Column("n_circuits", pa.int64(), "circuits", "Circuits of this type in the sweep."),
    )),
    Table("budget", "budget.csv", (
        _TYPE,
        Column("method", pa.string(), "", "`mlp` (the study's corrector) or `rff-ridge` (the per-die "
               "population corrector)."),
        Column("budget", pa.int64(), "images", "Labelled calibration images asked for."),
        Column("n_calibration", pa.int64(), "images", "Images used: min(budget, training images), a stratified "
               "subsample, nested across budgets."),
        _PARAMS,
        _share("accuracy_raw_mean", "Mean raw argmax accuracy of the circuits."),
        _share("accuracy_corrected_mean", "Mean corrected test accuracy."),
        _share("accuracy_corrected_std", "Its sample standard deviation (0 for one circuit)."),
        Column("n_circuits", pa.int64(), "circuits", "Circuits of this type."),
    )),
    Table("yield", "yield.csv", (
        _share("threshold", "Accuracy a die must reach to count as good."),
        Column("n", pa.int64(), "dies", "Dies of the population."),
        Column("k", pa.int64(), "dies", "Dies at or above the threshold."),
        _share("yield", "k / n."),
        _share("lo", "Lower end of the 95 % interval of the yield."),
        _share("hi", "Upper end of the 95 % interval of the yield."),
        Column("method", pa.string(), "", "The interval: `wilson` or `clopper-pearson` (`stats.choose_method`)."),
        Column("stage", pa.string(), "", "`before` (raw argmax) or `after` (per-die `rff-ridge` correction)."),
    )),
    Table("yield_budget", "yield_budget.csv", (
        Column("budget", pa.int64(), "images", "Labelled calibration images per die asked for."),
        Column("n_calibration", pa.int64(), "images", "Images used (stratified, the same for every die)."),
        _share("threshold", "Accuracy a die must reach to count as good."),
        Column("n_dies", pa.int64(), "dies", "Dies of the population."),
        _share("accuracy_before_mean", "Mean raw accuracy."),
        _share("accuracy_after_mean", "Mean accuracy after per-die `rff-ridge` correction."),
        _share("yield_before", "Share of dies at or above the threshold before correction."),
        _share("yield_after", "The same after correction."),
        Column("k_after", pa.int64(), "dies", "Dies at or above the threshold after correction."),
        _share("lo", "Lower end of the Wilson 95 % interval of yield_after."),
        _share("hi", "Upper end of the Wilson 95 % interval of yield_after."),
    )),
)

#: Every table of :class:`Table` kind, by name.
TABLES: dict[str, Table] = {t.name: t for t in (CORRECTED_TABLE, *STUDY_TABLES)}


def study_markdown() -> str:
    """The Markdown of the study's files: every :data:`STUDY_TABLES`, then ``voltages.h5``."""
    parts = [f"`{t.path}`:\n\n{t.markdown()}" for t in STUDY_TABLES]
    return "\n".join([*parts, study_voltages_markdown()])

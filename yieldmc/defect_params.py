"""The ``defect_params`` column of the per-die table: one typed struct per array of a die.

A die's defects are drawn per array (:func:`yieldmc.defects.sample_die` returns one dict
per array); the column keeps them as an Arrow ``list<struct>`` (:data:`PARAMS_TYPE`), every
parameter typed and null where the array's kind has no such parameter. Built two ways, to
the same array:

* :func:`params_array` from the readable path's dicts (about 7 µs per die);
* :func:`params_array_from_typed` from the compiled engine's typed arrays, vectorised
  (about 1 µs per die; :func:`yieldmc.engine.sampling.sample_chunk`'s ``params``).

:func:`params_to_python` gives the dicts back; :func:`params_from_json` reads run format 1,
where the column was compact JSON text (:func:`encode_params`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from yieldmc import defect_kinds
from yieldmc.defect_kinds import MIXED, NONE, REGISTRY
from yieldmc.errors import ConfigError


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


@dataclass(frozen=True)
class ParamField:
    """One field of the per-array struct of ``defect_params``.

    Attributes
    ----------
    name : str
        Field name: the key of :func:`yieldmc.defects.sample_die`'s dicts.
    arrow_type : pyarrow.DataType
    kinds : str
        The kinds that have the parameter (for the docs).
    description : str
        One sentence for the docs.
    """

    name: str
    arrow_type: pa.DataType
    kinds: str
    description: str


_INT_LIST = pa.list_(pa.int32())
#: Arrow type of each registry parameter type (yieldmc.defect_kinds.PARAM_TYPES).
ARROW_TYPES = {"float": pa.float64(), "int": pa.int32(), "ints": _INT_LIST}

#: The fields of one array's parameters, in order: ``kind``, every parameter of the
#: defect-kind registry (:data:`yieldmc.defect_kinds.REGISTRY`, in order of first
#: appearance), then the ON/OFF keys every kind but none has; typed, null where the
#: array's kind has no such parameter.
PARAMS_FIELDS: tuple[ParamField, ...] = (
    ParamField("kind", pa.string(), "all", "Pattern kind: a yieldmc.defects kind (mixed "
               "resolved), none for an unaffected array."),
    *(ParamField(p.name, ARROW_TYPES[p.type], ", ".join(REGISTRY.having(p.name)), p.description)
      for p in REGISTRY.params),
    ParamField("state", pa.string(), "all but none", "on or off: the whole pattern is stuck ON or "
               "OFF (on_mode pattern); null when on_fraction is set."),
    ParamField("on_fraction", pa.float64(), "all but none", "Probability that a faulty cell is "
               "stuck ON (on_mode cell); null when state is set."),
    ParamField("seed", pa.int64(), "all but none", "Seed (< 2**53) of the per-cell draws: ON/OFF "
               "with on_fraction, faulty cells of random; null for a pattern-mode spatial kind."),
)

#: The struct of one array's parameters.
PARAMS_STRUCT: pa.StructType = pa.struct([pa.field(f.name, f.arrow_type) for f in PARAMS_FIELDS])
#: The Arrow type of the ``defect_params`` column: one struct per array of the die.
PARAMS_TYPE: pa.ListType = pa.list_(PARAMS_STRUCT)
#: The kinds a ``defect_params`` struct may hold: the registry's and ``none`` (``mixed``
#: is resolved when sampling).
PARAM_KINDS: tuple[str, ...] = (*REGISTRY.names, NONE)



def is_earlier_type(arrow_type: pa.DataType) -> bool:
    """True for a ``defect_params`` type written before the registry gained parameters.

    A list of structs whose fields are some of :data:`PARAMS_STRUCT`'s, in its order and
    with its types, but not all of them: the column of a run written before a kind
    (:data:`yieldmc.defect_kinds.REGISTRY`) added its fields. :func:`params_array` of its
    ``to_pylist()`` gives today's type; the dicts do not change.
    """
    if not pa.types.is_list(arrow_type) or not pa.types.is_struct(arrow_type.value_type):
        return False
    ours = [(f.name, f.type) for f in PARAMS_STRUCT]
    theirs = [(f.name, f.type) for f in arrow_type.value_type]
    remaining = iter(ours)
    return theirs != ours and all(field in remaining for field in theirs)  # a subsequence


# --- building and reading the column --------------------------------------------------

_STATES = ("off", "on")  # index: the engine's state code
#: Typed parameters written to the engine's ``lines`` / ``n_lines`` (the others: own key).
_LINE_FIELDS = ("rows", "columns")


def _bad(die: int, array: int, what: str) -> ConfigError:
    return ConfigError(f"defect_params of die row {die}, array {array}: {what}")


def _as_int(value: Any, bound: int = 2**31) -> int:
    if type(value) is not int:
        if isinstance(value, (bool, np.bool_, str, bytes)):
            raise TypeError(f"{value!r} is not an integer")
        out = int(value)
        if out != value:
            raise ValueError(f"{value!r} is not an integer")
        value = out
    if not -bound <= value < bound:
        raise ValueError(f"{value!r} is outside [-{bound}, {bound})")
    return value


def _as_float(value: Any) -> float:
    if type(value) is not float:
        if isinstance(value, (bool, np.bool_, str, bytes)):
            raise TypeError(f"{value!r} is not a number")
        value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"defect parameters must be finite numbers, got {value!r}")
    return value


def _as_int_list(value: Any) -> list[int]:
    if isinstance(value, (str, bytes, Mapping)):
        raise TypeError(f"{value!r} is not a list of integers")
    return [_as_int(x) for x in value]


def _as_int64(value: Any) -> int:
    return _as_int(value, 2**63)


def _as_state(value: Any) -> str:
    if value not in _STATES:
        raise ValueError(f"state must be 'on' or 'off', got {value!r}")
    return str(value)


#: Key -> converter of a value (checks type and range).
_CONVERT = {f.name: (str if f.name == "kind" else _as_state if f.name == "state"
                     else _as_float if f.arrow_type == pa.float64()
                     else _as_int_list if f.arrow_type == _INT_LIST
                     else _as_int64 if f.arrow_type == pa.int64() else _as_int)
            for f in PARAMS_FIELDS}


def params_array(rows: Sequence[Sequence[Mapping[str, Any]]]) -> pa.Array:
    """The ``defect_params`` column of some dies from their parameter dicts (readable path).

    Parameters
    ----------
    rows : sequence of sequence of mapping
        Per die, one dict per array as :func:`yieldmc.defects.sample_die` returns them
        (``{"kind": "none"}`` for an unaffected array). Keys are names of
        :data:`PARAMS_FIELDS`, ``kind`` is required; numpy scalars and arrays are allowed,
        and a value ``None`` counts as absent (so the dicts of :func:`params_to_python`
        and of ``to_pylist()`` both work).

    Returns
    -------
    pyarrow.ListArray
        Of type :data:`PARAMS_TYPE`, one entry per die; absent keys are null.

    Raises
    ------
    ConfigError
        An unknown key or kind, a non-finite or non-numeric float, a non-integer or
        out-of-range integer, a ``state`` other than ``"on"``/``"off"``; the message names
        the die row and array.

    Examples
    --------
    >>> a = params_array([[{"kind": "ring", "cx": 0.5, "cy": 0.5, "radius": 0.3, "width": 0.1,
    ...                     "state": "on"}, {"kind": "none"}]])
    >>> params_to_python(a)
    [[{'kind': 'ring', 'cx': 0.5, 'cy': 0.5, 'radius': 0.3, 'width': 0.1, 'state': 'on'}, {'kind': 'none'}]]
    """
    rows = rows.to_pylist() if isinstance(rows, (pa.Array, pa.ChunkedArray)) else list(rows)
    for d, die in enumerate(rows):
        if isinstance(die, (str, bytes, Mapping)) or not isinstance(die, (Sequence, np.ndarray)):
            raise ConfigError(f"defect_params of die row {d} must be a list of dicts (one per array), "
                              f"got {type(die).__name__}")
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    offsets[1:] = np.cumsum([len(die) for die in rows], dtype=np.int64)
    columns: dict[str, list] = {f.name: [None] * int(offsets[-1]) for f in PARAMS_FIELDS}
    kinds = (*defect_kinds.REGISTRY.names, NONE)  # read now: a kind registered later counts
    j = 0
    for d, die in enumerate(rows):
        for a, p in enumerate(die):
            if not isinstance(p, Mapping):
                raise _bad(d, a, f"expected a dict, got {type(p).__name__}")
            if p.get("kind") not in kinds:
                raise _bad(d, a, f"kind must be one of {', '.join(kinds)}, got {p.get('kind')!r}")
            for name, v in p.items():
                convert = _CONVERT.get(name)
                if convert is None:
                    raise _bad(d, a, f"unknown key {name!r}; valid: {', '.join(columns)}")
                if v is not None:
                    try:
                        columns[name][j] = convert(v)
                    except (TypeError, ValueError) as exc:
                        raise _bad(d, a, f"{name}: {exc}") from None
            j += 1
    children = [pa.array(columns[f.name], type=f.arrow_type) for f in PARAMS_FIELDS]
    structs = pa.StructArray.from_arrays(children, fields=list(PARAMS_STRUCT))
    return pa.ListArray.from_arrays(pa.array(offsets), structs, type=PARAMS_TYPE)


def _int_lists(values: np.ndarray, counts: np.ndarray, valid: np.ndarray) -> pa.ListArray:
    """``list<int32>`` of the first ``counts[i]`` entries of ``values[i]`` (null where not
    ``valid``); null entries are empty, so ``values`` under them never reaches the buffers."""
    counts = np.where(valid, counts, 0)
    take = np.arange(values.shape[1]) < counts[:, None]
    offsets = np.zeros(counts.size + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values[take].astype(np.int32, copy=False)),
                                    type=_INT_LIST, mask=pa.array(~valid))


def params_array_from_typed(params: Mapping[str, np.ndarray]) -> pa.Array:
    """The ``defect_params`` column from the compiled engine's typed parameters, vectorised.

    Equal (``.equals``) to ``params_array([die_params(params, i) for i in range(n_dies)])``
    (:func:`yieldmc.engine.sampling.die_params`) at a few microseconds per die: no Python
    loop over dies or arrays.

    Parameters
    ----------
    params : mapping of str to numpy.ndarray
        As :func:`yieldmc.engine.sampling.sample_chunk` returns them (and
        :attr:`yieldmc.engine.chunk.ChunkResult.params`), ``(n_dies, n_arrays, ...)``:
        ``kind`` (int8 index in :data:`yieldmc.defects.KINDS`); per registry parameter
        (:data:`yieldmc.defect_kinds.REGISTRY`) its own key: floats as float64 (``cx``,
        ``cy``, ``radius``, ``width``, ``density``), ints as int32 (``block``), fixed-length
        lists as int32 rows (``phase`` ``(..., 2)``, ``region`` ``(..., 4)``), except
        ``rows`` and ``columns``, which share ``lines`` (``(..., max_lines)``, the first
        ``n_lines`` (int32) valid); a parameter of no compiled kind may be absent (null);
        ``on_fraction`` (float64), ``state`` (int8: 1 on, 0 off, -1 ``on_fraction`` mode),
        ``seed`` (int64, -1 absent). Other keys are ignored.

    Returns
    -------
    pyarrow.ListArray
        Of type :data:`PARAMS_TYPE`, one entry per die. Per kind the fields set are those
        of ``die_params``: the kind's registry parameters; every kind but none ``state``
        (with ``seed`` when it is >= 0) or else ``on_fraction`` and ``seed``.

    Raises
    ------
    ConfigError
        A kind code outside :data:`PARAM_KINDS`, or a non-finite parameter that is set.
    """
    codes = np.asarray(params["kind"])
    if codes.ndim != 2:
        raise ConfigError(f"params['kind'] must be (n_dies, n_arrays), got shape {codes.shape}")
    n_dies, n_arrays = codes.shape
    n = n_dies * n_arrays
    k = codes.reshape(n).astype(np.int64)
    registry = defect_kinds.REGISTRY  # read now: codes index its kinds
    code = {name: i for i, name in enumerate(registry.kinds)}
    bad = (k < 0) | (k >= len(code)) | (k == code[MIXED])
    if bad.any():
        raise ConfigError(f"params['kind'] holds kind codes {sorted(set(k[bad].tolist()))[:5]} outside "
                          f"the kinds of yieldmc.defects.KINDS a die can draw")

    def flat(name: str) -> np.ndarray:  # (n_dies, n_arrays, ...) -> (n, ...)
        a = np.asarray(params[name])
        return a.reshape((n, *a.shape[2:]))

    none = k == code[NONE]
    state = flat("state").astype(np.int64)
    seed = flat("seed").astype(np.int64)
    children: dict[str, pa.Array] = {"kind": pa.array(registry.kinds).take(pa.array(k))}
    for f in PARAMS_FIELDS:
        if f.name in ("kind", "state", "on_fraction", "seed"):
            continue
        ok = np.isin(k, [code[name] for name in registry.having(f.name)])
        source = "lines" if f.name in _LINE_FIELDS else f.name
        if source not in params:  # a parameter no compiled kind has
            if ok.any():
                raise ConfigError(f"params lacks {source!r}, which kinds drawn here have")
            children[f.name] = pa.nulls(n, type=f.arrow_type)
        elif f.arrow_type == pa.float64():
            children[f.name] = _floats(flat(f.name), ok, f.name)
        elif f.arrow_type == pa.int32():
            children[f.name] = pa.array(flat(f.name).astype(np.int32, copy=False), mask=~ok, type=pa.int32())
        elif f.name in _LINE_FIELDS:  # the first n_lines of lines
            children[f.name] = _int_lists(flat("lines"), flat("n_lines"), ok)
        else:  # fixed length, e.g. phase (n, 2) and region (n, 4): whole rows
            v = flat(f.name)
            children[f.name] = _int_lists(v, np.full(n, v.shape[1]), ok)
    children["on_fraction"] = _floats(flat("on_fraction"), ~none & (state < 0), "on_fraction")
    has_state = ~none & (state >= 0)
    children["state"] = pa.array(_STATES).take(pa.array(np.clip(state, 0, 1), mask=~has_state))
    children["seed"] = pa.array(seed, mask=~(~none & ((state < 0) | (seed >= 0))), type=pa.int64())
    structs = pa.StructArray.from_arrays([children[f.name] for f in PARAMS_FIELDS], fields=list(PARAMS_STRUCT))
    offsets = pa.array(np.arange(n_dies + 1, dtype=np.int32) * np.int32(n_arrays))
    return pa.ListArray.from_arrays(offsets, structs, type=PARAMS_TYPE)


def _floats(values: np.ndarray, ok: np.ndarray, name: str) -> pa.Array:
    """float64 entries, null where not ``ok``; ConfigError when a set one is not finite."""
    v = values.astype(np.float64, copy=False)
    if not np.isfinite(v[ok]).all():
        raise ConfigError(f"defect parameters must be finite numbers: params[{name!r}] is not")
    return pa.array(v, mask=~ok, type=pa.float64())


def params_to_python(values: pa.Array | pa.ChunkedArray | Sequence[Any]) -> list[list[dict[str, Any]]]:
    """The ``defect_params`` of some dies as lists of dicts, without the null fields.

    The inverse of :func:`params_array`: the dicts :func:`yieldmc.defects.sample_die`
    returned (the same keys, in the same order, and the same Python types).

    Parameters
    ----------
    values : pyarrow.Array, pyarrow.ChunkedArray or sequence
        A ``defect_params`` column: of :data:`PARAMS_TYPE`, JSON text of run format 1, or
        what pandas holds (``pandas.read_parquet``: per die an array of dicts with
        ``None`` for the null fields; :func:`dies_to_pandas`: the lists of dicts).

    Returns
    -------
    list of list of dict
        Per die, one dict per array (``None`` for a null entry, which yieldmc never writes).
    """
    if not isinstance(values, (pa.Array, pa.ChunkedArray)):
        values = list(values)
        if values and all(isinstance(v, str) for v in values):
            return [decode_params(v) for v in values]
        values = params_array(values)
    elif pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return [decode_params(v) for v in values.to_pylist()]
    elif values.type != PARAMS_TYPE:
        values = params_array(values.to_pylist())
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    return [die for chunk in chunks for die in _dicts(chunk)]


def _dicts(values: pa.ListArray) -> list[list[dict[str, Any]]]:
    """:func:`params_to_python` of one array: field by field (faster than ``to_pylist``)."""
    if values.null_count:
        return [None if die is None else [{k: v for k, v in p.items() if v is not None} for p in die]
                for die in values.to_pylist()]
    names = [f.name for f in PARAMS_FIELDS]
    flat = values.flatten()
    columns = [flat.field(i).to_pylist() for i in range(len(names))]
    dicts = [{k: v for k, v in zip(names, row, strict=True) if v is not None} for row in zip(*columns, strict=True)]
    offsets = values.offsets.to_numpy()
    offsets = (offsets - offsets[0]).tolist()
    return [dicts[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]


def params_from_json(texts: pa.Array | pa.ChunkedArray | Sequence[str]) -> pa.Array:
    """Run format 1's ``defect_params`` (JSON text per die) as a :data:`PARAMS_TYPE` column."""
    if isinstance(texts, (pa.Array, pa.ChunkedArray)):
        texts = texts.to_pylist()
    try:
        rows = [decode_params(t) for t in texts]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"defect_params is not JSON text of run format 1: {exc}") from None
    return params_array(rows)


def encode_params(params: Sequence[Mapping[str, Any]]) -> str:
    """The ``defect_params`` cell: compact JSON with sorted keys (numpy scalars allowed).

    Non-finite floats are rejected so that every JSON reader (duckdb, Spark) parses it.

    >>> encode_params([{"kind": "ring", "radius": 0.25}, {"kind": "none"}])
    '[{"kind":"ring","radius":0.25},{"kind":"none"}]'
    """
    try:
        return json.dumps(list(params), default=_json_default, sort_keys=True,
                          separators=(",", ":"), allow_nan=False)
    except ValueError as exc:
        raise ConfigError(f"defect parameters must be finite numbers: {exc}") from None


def decode_params(text: str) -> list[dict[str, Any]]:
    """Inverse of :func:`encode_params`."""
    return json.loads(text)


def _type_name(t: pa.DataType) -> str:
    if pa.types.is_list(t):
        return f"list<{_type_name(t.value_type)}>"
    return str(t)


def params_markdown() -> str:
    """The Markdown table of the fields of ``defect_params``' struct, as ``docs/data.md``
    holds it."""
    lines = ["| field | Arrow type | set for | description |", "|---|---|---|---|"]
    for f in PARAMS_FIELDS:
        lines.append(f"| `{f.name}` | `{_type_name(f.arrow_type)}` | {f.kinds} | "
                     f"{f.description.replace('|', chr(92) + '|')} |")
    return "\n".join(lines) + "\n"

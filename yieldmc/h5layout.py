"""The HDF5 layouts: a run's voltage files (one per chunk, and ``all.h5`` over them), and the study's.

Part of the schema (:mod:`yieldmc.schema` re-exports every public name here; read the
layout there and in docs/data.md): a group per image set holding ``voltages`` float32
(dies, images, outputs) and ``labels``; after a run, :func:`write_virtual_file` spans all
parts with HDF5 virtual datasets. The axes carry HDF5 dimension scales ``die``, ``image``,
``output`` (netCDF-4's dimensions), so xarray opens a group (``engine="h5netcdf"``) with
named dimensions and coordinates. :mod:`yieldmc.store` decides where and when these files
are written.

The study's ``voltages.h5`` (:mod:`yieldmc.reproduce`) is declared in :data:`STUDY_VOLTAGES`
and :data:`STUDY_GROUP_ATTRS`, and written by :func:`write_study_voltages` from them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from yieldmc.errors import ConfigError

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


# --- the study's voltages.h5 (yieldmc reproduce) ------------------------------------------------

@dataclass(frozen=True)
class H5Dataset:
    """One dataset of the study's ``voltages.h5``.

    Attributes
    ----------
    path : str
        Path in the file; ``{defect_type}``, ``{severity:g}`` and ``{die}`` stand for a
        circuit's values (:meth:`str.format`).
    dtype : str
        numpy dtype name.
    axes : tuple of str
        Name of each axis.
    unit : str
        Physical unit (``""``: class indices).
    description : str
        One sentence, for the docs and the dataset's ``description`` attribute.
    """

    path: str
    dtype: str
    axes: tuple[str, ...]
    unit: str
    description: str


#: The datasets of the study's ``voltages.h5``: the labels, then per circuit its voltages.
STUDY_VOLTAGES: tuple[H5Dataset, ...] = (
    H5Dataset("labels_train", "int16", ("image",), "", "True class of each training image."),
    H5Dataset("labels_test", "int16", ("image",), "", "True class of each test image."),
    H5Dataset("{defect_type}/severity_{severity:g}/instance_{die}/train", "float32", ("image", "output"), "V",
              "Output voltages of the circuit (die `die` of this type and severity) for the training images."),
    H5Dataset("{defect_type}/severity_{severity:g}/instance_{die}/test", "float32", ("image", "output"), "V",
              "The same for the test images."),
)
#: Attributes of each circuit's group ``{defect_type}/severity_{severity:g}/instance_{die}``.
STUDY_GROUP_ATTRS: tuple[str, ...] = ("defect_type", "severity", "die", "layers", "units")


def study_voltages_markdown() -> str:
    """The Markdown of the study's ``voltages.h5``, as ``docs/data.md`` holds it."""
    rows = ["| dataset | dtype | axes | unit | description |", "|---|---|---|---|---|"]
    rows += [f"| `{d.path}` | `{d.dtype}` | {', '.join(d.axes)} | {d.unit or '-'} | {d.description} |"
             for d in STUDY_VOLTAGES]
    attrs = ", ".join(f"`{a}`" for a in STUDY_GROUP_ATTRS)
    return f"`voltages.h5` (each circuit's group has the attributes {attrs}):\n\n" + "\n".join(rows) + "\n"


def write_study_voltages(path: Any, labels: Mapping[str, np.ndarray],
                         circuits: Mapping[tuple[str, float, int], tuple[np.ndarray, np.ndarray]]) -> None:
    """Write the study's ``voltages.h5`` (:data:`STUDY_VOLTAGES`) to ``path``.

    Parameters
    ----------
    path : path or file object
        Where to write (the caller makes the write atomic).
    labels : mapping
        ``{"labels_train": y_train, "labels_test": y_test}``.
    circuits : mapping
        ``(defect_type, severity, die) -> (train voltages, test voltages)``, each
        (images, outputs) in volts; written in this order, gzip-compressed.
    """
    fixed = [d for d in STUDY_VOLTAGES if "{" not in d.path]
    per_circuit = [d for d in STUDY_VOLTAGES if "{" in d.path]
    with h5py.File(path, "w") as h5:
        h5.attrs["description"] = "Output voltages (V) of every circuit of the study"
        h5.attrs["command"] = "yieldmc reproduce"
        for d in fixed:
            ds = h5.create_dataset(d.path, data=np.asarray(labels[d.path]).astype(d.dtype))
            ds.attrs["description"] = d.description
        for (kind, severity, die), arrays in circuits.items():
            where = {"defect_type": kind, "severity": severity, "die": die}
            for d, v in zip(per_circuit, arrays, strict=True):
                ds = h5.create_dataset(d.path.format(**where), data=np.asarray(v).astype(d.dtype),
                                       compression="gzip", shuffle=True)
                ds.attrs.update({"units": d.unit, "description": d.description})
            group = h5[d.path.format(**where).rsplit("/", 1)[0]]
            values = {**where, "layers": "all", "units": "V"}
            group.attrs.update({a: values[a] for a in STUDY_GROUP_ATTRS})

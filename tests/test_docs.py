"""The documentation runs: every ```python block of README.md and docs/*.md, and the file
layouts docs/data.md promises (HDF5 dimension scales that xarray reads, corrected tables).

Each block runs in a fresh namespace, in a temporary working directory that holds a small
run at ``runs/demo`` (the path the README's first command writes) with a per-die corrected
table, so snippets read real files. A block may be preceded by HTML comments, the only
ways out:

* ``<!-- skip-test: needs NAME ... -->``: the block runs only where every NAME is an
  importable module or a program on PATH (polars, duckdb); otherwise it is skipped with
  that reason. ``ngspice`` follows the project's ngspice policy instead (the ``ngspice``
  marker: a skip on a developer machine, a failure in CI).
* ``<!-- test: slow -->``: the block runs with the slow tests (``-m slow``).

Anything else in such a comment is an error, and so is a doctest-style ``+SKIP`` inside a
block.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from yieldmc import schema
from yieldmc.config import load_config
from yieldmc.store import load_voltages

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
FENCE = re.compile(r"^(?P<indent>[ \t]*)```python[ \t]*\n(?P<code>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
DIRECTIVE = re.compile(r"<!--\s*(?P<key>skip-test|test)\s*:\s*(?P<value>.*?)\s*-->")
#: Dies of the demo run and its chunk size: three chunk files, the last one short.
DEMO_DIES, DEMO_CHUNK = 40, 16
#: Dies of the demo run that get a per-die corrector.
DEMO_CORRECTED = 6


@dataclass(frozen=True)
class Block:
    """One ```python block: where it is, its dedented code and its directives."""

    where: str
    code: str
    needs: tuple[str, ...] = ()
    slow: bool = False


def _directives(text: str, start: int, where: str) -> tuple[tuple[str, ...], bool]:
    """The HTML comments on the lines right above a fence: (requirements, slow)."""
    needs: tuple[str, ...] = ()
    slow = False
    for line in reversed(text[:start].rstrip("\n").splitlines()):
        line = line.strip()
        if not line.startswith("<!--"):
            break
        m = DIRECTIVE.fullmatch(line)
        words = m["value"].split() if m else []
        if m and m["key"] == "skip-test" and len(words) >= 2 and words[0] == "needs":
            needs += tuple(words[1:])
        elif m and m["key"] == "test" and words == ["slow"]:
            slow = True
        else:
            raise ValueError(f"{where}: unknown directive {line!r}; use '<!-- skip-test: needs "
                             "NAME -->' or '<!-- test: slow -->'")
    return needs, slow


def doc_blocks() -> list[Block]:
    blocks = []
    for path in DOC_FILES:
        text = path.read_text()
        for m in FENCE.finditer(text):
            where = f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}"
            needs, slow = _directives(text, m.start(), where)
            blocks.append(Block(where, textwrap.dedent(m["code"]), needs, slow))
    return blocks


BLOCKS = doc_blocks()


#: Loosened for blocks that import dask only: dask 2026.8's Parquet reader calls
#: ``DataFrame.reset_index(inplace=True)``, which pandas 3.1 deprecates (Pandas4Warning)
#: on every read; the snippet itself does nothing deprecated.
DASK_PANDAS_WARNING = "ignore:The inplace keyword in DataFrame.reset_index is deprecated"


def _param(block: Block):
    marks = [pytest.mark.slow] if block.slow else []
    if "ngspice" in block.needs:
        marks.append(pytest.mark.ngspice)
    if re.search(r"^\s*import dask", block.code, re.M):
        marks.append(pytest.mark.filterwarnings(DASK_PANDAS_WARNING))
    return pytest.param(block, id=block.where, marks=marks)


def _absent(names: tuple[str, ...]) -> list[str]:
    """Requirements that are neither an importable module nor a program (ngspice: marker)."""
    return [n for n in names if n != "ngspice" and importlib.util.find_spec(n) is None
            and shutil.which(n) is None]


@pytest.fixture(scope="module")
def docs_dir(tmp_path_factory, network_cache):
    """A working directory with ``runs/demo``: a small mixed run and a per-die corrected table."""
    from yieldmc.correction import correct_run
    from yieldmc.montecarlo import run_sample

    root = tmp_path_factory.mktemp("docs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YIELDMC_CACHE", str(network_cache))
        run_sample(load_config("paper"), DEMO_DIES, root / "runs" / "demo", chunk_size=DEMO_CHUNK)
        correct_run(root / "runs" / "demo", "per-die", sample=DEMO_CORRECTED)
    return root


# ---- every block runs ---------------------------------------------------------------

def test_the_docs_have_python_blocks_and_no_stale_run_paths():
    where = {b.where.split(":")[0] for b in BLOCKS}
    assert {"README.md", "docs/data.md", "docs/circuit.md", "docs/die.md"} <= where
    for b in BLOCKS:
        assert "doctest" not in b.code and "+SKIP" not in b.code, b.where  # no way out but directives
        assert "runs/mixed" not in b.code, b.where  # the README makes runs/demo


def test_directives_are_checked():
    text = "x\n<!-- skip-test: flaky -->\n```python\npass\n```\n"
    with pytest.raises(ValueError, match="unknown directive"):
        _directives(text, text.index("```"), "t.md:3")
    text = "<!-- skip-test: needs polars duckdb -->\n<!-- test: slow -->\n```python\n"
    assert _directives(text, text.index("```"), "t.md:3") == (("polars", "duckdb"), True)


@pytest.mark.parametrize("block", [_param(b) for b in BLOCKS])
def test_block_runs(block: Block, docs_dir, network_cache, monkeypatch):
    absent = _absent(block.needs)
    if absent:
        pytest.skip(f"{block.where} needs {', '.join(absent)}, which is not installed")
    import yieldmc.circuit.solver as solver

    monkeypatch.setenv("YIELDMC_CACHE", str(network_cache))
    monkeypatch.chdir(docs_dir)
    monkeypatch.setattr(solver, "RHS_BLOCK", solver.RHS_BLOCK)  # docs/performance.md varies it
    exec(compile(block.code, block.where, "exec"), {"__name__": "__doc_block__"})


# ---- the voltage files: dimension scales that xarray reads ----------------------------

def test_voltage_files_open_in_xarray_with_named_dims_and_coordinates(docs_dir):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    run = docs_dir / "runs" / "demo"
    stored = load_voltages(run)
    classes = np.arange(stored.voltages.shape[2])
    parts = sorted((run / "voltages").glob("part-*.h5"))
    assert len(parts) == 3
    for path in [*parts, run / "voltages" / "all.h5"]:
        with xr.open_dataset(path, engine="h5netcdf", group="test") as ds:
            v = ds["voltages"]
            assert v.dims == ("die", "image", "output") and v.dtype == np.float32
            assert ds["labels"].dims == ("image",)
            dies = ds["die"].values
            rows = np.searchsorted(stored.dies, dies)
            np.testing.assert_array_equal(stored.dies[rows], dies)
            np.testing.assert_array_equal(v.values, stored.voltages[rows])  # bit for bit
            np.testing.assert_array_equal(ds["image"].values, np.arange(v.shape[1]))
            np.testing.assert_array_equal(ds["output"].values, classes)
            np.testing.assert_array_equal(ds["labels"].values, stored.labels)
            assert v.attrs["units"] == "V"
        with xr.open_dataset(path, engine="h5netcdf") as root:  # the root group: die indices
            np.testing.assert_array_equal(root["die"].values, dies)
    with xr.open_dataset(run / "voltages" / "all.h5", engine="h5netcdf", group="test") as ds:
        np.testing.assert_array_equal(ds["die"].values, np.arange(DEMO_DIES))
        np.testing.assert_array_equal(ds["voltages"].sel(die=17).values, stored.voltages[17])


def _old_layout_part(path: Path, dies: np.ndarray, v: np.ndarray, y: np.ndarray) -> None:
    """A voltage file as written before the dimension scales: root ``die`` on axis 0 only."""
    with h5py.File(path, "w") as f:
        die = f.create_dataset("die", data=dies)
        die.make_scale("die")
        ds = f.create_dataset("test/voltages", data=v)
        ds.attrs.update({"units": "V", "image_set": "test",
                         "output_classes": np.arange(v.shape[2], dtype=np.int16)})
        for axis, label in enumerate(("die", "image", "output")):
            ds.dims[axis].label = label
        ds.dims[0].attach_scale(die)
        f.create_dataset("test/labels", data=y)


def test_old_voltage_files_without_scales_still_read(tmp_path, rng):
    v = rng.normal(size=(7, 5, 3)).astype(np.float32)
    y = np.array([0, 2, 1, 1, 0], np.int16)
    _old_layout_part(tmp_path / "part-00000.h5", np.arange(4), v[:4], y)
    _old_layout_part(tmp_path / "part-00001.h5", np.arange(4, 7), v[4:], y)
    block, labels = schema.read_voltage_rows(tmp_path / "part-00001.h5", "test", np.array([2, 0, 2]))
    np.testing.assert_array_equal(block, v[[6, 4, 6]])
    np.testing.assert_array_equal(labels, y)
    schema.write_virtual_file(tmp_path / "all.h5", [("part-00000.h5", 0, 4), ("part-00001.h5", 4, 7)],
                              7, {"run_id": "old"})
    with h5py.File(tmp_path / "all.h5", "r") as f:
        np.testing.assert_array_equal(f["test/voltages"][()], v)
        np.testing.assert_array_equal(f["die"][()], np.arange(7))
        np.testing.assert_array_equal(f["test/output"][()], np.arange(3))
        assert [d.label for d in f["test/voltages"].dims] == ["die", "image", "output"]
        assert f["test/voltages"].dims[0][0].name == "/test/die"


# ---- docs/data.md tables match the files ----------------------------------------------

def _markdown_rows(text: str, start: str, end: str) -> list[list[str]]:
    i = text.index(start) + len(start)
    block = text[i:text.index(end, i)].strip().splitlines()[2:]  # past the header and its rule
    return [[c.replace("`", "").strip() for c in row.strip("|").split("|")] for row in block]


def test_corrected_table_columns_are_documented(docs_dir):
    rows = _markdown_rows((ROOT / "docs" / "data.md").read_text(), "<!-- corrected:start -->",
                          "<!-- corrected:end -->")
    arrow = pq.read_schema(docs_dir / "runs" / "demo" / "corrected" / "per-die.parquet")
    assert [(r[0], r[1]) for r in rows] == [(f.name, str(f.type)) for f in arrow]


def test_hdf5_datasets_are_documented(docs_dir):
    text = (ROOT / "docs" / "data.md").read_text()
    section = text[text.index("## Output voltages (HDF5)"):text.index("**Dimension scales.**")]
    rows = [r for r in _markdown_rows(section, "| dataset |", "\n\n") if r and r[0]]
    with h5py.File(docs_dir / "runs" / "demo" / "voltages" / "part-00000.h5", "r") as f:
        documented = set()
        for name, dtype_shape, _ in rows:
            name = name.replace(" (root)", "")
            documented.add(name)
            assert f[name].dtype.name == dtype_shape.split()[0], name
        stored = set()
        f.visititems(lambda n, o: stored.add(n) if isinstance(o, h5py.Dataset) else None)
        assert documented == stored

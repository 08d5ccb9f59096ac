"""``yieldmc report``, ``yieldmc wafermap`` and ``yieldmc yield --models`` on the command line.

Every command runs in this process (``CliRunner``) on a small real run. Runs with wafer
columns come from ``yieldmc sample --wafers W``; here the die table read by the commands
(``yieldmc.store.load_dies``) is given those columns synthetically (monkeypatched), so the
commands' own code paths run on them.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import yieldmc.store
from tests.conftest import sampled_run
from yieldmc.cli import app
from yieldmc.config import load_config
from yieldmc.montecarlo import run_sample
from yieldmc.wafer import DensitySpec, WaferSpec, sample_lots
from yieldmc.wafermap import wafer_map_arrays

DIES, CHUNK = 24, 8
SPEC = WaferSpec(diameter_mm=100, die_w_mm=10, die_h_mm=10, edge_exclusion_mm=3)  # 49 dies of 1 cm^2
D0 = 0.5


pytestmark = pytest.mark.usefixtures("use_network_cache")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, network_cache):
    return sampled_run(tmp_path_factory, network_cache, "cli-report", DIES, chunk_size=CHUNK, store_voltages="none")


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def error_line(result, code: int = 2) -> str:
    """The one ``error:`` line of a failed command (nothing else on stderr, nothing on stdout)."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert result.stdout == "" and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def with_wafers(monkeypatch, *, lots: int = 2, seed: int = 0) -> pd.DataFrame:
    """Make the commands read a wafer run: the real die rows over ``lots`` x 5 wafers of
    :data:`SPEC`, with accuracy 0.95 on dies without defects and 0.3 on the others."""
    real = yieldmc.store.load_dies
    rows = sample_lots(SPEC, DensitySpec(d0=D0, alpha=2.0), lots, 5, seed)

    def load(*args, **kwargs):
        dies = real(*args, **kwargs)
        base = dies.iloc[np.arange(len(rows)) % len(dies)].reset_index(drop=True)
        cols = {c: rows[c].to_numpy() for c in ("lot", "wafer", "x", "y", "r_mm", "n_defects", "expected_defects")}
        return base.assign(die=np.arange(len(rows)), accuracy=np.where(rows["n_defects"] == 0, 0.95, 0.3), **cols)

    monkeypatch.setattr(yieldmc.store, "load_dies", load)
    return rows


# --- report --------------------------------------------------------------------------------------

def test_report_writes_a_page_and_says_what_it_wrote(run_dir, tmp_path):
    out = tmp_path / "report.html"
    result = invoke("report", run_dir, "--out", out)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == f"html report of {DIES} dies, 4 figures -> {out}\n"
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and f"Finished: {DIES} of {DIES} dies." in page


def test_report_markdown_by_suffix_or_option(run_dir, tmp_path):
    assert invoke("report", run_dir, "--out", tmp_path / "r.md").exit_code == 0
    assert (tmp_path / "r_files" / "yield-curve.png").is_file()
    assert (tmp_path / "r.md").read_text().startswith("# yieldmc report")
    result = invoke("report", run_dir, "--out", tmp_path / "log.txt", "--format", "markdown", "--threshold", "0.6")
    assert result.exit_code == 0 and "Yield at accuracy >= 0.60" in (tmp_path / "log.txt").read_text()


@pytest.mark.parametrize("case", ["empty-dir", "missing-dir", "a-file"])
def test_report_on_what_is_not_a_run(case, tmp_path):
    target = {"empty-dir": tmp_path, "missing-dir": tmp_path / "nope", "a-file": tmp_path / "f.txt"}[case]
    if case == "a-file":
        target.write_text("x")
    line = error_line(invoke("report", target, "--out", tmp_path / "r.html"))
    assert re.search(r"run.json does not exist|is not a directory", line), line
    assert not (tmp_path / "r.html").exists()


def test_report_refuses_an_existing_out_unless_overwrite(run_dir, tmp_path):
    out = tmp_path / "report.html"
    out.write_text("keep")
    assert "exists; pass --overwrite" in error_line(invoke("report", run_dir, "--out", out))
    assert out.read_text() == "keep"
    assert invoke("report", run_dir, "--out", out, "--overwrite").exit_code == 0
    assert out.read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("args,match", [(["--format", "pdf"], "--format"), (["--threshold", "1.5"], "threshold")])
def test_report_bad_options(run_dir, tmp_path, args, match):
    assert match in error_line(invoke("report", run_dir, "--out", tmp_path / "r.html", *args))


def test_report_of_a_partial_run_says_so(tmp_path, network_cache):
    out = tmp_path / "run"

    def stop(done: int, total: int) -> None:
        if done >= CHUNK:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sample(load_config("paper"), DIES, out, chunk_size=CHUNK, store_voltages="none", progress=stop)
    result = invoke("report", out, "--out", tmp_path / "r.html")
    assert result.exit_code == 0, result.stderr
    assert re.fullmatch(rf"warning: {re.escape(str(out))} is a partial run: \d+ of {DIES} dies finished; "
                        r"the report covers those\n", result.stderr)
    assert "PARTIAL RUN" in (tmp_path / "r.html").read_text()


# --- wafer maps ----------------------------------------------------------------------------------

def test_wafermap_needs_wafer_columns(run_dir, tmp_path):
    line = error_line(invoke("wafermap", run_dir, "--out", tmp_path / "maps.png"))
    assert "wafer, x, y" in line and "yieldmc sample --wafers W" in line
    assert not (tmp_path / "maps.png").exists()


def test_wafermap_draws_and_exports_wm811k_arrays(run_dir, tmp_path, monkeypatch):
    rows = with_wafers(monkeypatch)
    out, npz = tmp_path / "maps.png", tmp_path / "maps.npz"
    result = invoke("wafermap", run_dir, "--out", out, "--npz", npz)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"10 of 10 wafers ({len(rows)} dies) -> {out}, {npz}"
    assert "center" in result.stdout and "edge" in result.stdout
    assert out.read_bytes().startswith(b"\x89PNG")
    with np.load(npz) as f:
        maps, wafers = f["maps"], f["wafer"]
    expected = wafer_map_arrays(rows.assign(passed=rows["n_defects"] == 0))
    assert maps.shape == (10, *SPEC.grid_shape) and maps.dtype == np.uint8
    np.testing.assert_array_equal(wafers, list(expected))
    np.testing.assert_array_equal(maps, np.stack(list(expected.values())))
    assert set(np.unique(maps)) == {0, 1, 2}
    # again: refused, then replaced
    assert "exists" in error_line(invoke("wafermap", run_dir, "--out", out))
    again = invoke("wafermap", run_dir, "--out", out, "--npz", npz, "--overwrite", "--value", "accuracy", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["wafers"] == 10


@pytest.mark.parametrize("args,match", [(["--value", "colour"], "--value"), ([], "image suffix")])
def test_wafermap_bad_options(run_dir, tmp_path, monkeypatch, args, match):
    with_wafers(monkeypatch)
    out = tmp_path / ("maps.png" if args else "maps.nope")
    assert match in error_line(invoke("wafermap", run_dir, "--out", out, *args))


# --- yield --models ------------------------------------------------------------------------------

def test_yield_models_needs_wafer_columns(run_dir):
    line = error_line(invoke("yield", run_dir, "--models"))
    assert "wafer, n_defects" in line and "--wafers" in line


@pytest.mark.parametrize("args", [["--thresholds", "0.5:0.9:0.1"], ["--by", "defect_type"], ["--corrected", "per-die"]])
def test_yield_models_takes_one_threshold(run_dir, monkeypatch, args):
    with_wafers(monkeypatch)
    assert "--models fits at one --threshold" in error_line(invoke("yield", run_dir, "--models", *args))


def test_yield_die_area_needs_models(run_dir):
    assert "--die-area goes with --models" in error_line(invoke("yield", run_dir, "--die-area", "1"))


def test_yield_models_recover_the_density(run_dir, monkeypatch):
    with_wafers(monkeypatch, lots=20, seed=3)  # 100 wafers of 49 dies of 1 cm^2
    result = invoke("yield", run_dir, "--models", "--json", "--die-area", "1")
    assert result.exit_code == 0, result.stderr
    fits = {(r["data"], r["model"]): r for r in json.loads(result.stdout)}
    assert set(fits) == {("pass_fail", m) for m in ("poisson", "murphy", "seeds", "negbin")} | {
        ("counts", "poisson"), ("counts", "negbin")}
    for key in (("counts", "negbin"), ("pass_fail", "negbin")):
        r = fits[key]
        assert abs(r["d0"] - D0) < 0.2 * D0 and r["d0_lo"] < D0 < r["d0_hi"], r
        assert r["alpha_lo"] < 2.0 < r["alpha_hi"], r
    assert fits[("counts", "poisson")]["alpha"] is None  # NaN: not a parameter of the model
    text = invoke("yield", run_dir, "--models")
    assert text.exit_code == 0
    assert text.stderr == "note: die area 1 cm^2 (unknown (1 cm^2)); pass/fail at accuracy >= 0.8\n"
    header = text.stdout.splitlines()[0].split()
    assert header == ["data", "model", "d0", "d0_lo", "d0_hi", "alpha", "alpha_lo", "alpha_hi", "loglik", "aic",
                      "n", "n_groups", "yield"]

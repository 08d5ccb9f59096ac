"""The run report (yieldmc.runreport) and the wafer-run helpers of yieldmc.runyield.

A small real run (``paper`` preset, 40 dies, a per-die corrected table on 6 of them) gives
the plain report; a *wafer frame* puts 25 wafers of dies on it synthetically (die grid,
radius, defect counts from :func:`yieldmc.wafer.sample_lots`), since the report takes
DataFrames. The page is opened in headless Chromium (Debian's ``chromium``): the test fails
on any console message but the page's own "images checked" line, on a missing image, or on
a blank screenshot. Without chromium the browser tests skip, except in CI (``CI`` set),
where they fail: ``.ci/run`` installs it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from yieldmc.config import load_config
from yieldmc.correction import correct_run, load_corrected
from yieldmc.errors import ConfigError
from yieldmc.montecarlo import run_sample
from yieldmc.runformat import read_run_info
from yieldmc.runreport import (
    CHECKED_MESSAGE,
    Image,
    Report,
    Section,
    Text,
    build_report,
    collect_report,
    render_html,
    render_markdown,
    report_from_frames,
    write_report,
)
from yieldmc.runyield import WAFER_COLUMNS, die_area_cm2, missing_columns, model_fits, wafer_frame, wafer_spec
from yieldmc.stats import yield_report
from yieldmc.store import load_dies
from yieldmc.wafer import DensitySpec, WaferSpec, sample_lots

DIES, CHUNK, CORRECTED = 40, 16, 6
#: A 100 mm wafer of 1 cm^2 dies: 49 dies a wafer; 5 lots of 5 wafers.
SPEC = WaferSpec(diameter_mm=100, die_w_mm=10, die_h_mm=10, edge_exclusion_mm=3)
LOTS, WAFERS, D0, ALPHA = 5, 5, 0.5, 2.0
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, network_cache):
    """A finished 40-die mixed run with a per-die corrected table of 6 dies."""
    out = tmp_path_factory.mktemp("report") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YIELDMC_CACHE", str(network_cache))
        run_sample(load_config("paper"), DIES, out, chunk_size=CHUNK, store_voltages="none")
        correct_run(out, "per-die", sample=CORRECTED)
    return out


@pytest.fixture(scope="module")
def partial_dir(tmp_path_factory, network_cache):
    """A run interrupted after its first chunk (Ctrl-C in the middle of the sweep)."""
    out = tmp_path_factory.mktemp("report") / "partial"

    def stop(done: int, total: int) -> None:
        if done >= CHUNK:
            raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YIELDMC_CACHE", str(network_cache))
        with pytest.raises(KeyboardInterrupt):
            run_sample(load_config("paper"), DIES, out, chunk_size=CHUNK, store_voltages="none", progress=stop)
    return out


def wafer_dies(dies: pd.DataFrame, *, d0: float = D0, alpha: float = ALPHA, seed: int = 0,
               lots: int = LOTS) -> pd.DataFrame:
    """The run's die rows repeated over 25 wafers of :data:`SPEC`, with the wafer columns of
    ``yieldmc sample --wafers`` and accuracies tied to the defect counts (a die without a
    defect keeps the fault-free 0.95, a die with one drops to 0.3): a die passes at 0.8
    exactly when it has no defect."""
    rows = sample_lots(SPEC, DensitySpec(d0=d0, alpha=alpha), lots, WAFERS, seed)
    base = dies.iloc[np.arange(len(rows)) % len(dies)].reset_index(drop=True)
    extra = {c: rows[c].to_numpy() for c in WAFER_COLUMNS}
    return base.assign(die=np.arange(len(rows)), accuracy=np.where(rows["n_defects"] == 0, 0.95, 0.3), **extra)


def wafer_info(info: dict, n_dies: int) -> dict:
    """run.json of a wafer run: the wafer's settings in ``config.wafer``."""
    config = dict(info["config"], wafer={"diameter_mm": 100, "die_w_mm": 10, "die_h_mm": 10,
                                         "edge_exclusion_mm": 3, "wafers": WAFERS, "lots": LOTS})
    return dict(info, config=config, n_dies=n_dies)


def section(report: Report, key: str) -> Section:
    (s,) = [s for s in report.sections if s.key == key]
    return s


def texts(s: Section) -> str:
    return " ".join(b.text for b in s.blocks if isinstance(b, Text))


def tables(s: Section):
    return [b for b in s.blocks if not isinstance(b, (Text, Image))]


# --- contents ------------------------------------------------------------------------------------

def test_plain_run_has_every_section_and_says_why_maps_and_models_are_absent(run_dir):
    info, dies = read_run_info(run_dir), load_dies(run_dir)
    report = report_from_frames(info, dies, run_name="runs/demo")
    assert [s.key for s in report.sections] == ["settings", "yield", "defect-type", "layer", "accuracy",
                                                "correction", "wafers", "models"]
    assert not report.partial and report.status.kind == "ok" and "40 of 40" in report.status.text
    assert {i.name for i in report.images} == {"yield-curve", "yield-by-defect-type", "yield-by-layer",
                                               "accuracy-histogram"}
    assert "no wafer, x, y column" in texts(section(report, "wafers"))
    assert "yieldmc sample --wafers W" in texts(section(report, "models"))
    assert "yieldmc correct runs/demo --mode per-die" in texts(section(report, "correction"))
    settings = dict(tables(section(report, "settings"))[0].rows)
    assert settings["run id"] == info["run_id"] and settings["preset"] == "paper"
    assert settings["seed"] == str(info["seed"]) and settings["engine"] == info["engine"]
    assert f"yieldmc {info['versions']['yieldmc']}" in settings["versions"]


def _cells(table) -> pd.DataFrame:
    return pd.DataFrame(list(table.rows), columns=list(table.columns))


@pytest.mark.parametrize("threshold", [0.8, 0.65])
def test_numbers_in_the_page_equal_yield_report(run_dir, threshold):
    page = build_report(run_dir, threshold=threshold)
    report = collect_report(run_dir, threshold=threshold)
    dies = load_dies(run_dir)
    at = yield_report(dies, [threshold]).iloc[0]
    head = texts(section(report, "yield"))
    assert f"{at['yield']:.4f} (95% interval {at['lo']:.4f} to {at['hi']:.4f}" in head
    assert f"{int(at['k'])} of {int(at['n'])} dies pass" in head
    curve = _cells(tables(section(report, "yield"))[0])
    expected = yield_report(dies, curve["threshold"].astype(float).to_numpy())
    for col in ("n", "k"):
        np.testing.assert_array_equal(curve[col].astype(int), expected[col])
    for col in ("yield", "lo", "hi"):
        np.testing.assert_allclose(curve[col].astype(float), expected[col], atol=5e-5)  # printed to 4 decimals
    assert curve["method"].tolist() == expected["method"].tolist()
    for key, by in (("defect-type", "defect_type"), ("layer", "layers_affected")):
        shown = _cells(tables(section(report, key))[0])
        frame = dies.assign(layers_affected=dies["layers_affected"].replace("", "none"))
        expected = yield_report(frame, [threshold], by=by)
        assert shown[by].tolist() == expected[by].astype(str).tolist()
        np.testing.assert_array_equal(shown["k"].astype(int), expected["k"])
        np.testing.assert_allclose(shown["yield"].astype(float), expected["yield"], atol=5e-5)
        for _, row in shown.iterrows():  # the very cells are in the page
            cells = "".join(f'<td class="n">{v}</td>' for v in row[["n", "k", "yield", "lo", "hi"]])
            assert re.search(f'<td( class="n")?>{re.escape(row[by])}</td>{re.escape(cells)}', page), row.tolist()


def test_correction_section_compares_the_same_dies(run_dir):
    report = collect_report(run_dir)
    s = section(report, "correction")
    (table,) = tables(s)
    row = dict(zip(table.columns, table.rows[0], strict=True))
    fixed = load_corrected(run_dir, "per-die")
    merged = load_dies(run_dir).merge(fixed[["die", "accuracy_corrected"]], on="die")
    after = yield_report(merged.assign(accuracy=merged["accuracy_corrected"]), [0.8]).iloc[0]
    assert row["mode"] == "per-die" and row["dies corrected"] == str(CORRECTED)
    assert row["yield after"] == f"{after['yield']:.4f} [{after['lo']:.4f}, {after['hi']:.4f}]"
    assert row["mean accuracy after"] == f"{merged['accuracy_corrected'].mean():.4f}"
    assert "correction" in {i.name for i in report.images}


def test_partial_run_says_so_at_the_top(partial_dir):
    done = len(load_dies(partial_dir, allow_partial=True))
    assert 0 < done < DIES
    report = collect_report(partial_dir)
    assert report.partial and report.status.kind == "alert" and report.n_done == done
    assert f"PARTIAL RUN: {done} of {DIES} dies finished (run.json status: running)" in report.status.text
    page = build_report(partial_dir)
    assert page.index("PARTIAL RUN") < page.index('<section id="settings">')
    assert '<p class="alert">PARTIAL RUN' in page
    text = build_report(partial_dir, fmt="markdown")
    assert text.splitlines()[2].startswith(f"> **PARTIAL RUN: {done} of {DIES} dies")


def test_a_run_without_any_finished_die_reports_its_settings(run_dir):
    info = read_run_info(run_dir)
    report = report_from_frames(info, load_dies(run_dir).iloc[:0])
    assert report.partial and "0 of 40" in report.status.text
    assert [s.key for s in report.sections] == ["settings", "yield"] and not report.images


# --- wafer runs ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def wafer_report(run_dir):
    dies = wafer_dies(load_dies(run_dir))
    info = wafer_info(read_run_info(run_dir), len(dies))
    fixed = pd.DataFrame({"die": np.arange(60), "accuracy_corrected": 0.9})
    return dies, report_from_frames(info, dies, {"per-die": fixed}, run_name="runs/w")


def test_wafer_run_has_25_maps_radial_zones_and_models(wafer_report):
    dies, report = wafer_report
    names = {i.name for i in report.images}
    assert {"wafer-pass-fail", "wafer-accuracy", "wafer-pass-fail-per-die", "radial-yield", "yield-models"} <= names
    s = section(report, "wafers")
    assert texts(s).startswith(f"25 wafers, {len(dies)} dies")
    per_wafer, zones, rings = tables(s)
    assert len(per_wafer.rows) == LOTS * WAFERS
    ok = dies["accuracy"] >= 0.8
    np.testing.assert_allclose([float(r[4]) for r in per_wafer.rows], ok.groupby(dies["wafer"]).mean(), atol=5e-5)
    assert [r[0] for r in zones.rows] == ["center", "middle", "edge"]
    assert sum(int(r[3]) for r in zones.rows) == len(dies) == sum(int(r[2]) for r in rings.rows)
    models = section(report, "models")
    (fits,) = tables(models)
    assert len(fits.rows) == 6 and {r[0] for r in fits.rows} == {"pass_fail", "counts"}
    assert {r[1] for r in fits.rows if r[0] == "pass_fail"} == {"poisson", "murphy", "seeds", "negbin"}
    assert "die area 1 cm^2" in texts(models)


def test_wafer_helpers_read_the_settings():
    info = {"config": {"wafer": {"diameter_mm": 100, "die_w_mm": 10, "die_h_mm": 5, "edge_exclusion_mm": 3}}}
    assert wafer_spec(info) == WaferSpec(100, 10, 5, 3) and die_area_cm2(info) == 0.5
    assert wafer_spec({"config": {}}) is None and die_area_cm2({"config": {}}) is None
    assert wafer_spec({"config": {"wafer": {"wafers": 0, "diameter_mm": 100}}}) is None  # no wafers
    assert die_area_cm2({"config": {"wafer": {"area_cm2": 0.25}}}) == 0.25
    df = pd.DataFrame({"wafer": [np.nan, np.nan], "x": [1, 2]})
    assert missing_columns(df, ("wafer", "x", "y")) == ["wafer", "y"]  # all-null counts as absent


def test_model_fits_recover_the_defect_density(run_dir):
    # 100 wafers of 49 dies: the mean density of gamma(alpha=2) wafers is known to ~7 %
    dies = wafer_dies(load_dies(run_dir), d0=D0, alpha=ALPHA, seed=3, lots=20)
    table = model_fits(dies, 0.8, SPEC.die_area_cm2)
    fits = {(r.data, r.model): r for r in table.itertuples()}
    for key in (("counts", "negbin"), ("pass_fail", "negbin")):
        fit = fits[key]
        assert abs(fit.d0 - D0) < 0.2 * D0, (key, fit.d0)
        assert fit.d0_lo < D0 < fit.d0_hi, (key, fit.d0_lo, fit.d0_hi)
        assert 0.5 < fit.alpha < 10, (key, fit.alpha)
    # clustered data: the negative binomial beats Poisson on the counts
    assert fits[("counts", "negbin")].aic < fits[("counts", "poisson")].aic
    # ten times the density is seen as such (the fit can fail)
    dense = model_fits(wafer_dies(load_dies(run_dir), d0=10 * D0, seed=3), 0.8, 1.0)
    assert dense.set_index(["data", "model"]).loc[("counts", "negbin"), "d0"] > 5 * D0


def test_model_fits_and_maps_refuse_a_plain_table(run_dir):
    dies = load_dies(run_dir)
    with pytest.raises(ConfigError, match="n_defects"):
        model_fits(dies, 0.8)
    assert len(wafer_frame(dies, 0.8)) == len(dies)


# --- writing -------------------------------------------------------------------------------------

def test_html_is_self_contained(wafer_report):
    page = render_html(wafer_report[1])
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", page)  # no file, no network
    srcs = re.findall(r'<img id="fig-[\w-]+" alt="[^"]*" src="data:image/png;base64,([^"]+)"', page)
    assert len(srcs) == len(wafer_report[1].images) == page.count("<img ")
    assert all(base64.b64decode(s).startswith(PNG_MAGIC) for s in srcs)
    assert page.count("<script>") == 1 and CHECKED_MESSAGE in page


def test_markdown_writes_its_figures_beside_it(run_dir, tmp_path):
    out = tmp_path / "notes" / "run.md"
    summary = write_report(run_dir, out)
    assert summary["format"] == "markdown" and summary["figures"] == 5
    text = out.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == 5 and all(link.startswith("run_files/") for link in links)
    for link in links:
        assert (out.parent / link).read_bytes().startswith(PNG_MAGIC)
    assert "| threshold | n | k | yield | lo | hi | method |" in text
    assert render_markdown(collect_report(run_dir), "x")[0].count("](x/") == 5


def test_write_refuses_an_existing_file_and_writes_atomically(run_dir, tmp_path):
    out = tmp_path / "report.html"
    out.write_text("mine")
    with pytest.raises(ConfigError, match="exists; pass --overwrite"):
        write_report(run_dir, out)
    assert out.read_text() == "mine"
    summary = write_report(run_dir, out, overwrite=True)
    assert summary["dies"] == DIES and out.read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # no temporary file left
    with pytest.raises(ConfigError, match="is not a directory"):
        write_report(tmp_path / "nope", tmp_path / "other.html")
    with pytest.raises(ConfigError, match="run.json does not exist"):
        write_report(tmp_path, tmp_path / "other.html")
    with pytest.raises(ConfigError, match="format"):
        build_report(run_dir, fmt="pdf")


# --- the page in a browser -----------------------------------------------------------------------

def chromium() -> str:
    """The chromium program: a skip on a developer machine without it, a failure in CI."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed: CI must install it (apt-get install -y chromium, .ci/run)")
    pytest.skip("chromium is not installed (apt-get install -y chromium); the page is not opened in a browser")


def open_page(page: Path, shot: Path, profile: Path) -> list[str]:
    """Open ``page`` in headless chromium, screenshot it; the console messages it logged."""
    proc = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
         "--no-first-run", f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1200,4000",
         page.resolve().as_uri()], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [line for line in proc.stderr.splitlines() if "INFO:CONSOLE" in line]


def console_problems(lines: list[str], n_images: int) -> list[str]:
    """Every console line but the page's own all-clear (which must be there, once)."""
    ok = f'"{CHECKED_MESSAGE}: {n_images} images, 0 missing"'
    problems = [line for line in lines if ok not in line]
    if len(lines) - len(problems) != 1:
        problems.append(f"no {ok} line: the page's image check did not run")
    return problems


def test_report_opens_in_chromium_without_console_errors(wafer_report, tmp_path):
    report = wafer_report[1]
    page = tmp_path / "report.html"
    page.write_text(render_html(report))
    shot = tmp_path / "shot.png"
    lines = open_page(page, shot, tmp_path / "profile")
    assert console_problems(lines, len(report.images)) == []
    data = shot.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 50_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1200, 4000)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert (pixels.min(axis=2) < 0.5).mean() > 0.01  # text and figures, not a blank page


def test_chromium_check_catches_a_broken_image(tmp_path):
    pixel = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    good = Image("good", base64.b64decode(pixel), "one pixel")
    broken = Image("broken", b"not a png at all", "a broken figure")
    report = Report("broken", Text("x", "ok"), (Section("s", "S", (good, broken)),), False, 1, 1)
    page = tmp_path / "broken.html"
    page.write_text(render_html(report))
    lines = open_page(page, tmp_path / "shot.png", tmp_path / "profile")
    problems = console_problems(lines, 2)
    assert any('"missing image fig-broken"' in p for p in problems), lines
    assert not any("fig-good" in p for p in problems)
    assert json.dumps("1 missing")[1:-1] in " ".join(lines)

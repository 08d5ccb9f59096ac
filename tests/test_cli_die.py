"""The ``yieldmc die`` command: JSON summary, flags, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tests.tolerances import PRINTED_3DP_ATOL, RANDOM_SHARE_ATOL, SPICE_RTOL, SPICE_SINH_RTOL
from yieldmc.cli import app

#: Cells of the paper die: 64x16 + 8x16 + 8x16 + 8x20 (DESIGN.md section 5).
PAPER_CELLS = 64 * 16 + 8 * 16 + 8 * 16 + 8 * 20
#: Fault-free paper die with 1 ohm wires: at most this accuracy loss against software.
IR_ACCURACY_LOSS = 0.02
KEYS = {"software_accuracy", "circuit_accuracy", "ideal_wire_accuracy", "n_arrays",
        "defect_type", "fault_fraction"}


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory):
    return {"YIELDMC_CACHE": str(tmp_path_factory.mktemp("yieldmc_cache"))}


@pytest.fixture(scope="module")
def run(cache_env):
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, ["die", *args], env=cache_env)

    return invoke


def _json(result) -> dict:
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout  # one JSON object, nothing else on stdout
    return json.loads(lines[0])


def test_json_summary_of_a_fault_free_die(run):
    out = _json(run("--defect", "none", "--json"))
    assert KEYS <= set(out)
    assert out["n_arrays"] == 4 and out["array_shapes"] == [[64, 16], [8, 16], [8, 16], [8, 20]]
    assert out["defect_type"] == "none" and out["fault_fraction"] == 0.0
    assert out["n_stuck_on"] == out["n_stuck_off"] == 0 and out["layers_affected"] == []
    assert out["circuit_accuracy"] == out["fault_free_accuracy"]
    # ideal wires, no defects: exactly the software network (tests/test_die.py)
    assert out["ideal_wire_accuracy"] == out["software_accuracy"]
    assert out["circuit_accuracy"] >= out["software_accuracy"] - IR_ACCURACY_LOSS
    for key in ("software_accuracy", "circuit_accuracy", "ideal_wire_accuracy"):
        assert 0.0 <= out[key] <= 1.0 and out[key] * 180 == pytest.approx(round(out[key] * 180))
    assert out["solver_converged"] is True


def test_json_summary_of_a_random_defect_die(run):
    out = _json(run("--defect", "random", "--severity", "0.02", "--die", "3", "--json"))
    assert out["defect_type"] == "random" and out["die"] == 3
    assert out["fault_fraction"] == pytest.approx(0.02, abs=RANDOM_SHARE_ATOL)
    assert out["n_stuck_on"] + out["n_stuck_off"] == round(out["fault_fraction"] * PAPER_CELLS)
    # every layer may be hit; the 64x16 array (~20 expected cells) surely is
    assert 0 in out["layers_affected"] and set(out["layers_affected"]) <= {0, 1, 2, 3}
    again = _json(run("--defect", "random", "--severity", "0.02", "--die", "3", "--json"))
    assert again == out  # a die is a function of (seed, die)


def test_layers_flag_confines_defects(run):
    out = _json(run("--defect", "row", "--severity", "0.25", "--layers", "2", "--json"))
    assert out["layers_affected"] == [2]
    assert out["n_stuck_on"] + out["n_stuck_off"] == 2 * 16  # 2 of 8 rows of an 8x16 array
    assert out["update_methods"][:2] == ["reuse", "reuse"] and out["update_methods"][3] == "reuse"


def test_set_and_config_file_reach_the_die(run, tmp_path):
    cfg = tmp_path / "tiled.toml"
    cfg.write_text("[arrays]\nmax_rows = 16\nmax_cols = 4\n")
    out = _json(run("--config", str(cfg), "--set", "defects.kind=\"none\"", "--json"))
    assert out["n_arrays"] == 29 and max(r for r, _ in out["array_shapes"]) == 16


def test_text_output(run):
    result = run("--defect", "none")
    assert result.exit_code == 0, result.stderr
    assert "software accuracy" in result.stdout and "fault-free die, IR drop" in result.stdout


@pytest.mark.parametrize("args", [
    ["--preset", "nope"],
    ["--set", "device.g_off=1e-3"],
    ["--set", "wires.r_row=-1"],
    ["--set", "wires.r_rw=1"],
    ["--set", "novalue"],
    ["--layers", "9"],
    ["--layers", "one"],
    ["--defect", "scratch"],
    ["--severity", "0.5:0.1"],
    ["--severity", "lots"],
    ["--config", "CORRUPT"],
    ["--config", "MISSING"],
])
def test_bad_input_is_one_line_on_stderr_and_exit_2(run, tmp_path, args):
    corrupt = tmp_path / "corrupt.toml"
    corrupt.write_text("[wires\nr_row = = 1\n")
    args = [{"CORRUPT": str(corrupt), "MISSING": str(tmp_path / "absent.toml")}.get(a, a)
            for a in args]
    result = run(*args, "--json")
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_non_numeric_severity_is_a_clean_error(run):
    result = run("--set", 'defects.severity=["a", "b"]', "--json")
    assert result.exit_code == 2 and result.stderr.startswith("error: ")


def test_end_to_end_subprocess(cache_env):
    env = {**os.environ, **cache_env}
    ok = subprocess.run([sys.executable, "-m", "yieldmc.cli", "die", "--defect", "none", "--json"],
                        capture_output=True, text=True, env=env, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert KEYS <= set(json.loads(ok.stdout))
    bad = subprocess.run([sys.executable, "-m", "yieldmc.cli", "die", "--set", "wires.r_row=-1"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == ["error: wires.r_row must be a finite number >= 0, got -1.0"]


@pytest.mark.slow
def test_die_json_does_not_depend_on_the_cpu_kernels(cache_env, tmp_path):
    """``yieldmc die --json`` is byte-identical with the generic x86-64 kernels of OpenBLAS
    (``OPENBLAS_CORETYPE=Prescott``: no AVX) and numba (``NUMBA_CPU_NAME=generic``) and with
    this CPU's own: the shipped weights and the circuit solves do not depend on the CPU's
    instruction set (the stand-in for a second machine)."""
    outputs = []
    for extra in ({}, {"OPENBLAS_CORETYPE": "Prescott", "NUMBA_CPU_NAME": "generic",
                       "NUMBA_CACHE_DIR": str(tmp_path / "numba-generic")}):
        env = {**os.environ, **cache_env, **extra}
        done = subprocess.run([sys.executable, "-m", "yieldmc.cli", "die", "--json"], capture_output=True,
                              text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0])["software_accuracy"] > 0.9


def test_device_flag_reaches_the_die(run):
    out = _json(run("--device", "sinh", "--defect", "none", "--json"))
    assert out["device"] == "sinh" and out["solver_converged"] is True
    assert out["update_methods"] == ["newton"] * 4
    assert out["circuit_accuracy"] >= out["software_accuracy"] - IR_ACCURACY_LOSS
    assert _json(run("--defect", "none", "--json"))["device"] == "linear"
    bad = run("--device", "memristor")
    assert bad.exit_code == 2 and "device.model 'memristor' is not available" in bad.stderr


@pytest.mark.ngspice
@pytest.mark.parametrize("device, rows", [("linear", 12), ("sinh", 16)])
def test_spice_check_command(device, rows):
    result = CliRunner().invoke(app, ["spice-check", "--device", device, "--rows", str(rows),
                                      "--cols", "8", "--json"])
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["device"] == device and out["rows"] == rows
    assert out["max_rel_error"] < out["limit"] == (SPICE_SINH_RTOL if device == "sinh" else SPICE_RTOL)
    assert out["passed"] is True


@pytest.mark.parametrize("args, message", [
    (["--device", "memristor"], "--device must be one of linear, sinh"),
    (["--v0", "0.1"], "--v0 applies to --device sinh only"),
    (["--device", "sinh", "--v0", "0"], "--v0 must be > 0 V"),
])
def test_spice_check_refuses_bad_options(args, message):
    result = CliRunner().invoke(app, ["spice-check", *args])
    assert result.exit_code == 2 and message in result.stderr


def test_a_failed_solve_is_reported_by_the_die_command(cache_env, monkeypatch):
    import yieldmc.die
    from yieldmc.circuit import solve_sinh_info

    def one_step_for_die_arrays(*args, raise_on_failure=True, **kwargs):
        return solve_sinh_info(*args, raise_on_failure=raise_on_failure,
                               max_newton=50 if raise_on_failure else 1, **kwargs)

    monkeypatch.setattr(yieldmc.die, "solve_sinh_info", one_step_for_die_arrays)
    runner = CliRunner()
    out = _json(runner.invoke(app, ["die", "--device", "sinh", "--json"], env=cache_env))
    # with ideal wires and no periphery the start is exact: nothing to fail
    assert out["solver_converged"] is False and out["ideal_wire_solver_converged"] is True
    periphery = ["die", "--device", "sinh", "--set", "wires.r_sense=10.0"]
    out = _json(runner.invoke(app, [*periphery, "--json"], env=cache_env))
    assert out["solver_converged"] is False and out["ideal_wire_solver_converged"] is False
    text = runner.invoke(app, periphery, env=cache_env)
    assert text.exit_code == 0 and text.stderr.count("warning: a circuit solve") == 2


# --- help, version, python -m yieldmc ------------------------------------------------------------

COMMANDS = ["die", "sample", "correct", "yield", "reproduce", "demo", "spice-check", "gallery"]


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_renders_as_written(command):
    """Plain help: no rich markup eating [seed, d], no <bool> on flags, no {RUN} in usage."""
    result = CliRunner().invoke(app, [*filter(None, [command]), "--help"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    flat = " ".join(text.split())
    assert "<bool>" not in text and "{" not in text and "}" not in text, text
    assert text.startswith("Usage: ")
    expected = {
        "": ["--version", *COMMANDS],
        "die": ["DieStream(seed, die)"],
        "sample": ["DieStream(seed, d)", "--resume", "--overwrite", "--jobs", "Exit codes"],
        "correct": ["Usage: root correct [OPTIONS] RUN", "--verify / --no-verify"],
        "yield": ["Usage: root yield [OPTIONS] RUN", "--verify / --no-verify", "--include-unconverged",
                  "excluded_unconverged"],
        "reproduce": ["[default: runs/paper]"],
        "spice-check": ["PASS", "FAIL", '"passed"'],
        "demo": ["--r-wire"],
        "gallery": ["the format follows the suffix"],
    }[command]
    for phrase in expected:
        assert phrase in flat, (phrase, text)


def test_version():
    from yieldmc import __version__

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"yieldmc {__version__}\n"


def test_python_dash_m_yieldmc(cache_env):
    from yieldmc import __version__

    env = {**os.environ, **cache_env}
    version = subprocess.run([sys.executable, "-m", "yieldmc", "--version"], capture_output=True,
                             text=True, env=env, timeout=120)
    assert version.returncode == 0 and version.stdout == f"yieldmc {__version__}\n"
    bad = subprocess.run([sys.executable, "-m", "yieldmc", "die", "--set", "wires.r_row=-1"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: wires.r_row")
    usage = subprocess.run([sys.executable, "-m", "yieldmc", "sample", "--help"], capture_output=True,
                           text=True, env=env, timeout=120)
    assert usage.returncode == 0 and usage.stdout.startswith("Usage: yieldmc sample")


@pytest.mark.parametrize("factor, verdict, code", [(1.0, "PASS", 0), (1.0 + 1e-6, "FAIL", 1)])
def test_spice_check_says_pass_or_fail(monkeypatch, factor, verdict, code):
    """ngspice replaced by the engine itself (exact: PASS) or by it with a 1e-6 error (FAIL)."""
    import yieldmc.spice
    from yieldmc.circuit import solve_device

    def fake_ngspice(G, v, r_row, r_col, *, r_sense=0.0, device=None):
        return solve_device(device, G, v, r_row, r_col, r_sense=r_sense) * factor

    monkeypatch.setattr(yieldmc.spice, "run_ngspice", fake_ngspice)
    text = CliRunner().invoke(app, ["spice-check", "--rows", "6", "--cols", "4"])
    assert text.exit_code == code and text.stdout.startswith(f"{verdict}: 6x4 linear"), text.stdout
    as_json = CliRunner().invoke(app, ["spice-check", "--rows", "6", "--cols", "4", "--json"])
    assert as_json.exit_code == code
    assert json.loads(as_json.stdout)["passed"] is (verdict == "PASS")


def test_help_names_what_the_library_defines():
    """Help texts that quote library constants (written out, so that ``yieldmc --help`` does
    not import scikit-learn or compile numba): the defect kinds, the corrector methods, the
    spice-check tolerances."""
    from yieldmc.correctors import METHODS
    from yieldmc.defects import KINDS
    from yieldmc.spice import CHECK_ROWS, CHECK_RTOL, CHECK_V0

    die_help = " ".join(CliRunner().invoke(app, ["die", "--help"]).stdout.split())
    assert f"Defect kind: {', '.join(KINDS)}." in die_help
    spice_help = " ".join(CliRunner().invoke(app, ["spice-check", "--help"]).stdout.split())
    quoted = re.search(r"below (\S+) \(linear\) or (\S+) \(sinh\)", spice_help)
    assert quoted and tuple(map(float, quoted.groups())) == (CHECK_RTOL["linear"], CHECK_RTOL["sinh"])
    assert f"(default {CHECK_ROWS['linear']} linear, {CHECK_ROWS['sinh']} sinh)" in spice_help
    assert f"default {CHECK_V0}." in spice_help
    correct_help = " ".join(CliRunner().invoke(app, ["correct", "--help"]).stdout.split())
    assert f"Per-die corrector: {', '.join(METHODS[:-1])} or {METHODS[-1]}." in correct_help


def test_demo_prints_the_library_demo():
    """``yieldmc demo`` prints :func:`yieldmc.circuit.demo.ir_drop_demo`'s currents."""
    from yieldmc.circuit.demo import ir_drop_demo

    out = CliRunner().invoke(app, ["demo", "--rows", "6", "--cols", "3", "--r-wire", "2", "--seed", "4"])
    assert out.exit_code == 0, out.output
    d = ir_drop_demo(6, 3, r_wire=2.0, seed=4)
    rows = [line.split() for line in out.stdout.splitlines()[3:]]
    assert len(rows) == 3
    for j, row in enumerate(rows):
        assert [float(x) for x in row] == pytest.approx(
            [j, 1e6 * d.ideal[j], 1e6 * d.wired[j], d.loss_percent[j]], abs=PRINTED_3DP_ATOL)
    assert "G in [1e-6, 1e-4] S, v in [0, 0.2] V, wire 2.0 ohm" in out.stdout

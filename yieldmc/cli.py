"""The ``yieldmc`` command line: a thin typer layer over the modules.

Data and ``--json`` summaries go to stdout; progress and messages to stderr. Failures are
one ``error: ...`` line on stderr, never a traceback: exit code 2 for a bad input (an
option, a setting, a missing or unreadable file), 1 for a failure outside the input (a
worker process killed, a full or read-only disk; the line says how to resume a sweep),
130 for Ctrl-C. Help texts are plain text (no rich markup), so ``[seed, d]`` stays as written.

The commands that read a finished run (``correct``, ``yield``, ``report``, ``wafermap``) live
in :mod:`yieldmc.cli_runs`; this module registers them on :data:`app`, the entry point.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from pathlib import Path

import numpy as np
import typer
import typer.core

from yieldmc import cli_lifetime, cli_runs
from yieldmc.defects import KINDS
from yieldmc.errors import YieldmcError

app = typer.Typer(
    help="Monte Carlo yield of fully analog ReRAM neural-network dies with stuck-at defects.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help is plain text: rich markup would eat "[seed, d]"
)


class _Command(typer.core.TyperCommand):
    """typer's command with plain argument names in its usage line (typer writes ``{RUN}``)."""

    def collect_usage_pieces(self, ctx):
        return [re.sub(r"^\{(.*)\}$", r"\1", piece) for piece in super().collect_usage_pieces(ctx)]


def _version(value: bool) -> None:
    if value:
        from yieldmc import __version__

        typer.echo(f"yieldmc {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Monte Carlo yield of fully analog ReRAM neural-network dies with stuck-at defects."""


def _fail(message: str, code: int = 2) -> None:
    message = " ".join(str(message).split()) or "unknown error"  # always one line
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def user_errors(func):
    """One ``error:`` line instead of a traceback: yieldmc's own errors (exit code 2, or the
    error's ``exit_code``), files the user named that are missing or unreadable (2,
    ``PermissionError`` included), and a full or read-only disk met elsewhere (1; the run
    directory's own writes arrive as ``StoreWriteError``, exit 1)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except YieldmcError as exc:
            _fail(str(exc), getattr(exc, "exit_code", 2))
        except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
            _fail(str(exc))
        except OSError as exc:
            from yieldmc.errors import DISK_ERRNOS, describe_os_error, os_errno

            if os_errno(exc) not in DISK_ERRNOS:
                raise
            _fail(describe_os_error(exc), 1)

    return wrapper


PresetOpt = typer.Option("paper", "--preset", help=(
    "Shipped preset: paper (64-8-8-8-10, idealised), realistic (the paper die with programming variation, read "
    "noise, drift, rails and a bias row) or large (784-256-10, tiled)."))
ConfigOpt = typer.Option(None, "--config", help="TOML file whose settings override the preset's.")
SetOpt = typer.Option(
    None, "--set", metavar="SECTION.FIELD=VALUE",
    help="Override one setting, e.g. --set wires.r_row=2.0 (repeatable).")
DeviceOpt = typer.Option(
    None, "--device",
    help="Cell I-V model: linear (ohmic, fast) or sinh (gap model, a Newton solve per image); default from the preset.")


def build_config(preset: str, config: Path | None, sets: list[str] | None, **flags):
    """Preset -> user TOML -> --set overrides -> the command's own flags (None = unset)."""
    from yieldmc.config import load_config, parse_value
    from yieldmc.errors import ConfigError

    overrides = {}
    for item in sets or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set needs section.field=value, got {item!r}")
        overrides[key.strip()] = parse_value(value.strip())
    overrides.update({k: v for k, v in flags.items() if v is not None})
    return load_config(preset, config, overrides)


def parse_severity(text: str | None) -> list[float] | None:
    """``"0.1"`` or ``"LO:HI"`` -> ``[lo, hi]``; None stays None."""
    from yieldmc.errors import ConfigError

    if text is None:
        return None
    try:
        parts = [float(p) for p in text.split(":")]
    except ValueError:
        raise ConfigError(f"--severity must be a number or LO:HI in [0, 1], got {text!r}") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise ConfigError(f"--severity must be a number or LO:HI in [0, 1], got {text!r}")
    return parts


def parse_layers(text: str | None) -> list[int] | None:
    """``"0,2"`` -> ``[0, 2]``; ``"all"`` -> ``[]``; None stays None."""
    from yieldmc.errors import ConfigError

    if text is None:
        return None
    if text.strip().lower() == "all":
        return []
    try:
        layers = [int(p) for p in text.split(",") if p.strip()]
        if not layers:  # "" would otherwise mean every layer, silently
            raise ValueError(text)
        return layers
    except ValueError:
        raise ConfigError(f"--layers must be comma-separated layer indices or 'all', got {text!r}") from None


def _die_config(preset: str, config: Path | None, sets: list[str] | None, defect: str | None,
                severity: str | None, layers: str | None, seed: int | None, device: str | None, **more):
    """:func:`build_config` with the defect, seed and device flags of ``die`` and ``sample``
    (and ``more`` overrides, e.g. ``sample``'s wafer flags)."""
    return build_config(preset, config, sets, **{
        "defects.kind": defect, "defects.severity": parse_severity(severity),
        "defects.layers": parse_layers(layers), "seed": seed, "device.model": device, **more})


def parse_die_size(text: str | None) -> tuple[float | None, float | None]:
    """``"10x10"`` (mm, width x height) -> ``(10.0, 10.0)``; None -> ``(None, None)``."""
    from yieldmc.errors import ConfigError

    if text is None:
        return None, None
    parts = text.lower().split("x")
    try:
        w, h = (float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--die-size is width x height in mm, e.g. 10x10, got {text!r}") from None
    return w, h


@app.command(cls=_Command)
@user_errors
def die(
    preset: str = PresetOpt,
    config: Path = ConfigOpt,
    sets: list[str] = SetOpt,
    defect: str = typer.Option(None, "--defect", help=f"Defect kind: {', '.join(KINDS)}."),
    severity: str = typer.Option(None, "--severity", help="Faulty share of each affected array: S or LO:HI."),
    layers: str = typer.Option(None, "--layers", help="Layers receiving defects, e.g. 0,2 or all."),
    seed: int = typer.Option(None, "--seed", min=0, help="Root seed of the run."),
    die_index: int = typer.Option(0, "--die", min=0, help="Die index (its random stream is DieStream(seed, die))."),
    device: str = DeviceOpt,
    masks: Path = typer.Option(
        None, "--masks",
        help=("An .npz of the die's masks (keys array_0, array_1, ...; yieldmc masks writes one) instead of the "
              "defects die --die draws; --die then keys only the programming noise.")),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Simulate one die and print its accuracy (software, fault-free, with and without IR drop)."""
    from yieldmc.die import compare_die
    from yieldmc.errors import ConfigError
    from yieldmc.masks import load_masks

    if masks is not None and (defect, severity, layers) != (None, None, None):
        raise ConfigError("--masks gives the die's defects: leave out --defect, --severity and --layers")
    cfg = _die_config(preset, config, sets, defect, severity, layers, seed, device)
    comparison = compare_die(cfg, die_index, masks=None if masks is None else load_masks(masks))
    summary = comparison.summary()
    if as_json:
        typer.echo(json.dumps(summary))
        return
    result, ideal = comparison.result, comparison.ideal
    typer.echo(f"{cfg.name} die {die_index} (seed {cfg.seed}, {cfg.device.model} device): {summary['n_arrays']} arrays "
               f"{', '.join('x'.join(map(str, s)) for s in comparison.array_shapes)}")
    typer.echo(f"  software accuracy            {summary['software_accuracy']:.4f}")
    typer.echo(f"  fault-free die, IR drop      {summary['fault_free_accuracy']:.4f}")
    typer.echo(f"  this die ({result.defect_type}, {100 * result.fault_fraction:.2f}% stuck: "
               f"{result.n_stuck_on} ON, {result.n_stuck_off} OFF, layers {result.layers_affected})")
    typer.echo(f"    with IR drop               {result.accuracy:.4f}")
    typer.echo(f"    with ideal wires           {ideal.accuracy:.4f}")
    for name, r in comparison.unconverged():
        typer.echo(f"warning: a circuit solve of the die {name} stopped at relative residual "
                   f"{r.solver_max_residual:.3g} above its tolerance: its accuracy is not trustworthy",
                   err=True)


@app.command(cls=_Command)
@user_errors
def masks(
    kind: str = typer.Argument(..., help="Defect kind: circular, circular_complement, ring, row, column, "
                               "checkerboard, random or none."),
    severity: str = typer.Option(..., "--severity", help="Faulty share S in [0, 1] of each affected array."),
    on_mode: str = typer.Option(
        "cell", "--on-mode",
        help="cell (a fixed per-array ON/OFF map shared by every kind), on (all stuck ON) or off (all stuck OFF)."),
    on_fraction: float = typer.Option(0.5, "--on-fraction", help="--on-mode cell: share of faulty cells stuck ON."),
    seed: int = typer.Option(0, "--seed", min=0, help="Key of the ON/OFF map and of random's cells."),
    preset: str = PresetOpt,
    config: Path = ConfigOpt,
    sets: list[str] = SetOpt,
    layers: str = typer.Option(None, "--layers", help="Layers receiving the pattern, e.g. 0,1 or all (default all)."),
    out: Path = typer.Option(..., "--out", help="The .npz file to write (keys array_0, array_1, ...)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out."),
) -> None:
    """Write the canonical (fixed, centred) masks of a defect kind for the preset's die.

    The same cell has the same ON/OFF state in every kind (--on-mode cell), so masks of
    two kinds compare cell for cell; yieldmc die --masks FILE runs them (docs/defects.md).
    """
    from yieldmc.errors import ConfigError
    from yieldmc.masks import canonical_die_masks, save_masks

    try:
        s = float(severity)
    except ValueError:
        raise ConfigError(f"--severity must be a number in [0, 1], got {severity!r}") from None
    cfg = build_config(preset, config, sets, **{"defects.layers": parse_layers(layers)})
    if out.exists() and not overwrite:  # before the layout (it may load the data)
        raise ConfigError(f"{out} exists; pass --overwrite to replace it")
    made = canonical_die_masks(cfg, kind, s, on_mode=on_mode, on_fraction=on_fraction, seed=seed)
    save_masks(out, made, overwrite=overwrite)
    shares = ", ".join(f"{np.count_nonzero(m) / m.size:.4f}" for m in made)
    typer.echo(f"{out}: {kind} at severity {s:g} (on-mode {on_mode}) on {len(made)} arrays; faulty share {shares}")


@app.command(cls=_Command)
@user_errors
def sample(
    dies: int = typer.Option(
        None, "--dies",
        help="Number of dies to simulate (>= 1); with --wafers, every die site of the wafers (leave it out)."),
    defect: str = typer.Option(
        None, "--defect",
        help="Defect kind (mixed draws a spatial kind per die); default from the preset."),
    wafers: int = typer.Option(
        None, "--wafers", min=0,
        help=("Place the dies on W wafers per lot (wafer.wafers; 0: no wafers): every die site is simulated, "
              "and each die's defect count follows the clustered density of docs/wafer.md.")),
    lots: int = typer.Option(None, "--lots", min=1, help="Lots of --wafers wafers each (wafer.lots; default 1)."),
    wafer_diameter: float = typer.Option(
        None, "--wafer-diameter", help="Wafer diameter in mm (wafer.diameter_mm; default 300)."),
    die_size: str = typer.Option(
        None, "--die-size", help="Die width x height in mm, e.g. 10x10 (wafer.die_w_mm, wafer.die_h_mm)."),
    preset: str = PresetOpt,
    config: Path = ConfigOpt,
    sets: list[str] = SetOpt,
    severity: str = typer.Option(
        None, "--severity",
        help="Faulty share of each affected array: S or LO:HI (drawn per array)."),
    layers: str = typer.Option(None, "--layers", help="Layers receiving defects, e.g. 0,2 or all."),
    seed: int = typer.Option(
        None, "--seed", min=0,
        help="Root seed: die d draws from the counter-based stream DieStream(seed, d)."),
    device: str = DeviceOpt,
    out: Path = typer.Option(
        Path("runs/sample"), "--out",
        help="Run directory (refused if not empty, see --resume/--overwrite)."),
    jobs: int = typer.Option(
        -1, "--jobs", "-j",
        help="Workers: threads or processes (default -1: all cores); capped at the available cores."),
    chunk_size: int = typer.Option(
        None, "--chunk-size",
        help=("Dies per task (default: about 8 tasks per worker process, 8 in all with threads; at most 2000 dies "
              "and 32 MiB of voltages).")),
    engine: str = typer.Option(
        "compiled", "--engine",
        help="compiled (one numba call per chunk of dies) or reference (the readable per-die path; the same dies)."),
    backend: str = typer.Option(
        "auto", "--backend",
        help=("auto (threads for the compiled engine, loky for the reference one), threads (this process), loky "
              "(local processes) or dask.")),
    scheduler_address: str = typer.Option(None, "--scheduler-address", help="dask scheduler, e.g. tcp://host:8786."),
    scheduler_file: Path = typer.Option(None, "--scheduler-file", help="dask scheduler file."),
    store_voltages: str = typer.Option(
        "test", "--store-voltages",
        help="none, test (180 test images) or all (train and test)."),
    compress: str = typer.Option(
        "none", "--compress",
        help="HDF5 filter of the stored voltages: none (fastest), lzf or gzip (about 16 % smaller)."),
    resume: bool = typer.Option(False, "--resume", help="Finish an interrupted run in --out."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace yieldmc's files in --out."),
    threshold: float = typer.Option(0.8, "--threshold", help="Accuracy threshold of the summary's yield."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no notices (warnings stay)."),
) -> None:
    """Sample a population of defective dies and store each die's accuracy and voltages.

    Writes OUT/run.json, OUT/dies/part-*.parquet (one row per die), OUT/voltages/part-*.h5
    and OUT/manifest.json; see docs/data.md. Die d uses the random stream
    DieStream(seed, d), so the dies do not depend on --jobs, --chunk-size, --backend or
    --engine (the compiled and reference engines draw the same defects and give the same
    accuracies; voltages agree within 1e-9).

    The compiled engine splits each chunk across --jobs threads of this process while a
    writer thread stores the previous chunk; sinh dies take the reference engine. --jobs is
    capped at the available cores (with a warning) and refused above 4 workers per core.
    Mean accuracy and yield in the summary leave out the dies whose circuit
    solve did not converge (counted as unconverged). The first run on a machine compiles
    numba kernels (about a minute; a notice says so).

    With --wafers W the dies sit on wafers (lots x W wafers, every die site; per-die columns
    lot, wafer, x, y, r_mm, expected_defects, n_defects): each die's number of defects comes
    from the lot/wafer density hierarchy (wafer.d0, wafer.alpha, wafer.signature; see
    docs/wafer.md), and that many of its arrays receive the cell-level defects it would draw
    in a --dies run. yieldmc report, wafermap and yield --models read such runs.

    Exit codes: 0 done; 2 bad input (an option, a setting, an --out in the way; a new run
    directory is not created); 1 a worker died, a disk is full or read-only, or another
    process writes --out; 130 Ctrl-C. After 1 or 130 the finished chunks are kept and
    --resume finishes the run.
    """
    from yieldmc.montecarlo import RateMeter, run_sample

    die_w, die_h = parse_die_size(die_size)
    cfg = _die_config(preset, config, sets, defect, severity, layers, seed, device, **{
        "wafer.wafers": wafers, "wafer.lots": lots, "wafer.diameter_mm": wafer_diameter,
        "wafer.die_w_mm": die_w, "wafer.die_h_mm": die_h})
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    columns = (TextColumn("[bold]dies"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
               TextColumn("ETA {task.fields[eta]}"))
    # The bar starts at the first progress report, i.e. after every argument was checked
    # and the die model was built, so a bad input prints only its one-line error. The rate
    # and ETA count from the first finished chunk (RateMeter), not from the start-up.
    bar = Progress(*columns, console=console, disable=quiet, transient=False)
    task = bar.add_task("dies", total=dies, rate="", eta="-:--:--", start=False)
    meter = RateMeter()
    started = []

    def progress(done: int, total: int) -> None:
        if not started:  # the elapsed time counts from here, after the model was built
            bar.start()
            bar.start_task(task)
            started.append(True)
        meter.update(done, total)
        eta = "-:--:--" if meter.eta_s is None else _clock(meter.eta_s)
        bar.update(task, completed=done, total=total, rate=f"{meter.rate:,.0f} dies/s" if meter.rate else "", eta=eta)

    def log(message: str) -> None:
        if not quiet or message.startswith("warning:"):
            typer.echo(message, err=True)

    try:
        summary = run_sample(
            cfg, dies, out, jobs=jobs, chunk_size=chunk_size, backend=backend, engine=engine,
            compress=compress, scheduler_address=scheduler_address, scheduler_file=scheduler_file,
            store_voltages=store_voltages, resume=resume, overwrite=overwrite,
            threshold=threshold, progress=progress, log=log)
    except KeyboardInterrupt:
        if started:
            bar.stop()
        typer.echo(f"interrupted: finished chunks are kept; run again with --resume --out {out}", err=True)
        raise typer.Exit(130) from None
    finally:
        if started:
            bar.stop()
    if as_json:
        typer.echo(json.dumps(summary))
        return
    rate, unconverged = summary["dies_per_s"], summary["unconverged_dies"]
    number = lambda x: "n/a" if x is None else f"{x:.4f}"  # noqa: E731 - no converged die
    typer.echo(
        f"{summary['dies']} dies"
        + (f" ({unconverged} unconverged, left out of accuracy and yield)" if unconverged else "")
        + f", mean accuracy {number(summary['mean_accuracy'])}, "
        f"yield {number(summary['yield'])} at accuracy >= {summary['threshold']:.2f}, "
        f"{summary['elapsed_s']:.1f} s" + (f", {rate:,.0f} dies/s" if rate else "") + f" -> {out}")


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# The commands that read a finished run (yieldmc.cli_runs), registered here in help order.
app.command(cls=_Command)(user_errors(cli_runs.correct))
app.command("yield", cls=_Command)(user_errors(cli_runs.yield_))
app.command(cls=_Command)(user_errors(cli_runs.report))
app.command(cls=_Command)(user_errors(cli_runs.wafermap))
app.command(cls=_Command)(user_errors(cli_lifetime.lifetime))


@app.command(cls=_Command)
@user_errors
def reproduce(
    out: Path = typer.Option(
        Path("runs/paper"), "--out",
        help=("New directory for the study's CSV, HDF5 and PNG files (results/paper holds the committed results; "
              "--overwrite replaces a study there).")),
    quick: bool = typer.Option(False, "--quick", help="Small version (one severity, 2 instances, small "
                               "protocol families): about 1 minute."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing study files in --out."),
    jobs: int = typer.Option(1, "--jobs", min=1, help="Processes for the correctors' fits (results do not "
                             "depend on it)."),
    preset: str = PresetOpt,
    config: Path = ConfigOpt,
    sets: list[str] = SetOpt,
) -> None:
    """Run the publication's study: per-type correction, transfer protocols A-D, corrector
    size and calibration budget, yield.

    Writes into a fresh directory (default runs/paper); compare with the committed
    results in results/paper (docs/reproduction.md).
    """
    from yieldmc.reproduce import StudySettings, run_study

    cfg = build_config(preset, config, sets)
    settings = StudySettings.quick() if quick else StudySettings()
    summary = run_study(out, settings, cfg, overwrite=overwrite, log=lambda m: typer.echo(m, err=True),
                        n_jobs=jobs)
    typer.echo(json.dumps({k: v for k, v in summary.items() if k != "settings"}))


@app.command(cls=_Command)
@user_errors
def demo(
    rows: int = typer.Option(32, min=1, help="Rows (inputs) of the demo array."),
    cols: int = typer.Option(16, min=1, help="Columns (outputs) of the demo array."),
    r_wire: float = typer.Option(1.0, min=0.0, help="Wire segment resistance (ohm)."),
    seed: int = typer.Option(0, min=0, help="Seed of the random conductances and inputs."),
) -> None:
    """Solve a random crossbar with and without IR drop and print the column currents."""
    from yieldmc.circuit.demo import DEMO_G_RANGE, DEMO_V_RANGE, ir_drop_demo

    d = ir_drop_demo(rows, cols, r_wire=r_wire, seed=seed)
    g_lo, g_hi = (np.format_float_scientific(g, trim="-", exp_digits=1) for g in DEMO_G_RANGE)
    v_lo, v_hi = DEMO_V_RANGE
    typer.echo(f"{rows}x{cols} array, G in [{g_lo}, {g_hi}] S, v in [{v_lo:g}, {v_hi:g}] V, wire {r_wire} ohm")
    typer.echo(f"solver: {d.info.iterations} CG iterations, residual {d.info.max_residual:.1e}")
    typer.echo(f"{'column':>6} {'ideal (uA)':>12} {'IR drop (uA)':>13} {'loss %':>7}")
    for j, (i0, i1, loss) in enumerate(zip(d.ideal, d.wired, d.loss_percent, strict=True)):
        typer.echo(f"{j:>6} {1e6 * i0:>12.4f} {1e6 * i1:>13.4f} {loss:>7.3f}")


@app.command("spice-check", cls=_Command)
@user_errors
def spice_check(
    rows: int = typer.Option(None, min=1, help="Rows of the random test array (default 32 linear, 16 sinh)."),
    cols: int = typer.Option(None, min=1, help="Columns of the random test array (default as rows)."),
    seed: int = typer.Option(0, min=0, help="Seed of conductances and inputs."),
    r_wire: float = typer.Option(1.0, min=0.0, help="Row and column segment resistance (ohm)."),
    r_sense: float = typer.Option(0.0, min=0.0, help="Sense-amplifier input impedance (ohm)."),
    device: str = typer.Option(
        "linear", "--device",
        help="Cell model: linear (R elements) or sinh (B elements, Newton solver)."),
    v0: float = typer.Option(None, "--v0", help="sinh only: voltage scale of the non-linearity (V); default 0.25."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object instead of text."),
) -> None:
    """Compare the engine with ngspice on one random array; print the worst relative error.

    PASS (exit 0) below 1e-8 (linear) or 1e-7 (sinh) of the largest column current,
    FAIL (exit 1) otherwise; --json gives "passed": true or false.
    """
    from yieldmc.spice import spice_check as check

    result = check(rows, cols, seed=seed, r_wire=r_wire, r_sense=r_sense, device=device, v0=v0)
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
    else:
        typer.echo(f"{'PASS' if result.passed else 'FAIL'}: {result.rows}x{result.cols} {result.device}, "
                   f"seed {result.seed}: worst relative error vs ngspice {result.max_rel_error:.3e} "
                   f"(limit {result.limit:g})")
    if not result.passed:
        raise typer.Exit(1)


@app.command(cls=_Command)
@user_errors
def gallery(
    out: Path = typer.Option(
        ..., "--out",
        help="Image file to write; the format follows the suffix (.png, .pdf, .svg, ...)."),
    rows: int = typer.Option(32, min=1, help="Rows of the example arrays."),
    cols: int = typer.Option(32, min=1, help="Columns of the example arrays."),
    examples: int = typer.Option(4, min=1, help="Examples per defect kind."),
    seed: int = typer.Option(0, min=0, help="Root seed (example d uses die stream d)."),
) -> None:
    """Draw example stuck-at masks of every defect kind (rows of examples) to an image file."""
    from yieldmc.gallery import plot_gallery

    path = plot_gallery(out, shape=(rows, cols), n_examples=examples, seed=seed)
    typer.echo(str(path))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())

"""The ``yieldmc`` commands that read a finished run: ``correct``, ``yield``, ``report``, ``wafermap``.

Plain functions with typer options; :mod:`yieldmc.cli` registers them on its ``app`` (with
its one-line error handling), in the order of ``yieldmc --help``. Each parses its options,
calls one library function (:mod:`yieldmc.correction`, :mod:`yieldmc.runyield`,
:mod:`yieldmc.runreport`) and prints; conventions as in :mod:`yieldmc.cli`.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

__all__ = ["correct", "progress_bar", "report", "wafermap", "yield_"]

#: Every command that reads a finished run checks its files first, unless told not to.
VerifyOpt = typer.Option(
    True, "--verify/--no-verify",
    help="Check the run's files against their sha256 checksums before reading (--no-verify: sizes only, faster).")


def progress_bar(label: str, quiet: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=Console(stderr=True), disable=quiet)


def correct(
    run: Path = typer.Argument(..., metavar="RUN", help="Run directory written by `yieldmc sample`."),
    mode: str = typer.Option("per-die", "--mode", help="per-die (one corrector per die) or population (one for all)."),
    method: str = typer.Option("rff-ridge", "--method", help="Per-die corrector: rff-ridge, linear-ridge or mlp."),
    sample_k: int = typer.Option(None, "--sample", help="Correct a random subsample of K dies (seeded)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the subsample and the correctors."),
    calibration: int = typer.Option(
        None, "--calibration", metavar="N",
        help=("Per-die mode: train each die's corrector on N labelled training images (a stratified subsample, "
              "the same for every die; at least one per class) instead of all of them.")),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace RUN/corrected/MODE.parquet."),
    verify: bool = VerifyOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train correctors on the dies' output voltages; write RUN/corrected/MODE.parquet.

    The die table is never rewritten. With --sample K, yields after correction are
    estimated on K dies (their interval is over K, not over the whole run). --calibration N
    (per-die mode) is the calibration budget: every die's corrector sees the same N training
    images, nested in any larger budget; it is recorded in the file's metadata
    (yieldmc.n_calibration).
    """
    from yieldmc.correction import correct_run

    with progress_bar("correcting", quiet) as bar:
        task = bar.add_task("c", total=None)
        summary = correct_run(run, mode, method=method, sample=sample_k, seed=seed, n_calibration=calibration,
                              overwrite=overwrite, verify=verify,
                              progress=lambda done, total: bar.update(task, completed=done, total=total))
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(
        f"{summary['dies_corrected']} of {summary['dies_in_run']} dies corrected ({summary['mode']}, "
        f"{summary['method']}, {summary['corrector_params']} parameters"
        + (f", calibration on {calibration} images" if calibration is not None else "") + "): mean accuracy "
        f"{summary['mean_accuracy_before']:.4f} -> {summary['mean_accuracy_after']:.4f}, "
        f"{summary['elapsed_s']:.1f} s -> {summary['out']}")


def yield_(
    run: Path = typer.Argument(..., metavar="RUN", help="Run directory written by `yieldmc sample`."),
    threshold: float = typer.Option(None, "--threshold", help="One accuracy threshold (default 0.8)."),
    thresholds: str = typer.Option(
        None, "--thresholds",
        help="A curve: START:STOP:STEP or a comma list (at most 10,001 values)."),
    by: str = typer.Option(None, "--by", help="Group by a die-table column, e.g. defect_type."),
    mode: str = typer.Option(
        None, "--corrected",
        help="Also report yield after correction of this mode (per-die or population)."),
    confidence: float = typer.Option(0.95, "--confidence", help="Confidence level of the intervals."),
    include_unconverged: bool = typer.Option(
        False, "--include-unconverged",
        help="Count the dies whose circuit solve did not converge (left out by default)."),
    verify: bool = VerifyOpt,
    as_json: bool = typer.Option(False, "--json", help="Print JSON records instead of a table."),
    models: bool = typer.Option(
        False, "--models",
        help=("Fit yield models to a wafer run's dies instead (needs the columns wafer and n_defects of "
              "`yieldmc sample --wafers W`): Poisson, Murphy, Seeds and negative binomial to pass/fail at "
              "--threshold, Poisson and negative binomial to the defect counts; maximum likelihood, D0 and "
              "alpha with intervals, log-likelihood, AIC.")),
    die_area: float = typer.Option(
        None, "--die-area",
        help="With --models: die area in cm^2 (default: the run's wafer settings; else 1, D0 per die)."),
    at: str = typer.Option(
        None, "--at", metavar="T",
        help=("Yield per correction policy at time T of the run's lifetime (`yieldmc lifetime`): the last "
              "checkpoint at or before T, e.g. 5y; --threshold defaults to the lifetime's.")),
) -> None:
    """Yield = share of dies with accuracy >= threshold, with Wilson / Clopper-Pearson intervals.

    Clopper-Pearson is used near 0 or 1 (see yieldmc.stats.choose_method), Wilson elsewhere.
    Dies whose circuit solve did not converge have no trustworthy accuracy: they are left
    out of n unless --include-unconverged, and counted in the column excluded_unconverged.
    With --corrected, the 'after' rows cover the corrected dies only (a subsample if
    `yieldmc correct --sample` was used) and the 'before' rows are computed on those same dies.

    With --at T: the yield of every correction policy of `yieldmc lifetime` at time T.

    With --models: one row per (data, model), best AIC first within each data set (pass_fail
    or counts; AICs compare within one data set only). d0 is the defect density per cm^2
    with its interval d0_lo..d0_hi; alpha the negative binomial's clustering shape (inf: no
    clustering; "inf" in --json, NaN as null); yield the model's die yield.
    """
    from yieldmc.runyield import yield_tables

    if at is not None:
        if models or thresholds is not None or by is not None or mode is not None or die_area is not None:
            from yieldmc.errors import ConfigError

            raise ConfigError("--at reads the lifetime: it goes with --threshold, --confidence and --json only")
        from yieldmc.cli_lifetime import print_yield_at

        print_yield_at(run, at, threshold, confidence, as_json)
        return
    if models:
        _yield_models(run, threshold, confidence, include_unconverged, verify, as_json, die_area,
                      thresholds is not None or by is not None or mode is not None)
        return
    if die_area is not None:
        from yieldmc.errors import ConfigError

        raise ConfigError("--die-area goes with --models")
    tables = yield_tables(run, thresholds, threshold=threshold, by=by, corrected=mode, confidence=confidence,
                          include_unconverged=include_unconverged, verify=verify)
    if tables.unconverged:
        typer.echo(f"note: {tables.unconverged} dies whose circuit solve did not converge are "
                   + ("counted (--include-unconverged)" if include_unconverged
                      else "left out (--include-unconverged counts them)"), err=True)
    result = tables.table
    if as_json:  # exact floats; NaN (a group without dies) as null
        records = result.astype(object).where(result.notna(), None).to_dict(orient="records")
        typer.echo(json.dumps(records))
        return
    typer.echo(result.to_string(index=False, float_format=lambda x: f"{x:.4f}"))


def _yield_models(run: Path, threshold: float | None, confidence: float, include_unconverged: bool, verify: bool,
                  as_json: bool, die_area: float | None, other: bool) -> None:
    """``yieldmc yield --models``: print :func:`yieldmc.runyield.run_model_fits`' table."""
    from yieldmc.errors import ConfigError
    from yieldmc.runyield import run_model_fits

    if other:
        raise ConfigError("--models fits at one --threshold; leave out --thresholds, --by and --corrected")
    fits = run_model_fits(run, threshold=threshold, area_cm2=die_area, confidence=confidence,
                          include_unconverged=include_unconverged, verify=verify)
    table = fits.table
    if as_json:  # NaN (no alpha) as null, infinities as "inf"
        records = [{k: (None if isinstance(v, float) and v != v else "inf" if v == float("inf") else v)
                    for k, v in row.items()} for row in table.astype(object).to_dict(orient="records")]
        typer.echo(json.dumps(records))
        return
    typer.echo(f"note: die area {fits.area_cm2:g} cm^2 ({fits.area_source}); pass/fail at accuracy >= "
               f"{fits.threshold:g}", err=True)
    typer.echo(table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))


def report(
    run: Path = typer.Argument(..., metavar="RUN", help="Run directory written by `yieldmc sample` (may be partial)."),
    out: Path = typer.Option(
        ..., "--out",
        help="File to write: report.html (one self-contained page) or report.md (figures in report_files/)."),
    fmt: str = typer.Option(None, "--format", help="html or markdown (default: from the --out suffix, .md: markdown)."),
    threshold: float = typer.Option(0.8, "--threshold", help="Accuracy threshold of pass/fail."),
    confidence: float = typer.Option(0.95, "--confidence", help="Confidence level of the intervals."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out (and its _files folder)."),
    verify: bool = VerifyOpt,
) -> None:
    """Write a report a person opens: settings, yield curves, groups, histogram, maps, model fits.

    Sections: the run's settings and status (a partial run says "N of M dies finished" at the
    top and covers its finished dies); yield vs threshold with Wilson / Clopper-Pearson
    intervals; yield by defect type and by the layers with stuck cells; the accuracy
    histogram; correction before/after (when RUN/corrected/ has a table); wafer maps, radial
    and zone yield and fitted yield models (when the dies carry wafer columns). HTML embeds
    the figures; Markdown writes them as PNG files into <name>_files/ beside it.
    """
    from yieldmc.runreport import write_report

    summary = write_report(run, out, fmt=fmt, threshold=threshold, confidence=confidence, overwrite=overwrite,
                           verify=verify)
    if summary["partial"]:
        typer.echo(f"warning: {run} is a partial run: {summary['dies']} of {summary['n_dies']} dies finished; "
                   "the report covers those", err=True)
    typer.echo(f"{summary['format']} report of {summary['dies']} dies, {summary['figures']} figures "
               f"-> {summary['out']}")


def wafermap(
    run: Path = typer.Argument(..., metavar="RUN", help="Run directory sampled on wafers (yieldmc sample --wafers W)."),
    out: Path = typer.Option(..., "--out", help="Image file of the maps; the suffix names the format (.png, .svg)."),
    npz: Path = typer.Option(
        None, "--npz",
        help="Also write the pass/fail maps as WM-811K-shaped uint8 arrays (0 no die, 1 pass, 2 fail) to this .npz."),
    value: str = typer.Option("passed", "--value", help="passed (pass green / fail red) or accuracy (colour scale)."),
    threshold: float = typer.Option(0.8, "--threshold", help="Accuracy threshold of pass/fail."),
    mode: str = typer.Option(
        None, "--corrected",
        help="Draw the accuracy after correction of this mode (per-die or population; its dies only)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing --out and --npz files."),
    verify: bool = VerifyOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the summary (zone and radial yield) as JSON."),
) -> None:
    """Draw one map per wafer (pass/fail or accuracy) and print zone and radial yield.

    Needs the per-die columns wafer, x and y of a run sampled on wafers; other runs are refused
    with one line (exit 2). Zones are equal-area center, middle and edge rings; radial yield
    uses five rings of equal width; both with Wilson intervals. At most 100 wafers are drawn.
    """
    from yieldmc.runyield import write_wafer_maps

    summary = write_wafer_maps(run, out, npz=npz, value=value, threshold=threshold, corrected=mode,
                               overwrite=overwrite, verify=verify)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    import pandas as pd

    typer.echo(f"{summary['shown']} of {summary['wafers']} wafers ({summary['dies']} dies) -> {summary['out']}"
               + (f", {summary['npz']}" if summary["npz"] else ""))
    for key in ("zones", "radial"):
        if key in summary:
            typer.echo(pd.DataFrame(summary[key]).to_string(index=False, float_format=lambda x: f"{x:.4f}"))

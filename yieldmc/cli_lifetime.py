"""``yieldmc lifetime`` and ``yieldmc yield --at``: a run's dies over their lifetime.

Thin typer layer over :mod:`yieldmc.lifetime`; registered by :mod:`yieldmc.cli`.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from yieldmc.lifetime.faults import YEAR_S

__all__ = ["lifetime", "print_yield_at"]


def _policies(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def lifetime(
    run: Path = typer.Argument(..., metavar="RUN", help="Run directory written by `yieldmc sample`."),
    checkpoints: int = typer.Option(
        None, "--checkpoints", "-k", help="K: checkpoints t1..tK after t0, log-spaced (default 10)."),
    t0: str = typer.Option(
        None, "--t0", help="Test time t0 (calibration; the run's dies as sampled): 3600, 1h, 2d... (default 1h)."),
    t_end: str = typer.Option(None, "--t-end", help="End of life tK (units s m h d w y; default 10y)."),
    times: str = typer.Option(
        None, "--times", help="Explicit checkpoint times, increasing, comma separated (e.g. 1h,1d,1y,10y): "
        "replaces --checkpoints/--t0/--t-end."),
    policies: str = typer.Option(
        "none,once,recal,online", "--policies",
        help="Correction policies, comma separated, among none, once, recal, online, drift."),
    budget: int = typer.Option(200, "--budget", help="Labelled images of a calibration (t0, recal, drift)."),
    stream: int = typer.Option(50, "--stream", help="Labelled images the online policy learns at each checkpoint."),
    forgetting: float = typer.Option(0.7, "--forgetting", help="Online forgetting factor per checkpoint, in (0, 1]."),
    drift_threshold: float = typer.Option(
        0.1, "--drift-threshold", help="Drift policy: re-calibrate when the outputs' mean moved by this many spreads."),
    shape: float = typer.Option(2.0, "--shape", help="Weibull shape of a cell's lifetime (> 0)."),
    scale: str = typer.Option("60y", "--scale", help="Weibull scale of a cell's lifetime (> 0; units s m h d w y)."),
    on_fraction: float = typer.Option(0.5, "--on-fraction", help="Share of new faults stuck ON."),
    cluster_gain: float = typer.Option(
        0.0, "--cluster-gain", help="Hazard multiplier - 1 next to a test-time defect (0: independent cells)."),
    cluster_radius: float = typer.Option(2.0, "--cluster-radius", help="Decay length of the clustering (cells)."),
    pattern_scale: str = typer.Option(
        None, "--pattern-scale", help="Weibull scale of a die's new-pattern onset (default: no new pattern)."),
    pattern_kind: str = typer.Option("mixed", "--pattern-kind", help="Kind of the new pattern."),
    pattern_severity: float = typer.Option(0.05, "--pattern-severity", help="Faulty share of the array it hits."),
    drift_nu: float = typer.Option(
        0.01, "--drift-nu", help="Drift exponent: G(t) = G(t0) (t/t0)^-nu (>= 0; the realistic preset's 0.01)."),
    threshold: float = typer.Option(0.8, "--threshold", help="Accuracy of a good die (yield, time to failure)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the correctors' projection and the image order."),
    dies: int = typer.Option(None, "--dies", help="Follow the first N dies of the run (default all)."),
    chunk_dies: int = typer.Option(64, "--chunk-dies", help="Dies per part file (results do not depend on it)."),
    jobs: int = typer.Option(-1, "--jobs", "-j", help="Parts computed at once (threads; -1: all cores)."),
    resume: bool = typer.Option(False, "--resume", help="Finish an interrupted lifetime (same settings)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace RUN/lifetime."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no notices."),
) -> None:
    """Follow the run's dies from test (t0) to end of life; write RUN/lifetime/.

    At each checkpoint new stuck cells have appeared (Weibull lifetimes per cell, keyed by
    seed, die and cell; optionally clustered around the test-time defects or as a new
    pattern) and the programmed cells have drifted; every array's transfer matrix comes from
    the exact rank-k update of one fault-free inverse per checkpoint. The policies: none
    (raw argmax), once (calibrated at t0 on --budget images), recal (re-calibrated at every
    checkpoint), online (incremental ridge with --forgetting on --stream new images
    per checkpoint), drift (re-calibrated when the output statistics move). One Parquet row
    per (die, checkpoint): accuracy, cumulative labelled images and training FLOPs per
    policy, new faults, drift factor. See docs/lifetime.md.

    Exit codes: 0 done; 2 bad input (times not increasing, a negative shape or scale, an
    unknown policy, a run outside the lifetime's scope or unfinished); 1 a disk error;
    130 Ctrl-C (finished parts are kept: --resume).
    """
    from yieldmc.errors import ConfigError
    from yieldmc.lifetime.faults import FaultModel
    from yieldmc.lifetime.policies import PolicySettings
    from yieldmc.lifetime.run import LifetimeSettings, checkpoint_times, parse_duration, run_lifetime
    from yieldmc.montecarlo import available_cores

    if times is not None:
        if checkpoints is not None or t0 is not None or t_end is not None:
            raise ConfigError("--times gives every checkpoint: leave out --checkpoints, --t0 and --t-end")
        grid = tuple(t.strip() for t in times.split(","))
    else:
        grid = tuple(checkpoint_times(parse_duration(t0 or "1h"), parse_duration(t_end or "10y"),
                                      10 if checkpoints is None else checkpoints))
    faults = FaultModel(shape=shape, scale_s=parse_duration(scale), on_fraction=on_fraction,
                        cluster_gain=cluster_gain, cluster_radius=cluster_radius,
                        pattern_scale_s=float("inf") if pattern_scale is None else parse_duration(pattern_scale),
                        pattern_kind=pattern_kind, pattern_severity=pattern_severity)
    pol = PolicySettings(policies=_policies(policies), budget=budget, stream=stream, forgetting=forgetting,
                         drift_threshold=drift_threshold, seed=seed)
    settings = LifetimeSettings(times_s=grid, drift_nu=drift_nu, faults=faults, policies=pol, threshold=threshold)
    workers = available_cores() if jobs == -1 else jobs
    from yieldmc.cli_runs import progress_bar

    with progress_bar("dies", quiet) as bar:
        task = bar.add_task("l", total=None)
        try:
            summary = run_lifetime(run, settings, n_dies=dies, chunk_dies=chunk_dies, jobs=workers, resume=resume,
                                   overwrite=overwrite, log=None if quiet else (lambda m: typer.echo(m, err=True)),
                                   progress=lambda done, total: bar.update(task, completed=done, total=total))
        except KeyboardInterrupt:
            typer.echo(f"interrupted: finished parts are kept; run again with --resume ({run})", err=True)
            raise typer.Exit(130) from None
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(f"{summary['dies']} dies, {summary['checkpoints']} checkpoints to "
               f"{settings.times_s[-1] / YEAR_S:.3g} y, {summary['elapsed_s']:.1f} s; yield at accuracy >= "
               f"{threshold:.2f}, t0 -> end of life [95 % interval], labelled images and training MFLOP per die:")
    for p, r in summary["policies"].items():
        lo, hi = r["yield_end_ci"]
        typer.echo(f"  {p:<7} {r['yield_t0']:.3f} -> {r['yield_end']:.3f} [{lo:.3f}, {hi:.3f}]  "
                   f"{r['labelled_images_per_die']:>7.0f} images  {r['training_mflop_per_die']:>8.1f} MFLOP")
    typer.echo(f"-> {Path(run) / 'lifetime'}")


def print_yield_at(run: Path, at: str, threshold: float | None, confidence: float, as_json: bool) -> None:
    """``yieldmc yield RUN --at T``: yield per policy at the last checkpoint at or before T."""
    from yieldmc.lifetime.run import load_lifetime, parse_duration, read_settings, yield_at

    thr = read_settings(run)["settings"]["threshold"] if threshold is None else threshold
    table = yield_at(load_lifetime(run), parse_duration(at), thr, confidence)
    table.insert(2, "time_y", table["time_s"] / YEAR_S)
    table.insert(0, "threshold", thr)
    if as_json:
        typer.echo(json.dumps(table.to_dict(orient="records")))
        return
    typer.echo(table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))

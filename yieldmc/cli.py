"""The ``yieldmc`` command line: a thin typer layer over the modules.

Data and ``--json`` summaries go to stdout; progress and messages to stderr. A bad input
ends with a one-line message and exit code 2, never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import numpy as np
import typer

from yieldmc.errors import YieldmcError

app = typer.Typer(
    help="Monte Carlo yield of fully analog ReRAM neural-network dies with stuck-at defects.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def user_errors(func):
    """Turn yieldmc's own errors (and bad files) into a one-line message and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (YieldmcError, FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            _fail(str(exc))

    return wrapper


@app.command()
@user_errors
def demo(
    rows: int = typer.Option(32, min=1, help="Rows (inputs) of the demo array."),
    cols: int = typer.Option(16, min=1, help="Columns (outputs) of the demo array."),
    r_wire: float = typer.Option(1.0, min=0.0, help="Wire segment resistance (ohm)."),
    seed: int = typer.Option(0, min=0, help="Seed of the random conductances and inputs."),
) -> None:
    """Solve a random crossbar with and without IR drop and print the column currents."""
    from yieldmc.circuit import solve, transfer_matrix_info

    rng = np.random.default_rng(seed)
    G = rng.uniform(1e-6, 1e-4, (rows, cols))
    v = rng.uniform(0.0, 0.2, rows)
    ideal = solve(G, v, 0.0, 0.0)
    T, info = transfer_matrix_info(G, r_wire, r_wire)
    wired = v @ T
    typer.echo(f"{rows}x{cols} array, G in [1e-6, 1e-4] S, v in [0, 0.2] V, wire {r_wire} ohm")
    typer.echo(f"solver: {info.iterations} CG iterations, residual {info.max_residual:.1e}")
    typer.echo(f"{'column':>6} {'ideal (uA)':>12} {'IR drop (uA)':>13} {'loss %':>7}")
    for j in range(cols):
        loss = 100 * (1 - wired[j] / ideal[j]) if ideal[j] else 0.0
        typer.echo(f"{j:>6} {1e6 * ideal[j]:>12.4f} {1e6 * wired[j]:>13.4f} {loss:>7.3f}")


@app.command("spice-check")
@user_errors
def spice_check(
    rows: int = typer.Option(32, min=1, help="Rows of the random test array."),
    cols: int = typer.Option(32, min=1, help="Columns of the random test array."),
    seed: int = typer.Option(0, min=0, help="Seed of conductances and inputs."),
    r_wire: float = typer.Option(1.0, min=0.0, help="Row and column segment resistance (ohm)."),
    r_sense: float = typer.Option(0.0, min=0.0, help="Sense-amplifier input impedance (ohm)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object instead of text."),
) -> None:
    """Compare the engine with ngspice on one random array; print the worst relative error."""
    from yieldmc.circuit import solve
    from yieldmc.spice import run_ngspice

    rng = np.random.default_rng(seed)
    G = np.exp(rng.uniform(np.log(1e-6), np.log(1e-4), (rows, cols)))
    v = rng.uniform(0.0, 0.2, rows)
    ours = solve(G, v, r_wire, r_wire, r_sense=r_sense)
    spice = run_ngspice(G, v, r_wire, r_wire, r_sense=r_sense)
    worst = float(np.max(np.abs(ours - spice)) / np.max(np.abs(spice)))
    if as_json:
        typer.echo(json.dumps({"rows": rows, "cols": cols, "seed": seed, "max_rel_error": worst}))
    else:
        typer.echo(f"{rows}x{cols}, seed {seed}: worst relative error vs ngspice {worst:.3e}")
    if not worst < 1e-8:
        raise typer.Exit(1)


@app.command()
@user_errors
def gallery(
    out: Path = typer.Option(..., "--out", help="PNG file to write."),
    rows: int = typer.Option(32, min=1, help="Rows of the example arrays."),
    cols: int = typer.Option(32, min=1, help="Columns of the example arrays."),
    examples: int = typer.Option(4, min=1, help="Examples per defect kind."),
    seed: int = typer.Option(0, min=0, help="Root seed (example d uses die stream d)."),
) -> None:
    """Draw example stuck-at masks of every defect kind (rows of examples) to a PNG."""
    from yieldmc.gallery import plot_gallery

    path = plot_gallery(out, shape=(rows, cols), n_examples=examples, seed=seed)
    typer.echo(str(path))


def main() -> None:  # pragma: no cover - console entry point alternative
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())

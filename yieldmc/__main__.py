"""``python -m yieldmc``: the same command line as ``yieldmc``."""

from yieldmc.cli import app

if __name__ == "__main__":  # pragma: no cover - exercised by tests/test_cli_die.py in a subprocess
    app(prog_name="yieldmc")

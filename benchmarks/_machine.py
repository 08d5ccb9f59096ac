"""What every benchmark records about the machine it ran on (imported by the scripts)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown" elsewhere)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def git_commit() -> str:
    """The commit checked out in the repository ("" when git is unavailable)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=False, cwd=Path(__file__).resolve().parent).stdout.strip()
    except OSError:
        return ""


def pin_one_core() -> None:
    """Pin this process to one CPU (Linux), so timings do not hop between cores."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def machine_record() -> dict:
    """The machine, package versions, commit, CPU pinning and load at the start of a run."""
    import platform

    import numba
    import numpy as np

    import yieldmc

    return {"cpu_model": cpu_model(), "logical_cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "yieldmc": yieldmc.__version__, "git_commit": git_commit(),
            "pinned_cpu": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "numba_threads": numba.config.NUMBA_NUM_THREADS,
            "loadavg_start": list(os.getloadavg())}

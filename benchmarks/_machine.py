"""What every benchmark records about the machine it ran on, and the record it writes
(imported by the scripts, which run from benchmarks/: it is on their sys.path)."""

from __future__ import annotations

import datetime as dt
import json
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



def write_record(out: Path, benchmark: str, command: str, machine: dict, settings: dict,
                 results: dict) -> dict:
    """Write one run's JSON record to ``out`` and return it.

    The record opens with what every benchmark keeps: ``benchmark`` (its name), ``command``
    (how to repeat the run), ``date`` (UTC, ISO 8601), ``machine`` (:func:`machine_record`;
    ``loadavg_end`` is added now unless the caller set it when its measurements ended) and
    ``settings``; then the benchmark's own ``results``, key by key. The parent directory is
    created, and the file replaced at once (a reader never sees half a record).
    """
    machine.setdefault("loadavg_end", list(os.getloadavg()))
    record = {"benchmark": benchmark, "command": command,
              "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "machine": machine, "settings": settings, **results}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, out)
    return record


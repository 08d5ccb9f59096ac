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

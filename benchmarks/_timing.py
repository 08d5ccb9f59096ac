"""Timing for the circuit benchmarks: wall and CPU clocks, interleaved samples, page faults.

On a shared machine the wall time of a call depends on the other jobs; the CPU time a
single-threaded call consumes hardly does, so both are recorded. Functions timed together
are sampled round-robin, so that all of them see the same load.
"""

from __future__ import annotations

import resource
import time

import numpy as np

LONG_CALL_S = 1.0  # calls longer than this get LONG_REPEATS samples
LONG_REPEATS = 3


class Clock:
    """Wall time, CPU time of this thread, and CPU time of finished child processes (s).

    On a shared machine the wall time of a call depends on the other jobs; the CPU time a
    single-threaded call consumes hardly does, so both are recorded.
    """

    def __init__(self) -> None:
        self.wall, self.cpu, self.child = time.perf_counter(), time.thread_time(), _child_cpu()

    def stop(self) -> tuple[float, float, float]:
        return (time.perf_counter() - self.wall, time.thread_time() - self.cpu,
                _child_cpu() - self.child)


def _child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def faults(func, calls: int = 3) -> float:
    """Minor page faults per call: fresh memory the call touches (allocation, not compute)."""
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        func()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / calls


def _stats(samples: list[float], cpu: list[float], loops: int, first: float | None) -> dict:
    return {"median_s": float(np.median(samples)), "min_s": float(np.min(samples)),
            "cpu_median_s": float(np.median(cpu)), "samples_s": [float(s) for s in samples],
            "loops_per_sample": loops, "first_call_s": first}


def time_interleaved(funcs: dict, repeats: int, min_sample_s: float = 0.05,
                     first: dict | None = None) -> dict:
    """Median time per call of each function, samples interleaved so all see the same load.

    Each function is called once as a warm-up (unless its first-call time is given in
    ``first``), then ``repeats`` samples are taken round-robin (LONG_REPEATS for calls
    over LONG_CALL_S); a sample repeats the call until it lasts ``min_sample_s``.
    """
    first = dict(first or {})
    for name, f in funcs.items():
        if name not in first:
            t0 = time.perf_counter()
            f()
            first[name] = time.perf_counter() - t0
    loops = {k: max(1, int(np.ceil(min_sample_s / max(first[k], 1e-7)))) for k in funcs}
    wanted = {k: repeats if first[k] < LONG_CALL_S else min(repeats, LONG_REPEATS) for k in funcs}
    samples: dict[str, list[float]] = {k: [] for k in funcs}
    cpu: dict[str, list[float]] = {k: [] for k in funcs}
    for rep in range(max(wanted.values())):
        for name, f in funcs.items():
            if rep >= wanted[name]:
                continue
            clock = Clock()
            for _ in range(loops[name]):
                f()
            wall, thread_cpu, _ = clock.stop()
            samples[name].append(wall / loops[name])
            cpu[name].append(thread_cpu / loops[name])
    return {k: _stats(samples[k], cpu[k], loops[k], first[k]) for k in funcs}

"""Benchmark of the sinh (gap-model) device: a ``paper`` die with sinh cells vs linear ones.

Run from the repository root::

    python benchmarks/bench_sinh.py            # about 1 minute
    python benchmarks/bench_sinh.py --quick    # about 20 s

On one core, after compilation, in the same run and interleaved (so both see the same
load):

* ``die``: ``DieModel.simulate(d)`` of the preset's default population (``mixed``,
  severity 0.005-0.05 per array) with ``device.model = "linear"`` and ``"sinh"``, and
  of the defect-free die; a die's time is the fastest of ``--repeats``, a case's time the
  median over its dies; the ratio sinh / linear is the headline;
* ``newton``: the layer-0 array (64x16) on the 180 test images: Newton steps, CG
  iterations, time, for the ideal-wire start and the "previous input" warm start, and the
  same for a 180-point voltage ramp (neighbouring inputs close together);
* ``oracle``: ``solve_sinh`` against its scipy oracle ``solve_sinh_reference`` (Newton on
  node voltages with sparse direct solves) and against ngspice (B elements), 16x16 array,
  a few inputs: the error and the time ratio;
* ``large`` (with ``--large``, about 1 minute more): one die of the ``large`` preset (30
  arrays of up to 128x128) with each device, fastest of 2.

Output: ``results/bench/sinh.json``.
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from yieldmc.circuit import Resistances, _newton, _wires, solve_sinh, solve_sinh_reference  # noqa: E402
from yieldmc.circuit.nonlinear import NEWTON_MAX_ITER, NEWTON_RTOL  # noqa: E402
from yieldmc.circuit.solver import RHS_BLOCK, SOLVER_MAX_ITER  # noqa: E402
from yieldmc.config import load_config  # noqa: E402
from yieldmc.devices import SinhDevice  # noqa: E402
from yieldmc.die import DieModel  # noqa: E402
from yieldmc.spice import ngspice_path, run_ngspice  # noqa: E402

from _machine import machine_record, pin_one_core, write_record  # noqa: E402  (scripts run from benchmarks/: on sys.path)

ROOT = Path(__file__).resolve().parent.parent
WIRES = Resistances(r_row=1.0, r_col=1.0)  # the kernels' cases: 1 ohm segments, no periphery


def newton_stats(G: np.ndarray, v: np.ndarray, v0: float, warm_previous: bool, repeats: int) -> dict:
    """Newton steps, CG iterations and time of the kernel on inputs ``v`` (B, M)."""
    out = np.empty((len(v), G.shape[1]))
    rel = np.empty(len(v))
    steps = np.zeros(len(v), dtype=np.int64)
    args = (G, np.ascontiguousarray(v), v0, WIRES, NEWTON_RTOL, NEWTON_MAX_ITER, SOLVER_MAX_ITER,
            RHS_BLOCK, warm_previous, out, rel, steps)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        cg = _newton.solve_sinh_inputs(*args)
        times.append(time.perf_counter() - t)
    blocks = -(-len(v) // RHS_BLOCK)
    return {"ms": float(np.min(times) * 1e3), "newton_steps_max": int(steps.max()),
            "newton_steps_mean": float(steps.mean()), "cg_iterations_per_block": cg / blocks,
            "max_residual": float(rel.max())}


def residual_trace(G: np.ndarray, v: np.ndarray, v0: float, warm_previous: bool) -> dict:
    """Largest and median relative residual over the inputs after 0, 1, 2, 3 Newton steps."""
    out = {}
    for steps in range(4):
        i_out, rel = np.empty((len(v), G.shape[1])), np.empty(len(v))
        _newton.solve_sinh_inputs(G, np.ascontiguousarray(v), v0, WIRES, NEWTON_RTOL, steps,
                                  SOLVER_MAX_ITER, RHS_BLOCK, warm_previous, i_out, rel,
                                  np.zeros(len(v), dtype=np.int64))
        out[steps] = {"max": float(rel.max()), "median": float(np.median(rel))}
    return out


@numba.njit
def _loop(fn, u, out):
    for i in range(u.size):
        out[i] = fn(u[i])


@numba.njit
def _np_arcsinh(x):
    return np.arcsinh(x)


@numba.njit
def _np_log(x):
    return np.log(1.0 + abs(x))  # a positive argument, as in the kernels (log of < 0 is slow)


@numba.njit
def _np_exp(x):
    return np.exp(x)


def kernel_costs(G: np.ndarray, v: np.ndarray, v0: float, repeats: int) -> dict:
    """ns per (cell, input) of each piece of a Newton step on one block, and ns per call
    of the transcendental functions (compiled loops over 1e6 values in [-0.9, 0.9])."""
    m, n = G.shape
    vt = np.ascontiguousarray(v[:RHS_BLOCK].T)
    k = vt.shape[1]
    x = (G * v0)[:, :, None] * np.sinh(vt[:, None, :] / v0)
    w, f, sd, dinv, r, q = (np.empty_like(x) for _ in range(6))
    work = np.empty((3, n, k))
    ones, pending, trial = np.ones(k), np.ones(k, dtype=np.bool_), np.zeros(k)
    rel = np.empty(k)
    calls = {
        "wire_pass": lambda: _wires.apply_wires(x, WIRES, w, work),
        "residual_F_asinh": lambda: _newton._kvl(G, x, w, vt, v0, f),
        "scaled_system": lambda: _newton._scaled_system(G, x, f, vt, v0, WIRES, ones, sd, dinv, r,
                                                        rel),
        "line_search_trial": lambda: _newton._trial(G, x, 1e-3 * x, w, 1e-3 * w, vt, v0, ones, sd,
                                                    ones, pending, f, trial),
        "cg_matrix_product": lambda: _wires.apply_wires(x, WIRES, q, work, sd),
    }
    pairs = m * n * k
    out = {name: timed(fn, repeats) / pairs * 1e9 for name, fn in calls.items()}
    u = np.random.default_rng(1).uniform(-0.9, 0.9, 1_000_000)
    o = np.empty_like(u)
    for name, fn in (("np.arcsinh", _np_arcsinh), ("kernel _asinh", _newton._asinh),
                     ("np.log", _np_log), ("np.exp", _np_exp)):
        out[f"call {name}"] = timed(lambda fn=fn: _loop(fn, u, o), repeats) / u.size * 1e9
    return out


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.min(times))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer dies and repeats")
    parser.add_argument("--large", action="store_true", help="also time one die of the large preset")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "sinh.json")
    args = parser.parse_args()
    repeats = 3 if args.quick else 5
    n_dies = 10 if args.quick else 40

    pin_one_core()
    info = machine_record()
    base = DieModel.build(load_config("paper"))
    models = {}
    for device in ("linear", "sinh"):
        for case, changes in (("population", {}), ("no_defects", {"defects.kind": "none"})):
            cfg = base.config.replace(**{"device.model": device, **changes})
            models[f"{device}/{case}"] = DieModel(cfg, base.network, base.dataset)
    x, _ = base.images("test")

    with threadpool_limits(limits=1):
        for model in models.values():  # warm-up: compile / load every path
            for d in range(2):
                model.simulate(d)
        samples = {name: np.empty((repeats, n_dies)) for name in models}
        for r in range(repeats):
            for name, model in models.items():
                for d in range(n_dies):
                    t0 = time.perf_counter()
                    res = model.simulate(d)
                    samples[name][r, d] = time.perf_counter() - t0
                    if r == 0 and name == "sinh/population":
                        assert res.solver_converged, f"die {d} did not converge"
        accuracy = {name: float(np.mean([m.simulate(d).accuracy for d in range(n_dies)]))
                    for name, m in models.items()}
        die = {name: {"median_ms": float(np.median(s.min(axis=0)) * 1e3),
                      "mean_accuracy": accuracy[name]} for name, s in samples.items()}
        ratio = {case: die[f"sinh/{case}"]["median_ms"] / die[f"linear/{case}"]["median_ms"]
                 for case in ("population", "no_defects")}

        G0 = base.layout.arrays[0].G
        v_img = x * base.config.arrays.v_read
        ramp = np.linspace(0.0, 1.0, len(x))[:, None] * v_img[0]
        v0 = base.config.device.v0
        newton = {f"{inputs}/{start}": newton_stats(G0, v, v0, start == "previous", repeats)
                  for inputs, v in (("images", v_img), ("ramp", ramp))
                  for start in ("ideal", "previous")}
        trace = {start: residual_trace(G0, v_img, v0, start == "previous")
                 for start in ("ideal", "previous")}
        kernels = kernel_costs(G0, v_img, v0, repeats)

        rng = np.random.default_rng(0)
        G = np.exp(rng.uniform(np.log(1e-6), np.log(1e-4), (16, 16)))
        v = rng.uniform(0.0, 0.2, (4, 16))
        ours = solve_sinh(G, v, v0, 1.0, 1.0)
        t_ours = timed(lambda: solve_sinh(G, v, v0, 1.0, 1.0), repeats) / len(v)
        ref = solve_sinh_reference(G, v, v0, 1.0, 1.0)
        t_ref = timed(lambda: solve_sinh_reference(G, v, v0, 1.0, 1.0), repeats) / len(v)
        oracle = {"shape": [16, 16], "inputs": len(v),
                  "error_vs_scipy": float(np.abs(ours - ref).max() / np.abs(ref).max()),
                  "numba_ms_per_input": t_ours * 1e3, "scipy_ms_per_input": t_ref * 1e3,
                  "x_scipy": t_ref / t_ours}
        if ngspice_path():
            t0 = time.perf_counter()
            spice = np.stack([run_ngspice(G, vk, 1.0, 1.0, device=SinhDevice(v0=v0)) for vk in v])
            oracle["ngspice_ms_per_input"] = (time.perf_counter() - t0) / len(v) * 1e3
            oracle["error_vs_ngspice"] = float(np.abs(ours - spice).max() / np.abs(spice).max())
            oracle["x_ngspice"] = oracle["ngspice_ms_per_input"] / oracle["numba_ms_per_input"]

        large = {}
        if args.large:
            for device in ("linear", "sinh"):
                model = DieModel.build(load_config("large", overrides={"device.model": device}))
                model.simulate(0)
                large[device] = {"s": timed(lambda model=model: model.simulate(1), 2),
                                 "arrays": len(model.layout.arrays)}
            large["sinh_over_linear"] = large["sinh"]["s"] / large["linear"]["s"]

    info["loadavg_end"] = list(os.getloadavg())
    command = ("python benchmarks/bench_sinh.py" + (" --quick" if args.quick else "")
               + (" --large" if args.large else ""))
    write_record(args.out, "sinh", command, info,
                 {"preset": "paper", "images": int(len(x)), "dies": n_dies, "repeats": repeats,
                  "v0": v0, "newton_rtol": NEWTON_RTOL, "rhs_block": RHS_BLOCK,
                  "statistic": "per die: fastest of the repeats; per case: median over dies"},
                 {"die": die, "sinh_over_linear": ratio, "newton": newton, "residual_after_steps": trace,
                  "kernel_ns_per_pair": kernels, "oracle": oracle, "large": large,
                  "samples_ms": {name: (s * 1e3).round(4).tolist() for name, s in samples.items()}})

    print(f"paper die, {len(x)} test images, one core ({info['cpu_model']}), "
          f"load {info['loadavg_start'][0]:.1f} -> {info['loadavg_end'][0]:.1f}, {n_dies} dies x {repeats}")
    print(f"{'case':<20} {'median ms':>10} {'mean acc':>9}")
    for name, res in die.items():
        print(f"{name:<20} {res['median_ms']:>10.3f} {res['mean_accuracy']:>9.4f}")
    print("sinh / linear: " + ", ".join(f"{k} {v:.1f}x" for k, v in ratio.items()))
    print(f"{'64x16, 180 inputs':<20} {'ms':>8} {'steps':>6} {'CG/block':>9} {'residual':>9}")
    for name, res in newton.items():
        print(f"{name:<20} {res['ms']:>8.2f} {res['newton_steps_max']:>6} "
              f"{res['cg_iterations_per_block']:>9.1f} {res['max_residual']:>9.1e}")
    print("64x16, 180 images, relative residual after 0/1/2/3 Newton steps, max (median):")
    for start, tr in trace.items():
        print(f"  {start:<9} " + " / ".join(f"{tr[k]['max']:.1e} ({tr[k]['median']:.1e})"
                                            for k in range(4)))
    print("ns per (cell, image): " + ", ".join(f"{k} {v:.1f}" for k, v in kernels.items()
                                              if not k.startswith("call")))
    print("ns per call: " + ", ".join(f"{k[5:]} {v:.1f}" for k, v in kernels.items()
                                      if k.startswith("call")))
    line = (f"16x16: error vs scipy oracle {oracle['error_vs_scipy']:.1e}, "
            f"{oracle['x_scipy']:.0f}x faster")
    if "x_ngspice" in oracle:
        line += f"; vs ngspice {oracle['error_vs_ngspice']:.1e}, {oracle['x_ngspice']:.0f}x faster"
    print(line)
    if large:
        print(f"large die ({large['sinh']['arrays']} arrays): linear {large['linear']['s']:.2f} s, "
              f"sinh {large['sinh']['s']:.2f} s ({large['sinh_over_linear']:.1f}x)")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Behaviour preservation: today's code re-makes three stored runs die for die.

``tests/data/run-format2-*`` (compiled engine; reference engine with programming noise;
sinh cells, a Newton solve per image) were made by yieldmc at commit 7c30825 (the commands are in
``tests/data/README.md``). Each test copies a stored run, forgets its finished chunks (an
empty manifest, the chunk files removed) and lets ``run_sample(resume=True)`` simulate
every die again with the run's own settings and ``network.npz``. The per-die table must
come back equal in every column but the wall-clock ``elapsed_s``, and the stored output
voltages bit for bit: a refactor that changes what any die draws or computes fails here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from yieldmc.config import from_dict
from yieldmc.montecarlo import run_sample
from yieldmc.runcheck import load_dies, load_voltages
from yieldmc.runformat import atomic_write_json, empty_manifest

DATA = Path(__file__).parent / "data"


def _resimulate(stored: Path, tmp_path: Path) -> Path:
    out = tmp_path / stored.name
    shutil.copytree(stored, out)
    for part in [*out.glob("dies/*"), *out.glob("voltages/*")]:
        part.unlink()
    run = json.loads((out / "run.json").read_text())
    atomic_write_json(out / "manifest.json", empty_manifest(run))
    run_sample(from_dict(run["config"]), run["n_dies"], out, jobs=run.get("jobs", 1), resume=True,
               engine=run["engine"], backend="threads" if run["engine"] == "compiled" else "loky",
               store_voltages=run["store_voltages"])
    return out


@pytest.mark.parametrize("name", ["run-format2-compiled", "run-format2-reference", "run-format2-sinh"])
def test_stored_run_is_made_again_bit_for_bit(name: str, tmp_path: Path) -> None:
    stored = DATA / name
    again = _resimulate(stored, tmp_path)
    old, new = load_dies(stored), load_dies(again)
    assert len(new) == len(old) == json.loads((stored / "run.json").read_text())["n_dies"]
    same = [c for c in old.columns if c != "elapsed_s"]
    pd.testing.assert_frame_equal(new[same], old[same], check_exact=True)
    v_old, v_new = load_voltages(stored), load_voltages(again)
    np.testing.assert_array_equal(v_new.dies, v_old.dies)
    np.testing.assert_array_equal(v_new.labels, v_old.labels)
    assert v_new.voltages.dtype == v_old.voltages.dtype == np.float32
    np.testing.assert_array_equal(v_new.voltages, v_old.voltages)

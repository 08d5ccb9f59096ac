"""Shared fixtures, the policy for tests that need ngspice, and Hypothesis' profiles.

In CI (environment variable ``CI`` set) a missing ngspice is a failure, never a skip:
the tests run and :func:`yieldmc.spice.run_ngspice` raises. On a developer machine
without ngspice those tests skip with the reason.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from hypothesis import settings

# Hypothesis profiles. Neither keeps an example database: with one (the default,
# ``.hypothesis/``) a failure found once is replayed first by every later run of that
# checkout, so one rare draw (a subnormal input voltage failed 1 clean run in 8) makes the
# README's test command fail there for good, and the result depends on the checkout's
# history rather than on the code. Inputs worth keeping are written into the tests as
# ``@example``; a new failure prints its seed and a ``@reproduce_failure`` blob instead.
# "ci", loaded when CI is set: derandomized, the same examples on every run, so CI's result
#   is a function of the code alone.
# "dev", the default elsewhere: fresh random examples on every run, which is how the
#   subnormal inputs were found; a developer's run may therefore find a new failure.
# ``pytest --hypothesis-profile ci`` picks one explicitly.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", database=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pytest_collection_modifyitems(config, items):
    if shutil.which("ngspice") or os.environ.get("CI"):
        return
    skip = pytest.mark.skip(reason="ngspice is not installed (apt-get install -y ngspice)")
    for item in items:
        if "ngspice" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def network_cache(tmp_path_factory):
    """One trained-network cache folder for the whole session (sweep and CLI tests)."""
    path = tmp_path_factory.getbasetemp() / "yieldmc-cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def use_network_cache(network_cache, monkeypatch):
    """The session's network cache as ``YIELDMC_CACHE`` during one test (CLI tests)."""
    monkeypatch.setenv("YIELDMC_CACHE", str(network_cache))
    return network_cache


def sampled_run(tmp_path_factory, network_cache, name: str, n_dies: int, config=None, **kw):
    """A small real run of ``n_dies`` dies (``run_sample``, the paper preset unless ``config``)
    in a fresh folder ``name``, its network obtained into the session's cache."""
    from yieldmc.config import load_config
    from yieldmc.montecarlo import run_sample

    out = tmp_path_factory.mktemp(name) / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YIELDMC_CACHE", str(network_cache))
        run_sample(config or load_config("paper"), n_dies, out, **kw)
    return out


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A module's own cache folder, set as ``YIELDMC_CACHE`` while the module runs."""
    path = tmp_path_factory.mktemp("yieldmc_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YIELDMC_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def paper(cache_dir):
    """The paper die, its network obtained into the module's cache (the shipped weights)."""
    from yieldmc.config import load_config
    from yieldmc.die import DieModel

    return DieModel.build(load_config("paper"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def pytest_configure(config):
    """Trained networks go to a per-session cache, never to the user's ~/.cache."""
    if not os.environ.get("YIELDMC_CACHE"):
        import tempfile

        os.environ["YIELDMC_CACHE"] = tempfile.mkdtemp(prefix="yieldmc-test-cache-")

"""The user cache (yieldmc.cache): an explicit ``cache_dir`` everywhere, the environment read
in one place, datasets and networks found again by the hash of their settings.

Every test points ``$YIELDMC_CACHE`` at an empty folder (``default``) and checks that a
call given another ``cache_dir`` writes there and leaves ``default`` empty.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import yieldmc.cache as cache
from yieldmc.cache import (
    dataset_cache_path,
    default_cache_dir,
    network_cache_path,
    obtain_dataset,
    obtain_network,
    training_key,
)
from yieldmc.config import load_config
from yieldmc.data import load_dataset
from yieldmc.errors import ConfigError
from yieldmc.network import load_network, save_network


@pytest.fixture
def default(tmp_path, monkeypatch) -> Path:
    """The folder ``$YIELDMC_CACHE`` names during the test (must stay empty)."""
    path = tmp_path / "default"
    path.mkdir()
    monkeypatch.setenv("YIELDMC_CACHE", str(path))
    return path


@pytest.fixture
def explicit(tmp_path) -> Path:
    return tmp_path / "explicit"


def test_default_cache_dir_is_the_environment_or_the_home_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("YIELDMC_CACHE", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x"
    for unset in (lambda: monkeypatch.delenv("YIELDMC_CACHE"), lambda: monkeypatch.setenv("YIELDMC_CACHE", "")):
        unset()
        assert default_cache_dir() == Path.home() / ".cache" / "yieldmc"


def test_paths_follow_the_cache_dir_and_the_settings(default, explicit):
    cfg = load_config("paper")
    assert network_cache_path(cfg).parent == default
    assert network_cache_path(cfg, explicit) == explicit / f"network-{training_key(cfg)}.npz"
    assert dataset_cache_path(cfg, explicit).parent == explicit
    assert dataset_cache_path(cfg, explicit).name.startswith("dataset-digits-")
    # the key is the network settings only: a seed or defect change keeps the weights
    same = cfg.replace(**{"seed": 9, "defects.kind": "ring", "wires.r_row": 3.0})
    assert training_key(same) == training_key(cfg)
    for change in ({"network.train_seed": 1}, {"network.hidden": [8, 8]}, {"network.activation": "hard_sigmoid"}):
        assert training_key(cfg.replace(**change)) != training_key(cfg), change
    assert dataset_cache_path(cfg.replace(**{"network.test_size": 200}), explicit) != dataset_cache_path(cfg, explicit)
    mnist = cfg.replace(**{"network.dataset": "mnist", "network.data_path": str(explicit / "mnist.npz")})
    assert dataset_cache_path(mnist, explicit) is None  # the user's files, read each time


def test_a_network_trained_into_a_cache_dir_lands_there_only(default, explicit, monkeypatch):
    cfg = load_config("paper")
    data = obtain_dataset(cfg, explicit)
    net = obtain_network(cfg, data, cache_dir=explicit)
    assert sorted(p.name.split("-")[0] for p in explicit.iterdir()) == ["dataset", "network"]
    assert network_cache_path(cfg, explicit).is_file()
    assert list(default.iterdir()) == []
    # found again: no training the second time, the same weights
    monkeypatch.setattr(cache, "train_network", lambda *a, **k: pytest.fail("the cached network was not used"))
    again = obtain_network(cfg, data, cache_dir=explicit)
    for w, w2 in zip(net.weights, again.weights, strict=True):
        np.testing.assert_array_equal(w, w2)
    assert list(default.iterdir()) == []


def test_a_die_model_and_a_sweep_use_the_given_cache_dir(default, explicit, tmp_path):
    from yieldmc.die import DieModel
    from yieldmc.montecarlo import run_sample

    cfg = load_config("paper")
    DieModel.build(cfg, cache_dir=explicit)
    assert network_cache_path(cfg, explicit).is_file() and dataset_cache_path(cfg, explicit).is_file()
    other = cfg.replace(**{"network.train_seed": 5})  # a network not trained yet
    summary = run_sample(other, 2, tmp_path / "run", cache_dir=explicit, engine="reference", backend="threads")
    assert summary["dies"] == 2
    assert network_cache_path(other, explicit).is_file()
    assert list(default.iterdir()) == []


def test_a_file_trained_with_other_settings_is_refused(default, explicit):
    cfg = load_config("paper")
    data = obtain_dataset(cfg, explicit)
    net = obtain_network(cfg, data, cache_dir=explicit)
    other = cfg.replace(**{"network.train_seed": 3})
    path = explicit / "borrowed.npz"
    save_network(net, path, metadata={"training_key": training_key(cfg)})
    with pytest.raises(ConfigError, match="other network settings"):
        obtain_network(other, data, path)
    assert load_network(path).metadata["training_key"] == training_key(cfg)  # left as it was


# ---- the dataset cache (sweep workers start without scikit-learn) ---------------------

def test_cached_digits_are_the_loaded_digits(default, explicit, monkeypatch):
    cfg = load_config("paper", overrides={"network.test_size": 200, "network.train_seed": 3})
    obtain_dataset(cfg, explicit)  # loads and writes the cache
    assert len(list(explicit.glob("dataset-digits-*.npz"))) == 1
    monkeypatch.setattr(cache, "load_dataset", lambda *a, **k: pytest.fail("cache not used"))
    cached = obtain_dataset(cfg, explicit)
    fresh = load_dataset("digits", test_size=200, seed=3)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(cached, name), getattr(fresh, name))
        assert getattr(cached, name).dtype == getattr(fresh, name).dtype
    assert (cached.image_shape, cached.name, cached.n_classes) == (fresh.image_shape, fresh.name, fresh.n_classes)
    # other split settings are another file, never the cached one
    monkeypatch.setattr(cache, "load_dataset", load_dataset)
    other = obtain_dataset(cfg.replace(**{"network.train_seed": 4}), explicit)
    assert not np.array_equal(other.y_test, cached.y_test)
    assert len(list(explicit.glob("dataset-digits-*.npz"))) == 2
    assert list(default.iterdir()) == []


def test_without_a_cache_dir_the_environment_decides(default):
    obtain_dataset(load_config("paper"))
    assert len(list(default.glob("dataset-digits-*.npz"))) == 1


def test_a_corrupt_dataset_cache_is_rebuilt(default, explicit):
    cfg = load_config("paper")
    good = obtain_dataset(cfg, explicit)
    (path,) = explicit.glob("dataset-digits-*.npz")
    path.write_bytes(b"not an npz")
    again = obtain_dataset(cfg, explicit)
    assert np.array_equal(again.x_test, good.x_test)
    assert np.load(path)["x_test"].shape == good.x_test.shape


def test_an_unwritable_dataset_cache_costs_only_time(default, explicit, monkeypatch):
    explicit.mkdir()
    monkeypatch.setattr(np, "savez", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    data = obtain_dataset(load_config("paper"), explicit)
    assert data.x_test.shape == (180, 64) and list(explicit.iterdir()) == []

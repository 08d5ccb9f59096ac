"""The user cache: task data and trained networks, kept between runs.

Two kinds of file live in one folder, the *cache directory*:

``dataset-digits-<key>.npz``
    The embedded digits split (:func:`obtain_dataset`), so that a sweep worker builds its
    die model without importing scikit-learn (about 2 s per process). ``key`` hashes the
    split settings and the scikit-learn version that made it.
``network-<key>.npz``
    A trained network (:func:`obtain_network`); ``key`` (:func:`training_key`) hashes
    exactly the settings that decide the weights, so a config never silently gets weights
    trained with other settings. Where yieldmc ships the network of that key
    (:mod:`yieldmc.presets`: the ``paper`` preset's), the file is a copy of the shipped one.

Every function takes the folder as an explicit ``cache_dir``; ``None`` means
:func:`default_cache_dir`, the only place that reads the environment
(``$YIELDMC_CACHE``, else ``~/.cache/yieldmc``). The module keeps no state of its own:
what is cached is what the folder holds.

Examples
--------
>>> from yieldmc.config import load_config
>>> cfg = load_config("paper")
>>> network_cache_path(cfg, "/tmp/c").name == f"network-{training_key(cfg)}.npz"
True
>>> len(training_key(cfg)) == 16 and training_key(cfg) == training_key(cfg.replace(seed=7))
True
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from pathlib import Path

import numpy as np

from yieldmc.atomic import atomic_path
from yieldmc.config import Config
from yieldmc.data import Dataset, load_dataset
from yieldmc.errors import ConfigError
from yieldmc.network import DEFAULT_MAX_ITER, Network, load_network, network_fingerprint, save_network, train_network
from yieldmc.presets import shipped_network

#: Environment variable naming the cache directory (read by :func:`default_cache_dir` only).
CACHE_ENV = "YIELDMC_CACHE"
#: Bump when the cached dataset's content or layout changes.
DATASET_CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """The cache directory when none is given: ``$YIELDMC_CACHE`` or ``~/.cache/yieldmc``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "yieldmc")


def _folder(cache_dir: str | Path | None) -> Path:
    return default_cache_dir() if cache_dir is None else Path(cache_dir)


def _digest(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def training_key(config: Config) -> str:
    """Hash (16 hex digits) of exactly the settings that decide the trained weights.

    Parameters
    ----------
    config : Config
        Only ``config.network`` enters.

    Returns
    -------
    str
        The key in ``network-<key>.npz`` and in the saved network's metadata.
    """
    return _digest(config.network.__dict__ | {"hidden": list(config.network.hidden)})


def network_cache_path(config: Config, cache_dir: str | Path | None = None) -> Path:
    """Where the network of ``config`` is cached: ``<cache_dir>/network-<key>.npz``.

    Parameters
    ----------
    config : Config
        The run's settings (only the network's enter, :func:`training_key`).
    cache_dir : path, optional
        Cache directory; default :func:`default_cache_dir`.
    """
    return _folder(cache_dir) / f"network-{training_key(config)}.npz"


def dataset_cache_path(config: Config, cache_dir: str | Path | None = None) -> Path | None:
    """Where the task data of ``config`` is cached, or None when it is not cached (MNIST,
    read from the user's files each time).

    Parameters
    ----------
    config : Config
        The run's settings (dataset name and split).
    cache_dir : path, optional
        Cache directory; default :func:`default_cache_dir`.
    """
    n = config.network
    if n.dataset != "digits":
        return None
    settings = {"format": DATASET_CACHE_FORMAT, "test_size": n.test_size, "seed": n.train_seed,
                "upsample_to": n.upsample_to, "sklearn": importlib.metadata.version("scikit-learn")}
    return _folder(cache_dir) / f"dataset-digits-{_digest(settings)}.npz"


def obtain_dataset(config: Config, cache_dir: str | Path | None = None) -> Dataset:
    """The task data of ``config``; the digits split is read from or written to the cache.

    An absent or unreadable cache file is rebuilt; a cache that cannot be written (read-only,
    full) costs only the start-up time it would save.

    Parameters
    ----------
    config : Config
        The run's settings (``config.network``: dataset, split, seed).
    cache_dir : path, optional
        Cache directory; default :func:`default_cache_dir`.

    Returns
    -------
    Dataset
    """
    n = config.network

    def load() -> Dataset:
        return load_dataset(n.dataset, path=n.data_path or None, test_size=n.test_size,
                            seed=n.train_seed, upsample_to=n.upsample_to or None)

    path = dataset_cache_path(config, cache_dir)
    if path is None:
        return load()
    try:
        with np.load(path) as z:
            return Dataset(x_train=z["x_train"], y_train=z["y_train"], x_test=z["x_test"],
                           y_test=z["y_test"], image_shape=tuple(z["image_shape"]),
                           name=str(z["name"]), n_classes=int(z["n_classes"]))
    except (OSError, KeyError, ValueError, ConfigError):  # absent or unreadable: rebuild it
        pass
    data = load()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # atomic: concurrent workers never read half a file
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test,
                     y_test=data.y_test, image_shape=np.asarray(data.image_shape), name=data.name,
                     n_classes=data.n_classes)
    except OSError:  # a read-only or full cache costs only the start-up time it would save
        pass
    return data


def _checked(net: Network, path: Path, key: str) -> Network:
    """``net`` (read from ``path``) if its metadata's training key is ``key`` (or absent)."""
    if (net.metadata or {}).get("training_key", key) != key:
        raise ConfigError(
            f"{path} holds weights trained with other network settings; "
            "remove it or choose another output directory"
        )
    return net


def _outdated(net: Network) -> bool:
    """A cached network trained unconverged with a smaller budget than today's default
    (earlier versions stopped training at 300 iterations, before the paper network converges)."""
    meta = net.metadata or {}
    return meta.get("converged") is False and int(meta.get("max_iter") or 0) < DEFAULT_MAX_ITER


def _holds(path: Path, net: Network) -> bool:
    """Whether ``path`` is a readable network file with exactly the weights of ``net``."""
    try:
        return path.is_file() and network_fingerprint(load_network(path)) == network_fingerprint(net)
    except ConfigError:
        return False


def obtain_network(config: Config, dataset: Dataset, path: str | Path | None = None, *,
                   cache_dir: str | Path | None = None) -> Network:
    """The network of ``config``: a run's own file, else the shipped one, else the cached
    or newly trained one.

    In order:

    1. ``path`` names a file other than the cache's that exists (a run's ``network.npz``):
       its weights, checked against the config's :func:`training_key`.
    2. yieldmc ships a network of that training key (:func:`yieldmc.presets.shipped_network`,
       verified against its fingerprint): those weights, copied to ``path`` (or the cache
       file) unless it holds them already, so every machine gets the same weights.
    3. The cache file (``path`` or :func:`network_cache_path`) exists: its weights, unless
       an older yieldmc trained them unconverged with a smaller iteration budget (then 4).
    4. Trained (:func:`yieldmc.network.train_network`, default budget) and saved there.

    Parameters
    ----------
    config : Config
        The run's settings (``config.network``: layers, activation, training seed).
    dataset : Dataset
        Training data, used only when the network is trained.
    path : path, optional
        The network file (a run's ``network.npz``); default
        :func:`network_cache_path` in ``cache_dir``.
    cache_dir : path, optional
        Cache directory when ``path`` is not given; default :func:`default_cache_dir`.

    Returns
    -------
    Network

    Raises
    ------
    ConfigError
        The file holds weights trained with other network settings, or a shipped network
        file is damaged.

    Warns
    -----
    yieldmc.network.NetworkConvergenceWarning
        The network was trained here and did not converge.
    """
    key = training_key(config)
    cached = network_cache_path(config, cache_dir)
    path = cached if path is None else Path(path)
    is_cache = path.absolute() == cached.absolute()
    if not is_cache and path.exists():
        return _checked(load_network(path), path, key)
    net = shipped_network(key)
    if net is not None:
        if not _holds(path, net):
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                save_network(net, path)
            except OSError:  # a read-only or full cache costs nothing: the shipped file serves
                if not is_cache:
                    raise
        return net
    if path.exists():
        net = _checked(load_network(path), path, key)
        if not (is_cache and _outdated(net)):
            return net
    n = config.network
    net = train_network(dataset, hidden=n.hidden, activation=n.activation, seed=n.train_seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_network(net, path, metadata={"training_key": key, "network": config.to_dict()["network"]})
    return net

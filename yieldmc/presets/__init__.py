"""Shipped presets: the settings files ``<name>.toml`` and the trained networks
``<name>.network.npz`` of the small presets.

A trained network ships so that every machine simulates the same weights: training on
another CPU rounds differently and ends on slightly different weights, and the die's
accuracy and output voltages follow them. Only small networks ship (at most
:data:`MAX_SHIPPED_PARAMS` weights and biases): ``paper``'s 64-8-8-8-10 has 754 (a 13 KB
file); ``large``'s 784-256-10 (203,530, 1.6 MB of float64) is trained on first use and
kept in the user cache (:mod:`yieldmc.cache`).

A shipped network is found by its *training key* (:func:`yieldmc.cache.training_key`),
not by the preset's name: any config whose ``[network]`` section equals ``paper``'s gets
``paper``'s weights. Regenerate the files after changing a shipped preset's ``[network]``
section, the trainer or its defaults::

    python -c "from yieldmc.presets import write_shipped_networks; write_shipped_networks()"

Examples
--------
>>> from yieldmc.cache import training_key
>>> from yieldmc.config import load_config
>>> net = shipped_network(training_key(load_config("paper")))
>>> net.layer_sizes, net.metadata["preset"], net.metadata["converged"]
((64, 8, 8, 8, 10), 'paper', True)
>>> shipped_network(training_key(load_config("large"))) is None
True
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING

from yieldmc.errors import ConfigError

if TYPE_CHECKING:  # yieldmc.config reads this package's TOML files: keep its import light
    from yieldmc.network import Network

__all__ = [
    "MAX_SHIPPED_PARAMS",
    "SHIPPED_NETWORKS",
    "shipped_network",
    "shipped_network_files",
    "write_shipped_networks",
]

#: Presets whose trained network ships with yieldmc (``<name>.network.npz`` beside the TOML).
SHIPPED_NETWORKS: tuple[str, ...] = ("paper",)
#: Largest network (weights and biases) that ships: a few tens of KB in the wheel at most.
MAX_SHIPPED_PARAMS = 20_000
#: Suffix of a shipped network file.
NETWORK_SUFFIX = ".network.npz"


def _folder(folder: str | Path | Traversable | None) -> Traversable:
    return resources.files(__name__) if folder is None else (Path(folder) if isinstance(folder, str) else folder)


def shipped_network_files(folder: str | Path | Traversable | None = None) -> list[str]:
    """Names of the shipped network files (sorted).

    Parameters
    ----------
    folder : path or importlib.resources.abc.Traversable, optional
        Where to look; default this package, through :mod:`importlib.resources` (a source
        tree, an installed wheel or a zip).

    Returns
    -------
    list of str
        E.g. ``["paper.network.npz"]``.
    """
    return sorted(p.name for p in _folder(folder).iterdir() if p.name.endswith(NETWORK_SUFFIX))


def _load_shipped(name: str, folder: str | Path | Traversable | None = None) -> Network:
    """Load one shipped file and check it: the stored fingerprint (required) and a key."""
    from yieldmc.network import load_network, network_fingerprint

    hint = ("the installation is damaged: reinstall yieldmc, or regenerate the file with "
            "`python -c \"from yieldmc.presets import write_shipped_networks; write_shipped_networks()\"`")
    with resources.as_file(_folder(folder).joinpath(name)) as path:
        try:
            net = load_network(path)
        except ConfigError as exc:
            raise ConfigError(f"shipped network {exc}; {hint}") from None
    meta = net.metadata
    if meta.get("fingerprint") != network_fingerprint(net):
        raise ConfigError(f"shipped network {name}: weights do not match the fingerprint in its metadata; {hint}")
    if not isinstance(meta.get("training_key"), str):
        raise ConfigError(f"shipped network {name}: metadata has no training_key; {hint}")
    return net


def shipped_network(key: str, folder: str | Path | Traversable | None = None) -> Network | None:
    """The shipped network trained with the settings of training key ``key``, if one ships.

    Every shipped file is read and verified (a damaged one raises, whatever its key).

    Parameters
    ----------
    key : str
        A training key (:func:`yieldmc.cache.training_key`).
    folder : path or importlib.resources.abc.Traversable, optional
        Where the files are; default this package (:func:`shipped_network_files`).

    Returns
    -------
    Network or None
        The network (metadata: training settings, ``training_key``, ``fingerprint``,
        ``preset``), or None when no shipped network has that key.

    Raises
    ------
    ConfigError
        A shipped file is unreadable, or its weights do not match its fingerprint.
    """
    found = None
    for name in shipped_network_files(folder):
        net = _load_shipped(name, folder)
        if found is None and net.metadata["training_key"] == key:
            found = net
    return found


def write_shipped_networks(names: Iterable[str] = SHIPPED_NETWORKS, folder: str | Path | None = None) -> list[Path]:
    """Train the shipped presets' networks and write ``<folder>/<name>.network.npz``.

    Trains with the default budget (:func:`yieldmc.network.train_network`) on the preset's
    data split; refuses a network that does not converge or has more than
    :data:`MAX_SHIPPED_PARAMS` parameters. The metadata hold the training settings, the
    preset's ``[network]`` section, its ``training_key`` and the weights' ``fingerprint``.

    Parameters
    ----------
    names : iterable of str, default :data:`SHIPPED_NETWORKS`
        Preset names.
    folder : path, optional
        Where to write; default this package's source folder (a source checkout or an
        editable install: commit the files written there).

    Returns
    -------
    list of pathlib.Path
        The files written.

    Raises
    ------
    ConfigError
        Unknown preset, a network too large to ship, or training that did not converge.
    """
    from yieldmc.cache import obtain_dataset, training_key
    from yieldmc.config import load_config
    from yieldmc.network import network_fingerprint, save_network, train_network

    out = Path(__file__).parent if folder is None else Path(folder)
    written = []
    for name in names:
        config = load_config(name)
        n = config.network
        with tempfile.TemporaryDirectory() as tmp:  # a fresh split, not the user's cache
            dataset = obtain_dataset(config, tmp)
        sizes = (dataset.x_train.shape[1], *n.hidden, dataset.n_classes)
        n_params = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        if n_params > MAX_SHIPPED_PARAMS:  # refused before the training
            raise ConfigError(f"preset {name!r}: its {'-'.join(map(str, sizes))} network has {n_params} parameters, "
                              f"more than the {MAX_SHIPPED_PARAMS} that ship (MAX_SHIPPED_PARAMS)")
        net = train_network(dataset, hidden=n.hidden, activation=n.activation, seed=n.train_seed)
        if not net.metadata["converged"]:
            raise ConfigError(f"preset {name!r}: training did not converge in {net.metadata['max_iter']} "
                              "iterations; an unconverged network does not ship")
        meta = {"training_key": training_key(config), "network": config.to_dict()["network"], "preset": name,
                "fingerprint": network_fingerprint(net)}
        path = save_network(net, out / f"{name}{NETWORK_SUFFIX}", metadata=meta)
        path.chmod(0o644)  # save_network's temporary file is private; a shipped file is not
        written.append(path)
    return written

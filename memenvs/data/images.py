"""Image-folder loader: PNG / JPEG files sorted into one sub-folder per class (StanfordDogs, ...).

Sources (see :mod:`memenvs.data`): ``data_dir``, ``data_dir/images`` or ``data_dir/stanford-dogs``,
else ``$MEMENVS_DATA``, ``$MEMENVS_DATA/images`` or ``$MEMENVS_DATA/stanford-dogs``; the first of
these folders that holds one of the layouts below is read. There is no embedded default: without
data the loader raises ``FileNotFoundError`` saying what to put where.

Layouts of a folder ``root`` (checked in this order):

1. explicit splits: ``root/train/<class>/*`` and ``root/test/<class>/*``, optionally
   ``root/validation/<class>/*`` (or ``root/val/``);
2. StanfordDogs as its ``images.tar`` unpacks: ``root/Images/<class>/*``;
3. a plain class tree: ``root/<class>/*``.

Class ids are the class folder names in sorted order (for explicit splits, those of ``train/``).
Image files are ``*.png``, ``*.jpg``, ``*.jpeg`` (any case) directly in a class folder; other
files and names starting with ``.`` are ignored. Every class folder must hold at least one image.
The dataset is named ``"stanford-dogs"`` when every class folder is named like StanfordDogs'
(``n02085620-Chihuahua``: a WordNet id, a dash, the breed), else after ``root``.

Splits (fixed, never overlapping; shuffles use ``np.random.RandomState(SPLIT_SEED)`` through
:func:`memenvs.data.shuffled_holdout`, over the files sorted by class then file name):

- plain tree / StanfordDogs: all ``n`` images are shuffled; ``test`` = the last ``max(1, n // 5)``
  (20%), ``validation`` = the ``max(1, n // 10)`` (10%) before them, ``train`` = the rest, in
  shuffled order. StanfordDogs: 14,406 / 2,058 / 4,116 of its 20,580 images. Its official
  train / test lists (``lists.tar``, MATLAB files) are not read: to use them, sort the images into
  the explicit-splits layout.
- explicit splits: ``test`` (and ``validation`` if given) in sorted order; without a
  ``validation`` folder, ``max(1, n_train // 10)`` shuffled training images become ``validation``.

Images: each file is decoded with Pillow, converted to RGB (EXIF orientation is ignored, as in
torchvision's ImageFolder), centre-cropped to the largest square (the aspect ratio is kept, the
longer side's edges are cut: left/top offset ``(size - square) // 2``), then resized to
``side x side`` with Pillow's bicubic filter (antialiased when shrinking; an image already of that
size is not resampled). ``colour="grey"`` keeps one channel, the luminance
``round(0.299 R + 0.587 G + 0.114 B)`` of the resized RGB image (the formula of sequential
CIFAR-10's grey layout).

Cost: labels come from folder names, so building a task lists files (about 0.2 s for
StanfordDogs' 20,580) and decodes nothing. A split is decoded on first use of its images, once
per process (with a thread pool: Pillow decodes without holding the GIL), and cached as read-only
``uint8 [N, side, side, C]`` keyed by its files (path, size, mtime), ``side`` and the colour
("rgb" and "channels" share one copy); pickling a dataset does not pickle the decoded images.
Decoding takes about 3.5 ms per StanfordDogs-sized JPEG (500x375) on one core, so about 75 s
for the whole dataset. Memory: ``N * side**2 * C`` bytes per split, e.g. all of StanfordDogs at
``side=128`` takes about 1.0 GB in RGB (C = 3) and 0.34 GB in grey; ``side=32`` takes 63 MB in RGB.

Pillow is imported only when images are decoded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from memenvs.data import ImageSplits, search_dirs, shuffled_holdout

SPLIT_SEED = 50
#: Sub-folders of ``data_dir`` / ``$MEMENVS_DATA`` searched after the folder itself.
SUBDIRS = ("images", "stanford-dogs")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
VALIDATION_DIRS = ("validation", "val")
STANFORD_DOGS_URL = "http://vision.stanford.edu/aditya86/ImageNetDogs/images.tar"
_STANFORD_CLASS = re.compile(r"n\d{8}-.+")
#: Luminance weights of the grey colour mode (ITU-R BT.601, as SequentialCIFAR10's grey layout).
GREY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)

Colour = Literal["rgb", "grey"]

#: (files key, side, colour) -> decoded images of one split.
_CACHE: dict[tuple, np.ndarray] = {}

HOW_TO_PROVIDE = (
    "put the images in class folders, root/<class>/*.jpg|*.png (or root/train/<class>/... and "
    "root/test/<class>/..., or StanfordDogs' Images/<class>/...), and pass root as data_dir or set "
    "MEMENVS_DATA to root or to a folder holding root as images/ or stanford-dogs/; for StanfordDogs "
    f"download {STANFORD_DOGS_URL} (757 MB) and unpack it into MEMENVS_DATA/stanford-dogs/ "
    "(it unpacks to Images/n02085620-Chihuahua/*.jpg, ...)"
)


def clear_cache() -> None:
    """Forget every decoded split."""
    _CACHE.clear()


# --------------------------------------------------------------------------------------------
# Finding and listing the files
# --------------------------------------------------------------------------------------------


def _image_files(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name (hidden files and others skipped)."""
    with os.scandir(folder) as entries:  # DirEntry.is_file() needs no stat call on most systems
        names = sorted(
            e.name for e in entries
            if not e.name.startswith(".") and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES and e.is_file()
        )
    return [folder / name for name in names]


def _class_dirs(folder: Path) -> list[Path]:
    """The non-hidden sub-folders of ``folder``, sorted by name (the class ids' order)."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _is_class_tree(folder: Path) -> bool:
    """True if some sub-folder of ``folder`` holds image files directly."""
    return folder.is_dir() and any(_image_files(d) for d in _class_dirs(folder))


def find_image_folder(data_dir: str | os.PathLike | None = None) -> tuple[str, Path, Path]:
    """Locate the images: ``(layout, folder, tree)``, layout ``"splits"`` or ``"tree"``.

    ``folder`` is the folder searched (it names the dataset); ``tree`` holds the class folders
    (``folder`` itself, ``folder/Images``, or for explicit splits ``folder`` with ``train/``...).

    Raises:
        FileNotFoundError: no layout found in any searched folder (the message says what to put where).
    """
    dirs, _ = search_dirs(data_dir, SUBDIRS[0])
    dirs += [dirs[0] / name for name in SUBDIRS[1:]] if dirs else []
    for folder in dirs:
        if not folder.is_dir():
            continue
        if (folder / "train").is_dir() and (folder / "test").is_dir():
            return "splits", folder, folder
        if _is_class_tree(folder / "Images"):
            return "tree", folder, folder / "Images"
        if _is_class_tree(folder):
            return "tree", folder, folder
    if data_dir is not None:
        where = f"looked in data_dir={str(data_dir)!r} and its {', '.join(s + '/' for s in SUBDIRS)}"
    elif dirs:
        where = f"looked in $MEMENVS_DATA={str(dirs[0])!r} and its {', '.join(s + '/' for s in SUBDIRS)}"
    else:
        where = "no data_dir given and MEMENVS_DATA is not set"
    raise FileNotFoundError(f"no image class folders found ({where}); {HOW_TO_PROVIDE}")


def _list_tree(tree: Path, classes: list[str] | None = None) -> tuple[list[str], list[Path], np.ndarray]:
    """Class names, image paths (sorted by class then name) and labels of one class tree.

    With ``classes`` given (a validation / test tree), its folders must be among them.
    """
    dirs = _class_dirs(tree)
    names = [d.name for d in dirs] if classes is None else classes
    if classes is not None:
        unknown = [d.name for d in dirs if d.name not in classes]
        if unknown:
            raise ValueError(f"{tree}: class folders {unknown} are not in the training split's classes")
    paths: list[Path] = []
    labels: list[int] = []
    for d in dirs:
        files = _image_files(d)
        if not files:
            raise ValueError(f"{d}: class folder holds no image files ({', '.join('*' + s for s in IMAGE_SUFFIXES)})")
        paths += files
        labels += [names.index(d.name)] * len(files)
    if len(names) < 2:
        raise ValueError(f"{tree}: {len(names)} class folder(s) {names}; classification needs at least 2")
    return names, paths, np.array(labels, dtype=np.int64)


def split_files(layout: str, tree: Path) -> tuple[list[str], dict[str, list[Path]], dict[str, np.ndarray]]:
    """Class names, and per split the image paths and labels in the split's fixed order."""
    if layout == "splits":
        classes, train_paths, train_labels = _list_tree(tree / "train")
        _, test_paths, test_labels = _list_tree(tree / "test", classes)
        val_dir = next((tree / v for v in VALIDATION_DIRS if (tree / v).is_dir()), None)
        if val_dir is not None:
            _, val_paths, val_labels = _list_tree(val_dir, classes)
            train = np.arange(len(train_paths))
        else:
            n = len(train_paths)
            if n < 2:
                raise ValueError(f"{tree / 'train'}: {n} image(s); at least 2 are needed to hold out validation")
            train, held = shuffled_holdout(n, max(1, n // 10), SPLIT_SEED)
            val_paths, val_labels = [train_paths[i] for i in held], train_labels[held]
        paths = {"train": [train_paths[i] for i in train], "validation": val_paths, "test": test_paths}
        labels = {"train": train_labels[train], "validation": val_labels, "test": test_labels}
        return classes, paths, labels
    classes, all_paths, all_labels = _list_tree(tree)
    n = len(all_paths)
    if n < 3:
        raise ValueError(f"{tree}: {n} image(s); at least 3 are needed for train / validation / test splits")
    n_val, n_test = max(1, n // 10), max(1, n // 5)
    train, held = shuffled_holdout(n, n_val + n_test, SPLIT_SEED)
    parts = {"train": train, "validation": held[:n_val], "test": held[n_val:]}
    paths = {s: [all_paths[i] for i in idx] for s, idx in parts.items()}
    labels = {s: all_labels[idx] for s, idx in parts.items()}
    return classes, paths, labels


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


def decode_image(path: Path, side: int, colour: Colour) -> np.ndarray:
    """One file as ``uint8 [side, side, C]`` (C = 3 for "rgb", 1 for "grey"): RGB, centre-cropped
    to a square, bicubic-resized; see the module docstring.

    Raises:
        ValueError: the file is not a readable PNG / JPEG image (names the file).
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as err:
        raise ValueError(f"{path}: not a readable image file ({type(err).__name__}: {err})") from err
    width, height = rgb.size
    square = min(width, height)
    left, top = (width - square) // 2, (height - square) // 2
    rgb = rgb.crop((left, top, left + square, top + square)).resize((side, side), Image.Resampling.BICUBIC)
    pixels = np.asarray(rgb, dtype=np.uint8)
    if colour == "grey":
        grey = pixels.astype(np.float32) @ GREY_WEIGHTS
        pixels = np.clip(np.rint(grey), 0, 255).astype(np.uint8)[:, :, None]
    return pixels


def decode_images(paths: list[Path], side: int, colour: Colour) -> np.ndarray:
    """Decode files into one read-only ``uint8 [N, side, side, C]`` array, with a thread pool."""
    out = np.zeros((len(paths), side, side, 3 if colour == "rgb" else 1), dtype=np.uint8)

    def fill(i: int) -> None:
        out[i] = decode_image(paths[i], side, colour)

    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        for _ in pool.map(fill, range(len(paths))):  # re-raises the first error, in file order
            pass
    out.flags.writeable = False
    return out


def _files_key(paths: list[Path]) -> tuple[tuple[str, int, int], ...]:
    """Cache key of some files: path, size and mtime, as :func:`memenvs.data.file_key` but
    without resolving each path (the tree is resolved once; StanfordDogs has 20,580 files)."""
    out = []
    for path in paths:
        stat = os.stat(path)
        out.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(out)


class DecodedSplits(Mapping[str, np.ndarray]):
    """split -> decoded images, each split decoded on first access and cached per process.

    Holds only the file lists, so building a task and pickling it decode (and copy) nothing.
    """

    def __init__(self, paths: dict[str, list[Path]], side: int, colour: Colour) -> None:
        self.paths = paths
        self.side = side
        self.colour = colour
        self._keys = {split: (_files_key(files), side, colour) for split, files in paths.items()}
        self._arrays: dict[str, np.ndarray] = {}

    def __getitem__(self, split: str) -> np.ndarray:
        if split not in self._arrays:
            key = self._keys[split]
            if key not in _CACHE:
                _CACHE[key] = decode_images(self.paths[split], self.side, self.colour)
            self._arrays[split] = _CACHE[key]
        return self._arrays[split]

    def __contains__(self, split: object) -> bool:  # without decoding (Mapping's default would)
        return split in self.paths

    def __iter__(self) -> Iterator[str]:
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_arrays": {}}


@dataclass(frozen=True)
class ImageFolderSplits(ImageSplits):
    """:class:`~memenvs.data.ImageSplits` of an image folder, with ``images`` decoded lazily
    (a :class:`DecodedSplits`) and the class names (``classes[label]``)."""

    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        for labels in self.labels.values():  # images are made read-only when decoded
            labels.flags.writeable = False


def load_image_folder(
    data_dir: str | os.PathLike | None = None, side: int = 32, colour: Colour = "rgb"
) -> ImageFolderSplits:
    """List the image folder (see the module docstring); images are decoded when first used.

    Raises:
        FileNotFoundError: no image folder found (the message says what to put where).
        ValueError: an empty class folder, fewer than 2 classes or too few images to split;
            later, when a split is decoded, a file that is not a readable image.
    """
    layout, folder, tree = find_image_folder(data_dir)
    tree = tree.resolve()
    classes, paths, labels = split_files(layout, tree)
    dogs = all(_STANFORD_CLASS.fullmatch(c) for c in classes)
    name = "stanford-dogs" if dogs else folder.resolve().name
    return ImageFolderSplits(
        name, str(tree), images=DecodedSplits(paths, side, colour), labels=labels, classes=tuple(classes)
    )

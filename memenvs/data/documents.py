"""Document classification data in the DBpedia CSV layout, read from local files only.

Files (Zhang, Zhao & LeCun 2015, the ``dbpedia_csv.tar.gz`` archive that torchtext's ``DBpedia``
and fastai's ``URLs.DBPEDIA`` download): ``train.csv`` (560,000 rows) and ``test.csv`` (70,000),
each row ``class,title,content`` with a 1-based class id and double-quoted fields that may hold
commas, doubled quotes and newlines (parsed with :mod:`csv`, never ``eval`` or pickle); an optional
``classes.txt`` names the classes, one per line (DBpedia: 14). They are looked for in ``data_dir``
(or ``$MEMENVS_DATA``), then its sub-folder ``dbpedia/``, then ``dbpedia_csv/`` (the folder the
archive unpacks to).

There is no embedded default: no package installable here ships DBpedia, and the labelled
document corpora that some wheels do ship were not suitable (see
:class:`memenvs.tasks.documents.DocumentClassificationTask`). Without the files, loading raises
``FileNotFoundError`` saying what to download and where to put it (:data:`HOW_TO_PROVIDE`).

Splits (fixed, never overlapping): the rows of ``train.csv`` are shuffled with
``np.random.RandomState(SPLIT_SEED)`` (:func:`memenvs.data.shuffled_holdout`) and the last tenth
(56,000 for DBpedia) becomes ``validation``, the rest ``train``, in that shuffled order; ``test``
is ``test.csv`` in file order. Labels are stored 0-based (CSV class id - 1).

Units: a document is the chosen fields (``title`` and ``content`` by default), each stripped of
surrounding whitespace, the non-empty ones joined by a newline, then cut into units:

- ``"char"``: Unicode characters, as written (no case folding);
- ``"word"``: the lower-cased text split by the regular expression ``\\w+|[^\\w\\s]`` (runs of
  letters/digits/underscores, and every other non-space character on its own).

The vocabulary is built from the ``train`` split only (never validation or test): id 0 is the pad
symbol (``PAD``; after a document's end in a batch, or the one step of an empty document), id 1 the
unknown unit (``UNKNOWN``; any unit outside the vocabulary), then the ``vocab_size`` most frequent
training units, most frequent first (ties in unit order). Parsed files are cached per process,
keyed by :func:`memenvs.data.file_key`, and so are the encoded documents per unit/vocabulary/fields.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from memenvs.data import DATA_ENV, SPLITS, DatasetInfo, file_key, search_dirs, shuffled_holdout

Unit = Literal["char", "word"]
TextFields = Literal["title+content", "content", "title"]
UNITS = ("char", "word")
TEXT_FIELDS: dict[str, tuple[int, ...]] = {"title+content": (0, 1), "content": (1,), "title": (0,)}
SUBDIRS = ("dbpedia", "dbpedia_csv")
FILES = ("train.csv", "test.csv")
CLASSES_FILE = "classes.txt"
SPLIT_SEED = 50
VALIDATION_FRACTION = 10  # one row in ten of train.csv is held out
PAD, UNKNOWN = 0, 1
PAD_NAME, UNKNOWN_NAME = "<pad>", "<unk>"
WORD_PATTERN = re.compile(r"\w+|[^\w\s]")
_CHUNK = 20_000  # documents per chunk when encoding characters

HOW_TO_PROVIDE = (
    "DocumentClassification has no embedded default: get DBpedia as dbpedia_csv.tar.gz (Zhang et al. 2015, "
    "the archive torchtext's DBpedia and fastai's URLs.DBPEDIA download), unpack it and put train.csv and "
    "test.csv (classes.txt optional) in the folder given as data_dir, or in $MEMENVS_DATA/dbpedia/ "
    f"(set the {DATA_ENV} environment variable)"
)


@dataclass(frozen=True)
class RawDocuments:
    """The parsed CSV files: per split, ``(title, content)`` pairs and 0-based labels.

    Attributes:
        source: the folder the files were read from.
        class_names: class id (0-based) -> name, from ``classes.txt`` or the CSV ids as text.
        fields: split -> list of ``(title, content)`` in the split's fixed order.
        labels: split -> read-only ``int64 [N]`` 0-based labels.
    """

    source: str
    class_names: tuple[str, ...]
    fields: dict[str, list[tuple[str, str]]]
    labels: dict[str, np.ndarray]


@dataclass(frozen=True)
class Documents:
    """Documents as unit ids, stored flat per split (document ``i`` is
    ``ids[split][offsets[split][i]:offsets[split][i + 1]]``, possibly empty).

    Attributes:
        name: ``"dbpedia"``.
        source: where the files were read from.
        unit: ``"char"`` or ``"word"``.
        text: which fields make a document (a key of :data:`TEXT_FIELDS`).
        symbols: id -> unit (``"<pad>"``, ``"<unk>"``, then the vocabulary).
        class_names: class id -> name.
        ids: split -> read-only ``uint8``/``uint16`` unit ids, all documents concatenated.
        offsets: split -> read-only ``int64 [N + 1]`` document boundaries in ``ids``.
        labels: split -> read-only ``int64 [N]`` 0-based labels.
    """

    name: str
    source: str
    unit: str
    text: str
    symbols: tuple[str, ...]
    class_names: tuple[str, ...]
    ids: dict[str, np.ndarray]
    offsets: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]

    @property
    def vocab_size(self) -> int:
        """Number of symbols, pad and unknown included."""
        return len(self.symbols)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def info(self) -> DatasetInfo:
        """The dataset for a run's summary (split sizes in documents)."""
        return DatasetInfo(self.name, self.source, False, {split: len(self.labels[split]) for split in SPLITS})

    def document(self, split: str, index: int) -> np.ndarray:
        """The unit ids of one whole (untruncated) document."""
        offsets = self.offsets[split]
        return self.ids[split][offsets[index] : offsets[index + 1]]

    def decode(self, ids: Iterable[int]) -> str:
        """The text of some unit ids (words joined by spaces)."""
        sep = "" if self.unit == "char" else " "
        return sep.join(self.symbols[int(i)] for i in np.asarray(ids).ravel())


_PARSED: dict[tuple, RawDocuments] = {}
_ENCODED: dict[tuple, Documents] = {}


def clear_cache() -> None:
    """Forget every parsed and encoded dataset (tests use it to count parses)."""
    _PARSED.clear()
    _ENCODED.clear()


def find_documents(data_dir: str | Path | None = None) -> tuple[Path, Path, Path | None]:
    """``(train.csv, test.csv, classes.txt or None)`` from the first folder holding both CSVs."""
    dirs, _ = search_dirs(data_dir, SUBDIRS[0])
    if dirs:
        dirs.append(dirs[0] / SUBDIRS[1])
    for folder in dirs:
        train, test = (folder / name for name in FILES)
        if train.is_file() and test.is_file():
            classes = folder / CLASSES_FILE
            return train, test, classes if classes.is_file() else None
    if data_dir is not None:
        where = f"looked in data_dir={str(data_dir)!r} and its {', '.join(f'{s}/' for s in SUBDIRS)}"
    elif dirs:
        where = f"looked in ${DATA_ENV}={str(dirs[0])!r} and its {', '.join(f'{s}/' for s in SUBDIRS)}"
    else:
        where = f"no data_dir given and {DATA_ENV} is not set"
    raise FileNotFoundError(f"DBpedia train.csv and test.csv not found ({where}); {HOW_TO_PROVIDE}")


def load_raw(data_dir: str | Path | None = None) -> RawDocuments:
    """Parse the CSV files (once per process per file contents) and cut the splits.

    Raises:
        FileNotFoundError: the files are not there (the message says how to get them).
        ValueError: a malformed file (not UTF-8, a row without 3 fields, a bad class id).
    """
    return _load_raw(data_dir)[1]


def _load_raw(data_dir: str | Path | None) -> tuple[tuple, RawDocuments]:
    """The cache key of the files (:func:`memenvs.data.file_key`) and their parsed contents."""
    train, test, classes = find_documents(data_dir)
    key = file_key(*(p for p in (train, test, classes) if p is not None))
    if key not in _PARSED:
        _PARSED[key] = _parse(train, test, classes)
    return key, _PARSED[key]


def load_documents(
    data_dir: str | Path | None = None, unit: Unit = "char", vocab_size: int = 254, text: TextFields = "title+content"
) -> Documents:
    """The documents as unit ids over a training-split vocabulary (see the module docstring);
    cached per files, ``unit``, ``vocab_size`` and ``text``."""
    if unit not in UNITS:
        raise ValueError(f"unit={unit!r} is not allowed: choose one of {', '.join(map(repr, UNITS))}")
    if text not in TEXT_FIELDS:
        raise ValueError(f"text={text!r} is not allowed: choose one of {', '.join(map(repr, TEXT_FIELDS))}")
    files, raw = _load_raw(data_dir)
    key = (files, unit, vocab_size, text)
    if key not in _ENCODED:
        _ENCODED[key] = _encode(raw, unit, vocab_size, text)
    return _ENCODED[key]


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


def read_csv_rows(path: Path) -> tuple[list[tuple[str, str]], np.ndarray]:
    """``([(title, content)], 1-based class ids)`` of one DBpedia-layout CSV file; blank lines are
    skipped, anything else must be ``class,title,content`` with a positive integer class."""
    fields, classes = [], []
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            for row in reader:
                if not row:
                    continue
                if len(row) != 3:
                    raise ValueError(
                        f"{path}:{reader.line_num}: {len(row)} fields; expected 3 (class,title,content)"
                    )
                try:
                    label = int(row[0])
                except ValueError:
                    label = 0
                if label < 1:
                    raise ValueError(f"{path}:{reader.line_num}: class {row[0]!r} is not a positive integer (1-based id)")
                classes.append(label)
                fields.append((row[1], row[2]))
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err})") from err
    except csv.Error as err:
        raise ValueError(f"{path}: malformed CSV ({err})") from err
    if not fields:
        raise ValueError(f"{path}: no rows")
    return fields, np.array(classes, dtype=np.int64)


def read_class_names(path: Path) -> tuple[str, ...]:
    """The non-empty lines of ``classes.txt``, stripped."""
    try:
        names = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err})") from err
    if not names:
        raise ValueError(f"{path}: no class names")
    return names


def _parse(train: Path, test: Path, classes: Path | None) -> RawDocuments:
    train_fields, train_ids = read_csv_rows(train)
    test_fields, test_ids = read_csv_rows(test)
    top = int(max(train_ids.max(), test_ids.max()))
    if classes is not None:
        names = read_class_names(classes)
        if top > len(names):
            raise ValueError(f"class id {top} in the CSV files, but {classes} names only {len(names)} classes")
    else:
        names = tuple(str(i) for i in range(1, top + 1))
    if len(train_fields) < 2:
        raise ValueError(f"{train}: {len(train_fields)} row; at least 2 are needed (one is held out for validation)")
    keep, held = shuffled_holdout(len(train_fields), max(1, len(train_fields) // VALIDATION_FRACTION), SPLIT_SEED)
    labels = {"train": train_ids[keep] - 1, "validation": train_ids[held] - 1, "test": test_ids - 1}
    for array in labels.values():
        array.flags.writeable = False
    fields = {
        "train": [train_fields[i] for i in keep],
        "validation": [train_fields[i] for i in held],
        "test": test_fields,
    }
    return RawDocuments(str(train.parent), names, fields, labels)


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------


def document_text(fields: tuple[str, str], text: str) -> str:
    """The text of one row for a ``text`` choice: the chosen fields stripped, the non-empty ones
    joined by a newline."""
    return "\n".join(part for part in (fields[i].strip() for i in TEXT_FIELDS[text]) if part)


def words(text: str) -> list[str]:
    """The word units of a text (lower-cased, see the module docstring)."""
    return WORD_PATTERN.findall(text.lower())


def _vocabulary(counts: dict[str, int], vocab_size: int) -> tuple[str, ...]:
    """Pad, unknown, then the ``vocab_size`` most frequent units (ties in unit order)."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:vocab_size]
    return (PAD_NAME, UNKNOWN_NAME) + tuple(unit for unit, _ in ranked)


def _freeze(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _encode(raw: RawDocuments, unit: str, vocab_size: int, text: str) -> Documents:
    texts = {split: [document_text(f, text) for f in raw.fields[split]] for split in SPLITS}
    dtype = np.uint8 if vocab_size + 2 <= 256 else np.uint16
    ids, offsets = {}, {}
    if unit == "char":
        codes = np.zeros(0x110000, dtype=np.int64)
        for chunk in _chunks(texts["train"]):
            codes += np.bincount(_code_points("".join(chunk)), minlength=0x110000)
        seen = np.flatnonzero(codes)
        symbols = _vocabulary({chr(c): int(codes[c]) for c in seen}, vocab_size)
        lookup = np.full(0x110000, UNKNOWN, dtype=dtype)
        for i, char in enumerate(symbols[2:], start=2):
            lookup[ord(char)] = i
        for split in SPLITS:
            parts = [lookup[_code_points("".join(chunk))] for chunk in _chunks(texts[split])]
            ids[split] = _freeze(np.concatenate(parts) if parts else np.zeros(0, dtype=dtype))
            offsets[split] = _freeze(_offsets(len(t) for t in texts[split]))
    else:
        counts: Counter[str] = Counter()
        for t in texts["train"]:
            counts.update(words(t))
        symbols = _vocabulary(counts, vocab_size)
        index = {word: i for i, word in enumerate(symbols[2:], start=2)}
        for split in SPLITS:  # split the texts again rather than keep every word list in memory
            sizes: list[int] = []
            ids[split] = _freeze(np.fromiter(_word_ids(texts[split], index, sizes), dtype=dtype))
            offsets[split] = _freeze(_offsets(sizes))
    return Documents("dbpedia", raw.source, unit, text, symbols, raw.class_names, ids, offsets, raw.labels)


def _word_ids(texts: list[str], index: dict[str, int], sizes: list[int]) -> Iterator[int]:
    """The word ids of all ``texts`` in turn, appending each text's word count to ``sizes``."""
    for text in texts:
        doc = words(text)
        sizes.append(len(doc))
        yield from (index.get(w, UNKNOWN) for w in doc)


def _chunks(texts: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(texts), _CHUNK):
        yield texts[start : start + _CHUNK]


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def _offsets(sizes: Iterable[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.fromiter(sizes, dtype=np.int64))]).astype(np.int64)

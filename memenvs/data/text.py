"""Character corpora: Penn Treebank (char), text8 and enwik8 from local files, or the embedded
default, the Python standard library's own source text.

Accepted layouts, looked for in ``data_dir`` (or ``$MEMENVS_DATA``), then in its sub-folder named
after the corpus (``ptb/``, ``text8/``, ``enwik8/``):

- ``ptb``: ``ptb.char.train.txt``, ``ptb.char.valid.txt``, ``ptb.char.test.txt`` (Mikolov's
  character-level PTB: one sentence per line, characters separated by spaces, ``_`` between words).
  Each space-separated token is one symbol (``_`` stays the word separator) and every line ends
  with a ``"\\n"`` end-of-sentence symbol, giving the standard ~50-symbol vocabulary.
- ``text8``: the file ``text8`` or ``text8.zip`` (only ``a-z`` and space). Split into the first
  90%, next 5%, last 5% of characters: the standard 90M/5M/5M split of the real 10^8 file.
- ``enwik8``: the file ``enwik8`` or ``enwik8.zip``, read as **bytes** (the standard byte-level
  benchmark; ``Corpus.symbols`` shows each byte as ``chr(byte)``). Split 90/5/5% like text8.

``data_dir`` may also be the text8 / enwik8 file itself.

Embedded default (``corpus="stdlib"``): the top-level ``*.py`` files of the running Python's
standard library (``sysconfig.get_paths()["stdlib"]``) in sorted file-name order, decoded as
UTF-8 (undecodable bytes replaced), concatenated and cut at ``STDLIB_CHARS`` = 2,000,000
characters, then split 90/5/5% (1.8M / 100k / 100k characters). It loads in well under a second
and is present wherever Python is, but its text differs between Python versions (3.11: about 100
distinct characters): compare results only within one Python version; ``Corpus.fingerprint``
identifies the exact text.

The vocabulary is the set of characters (bytes for enwik8) seen in all three splits, sorted, so
ids are stable for a given corpus. Each corpus is parsed once per process and cached.
"""

from __future__ import annotations

import hashlib
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from memenvs.data import DATA_ENV, SPLITS, DatasetInfo, file_key, search_dirs

CorpusName = Literal["auto", "stdlib", "ptb", "text8", "enwik8"]
CORPORA = ("auto", "stdlib", "ptb", "text8", "enwik8")
FILE_CORPORA = ("ptb", "text8", "enwik8")
STDLIB_CHARS = 2_000_000
SPLIT_FRACTIONS = (0.90, 0.05, 0.05)
PTB_FILES = {"train": "ptb.char.train.txt", "validation": "ptb.char.valid.txt", "test": "ptb.char.test.txt"}
TEXT8_ALPHABET = b" abcdefghijklmnopqrstuvwxyz"

_CACHE: dict[tuple, Corpus] = {}


@dataclass(frozen=True)
class Corpus:
    """A character corpus as symbol ids, cut into the three splits.

    Attributes:
        name: ``"stdlib"``, ``"ptb"``, ``"text8"`` or ``"enwik8"``.
        source: where it was read from.
        symbols: id -> character (for enwik8, ``chr(byte)``).
        splits: split -> read-only id array (``uint8`` when the vocabulary fits, else ``int32``).
        fingerprint: SHA-256 (first 16 hex digits) of the symbols and all ids: equal fingerprints
            mean identical data.
    """

    name: str
    source: str
    symbols: tuple[str, ...]
    splits: dict[str, np.ndarray]
    fingerprint: str

    @property
    def vocab_size(self) -> int:
        return len(self.symbols)

    def info(self) -> DatasetInfo:
        """The corpus for a run's summary; the ``stdlib`` text is the embedded default."""
        return DatasetInfo(self.name, self.source, self.name == "stdlib",
                           {split: len(ids) for split, ids in self.splits.items()})

    def decode(self, ids: np.ndarray) -> str:
        """The text of a sequence of ids."""
        return "".join(self.symbols[i] for i in np.asarray(ids).ravel())


def clear_cache() -> None:
    """Forget every parsed corpus."""
    _CACHE.clear()


def load_corpus(corpus: CorpusName = "auto", data_dir: str | Path | None = None) -> Corpus:
    """Load a corpus (parsed once per process).

    ``corpus="auto"``: the first of ptb, text8, enwik8 found in ``data_dir`` (an error if none),
    else in ``$MEMENVS_DATA``, else the embedded ``"stdlib"`` text. A named corpus must be found
    in ``data_dir`` / ``$MEMENVS_DATA``.

    Raises:
        FileNotFoundError: the corpus's files are not there (the message says what is needed).
        ValueError: a bad ``corpus`` name, or a corrupt / wrongly formatted file.
    """
    if corpus not in CORPORA:
        raise ValueError(f"corpus={corpus!r} is not allowed: choose one of {', '.join(map(repr, CORPORA))}")
    if corpus == "stdlib":
        if data_dir is not None:
            raise ValueError(f"data_dir={str(data_dir)!r} cannot be used with corpus='stdlib' (the embedded text)")
        return _cached(("stdlib", stdlib_dir(), STDLIB_CHARS), _load_stdlib)
    name, paths = find_corpus(corpus, data_dir)
    if name == "stdlib":
        return _cached(("stdlib", stdlib_dir(), STDLIB_CHARS), _load_stdlib)
    loader = {"ptb": _load_ptb, "text8": _load_text8, "enwik8": _load_enwik8}[name]
    return _cached((name, file_key(*paths)), lambda: loader(paths))


def _cached(key: tuple, load) -> Corpus:
    if key not in _CACHE:
        _CACHE[key] = load()
    return _CACHE[key]


def find_corpus(corpus: CorpusName = "auto", data_dir: str | Path | None = None) -> tuple[str, list[Path]]:
    """Which corpus to read and its files, following the order documented in :func:`load_corpus`."""
    dirs, explicit = search_dirs(data_dir, "")
    names = FILE_CORPORA if corpus == "auto" else (corpus,)
    if explicit and Path(data_dir).expanduser().is_file():
        path = Path(data_dir).expanduser()
        for name in names:
            if name != "ptb" and path.name in (name, f"{name}.zip"):
                return name, [path]
    for name in names:
        for root in dirs[:1]:
            for folder in (root, root / name):
                paths = _layout_files(name, folder)
                if paths is not None:
                    return name, paths
    if corpus == "auto" and not explicit:
        return "stdlib", []
    if explicit:
        where = f"looked in data_dir={str(data_dir)!r}"
    elif dirs:
        where = f"looked in ${DATA_ENV}={str(dirs[0])!r}"
    else:
        where = f"no data_dir given and {DATA_ENV} is not set"
    wanted = "ptb.char.{train,valid,test}.txt, text8[.zip] or enwik8[.zip]"
    if corpus == "ptb":
        wanted = ", ".join(PTB_FILES.values())
    elif corpus in ("text8", "enwik8"):
        wanted = f"{corpus} or {corpus}.zip"
    raise FileNotFoundError(f"corpus={corpus!r}: not found ({where}); put {wanted} there, or use corpus='stdlib'")


def _layout_files(name: str, folder: Path) -> list[Path] | None:
    if name == "ptb":
        paths = [folder / f for f in PTB_FILES.values()]
        return paths if all(p.is_file() for p in paths) else None
    for candidate in (folder / name, folder / f"{name}.zip"):
        if candidate.is_file():
            return [candidate]
    return None


def stdlib_dir() -> str:
    """The directory of the running Python's standard library."""
    return sysconfig.get_paths()["stdlib"]


def stdlib_text(limit: int = STDLIB_CHARS) -> str:
    """The embedded default text: sorted top-level stdlib ``*.py`` files, cut at ``limit`` chars."""
    parts, total = [], 0
    for path in sorted(Path(stdlib_dir()).glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        parts.append(text)
        total += len(text)
        if total >= limit:
            break
    return "".join(parts)[:limit]


def _read_file_bytes(path: Path, member: str) -> bytes:
    """Bytes of a plain file, or of ``member`` (else the only member) of a ``.zip``."""
    if path.suffix != ".zip":
        return path.read_bytes()
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            chosen = member if member in names else names[0] if len(names) == 1 else None
            if chosen is None:
                raise ValueError(f"{path}: zip holds {names}, expected a member named {member!r}")
            return archive.read(chosen)
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        raise ValueError(f"{path}: corrupt or truncated zip file ({err})") from err


def _split_by_fraction(codes: np.ndarray) -> dict[str, np.ndarray]:
    n = len(codes)
    a = int(round(n * SPLIT_FRACTIONS[0]))
    b = int(round(n * (SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1])))
    return {"train": codes[:a], "validation": codes[a:b], "test": codes[b:]}


def _build(name: str, source: str, codes: dict[str, np.ndarray], as_bytes: bool) -> Corpus:
    """Map raw character / byte codes to dense ids over the sorted vocabulary of all splits."""
    for split in SPLITS:
        if len(codes[split]) < 2:
            raise ValueError(f"{source}: the {split} split has {len(codes[split])} characters; at least 2 are needed")
    if as_bytes:
        seen = np.zeros(256, dtype=bool)
        for array in codes.values():
            seen |= np.bincount(array, minlength=256) > 0
        vocab = np.flatnonzero(seen)
    else:
        vocab = np.unique(np.concatenate(list(codes.values())))
    dtype = np.uint8 if len(vocab) <= 256 else np.int32
    splits = {}
    digest = hashlib.sha256()
    digest.update(vocab.astype(np.int64).tobytes())
    for split in SPLITS:
        if as_bytes:
            lookup = np.zeros(256, dtype=dtype)
            lookup[vocab] = np.arange(len(vocab), dtype=dtype)
            ids = lookup[codes[split]]
        else:
            ids = np.searchsorted(vocab, codes[split]).astype(dtype)
        ids.flags.writeable = False
        digest.update(ids.tobytes())
        splits[split] = ids
    symbols = tuple(chr(int(c)) for c in vocab)
    return Corpus(name, source, symbols, splits, digest.hexdigest()[:16])


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def _load_stdlib() -> Corpus:
    text = stdlib_text()
    source = f"embedded: Python {sysconfig.get_python_version()} stdlib source ({len(text):,} characters)"
    return _build("stdlib", source, _split_by_fraction(_code_points(text)), as_bytes=False)


def _load_ptb(paths: list[Path]) -> Corpus:
    codes = {}
    for split, path in zip(SPLITS, paths):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as err:
            raise ValueError(f"{path}: not UTF-8 text ({err})") from err
        out = []
        for number, line in enumerate(lines, 1):
            tokens = line.split()
            joined = "".join(tokens)
            if len(joined) != len(tokens):
                raise ValueError(
                    f"{path}:{number}: tokens longer than one character; expected PTB char format "
                    "(characters separated by spaces, '_' between words)"
                )
            out.append(joined + "\n")
        codes[split] = _code_points("".join(out))
    return _build("ptb", str(paths[0].parent), codes, as_bytes=False)


def _load_text8(paths: list[Path]) -> Corpus:
    raw = np.frombuffer(_read_file_bytes(paths[0], "text8"), dtype=np.uint8)
    allowed = np.zeros(256, dtype=bool)
    allowed[np.frombuffer(TEXT8_ALPHABET, dtype=np.uint8)] = True
    counts = np.bincount(raw, minlength=256)
    if counts[~allowed].any():
        bad = int(np.flatnonzero(counts * ~allowed)[0])
        raise ValueError(f"{paths[0]}: byte {bad} is not in the text8 alphabet (a-z and space): not a text8 file")
    return _build("text8", str(paths[0]), _split_by_fraction(raw), as_bytes=True)


def _load_enwik8(paths: list[Path]) -> Corpus:
    raw = np.frombuffer(_read_file_bytes(paths[0], "enwik8"), dtype=np.uint8)
    return _build("enwik8", str(paths[0]), _split_by_fraction(raw), as_bytes=True)

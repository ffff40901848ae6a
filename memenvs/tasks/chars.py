"""Character-level language modelling on a text stream, scored in bits per character
(docs/tasks.md#character-streams)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from memenvs.core import (
    ReferenceScores,
    SequenceBatch,
    SequenceTask,
    check_choice,
    check_int,
    check_length,
    register_task,
)
from memenvs.data import SPLITS, Split
from memenvs.data import DatasetInfo
from memenvs.data.text import CORPORA, CorpusName, load_corpus

_CHUNK = 1 << 22  # characters per chunk when counting bigrams of a large split
_STATS: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def bits_per_character(cross_entropy_nats: float) -> float:
    """Convert a mean cross-entropy in nats per character to bits per character (CE / ln 2)."""
    return cross_entropy_nats / math.log(2)


class CharStreamTask(SequenceTask):
    """Next-character prediction on a text corpus (character-level language modelling).

    ## Description
    An episode is a window of ``seq_len + 1`` consecutive characters from the chosen split, drawn
    at a uniformly random start. At every step the input is one character and the target is the
    next one; every step is scored. The supervised metric is bits per character, the mean
    cross-entropy in nats divided by ln 2 (:func:`bits_per_character`; docs/tasks.md#character-streams).
    Corpora (see :mod:`memenvs.data.text`): character-level Penn Treebank, text8, enwik8 (bytes)
    from local files, or the embedded default, 2,000,000 characters of the Python standard
    library's own source (1.8M / 100k / 100k characters for train / validation / test; about 100
    symbols on Python 3.11).

    ## Observation Space
    One-hot ``Box(0, 1, (V,))`` (default) or ``Discrete(V)`` with ``obs_mode="index"``, where
    ``V = task.num_inputs`` is the corpus vocabulary size (``task.corpus.symbols`` decodes ids).

    ## Action Space
    ``Discrete(V)``: the predicted next character.

    ## Rewards
    ``1/seq_len`` per correctly predicted character, so the return is the window's accuracy.
    Text is not deterministic, so no policy reaches the nominal optimum 1 (the oracle bound);
    random scores ``1/V``; the memoryless reference is the exact expected accuracy of the best
    predictor from the current character alone (the most frequent successor), computed on the
    split with the window sampling's weights. :meth:`memoryless_bits_per_character` gives the
    same predictor's cross-entropy (the bigram conditional entropy), the baseline a model with
    memory must beat.

    ## Episode End
    Terminates after ``seq_len`` steps.

    ## Arguments
    - ``seq_len`` (int ≥ 1, default 150): steps per episode (the length knob). 150 is the NRU
      char-PTB truncated-BPTT length (docs/nru.md#experiments-and-settings).
    - ``split`` ("train" | "validation" | "test", default "train").
    - ``corpus`` ("auto" | "stdlib" | "ptb" | "text8" | "enwik8", default "auto"): "auto" uses the
      first of PTB / text8 / enwik8 found in ``data_dir`` or ``$MEMENVS_DATA``, else "stdlib".
    - ``data_dir`` (str | None, default None): where the corpus files are.

    Use :meth:`iterate` to evaluate on a whole split.

    ## Version History
    - v0: initial version.
    """

    input_kind = "symbols"
    target_kind = "class"
    length_knob = "seq_len"

    def __init__(
        self,
        seq_len: int = 150,
        split: Split = "train",
        corpus: CorpusName = "auto",
        data_dir: str | Path | None = None,
    ) -> None:
        self.seq_len = check_length("seq_len", seq_len)
        self.split = check_choice("split", split, SPLITS)
        check_choice("corpus", corpus, CORPORA)
        self.data_dir = None if data_dir is None else str(data_dir)
        self.corpus = load_corpus(corpus, data_dir)
        self.text = self.corpus.splits[self.split]
        if len(self.text) < self.seq_len + 1:
            raise ValueError(
                f"seq_len={self.seq_len} is too long for the {self.split} split of {self.corpus.name} "
                f"({len(self.text)} characters): allowed <= {len(self.text) - 1}"
            )
        self._store_kwargs(seq_len=self.seq_len, split=self.split, corpus=corpus, data_dir=self.data_dir)
        self.num_inputs = self.num_outputs = self.corpus.vocab_size
        self.max_length = self.seq_len

    @property
    def dataset(self) -> DatasetInfo:
        """The corpus this task reads (name, source, split sizes in characters)."""
        return self.corpus.info()

    # -- episodes --------------------------------------------------------------------------

    def sample(self, batch_size: int, rng: np.random.Generator) -> SequenceBatch:
        """``batch_size`` windows at uniform random starts in ``[0, n - seq_len - 1]``."""
        return self._windows(rng.integers(0, len(self.text) - self.seq_len, size=batch_size))

    def sample_each(self, rngs: Sequence[np.random.Generator]) -> SequenceBatch:
        """One window per generator (equal to ``sample(1, rng)`` each), laid out in one pass."""
        high = len(self.text) - self.seq_len
        return self._windows(np.array([rng.integers(0, high, size=1)[0] for rng in rngs], dtype=np.int64))

    def _windows(self, starts: np.ndarray) -> SequenceBatch:
        batch_size = len(starts)
        window = self.text[starts[None, :] + np.arange(self.seq_len + 1)[:, None]].astype(np.int64)
        return SequenceBatch(window[:-1], window[1:], np.ones((self.seq_len, batch_size), dtype=bool))

    def render_inputs(self, inputs: np.ndarray) -> list[tuple[str, str]]:
        """The text itself (newline as ``|``, tab as ``>``, other characters outside printable
        ASCII as ``~``)."""
        return [("in", self.render_targets(inputs))]

    def render_targets(self, values: np.ndarray) -> str:
        chars = np.array([_printable(c) for c in self.corpus.symbols] + ["~"])
        return "".join(chars[np.clip(np.asarray(values, dtype=np.int64).reshape(-1), 0, len(chars) - 1)])

    def iterate(self, split: Split | None = None, batch_size: int = 64) -> Iterator[SequenceBatch]:
        """Score every next-character of ``split`` (default: the task's split) exactly once.

        The split is cut into ``batch_size`` contiguous streams of equal length (the last
        ``(n - 1) % batch_size`` characters are dropped, as the usual ``batchify`` does) and
        yielded in chunks of ``seq_len`` steps; column ``b`` of each batch continues column ``b``
        of the previous one, so a harness may carry the recurrent state across batches (the
        standard BPC evaluation). The last chunk may be shorter.
        """
        split = check_choice("split", self.split if split is None else split, SPLITS)
        batch_size = check_int("batch_size", batch_size, low=1)
        text = self.corpus.splits[split]
        per_stream = (len(text) - 1) // batch_size
        if per_stream < 1:
            raise ValueError(f"batch_size={batch_size} is too large for the {split} split ({len(text)} characters)")
        offsets = np.arange(batch_size) * per_stream
        for start in range(0, per_stream, self.seq_len):
            steps = np.arange(start, min(start + self.seq_len, per_stream))
            positions = offsets[None, :] + steps[:, None]
            inputs = text[positions].astype(np.int64)
            targets = text[positions + 1].astype(np.int64)
            yield SequenceBatch(inputs, targets, np.ones(inputs.shape, dtype=bool))

    # -- reference policies ----------------------------------------------------------------

    def pair_counts(self) -> np.ndarray:
        """Expected count of each (current, next) pair in sampled windows, ``float [V, V]``.

        Pair ``p`` (``text[p] -> text[p+1]``) lies in the windows starting at
        ``max(0, p - seq_len + 1) .. min(p, n - seq_len - 1)``; it is weighted by their number,
        so statistics of the split equal expectations under :meth:`sample`.
        """
        return self._statistics()[0]

    def _statistics(self) -> tuple[np.ndarray, np.ndarray]:
        key = (self.corpus.fingerprint, self.split, self.seq_len)
        if key not in _STATS:
            V, n, L = self.corpus.vocab_size, len(self.text), self.seq_len
            last_start = n - L - 1
            counts = np.zeros(V * V, dtype=np.float64)
            for lo in range(0, n - 1, _CHUNK):
                hi = min(lo + _CHUNK, n - 1)
                p = np.arange(lo, hi)
                weights = np.minimum(p, last_start) - np.maximum(0, p - L + 1) + 1
                keys = self.text[lo:hi].astype(np.int64) * V + self.text[lo + 1 : hi + 1]
                counts += np.bincount(keys, weights=weights, minlength=V * V)
            counts = counts.reshape(V, V)
            _STATS[key] = (counts, counts.argmax(axis=1))
        return _STATS[key]

    def reference_scores(self) -> ReferenceScores:
        counts = self.pair_counts()
        return ReferenceScores(random=1.0 / self.num_outputs, memoryless=float(counts.max(axis=1).sum() / counts.sum()))

    def memoryless_prediction(self, inputs_t: np.ndarray, t: int) -> np.ndarray:
        """The most frequent successor of the current character."""
        return self._statistics()[1][np.asarray(inputs_t, dtype=np.int64)]

    def memoryless_bits_per_character(self) -> float:
        """Bits per character of the best memoryless predictor: ``H(next | current)`` in bits."""
        counts = self.pair_counts()
        rows = counts.sum(axis=1, keepdims=True)
        nz = counts > 0
        conditional = counts[nz] / np.broadcast_to(rows, counts.shape)[nz]
        return float(-(counts[nz] * np.log2(conditional)).sum() / counts.sum())


def _printable(char: str) -> str:
    """One printable ASCII character standing for a corpus symbol in rendered episodes."""
    if char == "\n":
        return "|"
    if char == "\t":
        return ">"
    return char if len(char) == 1 and " " <= char <= "~" else "~"


def _register() -> None:
    register_task("CharStream-v0", "memenvs.tasks.chars:CharStreamTask")


_register()

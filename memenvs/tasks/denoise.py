"""Denoising (Jing et al. 2017; docs/tasks.md#denoise): recall symbols scattered through a noisy stretch."""

from __future__ import annotations

import numpy as np

from memenvs.core import (
    DrawLayoutTask,
    ReferenceScores,
    SequenceBatch,
    check_length,
    check_symbols,
    register_task,
    uniform_integers,
)
from memenvs.render import symbol_text


class DenoiseTask(DrawLayoutTask):
    """Denoising: pick out ``length`` symbols hidden at random steps of a long blank stretch.

    ## Description
    The first ``delay`` steps are blanks into which ``length`` random data symbols are written at
    distinct random steps (in increasing order of position). Step ``delay`` shows a marker, then
    ``length`` blank steps follow, during which the model must output the data symbols in the
    order they appeared: ``delay + 1 + length`` steps in all. This is the NRU code's generator
    (docs/tasks.md#denoise). Unlike copy, the model cannot count steps from a fixed position: it must
    recognise and store each symbol whenever it arrives.

    Symbols: ``0`` is blank, ``1..alphabet`` are data symbols, ``alphabet + 1`` is the marker
    (input vocabulary ``alphabet + 2``, output ``alphabet + 1`` classes, as :class:`CopyTask`).

    ## Observation Space
    ``Box(0, 1, (alphabet + 2,))`` one-hot (default) or ``Discrete(alphabet + 2)`` with
    ``obs_mode="index"``.

    ## Action Space
    ``Discrete(alphabet + 1)``: the predicted symbol for the current step.

    ## Rewards
    Only the ``length`` recall steps after the marker are scored (the NRU code's loss mask); each
    correct symbol earns ``1/length``. References: random ``1/(alphabet + 1)``; memoryless
    ``1/alphabet`` (it knows when recall starts from the step index but not the symbols);
    optimal 1.

    ## Episode End
    Terminates after ``delay + 1 + length`` steps.

    ## Arguments
    - ``delay`` (int ≥ ``length``, default 100): T, the length of the noisy stretch.
    - ``length`` (int ≥ 1, default 10): number of symbols to recall.
    - ``alphabet`` (int ≥ 2, default 8): number of distinct data symbols.

    Episodes last at most ``MAX_EPISODE_LENGTH`` steps and use at most ``MAX_SYMBOLS`` symbols
    (:mod:`memenvs.core`); larger values are refused with the allowed range.

    ## Version History
    - v0: initial version.
    """

    length_knob = "delay"
    blank_symbol = 0

    def __init__(self, delay: int = 100, length: int = 10, alphabet: int = 8) -> None:
        self.length = check_length("length", length, fixed=1, per_unit=2)  # delay >= length
        self.delay = check_length("delay", delay, low=self.length, fixed=1 + self.length)
        self.alphabet = check_symbols("alphabet", alphabet, low=2, extra=2)
        self._store_kwargs(delay=self.delay, length=self.length, alphabet=self.alphabet)
        self.num_inputs = self.alphabet + 2
        self.num_outputs = self.alphabet + 1
        self.max_length = self.delay + 1 + self.length

    @property
    def marker(self) -> int:
        return self.alphabet + 1

    def render_inputs(self, inputs: np.ndarray) -> list[tuple[str, str]]:
        """Blanks as ``.``, data symbols as ``1..9 a..z ...``, the marker as ``>``."""
        return [("in", symbol_text(inputs, blank=0, special={self.marker: ">"}))]

    def _draw(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Data symbols ``[B, length]`` and their sorted distinct positions ``[B, length]``."""
        data = uniform_integers(rng, 1, self.alphabet + 1, (batch_size, self.length))
        # The first `length` entries of a uniform random permutation are a uniform random subset.
        keys = rng.random((batch_size, self.delay))
        positions = np.sort(np.argpartition(keys, self.length - 1, axis=1)[:, : self.length], axis=1)
        return data, positions

    def _episodes(self, data: np.ndarray, positions: np.ndarray) -> SequenceBatch:
        B, L = data.shape
        T = self.max_length
        inputs = np.zeros((T, B), dtype=np.int64)
        targets = np.zeros((T, B), dtype=np.int64)
        mask = np.zeros((T, B), dtype=bool)
        inputs[positions, np.arange(B)[:, None]] = data
        inputs[self.delay] = self.marker
        targets[self.delay + 1 :] = data.T
        mask[self.delay + 1 :] = True
        return SequenceBatch(inputs, targets, mask)

    def reference_scores(self) -> ReferenceScores:
        return ReferenceScores(random=1.0 / (self.alphabet + 1), memoryless=1.0 / self.alphabet)

    def memoryless_prediction(self, inputs_t: np.ndarray, t: int) -> np.ndarray:
        """Blank before recall, then a fixed data symbol (every guess scores ``1/alphabet``)."""
        return np.full(inputs_t.shape[0], 1 if t > self.delay else 0, dtype=np.int64)


def _register() -> None:
    task = "memenvs.tasks.denoise:DenoiseTask"
    register_task("Denoise-v0", task)
    register_task("DenoiseEasy-v0", task, delay=20)
    register_task("DenoiseMedium-v0", task, delay=100)
    register_task("DenoiseHard-v0", task, delay=500)


_register()

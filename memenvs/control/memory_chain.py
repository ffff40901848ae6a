"""Memory chain (bsuite's ``memory_len`` / ``memory_size`` experiments, Osband et al. 2020).

The observations do not depend on the agent's actions, so the task is a :class:`SequenceTask`:
``gym.make`` gives :class:`~memenvs.core.TaskEnv`, ``gym.make_vec`` the numpy-batched
:class:`~memenvs.core.TaskVectorEnv` (NEXT_STEP autoreset; env ``i`` seeded ``s`` replays the single
env seeded ``s + i``) and the supervised harness can train on ``sample()`` directly.
"""

from __future__ import annotations

import numpy as np

from memenvs.core import (
    MAX_EPISODE_VALUES,
    DrawLayoutTask,
    ReferenceScores,
    SequenceBatch,
    check_int,
    check_length,
    register_task,
)
from memenvs.render import symbol_text

#: Context bits drawn one row each by ``render()``; the rest are left out of the picture.
RENDERED_BITS = 16


class MemoryChainTask(DrawLayoutTask):
    """Memory chain: remember ``num_bits`` context bits over ``memory_length`` steps.

    ## Description
    At step 0 the agent sees ``num_bits`` random context bits. For the next ``memory_length``
    steps it sees only a clock; at the last step it is asked for one of the bits (chosen at
    random) and must answer it (bsuite's memory chain: ``memory_len`` varies the length with one
    bit, ``memory_size`` the number of bits at a fixed length).

    ## Observation Space
    ``Box(-1, 1, (1 + 2·num_bits,))``: ``[time_left, context (num_bits), query (num_bits)]``.
    ``time_left = 1 - t/memory_length`` counts down from 1 to 0; ``context`` holds the bits as
    ±1 at step 0 and zeros afterwards; ``query`` is the one-hot of the asked bit at the last step
    and zeros before.

    ## Action Space
    ``Discrete(2)``: the value of the asked bit (ignored before the last step).

    ## Rewards
    +1 for the right bit and -1 for the wrong one, at the last step only. Random and best
    memoryless: 0 (the asked bit is independent of everything the last observation shows);
    optimal: 1.

    ## Episode End
    Terminates after ``memory_length + 1`` steps.

    ## Arguments
    - ``memory_length`` (int ≥ 1, default 10): steps between the context and the query.
    - ``num_bits`` (int ≥ 1, default 1): context bits to remember.

    Episodes last at most ``MAX_EPISODE_LENGTH`` steps and hold at most ``MAX_EPISODE_VALUES``
    values (:mod:`memenvs.core`); larger values are refused with the allowed range.

    ## Version History
    - v0: initial version. bsuite encodes the query as a number in the observation; here it is a
      one-hot, and the context uses ±1 so that a 0 bit is distinguishable from "no context".
    """

    input_kind = "real"
    length_knob = "memory_length"
    input_low = -1.0
    input_high = 1.0

    def __init__(self, memory_length: int = 10, num_bits: int = 1) -> None:
        self.memory_length = check_length("memory_length", memory_length, fixed=1)
        # Each of the memory_length + 1 steps holds 1 + 2·num_bits input values, a target and the mask.
        most_bits = (MAX_EPISODE_VALUES // (self.memory_length + 1) - 3) // 2
        self.num_bits = check_int(
            "num_bits", num_bits, low=1, high=max(most_bits, 1),
            why=f"an episode holds at most MAX_EPISODE_VALUES={MAX_EPISODE_VALUES} values",
        )
        self._store_kwargs(memory_length=self.memory_length, num_bits=self.num_bits)
        self.num_inputs = 1 + 2 * self.num_bits
        self.num_outputs = 2
        self.max_length = self.memory_length + 1

    def _draw(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The random content of episodes: context bits ``[B, num_bits]``, asked bit ``[B]``.

        Both come from one generator call (uniforms thresholded / scaled), which keeps the vector
        env's per-env restarts cheap.
        """
        u = rng.random((batch_size, self.num_bits + 1))
        return (u[:, :-1] < 0.5).astype(np.int64), (u[:, -1] * self.num_bits).astype(np.int64)

    def _episodes(self, context: np.ndarray, query: np.ndarray) -> SequenceBatch:
        T, n, batch_size = self.max_length, self.num_bits, len(query)
        inputs = np.zeros((T, batch_size, self.num_inputs), dtype=np.float32)
        inputs[:, :, 0] = (1.0 - np.arange(T) / self.memory_length)[:, None]
        inputs[0, :, 1 : 1 + n] = 2 * context - 1
        inputs[-1, np.arange(batch_size), 1 + n + query] = 1.0
        targets = np.zeros((T, batch_size), dtype=np.int64)
        targets[-1] = context[np.arange(batch_size), query]
        mask = np.zeros((T, batch_size), dtype=bool)
        mask[-1] = True
        return SequenceBatch(inputs, targets, mask)

    def render_inputs(self, inputs: np.ndarray) -> list[tuple[str, str]]:
        """A row ``in`` (``c`` at the context step, the asked bit's index at the query step, ``.``
        between) and one row per context bit (its value at step 0, ``?`` at the query step if it
        is the one asked), for the first ``RENDERED_BITS`` bits."""
        n, bits = len(inputs), self.num_bits
        first = ["."] * n
        first[0] = "c"
        rows = [[" "] * n for _ in range(min(bits, RENDERED_BITS))]
        for k, row in enumerate(rows):
            row[0] = "1" if inputs[0, 1 + k] > 0 else "0"
        if n == self.max_length:
            asked = int(np.argmax(inputs[-1, 1 + bits :]))
            first[-1] = symbol_text([asked])
            if asked < len(rows):
                rows[asked][-1] = "?"
        return [("in", "".join(first))] + [(f"bit {k}", "".join(row)) for k, row in enumerate(rows)]

    def step_reward(self, prediction: np.ndarray, target: np.ndarray, scored_count: np.ndarray) -> np.ndarray:
        """+1 for the right bit, -1 for the wrong one (bsuite's reward)."""
        return np.where(prediction == target, 1.0, -1.0) / scored_count

    def reference_scores(self) -> ReferenceScores:
        return ReferenceScores(random=0.0, memoryless=0.0)

    def memoryless_prediction(self, inputs_t: np.ndarray, t: int) -> np.ndarray:
        """A fixed answer: without the context every answer is right half the time."""
        return np.zeros(inputs_t.shape[0], dtype=np.int64)


def _register() -> None:
    chain = "memenvs.control.memory_chain:MemoryChainTask"
    register_task("MemoryChain-v0", chain)
    register_task("MemoryChainEasy-v0", chain, memory_length=10, num_bits=1)
    register_task("MemoryChainMedium-v0", chain, memory_length=50, num_bits=4)
    register_task("MemoryChainHard-v0", chain, memory_length=200, num_bits=16)


_register()

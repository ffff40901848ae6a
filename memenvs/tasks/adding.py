"""Adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015 form; docs/tasks.md#adding)."""

from __future__ import annotations

import functools
import math

import numpy as np

from memenvs.core import DrawLayoutTask, ReferenceScores, SequenceBatch, check_length, register_task, uniform_integers
from memenvs.render import shade_text

#: Variance of the sum of two U[0, 1] values: the MSE of always predicting 1.0 (docs/tasks.md#adding).
BASELINE_MSE = 1.0 / 6.0


def clipped_reward(error: np.ndarray) -> np.ndarray:
    """``clip(1 - error² / (1/6), -1, 1)``: 1 for an exact sum, 0 at the baseline MSE."""
    return np.clip(1.0 - np.square(error) / BASELINE_MSE, -1.0, 1.0)


def _triangle_cdf(x: np.ndarray) -> np.ndarray:
    """CDF of ``U1 + U2 - 1`` (triangular on [-1, 1])."""
    x = np.clip(x, -1.0, 1.0)
    return np.where(x < 0, (1 + x) ** 2 / 2, 1 - (1 - x) ** 2 / 2)


@functools.cache
def random_policy_reward() -> float:
    """Expected clipped reward of a uniform random prediction in [0, 2] (the random policy).

    The error ``d = S - P`` with ``S = U1 + U2`` and ``P ~ U[0, 2]`` has the piecewise-quadratic
    density ``h(d) = (F(d + 1) - F(d - 1)) / 2`` (``F``: triangular CDF), and the reward is
    piecewise quadratic with kinks at ``|d| = 1/√3``; Gauss–Legendre with 5 nodes per smooth
    piece integrates the degree-4 product exactly.
    """
    nodes, weights = np.polynomial.legendre.leggauss(5)
    k = 1 / math.sqrt(3)
    breaks = [-2.0, -1.0, -k, 0.0, k, 1.0, 2.0]
    total = 0.0
    for a, b in zip(breaks[:-1], breaks[1:]):
        d = (b - a) / 2 * nodes + (a + b) / 2
        density = (_triangle_cdf(d + 1) - _triangle_cdf(d - 1)) / 2
        total += (b - a) / 2 * float(np.sum(weights * density * clipped_reward(d)))
    return total


#: Expected clipped reward of predicting 1.0 with the sum unseen: ``E[max(1 - 6e², -1)]`` for
#: triangular ``e = S - 1``. The unclipped mean is exactly 0; clipping below -1 adds
#: ``2∫_{1/√3}^{1} (6e² - 2)(1 - e) de = (8/√3 - 4)/3``.
BLIND_GUESS_REWARD = (8 / math.sqrt(3) - 4) / 3


class AddingTask(DrawLayoutTask):
    """Adding problem: output the sum of the two marked values of a long sequence.

    ## Description
    Each step shows two channels: a value drawn from U[0, 1) and a marker bit. Exactly one step
    in the first half (steps ``[0, seq_len//2)``) and one in the second half (``[seq_len//2,
    seq_len)``) are marked. At the last step the model must output the sum of the two marked
    values (docs/tasks.md#adding, the chrono paper's layout).

    ## Observation Space
    ``Box(0, 1, (2,), float32)``: ``[value, marker]``.

    ## Action Space
    ``Box(-1, 1, (1,), float32)``: the predicted sum minus one (the normalised action space SB3
    recommends; the sum lies in [0, 2]). The supervised view (``sample()``) uses the sum itself
    as the target.

    ## Rewards
    Only the last step is scored: ``clip(1 - err²/(1/6), -1, 1)`` with ``err`` the error of the
    predicted sum. The unclipped reward is one minus the MSE normalised by the trivial
    baseline's MSE 1/6 (always predicting 1.0), so 1 is exact and 0 is the baseline's MSE; the
    clip keeps returns in [-1, 1]. Because of the clip the baseline's expected reward is
    ``(8/√3 - 4)/3 ≈ 0.206`` rather than 0 (see ``BLIND_GUESS_REWARD``): report MSE from
    ``sample()`` when comparing with papers. References (exact): random (uniform action)
    ``random_policy_reward() ≈ -0.256``; memoryless: with probability ``1/(seq_len -
    seq_len//2)`` the second marker is on the last step, where the visible value plus 0.5
    scores 0.5 in expectation, otherwise the blind guess 1.0; optimal 1.

    ## Episode End
    Terminates after ``seq_len`` steps.

    ## Arguments
    - ``seq_len`` (int in [2, ``MAX_EPISODE_LENGTH``], default 200): T, the number of steps
      (chrono paper: 200 and 750).

    ## Version History
    - v0: initial version.
    """

    input_kind = "real"
    target_kind = "real"
    length_knob = "seq_len"
    input_low, input_high = 0.0, 1.0
    output_low, output_high = 0.0, 2.0

    def __init__(self, seq_len: int = 200) -> None:
        self.seq_len = check_length("seq_len", seq_len, low=2)
        self._store_kwargs(seq_len=self.seq_len)
        self.num_inputs = 2
        self.num_outputs = 1
        self.max_length = self.seq_len
        self.half = self.seq_len // 2

    def _draw(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Values ``[B, T]`` and the marked steps in the first and second half ``[B]`` each."""
        values = rng.random((batch_size, self.seq_len))
        first = uniform_integers(rng, 0, self.half, batch_size)
        second = uniform_integers(rng, self.half, self.seq_len, batch_size)
        return values, first, second

    def _episodes(self, values: np.ndarray, first: np.ndarray, second: np.ndarray) -> SequenceBatch:
        B, T = values.shape
        cols = np.arange(B)
        inputs = np.zeros((T, B, 2), dtype=np.float32)
        inputs[:, :, 0] = values.T
        inputs[first, cols, 1] = 1.0
        inputs[second, cols, 1] = 1.0
        targets = np.zeros((T, B, 1), dtype=np.float32)
        targets[-1, :, 0] = values[cols, first] + values[cols, second]
        mask = np.zeros((T, B), dtype=bool)
        mask[-1] = True
        return SequenceBatch(inputs, targets, mask)

    def render_inputs(self, inputs: np.ndarray) -> list[tuple[str, str]]:
        """The values as grey shades, and a row with ``^`` under the two marked steps."""
        marks = "".join("^" if m > 0.5 else " " for m in inputs[:, 1])
        return [("value", shade_text(inputs[:, 0], 0.0, 1.0)), ("mark", marks)]

    def step_reward(self, prediction: np.ndarray, target: np.ndarray, scored_count: np.ndarray) -> np.ndarray:
        """Clipped normalised squared error at the single scored step (see Rewards)."""
        error = np.asarray(prediction, dtype=np.float64) - target
        return clipped_reward(error).reshape(len(target), -1)[:, 0]

    def reference_scores(self) -> ReferenceScores:
        seen = 1.0 / (self.seq_len - self.half)
        memoryless = seen * 0.5 + (1 - seen) * BLIND_GUESS_REWARD
        return ReferenceScores(random=random_policy_reward(), memoryless=memoryless)

    def memoryless_prediction(self, inputs_t: np.ndarray, t: int) -> np.ndarray:
        """1.0 (the mean sum), or the visible marked value + 0.5 if the last step is marked."""
        pred = np.ones((inputs_t.shape[0], 1), dtype=np.float64)
        if t == self.seq_len - 1:
            marked = inputs_t[:, 1] > 0.5
            pred[marked, 0] = inputs_t[marked, 0] + 0.5
        return pred


def _register() -> None:
    task = "memenvs.tasks.adding:AddingTask"
    register_task("Adding-v0", task)
    register_task("AddingEasy-v0", task, seq_len=50)
    register_task("AddingMedium-v0", task, seq_len=200)
    register_task("AddingHard-v0", task, seq_len=750)


_register()

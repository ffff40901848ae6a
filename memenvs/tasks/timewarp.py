"""Time-warping task of the chrono paper (Tallec & Ollivier 2018; docs/chrono.md#experiments-and-settings A)."""

from __future__ import annotations

import math
from functools import cached_property
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

WarpMode = Literal["uniform", "variable"]


class TimeWarpTask(DrawLayoutTask):
    """Time warping: at every step, name the symbol before the current one in a warped sequence.

    ## Description
    A random sequence over ``alphabet`` symbols with no two consecutive symbols equal is warped
    in time: each symbol is held for a run of ``r`` steps, with ``r = max_warp`` for every symbol
    (``warp="uniform"``) or ``r`` drawn uniformly from ``{1..max_warp}`` per symbol
    (``warp="variable"``). With ``padding=True`` a symbol is shown once and the rest of its run
    is blank instead of repeating it. The warped sequence is cut to ``seq_len`` steps. The target
    at every step is the previous distinct symbol, i.e. the symbol of the previous run; during
    the first run there is none and the target is blank (``0``), as in the chrono reproduction's
    generator (``atremblay/chronoRNN``). A model must hold a symbol for up to ``2·max_warp``
    steps, so the task tests invariance to time warping: plain RNNs degrade as ``max_warp``
    grows, gated ones do not.

    Symbols: ``0`` is blank, ``1..alphabet`` are the symbols; inputs and outputs share these ids
    (``alphabet + 1`` of each).

    ## Observation Space
    ``Box(0, 1, (alphabet + 1,))`` one-hot (default) or ``Discrete(alphabet + 1)`` with
    ``obs_mode="index"``.

    ## Action Space
    ``Discrete(alphabet + 1)``: the predicted previous symbol (``0`` during the first run).

    ## Rewards
    Every step is scored (the paper's loss is averaged over all steps), ``1/seq_len`` per correct
    prediction. References: random ``1/(alphabet + 1)``; optimal 1; memoryless: computed exactly
    from the run-length distribution (:meth:`memoryless_accuracy`). Seeing the current symbol
    rules out one candidate (the previous symbol differs from it), so away from the first run a
    memoryless policy scores ``1/(alphabet - 1)`` on a symbol and ``1/alphabet`` on a blank;
    from the step index it can also tell how likely the first run still lasts (target blank).

    ## Episode End
    Terminates after ``seq_len`` steps.

    ## Arguments
    - ``seq_len`` (int > ``max_warp``, default 500): steps per episode (the paper's 500).
    - ``max_warp`` (int ≥ 1, default 50): longest run; the paper sweeps 10..100.
    - ``warp`` ("uniform" | "variable", default "variable"): fixed or random run lengths.
      Variable is the default because it is the setting that separates gated from leaky RNNs.
    - ``padding`` (bool, default False): blanks instead of repeats after each symbol.
    - ``alphabet`` (int ≥ 2, default 10): number of symbols (the paper's 10).

    Episodes last at most ``MAX_EPISODE_LENGTH`` steps and use at most ``MAX_SYMBOLS`` symbols
    (:mod:`memenvs.core`); larger values are refused with the allowed range.

    ## Version History
    - v0: initial version.
    """

    length_knob = "max_warp"
    blank_symbol = 0

    def __init__(
        self,
        seq_len: int = 500,
        max_warp: int = 50,
        warp: WarpMode = "variable",
        padding: bool = False,
        alphabet: int = 10,
    ) -> None:
        self.max_warp = check_length("max_warp", max_warp, fixed=1)  # seq_len > max_warp
        self.seq_len = check_length("seq_len", seq_len, low=self.max_warp + 1)
        self.warp = check_choice("warp", warp, ("uniform", "variable"))
        self.padding = check_bool("padding", padding)
        self.alphabet = check_symbols("alphabet", alphabet, low=2, extra=1)
        self._store_kwargs(
            seq_len=self.seq_len, max_warp=self.max_warp, warp=self.warp, padding=self.padding, alphabet=self.alphabet
        )
        self.num_inputs = self.alphabet + 1
        self.num_outputs = self.alphabet + 1
        self.max_length = self.seq_len
        # Enough runs to fill seq_len steps even if every run is as short as possible.
        shortest = self.max_warp if self.warp == "uniform" else 1
        self._runs = math.ceil(self.seq_len / shortest)

    def _draw(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Run symbols ``[B, K]`` (consecutive ones differ) and run lengths ``[B, K]``."""
        A, K = self.alphabet, self._runs
        first = uniform_integers(rng, 0, A, (batch_size, 1))
        shifts = uniform_integers(rng, 1, A, (batch_size, K - 1))  # a shift in 1..A-1 never repeats
        symbols = np.cumsum(np.concatenate([first, shifts], axis=1), axis=1) % A + 1
        if self.warp == "uniform":
            runs = np.full((batch_size, K), self.max_warp, dtype=np.int64)
        else:
            runs = uniform_integers(rng, 1, self.max_warp + 1, (batch_size, K))
        return symbols, runs

    def _episodes(self, symbols: np.ndarray, runs: np.ndarray) -> SequenceBatch:
        B, T = symbols.shape[0], self.seq_len
        starts = np.cumsum(runs, axis=1) - runs  # step at which each run begins
        is_start = np.zeros((B, T + 1), dtype=bool)
        rows = np.broadcast_to(np.arange(B)[:, None], starts.shape)
        is_start[rows, np.minimum(starts, T)] = True  # runs beyond T land in the spare column
        is_start = is_start[:, :T]
        run = np.cumsum(is_start, axis=1) - 1  # index of the run each step belongs to
        current = np.take_along_axis(symbols, run, axis=1)
        previous = np.take_along_axis(symbols, np.maximum(run - 1, 0), axis=1)
        inputs = np.where(is_start, current, 0) if self.padding else current
        targets = np.where(run >= 1, previous, 0)
        return SequenceBatch(inputs.T.astype(np.int64), targets.T.astype(np.int64), np.ones((T, B), dtype=bool))

    # -- memoryless reference ---------------------------------------------------------------

    @cached_property
    def _run_statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """``first[t] = P(step t is in the first run)`` and ``start[t] = P(a run starts at t)``.

        ``start`` is the renewal sequence of the run lengths: ``start[0] = 1`` and
        ``start[t] = Σ_r P(r) · start[t - r]``. With uniform warps every run lasts ``max_warp``
        steps (``start[t] = [t % max_warp == 0]``); with variable warps ``P(r) = 1/max_warp`` and
        the sum is a sliding window, ``start[t] = (S[t-1] - S[t-1-max_warp]) / max_warp`` with
        ``S`` the running sum of ``start``: linear time.
        """
        W, T = self.max_warp, self.seq_len
        t = np.arange(T)
        if self.warp == "uniform":
            first = (t < W).astype(np.float64)
            return first, (t % W == 0).astype(np.float64)
        first = np.clip(1.0 - t / W, 0.0, None)  # P(r > t) = 1 - t/W for t <= W
        start = [1.0]
        running = [0.0, 1.0]  # running[k] = start[0] + ... + start[k - 1]
        for step in range(1, T):
            value = (running[step] - running[max(step - W, 0)]) / W
            start.append(value)
            running.append(running[-1] + value)
        return first, np.array(start)

    @cached_property
    def _blank_guess(self) -> np.ndarray:
        """Per step, True if the best memoryless guess on an uninformative input is blank."""
        first, start = self._run_statistics
        A = self.alphabet
        if self.padding:
            return first >= (1.0 - first - start) / A
        return first >= (1.0 - first) / (A - 1)

    def memoryless_accuracy(self) -> np.ndarray:
        """Per-step probability that the best memoryless policy is right (exact).

        Repeat mode, step ``t`` showing a symbol: the target is blank with probability
        ``first[t]``, else uniform over the ``alphabet - 1`` other symbols, so the best guess
        scores ``max(first[t], (1 - first[t])/(alphabet - 1))``. Padding mode: step 0 is always
        right (blank); a blank at ``t ≥ 1`` is the first run (target blank) with probability
        ``first[t]`` or a later run (target uniform over ``alphabet``) with probability
        ``1 - first[t] - start[t]``; a symbol at ``t ≥ 1`` starts a later run (probability
        ``start[t]``; target one of the ``alphabet - 1`` others).
        """
        first, start = self._run_statistics
        A = self.alphabet
        if not self.padding:
            return np.maximum(first, (1.0 - first) / (A - 1))
        accuracy = np.maximum(first, (1.0 - first - start) / A) + start / (A - 1)
        accuracy[0] = 1.0
        return accuracy

    def reference_scores(self) -> ReferenceScores:
        return ReferenceScores(random=1.0 / (self.alphabet + 1), memoryless=float(self.memoryless_accuracy().mean()))

    def memoryless_prediction(self, inputs_t: np.ndarray, t: int) -> np.ndarray:
        """Blank while the first run is likely enough, else a symbol other than the one shown."""
        inputs_t = np.asarray(inputs_t, dtype=np.int64)
        other = inputs_t % self.alphabet + 1  # a symbol different from the current one
        if self.padding:
            blank_input = inputs_t == 0
            on_blank = 0 if self._blank_guess[t] else 1
            on_symbol = np.zeros_like(inputs_t) if t == 0 else other
            return np.where(blank_input, on_blank, on_symbol).astype(np.int64)
        return np.zeros_like(inputs_t) if self._blank_guess[t] else other


def _register() -> None:
    task = "memenvs.tasks.timewarp:TimeWarpTask"
    register_task("TimeWarp-v0", task)
    register_task("TimeWarpEasy-v0", task, max_warp=10)
    register_task("TimeWarpMedium-v0", task, max_warp=50)
    register_task("TimeWarpHard-v0", task, max_warp=100)


_register()

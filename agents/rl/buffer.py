"""Rollout buffers that hand out whole env-sequences instead of shuffled single steps.

SB3's :class:`~stable_baselines3.common.buffers.RolloutBuffer` already stores a rollout as
``[n_steps, n_envs, ...]`` arrays with per-step episode starts and computes GAE; the subclasses
here add one thing, the recurrent state of every env at the start of each chunk of ``seq_len``
steps, and replace :meth:`get` so that a minibatch is a group of chunks (env-sequences), time-major:

    observations [seq_len, N, *obs_shape]   episode_starts [seq_len, N]   states: batch N

The policy feeds them through ``cell(inputs[T, N, ...], state, resets=episode_starts)``, so an
episode that starts inside a chunk simply resets the state at that step: there is no per-episode
padding, no masking of padded steps, and no per-step Python loop outside the cell.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer

from agents.cells.base import State, cat_states, map_state, select_state
from memenvs.core import check_int


class SequenceSamples(NamedTuple):
    """One minibatch of ``N`` env-sequences of ``T = seq_len`` steps, time-major.

    ``observations`` is a tensor ``[T, N, *obs_shape]`` (a dict of them for Dict spaces);
    ``actions`` is ``[T, N, action_dim]``; the other arrays are ``[T, N]``. ``states`` is the
    policy's recurrent state before step 0 of each sequence (batch dimension ``N``).
    """

    observations: th.Tensor | dict[str, th.Tensor]
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
    episode_starts: th.Tensor
    states: State


def _time_major(array: np.ndarray, seq_len: int) -> np.ndarray:
    """``[n_steps, n_envs, ...]`` -> ``[seq_len, n_chunks * n_envs, ...]``; sequence index
    ``c * n_envs + e`` is chunk ``c`` of env ``e``."""
    n_steps, n_envs = array.shape[:2]
    chunks = array.reshape(n_steps // seq_len, seq_len, n_envs, *array.shape[2:])
    return chunks.swapaxes(0, 1).reshape(seq_len, -1, *array.shape[2:])


def check_seq_len(n_steps: int, seq_len: int | None) -> int:
    """``seq_len`` validated: None means the whole rollout (``n_steps``); it must divide
    ``n_steps`` because sequences are never padded."""
    seq_len = n_steps if seq_len is None else check_int("seq_len", seq_len, low=1)
    if n_steps % seq_len:
        raise ValueError(f"seq_len={seq_len} must divide n_steps={n_steps} (no padding is used)")
    return seq_len


class _SequenceMixin:
    """Chunk-start states and sequence minibatches, shared by the Box and Dict buffers (mixed in
    before SB3's :class:`RolloutBuffer` / :class:`DictRolloutBuffer`)."""

    buffer_size: int
    n_envs: int
    pos: int
    full: bool
    device: th.device
    observations: np.ndarray | dict[str, np.ndarray]

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        gae_lambda: float = 1.0,
        gamma: float = 0.99,
        n_envs: int = 1,
        seq_len: int | None = None,
    ) -> None:
        self.buffer_size = buffer_size
        self.n_envs = n_envs
        self.seq_len = check_seq_len(buffer_size, seq_len)
        self.n_chunks = self.buffer_size // self.seq_len
        self.n_sequences = self.n_chunks * self.n_envs
        super().__init__(  # type: ignore[call-arg]
            buffer_size, observation_space, action_space, device, gae_lambda, gamma, n_envs
        )

    def reset(self) -> None:
        super().reset()  # type: ignore[misc]
        self.chunk_states: list[State | None] = [None] * self.n_chunks

    def add(self, *args: Any, state: State | None = None, **kwargs: Any) -> None:
        """As SB3's ``add(obs, action, reward, episode_start, value, log_prob)``, plus the policy
        state *before* this step (required at the first step of each chunk)."""
        if self.pos % self.seq_len == 0:
            if state is None:
                raise ValueError("state is required for the first step of every chunk of seq_len steps")
            self.chunk_states[self.pos // self.seq_len] = map_state(lambda s: s.detach().clone(), state)
        super().add(*args, **kwargs)  # type: ignore[misc]

    def sequences_per_batch(self, batch_size: int | None) -> int:
        """Env-sequences per minibatch for a ``batch_size`` in steps (None: a quarter of the rollout)."""
        if batch_size is None:
            return max(1, self.n_sequences // 4)
        if batch_size % self.seq_len:
            raise ValueError(f"batch_size={batch_size} must be a multiple of seq_len={self.seq_len}")
        return batch_size // self.seq_len

    def get(self, batch_size: int | None = None) -> Generator[SequenceSamples, None, None]:  # type: ignore[override]
        """Yield minibatches of whole env-sequences in random order (``batch_size`` in steps, a
        multiple of ``seq_len``; the last minibatch may be smaller, as in SB3)."""
        assert self.full, "the rollout buffer must be full before sampling"
        per_batch = self.sequences_per_batch(batch_size)
        to_t = lambda a: th.as_tensor(_time_major(a, self.seq_len), device=self.device)  # noqa: E731
        if isinstance(self.observations, dict):
            obs: th.Tensor | dict[str, th.Tensor] = {k: to_t(v) for k, v in self.observations.items()}
        else:
            obs = to_t(self.observations)
        arrays = [to_t(a) for a in (self.actions, self.values, self.log_probs, self.advantages, self.returns)]
        starts = to_t(self.episode_starts).bool()
        states = cat_states(self.chunk_states)  # type: ignore[arg-type]
        order = np.random.permutation(self.n_sequences)
        for begin in range(0, self.n_sequences, per_batch):
            idx = th.as_tensor(order[begin : begin + per_batch], device=self.device)
            pick = lambda x: x[:, idx]  # noqa: E731
            batch_obs = {k: pick(v) for k, v in obs.items()} if isinstance(obs, dict) else pick(obs)
            yield SequenceSamples(batch_obs, *map(pick, arrays), pick(starts), select_state(states, idx))


class SequenceRolloutBuffer(_SequenceMixin, RolloutBuffer):
    """SB3 rollout buffer (Box / Discrete / MultiDiscrete / MultiBinary observations) that also
    keeps each env's recurrent state at the start of every ``seq_len`` chunk and yields whole
    env-sequences (see the module docstring).

    Args:
        buffer_size: ``n_steps`` per env and rollout.
        observation_space, action_space, device, gae_lambda, gamma, n_envs: as SB3's buffer.
        seq_len: steps per training sequence; must divide ``buffer_size``. None (default): the
            whole rollout, the fastest and the longest gradient path.
    """


class DictSequenceRolloutBuffer(_SequenceMixin, DictRolloutBuffer):
    """:class:`SequenceRolloutBuffer` for Dict observation spaces."""

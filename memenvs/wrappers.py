"""Observation wrappers shared by all memenvs ids.

:class:`PreviousAction` adds the previous action and an "is first step" flag to every
observation, for single envs; :class:`VectorPreviousAction` does the same for Gymnasium vector
envs (the native numpy ones included) without unbatching them. Many memory agents (R2D2,
POPGym's baselines, RL^2) feed the previous action back in; the flag tells the agent where an
episode starts, which the recurrent state cannot see once episodes are concatenated.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper

from memenvs.core import check_bool

ActionSpace = spaces.Discrete | spaces.Box | spaces.MultiDiscrete | spaces.MultiBinary
_FLAG = spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)


def _check_action_space(space: spaces.Space) -> None:
    if not isinstance(space, (spaces.Discrete, spaces.Box, spaces.MultiDiscrete, spaces.MultiBinary)):
        raise ValueError(
            f"action space {space} is not supported by PreviousAction: use Discrete, Box, MultiDiscrete or MultiBinary"
        )


def _blank_action(space: ActionSpace) -> Any:
    """The placeholder "previous action" before the first step: the lowest valid value."""
    if isinstance(space, spaces.Discrete):
        return np.int64(space.start)
    if isinstance(space, spaces.MultiDiscrete):
        return np.asarray(space.start, dtype=space.dtype).copy()
    if isinstance(space, spaces.MultiBinary):
        return np.zeros(space.shape, dtype=space.dtype)
    return np.clip(np.zeros(space.shape, dtype=space.dtype), space.low, space.high)


def _dict_space(obs_space: spaces.Space, action_space: ActionSpace) -> spaces.Dict:
    return spaces.Dict({"obs": obs_space, "prev_action": action_space, "is_first": _FLAG})


def _flat_space(obs_space: spaces.Space, action_space: ActionSpace) -> spaces.Box:
    """float32 Box of ``[flatten(obs), flatten(prev_action), is_first]`` (Discrete -> one-hot)."""
    parts = [spaces.flatten_space(obs_space), spaces.flatten_space(action_space), _FLAG]
    low = np.concatenate([p.low for p in parts]).astype(np.float32)
    high = np.concatenate([p.high for p in parts]).astype(np.float32)
    return spaces.Box(low, high, dtype=np.float32)


def _flat_obs(obs_space: spaces.Space, action_space: ActionSpace, obs: Any, prev: Any, first: bool) -> np.ndarray:
    """One flattened observation; the previous-action block is all zeros on the first step."""
    prev_vec = spaces.flatten(action_space, prev).astype(np.float32)
    if first:
        prev_vec[:] = 0.0
    obs_vec = spaces.flatten(obs_space, obs).astype(np.float32)
    return np.concatenate([obs_vec, prev_vec, np.array([float(first)], dtype=np.float32)])


def _flatten_batch(space: spaces.Space, batch: Any) -> np.ndarray:
    """``spaces.flatten`` of every row of a batch, ``[N, F]`` float32; vectorised for the common
    spaces, row by row otherwise."""
    if isinstance(space, (spaces.Box, spaces.MultiBinary)):
        return np.asarray(batch, dtype=np.float32).reshape(len(batch), -1)
    if isinstance(space, spaces.Discrete):
        return np.eye(space.n, dtype=np.float32)[np.asarray(batch) - space.start]
    if isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim == 1:
        offsets = np.asarray(batch) - space.start
        return np.concatenate([np.eye(n, dtype=np.float32)[offsets[:, j]] for j, n in enumerate(space.nvec)], axis=1)
    rows = gym.vector.utils.iterate(gym.vector.utils.batch_space(space, len(batch)), batch)
    return np.stack([spaces.flatten(space, row).astype(np.float32) for row in rows])


class PreviousAction(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Adds the previous action and an is-first-step flag to the observation.

    ## Observation Space
    ``flatten=False`` (default): ``Dict(obs=<env obs space>, prev_action=<env action space>,
    is_first=Box(0, 1, (1,)))``. On the first step ``prev_action`` is the action space's lowest
    value (0 for Discrete) and ``is_first`` is 1.

    ``flatten=True``: one float32 ``Box`` ``[flatten(obs), flatten(prev_action), is_first]``
    using Gymnasium's ``flatten`` (Discrete parts become one-hot). On the first step the
    previous-action block is all zeros, so "no action yet" is not confused with action 0.

    Rewards, termination and the action space are the wrapped env's.

    Args:
        env: any env with a Discrete, Box, MultiDiscrete or MultiBinary action space.
        flatten: return a flat Box instead of a Dict (for MLP / recurrent policies that take a
            single vector; SB3's ``MultiInputPolicy`` handles the Dict).
    """

    def __init__(self, env: gym.Env, flatten: bool = False) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, flatten=flatten)  # lets env.spec rebuild it
        gym.Wrapper.__init__(self, env)
        _check_action_space(env.action_space)
        self.flatten = check_bool("flatten", flatten)
        inner, actions = env.observation_space, env.action_space
        self.observation_space = _flat_space(inner, actions) if self.flatten else _dict_space(inner, actions)

    def _wrap(self, obs: Any, prev: Any, first: bool) -> Any:
        if self.flatten:
            return _flat_obs(self.env.observation_space, self.env.action_space, obs, prev, first)
        return {"obs": obs, "prev_action": prev, "is_first": np.array([float(first)], dtype=np.float32)}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return self._wrap(obs, _blank_action(self.env.action_space), True), info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        space = self.env.action_space
        prev = np.int64(action) if isinstance(space, spaces.Discrete) else np.asarray(action, dtype=space.dtype)
        return self._wrap(obs, prev, False), reward, terminated, truncated, info


class VectorPreviousAction(VectorWrapper):
    """:class:`PreviousAction` for a Gymnasium vector env with NEXT_STEP autoreset.

    Env ``i`` gets ``is_first = 1`` and a blank previous action on the observation that starts
    its episode: after ``reset()`` and on the step after it terminated or truncated (the step
    whose action NEXT_STEP autoreset ignores). Observations are the batched form of
    :class:`PreviousAction`'s (Dict of arrays, or a ``[num_envs, F]`` float32 array).

    Gymnasium's partial reset, ``reset(options={"reset_mask": mask})``, restarts only the envs in
    ``mask``; the others keep the observation of their last step (so the wrapper works through
    :class:`agents.rl.VectorEnvAdapter`, which restarts finished envs this way).

    Args:
        env: a vector env whose single action space is Discrete, Box, MultiDiscrete or
            MultiBinary and whose ``metadata["autoreset_mode"]`` is NEXT_STEP (the default).
        flatten: as :class:`PreviousAction`.
    """

    def __init__(self, env: VectorEnv, flatten: bool = False) -> None:
        super().__init__(env)
        mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if mode != AutoresetMode.NEXT_STEP:
            raise ValueError(f"autoreset_mode={mode!r} is not supported by VectorPreviousAction: use NEXT_STEP")
        _check_action_space(env.single_action_space)
        self.flatten = check_bool("flatten", flatten)
        inner, actions = env.single_observation_space, env.single_action_space
        self.single_observation_space = _flat_space(inner, actions) if self.flatten else _dict_space(inner, actions)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self._done = np.ones(self.num_envs, dtype=bool)
        # The previous-action and is-first fields last returned, kept for the envs that a partial
        # reset leaves running.
        self._prev = np.array([_blank_action(actions)] * self.num_envs, dtype=actions.dtype)
        self._first = np.ones(self.num_envs, dtype=bool)

    def _wrap(self, obs: Any, actions: Any, first: np.ndarray) -> Any:
        inner, action_space = self.env.single_observation_space, self.env.single_action_space
        blank = _blank_action(action_space)
        prev = np.array([blank if f else a for a, f in zip(actions, first)], dtype=action_space.dtype)
        self._prev, self._first = prev, first
        if self.flatten:
            prev_vec = _flatten_batch(action_space, prev) * ~first[:, None]
            parts = [_flatten_batch(inner, obs), prev_vec, first.astype(np.float32)[:, None]]
            return np.concatenate(parts, axis=1)
        return {"obs": obs, "prev_action": prev, "is_first": first.astype(np.float32)[:, None]}

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        mask = None if options is None else options.get("reset_mask")
        restarted = np.ones(self.num_envs, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        self._done[restarted] = False
        return self._wrap(obs, self._prev, self._first | restarted), info

    def step(self, actions: Any):
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        wrapped = self._wrap(obs, np.asarray(actions), self._done.copy())
        self._done = np.logical_or(terminated, truncated)
        return wrapped, rewards, terminated, truncated, info

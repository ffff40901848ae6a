"""Gymnasium 1.x vector envs as Stable-Baselines3 VecEnvs, and a ``make_vec_env`` that uses them.

The two APIs disagree on what happens when an episode ends:

- SB3 ``VecEnv`` (same-step reset): ``step`` returns the *first observation of the next episode*
  for a finished env, the last one in ``info["terminal_observation"]``, ``done = terminated or
  truncated`` and ``info["TimeLimit.truncated"] = truncated and not terminated``.
- Gymnasium ``VectorEnv`` (default NEXT_STEP autoreset, e.g. memenvs' numpy vector envs): ``step``
  returns the terminal observation; the env restarts at the *next* ``step`` call, which ignores
  that env's action and returns the reset observation with reward 0.

:class:`VectorEnvAdapter` turns either autoreset mode into SB3's. For NEXT_STEP (and DISABLED)
envs it restarts finished envs immediately with Gymnasium's partial reset,
``reset(options={"reset_mask": done})`` (supported by ``SyncVectorEnv``, ``AsyncVectorEnv`` and
memenvs' vector envs), so no step is wasted and every env keeps its own random stream: env ``i``
seeded with ``s + i`` replays the episodes of a single env in SB3's ``DummyVecEnv`` seeded the same.
SAME_STEP envs report the terminal observation in ``info["final_obs"]``, which is passed on.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv
from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
from stable_baselines3.common.vec_env import VecEnv, VecMonitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from memenvs.core import check_choice, check_int


def _index(obs: Any, i: int) -> Any:
    """Observation of env ``i`` (a copy) from a batched array, a dict of arrays, or an object
    array of single observations (SAME_STEP's ``final_obs``)."""
    if isinstance(obs, dict):
        return {k: np.array(v[i]) for k, v in obs.items()}
    item = obs[i]
    if isinstance(item, dict):
        return {k: np.array(v) for k, v in item.items()}
    return np.array(item)


def _put(obs: Any, source: Any, mask: np.ndarray) -> Any:
    """``obs`` with the envs in ``mask`` taken from ``source`` (both batched)."""
    if isinstance(obs, dict):
        return {k: _put(v, source[k], mask) for k, v in obs.items()}
    out = np.array(obs, copy=True)
    out[mask] = source[mask]
    return out


def _same(a: Any, b: Any, mask: np.ndarray) -> bool:
    if isinstance(a, dict):
        return all(_same(a[k], b[k], mask) for k in a)
    return bool(np.array_equal(np.asarray(a)[mask], np.asarray(b)[mask]))


def _consecutive(seeds: list[Any]) -> bool:
    """True for ``[s, s + 1, ..., s + n - 1]`` (integers, numpy ones included)."""
    return all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in seeds) and all(
        int(b) - int(a) == 1 for a, b in zip(seeds, seeds[1:])
    )


def split_info(info: dict[str, Any], num_envs: int) -> list[dict[str, Any]]:
    """Gymnasium's vector info (``{key: values, "_key": mask}``, nested for dicts) as SB3's list
    of per-env dicts."""
    out: list[dict[str, Any]] = [{} for _ in range(num_envs)]
    for key, value in info.items():
        if key.startswith("_"):
            continue
        mask = info.get(f"_{key}", np.ones(num_envs, dtype=bool))
        parts = split_info(value, num_envs) if isinstance(value, dict) else None
        for i in np.flatnonzero(mask):
            out[i][key] = parts[i] if parts is not None else value[i]
    return out


class VectorEnvAdapter(VecEnv):
    """A Gymnasium ``VectorEnv`` (any autoreset mode) seen as an SB3 ``VecEnv``.

    Args:
        venv: the Gymnasium vector env. NEXT_STEP and DISABLED envs must support partial resets
            (``reset(options={"reset_mask": mask})``); the adapter checks after each partial reset
            that the envs it did not reset kept their observation, and raises otherwise.

    ``get_attr`` / ``env_method`` reach the sub-envs of ``SyncVectorEnv`` / ``AsyncVectorEnv``; for
    other vector envs they read the vector env itself (the same value for every index).
    """

    def __init__(self, venv: VectorEnv) -> None:
        if not isinstance(venv, VectorEnv):
            raise ValueError(f"venv={venv!r} must be a gymnasium.vector.VectorEnv")
        self.venv = venv
        self.autoreset_mode = AutoresetMode(venv.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP))
        self._actions: np.ndarray | None = None
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)

    # -- VecEnv API -----------------------------------------------------------------------------

    def reset(self) -> VecEnvObs:
        seeds: int | list[int | None] | None = None if all(s is None for s in self._seeds) else list(self._seeds)
        if isinstance(seeds, list) and _consecutive(seeds):
            # Gymnasium's convention (SyncVectorEnv, memenvs): an int seed s seeds env i with s + i;
            # some vector envs (e.g. CartPole's) accept only an int.
            seeds = int(seeds[0])
        options = self._options[0] if all(o == self._options[0] for o in self._options) else None
        if options is None:
            raise ValueError("per-env reset options differ; a Gymnasium vector env takes one options dict")
        obs, info = self.venv.reset(seed=seeds, options=dict(options) or None)
        self.reset_infos = split_info(info, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, terminated, truncated, info = self.venv.step(self._actions)
        terminated, truncated = np.asarray(terminated, dtype=bool), np.asarray(truncated, dtype=bool)
        dones = terminated | truncated
        done_envs = np.flatnonzero(dones)
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            # obs already holds the new episodes; the ended ones are in info["final_obs"].
            info = dict(info)
            final_obs = info.pop("final_obs", None)
            final_info = info.pop("final_info", {})
            info.pop("_final_obs", None)
            info.pop("_final_info", None)
            infos = split_info(info, self.num_envs)
            finals = split_info(final_info, self.num_envs)
            for i in done_envs:
                self.reset_infos[i], infos[i] = infos[i], finals[i]
                infos[i]["terminal_observation"] = _index(final_obs, i)
        else:
            infos = split_info(info, self.num_envs)
            if done_envs.size:
                for i in done_envs:
                    infos[i]["terminal_observation"] = _index(obs, i)
                new_obs, reset_info = self.venv.reset(options={"reset_mask": dones.copy()})
                if not _same(new_obs, obs, ~dones):
                    raise RuntimeError(
                        f"{type(self.venv).__name__} ignored reset(options={{'reset_mask': ...}}) and restarted envs "
                        "whose episode had not ended; it needs partial resets to be used as an SB3 VecEnv"
                    )
                obs = _put(obs, new_obs, dones)
                reset_infos = split_info(reset_info, self.num_envs)
                for i in done_envs:
                    self.reset_infos[i] = reset_infos[i]
        for i in done_envs:
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, np.asarray(rewards, dtype=np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    def _sub_envs(self) -> bool:
        return isinstance(self.venv, (SyncVectorEnv, AsyncVectorEnv))

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        idx = list(self._get_indices(indices))
        if self._sub_envs():
            values = self.venv.get_attr(attr_name)
            return [values[i] for i in idx]
        return [getattr(self.venv, attr_name)] * len(idx)

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        if self._sub_envs():
            idx = list(self._get_indices(indices))
            values = list(self.venv.get_attr(attr_name))
            for i in idx:
                values[i] = value
            self.venv.set_attr(attr_name, values)
        else:
            setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any) -> list[Any]:
        idx = list(self._get_indices(indices))
        if self._sub_envs():
            values = self.venv.call(method_name, *method_args, **method_kwargs)
            return [values[i] for i in idx]
        return [getattr(self.venv, method_name)(*method_args, **method_kwargs)] * len(idx)

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        idx = list(self._get_indices(indices))
        if isinstance(self.venv, SyncVectorEnv):
            from stable_baselines3.common.env_util import is_wrapped

            return [is_wrapped(self.venv.envs[i], wrapper_class) for i in idx]
        return [False] * len(idx)

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None] * self.num_envs


def has_native_vector_env(env_id: str) -> bool:
    """True if ``env_id`` registers a ``vector_entry_point`` (a batched implementation)."""
    return gym.spec(env_id).vector_entry_point is not None


def _adapter_ready(env_id: str) -> bool:
    """True if ``env_id``'s vector env is known to meet :class:`VectorEnvAdapter`'s needs (partial
    resets, per-env seeds): memenvs' own. Others (e.g. Gymnasium's ``CartPole-v1``, whose vector
    env restarts every env on any reset) run as single envs unless asked with ``native=True``."""
    return has_native_vector_env(env_id) and gym.spec(env_id).namespace == "memenvs"


def make_vec_env(
    env_id: str,
    n_envs: int = 1,
    seed: int | None = None,
    native: bool | None = None,
    previous_action: str | None = None,
    **env_kwargs: Any,
) -> VecEnv:
    """An SB3 VecEnv of ``n_envs`` copies of ``env_id`` with episode statistics (``VecMonitor``).

    Args:
        env_id: a registered id; memenvs ids are registered on import (``"memenvs/TMaze-v0"``; short
            memenvs names such as ``"copy"`` also work).
        n_envs: number of parallel envs.
        seed: env ``i`` is seeded with ``seed + i`` at the first reset (as SB3's ``make_vec_env``).
        native: use the id's numpy-batched vector env through :class:`VectorEnvAdapter` (True),
            or single envs in SB3's ``DummyVecEnv`` (False). None (default): native for memenvs
            ids with a ``vector_entry_point``, single envs for all others (other vector envs may
            not support the partial resets the adapter needs). Both give the same episodes for
            the same seed.
        previous_action: add the previous action and an is-first-step flag to every observation
            (:class:`memenvs.wrappers.PreviousAction`, or :class:`~memenvs.wrappers.VectorPreviousAction`
            on a native vector env): ``"dict"`` (a Dict observation, for ``MultiInputCellPolicy``)
            or ``"flat"`` (one float32 Box); None (default) leaves observations alone.
        **env_kwargs: the env's keyword arguments (e.g. ``corridor_length=10``).
    """
    import memenvs
    from memenvs.wrappers import PreviousAction, VectorPreviousAction

    n_envs = check_int("n_envs", n_envs, low=1)
    check_choice("previous_action", previous_action, (None, "dict", "flat"))
    flatten = previous_action == "flat"
    if env_id not in gym.registry:
        env_id = memenvs.resolve_id(env_id)
    if native is None:
        native = _adapter_ready(env_id)
    if native:
        if not has_native_vector_env(env_id):
            raise ValueError(f"native=True but {env_id} has no vector_entry_point")
        venv = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="vector_entry_point", **env_kwargs)
        if previous_action is not None:
            venv = VectorPreviousAction(venv, flatten=flatten)
        vec_env: VecEnv = VecMonitor(VectorEnvAdapter(venv))
    else:
        # A callable, not the id: SB3 would add render_mode='rgb_array', which memenvs rejects.
        vec_env = sb3_make_vec_env(
            partial(gym.make, env_id),
            n_envs=n_envs,
            env_kwargs=env_kwargs,
            wrapper_class=None if previous_action is None else PreviousAction,
            wrapper_kwargs={"flatten": flatten},
        )
    if seed is not None:
        vec_env.seed(seed)
    return vec_env

"""VectorEnvAdapter: Gymnasium vector envs behave exactly like SB3's DummyVecEnv of single envs."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers import TimeLimit
from stable_baselines3.common.vec_env import DummyVecEnv

import memenvs  # noqa: F401  (registers the ids)
from agents.rl import VectorEnvAdapter, make_vec_env, split_info
from memenvs.control.tmaze import TMazeVectorEnv


class CountingEnv(gym.Env):
    """Observation ``[x, t]`` with ``x`` drawn at reset; action 1 ends the episode from step 3 on.
    Wrapped in ``TimeLimit(4)`` it mixes terminations and truncations."""

    observation_space = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.t, self.x = 0, float(self.np_random.uniform())
        return self._obs(), {"x": self.x}

    def _obs(self) -> np.ndarray:
        return np.array([self.x, self.t], dtype=np.float32)

    def step(self, action):
        self.t += 1
        return self._obs(), float(action), bool(action == 1 and self.t >= 3), False, {"t": self.t}


def counting(max_steps: int = 4) -> gym.Env:
    return TimeLimit(CountingEnv(), max_episode_steps=max_steps)


def run(vec_env, actions: np.ndarray, seed: int) -> list[tuple]:
    vec_env.seed(seed)
    out = [(vec_env.reset(),)]
    for a in actions:
        obs, rewards, dones, infos = vec_env.step(a)
        ends = [
            (i, info["terminal_observation"].tolist(), info["TimeLimit.truncated"], info.get("episode", {}).get("r"))
            for i, info in enumerate(infos)
            if dones[i]
        ]
        out.append((obs, rewards, dones, ends))
    return out


def assert_same(a: list[tuple], b: list[tuple]) -> None:
    assert len(a) == len(b)
    for step_a, step_b in zip(a, b):
        for x, y in zip(step_a, step_b):
            if isinstance(x, np.ndarray):
                np.testing.assert_array_equal(x, y)
            else:
                assert x == y


@pytest.mark.parametrize(
    "env_id,kwargs,n_actions",
    [
        ("memenvs/TMaze-v0", {"corridor_length": 2}, 4),  # lengths depend on the actions
        ("memenvs/Copy-v0", {"delay": 2, "length": 1, "alphabet": 3}, 4),
        ("memenvs/MemoryChain-v0", {"memory_length": 3}, 2),
    ],
)
def test_native_adapter_matches_dummy_vec_env(env_id: str, kwargs: dict, n_actions: int) -> None:
    rng = np.random.default_rng(0)
    actions = rng.integers(0, n_actions, size=(40, 3))
    native = make_vec_env(env_id, n_envs=3, native=True, **kwargs)
    single = make_vec_env(env_id, n_envs=3, native=False, **kwargs)
    assert isinstance(native.unwrapped, VectorEnvAdapter) and isinstance(single.unwrapped, DummyVecEnv)
    got, want = run(native, actions, seed=7), run(single, actions, seed=7)
    assert any(len(step[3]) for step in want[1:])  # episodes ended during the run
    assert_same(got, want)
    assert native.get_attr("reference")[0] == single.get_attr("reference")[0]


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_gymnasium_sync_vector_env_with_truncation(mode: AutoresetMode) -> None:
    actions = np.random.default_rng(1).integers(0, 2, size=(30, 3))
    adapter = VectorEnvAdapter(SyncVectorEnv([counting] * 3, autoreset_mode=mode))
    got, want = run(adapter, actions, seed=3), run(DummyVecEnv([counting] * 3), actions, seed=3)
    truncations = [end[2] for step in want[1:] for end in step[3]]
    assert any(truncations) and not all(truncations)  # both kinds of episode end happened
    assert_same(got, want)
    # the reset info of a restarted env is kept as in DummyVecEnv
    assert adapter.reset_infos[0]["x"] == pytest.approx(float(got[-1][0][0, 0]))


def test_env_that_ignores_partial_reset_is_rejected() -> None:
    class FullResetOnly(TMazeVectorEnv):
        def reset(self, *, seed=None, options=None):
            return super().reset(seed=seed)

    adapter = VectorEnvAdapter(FullResetOnly(num_envs=2, corridor_length=3))
    adapter.reset()
    with pytest.raises(RuntimeError, match="reset_mask"):
        for _ in range(8):  # env 0 walks forward and turns; env 1 stays mid-corridor
            adapter.step(np.array([0, 1]) if _ < 3 else np.array([2, 1]))


def test_split_info_handles_masks_and_nested_dicts() -> None:
    info = {
        "a": np.array([1, 2, 3]),
        "_a": np.array([True, False, True]),
        "final_info": {"b": np.array([0.5, 0.0, 0.0]), "_b": np.array([True, False, False])},
        "_final_info": np.array([True, False, False]),
    }
    assert split_info(info, 3) == [{"a": 1, "final_info": {"b": 0.5}}, {}, {"a": 3}]


def test_make_vec_env_arguments() -> None:
    with pytest.raises(ValueError, match="n_envs=0"):
        make_vec_env("memenvs/TMaze-v0", n_envs=0)
    with pytest.raises(ValueError, match="unknown task"):
        make_vec_env("NoSuchEnv-v9")
    with pytest.raises(ValueError, match="native=True"):
        make_vec_env("Pendulum-v1", native=True)
    vec = make_vec_env("tmaze", n_envs=2, corridor_length=3)  # short memenvs names resolve
    assert vec.num_envs == 2 and vec.get_attr("corridor_length") == [3, 3]


def test_gymnasium_ids_with_their_own_vector_env_use_single_envs_by_default() -> None:
    # CartPole-v1 registers a vector_entry_point whose reset takes only an int seed and restarts
    # every env (no partial reset): make_vec_env must not route it through the adapter by default.
    vec = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    assert isinstance(vec.unwrapped, DummyVecEnv)
    vec.reset()
    dones = [vec.step(np.array([0, 1]))[2] for _ in range(60)]
    assert np.any(dones)  # episodes ended and restarted without an error


def test_adapter_passes_consecutive_seeds_as_one_int() -> None:
    # Gymnasium's convention: reset(seed=s) seeds sub-env i with s + i, and some vector envs
    # (CartPoleVectorEnv) accept only an int.
    seen: list = []

    class IntSeedOnly(TMazeVectorEnv):
        def reset(self, *, seed=None, options=None):
            seen.append(seed)
            if seed is not None and not isinstance(seed, int):
                raise TypeError("Seed must be a python integer")
            return super().reset(seed=seed, options=options)

    adapter = VectorEnvAdapter(IntSeedOnly(num_envs=3, corridor_length=3))
    adapter.seed(5)
    first = adapter.reset()
    assert seen == [5]
    reference = VectorEnvAdapter(TMazeVectorEnv(num_envs=3, corridor_length=3))
    reference.seed(5)
    np.testing.assert_array_equal(first, reference.reset())

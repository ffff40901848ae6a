"""PreviousAction / VectorPreviousAction: contents of the added fields, API checks, vector == single."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import memenvs  # noqa: F401  (registers the ids)
from memenvs.wrappers import PreviousAction, VectorPreviousAction


@pytest.mark.parametrize("flatten", [False, True])
def test_check_env_gymnasium_and_sb3(flatten):
    for env_id in ("memenvs/TMaze-v0", "memenvs/RepeatPrevious-v0"):
        env = PreviousAction(gym.make(env_id, disable_env_checker=True).unwrapped, flatten=flatten)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            # The only justified warning: the checker notes that it is checking a wrapper.
            warnings.filterwarnings("ignore", message=".*different from the unwrapped version")
            gym_check_env(env, skip_render_check=True)
            sb3_check_env(env, warn=True)


def test_dict_observation_carries_previous_action_and_first_flag():
    env = PreviousAction(gym.make("memenvs/TMaze-v0", corridor_length=3))
    plain = gym.make("memenvs/TMaze-v0", corridor_length=3)
    obs, _ = env.reset(seed=4)
    np.testing.assert_array_equal(obs["obs"], plain.reset(seed=4)[0])
    assert obs["prev_action"] == 0 and obs["is_first"][0] == 1.0
    for action in (1, 0, 2, 0):
        obs, reward, *_ = env.step(action)
        inner, inner_reward, *_ = plain.step(action)
        np.testing.assert_array_equal(obs["obs"], inner)
        assert obs["prev_action"] == action and obs["is_first"][0] == 0.0 and reward == inner_reward
        assert env.observation_space.contains(obs)
    obs, _ = env.reset()
    assert obs["is_first"][0] == 1.0 and obs["prev_action"] == 0


def test_flat_observation_layout_discrete_action():
    env = PreviousAction(gym.make("memenvs/TMaze-v0", corridor_length=3), flatten=True)
    assert env.observation_space.shape == (3 + 4 + 1,) and env.observation_space.dtype == np.float32
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs[3:], [0, 0, 0, 0, 1])  # no previous action yet (not action 0)
    obs, *_ = env.step(2)
    np.testing.assert_array_equal(obs[3:], [0, 0, 1, 0, 0])
    obs, *_ = env.step(0)
    np.testing.assert_array_equal(obs[3:], [1, 0, 0, 0, 0])


def test_flat_observation_box_action_and_discrete_observation():
    env = PreviousAction(gym.make("Pendulum-v1"), flatten=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3 + 1 + 1,) and obs[-1] == 1.0 and obs[3] == 0.0
    obs, *_ = env.step(np.array([1.5], dtype=np.float32))
    assert obs[3] == pytest.approx(1.5) and obs[-1] == 0.0
    assert env.observation_space.contains(obs)
    cards = PreviousAction(gym.make("memenvs/RepeatPrevious-v0", obs_mode="index"), flatten=True)
    obs, _ = cards.reset(seed=0)
    suit = gym.make("memenvs/RepeatPrevious-v0", obs_mode="index").reset(seed=0)[0]
    np.testing.assert_array_equal(obs[:4], np.eye(4)[suit])  # Discrete observation -> one-hot


def test_dict_box_action_blank_is_inside_the_space():
    env = PreviousAction(gym.make("MountainCarContinuous-v0"))
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


def test_unsupported_action_space_and_bad_flag():
    class TupleActions(gym.Env):
        observation_space = spaces.Box(0, 1, (1,))
        action_space = spaces.Tuple((spaces.Discrete(2), spaces.Discrete(2)))

    with pytest.raises(ValueError, match="action space"):
        PreviousAction(TupleActions())
    with pytest.raises(ValueError, match="flatten"):
        PreviousAction(gym.make("memenvs/TMaze-v0"), flatten="yes")
    same_step = gym.make_vec("memenvs/TMaze-v0", num_envs=2, vectorization_mode="sync",
                             vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})
    with pytest.raises(ValueError, match="autoreset_mode"):
        VectorPreviousAction(same_step)


@pytest.mark.parametrize("flatten", [False, True])
def test_vector_wrapper_equals_wrapped_single_envs(flatten):
    """Across NEXT_STEP autoresets: is_first = 1 and a blank previous action on each new episode."""
    n, seed, kw = 3, 7, {"corridor_length": 1, "max_steps": 3}
    vec = VectorPreviousAction(gym.make_vec("memenvs/TMaze-v0", num_envs=n, **kw), flatten=flatten)
    singles = [PreviousAction(gym.make("memenvs/TMaze-v0", **kw), flatten=flatten) for _ in range(n)]

    def row(obs, i):
        return obs[i] if flatten else {k: v[i] for k, v in obs.items()}

    def assert_same(a, b):
        if flatten:
            np.testing.assert_array_equal(a, b)
        else:
            for key in ("obs", "prev_action", "is_first"):
                np.testing.assert_array_equal(a[key], b[key])

    obs, _ = vec.reset(seed=seed)
    assert vec.observation_space.contains(obs)
    for i, env in enumerate(singles):
        assert_same(row(obs, i), env.reset(seed=seed + i)[0])
    rng = np.random.default_rng(0)
    done = np.zeros(n, dtype=bool)
    starts = 0
    for _ in range(30):
        actions = rng.integers(0, 4, size=n)
        obs, rewards, terminated, truncated, _ = vec.step(actions)
        for i, env in enumerate(singles):
            expected = env.reset()[0] if done[i] else env.step(actions[i])[0]
            starts += int(done[i])
            assert_same(row(obs, i), expected)
        done = terminated | truncated
    assert starts >= 3  # the autoreset path was exercised


@pytest.mark.parametrize("previous_action", ["dict", "flat"])
@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [("memenvs/TMaze-v0", {"corridor_length": 1, "max_steps": 3}), ("memenvs/VariableCopy-v0", {"max_delay": 4, "length": 1})],
)
def test_vector_wrapper_through_the_sb3_adapter_equals_dummy_vec_env(env_id, kwargs, previous_action):
    """VectorEnvAdapter restarts finished envs with partial resets (``reset_mask``): the wrapped
    native vector env then gives SB3 exactly what a DummyVecEnv of PreviousAction envs gives."""
    from agents.rl import VectorEnvAdapter, make_vec_env

    n, seed = 3, 11
    native = make_vec_env(env_id, n_envs=n, seed=seed, native=True, previous_action=previous_action, **kwargs)
    dummy = make_vec_env(env_id, n_envs=n, seed=seed, native=False, previous_action=previous_action, **kwargs)
    assert isinstance(native.venv, VectorEnvAdapter) and isinstance(native.venv.venv, VectorPreviousAction)
    assert native.observation_space == dummy.observation_space

    def assert_same(a, b):
        for key in a if isinstance(a, dict) else [None]:
            np.testing.assert_array_equal(a if key is None else a[key], b if key is None else b[key])

    assert_same(native.reset(), dummy.reset())
    rng = np.random.default_rng(0)
    ends, partial_resets = np.zeros(n, dtype=int), 0
    for _ in range(40):
        actions = rng.integers(0, native.action_space.n, size=n)
        obs, rewards, dones, infos = native.step(actions)
        d_obs, d_rewards, d_dones, d_infos = dummy.step(actions)
        assert_same(obs, d_obs)
        np.testing.assert_array_equal(rewards, d_rewards)
        np.testing.assert_array_equal(dones, d_dones)
        for i in np.flatnonzero(dones):
            assert_same(infos[i]["terminal_observation"], d_infos[i]["terminal_observation"])
            assert infos[i]["episode"]["r"] == d_infos[i]["episode"]["r"]
        ends += dones
        partial_resets += int(dones.any() and not dones.all())
    assert ends.min() >= 2 and partial_resets >= 2  # envs ended at different steps


def test_make_vec_env_rejects_an_unknown_previous_action_mode():
    from agents.rl import make_vec_env

    with pytest.raises(ValueError, match="previous_action='onehot'.*'dict', 'flat'"):
        make_vec_env("memenvs/TMaze-v0", n_envs=1, previous_action="onehot")

"""T-maze, memory chain and stateless CartPole: API checks, seeding, vector == single, references."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import memenvs
from memenvs.control.memory_chain import MemoryChainTask
from memenvs.control.tmaze import TMazeVectorEnv, random_policy_return
from memenvs.core import TaskVectorEnv
from helpers import run_episode

FAMILIES = ("TMaze", "MemoryChain", "StatelessCartPole", "NoisyStatelessCartPole")
IDS = [i for i in memenvs.list_ids() if i.split("/")[1].rsplit("-v", 1)[0].removesuffix("Easy").removesuffix(
    "Medium").removesuffix("Hard") in FAMILIES]


def vector_returns(vec: gym.vector.VectorEnv, policy: Callable[[gym.vector.VectorEnv], np.ndarray], episodes: int,
                   seed: int) -> np.ndarray:
    """Returns of the first ``episodes // num_envs`` episodes of every env of a NEXT_STEP vector env."""
    per_env = episodes // vec.num_envs
    vec.reset(seed=seed)
    totals = np.zeros(vec.num_envs)
    done_prev = np.zeros(vec.num_envs, dtype=bool)
    returns: list[list[float]] = [[] for _ in range(vec.num_envs)]
    while min(map(len, returns)) < per_env:
        _, rewards, terminated, truncated, _ = vec.step(policy(vec))
        totals += np.where(done_prev, 0.0, rewards)
        done_prev = terminated | truncated
        for i in np.flatnonzero(done_prev):
            returns[i].append(totals[i])
            totals[i] = 0.0
    return np.array([r[:per_env] for r in returns]).ravel()


def assert_vector_matches_single(env_id: str, num_envs: int, steps: int, seed: int, **kwargs) -> None:
    """Env i of ``make_vec`` seeded ``seed`` == ``gym.make`` seeded ``seed + i``, step by step,
    under random actions, across NEXT_STEP autoresets (there the single env is reset unseeded)."""
    vec = gym.make_vec(env_id, num_envs=num_envs, **kwargs)
    singles = [gym.make(env_id, **kwargs) for _ in range(num_envs)]
    obs, _ = vec.reset(seed=seed)
    for i, env in enumerate(singles):
        np.testing.assert_array_equal(obs[i], env.reset(seed=seed + i)[0])
    rng = np.random.default_rng(seed)
    done = np.zeros(num_envs, dtype=bool)
    for _ in range(steps):
        actions = rng.integers(0, vec.single_action_space.n, size=num_envs)
        obs, rewards, terminated, truncated, _ = vec.step(actions)
        for i, env in enumerate(singles):
            if done[i]:
                np.testing.assert_array_equal(obs[i], env.reset()[0])
                assert rewards[i] == 0.0 and not terminated[i]
                continue
            o, r, te, tr, _ = env.step(actions[i])
            np.testing.assert_array_equal(obs[i], o)
            assert (rewards[i], terminated[i], truncated[i]) == (r, te, tr)
        done = terminated | truncated
    vec.close()


# --------------------------------------------------------------------------------------------
# API conformance
# --------------------------------------------------------------------------------------------


def test_every_family_has_presets():
    for family in FAMILIES:
        for suffix in ("", "Easy", "Medium", "Hard"):
            assert f"memenvs/{family}{suffix}-v0" in IDS


@pytest.mark.parametrize("env_id", IDS)
def test_check_env_gymnasium_and_sb3(env_id):
    env = gym.make(env_id, disable_env_checker=True).unwrapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=True)
    ref = env.reference
    assert isinstance(ref, memenvs.ReferenceScores)
    assert -1.0 <= ref.random <= ref.optimal <= 1.0 and ref.memoryless <= ref.optimal


@pytest.mark.parametrize("env_id,native", [("memenvs/TMaze-v0", TMazeVectorEnv),
                                           ("memenvs/MemoryChain-v0", TaskVectorEnv)])
def test_make_vec_is_native(env_id, native):
    vec = gym.make_vec(env_id, num_envs=4)
    assert isinstance(vec, native)
    assert vec.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP


# --------------------------------------------------------------------------------------------
# Seeding
# --------------------------------------------------------------------------------------------


def trajectory(env_id: str, seed: int, steps: int, **kwargs) -> list:
    """Observations and rewards of ``steps`` random-action steps after ``reset(seed)``."""
    env = gym.make(env_id, **kwargs)
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    out = [obs]
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        out += [obs, reward]
        if terminated or truncated:
            out.append(env.reset()[0])
    return out


@pytest.mark.parametrize("env_id,kwargs", [
    ("memenvs/TMaze-v0", {"corridor_length": 2, "max_steps": 4}),
    ("memenvs/MemoryChain-v0", {"memory_length": 3, "num_bits": 4}),
    ("memenvs/NoisyStatelessCartPole-v0", {}),
])
def test_same_seed_same_episodes(env_id, kwargs):
    a, b, c = (trajectory(env_id, s, 60, **kwargs) for s in (5, 5, 6))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("env_id,kwargs", [
    ("memenvs/TMaze-v0", {"corridor_length": 2, "max_steps": 5}),
    ("memenvs/MemoryChain-v0", {"memory_length": 2, "num_bits": 3}),
])
def test_vector_env_equals_single_envs(env_id, kwargs):
    assert_vector_matches_single(env_id, num_envs=3, steps=40, seed=11, **kwargs)


# --------------------------------------------------------------------------------------------
# T-maze
# --------------------------------------------------------------------------------------------


def test_tmaze_observations_show_cue_once_and_junction_flag():
    env = gym.make("memenvs/TMaze-v0", corridor_length=3)
    obs, _ = env.reset(seed=0)
    cue = env.unwrapped._cue
    np.testing.assert_array_equal(obs, np.eye(3)[cue])  # cue bit only
    for pos in (1, 2):
        obs, *_ = env.step(0)
        np.testing.assert_array_equal(obs, [0, 0, 0])  # corridor: nothing
    obs, *_ = env.step(1)  # back
    np.testing.assert_array_equal(obs, [0, 0, 0])
    for _ in range(2):
        obs, *_ = env.step(0)
    np.testing.assert_array_equal(obs, [0, 0, 1])  # junction flag, no cue
    obs, *_ = env.step(0)  # forward at the junction bumps the wall
    np.testing.assert_array_equal(obs, [0, 0, 1])
    _, reward, terminated, _, _ = env.step(2 + cue)
    assert (reward, terminated) == (1.0, True)


def test_tmaze_wrong_turn_and_budget_cost_minus_one():
    env = gym.make("memenvs/TMaze-v0", corridor_length=1, max_steps=3)
    env.reset(seed=0)
    cue = env.unwrapped._cue
    env.step(0)
    assert env.step(3 - cue)[1:3] == (-1.0, True)  # the other arm
    env.reset(seed=0)
    rewards = [env.step(1)[1:3] for _ in range(3)]  # bump into the start wall until the budget ends
    assert rewards == [(0.0, False), (0.0, False), (-1.0, True)]


@pytest.mark.parametrize("length", [1, 7, 30])
def test_tmaze_oracle_scores_exactly_one(length):
    env = gym.make("memenvs/TMaze-v0", corridor_length=length)
    for seed in range(6):
        assert run_episode(env, lambda e: e.oracle_action(), seed) == 1.0
    vec = gym.make_vec("memenvs/TMaze-v0", num_envs=16, corridor_length=length)
    assert np.all(vector_returns(vec, lambda v: v.oracle_actions(), 64, seed=0) == 1.0)
    assert env.unwrapped.reference.optimal == 1.0


def test_tmaze_memoryless_policy_scores_chance():
    """Returns are ±1 with mean 0, so the sample mean has standard deviation 1/sqrt(n)."""
    vec = gym.make_vec("memenvs/TMaze-v0", num_envs=500, corridor_length=4)
    returns = vector_returns(vec, lambda v: v.memoryless_actions(), 3000, seed=1)
    assert set(np.unique(returns)) == {-1.0, 1.0}
    assert vec.reference.memoryless == 0.0
    assert abs(returns.mean() - vec.reference.memoryless) < 4.0 / math.sqrt(returns.size)
    single = gym.make("memenvs/TMaze-v0", corridor_length=4)
    single_returns = [run_episode(single, lambda e: e.memoryless_action(), s) for s in range(200)]
    assert abs(np.mean(single_returns)) < 4.0 / math.sqrt(200)


def test_tmaze_random_reference_small_cases_by_hand():
    # corridor 1, budget 2: only "forward then turn" (1/4 · 1/2) avoids the -1 timeout.
    assert random_policy_return(1, 2) == pytest.approx(-7 / 8, abs=1e-12)
    assert random_policy_return(1, 1) == pytest.approx(-1.0, abs=1e-12)  # cannot turn in one step
    # corridor 1, budget 3: forward-turn (1/4·1/2), forward-bump-turn (1/4·1/4·1/2) or
    # stay-forward-turn (3/4·1/4·1/2, staying = back or up/down at the start): P(turn) = 1/4.
    assert random_policy_return(1, 3) == pytest.approx(-3 / 4, abs=1e-12)


def test_tmaze_random_reference_matches_random_play():
    vec = gym.make_vec("memenvs/TMaze-v0", num_envs=1000, corridor_length=2, max_steps=8)
    rng = np.random.default_rng(3)
    returns = vector_returns(vec, lambda v: rng.integers(0, 4, size=v.num_envs), 4000, seed=2)
    expected = vec.reference.random
    assert -0.95 < expected < -0.2  # a case where random play often reaches the goal
    assert abs(returns.mean() - expected) < 4.0 * returns.std() / math.sqrt(returns.size)


# --------------------------------------------------------------------------------------------
# Memory chain
# --------------------------------------------------------------------------------------------


def test_memory_chain_layout_and_oracle():
    task = MemoryChainTask(memory_length=4, num_bits=3)
    batch = task.sample(64, np.random.default_rng(0))
    assert batch.inputs.shape == (5, 64, 7)
    context = batch.inputs[0, :, 1:4]
    assert set(np.unique(context)) <= {-1.0, 1.0}
    assert np.all(batch.inputs[1:, :, 1:4] == 0) and np.all(batch.inputs[:-1, :, 4:] == 0)
    query = batch.inputs[-1, :, 4:].argmax(axis=1)
    assert np.all(batch.inputs[-1, :, 4:].sum(axis=1) == 1)
    np.testing.assert_array_equal(batch.targets[-1], context[np.arange(64), query] > 0)
    np.testing.assert_allclose(batch.inputs[:, 0, 0], [1, 0.75, 0.5, 0.25, 0])
    env = gym.make("memenvs/MemoryChainMedium-v0")
    for seed in range(5):
        assert run_episode(env, lambda e: e.oracle_action(), seed) == 1.0


def test_memory_chain_memoryless_scores_zero():
    vec = gym.make_vec("memenvs/MemoryChain-v0", num_envs=1000, memory_length=3, num_bits=2)
    returns = vector_returns(vec, lambda v: v.memoryless_actions(), 4000, seed=0)
    assert set(np.unique(returns)) == {-1.0, 1.0}
    assert abs(returns.mean() - vec.reference.memoryless) < 4.0 / math.sqrt(returns.size)


# --------------------------------------------------------------------------------------------
# Stateless CartPole
# --------------------------------------------------------------------------------------------


def test_cartpole_observation_is_positions_of_hidden_state():
    env = gym.make("memenvs/StatelessCartPole-v0")
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        state = np.asarray(env.unwrapped.state, dtype=np.float32)
        np.testing.assert_array_equal(obs, state[[0, 2]])
        obs, reward, *_ = env.step(1)
        assert reward == pytest.approx(1 / 200)
    noisy = gym.make("memenvs/NoisyStatelessCartPole-v0", noise_sigma=0.1)
    diffs = []
    obs, _ = noisy.reset(seed=0)
    for _ in range(40):
        diffs.append(obs - np.asarray(noisy.unwrapped.state)[[0, 2]])
        obs, _, terminated, _, _ = noisy.step(noisy.unwrapped.oracle_action())
    assert 0.05 < np.std(diffs) < 0.15  # noise of the declared size (clipping aside)


@pytest.mark.parametrize("env_id,seeds", [("memenvs/StatelessCartPole-v0", range(3)),
                                          ("memenvs/NoisyStatelessCartPoleHard-v0", range(2)),
                                          ("memenvs/StatelessCartPoleHard-v0", range(1))])
def test_cartpole_oracle_balances_to_the_end(env_id, seeds):
    env = gym.make(env_id)
    for seed in seeds:
        assert run_episode(env, lambda e: e.oracle_action(), seed) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("which", ["random", "memoryless"])
def test_cartpole_references_match_play(which):
    env = gym.make("memenvs/NoisyStatelessCartPole-v0")
    rng = np.random.default_rng(0)
    policy = (lambda e: int(rng.integers(2))) if which == "random" else (lambda e: e.memoryless_action())
    returns = np.array([run_episode(env, policy, seed) for seed in range(150)])
    expected = getattr(env.unwrapped.reference, which)
    # The reference is itself a Monte-Carlo mean over 4,000 episodes (standard error <= 0.003).
    assert abs(returns.mean() - expected) < 4.0 * returns.std() / math.sqrt(returns.size) + 4 * 0.003


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id,kwargs,name", [
    ("memenvs/TMaze-v0", {"corridor_length": 0}, "corridor_length"),
    ("memenvs/TMaze-v0", {"corridor_length": 2.5}, "corridor_length"),
    ("memenvs/TMaze-v0", {"corridor_length": "10"}, "corridor_length"),
    ("memenvs/TMaze-v0", {"corridor_length": 5, "max_steps": 5}, "max_steps"),
    ("memenvs/MemoryChain-v0", {"memory_length": 0}, "memory_length"),
    ("memenvs/MemoryChain-v0", {"num_bits": 0}, "num_bits"),
    ("memenvs/StatelessCartPole-v0", {"max_steps": 0}, "max_steps"),
    ("memenvs/StatelessCartPole-v0", {"noise_sigma": -0.1}, "noise_sigma"),
    ("memenvs/StatelessCartPole-v0", {"noise_sigma": float("nan")}, "noise_sigma"),
])
def test_bad_kwargs_raise_value_error_naming_parameter(env_id, kwargs, name):
    with pytest.raises(ValueError, match=name):
        gym.make(env_id, **kwargs)
    if "CartPole" not in env_id:
        with pytest.raises(ValueError, match=name):
            gym.make_vec(env_id, num_envs=2, **kwargs)


@pytest.mark.parametrize("env_id", ["memenvs/TMaze-v0", "memenvs/MemoryChain-v0", "memenvs/StatelessCartPole-v0"])
def test_bad_actions_raise_clear_errors(env_id):
    env = gym.make(env_id, disable_env_checker=True).unwrapped
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    n = env.action_space.n
    for bad in (n, -1, 1.0, "0", np.array([0])):
        with pytest.raises(ValueError, match="action"):
            env.step(bad)


def test_tmaze_vector_bad_actions_and_step_after_end():
    vec = gym.make_vec("memenvs/TMaze-v0", num_envs=3)
    with pytest.raises(RuntimeError, match="reset"):
        vec.step(np.zeros(3, dtype=np.int64))
    vec.reset(seed=0)
    for bad in (np.zeros(2, dtype=np.int64), np.array([0, 4, 0]), np.zeros(3)):
        with pytest.raises(ValueError, match="action"):
            vec.step(bad)
    env = gym.make("memenvs/TMaze-v0", corridor_length=1, disable_env_checker=True).unwrapped
    env.reset(seed=0)
    env.step(0)
    env.step(2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)

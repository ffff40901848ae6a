"""POPGym-style card tasks: deck statistics, targets recomputed by hand, references, env views."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import memenvs
from memenvs.tasks.cards import (
    AutoencodeTask,
    CountRecallTask,
    RepeatFirstTask,
    RepeatPreviousTask,
    _hypergeom_pmf,
)
from helpers import run_episode

FAMILIES = ("RepeatPrevious", "RepeatFirst", "CountRecall", "Autoencode")
IDS = [f"memenvs/{f}{s}-v0" for f in FAMILIES for s in ("", "Easy", "Medium", "Hard")]


def memoryless_returns(task, episodes: int, seed: int) -> np.ndarray:
    """Returns of ``task.memoryless_prediction`` on ``episodes`` sampled episodes."""
    batch = task.sample(episodes, np.random.default_rng(seed))
    preds = np.stack([task.memoryless_prediction(batch.inputs[t], t) for t in range(batch.seq_len)])
    return task.returns(preds, batch)


@pytest.mark.parametrize("env_id", IDS)
def test_check_env_gymnasium_and_sb3(env_id):
    assert env_id in memenvs.list_ids("tasks")
    env = gym.make(env_id, disable_env_checker=True).unwrapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=True)
    assert isinstance(gym.make_vec(env_id, num_envs=2), memenvs.TaskVectorEnv)


def test_presets_follow_popgym():
    assert memenvs.make_task("RepeatPreviousHard-v0").kwargs == {"num_decks": 3, "k": 64}
    assert memenvs.make_task("RepeatFirstMedium-v0").kwargs == {"num_decks": 8}
    assert memenvs.make_task("CountRecallHard-v0").kwargs == {"num_decks": 4, "feature": "ranks"}
    assert memenvs.make_task("AutoencodeMedium-v0").kwargs == {"num_decks": 2}


# --------------------------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("decks", [1, 3])
def test_every_episode_deals_whole_shoes(decks):
    suits = RepeatPreviousTask(num_decks=decks).sample(50, np.random.default_rng(0)).inputs
    assert suits.shape == (52 * decks, 50)
    for s in range(4):
        assert np.all((suits == s).sum(axis=0) == 13 * decks)
    assert len({tuple(col) for col in suits.T}) == 50  # shuffled independently
    task = CountRecallTask(num_decks=decks, feature="ranks")
    inputs = task.sample(20, np.random.default_rng(1)).inputs
    np.testing.assert_array_equal(inputs.sum(axis=0), np.full((20, 26), 4 * decks))


def test_targets_recomputed_by_hand():
    rng = np.random.default_rng(4)
    task = RepeatPreviousTask(num_decks=1, k=5)
    b = task.sample(3, rng)
    for col in range(3):
        for t in range(52):
            assert b.mask[t, col] == (t >= 5)
            if t >= 5:
                assert b.targets[t, col] == b.inputs[t - 5, col]
    b = RepeatFirstTask(num_decks=2).sample(3, rng)
    assert np.all(b.targets == b.inputs[0]) and not b.mask[0].any() and b.mask[1:].all()
    b = AutoencodeTask(num_decks=1).sample(3, rng)
    assert np.all(b.inputs[52:] == 4) and b.mask[52:].all() and not b.mask[:52].any()
    for j in range(52):
        np.testing.assert_array_equal(b.targets[52 + j], b.inputs[51 - j])
    task = CountRecallTask(num_decks=1, feature="suits")
    b = task.sample(2, rng)
    for col in range(2):
        seen = [0] * 4
        for t in range(52):
            dealt, query = b.inputs[t, col, :4].argmax(), b.inputs[t, col, 4:].argmax()
            seen[dealt] += 1
            assert b.targets[t, col] == seen[query]


def test_colors_and_ranks_features():
    from memenvs.tasks.cards import card_feature

    cards = np.arange(52)
    np.testing.assert_array_equal(np.bincount(card_feature(cards, "colors")), [26, 26])
    np.testing.assert_array_equal(np.bincount(card_feature(cards, "ranks")), [4] * 13)
    # every (suit, rank) pair exactly once in a deck
    assert len(set(zip(card_feature(cards, "suits"), card_feature(cards, "ranks")))) == 52


def test_same_seed_same_episodes_and_sample_each_matches_sample():
    for task in (RepeatPreviousTask(2, 7), RepeatFirstTask(), AutoencodeTask(), CountRecallTask(2, "suits")):
        a = task.sample(4, np.random.default_rng(9))
        b = task.sample(4, np.random.default_rng(9))
        c = task.sample(4, np.random.default_rng(10))
        np.testing.assert_array_equal(a.inputs, b.inputs)
        assert not np.array_equal(a.inputs, c.inputs)
        each = task.sample_each([np.random.default_rng(s) for s in (3, 4)])
        for i, s in enumerate((3, 4)):
            one = task.sample(1, np.random.default_rng(s))
            np.testing.assert_array_equal(each.inputs[:, i], one.inputs[:, 0])
            np.testing.assert_array_equal(each.targets[:, i], one.targets[:, 0])


def test_vector_env_equals_single_envs():
    vec = gym.make_vec("memenvs/RepeatPrevious-v0", num_envs=3, obs_mode="index")
    singles = [gym.make("memenvs/RepeatPrevious-v0", obs_mode="index") for _ in range(3)]
    obs, _ = vec.reset(seed=21)
    assert [e.reset(seed=21 + i)[0] for i, e in enumerate(singles)] == list(obs)
    rng = np.random.default_rng(0)
    done = np.zeros(3, dtype=bool)
    for _ in range(120):  # two and a bit episodes of 52 steps
        actions = rng.integers(0, 4, size=3)
        obs, rewards, terminated, _, _ = vec.step(actions)
        for i, env in enumerate(singles):
            if done[i]:
                assert obs[i] == env.reset()[0] and rewards[i] == 0.0
                continue
            o, r, te, _, _ = env.step(actions[i])
            assert (obs[i], rewards[i], terminated[i]) == (o, r, te)
        done = terminated


# --------------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ["memenvs/RepeatPreviousEasy-v0", "memenvs/RepeatFirstEasy-v0",
                                    "memenvs/CountRecallMedium-v0", "memenvs/AutoencodeEasy-v0"])
def test_oracle_scores_exactly_one_in_the_env(env_id):
    env = gym.make(env_id)
    for seed in range(2):
        assert run_episode(env, lambda e: e.oracle_action(), seed) == pytest.approx(1.0, abs=1e-9)
    assert env.unwrapped.reference.optimal == 1.0


@pytest.mark.parametrize("task", [RepeatPreviousTask(1, 4), RepeatPreviousTask(3, 64), AutoencodeTask(2),
                                  CountRecallTask(1, "colors"), CountRecallTask(2, "suits"),
                                  CountRecallTask(4, "ranks")], ids=repr)
def test_memoryless_reference_matches_play(task):
    returns = memoryless_returns(task, 1000, seed=0)
    expected = task.reference_scores().memoryless
    assert abs(returns.mean() - expected) <= 4.0 * returns.std() / math.sqrt(returns.size) + 1e-12


def test_repeat_first_memoryless_return_is_exact_per_episode():
    """Guessing ``(shown suit + 1) % 4`` is right exactly on the 13 steps whose card has the suit
    before the first card's, so with one deck every episode scores (13 - 38)/51 = -25/51."""
    task = RepeatFirstTask(num_decks=1)
    returns = memoryless_returns(task, 200, seed=1)
    np.testing.assert_allclose(returns, -25 / 51, atol=1e-12)
    assert task.reference_scores().memoryless == pytest.approx(-25 / 51, abs=1e-12)


def test_repeat_previous_other_suit_beats_fixed_rules():
    """Other suit -25/51 > fixed suit -1/2 > same suit as showing -27/51: the no-replacement
    effect that the memoryless reference accounts for, measured on 20,000 episodes."""
    task = RepeatPreviousTask(num_decks=1, k=4)
    batch = task.sample(20000, np.random.default_rng(2))
    other = np.stack([task.memoryless_prediction(x, t) for t, x in enumerate(batch.inputs)])
    for preds, expected in ((other, -25 / 51), (np.zeros_like(batch.inputs), -0.5), (batch.inputs, -27 / 51)):
        returns = task.returns(preds, batch)
        assert abs(returns.mean() - expected) < 4.0 * returns.std() / math.sqrt(returns.size)
    assert task.reference_scores().memoryless == pytest.approx(-25 / 51, abs=1e-12)


@pytest.mark.parametrize("task", [RepeatPreviousTask(), CountRecallTask(1, "colors"), CountRecallTask(4, "ranks")],
                         ids=repr)
def test_random_reference_matches_play(task):
    batch = task.sample(2000, np.random.default_rng(5))
    preds = np.random.default_rng(6).integers(0, task.num_outputs, size=batch.targets.shape)
    returns = task.returns(preds, batch)
    expected = task.reference_scores().random
    assert abs(returns.mean() - expected) <= 4.0 * returns.std() / math.sqrt(returns.size)


def test_hypergeometric_pmf_and_mode_against_exact_counts():
    N, K = 51, 25  # the other cards of a one-deck shoe, 25 or 26 of the queried colour
    for K in (25, 26):
        for draws in (0, 1, 10, 30, 51):
            exact = [math.comb(K, k) * math.comb(N - K, draws - k) / math.comb(N, draws) for k in range(draws + 1)]
            got = [_hypergeom_pmf(k, N, K, draws) for k in range(draws + 1)]
            np.testing.assert_allclose(got, exact, rtol=1e-9, atol=1e-15)
    task = CountRecallTask(1, "colors")
    for t in range(52):
        for same, K in ((1, 25), (0, 26)):
            pmf = [math.comb(K, k) * math.comb(51 - K, t - k) / math.comb(51, t) for k in range(t + 1)]
            assert pmf[task._guess[same, t] - same] == pytest.approx(max(pmf), rel=1e-12)


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id,kwargs,name", [
    ("memenvs/RepeatPrevious-v0", {"num_decks": 0}, "num_decks"),
    ("memenvs/RepeatPrevious-v0", {"num_decks": 65}, "num_decks"),
    ("memenvs/RepeatPrevious-v0", {"num_decks": 1.5}, "num_decks"),
    ("memenvs/RepeatPrevious-v0", {"k": 0}, "k"),
    ("memenvs/RepeatPrevious-v0", {"num_decks": 1, "k": 52}, "k"),
    ("memenvs/RepeatFirst-v0", {"num_decks": True}, "num_decks"),
    ("memenvs/CountRecall-v0", {"feature": "jokers"}, "feature"),
    ("memenvs/Autoencode-v0", {"num_decks": -1}, "num_decks"),
])
def test_bad_kwargs_raise_value_error_naming_parameter(env_id, kwargs, name):
    with pytest.raises(ValueError, match=rf"\b{name}="):
        gym.make(env_id, **kwargs)


def test_bad_actions_raise():
    env = gym.make("memenvs/CountRecall-v0", disable_env_checker=True).unwrapped
    env.reset(seed=0)
    for bad in (27, -1, 0.5):
        with pytest.raises(ValueError, match="action"):
            env.step(bad)

"""Sequence tasks: every registered task id against the env checkers, its oracle and its declared
references, plus each task family's generator facts recomputed independently.

Per-id tests take their ids from ``memenvs.list_ids("tasks")`` at collection time, so tasks other
modules register later are covered too; ids listed in ``SMALL`` run with small kwargs, others
with their defaults (sample sizes shrink with the episode length to keep each test fast).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env as gym_check_env

import memenvs
from memenvs.core import MAX_EPISODE_LENGTH, SequenceBatch, SequenceTask, TaskEnv, TaskVectorEnv
from memenvs.tasks.adding import BLIND_GUESS_REWARD, AddingTask, random_policy_reward
from memenvs.tasks.copy import CopyTask, VariableCopyTask
from memenvs.tasks.denoise import DenoiseTask
from memenvs.tasks.timewarp import TimeWarpTask

TASK_IDS = memenvs.list_ids("tasks")

#: Small kwargs per task family (id without namespace, difficulty and version).
SMALL: dict[str, dict[str, Any]] = {
    "Copy": {"delay": 6, "length": 3},
    "VariableCopy": {"max_delay": 6, "length": 3},
    "Denoise": {"delay": 6, "length": 3},
    "Adding": {"seq_len": 8},
    "TimeWarp": {"seq_len": 24, "max_warp": 4},
}

#: Episode-step budget of the statistical tests on ids without small kwargs.
STEP_BUDGET = 300_000


def family(env_id: str) -> str:
    name = env_id.split("/", 1)[1].rsplit("-v", 1)[0]
    for level in ("Easy", "Medium", "Hard"):
        if name.endswith(level):
            return name[: -len(level)]
    return name


def small_kwargs(env_id: str) -> dict[str, Any]:
    return dict(SMALL.get(family(env_id), {}))


def build_task(env_id: str) -> SequenceTask:
    try:
        return memenvs.make_task(env_id, **small_kwargs(env_id))
    except FileNotFoundError as err:  # a dataset without an embedded default
        pytest.skip(f"{env_id}: data not available ({str(err).split(';')[0]})")


def make_env(env_id: str, **extra: Any) -> gym.Env:
    try:
        return gym.make(env_id, **small_kwargs(env_id), **extra)
    except FileNotFoundError as err:
        pytest.skip(f"{env_id}: data not available ({str(err).split(';')[0]})")


def episodes_for(task: SequenceTask, most: int = 4000) -> int:
    return int(np.clip(STEP_BUDGET // task.max_length, 200, most))


def memoryless_predictions(task: SequenceTask, batch: SequenceBatch) -> np.ndarray:
    return np.stack([np.asarray(task.memoryless_prediction(batch.inputs[t], t)) for t in range(batch.seq_len)])


def assert_within_standard_errors(returns: np.ndarray, expected: float, k: float = 4.0) -> None:
    """Mean of independent episode returns equals ``expected`` within ``k`` standard errors."""
    se = returns.std(ddof=1) / math.sqrt(len(returns))
    assert abs(returns.mean() - expected) <= k * se + 1e-9, (returns.mean(), expected, se)


def play(env: gym.Env, policy: str, seed: int) -> tuple[float, int]:
    env.reset(seed=seed)
    total, steps, done = 0.0, 0, False
    while not done:
        action = getattr(env.unwrapped, f"{policy}_action")()
        _, reward, terminated, truncated, _ = env.step(action)
        total, steps, done = total + reward, steps + 1, terminated or truncated
    return total, steps


# --------------------------------------------------------------------------------------------
# Every task id
# --------------------------------------------------------------------------------------------


def test_every_family_has_presets() -> None:
    for name in ("Copy", "VariableCopy", "Denoise", "Adding", "TimeWarp"):
        for level in ("", "Easy", "Medium", "Hard"):
            assert f"memenvs/{name}{level}-v0" in TASK_IDS
        knob = memenvs.make_task(f"{name}-v0").length_knob
        values = [memenvs.make_task(f"{name}{lvl}-v0").kwargs[knob] for lvl in ("Easy", "Medium", "Hard")]
        assert values == sorted(values) and len(set(values)) == 3, (name, values)


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_gymnasium_check_env(env_id: str) -> None:
    modes = ["onehot", "index"] if build_task(env_id).input_kind == "symbols" else ["onehot"]
    for obs_mode in modes:
        env = make_env(env_id, obs_mode=obs_mode)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            gym_check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_sb3_check_env(env_id: str) -> None:
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = make_env(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(env.unwrapped, warn=True)


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_make_vec_is_native(env_id: str) -> None:
    try:
        vec = gym.make_vec(env_id, num_envs=4, **small_kwargs(env_id))
    except FileNotFoundError as err:
        pytest.skip(f"{env_id}: data not available ({str(err).split(';')[0]})")
    assert isinstance(vec, TaskVectorEnv)
    assert vec.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    obs, _ = vec.reset(seed=0)
    assert vec.observation_space.contains(obs)
    obs, rewards, terminated, truncated, _ = vec.step(vec.oracle_actions())
    assert vec.observation_space.contains(obs)
    assert rewards.shape == terminated.shape == truncated.shape == (4,)


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_oracle_scores_one_in_the_env(env_id: str) -> None:
    env = make_env(env_id)
    for seed in (0, 1):
        total, steps = play(env, "oracle", seed)
        assert total == pytest.approx(1.0, abs=1e-9)
        assert steps <= env.unwrapped.task.max_length


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_oracle_scores_one_on_samples(env_id: str) -> None:
    task = build_task(env_id)
    batch = task.sample(32, np.random.default_rng(0))
    returns = task.returns(task.oracle_predictions(batch), batch)
    np.testing.assert_allclose(returns, 1.0, rtol=0, atol=1e-9)


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_memoryless_matches_reference(env_id: str) -> None:
    task = build_task(env_id)
    batch = task.sample(episodes_for(task), np.random.default_rng(1))
    returns = task.returns(memoryless_predictions(task, batch), batch)
    assert_within_standard_errors(returns, task.reference_scores().memoryless)


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_random_matches_reference(env_id: str) -> None:
    """Uniform random actions (mapped to predictions as the env does) score the random reference."""
    task = build_task(env_id)
    env = TaskEnv(task)
    batch = task.sample(episodes_for(task), np.random.default_rng(2))
    rng = np.random.default_rng(3)
    space = env.action_space
    if isinstance(space, spaces.Discrete):
        actions = rng.integers(0, space.n, size=batch.mask.shape)
    else:
        actions = rng.uniform(space.low, space.high, size=batch.mask.shape + space.shape)
    preds = env._codec.predictions(actions)
    assert_within_standard_errors(task.returns(preds, batch), task.reference_scores().random)


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_sample_is_seeded_and_well_formed(env_id: str) -> None:
    task = build_task(env_id)
    a = task.sample(8, np.random.default_rng(5))
    b = task.sample(8, np.random.default_rng(5))
    c = task.sample(8, np.random.default_rng(6))
    for x, y in ((a.inputs, b.inputs), (a.targets, b.targets), (a.mask, b.mask), (a.lengths, b.lengths)):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.inputs, c.inputs)
    T, B = task.max_length, 8
    assert a.mask.shape == (T, B) and a.mask.dtype == bool
    assert a.inputs.shape[:2] == a.targets.shape[:2] == (T, B)
    assert np.all(a.lengths <= T) and np.all(a.lengths >= 1)
    assert not np.any(a.mask & (np.arange(T)[:, None] >= a.lengths))  # padding is never scored
    assert a.mask.any(axis=0).all()  # every episode has a scored step
    if task.input_kind == "symbols":
        assert a.inputs.ndim == 2 and a.inputs.min() >= 0 and a.inputs.max() < task.num_inputs
    else:
        assert a.inputs.shape[2] == task.num_inputs
        assert task.input_low <= a.inputs.min() and a.inputs.max() <= task.input_high
    if task.target_kind == "class":
        assert a.targets.min() >= 0 and a.targets.max() < task.num_outputs
    else:
        assert task.output_low <= a.targets.min() and a.targets.max() <= task.output_high


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_sample_each_equals_one_sample_per_generator(env_id: str) -> None:
    task = build_task(env_id)
    seeds = [11, 12, 13]
    joint = task.sample_each([np.random.default_rng(s) for s in seeds])
    for i, s in enumerate(seeds):
        single = task.sample(1, np.random.default_rng(s))
        np.testing.assert_array_equal(joint.inputs[:, i], single.inputs[:, 0])
        np.testing.assert_array_equal(joint.targets[:, i], single.targets[:, 0])
        np.testing.assert_array_equal(joint.mask[:, i], single.mask[:, 0])
        assert joint.lengths[i] == single.lengths[0]


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_env_episode_is_the_sampled_episode(env_id: str) -> None:
    """One definition, two views: ``reset(seed=s)`` plays ``sample(1, default_rng(s))``."""
    env = make_env(env_id)
    task = env.unwrapped.task
    batch = task.sample(1, np.random.default_rng(21))
    obs, _ = env.reset(seed=21)
    codec = env.unwrapped._codec
    for t in range(int(batch.lengths[0])):
        np.testing.assert_array_equal(obs, codec.encode(batch.inputs[t, :1])[0])
        obs, reward, terminated, _, _ = env.step(env.unwrapped.oracle_action())
        assert terminated == (t == batch.lengths[0] - 1)


# --------------------------------------------------------------------------------------------
# Copy and variable copy
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("delay", "length", "alphabet"), [(30, 10, 8), (7, 3, 4)])
def test_copy_all_mode_memoryless_cross_entropy(delay: int, length: int, alphabet: int) -> None:
    """Empirical conditional entropy of the target given (step, current input), averaged over all
    steps, equals length·ln(alphabet)/(T + 2·length), i.e. 10·ln 8/(T + 20) for the paper's copy."""
    task = CopyTask(delay=delay, length=length, alphabet=alphabet, score="all")
    batch = task.sample(20_000, np.random.default_rng(0))
    entropy = 0.0
    for t in range(batch.seq_len):
        for x in np.unique(batch.inputs[t]):
            targets = batch.targets[t][batch.inputs[t] == x]
            p = np.bincount(targets) / len(targets)
            p = p[p > 0]
            entropy += len(targets) / batch.batch_size * -(p * np.log(p)).sum()
    entropy /= batch.seq_len
    expected = length * math.log(alphabet) / (delay + 2 * length)
    assert entropy == pytest.approx(expected, abs=2e-3)
    assert task.memoryless_cross_entropy() == pytest.approx(expected, rel=1e-12)


def test_copy_layout() -> None:
    task = CopyTask(delay=5, length=3, alphabet=4)
    b = task.sample(50, np.random.default_rng(0))
    for i in range(50):
        x, y = b.inputs[:, i], b.targets[:, i]
        data = x[:3]
        assert np.all((1 <= data) & (data <= 4))
        assert list(x[3:7]) == [0] * 4 and x[7] == task.marker and list(x[8:]) == [0] * 3
        np.testing.assert_array_equal(y[8:], data)
        assert not y[:8].any() and list(np.flatnonzero(b.mask[:, i])) == [8, 9, 10]


@pytest.mark.parametrize("per_batch", [False, True])
def test_variable_copy_delays(per_batch: bool) -> None:
    task = VariableCopyTask(max_delay=5, length=2, per_batch=per_batch)
    b = task.sample(400, np.random.default_rng(0))
    delays = b.lengths - 4
    assert delays.min() >= 1 and delays.max() <= 5
    markers = np.argmax(b.inputs == task.marker, axis=0)
    np.testing.assert_array_equal(markers, 2 + delays - 1)
    assert (len(set(delays)) == 1) == per_batch


def test_variable_copy_all_mode_memoryless() -> None:
    task = VariableCopyTask(max_delay=8, length=3, alphabet=4, score="all")
    batch = task.sample(6000, np.random.default_rng(4))
    returns = task.returns(memoryless_predictions(task, batch), batch)
    assert_within_standard_errors(returns, task.reference_scores().memoryless)


# --------------------------------------------------------------------------------------------
# Denoise
# --------------------------------------------------------------------------------------------


def test_denoise_generator() -> None:
    task = DenoiseTask(delay=12, length=4, alphabet=5)
    b = task.sample(300, np.random.default_rng(0))
    assert b.seq_len == 12 + 1 + 4
    for i in range(300):
        x, y = b.inputs[:, i], b.targets[:, i]
        positions = np.flatnonzero(x[:12])
        assert len(positions) == 4  # four symbols at four distinct steps
        assert x[12] == task.marker and not x[13:].any()
        np.testing.assert_array_equal(y[13:], x[positions])  # recalled in order of appearance
        assert list(np.flatnonzero(b.mask[:, i])) == [13, 14, 15, 16]
    # Positions are uniform over the noisy stretch: each step holds a symbol w.p. length/delay.
    occupancy = (b.inputs[:12] > 0).mean(axis=1)
    np.testing.assert_allclose(occupancy, 4 / 12, atol=4 * math.sqrt(4 / 12 * 8 / 12 / 300))


# --------------------------------------------------------------------------------------------
# Adding
# --------------------------------------------------------------------------------------------


def test_adding_generator() -> None:
    task = AddingTask(seq_len=9)
    b = task.sample(500, np.random.default_rng(0))
    values, markers = b.inputs[:, :, 0], b.inputs[:, :, 1]
    assert values.min() >= 0 and values.max() < 1
    assert set(np.unique(markers)) <= {0.0, 1.0}
    np.testing.assert_array_equal(markers[:4].sum(axis=0), 1)  # one marker in the first half
    np.testing.assert_array_equal(markers[4:].sum(axis=0), 1)  # one in the second half
    sums = [values[markers[:, i] == 1, i].sum() for i in range(500)]
    np.testing.assert_allclose(b.targets[-1, :, 0], sums, rtol=1e-6)
    assert b.mask[-1].all() and not b.mask[:-1].any()


def test_adding_reward_equation() -> None:
    task = AddingTask(seq_len=4)
    target = np.array([[1.2], [1.2], [1.2], [0.3]])
    pred = np.array([[1.2], [1.2 + math.sqrt(1 / 6)], [1.2 - 0.5], [2.0]])
    expected = [1.0, 0.0, 1 - 0.25 * 6, -1.0]  # exact, baseline MSE, 1 - err²/(1/6), clipped
    np.testing.assert_allclose(task.step_reward(pred, target, np.ones(4)), expected, atol=1e-12)


def test_adding_reference_constants_by_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    n = 400_000
    s = rng.random(n) + rng.random(n)
    blind = np.clip(1 - 6 * (s - 1) ** 2, -1, 1)
    random = np.clip(1 - 6 * (s - rng.uniform(0, 2, n)) ** 2, -1, 1)
    assert blind.mean() == pytest.approx(BLIND_GUESS_REWARD, abs=4 * blind.std() / math.sqrt(n))
    assert random.mean() == pytest.approx(random_policy_reward(), abs=4 * random.std() / math.sqrt(n))
    # Predicting 1.0 has the baseline MSE 1/6: the unclipped normalised reward is 0.
    assert np.mean(1 - 6 * (s - 1) ** 2) == pytest.approx(0.0, abs=4 * np.std(6 * (s - 1) ** 2) / math.sqrt(n))


def test_adding_action_is_sum_minus_one() -> None:
    env = gym.make("memenvs/Adding-v0", seq_len=4)
    assert env.action_space == spaces.Box(-1.0, 1.0, (1,), np.float32)
    env.reset(seed=3)
    for _ in range(3):
        env.step(np.zeros(1, dtype=np.float32))
    target = float(env.unwrapped._batch.targets[-1, 0, 0])
    _, reward, terminated, _, _ = env.step(np.array([target - 1.0], dtype=np.float32))
    assert terminated and reward == pytest.approx(1.0, abs=1e-9)
    env.reset(seed=3)
    for _ in range(3):
        env.step(np.zeros(1, dtype=np.float32))
    _, reward, _, _, _ = env.step(np.zeros(1, dtype=np.float32))  # action 0 predicts 1.0
    assert reward == pytest.approx(max(1 - 6 * (target - 1) ** 2, -1), abs=1e-6)


# --------------------------------------------------------------------------------------------
# TimeWarp
# --------------------------------------------------------------------------------------------


def previous_distinct_symbol(run_symbols: list[int], run_starts: list[int], T: int) -> list[int]:
    """Reference targets by a plain loop over the runs."""
    out, prev = [], 0
    bounds = run_starts[1:] + [T]
    for k, (start, end) in enumerate(zip(run_starts, bounds)):
        out += [prev] * (end - start)
        prev = run_symbols[k]
    return out


@pytest.mark.parametrize("warp", ["uniform", "variable"])
def test_timewarp_generator(warp: str) -> None:
    W, T = 5, 60
    pad = TimeWarpTask(seq_len=T, max_warp=W, warp=warp, padding=True, alphabet=4)
    rep = TimeWarpTask(seq_len=T, max_warp=W, warp=warp, padding=False, alphabet=4)
    bp, br = pad.sample(200, np.random.default_rng(7)), rep.sample(200, np.random.default_rng(7))
    gaps = []
    for i in range(200):
        x = bp.inputs[:, i]
        starts = list(np.flatnonzero(x))
        symbols = list(x[starts])
        assert starts[0] == 0
        assert all(a != b for a, b in zip(symbols, symbols[1:]))  # no consecutive repeats
        gaps += list(np.diff(starts))
        np.testing.assert_array_equal(bp.targets[:, i], previous_distinct_symbol(symbols, starts, T))
        # Same draws with repeats: the runs are exactly where the repeated input changes.
        xr = br.inputs[:, i]
        assert [0] + list(np.flatnonzero(np.diff(xr)) + 1) == starts
        np.testing.assert_array_equal(xr[starts], symbols)
        np.testing.assert_array_equal(br.targets[:, i], bp.targets[:, i])
    gaps = np.array(gaps)
    if warp == "uniform":
        assert set(gaps) == {W}
    else:
        assert gaps.min() >= 1 and gaps.max() <= W
        assert gaps.mean() == pytest.approx((W + 1) / 2, abs=4 * gaps.std() / math.sqrt(len(gaps)))
    assert bp.mask.all()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"warp": "variable", "padding": False},
        {"warp": "variable", "padding": True},
        {"warp": "uniform", "padding": False},
        {"warp": "uniform", "padding": True},
        {"warp": "variable", "padding": False, "alphabet": 2},
        {"warp": "variable", "padding": True, "alphabet": 3},
    ],
)
def test_timewarp_memoryless_reference(kwargs: dict[str, Any]) -> None:
    task = TimeWarpTask(seq_len=30, max_warp=6, **kwargs)
    batch = task.sample(5000, np.random.default_rng(8))
    returns = task.returns(memoryless_predictions(task, batch), batch)
    assert_within_standard_errors(returns, task.reference_scores().memoryless)


def test_timewarp_memoryless_closed_forms() -> None:
    """Repeat mode with uniform warp W: blank is certain for t < W, then 1/(A-1) per step."""
    T, W, A = 40, 5, 10
    task = TimeWarpTask(seq_len=T, max_warp=W, warp="uniform", alphabet=A)
    assert task.reference_scores().memoryless == pytest.approx((W + (T - W) / (A - 1)) / T, abs=1e-12)
    # Padding, uniform: blanks of later runs score 1/A, their first step 1/(A-1).
    task = TimeWarpTask(seq_len=T, max_warp=W, warp="uniform", padding=True, alphabet=A)
    starts = (T - W) // W
    expected = (W + starts / (A - 1) + (T - W - starts) / A) / T
    assert task.reference_scores().memoryless == pytest.approx(expected, abs=1e-12)


# --------------------------------------------------------------------------------------------
# Bad kwargs
# --------------------------------------------------------------------------------------------

BAD_KWARGS = [
    ("Copy-v0", {"delay": -1}, "delay"),
    ("Copy-v0", {"delay": 0}, "delay"),
    ("Copy-v0", {"delay": 2.5}, "delay"),
    ("Copy-v0", {"delay": "10"}, "delay"),
    ("Copy-v0", {"delay": True}, "delay"),
    ("Copy-v0", {"length": 0}, "length"),
    ("Copy-v0", {"alphabet": 1}, "alphabet"),
    ("Copy-v0", {"score": "last"}, "score"),
    ("VariableCopy-v0", {"max_delay": 0}, "max_delay"),
    ("VariableCopy-v0", {"per_batch": "yes"}, "per_batch"),
    ("Denoise-v0", {"delay": 5, "length": 10}, "delay"),
    ("Denoise-v0", {"alphabet": 1}, "alphabet"),
    ("Denoise-v0", {"length": -3}, "length"),
    ("Adding-v0", {"seq_len": 1}, "seq_len"),
    ("Adding-v0", {"seq_len": 20.0}, "seq_len"),
    ("TimeWarp-v0", {"max_warp": 0}, "max_warp"),
    ("TimeWarp-v0", {"seq_len": 50, "max_warp": 50}, "seq_len"),
    ("TimeWarp-v0", {"warp": "random"}, "warp"),
    ("TimeWarp-v0", {"padding": 1}, "padding"),
    ("TimeWarp-v0", {"alphabet": 1}, "alphabet"),
    ("Copy-v0", {"obs_mode": "binary"}, "obs_mode"),
    pytest.param(
        "Adding-v0",
        {"render_mode": "video"},
        "render_mode",
        # gymnasium.make itself warns about a render mode the env does not list, before ours raises.
        # ("human" is no longer refused: gymnasium.make draws the env's rgb_array frames in a window.)
        marks=pytest.mark.filterwarnings("ignore:.*render_mode='video'.*:UserWarning"),
    ),
]


@pytest.mark.parametrize(("env_id", "kwargs", "param"), BAD_KWARGS)
def test_bad_kwargs_raise_value_error_naming_the_parameter(env_id: str, kwargs: dict[str, Any], param: str) -> None:
    with pytest.raises(ValueError, match=rf"\b{param}={kwargs[param]!r}".replace("(", r"\(").replace(".", r"\.")):
        gym.make(f"memenvs/{env_id}", **kwargs)
    if param not in ("obs_mode", "render_mode"):
        with pytest.raises(ValueError, match=param):
            memenvs.make_task(env_id, **kwargs)
        with pytest.raises(ValueError, match=param):
            gym.make_vec(f"memenvs/{env_id}", num_envs=2, **kwargs)


def test_bad_kwarg_messages_say_what_is_allowed() -> None:
    # Length knobs are bounded above too, so that an episode fits MAX_EPISODE_LENGTH steps.
    longest = MAX_EPISODE_LENGTH
    with pytest.raises(ValueError, match=rf"delay=-1 is out of range: allowed in \[1, {longest - 20}\]"):
        CopyTask(delay=-1)
    with pytest.raises(ValueError, match=r"score='last' is not allowed: choose one of 'recall', 'all'"):
        CopyTask(score="last")
    with pytest.raises(ValueError, match=rf"seq_len=5 is out of range: allowed in \[6, {longest}\]"):
        TimeWarpTask(seq_len=5, max_warp=5)
    with pytest.raises(ValueError, match=rf"delay=3 is out of range: allowed in \[4, {longest - 5}\]"):
        DenoiseTask(delay=3, length=4)

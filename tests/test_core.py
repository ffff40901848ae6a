"""memenvs.core: registry helpers, the two Gymnasium views, seeding rule, NEXT_STEP autoreset,
action validation, and the ``memory-bench envs`` catalog."""

from __future__ import annotations

import math
import argparse
import subprocess
import sys
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import memenvs
from memenvs import catalog
from memenvs.core import (
    ReferenceScores,
    SequenceTask,
    TaskEnv,
    TaskVectorEnv,
    check_bool,
    check_choice,
    check_float,
    check_int,
    concat_batches,
)
from memenvs.tasks.adding import AddingTask
from memenvs.tasks.copy import CopyTask

# Small configurations of tasks with fixed lengths, variable lengths and real values.
VIEW_CASES = [
    ("memenvs/Copy-v0", {"delay": 4, "length": 2}),
    ("memenvs/VariableCopy-v0", {"max_delay": 6, "length": 2}),
    ("memenvs/Adding-v0", {"seq_len": 5}),
    ("memenvs/TimeWarp-v0", {"seq_len": 9, "max_warp": 3, "obs_mode": "index"}),
]


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


def test_list_ids() -> None:
    every, tasks, control = memenvs.list_ids(), memenvs.list_ids("tasks"), memenvs.list_ids("control")
    assert every == sorted(every) and all(i.startswith("memenvs/") for i in every)
    assert set(tasks) | set(control) == set(every) and not set(tasks) & set(control)
    assert {"memenvs/Copy-v0", "memenvs/Denoise-v0", "memenvs/Adding-v0", "memenvs/TimeWarp-v0"} <= set(tasks)
    assert all(i in gym.registry for i in every)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("copy", "memenvs/Copy-v0"),
        ("Copy-v0", "memenvs/Copy-v0"),
        ("memenvs/CopyHard-v0", "memenvs/CopyHard-v0"),
        ("variable_copy", "memenvs/VariableCopy-v0"),
        ("time-warp", "memenvs/TimeWarp-v0"),
        ("ADDING", "memenvs/Adding-v0"),
    ],
)
def test_resolve_id(name: str, expected: str) -> None:
    assert memenvs.resolve_id(name) == expected


def test_resolve_id_unknown_lists_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown task 'copyy'.*memenvs/Copy-v0"):
        memenvs.resolve_id("copyy")


def test_make_task_applies_presets_and_overrides() -> None:
    assert memenvs.make_task("CopyHard-v0").delay == 500
    hard = memenvs.make_task("CopyHard-v0", delay=7, score="all")
    assert isinstance(hard, CopyTask) and hard.delay == 7 and hard.score == "all"
    assert memenvs.make_task("timewarp").kwargs == {
        "seq_len": 500,
        "max_warp": 50,
        "warp": "variable",
        "padding": False,
        "alphabet": 10,
    }
    rebuilt = hard.with_kwargs(length=4)
    assert rebuilt.kwargs == {**hard.kwargs, "length": 4}


def test_make_task_rejects_control_ids() -> None:
    control = memenvs.list_ids("control")
    if not control:
        pytest.skip("no control env registered")
    with pytest.raises(ValueError, match="not a sequence task"):
        memenvs.make_task(control[0])


def test_reference_scores_of_an_id() -> None:
    ref = memenvs.reference_scores("copy", score="all", delay=30)
    steps, blanks = 30 + 20, 30 + 10
    assert ref == ReferenceScores(random=1 / 9, memoryless=(blanks + 10 / 8) / steps, optimal=1.0)
    assert ref.normalise(ref.memoryless) == pytest.approx(0.0) and ref.normalise(1.0) == pytest.approx(1.0)
    assert memenvs.reference_scores("Denoise-v0") == ReferenceScores(random=1 / 9, memoryless=1 / 8)


@pytest.mark.parametrize(
    ("check", "args", "message"),
    [
        (check_int, ("n", 1.0, 0), r"n=1\.0 must be an integer >= 0"),
        (check_int, ("n", 5, 0, 3), r"n=5 is out of range: allowed in \[0, 3\]"),
        (check_float, ("x", float("nan")), r"x=nan must be a finite number"),
        (check_float, ("x", -0.5, 0.0), r"x=-0\.5 is out of range: allowed >= 0\.0"),
        (check_choice, ("mode", "c", ("a", "b")), r"mode='c' is not allowed: choose one of 'a', 'b'"),
        (check_bool, ("flag", 0), r"flag=0 must be True or False"),
    ],
)
def test_check_helpers(check: Any, args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check(*args)


@pytest.mark.parametrize(("low", "high"), [(0, 2), (1, 9), (-3, 4), (5, 6)])
def test_uniform_integers(low: int, high: int) -> None:
    """Every value of [low, high) is drawn with probability 1/(high - low) (4 standard errors),
    nothing outside, and the same generator state gives the same draws."""
    n = 60_000
    draws = memenvs.core.uniform_integers(np.random.default_rng(0), low, high, (n // 4, 4))
    assert draws.dtype == np.int64 and draws.shape == (n // 4, 4)
    assert draws.min() == low and draws.max() == high - 1
    k = high - low
    counts = np.bincount((draws - low).ravel(), minlength=k)
    p = 1 / k
    np.testing.assert_allclose(counts / n, p, atol=4 * np.sqrt(p * (1 - p) / n) + 1e-12)
    again = memenvs.core.uniform_integers(np.random.default_rng(0), low, high, (n // 4, 4))
    np.testing.assert_array_equal(draws, again)


def test_concat_batches() -> None:
    task = memenvs.make_task("VariableCopy-v0", max_delay=5, length=2)
    a, b = task.sample(2, np.random.default_rng(0)), task.sample(3, np.random.default_rng(1))
    joint = concat_batches([a, b])
    assert joint.batch_size == 5 and joint.seq_len == task.max_length
    np.testing.assert_array_equal(joint.inputs[:, 2:], b.inputs)
    np.testing.assert_array_equal(joint.lengths, np.concatenate([a.lengths, b.lengths]))


# --------------------------------------------------------------------------------------------
# Vector env vs single env
# --------------------------------------------------------------------------------------------


def single_env_trajectory(env_id: str, kwargs: dict, seed: int, actions: list[Any]) -> list[tuple]:
    """What env ``i`` of a NEXT_STEP vector env must return, replayed with one TaskEnv:
    reset(seed) first, and a plain reset() on the step after each termination."""
    env = gym.make(env_id, **kwargs)
    obs, _ = env.reset(seed=seed)
    out, needs_reset = [(obs, 0.0, False)], False
    for action in actions:
        if needs_reset:
            obs, _ = env.reset()
            reward, terminated = 0.0, False
        else:
            obs, reward, terminated, _, _ = env.step(action)
        needs_reset = terminated
        out.append((obs, reward, terminated))
    return out


@pytest.mark.parametrize(("env_id", "kwargs"), VIEW_CASES)
def test_vector_env_replays_single_envs_seeded_s_plus_i(env_id: str, kwargs: dict) -> None:
    N, steps, seed = 3, 40, 100
    vec = gym.make_vec(env_id, num_envs=N, **kwargs)
    vec.action_space.seed(0)
    actions = [vec.action_space.sample() for _ in range(steps)]
    obs, _ = vec.reset(seed=seed)
    got = [(obs, np.zeros(N), np.zeros(N, bool))]
    for a in actions:
        obs, reward, terminated, truncated, _ = vec.step(a)
        assert not truncated.any()
        got.append((obs, reward, terminated))
    for i in range(N):
        expected = single_env_trajectory(env_id, kwargs, seed + i, [a[i] for a in actions])
        for k, ((o, r, d), (eo, er, ed)) in enumerate(zip([(g[0][i], g[1][i], g[2][i]) for g in got], expected)):
            np.testing.assert_array_equal(o, eo, err_msg=f"env {i} step {k}")
            assert r == pytest.approx(er, abs=1e-12) and d == ed, (i, k)
    assert sum(g[2].sum() for g in got) >= N  # every env finished at least one episode


@pytest.mark.parametrize(("env_id", "kwargs"), VIEW_CASES)
def test_seeded_determinism(env_id: str, kwargs: dict) -> None:
    def run_vec(seed: int) -> list[np.ndarray]:
        vec = gym.make_vec(env_id, num_envs=4, **kwargs)
        obs, _ = vec.reset(seed=seed)
        out = [obs]
        for _ in range(25):
            obs, reward, *_ = vec.step(vec.oracle_actions())
            out += [obs, reward]
        return out

    def run_env(seed: int) -> list[Any]:
        env = gym.make(env_id, **kwargs)
        out = []
        for episode in range(3):
            obs, _ = env.reset(seed=seed if episode == 0 else None)
            out.append(obs)
            done = False
            while not done:
                obs, reward, done, _, _ = env.step(env.unwrapped.oracle_action())
                out += [obs, reward]
        return out

    for run in (run_vec, run_env):
        a, b, c = run(7), run(7), run(8)
        assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
        assert len(a) != len(c) or not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_vector_reset_accepts_per_env_seeds() -> None:
    vec = gym.make_vec("memenvs/Copy-v0", num_envs=3, delay=4, length=2, obs_mode="index")
    by_list, _ = vec.reset(seed=[5, 6, 7])
    by_int, _ = vec.reset(seed=5)
    np.testing.assert_array_equal(by_list, by_int)
    with pytest.raises(ValueError, match="seed list has 2 entries, expected num_envs=3"):
        vec.reset(seed=[1, 2])


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [("memenvs/Copy-v0", {"delay": 3, "length": 2, "obs_mode": "index"}), ("memenvs/TMaze-v0", {"corridor_length": 4})],
)
def test_vector_partial_reset_restarts_only_the_masked_envs(env_id: str, kwargs: dict) -> None:
    """``reset(seed=[...], options={"reset_mask": m})`` restarts (and reseeds) only the envs in
    ``m``; the others carry on. Every env matches a single env reset at the same points."""
    N = 3
    vec = gym.make_vec(env_id, num_envs=N, **kwargs)
    singles = [gym.make(env_id, **kwargs) for _ in range(N)]
    obs, _ = vec.reset(seed=10)
    np.testing.assert_array_equal(obs, np.stack([env.reset(seed=10 + i)[0] for i, env in enumerate(singles)]))
    for step in range(5):
        if step == 2:
            obs, _ = vec.reset(seed=[None, 20, None], options={"reset_mask": np.array([False, True, False])})
            np.testing.assert_array_equal(obs[1], singles[1].reset(seed=20)[0])
        actions = np.array([env.unwrapped.oracle_action() for env in singles])
        obs, reward, terminated, _, _ = vec.step(actions)
        for i, env in enumerate(singles):
            o, r, d, _, _ = env.step(actions[i])
            np.testing.assert_array_equal(obs[i], o, err_msg=f"env {i} step {step}")
            assert reward[i] == pytest.approx(r, abs=1e-12) and terminated[i] == d


def test_next_step_autoreset() -> None:
    """After termination the next step returns the new episode's first observation, reward 0,
    terminated False, whatever the action."""
    kwargs = {"delay": 3, "length": 2, "obs_mode": "index", "score": "all"}
    T = 3 + 2 * 2
    runs = []
    for action in (0, 5):
        vec = gym.make_vec("memenvs/Copy-v0", num_envs=2, **kwargs)
        vec.reset(seed=1)
        for t in range(T):
            obs, reward, terminated, _, _ = vec.step(vec.oracle_actions())
            assert terminated.all() == (t == T - 1) and reward == pytest.approx(np.full(2, 1 / T))
        assert not obs.any()  # the terminal observation is blank
        obs, reward, terminated, truncated, _ = vec.step(np.full(2, action))
        assert not reward.any() and not terminated.any() and not truncated.any()
        single = gym.make("memenvs/Copy-v0", **kwargs)
        single.reset(seed=1)
        first_of_next, _ = single.reset()
        assert obs[0] == first_of_next
        obs, reward, *_ = vec.step(vec.oracle_actions())
        runs.append((obs.copy(), reward.copy()))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])  # the ignored action changed nothing
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_vector_memoryless_actions_match_the_task() -> None:
    task = memenvs.make_task("TimeWarp-v0", seq_len=12, max_warp=3, padding=True)
    vec = TaskVectorEnv(num_envs=5, task=task)
    vec.reset(seed=3)
    batch = task.sample_each([np.random.default_rng(3 + i) for i in range(5)])
    for t in range(12):
        expected = task.memoryless_prediction(batch.inputs[t], t)
        np.testing.assert_array_equal(vec.memoryless_actions(), expected)
        vec.step(vec.memoryless_actions())


def test_real_valued_actions_map_onto_the_target_range() -> None:
    env = TaskEnv(AddingTask(seq_len=4))
    assert env.action_space == spaces.Box(-1.0, 1.0, (1,), np.float32)
    assert env.observation_space == spaces.Box(0.0, 1.0, (2,), np.float32)
    codec = env._codec
    np.testing.assert_allclose(codec.predictions(np.array([-1.0, 0.0, 0.5, 1.0])), [0.0, 1.0, 1.5, 2.0])
    np.testing.assert_allclose(codec.actions(np.array([0.0, 1.0, 2.5])), [-1.0, 0.0, 1.0])  # clipped


# --------------------------------------------------------------------------------------------
# Bad actions and misuse
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env_id", "kwargs", "action"),
    [
        ("memenvs/Copy-v0", {"delay": 3}, 9),
        ("memenvs/Copy-v0", {"delay": 3}, -1),
        ("memenvs/Copy-v0", {"delay": 3}, 1.0),
        ("memenvs/Copy-v0", {"delay": 3}, np.array([1, 2])),
        ("memenvs/Adding-v0", {"seq_len": 3}, np.array([1.5], dtype=np.float32)),
        ("memenvs/Adding-v0", {"seq_len": 3}, np.array([np.nan], dtype=np.float32)),
        ("memenvs/Adding-v0", {"seq_len": 3}, np.zeros(2, dtype=np.float32)),
        ("memenvs/Adding-v0", {"seq_len": 3}, 0.5),
    ],
)
def test_bad_action_raises(env_id: str, kwargs: dict, action: Any) -> None:
    env = gym.make(env_id, **kwargs)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action .* is not in the action space"):
        env.step(action)


@pytest.mark.parametrize(
    ("env_id", "kwargs", "actions"),
    [
        ("memenvs/Copy-v0", {"delay": 3}, np.array([0, 9, 1])),
        ("memenvs/Copy-v0", {"delay": 3}, np.array([0, 1])),
        ("memenvs/Copy-v0", {"delay": 3}, np.array([0.0, 1.0, 2.0])),
        ("memenvs/Adding-v0", {"seq_len": 3}, np.zeros(3, dtype=np.float32)),
        ("memenvs/Adding-v0", {"seq_len": 3}, np.full((3, 1), 2.0, dtype=np.float32)),
    ],
)
def test_bad_vector_actions_raise(env_id: str, kwargs: dict, actions: np.ndarray) -> None:
    vec = gym.make_vec(env_id, num_envs=3, **kwargs)
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=r"actions of shape .* are not in the action space: expected shape \(3"):
        vec.step(actions)


def test_step_order_errors() -> None:
    env = TaskEnv(CopyTask(delay=1, length=1))
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    for _ in range(3):
        env.step(0)
    with pytest.raises(RuntimeError, match="episode has ended"):
        env.step(0)
    with pytest.raises(RuntimeError, match="reset"):
        TaskVectorEnv(num_envs=2, task=CopyTask()).step(np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match="num_envs=0"):
        TaskVectorEnv(num_envs=0, task=CopyTask())
    with pytest.raises(ValueError, match="given together with a task instance"):
        TaskEnv(CopyTask(), delay=3)


def test_default_sample_each_loops_over_sample() -> None:
    class Coin(SequenceTask):
        num_inputs, num_outputs, max_length = 2, 2, 3

        def __init__(self) -> None:
            self._store_kwargs()

        def sample(self, batch_size: int, rng: np.random.Generator):
            x = rng.integers(0, 2, size=(3, batch_size))
            return memenvs.SequenceBatch(x, x, np.ones((3, batch_size), bool))

    joint = Coin().sample_each([np.random.default_rng(s) for s in (1, 2)])
    np.testing.assert_array_equal(joint.inputs[:, 1], Coin().sample(1, np.random.default_rng(2)).inputs[:, 0])


# --------------------------------------------------------------------------------------------
# memory-bench envs
# --------------------------------------------------------------------------------------------


def test_describe_space() -> None:
    assert catalog.describe_space(spaces.Discrete(9)) == "Discrete(9)"
    assert catalog.describe_space(spaces.Box(0, 1, (10,), np.float32)) == "Box(0,1,(10,))"
    assert catalog.describe_space(spaces.MultiDiscrete([3, 4])) == "MultiDiscrete([3, 4])"
    both = spaces.Dict({"a": spaces.Discrete(2), "b": spaces.Box(-1, 1, (2,))})
    assert catalog.describe_space(both) == "Dict(a:Discrete(2), b:Box(-1,1,(2,)))"


def test_catalog_rows_agree_with_declared_references() -> None:
    row = catalog.catalog_row("memenvs/TimeWarpEasy-v0", seed=0, episodes=3)
    assert row.error is None and row.steps == 500
    assert row.returns["oracle"] == pytest.approx(1.0, abs=1e-9)
    ref = memenvs.reference_scores("TimeWarpEasy-v0")
    assert row.reference == {"random": ref.random, "memoryless": ref.memoryless, "oracle": ref.optimal}
    assert abs(row.returns["memoryless"] - ref.memoryless) < 0.05  # 1500 scored steps, sd ~0.01
    assert abs(row.returns["random"] - ref.random) < 0.05


def test_catalog_marks_missing_policies() -> None:
    class Bare(gym.Env):
        observation_space = spaces.Discrete(2)
        action_space = spaces.Discrete(2)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return 0, {}

        def step(self, action):
            return 0, 1.0, True, False, {}

    gym.register("memenvs-test/Bare-v0", entry_point=Bare)
    try:
        row = catalog.catalog_row("memenvs-test/Bare-v0")
    finally:
        del gym.registry["memenvs-test/Bare-v0"]
    assert row.returns == {"random": 1.0, "memoryless": None, "oracle": None}
    assert row.reference == {"random": None, "memoryless": None, "oracle": None} and row.steps == 1
    text = catalog.format_table([row])
    assert text.splitlines()[2].split()[4:] == ["1.000", "-", "-", "-", "-", "-"]


def envs_command(argv: list[str]) -> int:
    """Parse and run ``memory-bench envs ARGV`` (the sub-parser alone: the full CLI also loads
    every other sub-command)."""
    parser = argparse.ArgumentParser(prog="memory-bench")
    catalog.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["envs", *argv])
    return args.run(args)


def test_envs_command_prints_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert envs_command(["CopyEasy", "AddingEasy", "--seed", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["id", "observation", "action", "steps"]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert set(rows) == {"memenvs/CopyEasy-v0", "memenvs/VariableCopyEasy-v0", "memenvs/AddingEasy-v0"}
    assert rows["memenvs/AddingEasy-v0"][1:4] == ["Box(0,1,(2,))", "Box(-1,1,(1,))", "50"]
    assert rows["memenvs/CopyEasy-v0"][6] == "1.000"  # oracle
    with pytest.raises(ValueError, match="no registered id matches"):
        envs_command(["no-such-env"])
    with pytest.raises(ValueError, match="--episodes=0"):
        envs_command(["CopyEasy", "--episodes", "0"])


def test_envs_command_does_not_import_torch() -> None:
    code = (
        "import sys, memenvs.catalog as c, argparse;"
        "c.run(argparse.Namespace(ids=['CopyEasy'], kind='tasks', seed=0, episodes=1));"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "memenvs/CopyEasy-v0" in result.stdout


def test_normalise_is_nan_when_the_memoryless_reference_is_optimal():
    """A task whose last input alone gives the answer tests no memory: its normalised score is
    undefined (NaN), not a ZeroDivisionError that stops a training run."""
    assert ReferenceScores(random=0.1, memoryless=0.5).normalise(0.75) == 0.5
    assert math.isnan(ReferenceScores(random=0.1, memoryless=1.0).normalise(1.0))

"""Absurd sizes: every length knob is refused at construction with a one-line ValueError naming
the parameter, its value and the allowed range, and large but allowed sizes construct quickly
(reference returns in closed form or in linear time, never a quadratic programme). Also the
package's own entry points: ``python -m memenvs`` and ``memenvs.__version__``."""

from __future__ import annotations

import contextlib
import math
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import memenvs
from memenvs.control.tmaze import random_policy_return
from memenvs.core import MAX_EPISODE_LENGTH, MAX_SYMBOLS, SequenceTask, TaskEnv, TaskVectorEnv
from memenvs.tasks.copy import VariableCopyTask
from memenvs.tasks.timewarp import TimeWarpTask

ABSURD = 10**12


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail (instead of hanging the suite) if the block runs longer than ``seconds``."""

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def one_line_value_error(err: pytest.ExceptionInfo, name: str, value: Any) -> None:
    message = str(err.value)
    assert "\n" not in message
    assert f"{name}={value!r}" in message and "allowed" in message, message


# --------------------------------------------------------------------------------------------
# T-maze: the random policy's return in closed form
# --------------------------------------------------------------------------------------------


def dynamic_programme_return(corridor_length: int, max_steps: int) -> float:
    """The random policy's expected return by stepping the position distribution (O(L·M))."""
    L = corridor_length
    p = np.zeros(L + 1)
    p[0] = 1.0
    for _ in range(max_steps):
        q = np.zeros_like(p)
        q[1:] += 0.25 * p[:-1]  # forward
        q[:-1] += 0.25 * p[1:]  # back
        q[0] += 0.25 * p[0]  # back at the start bumps
        q[:L] += 0.5 * p[:L]  # up / down in the corridor bump
        q[L] += 0.25 * p[L]  # forward at the junction bumps; up / down end the episode
        p = q
    return -min(float(p.sum()), 1.0)


@pytest.mark.parametrize("length", [1, 2, 3, 5, 10, 17])
def test_tmaze_closed_form_equals_dynamic_programme(length: int) -> None:
    for steps in sorted({1, length, length + 1, length + 2, 2 * (length + 1), 5 * length + 3, 300}):
        assert random_policy_return(length, steps) == pytest.approx(dynamic_programme_return(length, steps), abs=1e-12)


def test_tmaze_long_corridor_constructs_fast() -> None:
    with time_limit(20):
        start = time.perf_counter()
        env = gym.make("memenvs/TMaze-v0", corridor_length=100_000)
        vec = gym.make_vec("memenvs/TMaze-v0", num_envs=2, corridor_length=100_000)
        elapsed = time.perf_counter() - start
    assert elapsed < 1.0
    assert -1.0 <= env.unwrapped.reference.random <= -0.999
    env.reset(seed=0)
    env.step(0)
    vec.reset(seed=0)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"corridor_length": 10**9}, "corridor_length"),
        ({"corridor_length": MAX_EPISODE_LENGTH // 2}, "corridor_length"),
        ({"corridor_length": 10, "max_steps": ABSURD}, "max_steps"),
    ],
)
def test_tmaze_absurd_sizes_are_refused(kwargs: dict[str, int], name: str) -> None:
    with time_limit(20):
        with pytest.raises(ValueError) as err:
            gym.make("memenvs/TMaze-v0", **kwargs)
        one_line_value_error(err, name, kwargs[name])
        with pytest.raises(ValueError, match=name):
            gym.make_vec("memenvs/TMaze-v0", num_envs=2, **kwargs)


def test_tmaze_largest_corridor_is_allowed() -> None:
    with time_limit(20):
        env = gym.make("memenvs/TMaze-v0", corridor_length=MAX_EPISODE_LENGTH // 2 - 1)
    assert env.unwrapped.max_steps == MAX_EPISODE_LENGTH


# --------------------------------------------------------------------------------------------
# Sequence tasks: every length knob
# --------------------------------------------------------------------------------------------


def knob_cases() -> list[tuple[str, str]]:
    cases = []
    for env_id in memenvs.list_ids("tasks"):
        try:
            knob = memenvs.make_task(env_id).length_knob
        except FileNotFoundError:  # a dataset without an embedded default
            continue
        if knob is not None and not env_id.rsplit("-v", 1)[0].endswith(("Easy", "Medium", "Hard")):
            cases.append((env_id, knob))
    return cases


@pytest.mark.parametrize(("env_id", "knob"), knob_cases())
def test_absurd_length_knob_is_refused_at_construction(env_id: str, knob: str) -> None:
    with time_limit(20):
        with pytest.raises(ValueError) as err:
            memenvs.make_task(env_id, **{knob: ABSURD})
        one_line_value_error(err, knob, ABSURD)
        with pytest.raises(ValueError, match=knob):
            gym.make(env_id, **{knob: ABSURD})
        with pytest.raises(ValueError, match=knob):
            gym.make_vec(env_id, num_envs=2, **{knob: ABSURD})


def test_copy_delay_limit_names_the_allowed_range() -> None:
    with pytest.raises(ValueError, match=rf"delay={ABSURD} is out of range: allowed in \[1, {MAX_EPISODE_LENGTH - 20}\]"):
        memenvs.make_task("copy", delay=ABSURD)
    task = memenvs.make_task("copy", delay=MAX_EPISODE_LENGTH - 20)
    assert task.max_length == MAX_EPISODE_LENGTH


@pytest.mark.parametrize(
    ("name", "kwargs", "param"),
    [
        ("copy", {"length": ABSURD}, "length"),
        ("copy", {"alphabet": 10**6}, "alphabet"),
        ("variable_copy", {"length": ABSURD}, "length"),
        ("denoise", {"length": ABSURD}, "length"),
        ("denoise", {"alphabet": 10**6}, "alphabet"),
        ("timewarp", {"alphabet": 10**6}, "alphabet"),
        ("memory_chain", {"num_bits": ABSURD}, "num_bits"),
        ("memory_chain", {"memory_length": 1000, "num_bits": 10**6}, "num_bits"),
    ],
)
def test_other_absurd_sizes_are_refused(name: str, kwargs: dict[str, int], param: str) -> None:
    with time_limit(20):
        with pytest.raises(ValueError) as err:
            memenvs.make_task(name, **kwargs)
        one_line_value_error(err, param, kwargs[param])


def test_largest_alphabet_is_allowed_and_cheap() -> None:
    with time_limit(20):
        env = gym.make("memenvs/Copy-v0", delay=5, length=2, alphabet=MAX_SYMBOLS - 2)
        obs, _ = env.reset(seed=0)
    assert obs.shape == (MAX_SYMBOLS,) and obs.sum() == 1.0


def test_vector_env_buffers_too_large_are_refused() -> None:
    with time_limit(20):
        with pytest.raises(ValueError) as err:
            gym.make_vec("memenvs/Copy-v0", num_envs=100_000, delay=MAX_EPISODE_LENGTH - 20)
    one_line_value_error(err, "num_envs", 100_000)


# --------------------------------------------------------------------------------------------
# Linear-time references equal the direct computations
# --------------------------------------------------------------------------------------------


def direct_variable_copy_guesses(task: VariableCopyTask) -> tuple[np.ndarray, float]:
    """The memoryless guesses of variable copy with score="all", over a [delay, step] grid."""
    L, A = task.length, task.alphabet
    delays = np.arange(1, task.max_delay + 1)[:, None]
    t = np.arange(task.max_length)[None, :]
    steps = delays + 2 * L
    alive = t < steps
    recall = (t >= delays + L) & alive
    gain_symbol = (recall / (A * steps)).sum(axis=0)
    gain_blank = ((alive & ~recall) / steps).sum(axis=0)
    guess = gain_symbol > gain_blank
    return guess, float(np.where(guess, gain_symbol, gain_blank).sum() / task.max_delay)


@pytest.mark.parametrize(("max_delay", "length", "alphabet"), [(1, 1, 2), (6, 3, 4), (40, 10, 8), (100, 3, 2)])
def test_variable_copy_memoryless_reference_equals_direct_sum(max_delay: int, length: int, alphabet: int) -> None:
    task = VariableCopyTask(max_delay=max_delay, length=length, alphabet=alphabet, score="all")
    guess, expected = direct_variable_copy_guesses(task)
    fast_guess, fast_expected = task._memoryless_guesses()
    np.testing.assert_array_equal(fast_guess, guess)
    assert fast_expected == pytest.approx(expected, rel=1e-12)


def direct_renewal(task: TimeWarpTask) -> np.ndarray:
    W, T = task.max_warp, task.seq_len
    pmf = np.zeros(W + 1)
    if task.warp == "uniform":
        pmf[W] = 1.0
    else:
        pmf[1:] = 1.0 / W
    start = np.zeros(T)
    start[0] = 1.0
    for t in range(1, T):
        k = min(t, W)
        start[t] = pmf[1 : k + 1] @ start[t - 1 :: -1][:k]
    return start


@pytest.mark.parametrize("warp", ["uniform", "variable"])
@pytest.mark.parametrize(("seq_len", "max_warp"), [(2, 1), (24, 4), (60, 7), (200, 50)])
def test_timewarp_renewal_equals_direct_recursion(warp: str, seq_len: int, max_warp: int) -> None:
    task = TimeWarpTask(seq_len=seq_len, max_warp=max_warp, warp=warp)
    np.testing.assert_allclose(task._run_statistics[1], direct_renewal(task), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("variable_copy", {"max_delay": 200_000, "score": "all"}),
        ("timewarp", {"seq_len": 400_000, "max_warp": 20_000}),
        ("timewarp", {"seq_len": 400_000, "max_warp": 20_000, "warp": "uniform", "padding": True}),
    ],
)
def test_long_tasks_construct_fast(name: str, kwargs: dict[str, Any]) -> None:
    with time_limit(20):
        start = time.perf_counter()
        reference = memenvs.make_task(name, **kwargs).reference_scores()
        elapsed = time.perf_counter() - start
    assert elapsed < 3.0 and math.isfinite(reference.memoryless)


class UncheckedTask(SequenceTask):
    """A task that validates nothing: the shared size check must still refuse its absurd sizes."""

    length_knob = "steps"

    def __init__(self, steps: int = 5, symbols: int = 3) -> None:
        self._store_kwargs(steps=steps, symbols=symbols)
        self.num_inputs = self.num_outputs = symbols
        self.max_length = steps


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": ABSURD}, rf"steps={ABSURD} gives episodes of {ABSURD} steps: allowed at most"),
        ({"symbols": 10**6}, r"UncheckedTask\(steps=5, symbols=1000000\) has 1000000 symbols: allowed at most"),
    ],
)
def test_shared_size_check_covers_tasks_without_their_own(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TaskEnv(UncheckedTask, **kwargs)
    with pytest.raises(ValueError, match=message):
        TaskVectorEnv(2, UncheckedTask, **kwargs)


# --------------------------------------------------------------------------------------------
# Package entry points: python -m memenvs, memenvs.__version__
# --------------------------------------------------------------------------------------------


def run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "memenvs", *args], capture_output=True, text=True, timeout=120)


def test_python_m_memenvs_lists_the_envs() -> None:
    done = run_module("TMazeEasy", "MemoryChainEasy", "--episodes", "2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:4] == ["id", "observation", "action", "steps"]
    assert [line.split()[0] for line in lines[2:]] == ["memenvs/MemoryChainEasy-v0", "memenvs/TMazeEasy-v0"]
    bad = run_module("no-such-env")
    assert bad.returncode == 2 and "no registered id matches" in bad.stderr
    version = run_module("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"memenvs {memenvs.__version__}"


def test_version_is_the_installed_distribution_or_a_placeholder() -> None:
    from importlib import metadata

    try:
        expected = metadata.version("memory-bench")
    except metadata.PackageNotFoundError:
        expected = "0+unknown"
    assert memenvs.__version__ == expected and "__version__" in memenvs.__all__

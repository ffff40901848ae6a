"""Rendering: every registered id draws its episode as text ("ansi") and as an image
("rgb_array"), single and vector envs alike, passes Gymnasium's render checks, and works with
Stable-Baselines3's own helpers (which ask for render_mode="rgb_array")."""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

import memenvs
from memenvs.control.cartpole import StatelessCartPoleEnv
from memenvs.control.tmaze import TMazeEnv, TMazeVectorEnv
from memenvs.core import TaskEnv, TaskVectorEnv
from memenvs.render import CELL, MAX_SHOWN_STEPS, Picture, cell_colour, sequence_rows, shade_text, symbol_text
from memenvs.tasks.copy import CopyTask

IDS = memenvs.list_ids()


def make(env_id: str, **kwargs: Any) -> gym.Env:
    try:
        return gym.make(env_id, **kwargs)
    except FileNotFoundError as err:  # a dataset without an embedded default
        pytest.skip(f"{env_id}: data not available ({str(err).split(';')[0]})")


def assert_image(frame: Any) -> None:
    assert isinstance(frame, np.ndarray) and frame.dtype == np.uint8
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.shape[0] >= CELL and frame.shape[1] >= CELL


def play_until_changed(env: gym.Env, first: Any, steps: int = 60) -> Any:
    """Step the oracle until the frame differs from ``first`` (or the episode ends); the last frame."""
    frame = first
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.unwrapped.oracle_action())
        frame = env.render()
        changed = not np.array_equal(frame, first) if isinstance(frame, np.ndarray) else frame != first
        if changed or terminated or truncated:
            break
    return frame


# --------------------------------------------------------------------------------------------
# Every registered id
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", IDS)
def test_ansi_frame_is_text_that_follows_the_episode(env_id: str) -> None:
    env = make(env_id, render_mode="ansi")
    assert env.metadata["render_modes"] == ["ansi", "rgb_array"] and env.metadata["render_fps"] > 0
    env.reset(seed=0)
    first = env.render()
    assert isinstance(first, str) and first.strip()
    later = play_until_changed(env, first)
    assert isinstance(later, str) and later != first
    env.reset(seed=0)
    assert env.render() == first  # the same seed draws the same picture


@pytest.mark.parametrize("env_id", IDS)
def test_rgb_frame_is_an_image_that_follows_the_episode(env_id: str) -> None:
    env = make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    assert_image(first)
    later = play_until_changed(env, first, steps=200)
    assert_image(later)
    assert not np.array_equal(later, first)


@pytest.mark.parametrize("env_id", IDS)
def test_vector_env_renders_one_frame_per_env(env_id: str) -> None:
    try:
        vec = gym.make_vec(env_id, num_envs=2, render_mode="ansi")
    except FileNotFoundError:
        pytest.skip("data not available")
    vec.reset(seed=0)
    frames = vec.render()
    assert isinstance(frames, tuple) and len(frames) == 2 and all(isinstance(f, str) and f for f in frames)
    vec.step(vec.action_space.sample())
    assert len(vec.render()) == 2
    vec.close()


@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_check_env_with_render_modes(env_id: str) -> None:
    env = make(env_id, render_mode="rgb_array")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env.unwrapped)  # also makes the env in every declared mode and renders it
    env.close()


# --------------------------------------------------------------------------------------------
# Stable-Baselines3's helpers pass render_mode="rgb_array"
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ["memenvs/TMaze-v0", "memenvs/Copy-v0", "memenvs/RepeatPrevious-v0"])
def test_sb3_make_vec_env_and_ppo_from_an_id(env_id: str) -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    vec = make_vec_env(env_id, n_envs=2, seed=0)
    assert vec.num_envs == 2 and vec.render_mode == "rgb_array"
    vec.reset()
    frames = vec.get_images()
    assert len(frames) == 2
    for frame in frames:
        assert_image(frame)
    vec.close()
    model = PPO("MlpPolicy", env_id, n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu")
    model.learn(32)
    assert model.num_timesteps >= 32


# --------------------------------------------------------------------------------------------
# Render modes: bad values, no mode, before reset
# --------------------------------------------------------------------------------------------

CONSTRUCTORS = [
    lambda mode: TaskEnv("memenvs.tasks.copy:CopyTask", render_mode=mode),
    lambda mode: TaskVectorEnv(2, "memenvs.tasks.copy:CopyTask", render_mode=mode),
    lambda mode: TMazeEnv(render_mode=mode),
    lambda mode: TMazeVectorEnv(2, render_mode=mode),
    lambda mode: StatelessCartPoleEnv(render_mode=mode),
]


@pytest.mark.parametrize("construct", CONSTRUCTORS)
@pytest.mark.parametrize("mode", ["human", "video", "RGB_ARRAY", 1])
def test_bad_render_mode_names_parameter_value_and_choices(construct: Any, mode: Any) -> None:
    with pytest.raises(ValueError, match=rf"render_mode={mode!r} is not allowed: choose one of None, 'ansi', 'rgb_array'"):
        construct(mode)


@pytest.mark.parametrize("construct", CONSTRUCTORS)
def test_render_without_a_mode_warns_and_returns_none(construct: Any) -> None:
    env = construct(None)
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert env.render() is None


@pytest.mark.parametrize("construct", CONSTRUCTORS[:2] + CONSTRUCTORS[4:])
def test_render_before_reset_says_so(construct: Any) -> None:
    frames = construct("ansi").render()
    for frame in frames if isinstance(frames, tuple) else (frames,):
        assert "reset()" in frame


# --------------------------------------------------------------------------------------------
# What the pictures show
# --------------------------------------------------------------------------------------------


def test_tmaze_picture_shows_agent_cue_and_turn() -> None:
    env = gym.make("memenvs/TMaze-v0", corridor_length=3, render_mode="ansi")
    env.reset(seed=0)
    cue = env.unwrapped._cue
    goal_row, other_row = (0, 2) if cue == 0 else (2, 0)
    lines = env.render().splitlines()[-3:]
    assert lines[1] == "#A...#" and lines[goal_row] == "####G#" and lines[other_row] == "####X#"
    for _ in range(3):
        env.step(0)
    assert env.render().splitlines()[-2] == "#...A#"
    env.step(2 + cue)
    text = env.render()
    assert "done  return +1" in text and text.splitlines()[-3:][goal_row] == "####A#"


def test_tmaze_long_corridor_is_drawn_at_a_reduced_scale() -> None:
    env = gym.make("memenvs/TMaze-v0", corridor_length=100_000, render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    assert "1 cell per" in text and max(len(line) for line in text.splitlines()[-3:]) == 66


def test_copy_picture_shows_inputs_targets_and_predictions() -> None:
    env = gym.make("memenvs/Copy-v0", delay=4, length=2, alphabet=3, render_mode="ansi")
    env.reset(seed=1)
    batch = env.unwrapped._batch
    data = symbol_text(batch.inputs[:2, 0])
    actions = [0] * 6 + [int(batch.targets[6, 0]), (int(batch.targets[7, 0]) % 3) + 1]  # recall: right, wrong
    for a in actions:
        env.step(a)
    rows = {line.split()[-2] if len(line.split()) > 1 else "": line for line in env.render().splitlines()[1:]}
    assert rows["in"].endswith(f"{data}...>..")  # data, blanks, the marker, recall steps
    assert rows["tgt"].endswith(data) and rows["out"][-2] == data[0] and rows["out"][-1] != data[1]
    assert "return +0.500" in env.render()


def test_vector_frames_equal_single_env_frames() -> None:
    cases = [("memenvs/Copy-v0", {"delay": 3, "length": 2}, 7), ("memenvs/TMaze-v0", {"corridor_length": 2}, 3)]
    for env_id, kwargs, steps in cases:
        vec = gym.make_vec(env_id, num_envs=2, render_mode="ansi", **kwargs)
        singles = [gym.make(env_id, render_mode="ansi", **kwargs) for _ in range(2)]
        vec.reset(seed=4)
        for i, env in enumerate(singles):
            env.reset(seed=4 + i)
        for _ in range(steps):  # the whole first episode of every env
            actions = vec.unwrapped.oracle_actions()
            vec.step(actions)
            for env, action in zip(singles, actions):
                env.step(action)
            assert vec.render() == tuple(env.render() for env in singles)


def test_adding_footer_gives_the_scored_values() -> None:
    env = gym.make("memenvs/Adding-v0", seq_len=4, render_mode="ansi")
    env.reset(seed=0)
    for _ in range(4):
        env.step(np.zeros(1, dtype=np.float32))  # predicts a sum of 1.0
    assert "step 3: target" in env.render() and "prediction [1.]" in env.render()


def test_image_paints_each_cell_in_its_colour() -> None:
    image = Picture([("label", "A."), ("", "@")], header=["text only"]).rgb()
    assert image.shape == (2 * CELL, 2 * CELL, 3)
    assert tuple(image[0, 0]) == cell_colour("A") and tuple(image[0, CELL]) == cell_colour(".")
    assert tuple(image[CELL, 0]) == (0, 0, 0) and tuple(image[CELL, CELL]) == (255, 255, 255)
    assert cell_colour("1") != cell_colour("2")
    assert Picture().rgb().shape == (CELL, CELL, 3)


def test_text_helpers() -> None:
    assert symbol_text(np.array([0, 1, 10, 61, 62]), blank=0) == ".1aZ?"
    assert symbol_text(np.array([0, 4]), special={4: ">"}) == "0>"
    assert shade_text(np.array([0.0, 0.5, 1.0, 2.0]), 0.0, 1.0) == " =@@"
    assert shade_text(np.array([-3.0, 3.0]), -np.inf, np.inf) == " @"  # unbounded: the values' own range
    rows, notes = sequence_rows([("in", "abcdef"), ("tgt", "   xyz")], width=3)
    assert [cells for _, cells in rows] == ["abc", "", "def", "xyz"] and notes == []
    assert rows[0][0].split() == ["0", "in"] and rows[2][0].split() == ["3", "in"]
    long_rows, notes = sequence_rows([("in", "a" * (MAX_SHOWN_STEPS + 10))], width=64)
    assert len(long_rows) == MAX_SHOWN_STEPS // 64 and notes and "not shown" in notes[0]


def test_every_task_draws_one_character_per_step() -> None:
    for env_id in memenvs.list_ids("tasks"):
        try:
            task = memenvs.make_task(env_id)
        except FileNotFoundError:
            continue
        batch = task.sample(1, np.random.default_rng(0))
        n = int(batch.lengths[0])
        for name, cells in task.render_inputs(batch.inputs[:n, 0]):
            assert len(cells) == n, (env_id, name)
        assert len(task.render_targets(batch.targets[:n, 0])) == n, env_id
    assert isinstance(CopyTask().render_inputs(np.zeros(0, dtype=np.int64)), list)

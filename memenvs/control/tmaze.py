"""Bakker's T-maze (Bakker, NIPS 2002): carry a one-bit cue down a corridor of any length.

:class:`TMazeEnv` is the Gymnasium env and :class:`TMazeVectorEnv` its numpy-batched VectorEnv
(registered as ``vector_entry_point``, NEXT_STEP autoreset), both in this file as in Gymnasium's
``classic_control/cartpole.py``. Seeding rule (as ``memenvs.core``): env ``i`` of a vector env
reset with ``seed=s`` plays exactly the episodes of a single env reset with ``seed=s + i``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv

from memenvs.core import NAMESPACE, ReferenceScores, _check_action, check_int, check_length, envs_to_reset
from memenvs.render import RENDER_FPS, RENDER_MODES, Picture, check_render_mode

FORWARD, BACK, UP, DOWN = 0, 1, 2, 3
OBS_SIZE = 3  # [cue up, cue down, at junction]
#: Most corridor cells a rendered maze draws; a longer corridor is drawn at a reduced scale.
RENDERED_CELLS = 64


def _check_kwargs(corridor_length: int, max_steps: int | None) -> tuple[int, int]:
    if max_steps is None:  # the default budget 2·(corridor_length + 1) must fit as well
        length = check_length("corridor_length", corridor_length, fixed=2, per_unit=2)
        return length, 2 * (length + 1)
    length = check_length("corridor_length", corridor_length, fixed=1)
    return length, check_length("max_steps", max_steps, low=length + 1)


def random_policy_return(corridor_length: int, max_steps: int) -> float:
    """Exact expected return of uniformly random actions, in closed form (``O(corridor_length)``).

    From a corridor cell a random action moves forward or back with probability 1/4 each and
    bumps a wall (stays) with 1/2. At the junction it turns (ending the episode, right or wrong
    with equal chance, expected reward 0) with 1/2, goes back with 1/4 and bumps with 1/4. The
    only non-zero expected reward is the -1 of running out of the step budget, so the return is
    minus the probability ``S(M)`` of not having turned after ``M = max_steps`` steps.

    The position ``0..L`` (``L = corridor_length``) moves by the sub-stochastic matrix
    ``Q = I/2 + A/4``, with ``A`` the path's adjacency matrix plus ``A[0,0] = 1`` (bumping back
    at the start) and ``A[L,L] = -1`` (the turns that leave). Its eigenvectors are
    ``v_k(j) = cos(θ_k (j + 1/2))`` with ``θ_k = (2k + 1)π / (2(L + 1))``, ``k = 0..L``
    (``A`` reflects at 0 and the ghost cell ``L + 1`` holds ``-v_k(L)``), eigenvalues
    ``cos²(θ_k/2)`` and ``|v_k|² = (L + 1)/2``. Expanding the start ``e_0`` in them, with
    ``Σ_j v_k(j) = (-1)^k / (2 sin(θ_k/2))``, gives

        ``S(M) = 1/(L + 1) · Σ_k (-1)^k cos^(2M+1)(φ_k) / sin(φ_k)``,  ``φ_k = θ_k / 2``.

    The tests check it against stepping the position distribution (an ``O(L·M)`` dynamic
    programme) for small corridors.
    """
    L, M = corridor_length, max_steps
    k = np.arange(L + 1)
    phi = (2 * k + 1) * np.pi / (4 * (L + 1))
    terms = np.exp((2 * M + 1) * np.log(np.cos(phi))) / np.sin(phi)
    survive = float(np.sum(terms[0::2]) - np.sum(terms[1::2])) / (L + 1)
    return -min(max(survive, 0.0), 1.0)


def _reference(corridor_length: int, max_steps: int) -> ReferenceScores:
    return ReferenceScores(random=random_policy_return(corridor_length, max_steps), memoryless=0.0, optimal=1.0)


def _draw_cue(rng: np.random.Generator) -> int:
    """0 (up) or 1 (down), equally likely; ``random()`` is the cheapest generator call, which
    matters when a vector env restarts many episodes one generator at a time."""
    return int(rng.random() < 0.5)


def _maze_picture(length: int, max_steps: int, cue: int, pos: int, t: int, turn: int, total: float) -> Picture:
    """The maze seen from above: the corridor with the agent ``A``, the cued arm ``G`` and the
    other arm ``X`` at the junction (an agent that turned stands in its arm), walls ``#``.

    ``turn`` is UP or DOWN once the agent has turned, else -1. At most ``RENDERED_CELLS``
    corridor cells are drawn; a longer corridor is scaled down (the header says how much).
    """
    cells = min(length + 1, RENDERED_CELLS)
    col = 1 + (pos if cells == length + 1 else pos * (cells - 1) // length)
    corridor = ["#"] + ["."] * cells + ["#"]
    arms = {UP: ["#"] * (cells + 2), DOWN: ["#"] * (cells + 2)}
    for arm in (UP, DOWN):
        arms[arm][cells] = "G" if arm - UP == cue else "X"
    if turn in (UP, DOWN):
        arms[turn][cells] = "A"
    else:
        corridor[col] = "A"
    header = [f"T-maze corridor_length={length}, cue {'up' if cue == 0 else 'down'} (shown at step 0 only)"]
    if cells < length + 1:
        header.append(f"(drawn at 1 cell per {length / (cells - 1):.1f} positions; the agent is at position {pos})")
    status = "done" if turn in (UP, DOWN) or t >= max_steps else f"step {t}/{max_steps}"
    header.append(f"{status}  return {total:+.0f}")
    rows = [("", "".join(arms[UP])), ("", "".join(corridor)), ("", "".join(arms[DOWN]))]
    return Picture(rows, header)


def _observations(cue: np.ndarray, show_cue: np.ndarray, at_junction: np.ndarray) -> np.ndarray:
    obs = np.zeros((cue.shape[0], OBS_SIZE), dtype=np.float32)
    obs[np.arange(cue.shape[0]), cue] = show_cue
    obs[:, 2] = at_junction
    return obs


class TMazeEnv(gym.Env):
    """T-maze: a cue at the start says which way to turn at the end of a long corridor.

    ## Description
    The agent starts at the left end of a corridor of ``corridor_length`` cells; the junction of
    the T lies ``corridor_length`` forward moves away. At the first step only, the observation
    shows a cue: the goal is up or down (equally likely). At the junction the agent must turn
    towards the cued arm (Bakker 2002). The cue has to be remembered for at least
    ``corridor_length`` steps; nothing observed in between is informative.

    ## Observation Space
    ``Box(0, 1, (3,), float32)``: ``[cue up, cue down, at junction]``. The cue bits are set
    only on the first observation of an episode; the junction flag whenever the agent stands at
    the junction. Every corridor cell, including the start when revisited, looks the same.

    ## Action Space
    ``Discrete(4)``: 0 forward, 1 back, 2 up, 3 down. Moving into a wall does nothing (forward
    at the junction, back at the start, up / down in the corridor).

    ## Rewards
    +1 for turning towards the cue at the junction, -1 for turning the other way or for using up
    the step budget; 0 on every other step. Return in [-1, 1].
    References: optimal 1 (walk forward, turn as cued); best memoryless 0 (at the junction
    nothing shows the cue, so any turn is right half the time, and turning beats timing out);
    random: exact value in closed form (:func:`random_policy_return`), -0.998 for the default
    corridor of 10 (a random walk seldom reaches the junction within the budget).

    ## Episode End
    Terminates when the agent turns up or down at the junction, or after ``max_steps`` steps
    (``terminated=True`` with reward -1: the budget is part of the task, not a time limit to
    bootstrap through).

    ## Arguments
    - ``corridor_length`` (int ≥ 1, default 10): forward moves from the start to the junction,
      the memory knob. Bakker used lengths up to 70.
    - ``max_steps`` (int in [corridor_length + 1, ``MAX_EPISODE_LENGTH``], default
      ``2·(corridor_length + 1)``): step budget. With the default budget ``corridor_length``
      may be at most ``MAX_EPISODE_LENGTH/2 - 1`` (:mod:`memenvs.core`). Bakker's maze had
      no budget and penalised wasted steps with -0.1 each instead; a budget keeps the return in
      [-1, 1] and the random return exact. The default allows twice the shortest path so that
      exploration is possible but wandering is not free.

    - ``render_mode`` (None, "ansi" or "rgb_array"): ``render()`` draws the maze from above,
      the agent ``A`` in the corridor, the cued arm ``G`` and the other arm ``X``, as text or as
      an image.

    ## Version History
    - v0: initial version.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": list(RENDER_MODES), "render_fps": RENDER_FPS}

    def __init__(self, corridor_length: int = 10, max_steps: int | None = None, render_mode: str | None = None) -> None:
        self.corridor_length, self.max_steps = _check_kwargs(corridor_length, max_steps)
        self.render_mode = check_render_mode(render_mode)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(OBS_SIZE,), dtype=np.float32)
        self.action_space = spaces.Discrete(4)
        self.reference = _reference(self.corridor_length, self.max_steps)
        self._cue = 0
        self._pos = 0
        self._t = 0
        self._done = True
        self._turn = -1
        self._return = 0.0

    def _obs(self) -> np.ndarray:
        at_junction = np.array([self._pos == self.corridor_length])
        return _observations(np.array([self._cue]), np.array([self._t == 0]), at_junction)[0]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._cue = _draw_cue(self.np_random)
        self._pos = 0
        self._t = 0
        self._done = False
        self._turn = -1
        self._return = 0.0
        return self._obs(), {}

    def step(self, action: Any):
        if self._done:
            raise RuntimeError("the episode has ended (or never started): call reset() before step()")
        _check_action(self.action_space, action)
        action = int(action)
        reward = 0.0
        terminated = False
        if self._pos == self.corridor_length and action in (UP, DOWN):
            reward = 1.0 if action - UP == self._cue else -1.0
            terminated = True
            self._turn = action
        elif action == FORWARD:
            self._pos = min(self._pos + 1, self.corridor_length)
        elif action == BACK:
            self._pos = max(self._pos - 1, 0)
        self._t += 1
        if not terminated and self._t >= self.max_steps:
            reward, terminated = -1.0, True
        self._done = terminated
        self._return += reward
        return self._obs(), reward, terminated, False, {}

    def render(self) -> str | np.ndarray | None:
        """The maze as text (``"ansi"``) or an image (``"rgb_array"``); see ``render_mode``."""
        if self.render_mode is None:
            gym.logger.warn("render() was called without a render mode: make the env with render_mode='ansi' or 'rgb_array'")
            return None
        picture = _maze_picture(
            self.corridor_length, self.max_steps, self._cue, self._pos, self._t, self._turn, self._return
        )
        return picture.render(self.render_mode)

    def oracle_action(self) -> int:
        """Walk forward, then turn the way the cue said."""
        return FORWARD if self._pos < self.corridor_length else UP + self._cue

    def memoryless_action(self) -> int:
        """Walk forward, then always turn up (right half the time)."""
        return FORWARD if self._pos < self.corridor_length else UP


class TMazeVectorEnv(VectorEnv):
    """``num_envs`` T-mazes stepped together in numpy; see :class:`TMazeEnv` for the task.

    Autoreset mode is NEXT_STEP: the step after an env terminates ignores its action and returns
    the first observation of a new episode with reward 0. With a ``render_mode``, ``render()``
    returns a tuple with one maze per env (Gymnasium's vector convention).
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": list(RENDER_MODES),
        "render_fps": RENDER_FPS,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        num_envs: int = 1,
        corridor_length: int = 10,
        max_steps: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.num_envs = check_int("num_envs", num_envs, low=1)
        self.corridor_length, self.max_steps = _check_kwargs(corridor_length, max_steps)
        self.render_mode = check_render_mode(render_mode)
        self.single_observation_space = spaces.Box(0.0, 1.0, shape=(OBS_SIZE,), dtype=np.float32)
        self.single_action_space = spaces.Discrete(4)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.reference = _reference(self.corridor_length, self.max_steps)
        self._rngs = [seeding.np_random(None)[0] for _ in range(self.num_envs)]
        self._cue = np.zeros(self.num_envs, dtype=np.int64)
        self._pos = np.zeros(self.num_envs, dtype=np.int64)
        self._t = np.zeros(self.num_envs, dtype=np.int64)
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)
        self._started = False
        self._turn = np.full(self.num_envs, -1, dtype=np.int64)  # for render()
        self._returns = np.zeros(self.num_envs, dtype=np.float64)

    def _new_episodes(self, envs: np.ndarray) -> None:
        for i in envs:
            self._cue[i] = _draw_cue(self._rngs[i])
        self._pos[envs] = 0
        self._t[envs] = 0
        self._turn[envs] = -1
        self._returns[envs] = 0.0

    def _obs(self) -> np.ndarray:
        return _observations(self._cue, self._t == 0, self._pos == self.corridor_length)

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        envs = envs_to_reset(self._rngs, seed, options)
        self._new_episodes(envs)
        self._needs_reset[envs] = False
        self._started = True
        return self._obs(), {}

    def step(self, actions: Any):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions)
        if not (np.issubdtype(actions.dtype, np.integer) and actions.shape == (self.num_envs,)) or (
            not self.action_space.contains(actions.astype(np.int64))
        ):
            raise ValueError(f"actions {actions!r} are not in the action space {self.action_space}")
        active = ~self._needs_reset
        at_junction = self._pos == self.corridor_length
        turned = active & at_junction & ((actions == UP) | (actions == DOWN))
        rewards = np.where(turned, np.where(actions - UP == self._cue, 1.0, -1.0), 0.0)
        moves = (actions == FORWARD).astype(np.int64) - (actions == BACK)
        self._pos = np.where(active, np.clip(self._pos + moves, 0, self.corridor_length), self._pos)
        self._t += active
        timed_out = active & ~turned & (self._t >= self.max_steps)
        rewards[timed_out] = -1.0
        terminated = turned | timed_out
        if self.render_mode is not None:
            self._turn = np.where(turned, actions, self._turn)
            self._returns += rewards
        restarting = np.flatnonzero(self._needs_reset)
        if restarting.size:
            self._new_episodes(restarting)
        self._needs_reset = terminated
        truncated = np.zeros(self.num_envs, dtype=bool)
        return self._obs(), rewards, terminated, truncated, {}

    def render(self) -> tuple[str | np.ndarray, ...] | None:
        """One maze per env, as :meth:`TMazeEnv.render` draws it."""
        if self.render_mode is None:
            gym.logger.warn("render() was called without a render mode: make the env with render_mode='ansi' or 'rgb_array'")
            return None
        return tuple(
            _maze_picture(
                self.corridor_length, self.max_steps, int(self._cue[i]), int(self._pos[i]), int(self._t[i]),
                int(self._turn[i]), float(self._returns[i]),
            ).render(self.render_mode)
            for i in range(self.num_envs)
        )

    def oracle_actions(self) -> np.ndarray:
        """What :meth:`TMazeEnv.oracle_action` does, for every env."""
        return np.where(self._pos < self.corridor_length, FORWARD, UP + self._cue)

    def memoryless_actions(self) -> np.ndarray:
        """What :meth:`TMazeEnv.memoryless_action` does, for every env."""
        return np.where(self._pos < self.corridor_length, FORWARD, UP)


def _register() -> None:
    for suffix, length in (("", 10), ("Easy", 10), ("Medium", 50), ("Hard", 100)):
        gym.register(
            id=f"{NAMESPACE}/TMaze{suffix}-v0",
            entry_point="memenvs.control.tmaze:TMazeEnv",
            vector_entry_point="memenvs.control.tmaze:TMazeVectorEnv",
            kwargs={"corridor_length": length},
        )


_register()

"""Stateless CartPole: Gymnasium's CartPole with the velocities hidden (and optional noise).

With only the cart position and pole angle visible, balancing needs the velocities, which a
policy must infer from the recent past: a short-horizon memory task with continuous inputs (the
RLlib / POPGym "stateless" and "position-only" CartPole).

No native vector env: Gymnasium's ``CartPoleVectorEnv`` draws every sub-env from one random
generator, so it cannot honour the memenvs seeding rule (vector env ``i`` seeded ``s`` == single env
seeded ``s + i``). ``gym.make_vec`` therefore falls back to a ``SyncVectorEnv`` of single envs.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.cartpole import CartPoleEnv, CartPoleVectorEnv

from memenvs.core import NAMESPACE, ReferenceScores, _check_action, check_float, check_length
from memenvs.render import RENDER_MODES, Picture, check_render_mode

#: Gains of the full-state linear controller used as the oracle, on ``[x, x_dot, theta, theta_dot]``.
#: It balances every one of 2,000 seeded starts for 1,000 steps.
ORACLE_GAINS = np.array([0.1, 0.2, 1.0, 0.5])
REFERENCE_EPISODES = 4000
REFERENCE_SEED = 0


def lean_policy(obs: np.ndarray) -> np.ndarray:
    """Memoryless baseline: push the cart towards the side the pole leans (obs ``[..., 1]``)."""
    return (obs[..., 1] > 0).astype(np.int64)


@functools.lru_cache(maxsize=64)
def estimate_reference(max_steps: int, noise_sigma: float) -> ReferenceScores:
    """Random and memoryless returns estimated over ``REFERENCE_EPISODES`` seeded episodes.

    Neither is derivable in closed form. The memoryless value is that of :func:`lean_policy`
    (the best of the simple position-only linear rules we tried, ~41 steps noiseless), so it is a
    lower bound on the best memoryless return. Standard error is about 0.002 at ``max_steps=200``.
    Uses Gymnasium's vectorised CartPole, which has the same dynamics and start distribution.
    """
    rng = np.random.default_rng(REFERENCE_SEED)
    env = CartPoleVectorEnv(num_envs=REFERENCE_EPISODES, max_episode_steps=max_steps + 1)
    scores = {}
    for name in ("random", "memoryless"):
        state, _ = env.reset(seed=REFERENCE_SEED)
        alive = np.ones(REFERENCE_EPISODES, dtype=bool)
        steps = np.zeros(REFERENCE_EPISODES)
        for _ in range(max_steps):
            obs = _observe(state, noise_sigma, rng)
            if name == "random":
                actions = rng.integers(0, 2, size=REFERENCE_EPISODES)
            else:
                actions = lean_policy(obs)
            state, _, terminated, _, _ = env.step(actions)
            alive &= ~terminated
            steps += alive
            if not alive.any():
                break
        scores[name] = float(steps.mean() / max_steps)
    env.close()
    return ReferenceScores(random=scores["random"], memoryless=scores["memoryless"], optimal=1.0)


def _observe(state: np.ndarray, noise_sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Positions ``[..., (x, theta)]`` of full states, plus clipped Gaussian noise."""
    obs = state[..., [0, 2]].astype(np.float32)
    if noise_sigma > 0:
        obs = obs + rng.normal(0.0, noise_sigma, size=obs.shape).astype(np.float32)
    return np.clip(obs, -_OBS_HIGH, _OBS_HIGH)


#: Observation bounds: twice CartPole's termination thresholds (2.4 m, 12 degrees), as CartPole does.
_OBS_HIGH = np.array([2 * 2.4, 2 * 12 * 2 * np.pi / 360], dtype=np.float32)
#: Rendered track: cells across the ±2.4 m track, and the pole's length in cells (its 1 m at the
#: track's scale).
TRACK_CELLS = 49
POLE_CELLS = 10


def cart_picture(state: np.ndarray, observed: np.ndarray, steps: int, max_steps: int, done: bool) -> Picture:
    """The cart ``###`` on the track ``-`` (ends ``|``) with the pole ``|`` above it, drawn to
    scale from the true state; the header gives the true state and what the agent observed."""
    x, x_dot, theta, theta_dot = (float(v) for v in state)
    scale = (TRACK_CELLS - 1) / 4.8  # cells per metre
    centre = int(round((np.clip(x, -2.4, 2.4) + 2.4) * scale))
    grid = [[" "] * TRACK_CELLS for _ in range(POLE_CELLS + 2)]
    for r in range(1, POLE_CELLS + 1):  # r cells up the pole, from its pivot on the cart
        col = centre + int(round(r * np.tan(theta)))
        if 0 <= col < TRACK_CELLS:
            grid[POLE_CELLS - r][col] = "|"
    for col in range(centre - 1, centre + 2):
        if 0 <= col < TRACK_CELLS:
            grid[POLE_CELLS][col] = "#"
    grid[POLE_CELLS + 1] = ["|"] + ["-"] * (TRACK_CELLS - 2) + ["|"]
    header = [
        f"x={x:+.3f} m  x_dot={x_dot:+.3f} m/s  theta={np.degrees(theta):+.2f} deg  theta_dot={theta_dot:+.3f} rad/s",
        f"observed: x={observed[0]:+.3f}  theta={np.degrees(observed[1]):+.2f} deg  "
        + ("done" if done else f"step {steps}/{max_steps}"),
    ]
    return Picture([("", "".join(row)) for row in grid], header)


class StatelessCartPoleEnv(CartPoleEnv):
    """CartPole that shows only the cart position and pole angle, optionally with noise.

    ## Description
    Gymnasium's CartPole-v1 dynamics (Barto, Sutton & Anderson 1983): push a cart left or right
    to keep the pole upright and the cart on the track. The observation drops the cart velocity
    and pole angular velocity, so a policy has to estimate them from past observations
    (RLlib / POPGym "stateless cartpole"). ``noise_sigma > 0`` adds Gaussian noise to what is
    shown (POPGym's NoisyPositionOnlyCartPole), so single observations cannot be trusted either.

    ## Observation Space
    ``Box(-[4.8, 0.419], [4.8, 0.419], (2,), float32)``: ``[cart position, pole angle]``
    (radians) plus noise, clipped to the box (twice the termination thresholds, as CartPole).

    ## Action Space
    ``Discrete(2)``: 0 push left, 1 push right.

    ## Rewards
    ``1/max_steps`` for every step after which the pole is still up (0 on the step that drops
    it), so the return is the fraction of the episode survived, in [0, 1] ⊂ [-1, 1].
    References: optimal 1.0 (a full-state linear controller balances to the end); random and
    memoryless are Monte-Carlo estimates (:func:`estimate_reference`), the memoryless one from
    the "push towards the lean" rule; about 0.10 and 0.20 at ``max_steps=200`` without noise.

    ## Episode End
    Terminates when the pole tilts beyond ±12° or the cart leaves ±2.4 (CartPole's rules);
    truncates after ``max_steps`` steps.

    ## Arguments
    - ``max_steps`` (int ≥ 1, default 200): episode length limit. POPGym presets 200 / 400 / 600.
      (Not ``max_episode_steps``, which ``gym.make`` reserves for its TimeLimit wrapper.)
    - ``noise_sigma`` (float ≥ 0, default 0.0): standard deviation of the observation noise.
      POPGym noisy presets 0.1 / 0.2 / 0.3.
    - ``render_mode`` (None, "ansi" or "rgb_array"): ``render()`` draws the true state, the cart
      on its track and the pole to scale, as text or as an image (numpy only; CartPole's pygame
      "human" window is not offered).

    ## Version History
    - v0: initial version. POPGym gives -1 when the pole falls; here falling just ends the
      income, so the return reads as "fraction of the episode balanced".
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": list(RENDER_MODES), "render_fps": 50}

    def __init__(self, max_steps: int = 200, noise_sigma: float = 0.0, render_mode: str | None = None) -> None:
        self.max_steps = check_length("max_steps", max_steps)
        self.noise_sigma = check_float("noise_sigma", noise_sigma, low=0.0)
        super().__init__(render_mode=check_render_mode(render_mode))
        self.observation_space = spaces.Box(-_OBS_HIGH, _OBS_HIGH, dtype=np.float32)
        self.reference = estimate_reference(self.max_steps, self.noise_sigma)
        self._steps = 0
        self._done = True
        self._last_obs = np.zeros(2, dtype=np.float32)

    def _positions(self) -> np.ndarray:
        self._last_obs = _observe(np.asarray(self.state), self.noise_sigma, self.np_random)
        return self._last_obs.copy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed, options=options)
        self._steps = 0
        self._done = False
        return self._positions(), {}

    def step(self, action: Any):
        if self._done:
            raise RuntimeError("the episode has ended (or never started): call reset() before step()")
        _check_action(self.action_space, action)
        _, _, terminated, _, _ = super().step(int(action))
        self._steps += 1
        truncated = not terminated and self._steps >= self.max_steps
        reward = 0.0 if terminated else 1.0 / self.max_steps
        self._done = terminated or truncated
        return self._positions(), reward, terminated, truncated, {}

    def render(self) -> str | np.ndarray | None:
        """The cart and pole as text (``"ansi"``) or an image (``"rgb_array"``)."""
        if self.render_mode is None:
            gym.logger.warn("render() was called without a render mode: make the env with render_mode='ansi' or 'rgb_array'")
            return None
        if self.state is None:
            return Picture(header=["no episode yet: call reset()"]).render(self.render_mode)
        picture = cart_picture(np.asarray(self.state), self._last_obs, self._steps, self.max_steps, self._done)
        return picture.render(self.render_mode)

    def oracle_action(self) -> int:
        """A full-state linear controller on the true (hidden) state."""
        return int(np.dot(ORACLE_GAINS, self.state) > 0)

    def memoryless_action(self) -> int:
        """Push towards the side the pole appears to lean (see :func:`lean_policy`)."""
        return int(lean_policy(self._last_obs))


def _register() -> None:
    presets = {
        "StatelessCartPole": [("", 200, 0.0), ("Easy", 200, 0.0), ("Medium", 400, 0.0), ("Hard", 600, 0.0)],
        "NoisyStatelessCartPole": [("", 200, 0.1), ("Easy", 200, 0.1), ("Medium", 200, 0.2), ("Hard", 200, 0.3)],
    }
    for name, rows in presets.items():
        for suffix, steps, sigma in rows:
            gym.register(
                id=f"{NAMESPACE}/{name}{suffix}-v0",
                entry_point="memenvs.control.cartpole:StatelessCartPoleEnv",
                kwargs={"max_steps": steps, "noise_sigma": sigma},
            )


_register()

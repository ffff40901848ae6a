"""Environment helpers shared by the task tests (numpy + gymnasium only, never torch)."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym


def run_episode(env: gym.Env, policy: Callable[[gym.Env], object], seed: int | None = None) -> float:
    """Return of one episode where ``policy(env.unwrapped)`` picks each action."""
    env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        _, reward, terminated, truncated, _ = env.step(policy(env.unwrapped))
        total += reward
        done = terminated or truncated
    return total

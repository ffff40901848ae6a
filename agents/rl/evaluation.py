"""Evaluate a recurrent policy over whole episodes, carrying its state for the user."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecMonitor

from memenvs.core import check_int


def _reference_optimum(env: VecEnv) -> float | None:
    """The optimal return declared by a memenvs env (``env.reference.optimal``), if any."""
    try:
        reference = env.get_attr("reference", indices=[0])[0]
    except AttributeError:
        return None
    return getattr(reference, "optimal", None)


def evaluate(
    model: BaseAlgorithm,
    env: VecEnv | gym.Env,
    n_episodes: int = 100,
    deterministic: bool = True,
    success_threshold: float | None = None,
) -> dict[str, Any]:
    """Run ``n_episodes`` episodes with ``model.predict``, threading the recurrent state and the
    episode starts through every call (SB3's ``evaluate_policy`` does the bookkeeping).

    Args:
        model: any SB3 algorithm; recurrent ones get ``state`` / ``episode_start`` back each step.
        env: an SB3 VecEnv (e.g. from :func:`agents.rl.make_vec_env`) or a single Gymnasium env.
            It is reset first.
        n_episodes: episodes to run, spread evenly over the envs (so that short episodes are not
            over-represented).
        deterministic: the most likely actions (default) or samples.
        success_threshold: an episode succeeds when the env reports ``info["is_success"]`` at its
            end, else when its return is at least this value. None (default): the optimal return
            declared by memenvs envs (``env.reference.optimal``, minus 1e-6 for float sums);
            envs without either report a success rate of NaN.

    Returns:
        ``{"mean_return", "std", "success_rate", "mean_length", "n_episodes", "returns"}``.
    """
    n_episodes = check_int("n_episodes", n_episodes, low=1)
    if not isinstance(env, VecEnv):
        env = VecMonitor(DummyVecEnv([lambda: env]))  # type: ignore[list-item, return-value]
    if success_threshold is None:
        optimum = _reference_optimum(env)
        success_threshold = None if optimum is None else optimum - 1e-6

    reported: list[bool] = []
    reported_count = 0

    def record_success(local: dict[str, Any], _: dict[str, Any]) -> None:
        nonlocal reported_count
        if local["done"] and (not local["is_monitor_wrapped"] or "episode" in local["info"]):
            reported.append(bool(local["info"].get("is_success", False)))
            reported_count += "is_success" in local["info"]

    returns, lengths = evaluate_policy(
        model, env, n_eval_episodes=n_episodes, deterministic=deterministic, return_episode_rewards=True,
        callback=record_success, warn=False,
    )
    returns_arr = np.asarray(returns, dtype=np.float64)
    if reported_count == len(reported) and reported:
        success_rate = float(np.mean(reported))
    elif success_threshold is not None:
        success_rate = float(np.mean(returns_arr >= success_threshold))
    else:
        success_rate = math.nan
    return {
        "mean_return": float(returns_arr.mean()),
        "std": float(returns_arr.std()),
        "success_rate": success_rate,
        "mean_length": float(np.mean(lengths)),
        "n_episodes": len(returns),
        "returns": returns_arr.tolist(),
    }

"""Training throughput (env steps per second of ``learn()``) of recurrent PPO implementations.

Same env, n_envs, n_steps, batch size, epochs, hidden size and heads for:

- ``ours``         agents.rl.RecurrentPPO, cell="lstm", separate actor and critic LSTMs
- ``ours-shared``  the same with one shared LSTM (CleanRL's layout)
- ``contrib``      sb3_contrib.RecurrentPPO("MlpLstmPolicy") (separate actor/critic LSTMs by default)
- ``ppo``          stable_baselines3.PPO("MlpPolicy"), no memory: the upper bound

All use the same SB3 VecEnv (memenvs' numpy-batched env through agents.rl.make_vec_env), so the
difference is the algorithm. Prints FPS and each one's ratio to sb3-contrib's (target >= 3x)::

    python benchmarks/rl_throughput.py                       # TMaze(10), 8 envs, 8192 steps
    python benchmarks/rl_throughput.py --timesteps 16384 --which ours contrib --threads 1 --repeats 3

sb3-contrib is optional (``pip install sb3-contrib``); without it that row is skipped.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch

from agents.rl import RecurrentPPO, make_vec_env
from agents.cli import parse_kwargs

CHOICES = ("ours", "ours-shared", "contrib", "ppo")


def build(which: str, env, args: argparse.Namespace):
    """The model for one implementation, with identical PPO settings."""
    common: dict[str, Any] = dict(
        n_steps=args.n_steps, batch_size=args.batch_size, n_epochs=args.n_epochs, learning_rate=3e-4,
        gamma=0.99, gae_lambda=0.95, ent_coef=0.01, seed=args.seed, device=args.device,
    )
    heads = dict(pi=[args.hidden_size], vf=[args.hidden_size])
    if which in ("ours", "ours-shared"):
        policy_kwargs = dict(cell="lstm", hidden_size=args.hidden_size, shared_cell=which == "ours-shared", net_arch=heads)
        return RecurrentPPO("CellPolicy", env, policy_kwargs=policy_kwargs, **common)
    if which == "contrib":
        from sb3_contrib import RecurrentPPO as ContribRecurrentPPO

        policy_kwargs = dict(lstm_hidden_size=args.hidden_size, n_lstm_layers=1, net_arch=heads)
        return ContribRecurrentPPO("MlpLstmPolicy", env, policy_kwargs=policy_kwargs, **common)
    from stable_baselines3 import PPO

    return PPO("MlpPolicy", env, policy_kwargs=dict(net_arch=heads), **common)


def measure(which: str, args: argparse.Namespace) -> float:
    """Env steps per second of ``learn(args.timesteps)`` (after a one-rollout warm-up)."""
    env = make_vec_env(args.env, n_envs=args.n_envs, seed=args.seed, **args.env_kwargs)
    model = build(which, env, args)
    model.learn(args.n_steps * args.n_envs)  # warm-up: allocations, first-call overheads
    start = time.perf_counter()
    model.learn(args.timesteps, reset_num_timesteps=True)
    fps = model.num_timesteps / (time.perf_counter() - start)
    env.close()
    return fps


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="memenvs/TMaze-v0")
    p.add_argument("--env-kw", action="append", metavar="K=V", default=None, help="default corridor_length=10")
    p.add_argument("--n-envs", type=int, default=8)
    p.add_argument("--n-steps", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--n-epochs", type=int, default=4)
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--timesteps", type=int, default=8192)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--which", nargs="+", choices=CHOICES, default=list(CHOICES))
    p.add_argument("--repeats", type=int, default=1, help="measurements per implementation, round-robin; the median is shown")
    args = p.parse_args(argv)
    args.env_kwargs = parse_kwargs(args.env_kw, "--env-kw") if args.env_kw else {"corridor_length": 10}
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    print(
        f"env={args.env} {args.env_kwargs} n_envs={args.n_envs} n_steps={args.n_steps} batch_size={args.batch_size} "
        f"n_epochs={args.n_epochs} hidden={args.hidden_size} timesteps={args.timesteps} device={args.device} "
        f"threads={torch.get_num_threads()}"
    )
    # Round-robin repeats and medians: on a shared machine the load drifts between measurements.
    runs: dict[str, list[float]] = {which: [] for which in args.which}
    for _ in range(args.repeats):
        for which in list(runs):
            try:
                runs[which].append(measure(which, args))
            except ImportError as err:
                print(f"{which}: skipped ({err})")
                del runs[which]
                continue
            print(f"{which:12s} {runs[which][-1]:8.0f} steps/s", flush=True)
    results = {which: float(np.median(fps)) for which, fps in runs.items()}

    anchor = results.get("contrib")
    print("\n| implementation | steps/s (median) | vs sb3-contrib |\n|---|---|---|")
    for which, fps in results.items():
        ratio = f"{fps / anchor:.2f}x" if anchor else "n/a"
        print(f"| {which} | {fps:.0f} | {ratio} |")


if __name__ == "__main__":
    main()

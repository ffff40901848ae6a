"""Learning check for the RL harness: env steps until a cell solves a memory task with RecurrentPPO.

Default: Bakker's T-maze with a corridor of 10 (``memenvs/TMaze-v0``), 8 envs, up to 200k steps.
Every ``--eval-freq`` steps SB3's ``EvalCallback`` plays ``--eval-episodes`` deterministic episodes
(``evaluate_policy`` threads the recurrent state); training stops when the mean return reaches
``--threshold`` (on the T-maze, mean return 0.9 <=> success rate 0.95, since returns are +-1).
Prints, per cell and seed: steps to success, the final evaluation and the training FPS::

    python benchmarks/rl_learning.py --cells gru nru lstm glstm --seeds 0 1

The g-LSTM's Gaussian time gates are laid out over ``expected_length`` steps (default 784, the
pixel-MNIST length). An RL episode restarts the cell's clock, so unless ``--cell-kw`` says otherwise
the gates are laid out over the env's step budget (``max_steps`` of the env, e.g. 22 on the T-maze
with corridor 10); with 784 most units would stay shut for the whole episode.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import torch
from stable_baselines3.common.callbacks import EvalCallback, StopTrainingOnRewardThreshold

from agents.rl import RecurrentPPO, evaluate, make_vec_env
from agents.cli import parse_kwargs


def cell_kwargs(cell: str, args: argparse.Namespace) -> dict:
    """The ``--cell-kw`` options, plus g-LSTM gates laid out over the env's episode budget."""
    kwargs = dict(args.cell_kwargs)
    if cell == "glstm" and "expected_length" not in kwargs:
        probe = gym.make(args.env, **args.env_kwargs)
        budget = getattr(probe.unwrapped, "max_steps", None) or probe.spec.max_episode_steps
        probe.close()
        if budget:
            kwargs["expected_length"] = float(budget)
    return kwargs


def run(cell: str, seed: int, args: argparse.Namespace) -> dict:
    env = make_vec_env(args.env, n_envs=args.n_envs, seed=seed, **args.env_kwargs)
    eval_env = make_vec_env(args.env, n_envs=args.n_envs, seed=seed + 10_000, **args.env_kwargs)
    model = RecurrentPPO(
        "CellPolicy", env, learning_rate=args.lr, n_steps=args.n_steps, seed=seed, device=args.device,
        policy_kwargs={"cell": cell, "hidden_size": args.hidden_size, "cell_kwargs": cell_kwargs(cell, args)},
    )
    stop = StopTrainingOnRewardThreshold(reward_threshold=args.threshold, verbose=0)
    callback = EvalCallback(
        eval_env, callback_on_new_best=stop, n_eval_episodes=args.eval_episodes,
        eval_freq=max(1, args.eval_freq // args.n_envs), deterministic=True, verbose=0,
    )
    start = time.perf_counter()
    model.learn(args.timesteps, callback=callback)
    wall = time.perf_counter() - start
    final = evaluate(model, eval_env, n_episodes=args.eval_episodes)
    solved = callback.best_mean_reward >= args.threshold  # training stopped at that evaluation
    return {
        "cell": cell,
        "seed": seed,
        "steps": model.num_timesteps if solved else None,
        "success_rate": final["success_rate"],
        "mean_return": final["mean_return"],
        "fps": model.num_timesteps / wall,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="memenvs/TMaze-v0")
    p.add_argument("--env-kw", action="append", metavar="K=V", default=None, help="default corridor_length=10")
    p.add_argument("--cells", nargs="+", default=["gru", "nru", "lstm", "glstm"])
    p.add_argument("--cell-kw", action="append", metavar="K=V", default=None, help="options for every cell")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--timesteps", type=int, default=200_000)
    p.add_argument("--n-envs", type=int, default=8)
    p.add_argument("--n-steps", type=int, default=128)
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--eval-freq", type=int, default=10_240, help="env steps between evaluations")
    p.add_argument("--eval-episodes", type=int, default=64)
    p.add_argument("--threshold", type=float, default=0.9, help="mean evaluation return that counts as solved")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    args.env_kwargs = parse_kwargs(args.env_kw, "--env-kw") if args.env_kw else {"corridor_length": 10}
    args.cell_kwargs = parse_kwargs(args.cell_kw, "--cell-kw") if args.cell_kw else {}
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    print(f"env={args.env} {args.env_kwargs} timesteps<={args.timesteps} n_envs={args.n_envs} threshold={args.threshold}")
    print("| cell | seed | steps to success | final success rate | final mean return | steps/s |\n|---|---|---|---|---|---|")
    for cell in args.cells:
        for seed in args.seeds:
            r = run(cell, seed, args)
            steps = f"{r['steps']:,}" if r["steps"] is not None else f"not within {args.timesteps:,}"
            print(f"| {cell} | {seed} | {steps} | {r['success_rate']:.3f} | {r['mean_return']:.3f} | {r['fps']:.0f} |", flush=True)


if __name__ == "__main__":
    main()

"""``memory-bench rl``: train RecurrentPPO with any cell on an env, evaluate it, keep a run directory.

::

    memory-bench rl --env memenvs/TMaze-v0 --env-kw corridor_length=10 --cell nru \\
        --cell-kw memory_size=32 --timesteps 200000 --n-envs 8 --seed 0 --out runs/tmaze-nru

Run directory::

    config.json     the settings of the run
    progress.csv    SB3's CSV log, one row per rollout (rollout/ep_rew_mean, train/*, time/fps)
    tensorboard/    SB3's TensorBoard events of the same numbers
    model.zip       SB3 checkpoint: ``agents.rl.RecurrentPPO.load("model.zip")``
    policy.pt       the policy's state_dict (loads with ``torch.load(weights_only=True)``)
    summary.json    final evaluation, timesteps, FPS, wall time

Every flag is checked (the envs and the model are built) before the directory is created, so a bad
flag exits with one line and leaves nothing behind. torch is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from agents.cli import default_run_dir, parse_kwargs, set_torch_threads


def parse_net_arch(text: str | None) -> list[int] | None:
    """``"64,64"`` -> ``[64, 64]``; ``""`` or ``"none"`` -> ``[]`` (linear heads); None -> SB3 default."""
    if text is None:
        return None
    if text.strip().lower() in ("", "none"):
        return []
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--net-arch {text!r} is malformed: expected comma-separated layer sizes, e.g. 64,64") from None
    if any(size < 1 for size in sizes):
        raise ValueError(f"--net-arch {text!r}: layer sizes must be >= 1")
    return sizes


def _config(args: argparse.Namespace) -> dict[str, Any]:
    """The run's settings as plain JSON data."""
    return {
        "env": args.env,
        "env_kwargs": parse_kwargs(args.env_kw, "--env-kw"),
        "cell": args.cell,
        "cell_kwargs": parse_kwargs(args.cell_kw, "--cell-kw"),
        "hidden_size": args.hidden_size,
        "shared_cell": not args.separate_cells,
        "net_arch": parse_net_arch(args.net_arch),
        "timesteps": args.timesteps,
        "n_envs": args.n_envs,
        "n_steps": args.n_steps,
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "n_epochs": args.n_epochs,
        "learning_rate": args.lr,
        "gamma": args.gamma,
        "gae_lambda": args.gae_lambda,
        "ent_coef": args.ent_coef,
        "clip_range": args.clip_range,
        "aux_coef": args.aux_coef,
        "aux_kwargs": parse_kwargs(args.aux_kw, "--aux-kw"),
        "budget_coef": args.budget_coef,
        "seed": args.seed,
        "eval_episodes": args.eval_episodes,
        "device": args.device,
    }


def _print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    print(f"| {'metric':<{width}} | value |\n|{'-' * (width + 2)}|-------|")
    for key, value in rows:
        print(f"| {key:<{width}} | {value} |")


def _default_threads(threads: int | None, device: str) -> int | None:
    """``--threads``, or 1 when it is left out and the run is on the CPU (a small recurrent
    model steps faster on one thread than with torch's default of one per core); None (torch's
    choice) on a GPU."""
    if threads is not None:
        return threads
    from stable_baselines3.common.utils import get_device

    try:
        resolved = get_device(device)
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"--device {device!r} is not a torch device ({str(err).strip().splitlines()[0]})") from None
    return 1 if resolved.type == "cpu" else None


def run_rl(args: argparse.Namespace) -> int:
    import torch
    from gymnasium import spaces
    from stable_baselines3.common.logger import CSVOutputFormat, Logger, TensorBoardOutputFormat

    from agents.rl import RecurrentPPO, evaluate, make_vec_env
    from agents.supervised.runs import RunDir, write_json
    from memenvs.core import check_int

    config = _config(args)
    check_int("--timesteps", args.timesteps, low=1)
    check_int("--eval-episodes", args.eval_episodes, low=1)
    set_torch_threads(_default_threads(args.threads, args.device))
    out = Path(args.out) if args.out is not None else default_run_dir(f"rl-{args.env}-{args.cell}", args.seed)
    RunDir.check_new(out, advice="choose another --out")

    # Build everything first: a bad flag must fail before the run directory exists.
    env = make_vec_env(args.env, n_envs=config["n_envs"], seed=args.seed, **config["env_kwargs"])
    eval_env = make_vec_env(args.env, n_envs=config["n_envs"], seed=args.seed + 10_000, **config["env_kwargs"])
    policy_kwargs: dict[str, Any] = {
        "cell": args.cell,
        "cell_kwargs": config["cell_kwargs"],
        "hidden_size": args.hidden_size,
        "shared_cell": config["shared_cell"],
    }
    if config["net_arch"] is not None:
        policy_kwargs["net_arch"] = config["net_arch"]
    model = RecurrentPPO(
        "MultiInputCellPolicy" if isinstance(env.observation_space, spaces.Dict) else "CellPolicy",
        env,
        learning_rate=args.lr,
        n_steps=args.n_steps,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        n_epochs=args.n_epochs,
        gamma=args.gamma,
        gae_lambda=args.gae_lambda,
        ent_coef=args.ent_coef,
        clip_range=args.clip_range,
        aux_coef=args.aux_coef,
        aux_kwargs=config["aux_kwargs"],
        budget_coef=args.budget_coef,
        policy_kwargs=policy_kwargs,
        seed=args.seed,
        device=args.device,
    )

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", config)
    model.set_logger(
        Logger(str(out), [CSVOutputFormat(str(out / "progress.csv")), TensorBoardOutputFormat(str(out / "tensorboard"))])
    )
    start = time.perf_counter()
    model.learn(args.timesteps, progress_bar=not args.no_progress)
    wall = time.perf_counter() - start
    model.save(out / "model.zip")
    torch.save(model.policy.state_dict(), out / "policy.pt")
    result = evaluate(model, eval_env, n_episodes=args.eval_episodes, deterministic=True)
    summary = {
        "env": args.env,
        "cell": args.cell,
        "timesteps": model.num_timesteps,
        "wall_time_s": wall,
        "fps": model.num_timesteps / wall,
        "eval": {k: v for k, v in result.items() if k != "returns"},
    }
    write_json(out / "summary.json", summary)
    env.close()
    eval_env.close()

    _print_table(
        [
            ("env", args.env),
            ("cell", args.cell),
            ("timesteps", str(model.num_timesteps)),
            ("fps", f"{summary['fps']:.0f}"),
            (f"mean return ({result['n_episodes']} episodes)", f"{result['mean_return']:.4f} ± {result['std']:.4f}"),
            ("success rate", f"{result['success_rate']:.3f}"),
            ("mean episode length", f"{result['mean_length']:.2f}"),
        ]
    )
    print(f"run directory: {out}")
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "rl",
        help="train recurrent PPO with any cell on an env",
        description="Train agents.rl.RecurrentPPO (SB3) with any registered cell, then evaluate it.",
    )
    g = p.add_argument_group("environment")
    g.add_argument("--env", required=True, help="env id, e.g. memenvs/TMaze-v0 (memenvs short names work too)")
    g.add_argument("--env-kw", action="append", metavar="K=V", help="env option (repeatable), e.g. corridor_length=10")
    g.add_argument("--n-envs", type=int, default=8, help="parallel envs (default 8)")
    g = p.add_argument_group("policy")
    g.add_argument("--cell", default="gru", help="cell name from agents.list_cells() (default gru)")
    g.add_argument("--cell-kw", action="append", metavar="K=V", help="cell option (repeatable)")
    g.add_argument("--hidden-size", type=int, default=64, help="cell hidden size (default 64)")
    g.add_argument("--separate-cells", action="store_true", help="give the critic its own cell (default: shared)")
    g.add_argument("--net-arch", default=None, help="head layer sizes after the cell, e.g. 64,64 or none (default SB3's 64,64)")
    g = p.add_argument_group("PPO")
    g.add_argument("--timesteps", type=int, default=200_000, help="env steps to train (default 200000)")
    g.add_argument("--n-steps", type=int, default=128, help="steps per env and rollout (default 128)")
    g.add_argument("--batch-size", type=int, default=None, help="steps per minibatch, a multiple of --seq-len (default: rollout/4)")
    g.add_argument("--seq-len", type=int, default=None, help="steps per training sequence, divides --n-steps (default: n-steps)")
    g.add_argument("--n-epochs", type=int, default=4, help="passes over each rollout (default 4)")
    g.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate (default 3e-4)")
    g.add_argument("--gamma", type=float, default=0.99)
    g.add_argument("--gae-lambda", type=float, default=0.95)
    g.add_argument("--ent-coef", type=float, default=0.01)
    g.add_argument("--clip-range", type=float, default=0.2)
    g.add_argument("--aux-coef", type=float, default=0.0, help="auxiliary reconstruction loss weight (default 0: off)")
    g.add_argument("--aux-kw", action="append", metavar="K=V", help="AuxiliaryLoss option (repeatable), e.g. segment_length=8")
    g.add_argument("--budget-coef", type=float, default=0.0, help="g-LSTM budget loss weight (default 0: off)")
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", default=None, help="run directory (default runs/rl-<env>-<cell>-s<seed>-<time>)")
    g.add_argument("--eval-episodes", type=int, default=100, help="episodes of the final evaluation (default 100)")
    g.add_argument("--device", default="auto", help="torch device (default auto)")
    g.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default 1 on the CPU, where small recurrent models run fastest on one "
                   "thread; torch's choice on a GPU)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run_rl)

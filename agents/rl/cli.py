"""``memory-bench rl``: train RecurrentPPO with any cell on an env, evaluate it, keep a run directory.

::

    memory-bench rl --env memenvs/TMaze-v0 --env-kw corridor_length=10 --cell nru \\
        --cell-kw memory_size=32 --timesteps 200000 --n-envs 8 --seed 0 --out runs/tmaze-nru
    memory-bench rl --resume --out runs/tmaze-nru --timesteps 400000     # continue, train longer

Run directory::

    config.json     the settings of the run
    progress.csv    SB3's CSV log, one row per rollout (rollout/ep_rew_mean, train/*, time/fps)
    tensorboard/    SB3's TensorBoard events of the same numbers
    policy.pt       the policy's state_dict: ``agents.rl.load_policy(run_dir)`` rebuilds the model
                    from config.json and loads it with ``torch.load(weights_only=True)``
    latest.pt       resume checkpoint (policy, optimizer, counters; weights only), written after
                    an update at most once a minute and at the end
    summary.json    final evaluation, timesteps, FPS, wall time
    model.zip       SB3 archive for ``RecurrentPPO.load``, which unpickles code: trusted runs only

``--resume --out DIR`` continues a run from its latest.pt with the settings of its config.json
(only ``--timesteps``, the new total, ``--eval-episodes``, ``--device``, ``--threads`` and
``--no-progress`` may be given). Episodes restart (the envs are seeded with the run's seed plus
the timesteps done), so a resumed run is not bit-identical to an uninterrupted one.

Every flag is checked (the envs and the model are built) before the directory is created, so a bad
flag exits with one line and leaves nothing behind. torch is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import os
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


DEFAULT_TIMESTEPS = 200_000
DEFAULT_EVAL_EPISODES = 100
#: Seconds between two writes of latest.pt during training (it is also written at the end).
CHECKPOINT_SECONDS = 60.0
#: Options that ``--resume`` accepts; all others come from the run's config.json.
_RESUME_OPTIONS = ("timesteps", "eval_episodes", "device", "threads", "no_progress", "out", "resume")


def _config(args: argparse.Namespace) -> dict[str, Any]:
    """The run's settings as plain JSON data."""
    if args.env is None:
        raise ValueError("--env is required (or --resume --out DIR to continue a run)")
    return {
        "env": args.env,
        "env_kwargs": parse_kwargs(args.env_kw, "--env-kw"),
        "cell": args.cell,
        "cell_kwargs": parse_kwargs(args.cell_kw, "--cell-kw"),
        "hidden_size": args.hidden_size,
        "shared_cell": not args.separate_cells,
        "net_arch": parse_net_arch(args.net_arch),
        "timesteps": DEFAULT_TIMESTEPS if args.timesteps is None else args.timesteps,
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
        "eval_episodes": DEFAULT_EVAL_EPISODES if args.eval_episodes is None else args.eval_episodes,
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


def _resume_config(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """The config of the run to continue, with the options ``--resume`` accepts applied."""
    from agents.rl.runs import read_config

    changed = sorted(
        f"--{dest.replace('_', '-')}" for dest, default in args.rl_defaults.items()
        if dest not in _RESUME_OPTIONS and getattr(args, dest) != default
    )
    if changed:
        raise ValueError(
            f"--resume keeps the settings of {out / 'config.json'}: {', '.join(changed)} cannot be given "
            f"(only --timesteps, --eval-episodes, --device, --threads, --no-progress)"
        )
    config = read_config(out)
    if args.timesteps is not None:
        config["timesteps"] = args.timesteps
    if args.eval_episodes is not None:
        config["eval_episodes"] = args.eval_episodes
    if args.device != args.rl_defaults["device"]:
        config["device"] = args.device
    return config


def _logger(out: Path, resume: bool):
    """SB3 logger writing progress.csv (appended to when resuming) and TensorBoard events."""
    from stable_baselines3.common.logger import CSVOutputFormat, Logger, TensorBoardOutputFormat

    class AppendingCSV(CSVOutputFormat):
        """SB3's CSV writer continuing an existing file (its header becomes the known keys)."""

        def __init__(self, filename: str) -> None:
            if not Path(filename).is_file():
                super().__init__(filename)
                return
            self.file = open(filename, "r+")  # noqa: SIM115 - closed by Logger.close
            header = self.file.readline().strip()
            self.keys = header.split(",") if header else []
            self.separator, self.quotechar = ",", '"'
            self.file.seek(0, os.SEEK_END)

    csv_format = AppendingCSV if resume else CSVOutputFormat
    return Logger(str(out), [csv_format(str(out / "progress.csv")), TensorBoardOutputFormat(str(out / "tensorboard"))])


def run_rl(args: argparse.Namespace) -> int:
    from stable_baselines3.common.callbacks import BaseCallback

    from agents.rl import evaluate
    from agents.rl.runs import (
        LATEST, MODEL_ZIP, POLICY_FILE, PROGRESS_FILE, build_model, make_env, read_latest, restore_latest,
        save_latest, save_policy, truncate_progress,
    )
    from agents.supervised.runs import RunDir, write_json
    from memenvs.core import check_int

    if args.resume:
        if args.out is None:
            raise ValueError("--resume needs --out DIR (the run to continue)")
        out = Path(args.out)
        config = _resume_config(args, out)
        checkpoint = read_latest(out / LATEST)
        done = int(checkpoint["num_timesteps"])
        check_int("--timesteps", config["timesteps"], low=1)
        if config["timesteps"] <= done:
            raise ValueError(f"the run in {out} has done {done} timesteps of --timesteps={config['timesteps']}: "
                             f"give a larger --timesteps to train longer")
    else:
        config = _config(args)
        checkpoint, done = None, 0
        out = Path(args.out) if args.out is not None else default_run_dir(f"rl-{args.env}-{args.cell}", args.seed)
        RunDir.check_new(out, advice="choose another --out, or --resume to continue it")
    check_int("--timesteps", config["timesteps"], low=1)
    check_int("--eval-episodes", config["eval_episodes"], low=1)
    set_torch_threads(_default_threads(args.threads, config["device"]))

    # Build everything first: a bad flag must fail before the run directory is written.
    seed = config["seed"]
    env = make_env(config, seed=seed + done)
    eval_env = make_env(config, seed=seed + 10_000)
    model = build_model(config, env, seed=seed + done)
    if checkpoint is not None:
        restore_latest(model, checkpoint, out / LATEST)

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", config)
    if checkpoint is not None:
        truncate_progress(out / PROGRESS_FILE, done)
    model.set_logger(_logger(out, resume=checkpoint is not None))
    earlier_wall = 0.0 if checkpoint is None else float(checkpoint["wall_time_s"])
    start = time.perf_counter()

    class Checkpoint(BaseCallback):
        """Write latest.pt after an update (at the start of the next rollout), at most every
        CHECKPOINT_SECONDS."""

        last = start

        def _on_rollout_start(self) -> None:
            now = time.perf_counter()
            if now - self.last >= CHECKPOINT_SECONDS and self.model.num_timesteps > done:
                save_latest(self.model, out / LATEST, earlier_wall + now - start)
                self.last = now

        def _on_step(self) -> bool:
            return True

    model.learn(config["timesteps"] - done, callback=Checkpoint(), progress_bar=not args.no_progress,
                reset_num_timesteps=checkpoint is None)
    wall = time.perf_counter() - start
    save_latest(model, out / LATEST, earlier_wall + wall)
    save_policy(model, out / POLICY_FILE)
    model.save(out / MODEL_ZIP)
    model.logger.close()
    result = evaluate(model, eval_env, n_episodes=config["eval_episodes"], deterministic=True)
    summary = {
        "env": config["env"],
        "cell": config["cell"],
        "timesteps": model.num_timesteps,
        "wall_time_s": earlier_wall + wall,
        "fps": (model.num_timesteps - done) / wall,
        "eval": {k: v for k, v in result.items() if k != "returns"},
    }
    if checkpoint is not None:
        summary["resumed_from_timesteps"] = done
    write_json(out / "summary.json", summary)
    env.close()
    eval_env.close()

    _print_table(
        [
            ("env", config["env"]),
            ("cell", config["cell"]),
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
    g.add_argument("--env", default=None, help="env id, e.g. memenvs/TMaze-v0 (memenvs short names work too); required "
                   "unless --resume")
    g.add_argument("--env-kw", action="append", metavar="K=V", help="env option (repeatable), e.g. corridor_length=10")
    g.add_argument("--n-envs", type=int, default=8, help="parallel envs (default 8)")
    g = p.add_argument_group("policy")
    g.add_argument("--cell", default="gru", help="cell name from agents.list_cells() (default gru)")
    g.add_argument("--cell-kw", action="append", metavar="K=V", help="cell option (repeatable)")
    g.add_argument("--hidden-size", type=int, default=64, help="cell hidden size (default 64)")
    g.add_argument("--separate-cells", action="store_true", help="give the critic its own cell (default: shared)")
    g.add_argument("--net-arch", default=None, help="head layer sizes after the cell, e.g. 64,64 or none (default SB3's 64,64)")
    g = p.add_argument_group("PPO")
    g.add_argument("--timesteps", type=int, default=None,
                   help=f"env steps to train in all (default {DEFAULT_TIMESTEPS}; with --resume: the run's)")
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
    g.add_argument("--eval-episodes", type=int, default=None,
                   help=f"episodes of the final evaluation (default {DEFAULT_EVAL_EPISODES}; with --resume: the run's)")
    g.add_argument("--device", default="auto", help="torch device (default auto)")
    g.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default 1 on the CPU, where small recurrent models run fastest on one "
                   "thread; torch's choice on a GPU)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its latest.pt with its saved settings (give --timesteps to train longer)")
    defaults = {a.dest: a.default for a in p._actions if a.dest != "help"}  # noqa: SLF001
    p.set_defaults(run=run_rl, rl_defaults=defaults)

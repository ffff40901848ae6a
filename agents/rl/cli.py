"""``memory-bench rl``: train RecurrentPPO with any cell on an env, evaluate it, keep a run directory.

::

    memory-bench rl --task memenvs/TMaze-v0 --task-kw corridor_length=10 --cell nru \\
        --cell-kw memory_size=32 --timesteps 200000 --n-envs 8 --seed 0 --out runs/tmaze-nru
    memory-bench rl --resume --out runs/tmaze-nru --timesteps 400000     # continue, train longer

The flags are generated from :class:`agents.rl.RLConfig`, one per field (``--env`` and
``--env-kw`` are aliases of ``--task`` and ``--task-kw``); flags left out keep its defaults, or
with ``--resume`` the run's config.json. :func:`agents.rl.train_rl` does the work and documents
the run directory. ``--resume --out DIR`` continues a run from its latest.pt (only
``--timesteps``, the new total, ``--eval-episodes``, ``--device``, ``--threads`` and
``--no-progress`` may be given). ``--threads``, ``--out``, ``--resume`` and ``--no-progress`` are
not part of the config.

Every flag is checked (the envs and the model are built) before the directory is created, so a bad
flag exits with one line and leaves nothing behind. torch is imported only when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agents.cli import add_run_command, default_run_dir, set_torch_threads
from agents.rl.config import RESUMABLE_CHANGES, parse_net_arch

__all__ = ["add_parser", "parse_net_arch", "run_rl"]


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
    from agents.rl.config import RLConfig
    from agents.rl.runs import CONFIG_FILE, read_config
    from agents.rl.trainer import train_rl
    from agents.results.runs import RunDir

    given = args.config_flags.given(args)
    if args.resume:
        if args.out is None:
            raise ValueError("--resume needs --out DIR (the run to continue)")
        out = Path(args.out)
        fixed = sorted(args.config_flags.flag(name) for name in given if name not in RESUMABLE_CHANGES)
        if fixed:
            allowed = ", ".join(args.config_flags.flag(name) for name in RESUMABLE_CHANGES)
            raise ValueError(f"--resume keeps the settings of {out / CONFIG_FILE}: {', '.join(fixed)} cannot be given "
                             f"(only {allowed}, --threads, --no-progress)")
        config = RLConfig.from_dict({**read_config(out).to_dict(), **given})
    else:
        config = RLConfig.from_dict(given)
        out = Path(args.out) if args.out is not None else default_run_dir(f"rl-{config.task}-{config.cell}", config.seed)
        RunDir.check_new(out, advice="choose another --out, or --resume to continue it")
    set_torch_threads(_default_threads(args.threads, config.device))
    summary = train_rl(config, out_dir=out, resume=args.resume, progress=not args.no_progress)

    result = summary["eval"]
    score = summary["score"]
    _print_table(
        [
            ("task", config.task),
            ("cell", config.cell),
            ("timesteps", str(summary["timesteps"])),
            ("fps", f"{summary['fps']:.0f}"),
            (f"mean return ({result['n_episodes']} episodes)", f"{result['mean_return']:.4f} ± {result['std']:.4f}"),
            ("score (memoryless 0, optimal 1)", "n/a (no reference)" if score is None else f"{score:.4f}"),
            ("success rate", f"{result['success_rate']:.3f}"),
            ("mean episode length", f"{result['mean_length']:.2f}"),
        ]
    )
    print(f"run directory: {out}")
    return 0


def add_parser(subparsers: Any) -> None:
    from agents.rl.config import RLConfig

    add_run_command(
        subparsers, "rl",
        help="train recurrent PPO with any cell on an env",
        description="Train agents.rl.RecurrentPPO (SB3) with any registered cell, then evaluate it.",
        config=RLConfig, run=run_rl, run_dir="rl-<task>-<cell>-s<seed>-<time>", longer_flag="--timesteps",
        aliases={"task": ["--env"], "task_kwargs": ["--env-kw"]},
        parsers={"net_arch": parse_net_arch},
        metavars={"net_arch": "SIZES|none"},
        shown_defaults={"net_arch": "SB3's 64,64"},
    )

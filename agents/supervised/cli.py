"""``memory-bench train`` and ``memory-bench report``.

::

    memory-bench train --task copy --task-kw delay=100 --task-kw score=all --cell nru \\
        --cell-kw memory_size=64 --hidden-size 80 --optimizer amsgrad --clip 0.5 --out runs/nru
    memory-bench train --resume --out runs/nru --updates 20000     # continue, train longer
    memory-bench report runs/nru runs/lstm --out reports/copy

Every flag is checked (task and model are built) before the run directory is created, so a bad
flag exits with one line naming the problem and leaves nothing behind. The ``train`` flags are
generated from :class:`agents.supervised.TrainConfig`, one per field (``--task-kw``, ``--cell-kw``,
``--aux-kw`` for the ``*_kwargs`` fields, ``--aux-pretrain`` for ``aux_pretrain_updates``); flags
not given keep its defaults, and with ``--resume`` the saved config.
``--threads`` is not part of the config: it defaults to 1 on the CPU (see :func:`default_threads`).
``memory-bench --help`` imports nothing of this module; ``memory-bench train --help`` imports the
trainer (and torch) to read TrainConfig's fields.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agents.cli import add_run_command, default_run_dir, parse_value, set_torch_threads


def parse_curriculum(text: str, flag: str = "--curriculum") -> list[list[Any]]:
    """``"20:500,50:500"`` -> ``[[20, 500], [50, 500]]`` (knob value : updates)."""
    stages = []
    for part in text.split(","):
        value, sep, updates = part.strip().rpartition(":")
        if not sep or not value:
            raise ValueError(f"{flag} {text!r} is malformed: expected VALUE:UPDATES[,VALUE:UPDATES...], e.g. 20:500,50:500")
        n = parse_value(updates)
        if not isinstance(n, int) or isinstance(n, bool):
            raise ValueError(f"{flag} {text!r}: updates {updates!r} must be an integer")
        stages.append([parse_value(value), n])
    return stages


# --------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------


def default_threads(threads: int | None, device: str) -> int | None:
    """``--threads``, or 1 when it is left out and the run is on the CPU: a small recurrent model
    runs as fast on one thread as on several, and on a busy machine torch's default of one thread
    per core made a kaf-lstm update vary from 1.3 s to 22 s. None (torch's choice) elsewhere."""
    if threads is not None:
        return threads
    import torch

    try:
        return 1 if torch.device(device).type == "cpu" else None
    except (RuntimeError, ValueError):  # not a device: the trainer reports it
        return None


def run_train(args: argparse.Namespace) -> int:
    from agents.results.runs import RunDir
    from agents.supervised.trainer import TrainConfig, TrainingDiverged, train

    given = args.config_flags.given(args)
    if args.resume:
        if args.out is None:
            raise ValueError("--resume needs --out DIR (the run to continue)")
        config = TrainConfig.from_dict({**RunDir(args.out).read_config(), **given})
        out = Path(args.out)
    else:
        config = TrainConfig.from_dict(given)
        out = Path(args.out) if args.out is not None else default_run_dir(f"{config.task}-{config.cell}", config.seed)
        RunDir.check_new(out)
    set_torch_threads(default_threads(args.threads, config.device))
    try:
        summary = train(config, out_dir=out, resume=args.resume, progress=not args.no_progress)
    except TrainingDiverged as err:
        print(f"memory-bench train: error: {err}", file=sys.stderr)
        return 1
    final = summary["final"]["metrics"]
    shown = ", ".join(f"{k}={v:.4g}" for k, v in final.items())
    print(f"{summary['status']} after {summary['updates']} updates ({summary['updates_per_second']:.3g} updates/s): {shown}")
    print(f"run directory: {out}")
    return 0


def _add_train(subparsers) -> None:
    from agents.supervised.config import TrainConfig

    add_run_command(
        subparsers, "train",
        help="train a cell on a task (supervised)",
        description="Train a recurrent cell on a memenvs sequence task; the defaults are the NRU paper's recipe "
        "(Adam 1e-3, batch 10, clip 1.0).",
        config=TrainConfig, run=run_train, run_dir="<task>-<cell>-s<seed>-<time>", longer_flag="--updates",
        aliases={"aux_pretrain_updates": ["--aux-pretrain"]},
        parsers={"curriculum": parse_curriculum},
        metavars={"curriculum": "V:N[,V:N...]"},
    )


def add_parser(subparsers) -> None:
    """Register ``train`` (called by :mod:`agents.cli`)."""
    _add_train(subparsers)

"""``memory-bench train`` and ``memory-bench report``.

::

    memory-bench train --task copy --task-kw delay=100 --task-kw score=all --cell nru \\
        --cell-kw memory_size=64 --hidden-size 80 --optimizer amsgrad --clip 0.5 --out runs/nru
    memory-bench train --resume --out runs/nru --updates 20000     # continue, train longer
    memory-bench report runs/nru runs/lstm --out reports/copy

Every flag is checked (task and model are built) before the run directory is created, so a bad
flag exits with one line naming the problem and leaves nothing behind. Flags not given keep the
defaults of :class:`agents.supervised.TrainConfig`; with ``--resume`` they keep the saved config.
``--threads`` is not part of the config: it defaults to 1 on the CPU (see :func:`default_threads`).
torch is imported only when a command runs, so ``memory-bench --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agents.cli import default_run_dir, parse_kwargs, parse_value, set_torch_threads


def parse_curriculum(text: str) -> list[list[Any]]:
    """``"20:500,50:500"`` -> ``[[20, 500], [50, 500]]`` (knob value : updates)."""
    stages = []
    for part in text.split(","):
        value, sep, updates = part.strip().rpartition(":")
        if not sep or not value:
            raise ValueError(f"--curriculum {text!r} is malformed: expected VALUE:UPDATES[,VALUE:UPDATES...], e.g. 20:500,50:500")
        n = parse_value(updates)
        if not isinstance(n, int) or isinstance(n, bool):
            raise ValueError(f"--curriculum {text!r}: updates {updates!r} must be an integer")
        stages.append([parse_value(value), n])
    return stages


def _optional_number(text: str, flag: str, kind: type) -> Any:
    """``"none"``/``"off"`` -> None, else the number (0 is a number: the config decides whether
    it is allowed, so ``--tbptt 0`` is refused rather than read as full BPTT)."""
    if text.strip().lower() in ("none", "off"):
        return None
    value = parse_value(text)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise ValueError(f"{flag} {text!r} must be {'an integer' if kind is int else 'a number'} or 'none'")
    return value


# --------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------

# flag dest -> TrainConfig field, for the plain (already typed by argparse) flags.
_PLAIN = (
    "task", "cell", "hidden_size", "encoder", "embedding_dim", "readout_hidden", "dropout", "readout_init", "updates",
    "batch_size", "optimizer", "lr", "lr_halving_patience", "seed", "aux", "aux_weight", "aux_pretrain_updates", "budget_weight",
    "eval_every", "eval_batches", "eval_batch_size", "eval_split", "eval_carry_state", "best_metric", "target_metric",
    "target_value", "device",
)


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields the user gave on the command line."""
    given = {name: getattr(args, name) for name in _PLAIN if getattr(args, name) is not None}
    for flag, field_name in (("--task-kw", "task_kwargs"), ("--cell-kw", "cell_kwargs"), ("--aux-kw", "aux_kwargs")):
        items = getattr(args, field_name)
        if items is not None:
            given[field_name] = parse_kwargs(items, flag)
    if args.clip is not None:
        given["clip"] = _optional_number(args.clip, "--clip", float)
    if args.tbptt is not None:
        given["tbptt"] = _optional_number(args.tbptt, "--tbptt", int)
    if args.max_loss is not None:
        given["max_loss"] = _optional_number(args.max_loss, "--max-loss", float)
    if args.curriculum is not None:
        given["curriculum"] = parse_curriculum(args.curriculum)
    return given


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
    from agents.supervised.runs import RunDir
    from agents.supervised.trainer import TrainConfig, TrainingDiverged, train

    given = config_overrides(args)
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
    p = subparsers.add_parser(
        "train",
        help="train a cell on a task (supervised)",
        description="Train a recurrent cell on a memenvs sequence task. Flags left out keep the "
        "TrainConfig defaults (NRU paper recipe: Adam 1e-3, batch 10, clip 1.0).",
    )
    g = p.add_argument_group("task and model")
    g.add_argument("--task", help="task name or id (copy, Copy-v0, memenvs/Copy-v0) or module:Class; default copy")
    g.add_argument("--task-kw", dest="task_kwargs", action="append", metavar="K=V", help="task option (repeatable)")
    g.add_argument("--cell", help="cell name (agents.list_cells()); default lstm")
    g.add_argument("--cell-kw", dest="cell_kwargs", action="append", metavar="K=V", help="cell option (repeatable)")
    g.add_argument("--hidden-size", type=int, help="default 128")
    g.add_argument("--encoder", metavar="{auto,onehot,embedding,linear}", help="input encoder; default auto")
    g.add_argument("--embedding-dim", type=int)
    g.add_argument("--readout-hidden", type=int, help="hidden units of a 2-layer readout; default 0 (linear)")
    g.add_argument("--dropout", type=float, help="dropout in the 2-layer readout; default 0")
    g.add_argument("--readout-init", choices=("default", "xavier"), help="readout weights: nn.Linear's default or Xavier-normal with zero bias (the NRU code's)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--updates", type=int, help="optimiser steps; default 1000")
    g.add_argument("--batch-size", type=int, help="default 10")
    g.add_argument("--optimizer", metavar="{adam,amsgrad,rmsprop}", help="default adam")
    g.add_argument("--lr", type=float, help="default 1e-3")
    g.add_argument("--lr-halving-patience", type=int, metavar="UPDATES",
                   help="halve the learning rate after this many updates without improvement of the evaluation metric (default: never)")
    g.add_argument("--clip", metavar="NORM|none", help="gradient-norm clipping; default 1.0")
    g.add_argument("--seed", type=int, help="default 0")
    g.add_argument("--tbptt", metavar="N|none", help="truncated BPTT: gradient only within the last-aligned chunks of N >= 1 steps; default none (full BPTT)")
    g.add_argument("--aux", metavar="{none,reconstruction,prediction}", help="auxiliary loss; default none")
    g.add_argument("--aux-weight", type=float, help="default 1.0")
    g.add_argument("--aux-kw", dest="aux_kwargs", action="append", metavar="K=V", help="AuxiliaryLoss option (repeatable), e.g. segment_length=100")
    g.add_argument("--aux-pretrain", dest="aux_pretrain_updates", type=int, metavar="UPDATES", help="aux-only updates first; default 0")
    g.add_argument("--budget-weight", type=float, help="g-LSTM budget loss weight; default 0 (off)")
    g.add_argument("--max-loss", metavar="LOSS|none", help="stop as diverged (like a NaN loss) when a training loss exceeds LOSS; default 1e6")
    g.add_argument("--curriculum", metavar="V:N[,V:N...]", help="train N updates at length-knob value V, stage by stage, then on the task")
    g = p.add_argument_group("evaluation and output")
    g.add_argument("--eval-every", type=int, help="default 100")
    g.add_argument("--eval-batches", type=int, help="default 10")
    g.add_argument("--eval-batch-size", type=int, help="default 100")
    g.add_argument("--eval-split", help="evaluate on task.iterate(SPLIT) instead of a held-out random stream")
    g.add_argument("--eval-carry-state", action="store_const", const=True, help="carry the state across evaluation batches (streamed text splits)")
    g.add_argument("--best-metric", help="metric selecting best.pt; default loss")
    g.add_argument("--target-metric", help="stop early when this metric reaches --target-value")
    g.add_argument("--target-value", type=float)
    g.add_argument("--device", help="torch device; default cpu")
    g.add_argument("--threads", type=int, help="torch intra-op threads; default 1 on CPU (small models gain little from more, and "
                   "on a busy machine several can be many times slower), torch's choice on a GPU; not saved in the config")
    g.add_argument("--out", metavar="DIR", help="run directory; default runs/<task>-<cell>-s<seed>-<time>")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run_train)


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


def run_report(args: argparse.Namespace) -> int:
    from agents.supervised.report import write_report

    if len(args.runs) == 1 and (Path(args.runs[0]) / "sweep.json").is_file():  # a sweep directory
        from agents.sweep.report import write_sweep_report

        print(f"wrote {write_sweep_report(args.runs[0], args.out)}")
        return 0
    path, table = write_report(args.runs, args.out)
    print(table)
    print(f"\nwrote {path}")
    return 0


def _add_report(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="markdown table and learning curves of runs",
        description="Write report.md (a table of runs) and PNG learning curves, and print the table.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories, or directories containing runs, or one sweep directory (sweep report)")
    p.add_argument("--out", metavar="DIR", help="where to write; default the run itself, or the runs' common parent")
    p.set_defaults(run=run_report)


def add_parser(subparsers) -> None:
    """Register ``train`` and ``report`` (called by :mod:`agents.cli`)."""
    _add_train(subparsers)
    _add_report(subparsers)

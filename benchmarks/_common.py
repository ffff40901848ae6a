"""Helpers shared by the learning benchmarks.

The sequential-MNIST benchmarks (``mnist_kaf.py``, ``mnist_aux.py``) train a few models on the same
pixel task and print one line per model, then a markdown table: validation accuracy after the fixed
budget of updates, the best validation accuracy, the first evaluation that reached a target accuracy,
and updates/s. The convergence races (``copy_convergence.py``, ``adding_convergence.py``) train each
model until a held-out metric reaches a target (:func:`race`, :func:`print_race_table`).
The scripts import this module as ``_common`` (Python puts the script's folder on ``sys.path``).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agents.supervised import TrainConfig, train


@dataclass
class Result:
    """What one model's run reports."""

    params: int
    final: float  # validation accuracy after the last update
    best: float  # best validation accuracy over the evaluations
    reached: int | None  # first evaluated update with accuracy >= target (None: never)
    updates_per_second: float  # whole run, evaluations included
    wall: float  # seconds


def first_reaching(metrics_csv: Path, column: str, target: float) -> int | None:
    """The first logged update whose ``column`` is >= ``target`` (None if never)."""
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row[column] and float(row[column]) >= target:
                return int(row["update"])
    return None


def add_pixel_arguments(parser: argparse.ArgumentParser, *, hidden_size: int, batch_size: int, updates: int) -> None:
    """The options every MNIST benchmark takes (the defaults that differ are arguments)."""
    parser.add_argument("--task", default="SequentialMNIST-v0", help="or PermutedMNIST-v0")
    parser.add_argument("--hidden-size", type=int, default=hidden_size)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--updates", type=int, default=updates, help=f"fixed budget per model (default {updates})")
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--eval-images", type=int, default=500, help="validation digits per evaluation (default: all 500)")
    parser.add_argument("--target", type=float, default=0.8, help="accuracy to reach (default 0.8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the machine is shared)")
    parser.add_argument("--out", help="where to keep the runs (default: a temporary directory)")


def setup_run(args: argparse.Namespace, prefix: str) -> Path:
    """Apply ``--threads`` and return the output directory (a fresh temporary one by default)."""
    torch.set_num_threads(args.threads)
    return Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix=prefix))


def eval_settings(args: argparse.Namespace) -> dict[str, Any]:
    """TrainConfig fields for evaluating on ``--eval-images`` validation digits every ``--eval-every`` updates."""
    eval_batch = min(100, args.eval_images)
    return {
        "eval_every": args.eval_every, "eval_split": "validation", "eval_batch_size": eval_batch,
        "eval_batches": -(-args.eval_images // eval_batch), "best_metric": "accuracy",
    }


def run_model(name: str, config: TrainConfig, out: Path, target: float, width: int = 9) -> Result:
    """Train ``config`` into ``out / name`` and print its one-line summary (name padded to ``width``)."""
    t0 = time.perf_counter()
    summary = train(config, out_dir=out / name, progress=False)
    wall = time.perf_counter() - t0
    result = Result(
        params=summary["num_params"], final=summary["final"]["metrics"]["accuracy"],
        best=summary["best"]["metrics"]["accuracy"],
        reached=first_reaching(out / name / "metrics.csv", "eval_accuracy", target),
        updates_per_second=summary["updates_per_second"], wall=wall,
    )
    reached = f"reached {target:.0%} at {result.reached}" if result.reached else "target not reached"
    print(f"{name:{width}s} params {result.params:6d}  accuracy after {summary['updates']} updates {result.final:.3f} "
          f"(best {result.best:.3f})  {reached}  {result.updates_per_second:.3f} updates/s ({wall:.0f} s)", flush=True)
    return result


def print_table(results: dict[str, Result], updates: int, target: float) -> None:
    """The markdown table of all models' results."""
    print(f"\n| model | params | accuracy after {updates} updates | best | updates to {target:.0%} | updates/s |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        reached = r.reached if r.reached else f"not within {updates}"
        print(f"| {name} | {r.params} | {r.final:.3f} | {r.best:.3f} | {reached} | {r.updates_per_second:.3f} |")


@dataclass
class RaceRow:
    """One model of a convergence race: when it reached the target, its best metric and speed."""

    label: str
    params: int
    reached: int | None
    updates: int
    wall: float
    updates_per_second: float
    best: float


def race(label: str, config: TrainConfig, out: Path, metric: str, baseline: float) -> RaceRow:
    """Train ``config`` (which stops at its target) and print one line relative to ``baseline``."""
    start = time.perf_counter()
    summary = train(config, out_dir=out / label, progress=False)
    row = RaceRow(label, summary["num_params"], summary["target"]["reached_at"], summary["updates"],
                  time.perf_counter() - start, summary["updates_per_second"], summary["best"]["metrics"][metric])
    when = (f"reached after {row.reached} updates ({row.wall:.0f} s)" if row.reached
            else f"not reached in {row.updates} updates ({row.wall:.0f} s)")
    print(f"{label:12s} params {row.params:6d}  {when}  best {metric.upper()} {row.best:.4f} = "
          f"{row.best / baseline:.3f} x baseline  {row.updates_per_second:.2f} updates/s", flush=True)
    return row


def print_race_table(rows: list[RaceRow], target_header: str, metric: str, baseline: float, out: Path) -> None:
    """The markdown table of a race: updates to target, best metric / baseline, updates/s."""
    print(f"\n| model | params | {target_header} | best {metric.upper()} / baseline | updates/s |")
    print("|---|---|---|---|---|")
    for row in rows:
        when = f"{row.reached} ({row.wall:.0f} s)" if row.reached else f"not within {row.updates}"
        print(f"| {row.label} | {row.params} | {when} | {row.best / baseline:.3f} | {row.updates_per_second:.2f} |")
    print(f"\nruns in {out}")

"""Sequential MNIST: LSTM vs KAF-gated LSTM of the same width (the KAF paper's claim: faster convergence).

Both models read the 784 pixels of a digit one per step and name it at the end (PAPERS §1.5,
§5.3). Data: the embedded 5,000 real MNIST digits (4,000 train / 500 validation / 500 test), or
full MNIST through ``MEMENVS_DATA``. Same width, Adam 1e-3, clip 1.0; the KAF gates start as plain
sigmoids (kernel ridge fit to the identity), so the two models start from the same function.

Reports, per model: validation accuracy after the fixed budget of ``--updates`` updates, the best
validation accuracy, and the first evaluation (every ``--eval-every`` updates, on
``--eval-images`` validation digits) at which accuracy reached ``--target`` (default 80%),
plus updates/s and the ratio of the two models' updates-to-target when both get there.

    python benchmarks/mnist_kaf.py                               # 2,000 updates each
    python benchmarks/mnist_kaf.py --updates 100 --hidden-size 32 --batch-size 16
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import torch

from agents.supervised import TrainConfig, train

MODELS = ("lstm", "kaf-lstm")


def first_reaching(metrics_csv: Path, column: str, target: float) -> int | None:
    """The first logged update whose ``column`` is >= ``target`` (None if never)."""
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row[column] and float(row[column]) >= target:
                return int(row["update"])
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="SequentialMNIST-v0", help="or PermutedMNIST-v0")
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--updates", type=int, default=2_000, help="fixed budget per model (default 2000)")
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--eval-images", type=int, default=500, help="validation digits per evaluation (default: all 500)")
    parser.add_argument("--target", type=float, default=0.8, help="accuracy to reach (default 0.8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the machine is shared)")
    parser.add_argument("--out", help="where to keep the runs (default: a temporary directory)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    print(f"{args.task}: H={args.hidden_size}, batch {args.batch_size}, {args.updates} updates each, "
          f"evaluation on {args.eval_images} validation digits every {args.eval_every} updates", flush=True)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="mnist_kaf_"))
    eval_batch = min(100, args.eval_images)
    rows = {}
    for cell in MODELS:
        config = TrainConfig(
            task=args.task, cell=cell, hidden_size=args.hidden_size, updates=args.updates, batch_size=args.batch_size,
            optimizer="adam", lr=1e-3, clip=1.0, seed=args.seed, eval_every=args.eval_every, eval_split="validation",
            eval_batch_size=eval_batch, eval_batches=-(-args.eval_images // eval_batch), best_metric="accuracy",
            device=args.device,
        )
        t0 = time.perf_counter()
        summary = train(config, out_dir=out / cell, progress=False)
        wall = time.perf_counter() - t0
        final = summary["final"]["metrics"]["accuracy"]
        best = summary["best"]["metrics"]["accuracy"]
        reached = first_reaching(out / cell / "metrics.csv", "eval_accuracy", args.target)
        rows[cell] = (summary["num_params"], final, best, reached, summary["updates_per_second"], wall)
        print(f"{cell:9s} params {summary['num_params']:6d}  accuracy after {summary['updates']} updates {final:.3f} "
              f"(best {best:.3f})  {'reached ' + format(args.target, '.0%') + ' at ' + str(reached) if reached else 'target not reached'}"
              f"  {summary['updates_per_second']:.3f} updates/s ({wall:.0f} s)", flush=True)

    print(f"\n| model | params | accuracy after {args.updates} updates | best | updates to {args.target:.0%} | updates/s |")
    print("|---|---|---|---|---|---|")
    for cell, (params, final, best, reached, speed, wall) in rows.items():
        print(f"| {cell} | {params} | {final:.3f} | {best:.3f} | {reached if reached else 'not within ' + str(args.updates)} | {speed:.3f} |")
    (_, _, _, r_lstm, s_lstm, _), (_, _, _, r_kaf, s_kaf, _) = rows["lstm"], rows["kaf-lstm"]
    if r_lstm and r_kaf:
        print(f"\nupdates to {args.target:.0%}: kaf-lstm / lstm = {r_kaf / r_lstm:.2f}")
    print(f"time per update: kaf-lstm / lstm = {s_lstm / s_kaf:.1f}")
    print(f"\nruns in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Copy task T=100: updates until the cross-entropy falls below 10% of the memoryless baseline.

The NRU paper's first experiment (docs/nru.md#experiments-and-settings, docs/nru.md#headline-claim-and-results): batch 10, Adam 1e-3 with gradient clipping
1.0 (NRU: AMSGrad, clip 0.5), full BPTT, cross-entropy averaged over all T+20 steps, about 23.5k
parameters per model:

========== ====== ===================================================
model       H      options
========== ====== ===================================================
nru         80     memory 64, 4 heads (AMSGrad, clip 0.5)
lstm        70     peepholes, forget bias 1
lstm-chrono 70     peepholes, chrono init with t_max = T + 20
gru         82
========== ====== ===================================================

Each model trains for at most ``--updates`` updates (default 10,000, the budget of issue 4) and
stops as soon as the evaluation cross-entropy (``--eval-batches`` x 100 held-out sequences,
every ``--eval-every`` updates) is at most ``--fraction`` (10%) of ``10·ln 8 / (T + 20)``. It
prints one line per model and a table: who got there, after how many updates and seconds, and the
best cross-entropy as a ratio of the baseline.

    python benchmarks/copy_convergence.py                    # the full budget (hours on a laptop CPU)
    python benchmarks/copy_convergence.py --updates 1000     # a shorter budget
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import torch

from _common import print_race_table, race

from agents.supervised import TrainConfig

#: label -> (cell, hidden size, cell options, TrainConfig overrides), docs/nru.md#experiments-and-settings.
MODELS = {
    "nru": ("nru", 80, {"memory_size": 64, "num_heads": 4}, {"optimizer": "amsgrad", "clip": 0.5}),
    "lstm": ("lstm", 70, {"peepholes": True, "forget_bias": 1.0}, {}),
    "lstm-chrono": ("lstm", 70, {"peepholes": True, "init": "chrono", "t_max": "T+20"}, {}),
    "gru": ("gru", 82, {}, {}),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=int, default=100, help="T (default 100)")
    parser.add_argument("--updates", type=int, default=10_000, help="budget per model (default 10000)")
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--eval-batches", type=int, default=2, help="batches of 100 held-out sequences per evaluation")
    parser.add_argument("--fraction", type=float, default=0.1, help="target: CE <= fraction x memoryless CE (default 0.1)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the machine is shared)")
    parser.add_argument("--out", help="where to keep the runs (default: a temporary directory)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    T = args.delay
    baseline = 10 * math.log(8) / (T + 20)
    target = args.fraction * baseline
    print(f"copy T={T}: memoryless CE {baseline:.4f} nats/step, target CE <= {target:.4f}; "
          f"budget {args.updates} updates per model, batch 10", flush=True)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="copy_convergence_"))
    rows = []
    for label in args.models:
        cell, hidden, cell_kwargs, extra = MODELS[label]
        cell_kwargs = {k: (T + 20 if v == "T+20" else v) for k, v in cell_kwargs.items()}
        config = TrainConfig(
            task="copy", task_kwargs={"delay": T, "score": "all"}, cell=cell, hidden_size=hidden,
            cell_kwargs=cell_kwargs, updates=args.updates, batch_size=10, lr=1e-3, seed=args.seed,
            eval_every=args.eval_every, eval_batches=args.eval_batches, eval_batch_size=100,
            target_metric="ce", target_value=target, device=args.device, **{"clip": 1.0, **extra},
        )
        rows.append(race(label, config, out, "ce", baseline))
    print_race_table(rows, f"updates to CE <= {args.fraction:g} x baseline", "ce", baseline, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Memory of training on very long sequences under truncated BPTT and the auxiliary loss.

The auxiliary-loss paper trains on sequences of up to 16,384 steps (128x128 images read pixel by
pixel) with the main gradient truncated to the last few hundred steps and a reconstruction loss
over short segments. That only fits in memory if what an update keeps grows with the truncation
length and the segment length, not with the sequence length. This script measures it: for each
(sequence length T, truncation N) it trains an LSTM through the real trainer in a fresh process
(adding task, the auxiliary reconstruction loss with segment length N) and prints

- the peak resident memory of the training above the process's memory after imports, and
- the soak figure: memory growth per update between a warm-up run and a measured run
  (:func:`agents.soak.soak_train`; about 0 for a run that can go on for days).

Full BPTT (``N = full``) is measured beside it as the reference: its graph holds every step.

    python benchmarks/soak_long.py                                  # T 2048 and 16384, N 128 / 1024 / full
    python benchmarks/soak_long.py --lengths 16384 --truncations 300 --hidden-size 32
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install


def parse_truncation(text: str) -> int | None:
    return None if text == "full" else int(text)


def child(args: argparse.Namespace) -> None:
    """One measurement in this process; prints one JSON line."""
    import torch

    torch.set_num_threads(1)
    from agents.soak import rss_mb, soak_train
    from agents.supervised import TrainConfig

    baseline = rss_mb()
    tbptt = parse_truncation(args.truncation)
    aux = {} if tbptt is None else {"aux": "reconstruction", "aux_kwargs": {"segment_length": tbptt}}
    config = TrainConfig(task="adding", task_kwargs={"seq_len": args.seq_len}, cell=args.cell,
                         hidden_size=args.hidden_size, batch_size=args.batch_size, eval_batch_size=args.batch_size,
                         tbptt=tbptt, max_loss=None, **aux)
    result = soak_train(config, warmup=args.warmup, updates=args.updates)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    print(json.dumps({"peak_mb": peak - baseline, "mb_per_update": result.mb_per_update}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[2048, 16384], help="sequence lengths T")
    parser.add_argument("--truncations", nargs="+", default=["128", "1024", "full"],
                        help="tbptt chunk lengths N (also the aux segment length), or 'full' for full BPTT")
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=2, help="updates of the warm-up run (default 2)")
    parser.add_argument("--updates", type=int, default=5, help="updates of the measured run (default 5)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seq-len", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--truncation", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    print(f"adding task, {args.cell} H={args.hidden_size} B={args.batch_size}, one thread, "
          f"{args.warmup} + {args.updates} updates per row, each row in a fresh process")
    print("N: truncated BPTT chunk and auxiliary reconstruction segment ('full': full BPTT, no aux loss)\n")
    print("| T | N | peak MB above imports | MB per update (soak) |")
    print("|---|---|---|---|")
    for T in args.lengths:
        for N in args.truncations:
            command = [sys.executable, __file__, "--child", "--seq-len", str(T), "--truncation", N,
                       "--cell", args.cell, "--hidden-size", str(args.hidden_size),
                       "--batch-size", str(args.batch_size), "--warmup", str(args.warmup),
                       "--updates", str(args.updates)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["failed"])[-1]
                print(f"| {T} | {N} | failed: {last} | |", flush=True)
                continue
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"| {T} | {N} | {figures['peak_mb']:.0f} | {figures['mb_per_update']:+.2f} |", flush=True)


if __name__ == "__main__":
    main()

"""Memory per training update of every registered cell at paper sizes (the soak check).

Each cell trains through the real trainer (:func:`agents.soak.soak_train`): a warm-up run, then a
measured run, nothing written to disk; the process's resident memory is read after each (once
freed memory is handed back) and the difference per measured update is printed. A sound cell
prints about 0 MB per update; a cell whose graph is never freed prints about the size of one
forward's saved tensors (the fault the suite's ``tests/test_soak.py`` guards against). The
reference printed beside each figure is that size for an LSTM of the same shape (gates, cell
state, outputs), i.e. what a leak of one LSTM forward per update would add.

Default shape: the pixel-MNIST papers' T=784, B=100, H=128 on the adding task (no data needed;
two inputs per step instead of one). A full run takes about 10 minutes on two CPU cores.

    python benchmarks/soak.py                        # every cell, T=784 B=100 H=128
    python benchmarks/soak.py --cells glstm kaf-lstm --updates 20
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from agents.cells import list_cells  # noqa: E402
from agents.soak import soak_train  # noqa: E402
from agents.supervised import TrainConfig, TrainingDiverged  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", nargs="+", default=list_cells(), help="default: every registered cell")
    parser.add_argument("--seq-len", type=int, default=784)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=3, help="updates of the warm-up run (default 3)")
    parser.add_argument("--updates", type=int, default=10, help="updates of the measured run (default 10)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    T, B, H = args.seq_len, args.batch_size, args.hidden_size
    reference = T * B * 6 * H * 4 / 2**20  # float32 gates (4H), cell state and output per step
    print(f"adding task T={T} B={B} H={H}, {args.warmup} + {args.updates} updates per cell, "
          f"{args.threads} thread(s), device {args.device}")
    print(f"reference: one LSTM forward's saved tensors = {reference:.0f} MB\n")
    print("| cell | MB after warm-up | MB after measured run | MB per update | per update / reference |")
    print("|---|---|---|---|---|")
    for cell in args.cells:
        config = TrainConfig(task="adding", task_kwargs={"seq_len": T}, cell=cell, hidden_size=H,
                             batch_size=B, eval_batch_size=B, device=args.device,
                             max_loss=None)  # memory is the figure here, not the loss

        try:
            result = soak_train(config, warmup=args.warmup, updates=args.updates)
        except TrainingDiverged as err:  # a memory figure needs a run that trains
            print(f"| {cell} | diverged: {err} | | | |", flush=True)
            continue
        print(f"| {cell} | {result.warmup_mb:.0f} | {result.final_mb:.0f} | {result.mb_per_update:+.2f} | "
              f"{result.mb_per_update / reference:+.3f} |", flush=True)


if __name__ == "__main__":
    main()

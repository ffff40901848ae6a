"""Sequential MNIST: truncated LSTM vs r-LSTM (the auxiliary-loss paper's sanity check, docs/aux.md#pitfalls).

Trinh et al. (2018, Table 2) report that an LSTM whose classification gradient flows back only over
the last 300 of the 784 pixels ("LSTM Truncate300") collapses on MNIST (11.3% test accuracy), while
the same LSTM with the unsupervised reconstruction loss ("r-LSTM Truncate300") reaches 96.4%. This
script trains both on the same data and prints how far each gets within a fixed budget of updates;
``--full`` adds the full-BPTT LSTM (98.3% in the paper) as the reference.

Setting (docs/aux.md, as in the ``aux`` suite at paper scale):
- Data: the embedded 5,000 real MNIST digits (4,000 train / 500 validation / 500 test), or full MNIST
  through ``MEMENVS_DATA``; ``--task PermutedMNIST-v0`` for pMNIST. Pixels are fed as 256 intensity
  tokens through a learned 128-d embedding, as in the paper ([V-src] slides), not as floats.
- Model: LSTM 128, then a 2-layer readout (256 hidden units, dropout 0.5 before its second layer).
- Truncation: ``--tbptt`` 300; the supervised gradient reaches only the last 300 steps.
- r-LSTM: reconstruction loss with unit weight, one anchor per sequence drawn uniformly, segment of
  ``--segment-length`` 600 steps before the anchor (the public reproduction's value; paper [U]);
  its gradient stops at the segment start. The first ``--pretrain-fraction`` (10%) of the updates
  train the auxiliary loss only (the paper pre-trains; the length is [U]), so the r-LSTM gets 10%
  fewer supervised updates than the LSTM within the same budget.
- Optimiser: RMSprop 1e-3, clip 1.0 (the reproduction's; paper [U]).

The paper trains for tens of thousands of updates with batch 128; a CPU budget of a few hundred
updates tests only whether either model leaves the chance plateau (accuracy ~0.1) early.

Reports, per model: validation accuracy after ``--updates`` updates, best validation accuracy, the
first evaluation reaching ``--target``, updates/s; then the accuracy ratios r-LSTM / LSTM (final and
best) and the cost of an r-LSTM update relative to an LSTM update.

    python benchmarks/mnist_aux.py                                # 2,000 updates each, batch 32
    python benchmarks/mnist_aux.py --updates 300 --batch-size 16 --full
"""

from __future__ import annotations

import argparse

from _common import Result, add_pixel_arguments, eval_settings, print_table, run_model, setup_run

from agents.supervised import TrainConfig


def ratio(a: float, b: float) -> str:
    """``a / b`` to two decimals, or "n/a" when ``b`` is 0."""
    return f"{a / b:.2f}" if b else "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_pixel_arguments(parser, hidden_size=128, batch_size=32, updates=2_000)
    parser.add_argument("--tbptt", type=int, default=300, help="truncation of the supervised gradient (default 300)")
    parser.add_argument("--segment-length", type=int, default=600, help="reconstructed segment (default 600)")
    parser.add_argument("--pretrain-fraction", type=float, default=0.1,
                        help="share of the updates that train the auxiliary loss only (default 0.1)")
    parser.add_argument("--embedding-dim", type=int, default=128)
    parser.add_argument("--readout-hidden", type=int, default=256)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--full", action="store_true", help="also run the full-BPTT LSTM reference")
    args = parser.parse_args(argv)
    if not 0 <= args.pretrain_fraction < 1:
        parser.error(f"--pretrain-fraction={args.pretrain_fraction} must be in [0, 1)")
    out = setup_run(args, "mnist_aux_")

    pretrain = round(args.pretrain_fraction * args.updates)
    print(f"{args.task} (256 pixel tokens, embedding {args.embedding_dim}): H={args.hidden_size}, "
          f"batch {args.batch_size}, {args.updates} updates each, tbptt {args.tbptt}; r-LSTM: segment "
          f"{args.segment_length}, {pretrain} aux-only updates first; evaluation on {args.eval_images} "
          f"validation digits every {args.eval_every} updates", flush=True)
    truncated, reconstruction = f"lstm-tbptt{args.tbptt}", f"r-lstm-tbptt{args.tbptt}"
    runs = {
        truncated: {"tbptt": args.tbptt},
        reconstruction: {"tbptt": args.tbptt, "aux": "reconstruction", "aux_pretrain_updates": pretrain,
                         "aux_kwargs": {"segment_length": args.segment_length}},
    }
    if args.full:
        runs["lstm-full"] = {}
    width = max(len(name) for name in runs) + 1
    rows: dict[str, Result] = {}
    for name, fields in runs.items():
        config = TrainConfig(
            task=args.task, task_kwargs={"pixels": "tokens"}, cell="lstm", hidden_size=args.hidden_size,
            encoder="embedding", embedding_dim=args.embedding_dim, readout_hidden=args.readout_hidden,
            dropout=args.dropout, updates=args.updates, batch_size=args.batch_size, optimizer="rmsprop", lr=1e-3,
            clip=1.0, seed=args.seed, device=args.device, **eval_settings(args), **fields,
        )
        rows[name] = run_model(name, config, out, args.target, width)

    print_table(rows, args.updates, args.target)
    lstm, r_lstm = rows[truncated], rows[reconstruction]
    print(f"\naccuracy after {args.updates} updates: {reconstruction} / {truncated} = {ratio(r_lstm.final, lstm.final)} "
          f"(best: {ratio(r_lstm.best, lstm.best)}); paper (test accuracy): 96.4 / 11.3 = 8.5")
    print(f"time per update: {reconstruction} / {truncated} = {lstm.updates_per_second / r_lstm.updates_per_second:.1f}")
    print(f"\nruns in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Sequential MNIST: LSTM vs KAF-gated LSTM of the same width (the KAF paper's claim: faster convergence).

Both models read the 784 pixels of a digit one per step and name it at the end (docs/tasks.md#pixel-mnist, docs/kaf.md#experiments-and-settings). Data: the embedded 5,000 real MNIST digits (4,000 train / 500 validation / 500 test), or
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

from _common import Result, add_pixel_arguments, eval_settings, print_table, run_model, setup_run

from agents.supervised import TrainConfig

MODELS = ("lstm", "kaf-lstm")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_pixel_arguments(parser, hidden_size=64, batch_size=32, updates=2_000)
    args = parser.parse_args(argv)
    out = setup_run(args, "mnist_kaf_")

    print(f"{args.task}: H={args.hidden_size}, batch {args.batch_size}, {args.updates} updates each, "
          f"evaluation on {args.eval_images} validation digits every {args.eval_every} updates", flush=True)
    rows: dict[str, Result] = {}
    for cell in MODELS:
        config = TrainConfig(
            task=args.task, cell=cell, hidden_size=args.hidden_size, updates=args.updates, batch_size=args.batch_size,
            optimizer="adam", lr=1e-3, clip=1.0, seed=args.seed, device=args.device, **eval_settings(args),
        )
        rows[cell] = run_model(cell, config, out, args.target)

    print_table(rows, args.updates, args.target)
    lstm, kaf = rows["lstm"], rows["kaf-lstm"]
    if lstm.reached and kaf.reached:
        print(f"\nupdates to {args.target:.0%}: kaf-lstm / lstm = {kaf.reached / lstm.reached:.2f}")
    print(f"time per update: kaf-lstm / lstm = {lstm.updates_per_second / kaf.updates_per_second:.1f}")
    print(f"\nruns in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

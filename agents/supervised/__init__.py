"""Supervised harness: train any cell on any sequence task, with the papers' options.

    from agents.supervised import TrainConfig, train
    summary = train(TrainConfig(task="copy", cell="gru", hidden_size=82, updates=2000), out_dir="runs/gru")

See :mod:`agents.supervised.trainer` (the loop), :mod:`~agents.supervised.metrics` (losses and
metrics), :mod:`~agents.results.runs` (run directories, checkpoints, resume) and
:mod:`~agents.results.report` (markdown tables and learning curves).
"""

from agents.supervised.trainer import (
    Setup,
    TrainConfig,
    TrainingDiverged,
    build,
    evaluate,
    evaluation_batches,
    load_model,
    train,
)

__all__ = [
    "Setup",
    "TrainConfig",
    "TrainingDiverged",
    "build",
    "evaluate",
    "evaluation_batches",
    "load_model",
    "train",
]

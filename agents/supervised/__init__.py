"""Supervised harness: train any cell on any sequence task, with the papers' options.

    from agents.supervised import TrainConfig, train
    summary = train(TrainConfig(task="copy", cell="gru", hidden_size=82, updates=2000), out_dir="runs/gru")

See :mod:`agents.supervised.config` (the settings), :mod:`agents.supervised.trainer` (the loop), :mod:`~agents.supervised.metrics` (losses and
metrics), :mod:`~agents.results.runs` (run directories, checkpoints, resume) and
:mod:`~agents.results.report` (markdown tables and learning curves).
"""

from agents._lazy import lazy_exports

# Imported on first use: ``memory-bench train --help`` reaches agents.supervised.cli through this
# package and must not import torch (TrainConfig's module does not).
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "agents.supervised.config": ["TrainConfig"],
    "agents.supervised.trainer": ["Setup", "TrainingDiverged", "build", "evaluate", "evaluation_batches", "load_model",
                                  "train"],
})

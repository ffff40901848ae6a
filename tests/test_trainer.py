"""Supervised trainer: losses and metrics against independent facts, and training behaviour
(overfitting, resume, divergence, curriculum, aux pre-training, budget, early stopping)."""

from __future__ import annotations

import csv
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import memenvs
from agents.supervised import TrainConfig, TrainingDiverged, build, evaluate, load_model, train
from agents.supervised.metrics import MetricAccumulator, sequence_loss, to_tensors
from agents.results.runs import load_checkpoint
from memenvs.tasks.copy import CopyTask
from tiny_cells import TinyRNN, register

# --------------------------------------------------------------------------------------------
# Test doubles: a gated tiny cell and tasks importable as "module:Class"
# --------------------------------------------------------------------------------------------


class GatedRNN(TinyRNN):
    """TinyRNN with a learnable constant "time gate" sigmoid(g) (like g-LSTM's contract)."""

    time_gated = True

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.gate = nn.Parameter(torch.linspace(-2.0, 2.0, hidden_size))

    def forward(self, inputs, state=None, resets=None):
        out, state = self._loop(inputs, state, resets)
        T, B = inputs.shape[:2]
        self.gate_openness = torch.sigmoid(self.gate).expand(T, B, self.hidden_size)
        self.update_count = (self.gate_openness.detach() > 0.5).sum() / B  # per sequence
        return out, state


MODULE = __name__


class FixedCopyTask(CopyTask):
    """Copy task that returns the same batch at every call (to check the trainer can overfit)."""

    length_knob = None

    def sample(self, batch_size, rng):
        return super().sample(batch_size, np.random.default_rng(123))


class NaNCopyTask(CopyTask):
    """Copy task with real-valued inputs that turn NaN on the ``nan_at``-th training batch."""

    input_kind = "real"
    calls = 0
    nan_at = 5

    def sample(self, batch_size, rng):
        batch = super().sample(batch_size, rng)
        batch.inputs = np.eye(self.num_inputs, dtype=np.float32)[batch.inputs]
        if batch_size == 3:  # training batches only (probe: 2, evaluation: 4)
            NaNCopyTask.calls += 1
            if NaNCopyTask.calls >= NaNCopyTask.nan_at:
                batch.inputs[:] = np.nan
        return batch


class SplitCopyTask(CopyTask):
    """Copy task with a fixed "dataset" split served by ``iterate`` (records what was asked)."""

    requests: list = []
    served = 0

    def iterate(self, split, batch_size):
        SplitCopyTask.requests.append((split, batch_size))
        rng = np.random.default_rng(99)
        for _ in range(3):
            SplitCopyTask.served += 1
            yield self.sample(batch_size, rng)


@pytest.fixture(autouse=True)
def tiny_cells(monkeypatch):
    register(monkeypatch, "tiny", TinyRNN)
    register(monkeypatch, "tiny-gated", GatedRNN)


def small(**changes) -> TrainConfig:
    base = dict(
        task="copy", task_kwargs={"delay": 3, "length": 2}, cell="tiny", hidden_size=8, updates=6,
        batch_size=3, eval_every=2, eval_batches=2, eval_batch_size=4, seed=3,
    )
    return TrainConfig(**{**base, **changes})


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------------------------
# Losses and metrics
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("T", [5, 30])
def test_copy_all_memoryless_ce_equals_analytic_baseline(T):
    """Blank with certainty until the recall phase, then uniform over the 8 data symbols:
    CE per step over all T+20 steps must be 10·ln 8 / (T+20) (docs/tasks.md#copy)."""
    task = memenvs.make_task("copy", delay=T, score="all")
    batch = task.sample(6, np.random.default_rng(0))
    steps, B = batch.mask.shape
    logits = torch.full((steps, B, 9), -math.inf)
    logits[: T + 10, :, 0] = 0.0  # blank, probability 1
    logits[T + 10 :, :, 1:] = 0.0  # uniform over the data symbols 1..8
    _, targets, mask = to_tensors(batch, "cpu")
    expected = 10 * math.log(8) / (T + 20)
    assert float(sequence_loss(logits, targets, mask, "class")) == pytest.approx(expected, rel=1e-6)
    acc = MetricAccumulator("class")
    acc.add(logits, targets, mask, task, batch)
    metrics = acc.result(task.reference_scores())
    assert metrics["ce"] == pytest.approx(expected, rel=1e-6)
    assert metrics["bpc"] == pytest.approx(expected / math.log(2), rel=1e-6)


def test_oracle_outputs_score_exactly_one():
    task = memenvs.make_task("copy", delay=4, length=3)  # score="recall"
    batch = task.sample(5, np.random.default_rng(1))
    _, targets, mask = to_tensors(batch, "cpu")
    logits = torch.nn.functional.one_hot(targets, task.num_outputs).float() * 20
    acc = MetricAccumulator("class")
    acc.add(logits, targets, mask, task, batch)
    m = acc.result(task.reference_scores())
    assert m["accuracy"] == 1.0 and m["sequence_accuracy"] == 1.0
    assert m["return"] == pytest.approx(1.0, abs=1e-9)
    assert m["score"] == pytest.approx(1.0, abs=1e-9)


def test_step_and_sequence_accuracy_count_scored_steps_only():
    task = memenvs.make_task("copy", delay=2, length=2)  # T = 6, steps 4 and 5 scored
    batch = task.sample(2, np.random.default_rng(2))
    _, targets, mask = to_tensors(batch, "cpu")
    logits = torch.nn.functional.one_hot(targets, task.num_outputs).float()
    logits[0, :, :] = torch.nn.functional.one_hot((targets[0] + 1) % 9, 9).float() * 5  # unscored: wrong
    logits[5, 1] = torch.nn.functional.one_hot((targets[5, 1] + 1) % 9, 9).float() * 5  # scored: wrong
    acc = MetricAccumulator("class")
    acc.add(logits, targets, mask, task, batch)
    m = acc.result(task.reference_scores())
    assert m["accuracy"] == pytest.approx(3 / 4)
    assert m["sequence_accuracy"] == pytest.approx(1 / 2)
    assert m["return"] == pytest.approx((1.0 + 0.5) / 2)  # returns = fraction of recall steps right


def test_mse_over_scored_steps_matches_numpy():
    rng = np.random.default_rng(3)
    out, tgt = rng.normal(size=(7, 4, 2)), rng.normal(size=(7, 4, 2))
    mask = rng.random((7, 4)) < 0.5
    mask[0, 0] = True
    expected = ((out - tgt) ** 2)[mask].mean()
    got = sequence_loss(torch.tensor(out), torch.tensor(tgt), torch.tensor(mask), "real")
    assert float(got) == pytest.approx(expected)


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, name",
    [
        ({"hidden_size": 0}, "hidden_size"),
        ({"optimizer": "sgd"}, "optimizer"),
        ({"lr": -1.0}, "lr"),
        ({"clip": 0.0}, "clip"),
        ({"tbptt": 0}, "tbptt"),
        ({"aux": "contrastive"}, "aux"),
        ({"aux_pretrain_updates": 3}, "aux_pretrain_updates"),
        ({"curriculum": [[5]]}, "curriculum"),
        ({"eval_every": 0}, "eval_every"),
        ({"target_metric": "ce"}, "target_metric"),
        ({"task_kwargs": {"delay": object()}}, "JSON"),
        ({"budget_weight": -0.1}, "budget_weight"),
    ],
)
def test_bad_config_values_name_the_field(changes, name):
    with pytest.raises(ValueError, match=name):
        small(**changes)


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"task": "nosuchtask"}, "unknown task 'nosuchtask'"),
        ({"cell": "nosuchcell"}, "unknown cell 'nosuchcell'"),
        ({"task_kwargs": {"delay": -1}}, "delay=-1"),
        ({"task_kwargs": {"dealy": 3}}, "dealy"),
        ({"cell_kwargs": {"width": 3}}, "width"),
        ({"best_metric": "mse"}, "best_metric='mse'"),
        ({"curriculum": [[-2, 3]]}, "delay=-2"),
        ({"task": f"{MODULE}:FixedCopyTask", "curriculum": [[2, 3]]}, "no length knob"),
        ({"aux": "reconstruction", "aux_kwargs": {"segment_length": 50}}, "segment_length"),
        ({"eval_split": "test"}, "eval_split"),
        ({"device": "nodevice"}, "device='nodevice'"),
    ],
)
def test_build_rejects_bad_task_model_or_metric(changes, words):
    with pytest.raises(ValueError, match=words):
        build(small(**changes))


def test_config_json_round_trip_and_unknown_field():
    config = small(curriculum=[[2, 3]], clip=None, tbptt=4)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        TrainConfig.from_dict({**config.to_dict(), "lr_decay": 0.5})


def test_optimizer_settings():
    assert build(small(optimizer="amsgrad")).optimizer.param_groups[0]["amsgrad"] is True
    rms = build(small(optimizer="rmsprop", lr=0.01)).optimizer
    assert isinstance(rms, torch.optim.RMSprop) and rms.param_groups[0]["alpha"] == 0.9


# --------------------------------------------------------------------------------------------
# Training behaviour
# --------------------------------------------------------------------------------------------


def test_overfits_one_fixed_copy_batch():
    config = small(
        task=f"{MODULE}:FixedCopyTask", task_kwargs={"delay": 2, "length": 2, "alphabet": 3},
        hidden_size=32, lr=0.02, updates=150, eval_every=150, batch_size=3, eval_batch_size=3, eval_batches=1,
    )
    summary = train(config, progress=False)
    assert summary["final"]["metrics"]["ce"] < 0.05
    assert summary["final"]["metrics"]["sequence_accuracy"] == 1.0


def test_run_directory_contents(tmp_path):
    summary = train(small(), out_dir=tmp_path / "run", progress=False)
    run = tmp_path / "run"
    assert {"config.json", "metrics.csv", "summary.json", "latest.pt", "best.pt", "tensorboard"} <= {
        p.name for p in run.iterdir()
    }
    assert any((run / "tensorboard").iterdir())
    rows = read_rows(run / "metrics.csv")
    assert [int(r["update"]) for r in rows] == [0, 2, 4, 6]
    assert summary["updates"] == 6 and summary["status"] == "completed"
    best = min(float(r["eval_ce"]) for r in rows)
    assert summary["best"]["value"] == best
    assert load_checkpoint(run / "best.pt")["update"] == summary["best"]["update"]
    assert load_checkpoint(run / "latest.pt")["update"] == 6


def test_evaluation_stream_is_fixed():
    """Same seed and no training (lr tiny) -> identical evaluation numbers at every evaluation."""
    summary = train(small(lr=1e-12, updates=4), progress=False)
    first = train(small(lr=1e-12, updates=2), progress=False)
    assert summary["final"]["metrics"] == pytest.approx(first["final"]["metrics"], rel=1e-6)


def test_resume_equals_uninterrupted(tmp_path):
    # dropout (torch RNG), aux anchors (torch RNG) and fresh batches (numpy RNG) all must resume exactly
    config = small(
        readout_hidden=6, dropout=0.3, aux="reconstruction", aux_kwargs={"segment_length": 3, "decoder_hidden": 4,
        "ffn_hidden": 4}, updates=8,
    )
    train(config, out_dir=tmp_path / "full", progress=False)
    train(TrainConfig.from_dict({**config.to_dict(), "updates": 4}), out_dir=tmp_path / "part", progress=False)
    train(config, out_dir=tmp_path / "part", resume=True, progress=False)

    def strip(rows):
        return [{k: v for k, v in r.items() if k != "wall_time"} for r in rows]

    full, part = read_rows(tmp_path / "full/metrics.csv"), read_rows(tmp_path / "part/metrics.csv")
    assert [r["update"] for r in part] == ["0", "2", "4", "6", "8"]
    assert strip(part) == strip(full)
    a = load_checkpoint(tmp_path / "full/latest.pt")["model"]
    b = load_checkpoint(tmp_path / "part/latest.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_drops_rows_written_after_the_checkpoint(tmp_path):
    train(small(updates=4), out_dir=tmp_path / "run", progress=False)
    with open(tmp_path / "run/metrics.csv", "a") as f:
        f.write("5,0.1,,,,,,,,,\n")  # as if the run died after logging, before checkpointing
    train(small(updates=6), out_dir=tmp_path / "run", resume=True, progress=False)
    assert [r["update"] for r in read_rows(tmp_path / "run/metrics.csv")] == ["0", "2", "4", "6"]


def test_resume_refuses_a_changed_config(tmp_path):
    train(small(updates=2), out_dir=tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="lr"):
        train(small(lr=0.5), out_dir=tmp_path / "run", resume=True, progress=False)


def test_new_run_refuses_a_non_empty_directory(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        train(small(), out_dir=tmp_path / "run", progress=False)


def test_nan_stops_with_the_update_and_keeps_the_last_good_checkpoint(tmp_path):
    NaNCopyTask.calls = 0
    config = small(task=f"{MODULE}:NaNCopyTask", updates=10)
    with pytest.raises(TrainingDiverged, match="at update 5") as err:
        train(config, out_dir=tmp_path / "run", progress=False)
    assert "latest.pt" in str(err.value)
    ckpt = load_checkpoint(tmp_path / "run/latest.pt")
    assert ckpt["update"] == 4
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert [r["update"] for r in read_rows(tmp_path / "run/metrics.csv")] == ["0", "2", "4"]
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert summary["status"] == "diverged" and "update 5" in summary["error"]


def test_curriculum_trains_on_each_stage_then_the_task(tmp_path):
    config = small(task_kwargs={"delay": 6, "length": 2}, curriculum=[[2, 2], [4, 2]], updates=6)
    setup = build(config)
    assert [setup.task_at(u).delay for u in range(1, 7)] == [2, 2, 4, 4, 6, 6]
    train(config, out_dir=tmp_path / "run", progress=False)
    rows = read_rows(tmp_path / "run/metrics.csv")
    assert [r["train_length"] for r in rows[1:]] == ["6", "8", "10"]  # delay + 2·length


def test_aux_pretraining_then_joint(tmp_path):
    config = small(aux="prediction", aux_kwargs={"segment_length": 2, "decoder_hidden": 4, "ffn_hidden": 4},
                   aux_pretrain_updates=2, updates=4)
    train(config, out_dir=tmp_path / "run", progress=False)
    rows = read_rows(tmp_path / "run/metrics.csv")
    assert rows[1]["train_loss"] == "" and float(rows[1]["train_aux_loss"]) > 0  # aux only
    assert float(rows[2]["train_loss"]) > 0 and float(rows[2]["train_aux_loss"]) > 0  # joint


def test_budget_loss_pushes_the_gates_down(tmp_path):
    """The tiny gated cell's output ignores its gate, so only the budget term can move it."""

    def gates(weight, name):
        config = small(cell="tiny-gated", budget_weight=weight, updates=1, lr=0.1)
        initial = build(config).model.cell.gate.detach().clone()  # same seed -> same init as train()
        summary = train(config, out_dir=tmp_path / name, progress=False)
        trained = load_checkpoint(tmp_path / name / "latest.pt")["model"]["cell.gate"]
        return initial, trained, summary

    initial, trained, summary = gates(1.0, "budget")
    assert torch.all(trained < initial)  # d mean(sigmoid(g)) / dg > 0, so Adam lowers every gate
    # compute report: units with gate > 0.5 (4 of 8: linspace(-2, 2, 8) - 0.1 keeps its signs)
    assert summary["final"]["metrics"]["updated_fraction"] == pytest.approx(0.5)
    initial, trained, _ = gates(0.0, "no_budget")
    assert torch.equal(trained, initial)


def test_target_metric_stops_early():
    summary = train(small(target_metric="loss", target_value=100.0, updates=50), progress=False)
    assert summary["status"] == "target_reached"
    assert summary["updates"] == 2 and summary["target"]["reached_at"] == 2


def test_eval_split_evaluates_on_task_iterate(tmp_path):
    SplitCopyTask.requests, SplitCopyTask.served = [], 0
    config = small(task=f"{MODULE}:SplitCopyTask", eval_split="validation", eval_batches=2, updates=2)
    summary = train(config, out_dir=tmp_path / "run", progress=False)
    assert set(SplitCopyTask.requests) == {("validation", 4)}
    assert SplitCopyTask.served == 2 * len(SplitCopyTask.requests)  # eval_batches caps the split
    model, loaded = load_model(tmp_path / "run", "latest")
    assert loaded == config
    task = SplitCopyTask(**config.task_kwargs)
    again = evaluate(model, task, list(task.iterate("validation", 4))[:2], "cpu")
    assert again == pytest.approx(summary["final"]["metrics"])


def test_carry_state_evaluates_a_split_sequence_like_the_whole():
    """Evaluating the two halves of a sequence with carried state equals evaluating it whole."""
    task = memenvs.make_task("copy", delay=4, length=2, score="all")
    model = build(small(task_kwargs={"delay": 4, "length": 2, "score": "all"})).model
    whole = task.sample(3, np.random.default_rng(5))

    def part(steps):
        return type(whole)(whole.inputs[steps], whole.targets[steps], whole.mask[steps])

    halves = [part(slice(0, 3)), part(slice(3, None))]
    full = evaluate(model, task, [whole], "cpu")
    carried = evaluate(model, task, halves, "cpu", carry_state=True)
    fresh = evaluate(model, task, halves, "cpu", carry_state=False)
    assert carried["ce"] == pytest.approx(full["ce"], rel=1e-6)
    assert carried["accuracy"] == pytest.approx(full["accuracy"])
    assert fresh["ce"] != pytest.approx(full["ce"], rel=1e-6)


def test_lr_halving_on_plateaus(tmp_path, monkeypatch) -> None:
    """With the evaluation metric stuck, the learning rate halves after every 2 updates without
    improvement (patience 2, evaluating every update): after update 0 sets the best, updates 2,
    4 and 6 halve it; a resumed run continues the same schedule."""
    import agents.supervised.trainer as trainer
    from agents.results.runs import load_checkpoint

    monkeypatch.setattr(trainer, "evaluate", lambda *args, **kwargs: {"ce": 1.0, "accuracy": 0.5, "score": 0.0})
    config = TrainConfig(task="copy", task_kwargs={"delay": 2}, hidden_size=4, updates=5, eval_every=1,
                         lr=0.01, lr_halving_patience=2, eval_batches=1)
    train(config, tmp_path, progress=False)
    lr = lambda: load_checkpoint(tmp_path / "latest.pt")["optimizer"]["param_groups"][0]["lr"]  # noqa: E731
    assert lr() == pytest.approx(0.01 / 4)
    train(dataclasses.replace(config, updates=7), tmp_path, resume=True, progress=False)
    assert lr() == pytest.approx(0.01 / 8)
    with pytest.raises(ValueError, match="lr_halving_patience"):
        TrainConfig(lr_halving_patience=0)


def test_clip_gradients_matches_torch_and_survives_norms_past_float32():
    """Ordinary gradients: exactly the scaling and norm of nn.utils.clip_grad_norm_. Gradients whose
    total norm overflows a float32 sum (about 1e19; an NRU at its initial memory plateau makes
    them) are finite, so they are clipped rather than reported as an inf norm."""
    from agents.supervised.trainer import clip_gradients

    torch.manual_seed(0)
    a = [torch.nn.Parameter(torch.zeros(5, 3)), torch.nn.Parameter(torch.zeros(7))]
    b = [torch.nn.Parameter(torch.zeros(5, 3)), torch.nn.Parameter(torch.zeros(7))]
    for pa, pb in zip(a, b):
        pa.grad = torch.randn_like(pa) * 3
        pb.grad = pa.grad.clone()
    expected = float(torch.nn.utils.clip_grad_norm_(b, 1.0))
    assert clip_gradients(a, 1.0) == expected  # bit for bit: earlier runs stay reproducible
    for pa, pb in zip(a, b):
        assert torch.equal(pa.grad, pb.grad)

    huge = torch.nn.Parameter(torch.zeros(4))
    huge.grad = torch.full((4,), 3e19)
    reference = torch.nn.Parameter(torch.zeros(4))
    reference.grad = huge.grad.clone()
    assert math.isinf(float(torch.nn.utils.clip_grad_norm_([reference], 1.0)))  # the float32 sum overflows
    norm = clip_gradients([huge], 1.0)
    assert norm == pytest.approx(6e19, rel=1e-6)  # sqrt(4 * 9e38)
    assert float(huge.grad.norm(dtype=torch.float64)) == pytest.approx(1.0, rel=1e-5)

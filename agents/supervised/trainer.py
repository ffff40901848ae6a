"""Train any cell on any sequence task with supervised learning.

::

    from agents.supervised import TrainConfig, train
    summary = train(TrainConfig(task="copy", task_kwargs={"delay": 100, "score": "all"},
                                cell="nru", hidden_size=80, cell_kwargs={"memory_size": 64},
                                optimizer="amsgrad", clip=0.5, updates=10_000), out_dir="runs/nru")

One update = one fresh batch from ``task.sample(batch_size, rng)`` (infinite data, as in the
papers' synthetic tasks), one optimiser step. Every ``eval_every`` updates the model is evaluated
on a held-out stream drawn from its own fixed seed (the same batches every time) or, for tasks
with real datasets, on a split from ``task.iterate(split, batch_size)``. The options of the five
papers are trainer settings rather than forks of the loop: truncated BPTT (``tbptt``), auxiliary
reconstruction / prediction losses with an aux-only pre-training phase (``aux``), the g-LSTM budget
loss (``budget_weight``) and a temporal curriculum over the task's length knob (``curriculum``).

:func:`train` reads top to bottom: build and validate everything, open the run directory, then the
update loop (sample, forward, losses, backward, clip, step, evaluate, checkpoint).
"""

from __future__ import annotations

import itertools
import json
import math
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

import memenvs
from agents.cells.base import CELLS
from agents.losses.budget import budget_loss
from agents.models import SequenceModel, count_parameters
from agents.supervised.config import RESUMABLE_CHANGES, TrainConfig
from agents.results.runs import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    RunDir,
    error_line,
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
    write_json,
)
from agents.results.stats import LOWER_IS_BETTER
from agents.supervised.metrics import (
    MetricAccumulator,
    is_better,
    metric_names,
    reached,
    resolve_metric,
    sequence_loss,
    to_tensors,
)
from memenvs.core import SequenceBatch, SequenceTask, _resolve_task, check_choice

#: What a training checkpoint holds besides its format tag (all needed to resume).
CHECKPOINT_KEYS = ("update", "wall_time", "config", "model", "optimizer", "aux", "rng", "best", "last")


class TrainingDiverged(RuntimeError):
    """The loss or the gradient norm became NaN/inf, or the loss rose above ``max_loss``; the
    message names the update and the last good checkpoint (which is left untouched)."""


# --------------------------------------------------------------------------------------------
# Building the pieces (all validation happens here, before anything is written to disk)
# --------------------------------------------------------------------------------------------


def make_task(name: str, kwargs: dict[str, Any]) -> SequenceTask:
    """A registered task by name, or a task class given as ``"module:Class"``."""
    try:
        task = _resolve_task(name, dict(kwargs)) if ":" in name else memenvs.make_task(name, **kwargs)
    except TypeError as err:  # unknown keyword of the task class
        raise ValueError(f"task {name!r} rejected task_kwargs {kwargs}: {err}") from None
    except (ImportError, AttributeError) as err:
        raise ValueError(f"unknown task {name!r}: {err}") from None
    if not isinstance(task, SequenceTask):
        raise ValueError(f"task {name!r} is not a SequenceTask")
    return task


def build_model(config: TrainConfig, task: SequenceTask) -> SequenceModel:
    """The :class:`SequenceModel` described by ``config``, shaped for ``task``."""
    if config.cell not in CELLS:
        raise ValueError(f"unknown cell {config.cell!r}: choose one of {', '.join(sorted(CELLS))}")
    try:
        return SequenceModel.for_task(
            task,
            cell=config.cell,
            hidden_size=config.hidden_size,
            cell_kwargs=config.cell_kwargs,
            encoder=config.encoder,
            embedding_dim=config.embedding_dim,
            readout_hidden=config.readout_hidden,
            dropout=config.dropout,
            readout_init=config.readout_init,
        )
    except TypeError as err:
        raise ValueError(f"cell {config.cell!r} rejected cell_kwargs {config.cell_kwargs}: {err}") from None


def make_optimizer(config: TrainConfig, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """Adam / Adam-AMSGrad (PyTorch defaults otherwise, as in the NRU code) or RMSprop(alpha=0.9)."""
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.lr, alpha=0.9)
    return torch.optim.Adam(params, lr=config.lr, amsgrad=config.optimizer == "amsgrad")


def clip_gradients(params: Sequence[nn.Parameter], max_norm: float | None) -> float:
    """Scale the gradients so their total L2 norm is at most ``max_norm`` (None: leave them), and
    return the norm before scaling.

    ``nn.utils.clip_grad_norm_`` does this whenever its float32 sum of the norms is finite (so runs
    are unchanged, bit for bit). Past about 1e19 that sum overflows: torch would report an inf norm
    and scale the gradients by 0, although every entry is finite. An NRU at its initial memory
    plateau produces such gradients in its first updates
    (docs/nru.md#memory-growth-at-initialisation). They are clipped here with the norm summed in
    float64, as the reference training does.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    limit = math.inf if max_norm is None else max_norm
    if hasattr(nn.utils, "get_total_norm"):  # torch >= 2.6: clip_grad_norm_'s own two halves
        total = nn.utils.get_total_norm(grads)
    else:
        total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    if not torch.isinf(total):
        if hasattr(nn.utils, "clip_grads_with_norm_"):
            nn.utils.clip_grads_with_norm_(params, limit, total)
        else:
            coef = (limit / (total + 1e-6)).clamp(max=1.0)
            for g in grads:
                g.mul_(coef)
        return float(total)
    norm = math.sqrt(sum(float(torch.linalg.vector_norm(g, dtype=torch.float64)) ** 2 for g in grads))
    if math.isfinite(norm) and norm > limit:
        scale = limit / (norm + 1e-6)
        for g in grads:
            g.mul_(scale)
    return norm


def make_scheduler(
    config: TrainConfig, optimizer: torch.optim.Optimizer, metric: str
) -> torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    """Halving of the learning rate on plateaus (``lr_halving_patience``), stepped with the
    evaluation's ``metric``: it halves after ``ceil(patience / eval_every)`` evaluations in a
    row without improvement."""
    if config.lr_halving_patience is None:
        return None
    evaluations = math.ceil(config.lr_halving_patience / config.eval_every)
    mode = "min" if metric in LOWER_IS_BETTER else "max"
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=0.5, patience=evaluations - 1,
                                                      threshold=0.0)


def make_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"device={name!r} is not a torch device: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} is not available: torch sees no CUDA device")
    return device


@dataclass
class Setup:
    """The validated pieces of a run, built by :func:`build`."""

    config: TrainConfig
    task: SequenceTask  # the configured (evaluation) task
    stages: list[tuple[int, SequenceTask]]  # curriculum: (last update of the stage, task)
    model: SequenceModel
    aux: nn.Module | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau | None  # lr_halving_patience
    device: torch.device
    metrics: tuple[str, ...]
    best_metric: str
    target_metric: str | None

    def task_at(self, update: int) -> SequenceTask:
        """The training task at ``update`` (1-based): the curriculum stage or the configured task."""
        for last, task in self.stages:
            if update <= last:
                return task
        return self.task

    def columns(self) -> list[str]:
        """metrics.csv columns."""
        train = ["train_length", "train_loss", "grad_norm"] + (["train_aux_loss"] if self.aux is not None else [])
        return ["update", "wall_time"] + train + [f"eval_{m}" for m in self.metrics]


def build(config: TrainConfig) -> Setup:
    """Build task, curriculum, model, auxiliary loss and optimiser; raise ValueError on bad input.

    Also runs the model once on a two-sequence batch (no gradient), so a cell that fails on the
    task's inputs fails here, before a run directory is created.
    """
    device = make_device(config.device)
    task = make_task(config.task, config.task_kwargs)
    stages = _curriculum(config, task)
    torch.manual_seed(config.seed)
    model = build_model(config, task).to(device)

    probe = task.sample(2, np.random.default_rng(0))
    inputs, _, _ = to_tensors(probe, device)
    model.eval()
    with torch.no_grad():
        outputs, _ = model(inputs)
    model.train()
    gated = model.cell.time_gated
    if tuple(outputs.shape) != (probe.seq_len, 2, task.num_outputs):
        raise ValueError(f"model output shape {tuple(outputs.shape)} does not match the task ({probe.seq_len}, 2, {task.num_outputs})")

    aux = None
    if config.aux != "none":
        from agents.losses.auxiliary import AuxiliaryLoss

        kwargs = {"segment_length": max(2, round(0.75 * task.max_length)), **config.aux_kwargs}
        for fixed in ("cell", "mode", "target", "num_targets"):
            if fixed in kwargs:
                raise ValueError(f"aux_kwargs may not set {fixed!r}: the trainer derives it from the task and config")
        try:
            aux = AuxiliaryLoss(
                model.cell, config.aux, target=task.input_kind, num_targets=task.num_inputs, **kwargs
            )
        except TypeError as err:
            raise ValueError(f"aux_kwargs {config.aux_kwargs} rejected: {err}") from None
        if not aux.valid_anchors(task.max_length, 1).any():
            raise ValueError(
                f"aux segment_length={aux.segment_length} leaves no anchor in a sequence of {task.max_length} steps"
            )
    if config.aux_pretrain_updates > config.updates:
        raise ValueError(f"aux_pretrain_updates={config.aux_pretrain_updates} exceeds updates={config.updates}")

    if config.eval_split is not None and not hasattr(task, "iterate"):
        raise ValueError(f"eval_split={config.eval_split!r}: task {config.task!r} has no dataset splits (no iterate())")
    params = list(model.parameters()) + (list(aux.parameters()) if aux is not None else [])
    kind = task.target_kind
    optimizer = make_optimizer(config, params)
    best_metric = resolve_metric(config.best_metric, kind, "best_metric", gated)
    return Setup(
        config=config,
        task=task,
        stages=stages,
        model=model,
        aux=aux,
        optimizer=optimizer,
        scheduler=make_scheduler(config, optimizer, best_metric),
        device=device,
        metrics=metric_names(kind, gated),
        best_metric=best_metric,
        target_metric=None
        if config.target_metric is None
        else resolve_metric(config.target_metric, kind, "target_metric", gated),
    )


def has_test_split(task: SequenceTask) -> bool:
    """Whether ``task`` reads a dataset with a test split (evaluated at the end of a run)."""
    return task.dataset is not None and task.dataset.splits.get("test", 0) > 0


def _set_clock(cell: nn.Module, task: SequenceTask, final: SequenceTask) -> None:
    """Lay a time-gated cell's gates out for ``task``'s length, a curriculum stage of ``final``:
    its clock runs ``final.max_length / task.max_length`` times faster, so the gate layout scales
    with the stage (see :attr:`agents.cells.time_gated.TimeGatedLSTM.time_scale`)."""
    if cell.time_gated:
        cell.time_scale = task.max_length / final.max_length


def _curriculum(config: TrainConfig, task: SequenceTask) -> list[tuple[int, SequenceTask]]:
    if config.curriculum is None:
        return []
    knob = task.length_knob
    if knob is None:
        raise ValueError(f"curriculum: task {config.task!r} has no length knob to schedule")
    stages, last = [], 0
    for value, n in config.curriculum:
        try:
            stage = task.with_kwargs(**{knob: value})
        except TypeError as err:
            raise ValueError(f"curriculum value {knob}={value!r} rejected: {err}") from None
        if (stage.input_kind, stage.num_inputs, stage.num_outputs) != (task.input_kind, task.num_inputs, task.num_outputs):
            raise ValueError(f"curriculum value {knob}={value!r} changes the task's input/output sizes")
        last += n
        stages.append((last, stage))
    return stages


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def evaluation_batches(setup: Setup) -> Iterator[SequenceBatch]:
    """The held-out batches: a fixed-seed random stream (identical at every evaluation) or the
    first ``eval_batches`` batches of ``task.iterate(eval_split, eval_batch_size)``."""
    config = setup.config
    if config.eval_split is not None:
        batches = setup.task.iterate(config.eval_split, config.eval_batch_size)
        return itertools.islice(batches, config.eval_batches or None)
    rng = np.random.default_rng(np.random.SeedSequence(config.seed).spawn(2)[1])
    return (setup.task.sample(config.eval_batch_size, rng) for _ in range(config.eval_batches))


@torch.no_grad()
def evaluate(
    model: SequenceModel,
    task: SequenceTask,
    batches: Iterable[SequenceBatch],
    device: torch.device | str,
    carry_state: bool = False,
) -> dict[str, float]:
    """Metrics of ``model`` over ``batches`` (see :mod:`agents.supervised.metrics`); the model is
    put in eval mode for the duration (no dropout). ``carry_state``: each batch starts from the
    previous batch's final state (streamed splits) instead of the initial state."""
    was_training = model.training
    model.eval()
    acc = MetricAccumulator(task.target_kind)
    state = None
    try:
        for batch in batches:
            inputs, targets, mask = to_tensors(batch, device)
            outputs, final = model(inputs, state)
            state = final if carry_state else None
            acc.add(outputs, targets, mask, task, batch)
            gates = model.cell.gate_openness
            if gates is not None and model.cell.update_count is not None:
                # update_count is per sequence (averaged over the batch; see agents/cells/time_gated.py)
                acc.add_compute(float(model.cell.update_count) * gates.shape[1], gates.numel())
    finally:
        model.train(was_training)
    return acc.result(task.reference_scores())


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def train(
    config: TrainConfig, out_dir: str | Path | None = None, resume: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Train a model as configured and return the run summary (also written as summary.json).

    Args:
        config: the run's settings.
        out_dir: the run directory (config, metrics.csv, TensorBoard events, checkpoints,
            summary); None trains without writing anything.
        resume: continue the run in ``out_dir`` from its latest checkpoint. The saved config
            must match ``config`` except for :data:`RESUMABLE_CHANGES` (e.g. more ``updates``).
            On CPU the result is bit-identical to an uninterrupted run. Metrics rows and
            TensorBoard events logged after the checkpoint are dropped, so every update appears
            once. A run stopped before its first checkpoint (config.json but no latest.pt) starts
            afresh from update 0, with a note on stderr.
        progress: show a tqdm progress bar (updates/s, loss, best metric).

    Raises:
        ValueError: invalid config or run directory, or (:class:`CheckpointError`) a checkpoint
            to resume from that cannot be read; nothing is written in these cases.
        TrainingDiverged: the loss or gradient norm became NaN/inf, or the loss exceeded
            ``max_loss``.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    setup = build(config)  # every check before touching the disk
    model, aux, optimizer, device = setup.model, setup.aux, setup.optimizer, setup.device
    kind = setup.task.target_kind
    params = [p for group in optimizer.param_groups for p in group["params"]]
    train_rng = np.random.default_rng(np.random.SeedSequence(config.seed).spawn(2)[0])

    # -- run directory and resume point (a resumed run is read in full before anything is written)
    run = _open_run(config, out_dir, resume, setup)
    start, elapsed = 0, 0.0
    best: dict[str, Any] = {"metric": setup.best_metric, "value": None, "update": None, "metrics": {}}
    last_eval: dict[str, Any] = {"update": None, "metrics": {}}
    best_state: dict[str, torch.Tensor] = {}  # the best weights when there is no run directory
    ckpt = None
    if run is not None and resume:
        if run.latest_path.is_file():
            ckpt = _restore(run.latest_path, setup, train_rng)
            start, elapsed, best, last_eval = ckpt["update"], ckpt["wall_time"], ckpt["best"], ckpt["last"]
        else:
            print(f"note: {run.path} has no {run.latest_path.name} (the run stopped before its first checkpoint): "
                  "starting it afresh from update 0", file=sys.stderr)
        run.reopen(config.to_dict(), setup.columns(), start if ckpt is not None else None)
    # TensorBoard hides the events a resumed run logged after its checkpoint (all of them without one)
    purge_step = (start + 1 if ckpt is not None else 0) if resume else None
    writer = _tensorboard(run, purge_step)
    t0 = time.perf_counter() - elapsed

    def checkpoint(update: int) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "update": update,
            "wall_time": time.perf_counter() - t0,
            "config": json.dumps(config.to_dict()),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": None if setup.scheduler is None else setup.scheduler.state_dict(),
            "aux": aux.state_dict() if aux is not None else {},
            "rng": rng_state(train_rng),
            "best": best,
            "last": last_eval,
        }

    def finish(status: str, update: int, error: str | None = None) -> dict[str, Any]:
        wall = time.perf_counter() - t0
        summary = {
            "status": status,
            "task": config.task,
            "task_kwargs": config.task_kwargs,
            "cell": config.cell,
            "num_params": count_parameters(model),
            "updates": update,
            "wall_time": wall,
            "updates_per_second": update / wall if wall > 0 else None,
            "final": last_eval,
            "best": best,
            "target": {"metric": setup.target_metric, "value": config.target_value,
                       "reached_at": update if status == "target_reached" else None},
            "run_dir": None if run is None else str(run.path),
            "dataset": None if setup.task.dataset is None else setup.task.dataset.to_dict(),
        }
        if status != "diverged" and has_test_split(setup.task):
            summary["test"] = test_evaluation()
        if error is not None:
            summary["error"] = error
        if run is not None:
            write_json(run.summary_path, summary)
        return summary

    def test_evaluation() -> dict[str, Any]:
        """The best checkpoint (by the validation metric) on the whole test split, as the papers
        report it; the model keeps those weights afterwards."""
        state = best_state if run is None else load_checkpoint(run.best_path, map_location=device, keys=("model",))["model"]
        model.load_state_dict(state)
        _set_clock(model.cell, setup.task, setup.task)
        batches = setup.task.iterate("test", config.eval_batch_size)
        return {"update": best["update"], "metrics": evaluate(model, setup.task, batches, device, config.eval_carry_state)}

    def log_evaluation(update: int, sums: _Sums) -> bool:
        """Evaluate, append a metrics row (CSV + TensorBoard), checkpoint; True if the target is met."""
        _set_clock(model.cell, setup.task, setup.task)
        metrics = evaluate(model, setup.task, evaluation_batches(setup), device, config.eval_carry_state)
        row = {"update": update, "wall_time": time.perf_counter() - t0, **sums.row(),
               **{f"eval_{k}": v for k, v in metrics.items()}}
        last_eval.update(update=update, metrics=metrics)
        improved = is_better(setup.best_metric, metrics[setup.best_metric], best["value"])
        if setup.scheduler is not None:
            setup.scheduler.step(metrics[setup.best_metric])
        if improved:
            best.update(value=metrics[setup.best_metric], update=update, metrics=metrics)
            if run is None:  # else best.pt holds the weights
                best_state.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        if run is not None:
            run.append_metrics(row)
            for key, value in row.items():
                if key != "update" and value is not None:
                    writer.add_scalar(key.replace("_", "/", 1), value, update)
            if improved:
                save_checkpoint(run.best_path, checkpoint(update))
            save_checkpoint(run.latest_path, checkpoint(update))
        bar.set_postfix(**_postfix(best), refresh=False)
        target = setup.target_metric
        return target is not None and reached(target, metrics[target], config.target_value)

    status, update = "completed", start
    bar = tqdm(total=config.updates, initial=start, disable=not progress, unit="upd", dynamic_ncols=True)
    try:
        if ckpt is None:  # learning curves start from the untrained model (the target is not checked here)
            log_evaluation(0, _Sums())
        sums = _Sums()
        for update in range(start + 1, config.updates + 1):
            # 1. A fresh batch (the curriculum decides the task).
            task = setup.task_at(update)
            _set_clock(model.cell, task, setup.task)
            batch = task.sample(config.batch_size, train_rng)
            inputs, targets, mask = to_tensors(batch, device)

            # 2. Forward and losses: supervised (skipped while pre-training the aux loss), budget, aux.
            encoded = model.encode(inputs)
            loss = encoded.new_zeros(())
            task_loss = aux_loss = None
            if update > config.aux_pretrain_updates:
                grad_steps = batch.mask.any(axis=1) if config.budget_weight == 0 else None
                outputs, _ = model.run_encoded(encoded, tbptt=config.tbptt, grad_steps=grad_steps)
                task_loss = sequence_loss(outputs, targets, mask, kind)
                loss = loss + task_loss
                if config.budget_weight > 0:
                    loss = loss + budget_loss(model.cell, config.budget_weight)
            if aux is not None:
                padded = None if (batch.lengths == batch.seq_len).all() else torch.as_tensor(batch.lengths)
                aux_loss = aux(model.cell, encoded, inputs, lengths=padded)
                loss = loss + config.aux_weight * aux_loss
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise _diverged(run, f"loss is {loss_value} at update {update}")
            if config.max_loss is not None and loss_value > config.max_loss:
                raise _diverged(run, f"loss is {loss_value:.4g} at update {update}, above max_loss={config.max_loss:g}")

            # 3. Backward, clip, step.
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = clip_gradients(params, config.clip)
            if not math.isfinite(grad_norm):
                raise _diverged(run, f"gradient norm is {grad_norm} at update {update}")
            optimizer.step()

            sums.add(task_loss, aux_loss, grad_norm, task.max_length)
            bar.update(1)
            if update % 10 == 0:
                bar.set_postfix(loss=f"{loss_value:.4g}", **_postfix(best), refresh=False)

            # 4. Evaluate, log, checkpoint.
            if update % config.eval_every == 0 or update == config.updates:
                target_met = log_evaluation(update, sums)
                sums = _Sums()
                if target_met:
                    status = "target_reached"
                    break
    except TrainingDiverged as err:
        finish("diverged", update - 1, str(err))
        raise
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return finish(status, update)


@dataclass
class _Mean:
    """A running mean; None until something is added."""

    total: float = 0.0
    count: int = 0

    def add(self, value: float) -> None:
        self.total += value
        self.count += 1

    @property
    def value(self) -> float | None:
        return self.total / self.count if self.count else None


@dataclass
class _Sums:
    """Training statistics accumulated between two evaluations."""

    loss: _Mean = field(default_factory=_Mean)
    aux: _Mean = field(default_factory=_Mean)
    grad_norm: _Mean = field(default_factory=_Mean)
    length: int = 0

    def add(self, task_loss: torch.Tensor | None, aux_loss: torch.Tensor | None, grad_norm: float, length: int) -> None:
        if task_loss is not None:
            self.loss.add(task_loss.item())
        if aux_loss is not None:
            self.aux.add(aux_loss.item())
        self.grad_norm.add(grad_norm)
        self.length = length

    def row(self) -> dict[str, float | int | None]:
        return {
            "train_length": self.length or None,
            "train_loss": self.loss.value,
            "grad_norm": self.grad_norm.value,
            "train_aux_loss": self.aux.value,
        }


def _postfix(best: dict[str, Any]) -> dict[str, str]:
    return {} if best["value"] is None else {f"best_{best['metric']}": f"{best['value']:.4g}"}


def _diverged(run: RunDir | None, what: str) -> TrainingDiverged:
    if run is None:
        return TrainingDiverged(f"{what}; no checkpoint (no run directory)")
    return TrainingDiverged(f"{what}; the last good checkpoint is {run.latest_path}")


def _open_run(config: TrainConfig, out_dir: str | Path | None, resume: bool, setup: Setup) -> RunDir | None:
    """Create the run directory, or check that the one to resume matches ``config`` (writing
    nothing: :meth:`RunDir.reopen` does, once the checkpoint has been read)."""
    if out_dir is None:
        if resume:
            raise ValueError("resume=True needs the run directory (out_dir / --out)")
        return None
    if not resume:
        return RunDir.create(out_dir, config.to_dict(), setup.columns())
    run = RunDir(out_dir)
    saved = run.read_config()
    mine = config.to_dict()
    differ = sorted(k for k in set(saved) | set(mine) if saved.get(k) != mine.get(k) and k not in RESUMABLE_CHANGES)
    if differ:
        raise ValueError(
            f"cannot resume {out_dir} with a different config: {', '.join(differ)} differ "
            f"(only {', '.join(RESUMABLE_CHANGES)} may change)"
        )
    return run


def _restore(path: Path, setup: Setup, train_rng: np.random.Generator) -> dict[str, Any]:
    """Load the checkpoint at ``path`` into the model, optimiser, aux loss and RNGs; raise
    :class:`CheckpointError` if it cannot be read or does not fit this run."""
    ckpt = load_checkpoint(path, map_location=setup.device, keys=CHECKPOINT_KEYS)
    try:
        if isinstance(ckpt["update"], bool) or not isinstance(ckpt["update"], int) or ckpt["update"] < 0:
            raise ValueError(f"update={ckpt['update']!r} is not an update number")
        if not isinstance(ckpt["best"], dict) or not isinstance(ckpt["last"], dict):
            raise ValueError("best / last are not dicts")
        float(ckpt["wall_time"])
        setup.model.load_state_dict(ckpt["model"])
        setup.optimizer.load_state_dict(ckpt["optimizer"])
        if setup.scheduler is not None and ckpt.get("scheduler") is not None:
            setup.scheduler.load_state_dict(ckpt["scheduler"])
        if setup.aux is not None:
            setup.aux.load_state_dict(ckpt["aux"])
        restore_rng_state(ckpt["rng"], train_rng)
    except Exception as err:  # KeyError, RuntimeError (shapes), TypeError, ValueError...: another run's file
        raise CheckpointError(path, f"it does not fit this run: {error_line(err)}") from err
    return ckpt


def _tensorboard(run: RunDir | None, purge_step: int | None):
    """The run's TensorBoard writer; ``purge_step``: TensorBoard hides the events of earlier
    event files from this step on (those logged after the checkpoint a run resumes from)."""
    if run is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(run.tensorboard_path), purge_step=purge_step)


def load_model(run_dir: str | Path, which: str = "best", device: str = "cpu") -> tuple[SequenceModel, TrainConfig]:
    """The model of a finished run (``which``: ``"best"`` or ``"latest"``) and its config."""
    check_choice("which", which, ("best", "latest"))
    run = RunDir(run_dir)
    config = TrainConfig.from_dict(run.read_config())
    model = build_model(config, make_task(config.task, config.task_kwargs)).to(device)
    path = run.best_path if which == "best" and run.best_path.is_file() else run.latest_path
    weights = load_checkpoint(path, map_location=device, keys=("model",))["model"]
    try:
        model.load_state_dict(weights)
    except Exception as err:  # RuntimeError on missing keys or shapes, TypeError on a non-dict
        raise CheckpointError(path, f"it does not fit this run: {error_line(err)}") from err
    return model, config

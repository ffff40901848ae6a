"""Losses and evaluation metrics over the scored steps of a batch.

Class targets (``target_kind="class"``):
    ``ce``: softmax cross-entropy in nats, averaged over scored steps (for Copy with
    ``score="all"`` every one of the T+20 steps is scored, which is the papers' per-step loss);
    ``bpc``: ``ce / ln 2`` (bits per character); ``accuracy``: fraction of scored steps predicted
    right; ``sequence_accuracy``: fraction of sequences whose scored steps are all right.
Real targets (``target_kind="real"``):
    ``mse``: squared error averaged over scored steps and output dimensions.
Both:
    ``return``: mean episode return of the argmax / real predictions under the task's own reward
    (``task.returns``, the same number an RL agent would get, in [-1, 1]);
    ``score``: that return normalised by ``task.reference_scores()`` (0 = best memoryless
    policy, 1 = perfect memory).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from agents.results.stats import LOWER_IS_BETTER

#: Metric names produced by :class:`MetricAccumulator`, by target kind, in column order.
METRICS: dict[str, tuple[str, ...]] = {
    "class": ("ce", "bpc", "accuracy", "sequence_accuracy", "return", "score"),
    "real": ("mse", "return", "score"),
}
#: The training loss of each target kind (``"loss"`` is accepted as an alias for it).
LOSS_METRIC = {"class": "ce", "real": "mse"}


def metric_names(target_kind: str, gated: bool = False) -> tuple[str, ...]:
    """Names of the evaluation metrics for a target kind (plus the compute report of gated cells)."""
    return METRICS[target_kind] + (("updated_fraction",) if gated else ())


def resolve_metric(name: str, target_kind: str, what: str = "metric", gated: bool = False) -> str:
    """Map ``"loss"`` to the task's loss metric and check that ``name`` exists for this task."""
    name = LOSS_METRIC[target_kind] if name == "loss" else name
    allowed = metric_names(target_kind, gated)
    if name not in allowed:
        raise ValueError(f"{what}={name!r} is not a metric of this task: choose one of loss, {', '.join(allowed)}")
    return name


def is_better(metric: str, value: float, best: float | None) -> bool:
    """True if ``value`` improves on ``best`` (None = nothing yet)."""
    if best is None:
        return True
    return value < best if metric in LOWER_IS_BETTER else value > best


def reached(metric: str, value: float, threshold: float) -> bool:
    """True if ``value`` meets the target ``threshold`` (``<=`` for losses, ``>=`` otherwise)."""
    return value <= threshold if metric in LOWER_IS_BETTER else value >= threshold


def sequence_loss(outputs: Tensor, targets: Tensor, mask: Tensor, target_kind: str) -> Tensor:
    """Training loss averaged over scored steps: CE for class targets, MSE for real targets.

    Args:
        outputs: ``[T, B, C]`` logits or ``[T, B, D]`` predictions.
        targets: ``[T, B]`` class ids or ``[T, B, D]`` floats.
        mask: ``[T, B]`` bool, True where the step is scored.
    """
    if target_kind == "class":
        return F.cross_entropy(outputs[mask], targets[mask])
    return F.mse_loss(outputs[mask], targets[mask])


def predictions(outputs: Tensor, target_kind: str) -> np.ndarray:
    """What the model would answer at each step: argmax class ids or the real outputs (numpy)."""
    if target_kind == "class":
        return outputs.argmax(-1).cpu().numpy()
    return outputs.detach().cpu().numpy()


@dataclass
class MetricAccumulator:
    """Sums over evaluation batches; :meth:`result` turns them into the metrics above.

    Every mean is over all scored steps (or sequences) of all batches, so the result does not
    depend on how the evaluation set is split into batches.
    """

    target_kind: str
    loss_sum: float = 0.0
    loss_count: int = 0
    correct_steps: int = 0
    correct_sequences: int = 0
    scored_sequences: int = 0
    return_sum: float = 0.0
    episodes: int = 0
    updated_units: float = 0.0
    unit_steps: float = 0.0
    _gated: bool = field(default=False, repr=False)

    def add(self, outputs: Tensor, targets: Tensor, mask: Tensor, task, batch) -> None:
        """Add one batch: model ``outputs`` for the task's ``batch`` (a SequenceBatch) whose
        ``targets``/``mask`` are already tensors on the outputs' device."""
        scored = int(mask.sum())
        if self.target_kind == "class":
            self.loss_sum += float(F.cross_entropy(outputs[mask], targets[mask], reduction="sum"))
            self.loss_count += scored
            right = (outputs.argmax(-1) == targets) | ~mask
            self.correct_steps += int(right.sum()) - int((~mask).sum())
            has_scored = mask.any(0)
            self.correct_sequences += int((right.all(0) & has_scored).sum())
            self.scored_sequences += int(has_scored.sum())
        else:
            err = (outputs[mask] - targets[mask]) ** 2
            self.loss_sum += float(err.sum())
            self.loss_count += err.numel()
        returns = task.returns(predictions(outputs, self.target_kind), batch)
        self.return_sum += float(returns.sum())
        self.episodes += len(returns)

    def add_compute(self, updated: float, total: float) -> None:
        """Add a time-gated cell's compute report: ``updated`` (unit, step, sample) updates out of
        ``total = T·B·H``; ``updated_fraction`` is their ratio over all evaluation batches."""
        self._gated = True
        self.updated_units += float(updated)
        self.unit_steps += float(total)

    def result(self, reference) -> dict[str, float]:
        """The metrics as plain floats; ``reference`` is the task's :class:`ReferenceScores`."""
        mean_return = self.return_sum / max(self.episodes, 1)
        out: dict[str, float] = {}
        loss = self.loss_sum / max(self.loss_count, 1)
        if self.target_kind == "class":
            out["ce"] = loss
            out["bpc"] = loss / math.log(2)
            out["accuracy"] = self.correct_steps / max(self.loss_count, 1)
            out["sequence_accuracy"] = self.correct_sequences / max(self.scored_sequences, 1)
        else:
            out["mse"] = loss
        out["return"] = mean_return
        out["score"] = float(reference.normalise(mean_return))
        if self._gated:
            out["updated_fraction"] = self.updated_units / max(self.unit_steps, 1)
        return out


def to_tensors(batch, device: torch.device | str) -> tuple[Tensor, Tensor, Tensor]:
    """A SequenceBatch's inputs, targets and mask as tensors on ``device``."""
    return (
        torch.as_tensor(batch.inputs, device=device),
        torch.as_tensor(batch.targets, device=device),
        torch.as_tensor(batch.mask, device=device),
    )

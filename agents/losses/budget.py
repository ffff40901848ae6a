"""The g-LSTM computational budget: a loss on gate openness and a count of performed updates.

A time-gated cell (g-LSTM, Phased LSTM) only needs to compute a unit's update at the steps where
its time gate ``k`` is open; elsewhere the state is copied. Thornton et al. (2019; docs/glstm.md#budget-loss)
add ``λ · (gate openness)`` to the task loss to shrink the open windows, and report the number of
(unit, step) updates performed. Time-gated cells expose the ``[T, B, H]`` gate values of their
last forward as ``cell.gate_openness`` and the number of updates above their threshold as
``cell.update_count`` (see :class:`agents.cells.base.RecurrentCell`); other cells leave both None.
"""

from __future__ import annotations

import torch
from torch import Tensor

from agents.cells.base import RecurrentCell
from memenvs.core import check_float


def budget_loss(cell: RecurrentCell, weight: float) -> Tensor:
    """``weight · mean(gate openness)`` over the (step, sample, unit) entries of the last forward.

    The paper's term is ``λ Σ_j Σ_t k_t^j``, possibly normalised by units × steps ([U]); we use the
    mean so that one ``weight`` means the same thing whatever the sequence length, batch size and
    width. (For a Gaussian gate ``Σ_t k_t ≈ σ√(2π)``, so the term mostly shrinks σ.) Differentiable
    with respect to the gate parameters. A cell without ``gate_openness`` gives a zero tensor.

    Call it after the model's forward and before anything else runs the cell (the auxiliary loss
    restores these attributes, so it is safe to compute it in between).
    """
    weight = check_float("weight", weight, low=0.0)
    openness = cell.gate_openness if cell.time_gated else None
    if openness is None:
        return torch.zeros((), device=cell.device, dtype=cell.dtype)
    return weight * openness.mean()


def update_counts(cell: RecurrentCell) -> tuple[float, float]:
    """``(updated, total)`` (unit, step) pairs per sequence in the last forward.

    ``updated`` is the cell's ``update_count``: the (unit, step, sample) triples whose gate passed
    the cell's own threshold, divided by the batch size (see :class:`agents.cells.plstm.
    TimeGatedLSTM`); ``total`` is ``T · H``. Sum both over a run for a compute report. A cell
    without time gates updates every unit at every step; its sizes are unknown here, so it reports
    ``(1.0, 1.0)``, i.e. a fraction of 1.
    """
    if not cell.time_gated or cell.gate_openness is None or cell.update_count is None:
        return 1.0, 1.0
    steps, batch, units = cell.gate_openness.shape
    return float(cell.update_count), float(steps * units)


def update_fraction(cell: RecurrentCell, threshold: float | None = None) -> float:
    """Fraction of the (unit, step) updates performed in the last forward (1.0 for ungated cells).

    By default it uses the cell's own ``update_count`` (its own threshold / rule); with
    ``threshold`` it counts gate values strictly above ``threshold`` instead, e.g. to sweep the
    threshold ε ([U] in the paper) after training.
    """
    openness = cell.gate_openness if cell.time_gated else None
    if threshold is not None:
        threshold = check_float("threshold", threshold, low=0.0, high=1.0)
        if openness is None:
            return 1.0
        return float((openness.detach() > threshold).float().mean())
    updated, total = update_counts(cell)
    return updated / total

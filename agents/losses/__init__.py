"""Extra training losses shared by the supervised and RL harnesses.

- :class:`AuxiliaryLoss`: r-/p-style reconstruction or prediction of a segment from the main
  cell's state at random anchors (Trinh et al. 2018; docs/aux.md), for any cell.
- :func:`budget_loss`, :func:`update_fraction`: the g-LSTM computational budget (docs/glstm.md#budget-loss).
"""

from agents.losses.auxiliary import AuxiliaryLoss, memory_leaves, state_leaves
from agents.losses.budget import budget_loss, update_counts, update_fraction

__all__ = ["AuxiliaryLoss", "budget_loss", "memory_leaves", "state_leaves", "update_counts", "update_fraction"]

"""Tiny recurrent cells for the model, trainer and CLI tests, written here so those tests do not
depend on agents/cells; ``register`` puts one in the cell registry for a single test."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from agents.cells.base import CELLS, RecurrentCell


class TinyRNN(RecurrentCell):
    """h_t = tanh(W [x_t; h_{t-1}] + b)."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.lin = nn.Linear(input_size + hidden_size, hidden_size)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> torch.Tensor:
        return torch.zeros(batch_size, self.hidden_size, device=device, dtype=self.dtype)

    def step(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.tanh(self.lin(torch.cat([x, h], -1)))
        return h, h


def register(monkeypatch: pytest.MonkeyPatch, name: str, cls: type[RecurrentCell]) -> None:
    """Register ``cls`` as cell ``name`` for the current test only (the registry stores "module:Class")."""
    monkeypatch.setitem(CELLS, name, f"{cls.__module__}:{cls.__qualname__}")

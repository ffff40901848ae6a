"""The one-gate recurrent cells' shared parts (``janet``, ``gated-rnn``): a gate and a tanh
candidate, chrono-initialised."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agents.cells.base import ProjectedCell
from agents.init import chrono_bias
from memenvs.core import check_float


class GateCandidateCell(ProjectedCell):
    """Shared parts of the one-gate cells (``janet``, ``gated-rnn``): a gate and a tanh candidate
    computed from ``x`` and ``h`` by ``weight_ih [2H, I]``, ``weight_hh [2H, H]`` and one ``bias
    [2H]`` (rows: gate, candidate), weights uniform ±1/sqrt(H) as in ``nn.LSTM``, biases by
    :func:`agents.init.chrono_init` with ``t_max`` (>= 2 steps). Subclasses write the update in
    :meth:`_step_projected`; the sequence path projects ``x W + b`` for all steps in one matmul.
    """

    def __init__(self, input_size: int, hidden_size: int, t_max: float) -> None:
        super().__init__(input_size, hidden_size)
        self.t_max = check_float("t_max", t_max, low=2)
        self.weight_ih = nn.Parameter(torch.empty(2 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(2 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(2 * hidden_size))
        self.reset_parameters()

    #: Whether the gate keeps the old state (JANET's forget gate: chrono bias ``+log U``) or lets
    #: the new value in (the gated RNN's: ``-log U``).
    gate_keeps_state: bool = True

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Re-draw all parameters as described in the class docstring."""
        bound = self.hidden_size**-0.5
        self.weight_ih.uniform_(-bound, bound)
        self.weight_hh.uniform_(-bound, bound)
        self.chrono_init_(self.t_max)

    @torch.no_grad()
    def chrono_init_(self, t_max: float, generator: torch.Generator | None = None) -> None:
        """Chrono gate bias ``±log(U[1, t_max - 1])`` (sign by :attr:`gate_keeps_state`), the
        candidate's bias 0 (rows: gate, candidate)."""
        h = self.hidden_size
        b = chrono_bias(h, t_max, generator).to(self.bias)
        self.bias.zero_()
        self.bias[:h] = b if self.gate_keeps_state else -b

    def _project(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, t_max={self.t_max}"

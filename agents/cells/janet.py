"""JANET: the forget-gate-only LSTM (van der Westhuizen & Lasenby 2018), chrono-initialised."""

from __future__ import annotations

import torch
from torch import Tensor

from agents.cells.base import State
from agents.cells.gate_candidate import GateCandidateCell


class JANETCell(GateCandidateCell):
    """JANET ("just another network"): an LSTM reduced to its forget gate.

    Equations (gate order f, candidate)::

        f  = sigmoid(W_f x + U_f h + b_f)
        h' = f * h + (1 - f) * tanh(W_c x + U_c h + b_c)

    The forget gate also plays the input gate, so a unit that keeps its state (f near 1) ignores
    the input. This is the form of docs/nru.md#baselines and of the NRU paper's JANET baseline; the original
    paper additionally shifts the input gate to ``1 - sigmoid(s_f - beta)`` with beta = 1, which
    is not done here. Chrono initialisation (the method's default) sets
    ``b_f = log(U[1, t_max - 1])`` and ``b_c = 0`` (:func:`agents.init.chrono_init`); weights are
    uniform ±1/sqrt(H) as in ``nn.LSTM``, so ``janet`` and ``lstm`` differ only in their gates.

    Runs the shared per-step loop, with ``x W`` computed for all steps in one matmul.
    State: ``h`` ``[B, hidden_size]``, zeros at an episode start.

    Args:
        input_size: features per input step.
        hidden_size: units H.
        t_max: longest chrono time constant, in time steps (>= 2). Default 120 = T + 20 for the
            copy task with delay T = 100, the rule of the NRU paper's runs (docs/chrono.md#the-chrono-rule) for this
            benchmark's default copy task; set it to the dependency length of your data.
    """

    def __init__(self, input_size: int, hidden_size: int, t_max: float = 120.0) -> None:
        super().__init__(input_size, hidden_size, t_max)

    def _step_projected(self, xw: Tensor, h: Tensor) -> tuple[Tensor, State]:
        s_f, s_c = torch.addmm(xw, h, self.weight_hh.t()).chunk(2, 1)
        f = torch.sigmoid(s_f)
        candidate = torch.tanh(s_c)
        h = candidate + f * (h - candidate)
        return h, h

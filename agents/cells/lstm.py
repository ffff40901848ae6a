"""LSTM cell on PyTorch's fused kernel, with forget-bias, chrono and peephole options."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from agents.cells.base import State
from agents.cells.fused import FusedCell, check_chrono_t_max
from agents.init import GATE_INITS, WEIGHT_INITS, chrono_init, init_lstm_
from memenvs.core import check_bool, check_choice, check_float


class LSTMCell(FusedCell):
    """Long short-term memory (Hochreiter & Schmidhuber 1997, with forget gate).

    Equations (gate order i, f, g, o as in ``nn.LSTM``)::

        i, f, o = sigmoid(W_i x + U_i h + b_i [+ p_i * c]), ... [+ p_f * c], ... [+ p_o * c']
        g = tanh(W_g x + U_g h + b_g)
        c' = f * c + i * g
        h' = o * tanh(c')

    The bracketed terms are the diagonal peepholes of Graves (2013) used by the NRU paper's LSTM
    baseline (``peepholes=True``): the input and forget gates see the old cell ``c``, the output
    gate the new cell ``c'``.

    The parameters live in ``self.rnn``, an ``nn.LSTM`` (attributes ``weight_ih``, ``weight_hh``,
    ``bias_ih``, ``bias_hh`` point at them), so without peepholes every forward runs PyTorch's fused
    kernel (cuDNN on GPU) in one call, resets included (see
    :func:`agents.cells.fused.run_fused`). With peepholes a per-step loop runs the same math, with ``x W_ih``
    computed for all steps in one matmul. ``step`` advances one time step (e.g. for acting).

    State: ``(h, c)``, each ``[B, hidden_size]``, zeros at an episode start.

    Args:
        input_size: features per input step.
        hidden_size: units H.
        forget_bias: initial forget-gate bias (default 1.0, the usual LSTM baseline and the NRU
            paper's, docs/nru.md#experiments-and-settings, docs/chrono.md#experiments-and-settings). It is put on ``bias_ih`` only; ``bias_hh`` and all other
            biases start at 0, because PyTorch adds the two vectors. ``None`` keeps
            ``nn.LSTM``'s own initialisation of both bias vectors (uniform ±1/sqrt(H)).
        peepholes: add the diagonal peephole weights ``p_i, p_f, p_o`` (default False; the NRU
            baseline sets it). They start uniform in ±1/sqrt(H) like ``nn.LSTM``'s weights (the
            NRU code draws U[0, 1], which saturates gates of large cells).
        init: ``"default"`` (``nn.LSTM``'s uniform ±1/sqrt(H) weights and ``forget_bias``) or
            ``"chrono"`` (chrono biases, which override ``forget_bias``). Both by
            :func:`agents.init.init_lstm_`, the rule every LSTM-family cell shares.
        t_max: longest time constant for ``init="chrono"``, in time steps, >= 2; required then,
            because it must match the data (e.g. 3T/2 for copy with delay T, docs/chrono.md#the-chrono-rule).
        weight_init: ``"uniform"`` (default: ``nn.LSTM``'s draw) or ``"xavier"`` (Xavier-normal
            input and orthogonal recurrent weights, the NRU reference code's baselines;
            :data:`agents.init.WEIGHT_INITS`).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        forget_bias: float | None = 1.0,
        peepholes: bool = False,
        init: str = "default",
        t_max: float | None = None,
        weight_init: str = "uniform",
    ) -> None:
        super().__init__(input_size, hidden_size)
        self.forget_bias = None if forget_bias is None else check_float("forget_bias", forget_bias)
        self.peepholes = check_bool("peepholes", peepholes)
        self.init = check_choice("init", init, GATE_INITS)
        self.t_max = check_chrono_t_max(init, t_max)
        self.weight_init = check_choice("weight_init", weight_init, WEIGHT_INITS)
        # Built without drawing (no random numbers spent): reset_parameters draws once, in the
        # same order as every LSTM-family cell (agents.init.init_lstm_).
        self.rnn = nn.LSTM(input_size, hidden_size, device="meta").to_empty(device="cpu")
        # Diagonal peepholes, rows (p_i, p_f, p_o).
        self.peephole = nn.Parameter(torch.empty(3, hidden_size)) if peepholes else None
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Re-draw all parameters as described in the class docstring."""
        init_lstm_(self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh,
                   forget_bias=self.forget_bias, init=self.init, t_max=self.t_max, weight_init=self.weight_init)
        if self.peephole is not None:
            bound = self.hidden_size**-0.5
            self.peephole.uniform_(-bound, bound)

    def chrono_init_(self, t_max: float, generator: torch.Generator | None = None) -> None:
        """Chrono gate biases (:func:`agents.init.chrono_init` on the ``nn.LSTM``)."""
        chrono_init(self.rnn, t_max, generator)

    @property
    def fused(self) -> bool:
        """Peepholes have no fused kernel: they run the per-step loop."""
        return self.peephole is None

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        zeros = torch.zeros(batch_size, self.hidden_size, device=device or self.device, dtype=self.dtype)
        return zeros, zeros.clone()

    def _step_projected(self, xw: Tensor, state: State) -> tuple[Tensor, State]:
        h, c = state
        gates = torch.addmm(xw, h, self.weight_hh.t())
        i, f, g, o = gates.chunk(4, 1)
        if self.peephole is None:
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            o = torch.sigmoid(o)
        else:
            p_i, p_f, p_o = self.peephole.unbind(0)
            c = torch.sigmoid(f + p_f * c) * c + torch.sigmoid(i + p_i * c) * torch.tanh(g)
            o = torch.sigmoid(o + p_o * c)
        h = o * torch.tanh(c)
        return h, (h, c)

    def extra_repr(self) -> str:
        text = f"{super().extra_repr()}, init={self.init!r}"
        if self.init == "chrono":
            text += f", t_max={self.t_max}"
        else:
            text += f", forget_bias={self.forget_bias}"
        return text + (", peepholes=True" if self.peepholes else "")

"""LSTM cell on PyTorch's fused kernel, with forget-bias, chrono and peephole options.

Also holds :func:`run_fused`, the reset-aware driver of a one-layer ``nn.LSTM`` / ``nn.GRU`` /
``nn.RNN`` shared by the ``lstm``, ``gru`` and ``rnn`` cells.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agents.cells.base import RecurrentCell, State, check_inputs, reset_state
from memenvs.core import check_bool, check_choice, check_float


def run_fused(rnn: nn.RNNBase, inputs: Tensor, state: State, resets: Tensor | None, initial: State) -> tuple[Tensor, State]:
    """Run a one-layer, unidirectional, time-major PyTorch RNN over ``inputs [T, B, I]`` from
    ``state`` (batch dim 0).

    With ``resets``, the sequence is cut only at the time steps where some sample starts an
    episode; each piece runs in the fused kernel and, between pieces, the resetting samples get
    ``initial`` back. With sparse resets (supervised episodes, long RL episodes) this costs about
    what one fused call costs; with a reset somewhere at every step it degrades to one kernel call
    per step, still no slower than a per-step Python loop.
    """
    if resets is None:
        starts = [0]
    else:
        state = reset_state(state, resets[0], initial)
        starts = [0] + (resets[1:].any(1).nonzero().flatten() + 1).tolist()
    sizes = [b - a for a, b in zip(starts, starts[1:] + [inputs.shape[0]])]
    # The functional kernel behind nn.LSTM/nn.GRU/nn.RNN.forward, called directly: the module's
    # Python checks cost about a millisecond per call, which matters when resets cut the sequence
    # into many pieces. ``_flat_weights`` follows parameter swaps (``functional_call``) and, on
    # GPU, holds the views into cuDNN's flattened buffer.
    kernel = _KERNELS[rnn.mode]
    weights, args = rnn._flat_weights, (rnn.bias, 1, 0.0, rnn.training, False, False)
    outs = []
    for start, piece in zip(starts, torch.split(inputs, sizes)):
        if start > 0:
            state = reset_state(state, resets[start], initial)
        if rnn.mode == "LSTM":
            out, h, c = kernel(piece, (state[0].unsqueeze(0), state[1].unsqueeze(0)), weights, *args)
            state = (h[0], c[0])
        else:
            out, h = kernel(piece, state.unsqueeze(0), weights, *args)
            state = h[0]
        outs.append(out)
    return (outs[0] if len(outs) == 1 else torch.cat(outs)), state


_KERNELS = {"LSTM": torch.lstm, "GRU": torch.gru, "RNN_TANH": torch.rnn_tanh, "RNN_RELU": torch.rnn_relu}


class LSTMCell(RecurrentCell):
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
    kernel (cuDNN on GPU): in one call without resets, or cut at the steps where some sample
    resets (see :func:`run_fused`). With peepholes a per-step loop runs the same math, with ``x W_ih``
    computed for all steps in one matmul. ``step`` advances one time step (e.g. for acting).

    State: ``(h, c)``, each ``[B, hidden_size]``, zeros at an episode start.

    Args:
        input_size: features per input step.
        hidden_size: units H.
        forget_bias: initial forget-gate bias (default 1.0, the usual LSTM baseline and the NRU
            paper's, PAPERS §2.5/§3.5). It is put on ``bias_ih`` only; ``bias_hh`` and all other
            biases start at 0, because PyTorch adds the two vectors. ``None`` keeps
            ``nn.LSTM``'s own initialisation of both bias vectors (uniform ±1/sqrt(H)).
        peepholes: add the diagonal peephole weights ``p_i, p_f, p_o`` (default False; the NRU
            baseline sets it). They start uniform in ±1/sqrt(H) like ``nn.LSTM``'s weights (the
            NRU code draws U[0, 1], which saturates gates of large cells).
        init: ``"default"`` (``nn.LSTM``'s uniform ±1/sqrt(H) weights and ``forget_bias``) or
            ``"chrono"`` (biases by :func:`agents.init.chrono_init`, which overrides
            ``forget_bias``).
        t_max: longest time constant for ``init="chrono"``, in time steps, >= 2; required then,
            because it must match the data (e.g. 3T/2 for copy with delay T, PAPERS §3.2).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        forget_bias: float | None = 1.0,
        peepholes: bool = False,
        init: str = "default",
        t_max: float | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size)
        self.forget_bias = None if forget_bias is None else check_float("forget_bias", forget_bias)
        self.peepholes = check_bool("peepholes", peepholes)
        self.init = check_choice("init", init, ("default", "chrono"))
        if t_max is not None:
            t_max = check_float("t_max", t_max, low=2)
        elif init == "chrono":
            raise ValueError("t_max=None: init='chrono' needs t_max, the longest time constant in steps (>= 2)")
        self.t_max = t_max
        self.rnn = nn.LSTM(input_size, hidden_size)
        # Diagonal peepholes, rows (p_i, p_f, p_o).
        self.peephole = nn.Parameter(torch.empty(3, hidden_size)) if peepholes else None
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Re-draw all parameters as described in the class docstring."""
        self.rnn.reset_parameters()
        if self.peephole is not None:
            bound = self.hidden_size**-0.5
            self.peephole.uniform_(-bound, bound)
        if self.init == "chrono":
            from agents.init import chrono_init

            chrono_init(self, self.t_max)
        elif self.forget_bias is not None:
            h = self.hidden_size
            self.bias_ih.zero_()
            self.bias_hh.zero_()
            self.bias_ih[h : 2 * h] = self.forget_bias

    # nn.LSTM-style names for the one layer's parameters.
    @property
    def weight_ih(self) -> Tensor:
        return self.rnn.weight_ih_l0

    @property
    def weight_hh(self) -> Tensor:
        return self.rnn.weight_hh_l0

    @property
    def bias_ih(self) -> Tensor:
        return self.rnn.bias_ih_l0

    @property
    def bias_hh(self) -> Tensor:
        return self.rnn.bias_hh_l0

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        zeros = torch.zeros(batch_size, self.hidden_size, device=device or self.device, dtype=self.dtype)
        return zeros, zeros.clone()

    def forward(self, inputs: Tensor, state: State | None = None, resets: Tensor | None = None) -> tuple[Tensor, State]:
        check_inputs(self, inputs, resets)
        if state is None:
            state = self.initial_state(inputs.shape[1], inputs.device)
        if self.peephole is None:
            initial = self.initial_state(inputs.shape[1], inputs.device) if resets is not None else None
            return run_fused(self.rnn, inputs, state, resets, initial)
        return self.loop(inputs, state, resets)

    def loop(self, inputs: Tensor, state: State | None = None, resets: Tensor | None = None) -> tuple[Tensor, State]:
        """The per-step path (same contract as ``forward``); ``forward`` uses it for peepholes."""
        check_inputs(self, inputs, resets)
        return self._loop(self._project(inputs), state, resets, step=self._step_projected)

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        return self._step_projected(self._project(x), state)

    def _project(self, x: Tensor) -> Tensor:
        """``x W_ih^T + b_ih + b_hh`` for any leading shape (all time steps in one matmul)."""
        return F.linear(x, self.weight_ih, self.bias_ih + self.bias_hh)

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

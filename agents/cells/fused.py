"""Cells on PyTorch's fused RNN kernels (``lstm``, ``gru``, ``rnn``): the reset-aware driver
:func:`run_fused` and the base class :class:`FusedCell` that holds the shared parameter plumbing."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agents.cells.base import ProjectedCell, State, check_inputs, reset_state
from memenvs.core import check_float

_KERNELS = {"LSTM": torch.lstm, "GRU": torch.gru, "RNN_TANH": torch.rnn_tanh, "RNN_RELU": torch.rnn_relu}


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


def check_chrono_t_max(init: str, t_max: float | None) -> float | None:
    """``t_max`` validated (>= 2 steps); required when ``init == "chrono"``, else optional."""
    if t_max is not None:
        return check_float("t_max", t_max, low=2)
    if init == "chrono":
        raise ValueError("t_max=None: init='chrono' needs t_max, the longest time constant in steps (>= 2)")
    return None


class FusedCell(ProjectedCell):
    """A cell whose parameters live in ``self.rnn``, a one-layer ``nn.LSTM`` / ``nn.GRU`` /
    ``nn.RNN`` set by the subclass; ``weight_ih``, ``weight_hh``, ``bias_ih`` and ``bias_hh`` point
    at them.

    While :attr:`fused` holds, ``forward`` runs PyTorch's fused kernel (cuDNN on GPU) through
    :func:`run_fused`; otherwise (an option the kernel lacks, e.g. peepholes or LayerNorm) it runs
    :meth:`loop`, the same math per step with ``x W_ih`` computed for all steps in one matmul.
    Subclasses implement :meth:`_step_projected` (and override :meth:`_project` where the input
    bias differs).
    """

    rnn: nn.RNNBase

    @property
    def fused(self) -> bool:
        """Whether ``forward`` runs the fused kernel (True unless an option adds math it lacks)."""
        return True

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

    def forward(self, inputs: Tensor, state: State | None = None, resets: Tensor | None = None) -> tuple[Tensor, State]:
        if not self.fused:
            return self.loop(inputs, state, resets)
        check_inputs(self, inputs, resets)
        if state is None:
            state = self.initial_state(inputs.shape[1], inputs.device)
        initial = self.initial_state(inputs.shape[1], inputs.device) if resets is not None else None
        return run_fused(self.rnn, inputs, state, resets, initial)

    def _project(self, x: Tensor) -> Tensor:
        """``x W_ih^T + b_ih + b_hh`` for any leading shape (all time steps in one matmul)."""
        return F.linear(x, self.weight_ih, self.bias_ih + self.bias_hh)

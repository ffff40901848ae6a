"""Cells on PyTorch's fused RNN kernels (``lstm``, ``gru``, ``rnn``): the reset-aware driver
:func:`run_fused` and the base class :class:`FusedCell` that holds the shared parameter plumbing."""

from __future__ import annotations

import contextlib
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agents.cells.base import ProjectedCell, State, check_inputs, map_state, reset_state
from memenvs.core import check_float

_KERNELS = {"LSTM": torch.lstm, "GRU": torch.gru, "RNN_TANH": torch.rnn_tanh, "RNN_RELU": torch.rnn_relu}

#: A gate pre-activation pushed by this much saturates whatever else it holds: sigmoid gives
#: exactly 0 or 1 and ReLU exactly 0, in float32, float64 and TF32 alike.
SATURATE = 1e4
#: The control columns appended to the input by :func:`_run_with_reset_steps`.
RESET, HOLD, ONE = 0, 1, 2


def run_fused(rnn: nn.RNNBase, inputs: Tensor, state: State, resets: Tensor | None) -> tuple[Tensor, State]:
    """Run a one-layer, unidirectional, time-major PyTorch RNN over ``inputs [T, B, I]`` from
    ``state`` (batch dim 0); where ``resets[t, b]`` is True, sample ``b`` restarts from the zero
    state (every fused cell's initial state) before step ``t``.

    The fused kernel cannot reset inside a call, so resets after step 0 become input: a *reset
    step* is inserted before each one, in that sample's timeline only, with extra input columns
    that saturate its gates so that the state becomes exactly zero and exactly zero gradient
    flows back through it (:func:`_run_with_reset_steps`). The batch then runs in **one**
    kernel call of ``T + max_b(resets of sample b)`` steps, whatever the reset pattern. A tanh
    RNN has no such input (``tanh`` saturates at ±1, not 0), so it is cut instead at every step
    where some sample resets, one kernel call per piece (:func:`_run_cut`).

    Both give the per-step loop's numbers (tested to 1e-5, outputs and gradients).
    """
    if resets is None:
        return _call_kernel(rnn, inputs, state)
    state = reset_state(state, resets[0], map_state(torch.zeros_like, state))
    later = resets.clone()
    later[0] = False
    if not bool(later.any()):
        return _call_kernel(rnn, inputs, state)
    if rnn.mode == "RNN_TANH":
        return _run_cut(rnn, inputs, state, later)
    return _run_with_reset_steps(rnn, inputs, state, later)


def _run_with_reset_steps(rnn: nn.RNNBase, inputs: Tensor, state: State, resets: Tensor) -> tuple[Tensor, State]:
    """:func:`run_fused` for resets after step 0 (``resets[0]`` is False), in one kernel call.

    Sample ``b``'s timeline gets a reset step before each of its resets and, after its last real
    step, *hold* steps up to the common length. The kernel sees three input columns more than
    the cell (weights in :func:`_control_weights`): ``RESET`` (1 at reset steps) saturates the
    gates that let the old state in to 0, which zeroes the state; ``HOLD`` (1 at hold steps)
    keeps an LSTM's cell exactly (f = 1, i = 0), so the kernel's final ``c`` is the sample's;
    ``ONE`` (1 at real steps) carries the GRU's input bias, so that a reset step's candidate is
    ``tanh(0) = 0`` exactly. Inserted steps have zero data input; their outputs are dropped, and
    the final ``h`` is the output of each sample's last real step.
    """
    T, B, I = inputs.shape
    inserted = resets.long().cumsum(0)  # [T, B]: reset steps inserted up to and including step t
    steps = T + int(inserted[-1].max())
    batch = torch.arange(B, device=inputs.device)
    row = torch.arange(T, device=inputs.device).unsqueeze(1) + inserted  # [T, B]: grid row of step (t, b)
    position = (row * B + batch).flatten()  # [T * B]: where step (t, b) sits in the [steps * B] grid
    control = inputs.new_zeros(steps * B, 3)
    control[position, ONE] = 1
    control[(row - 1)[resets] * B + batch.expand(T, B)[resets], RESET] = 1
    held = torch.arange(steps, device=inputs.device).unsqueeze(1) > row[-1]  # [steps, B]
    control[held.flatten(), HOLD] = 1
    data = inputs.new_zeros(steps * B, I).index_copy(0, position, inputs.reshape(T * B, I))
    grid = torch.cat([data, control], 1).view(steps, B, I + 3)
    out, final = _call_kernel(rnn, grid, state, _control_weights(rnn))
    out = out.reshape(steps * B, -1).index_select(0, position).view(T, B, -1)
    return out, ((out[-1], final[1]) if rnn.mode == "LSTM" else out[-1])


def _control_weights(rnn: nn.RNNBase) -> list[Tensor]:
    """The kernel weights for :func:`_run_with_reset_steps`: ``W_ih`` with the three control
    columns appended (gate rows in ``nn.LSTM`` / ``nn.GRU`` order). At a reset step:

    - LSTM (i, f, g, o): i = f = 0, so ``c' = 0 * c + 0 * g = 0`` and ``h' = o * tanh(0) = 0``;
      the gate derivatives ``s (1 - s)`` are exactly 0, so no gradient reaches the old state.
      At a hold step i = 0 and f = 1: ``c' = c``.
    - GRU (r, z, n): r = z = 0, and the input bias moves into the ``ONE`` column (the kernel's
      ``b_ih`` is zero), so ``n = tanh(0 + 0 * (W_hn h + b_hn)) = 0`` and ``h' = n = 0``.
    - ReLU RNN: the pre-activation saturates negative, ``h' = relu(-SATURATE + ...) = 0``.
    """
    w_ih, w_hh, b_ih, b_hh = rnn._flat_weights
    H = rnn.hidden_size
    columns = w_ih.new_zeros(w_ih.shape[0], 3)
    if rnn.mode == "LSTM":
        columns[: 2 * H, RESET] = -SATURATE
        columns[:H, HOLD] = -SATURATE
        columns[H : 2 * H, HOLD] = SATURATE
    elif rnn.mode == "GRU":
        columns[: 2 * H, RESET] = -SATURATE
        weight = torch.cat([w_ih, columns[:, :ONE], b_ih.unsqueeze(1)], 1)
        return [weight, w_hh, torch.zeros_like(b_ih), b_hh]
    else:
        columns[:, RESET] = -SATURATE
    return [torch.cat([w_ih, columns], 1), w_hh, b_ih, b_hh]


def _run_cut(rnn: nn.RNNBase, inputs: Tensor, state: State, resets: Tensor) -> tuple[Tensor, State]:
    """:func:`run_fused` cut at every step where some sample resets (``resets[0]`` is False):
    one kernel call per piece, the resetting samples zeroed between pieces."""
    starts = [0] + resets.any(1).nonzero().flatten().tolist()
    sizes = [b - a for a, b in zip(starts, starts[1:] + [inputs.shape[0]])]
    zeros = map_state(torch.zeros_like, state)
    outs = []
    for start, piece in zip(starts, torch.split(inputs, sizes)):
        if start > 0:
            state = reset_state(state, resets[start], zeros)
        out, state = _call_kernel(rnn, piece, state)
        outs.append(out)
    return torch.cat(outs), state


def _call_kernel(rnn: nn.RNNBase, inputs: Tensor, state: State, weights: list[Tensor] | None = None) -> tuple[Tensor, State]:
    """The functional kernel behind nn.LSTM/nn.GRU/nn.RNN.forward, called directly: the
    module's Python checks cost about a millisecond per call, which matters when resets cut the
    sequence into many pieces. ``weights`` default to ``_flat_weights``, which follows parameter
    swaps (``functional_call``) and, on GPU, holds the views into cuDNN's flattened buffer; other
    weights (the control columns) make cuDNN copy them per call, which it warns about: that
    copy is the intended cost here, so the warning is silenced."""
    kernel = _KERNELS[rnn.mode]
    args = (rnn._flat_weights if weights is None else weights, rnn.bias, 1, 0.0, rnn.training, False, False)
    quiet = weights is not None and inputs.is_cuda
    with warnings.catch_warnings() if quiet else contextlib.nullcontext():
        if quiet:
            warnings.filterwarnings("ignore", message="RNN module weights are not part")
        if rnn.mode == "LSTM":
            out, h, c = kernel(inputs, (state[0].unsqueeze(0), state[1].unsqueeze(0)), *args)
            return out, (h[0], c[0])
        out, h = kernel(inputs, state.unsqueeze(0), *args)
        return out, h[0]


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
        return run_fused(self.rnn, inputs, state, resets)

    def _project(self, x: Tensor) -> Tensor:
        """``x W_ih^T + b_ih + b_hh`` for any leading shape (all time steps in one matmul)."""
        return F.linear(x, self.weight_ih, self.bias_ih + self.bias_hh)

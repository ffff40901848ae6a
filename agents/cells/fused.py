"""Cells on PyTorch's fused RNN kernels (``lstm``, ``gru``, ``rnn``): the reset-aware driver
:func:`run_fused` and the base class :class:`FusedCell` that holds the shared parameter plumbing."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agents.cells.base import ProjectedCell, State, check_inputs, reset_state, select_state
from memenvs.core import check_float

_KERNELS = {"LSTM": torch.lstm, "GRU": torch.gru, "RNN_TANH": torch.rnn_tanh, "RNN_RELU": torch.rnn_relu}


def run_fused(rnn: nn.RNNBase, inputs: Tensor, state: State, resets: Tensor | None, initial: State) -> tuple[Tensor, State]:
    """Run a one-layer, unidirectional, time-major PyTorch RNN over ``inputs [T, B, I]`` from
    ``state`` (batch dim 0); where ``resets[t, b]`` is True, sample ``b`` restarts from
    ``initial`` before step ``t``.

    The fused kernel cannot reset inside a call, so with resets inside the sequence it runs one
    of two ways, whichever :func:`_pack_pays` expects to be cheaper:

    - *packed*: every sample is cut at its own resets and all pieces run side by side in **one**
      kernel call as a variable-length batch (PyTorch's packed-sequence kernel, the one behind
      ``nn.utils.rnn.pack_sequence``): no padding, ``T * B`` steps computed, each piece starting
      from the incoming state (a sample's first piece) or from ``initial`` (a piece that begins
      with a reset); the kernel returns every piece's state at its own last step, which gives the
      final state. See :func:`pack_pieces`.
    - *cut*: the sequence is cut at every step where some sample resets and each piece runs in
      one kernel call, the resetting samples getting ``initial`` between pieces. Cheaper when
      few steps carry resets, and on a CPU also at a large batch, where the packed kernel
      (which has no oneDNN version there) is slower per step than the unpacked one.

    Both give the same numbers as the per-step loop (tested to 1e-5, outputs and gradients).
    """
    if resets is not None:
        state = reset_state(state, resets[0], initial)
        if inputs.shape[0] > 1 and _pack_pays(rnn, inputs, resets):
            return _run_packed(rnn, inputs, state, pack_pieces(resets), initial)
        starts = [0] + (resets[1:].any(1).nonzero().flatten() + 1).tolist()
    else:
        starts = [0]
    sizes = [b - a for a, b in zip(starts, starts[1:] + [inputs.shape[0]])]
    outs = []
    for start, piece in zip(starts, torch.split(inputs, sizes)):
        if start > 0:
            state = reset_state(state, resets[start], initial)
        out, state = _call_kernel(rnn, piece, state)
        outs.append(out)
    return (outs[0] if len(outs) == 1 else torch.cat(outs)), state


# Rough costs behind :func:`_pack_pays`, from forward+backward timings on a 1-thread CPU with
# torch 2.13 (LSTM/GRU, B in 8..64, H in 32..128): an extra call of the oneDNN kernel when
# cutting costs about 1 ms; the packed kernel has no oneDNN version on a CPU, so it runs step by
# step: about 0.4 ms per time step plus about 3x oneDNN's arithmetic time. cuDNN has a packed
# kernel, so on CUDA packing costs what one unpacked call costs (not measured here: no GPU).
CPU_CALL_MS = 1.0
CPU_PACKED_STEP_MS = 0.4
CPU_PACKED_SLOWDOWN = 3.0
CPU_GFLOPS = 30.0  # single-thread float32 throughput of the oneDNN kernel, forward+backward
#: Packing must be estimated at least this much cheaper than cutting (the estimate is rough).
PACK_MARGIN = 0.8


def _pack_pays(rnn: nn.RNNBase, inputs: Tensor, resets: Tensor) -> bool:
    """Whether packing should beat cutting, by the estimated cost of each (see the constants).

    Cutting makes ``K + 1`` kernel calls (``K`` the number of steps after the first where some
    sample resets); packing makes one call over ``L`` steps (``L`` the longest piece). On CUDA
    both do the same work otherwise, so packing pays from ``K >= 1``. On a CPU the packed
    kernel is slower per step, so it pays only when resets are dense (short episodes, small
    batches: RL), not for sparse resets at a large batch (the benchmark's 1/100 per step).
    Only CPU and CUDA are modelled; other devices always cut.
    """
    cuts = int(resets[1:].any(1).sum())
    if cuts == 0 or inputs.device.type not in ("cpu", "cuda"):
        return False
    if inputs.device.type == "cuda":
        return 1 < PACK_MARGIN * (cuts + 1)
    T, B, I = inputs.shape
    H = rnn.hidden_size
    gates = {"LSTM": 4, "GRU": 3}.get(rnn.mode, 1)
    compute_ms = 6 * gates * H * (I + H) * T * B / (CPU_GFLOPS * 1e6)  # 2 flops per MAC, x3 for backward
    longest = int(_piece_lengths(_piece_starts(resets), T * B).max())
    cut = (cuts + 1) * CPU_CALL_MS + compute_ms
    pack = CPU_CALL_MS + longest * CPU_PACKED_STEP_MS + CPU_PACKED_SLOWDOWN * compute_ms
    return pack < PACK_MARGIN * cut


def _piece_starts(resets: Tensor) -> Tensor:
    """Where each piece of ``[T, B]`` sequences cut at ``resets`` begins, as positions ``[S]`` in
    the sample-major flattening ``[B * T]`` (every sample's step 0 begins a piece)."""
    cuts = resets.t().clone()  # [B, T], sample-major, so that pieces are contiguous runs
    cuts[:, 0] = True
    return cuts.reshape(-1).nonzero().flatten()


def _piece_lengths(first: Tensor, total: int) -> Tensor:
    """Lengths ``[S]`` of the pieces beginning at ``first`` (from :func:`_piece_starts`)."""
    return torch.diff(first, append=first.new_tensor([total]))


def _call_kernel(rnn: nn.RNNBase, inputs: Tensor, state: State, batch_sizes: Tensor | None = None) -> tuple[Tensor, State]:
    """The functional kernel behind nn.LSTM/nn.GRU/nn.RNN.forward, called directly: the
    module's Python checks cost about a millisecond per call, which matters when resets cut the
    sequence into many pieces. ``_flat_weights`` follows parameter swaps (``functional_call``)
    and, on GPU, holds the views into cuDNN's flattened buffer. With ``batch_sizes``, ``inputs``
    is packed data ``[sum of lengths, I]`` (see :func:`pack_pieces`)."""
    kernel = _KERNELS[rnn.mode]
    lead = (inputs,) if batch_sizes is None else (inputs, batch_sizes)
    args = (rnn._flat_weights, rnn.bias, 1, 0.0, rnn.training, False)
    if batch_sizes is None:
        args += (False,)  # batch_first; the packed overload has none
    if rnn.mode == "LSTM":
        out, h, c = kernel(*lead, (state[0].unsqueeze(0), state[1].unsqueeze(0)), *args)
        return out, (h[0], c[0])
    out, h = kernel(*lead, state.unsqueeze(0), *args)
    return out, h[0]


class Pieces(NamedTuple):
    """``[T, B]`` sequences cut at their resets, the pieces laid out as one packed
    variable-length batch (``torch.nn.utils.rnn.PackedSequence`` layout: pieces sorted by length,
    longest first; row ``t`` holds step ``t`` of every piece longer than ``t``)."""

    position: Tensor  # [T * B]: where step (t, b) (time-major order) sits in the packed data
    batch_sizes: Tensor  # [L] on the CPU: how many pieces are longer than t, L the longest piece
    sample: Tensor  # [S]: the sample of each piece, in packed (sorted) order
    restarts: Tensor  # [S]: whether a piece begins with a reset (False for every sample's first piece)
    last: Tensor  # [B]: the packed index of each sample's last piece (where its final state is)


def pack_pieces(resets: Tensor) -> Pieces:
    """The :class:`Pieces` of ``[T, B]`` sequences cut where ``resets`` is True (``resets[0]``
    is ignored: every sample's first piece starts at step 0 from its incoming state).
    Vectorised: no Python loop over pieces or samples; one host sync (``batch_sizes``)."""
    T, B = resets.shape
    first = _piece_starts(resets)  # [S]
    piece = torch.zeros(B * T, dtype=torch.long, device=resets.device).index_fill_(0, first, 1).cumsum(0) - 1
    row = torch.arange(B * T, device=resets.device) - first[piece]  # row of each step within its piece
    lengths = _piece_lengths(first, B * T)
    order = torch.argsort(lengths, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=order.device)
    counts = torch.bincount(lengths, minlength=T + 1).flip(0).cumsum(0).flip(0)  # [T+1] pieces >= len
    batch_sizes = counts[1 : int(lengths.max()) + 1]
    offsets = batch_sizes.cumsum(0) - batch_sizes
    position = (offsets[row] + rank[piece]).view(B, T).t().reshape(-1)
    last = rank[piece.view(B, T)[:, -1]]
    return Pieces(position, batch_sizes.cpu(), (first // T)[order], (first % T != 0)[order], last)


def _run_packed(rnn: nn.RNNBase, inputs: Tensor, state: State, pieces: Pieces, initial: State) -> tuple[Tensor, State]:
    """:func:`run_fused` through :func:`pack_pieces`: one kernel call over all pieces."""
    T, B, I = inputs.shape
    inverse = torch.empty_like(pieces.position)
    inverse[pieces.position] = torch.arange(T * B, device=inputs.device)
    data = inputs.reshape(T * B, I).index_select(0, inverse)
    start = reset_state(select_state(state, pieces.sample), pieces.restarts, select_state(initial, pieces.sample))
    out, final = _call_kernel(rnn, data, start, pieces.batch_sizes)
    return out.index_select(0, pieces.position).view(T, B, -1), select_state(final, pieces.last)


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

"""The recurrent-cell contract shared by every architecture, and helpers for its state.

Every cell is an ``nn.Module`` with::

    state = cell.initial_state(batch_size, device)          # tensor or tuple of tensors, batch dim 0
    out, state = cell(inputs[T, B, I], state, resets=None)  # out: [T, B, cell.output_size]

``resets[t, b] = True`` returns sample ``b``'s state to its initial value before step ``t`` (an
episode start inside a training sequence). Cells whose update depends on the time step (g-LSTM,
Phased LSTM) keep their step counter inside the state, so a reset restarts it.

Most cells only implement :meth:`RecurrentCell.step` (one time step) and inherit the shared time
loop in :meth:`RecurrentCell.forward`. :class:`ProjectedCell` splits the step into an input
projection done for all steps in one matmul and a recurrent update; cells with a fused PyTorch
kernel (LSTM, GRU, RNN) run it through :class:`agents.cells.fused.FusedCell`.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Union

import torch
from torch import Tensor, nn

State = Union[Tensor, tuple[Tensor, ...]]


class RecurrentCell(nn.Module):
    """Base class: one recurrent layer mapping ``[T, B, input_size]`` to ``[T, B, output_size]``.

    Subclasses call ``super().__init__(input_size, hidden_size)``, set ``output_size`` if it is
    not ``hidden_size``, and implement :meth:`initial_state` and :meth:`step`.

    Attributes:
        gate_openness: for time-gated cells (g-LSTM, Phased LSTM), the ``[T, B, H]`` gate values
            of the last forward (differentiable, for a budget loss); None for other cells.
        update_count: for time-gated cells, the number of (unit, step) pairs of the last forward
            whose gate exceeded the cell's threshold (a float tensor); None for other cells.
    """

    #: Whether the update depends on the step since the episode start (g-LSTM, Phased LSTM): such
    #: a cell keeps a step counter in its state and sets ``gate_openness`` / ``update_count``.
    time_gated: bool = False

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.output_size = int(hidden_size)
        self.gate_openness: Tensor | None = None
        self.update_count: Tensor | None = None

    # -- to implement ------------------------------------------------------------------------

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """The state at an episode start, with batch dimension 0, on ``device`` and in the
        dtype of the cell's parameters."""
        raise NotImplementedError

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """One time step: ``x`` is ``[B, input_size]``; returns ``(out [B, output_size], state)``."""
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------------

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, inputs: Tensor, state: State | None = None, resets: Tensor | None = None) -> tuple[Tensor, State]:
        """Run the cell over a sequence; see the module docstring for the contract."""
        return self._loop(inputs, state, resets)

    def _loop(self, inputs: Tensor, state: State | None, resets: Tensor | None, step=None) -> tuple[Tensor, State]:
        """The shared time loop (``unbind`` keeps backward linear in T).

        ``step`` replaces :meth:`step`, e.g. by an update that takes inputs already multiplied by
        the input weights for all steps in one matmul; the caller then checks the raw inputs.
        """
        if step is None:
            check_inputs(self, inputs, resets)
            step = self.step
        batch = inputs.shape[1]
        if state is None:
            state = self.initial_state(batch, inputs.device)
        outs = []
        if resets is None:
            for x in inputs.unbind(0):
                out, state = step(x, state)
                outs.append(out)
        else:
            start = self.initial_state(batch, inputs.device)
            for x, r in zip(inputs.unbind(0), resets.unbind(0)):
                state = reset_state(state, r, start)
                out, state = step(x, state)
                outs.append(out)
        return torch.stack(outs), state

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, hidden_size={self.hidden_size}"


class ProjectedCell(RecurrentCell):
    """A cell whose update splits into an input projection that does not depend on the state and a
    recurrent step on that projection, so the sequence path projects all time steps in one matmul.

    Subclasses implement :meth:`_project` (``x [..., I]`` -> ``[..., P]``) and
    :meth:`_step_projected` (one step from a projected input); :meth:`step`, :meth:`loop` and the
    default ``forward`` (the loop) follow. The default state is ``h [B, hidden_size]``, zeros.
    """

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        return torch.zeros(batch_size, self.hidden_size, device=device or self.device, dtype=self.dtype)

    def forward(self, inputs: Tensor, state: State | None = None, resets: Tensor | None = None) -> tuple[Tensor, State]:
        return self.loop(inputs, state, resets)

    def loop(self, inputs: Tensor, state: State | None = None, resets: Tensor | None = None) -> tuple[Tensor, State]:
        """The per-step path (same contract as ``forward``), inputs projected for all steps at once."""
        check_inputs(self, inputs, resets)
        return self._loop(self._project(inputs), state, resets, step=self._step_projected)

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        return self._step_projected(self._project(x), state)

    def _project(self, x: Tensor) -> Tensor:
        """The state-independent part of the update for any leading shape (e.g. ``x W^T + b``)."""
        raise NotImplementedError

    def _step_projected(self, xw: Tensor, state: State) -> tuple[Tensor, State]:
        """One time step from the projected input ``xw [B, P]``; returns ``(out, state)``."""
        raise NotImplementedError


#: Longest chunk of a forward pass without gradient over a long sequence: such passes (evaluation,
#: the auxiliary loss's prefix) run in chunks of at most this many steps, carrying the state, so
#: the buffers a cell allocates per call grow with the chunk, not with the sequence.
NO_GRAD_CHUNK = 1024


def chunk_lengths(steps: int) -> list[int]:
    """``steps`` cut into chunks of :data:`NO_GRAD_CHUNK` steps, the rest into falling powers of
    two (``2500 -> [1024, 1024, 256, 128, 64, 4]`` for 1024).

    A fused LSTM on the CPU caches one oneDNN primitive per sequence length it has run (up to
    ``ONEDNN_PRIMITIVE_CACHE_CAPACITY``, default 1,024 entries, each growing with the batch and the
    width), so prefixes of every possible length would fill that cache, hundreds of MB at long
    sequences; these chunks take at most ``log2(NO_GRAD_CHUNK) + 1`` distinct lengths.
    """
    out = [NO_GRAD_CHUNK] * (steps // NO_GRAD_CHUNK)
    rest = steps % NO_GRAD_CHUNK
    while rest:
        size = 1 << (rest.bit_length() - 1)
        out.append(size)
        rest -= size
    return out


def final_state_no_grad(
    cell: RecurrentCell, inputs: Tensor, state: State | None, resets: Tensor | None = None
) -> State:
    """The state after running ``cell`` over ``inputs`` without gradient (the outputs are not
    kept), in the chunks of :func:`chunk_lengths`: the buffers a call allocates stay bounded, and
    so does the number of distinct lengths a cell sees."""
    start = 0
    with torch.no_grad():
        for size in chunk_lengths(inputs.shape[0]):
            end = start + size
            _, state = cell(inputs[start:end], state, None if resets is None else resets[start:end])
            start = end
    return state


def check_inputs(cell: RecurrentCell, inputs: Tensor, resets: Tensor | None) -> None:
    """Raise ValueError with the expected shapes when ``inputs`` / ``resets`` are malformed."""
    if inputs.dim() != 3 or inputs.shape[2] != cell.input_size:
        raise ValueError(
            f"inputs must have shape [T, B, {cell.input_size}] for {type(cell).__name__}, got {tuple(inputs.shape)}"
        )
    if resets is not None and tuple(resets.shape) != tuple(inputs.shape[:2]):
        raise ValueError(f"resets must have shape [T, B] = {tuple(inputs.shape[:2])}, got {tuple(resets.shape)}")


# ----------------------------------------------------------------------------------------------
# State helpers: a state is a tensor or a tuple of tensors with batch dimension 0.
# ----------------------------------------------------------------------------------------------


def map_state(fn, *states: State) -> State:
    """Apply ``fn`` leaf-wise to one or more states of the same structure."""
    if isinstance(states[0], Tensor):
        return fn(*states)
    return tuple(map_state(fn, *leaves) for leaves in zip(*states))


def detach_state(state: State) -> State:
    """Cut the gradient history of a state (truncated BPTT, RL rollouts)."""
    return map_state(lambda s: s.detach(), state)


def reset_state(state: State, resets: Tensor, initial: State) -> State:
    """Where ``resets[b]`` is True, replace sample ``b`` of ``state`` by that of ``initial``."""
    def pick(s: Tensor, s0: Tensor) -> Tensor:
        mask = resets.view(-1, *([1] * (s.dim() - 1)))
        return torch.where(mask, s0, s)

    return map_state(pick, state, initial)


def select_state(state: State, index: Tensor | slice) -> State:
    """Samples ``index`` (along the batch dimension) of a state."""
    return map_state(lambda s: s[index], state)


def cat_states(states: list[State]) -> State:
    """Concatenate states along the batch dimension."""
    return map_state(lambda *s: torch.cat(s, 0), *states)


# ----------------------------------------------------------------------------------------------
# Registry: name -> "module:Class", imported on first use so `import agents` stays light.
# ----------------------------------------------------------------------------------------------

CELLS: dict[str, str] = {
    "rnn": "agents.cells.rnn:RNNCell",
    "lstm": "agents.cells.lstm:LSTMCell",
    "gru": "agents.cells.gru:GRUCell",
    "janet": "agents.cells.janet:JANETCell",
    "nru": "agents.cells.nru:NRUCell",
    "glstm": "agents.cells.glstm:GLSTMCell",
    "plstm": "agents.cells.plstm:PhasedLSTMCell",
    "kaf-lstm": "agents.cells.kaf:KAFLSTMCell",
    "kaf-gru": "agents.cells.kaf:KAFGRUCell",
    "leaky-rnn": "agents.cells.rnn:LeakyRNNCell",
    "gated-rnn": "agents.cells.rnn:GatedRNNCell",
    "sru-stat": "agents.cells.sru:StatisticalRecurrentCell",
    "eurnn": "agents.cells.unitary:EURNNCell",
    "goru": "agents.cells.unitary:GORUCell",
    "transformer": "agents.cells.transformer:TransformerCell",
}


def list_cells() -> list[str]:
    """Names accepted by :func:`make_cell`."""
    return sorted(CELLS)


def cell_class(name: str) -> type[RecurrentCell]:
    """The class registered under ``name`` (ValueError listing the choices if unknown)."""
    if name not in CELLS:
        raise ValueError(f"unknown cell {name!r}: choose one of {', '.join(list_cells())}")
    module, _, cls = CELLS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def make_cell(name: str, input_size: int, hidden_size: int, **kwargs: Any) -> RecurrentCell:
    """Build a registered cell; unknown keyword arguments raise ValueError listing the valid ones."""
    cls = cell_class(name)
    params = inspect.signature(cls.__init__).parameters
    allowed = [p for p in params if p not in ("self", "input_size", "hidden_size")]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(
            f"cell {name!r} has no option {', '.join(unknown)}: allowed options are {', '.join(allowed) or 'none'}"
        )
    for arg, value in (("input_size", input_size), ("hidden_size", hidden_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{arg}={value!r} must be a positive integer")
    return cls(input_size, hidden_size, **kwargs)

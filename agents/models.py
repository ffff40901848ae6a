"""SequenceModel: input encoder -> recurrent cell -> readout, for any task and any cell.

::

    model = SequenceModel.for_task(task, cell="nru", hidden_size=80, cell_kwargs={"memory_size": 64})
    logits, state = model(inputs)            # inputs [T, B] symbols or [T, B, F] floats
    logits, state = model(inputs, tbptt=300) # truncated BPTT, see :meth:`SequenceModel.run_encoded`

The encoders are small modules of their own (:func:`make_encoder`) so the RL harness can put the
same front end in front of a cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from agents.config import ENCODERS, READOUT_INITS, EncoderName
from agents.cells.base import NO_GRAD_CHUNK, RecurrentCell, State, detach_state, make_cell

INPUT_KINDS = ("symbols", "real")
TARGET_KINDS = ("class", "real")
#: Embedding width when ``encoder="embedding"`` and no ``embedding_dim`` is given (the aux-loss
#: paper's 128-d pixel/character embedding, docs/aux.md#architecture).
DEFAULT_EMBEDDING_DIM = 128


class OneHotEncoder(nn.Module):
    """Symbol ids ``[T, B]`` -> one-hot floats ``[T, B, num_inputs]`` (no parameters).

    The identity matrix is a buffer, so the encoding follows the model's device and dtype.
    """

    def __init__(self, num_inputs: int) -> None:
        super().__init__()
        self.register_buffer("eye", torch.eye(num_inputs), persistent=False)

    def forward(self, inputs: Tensor) -> Tensor:
        return F.embedding(inputs, self.eye)


def make_encoder(
    input_kind: str, num_inputs: int, encoder: EncoderName = "auto", embedding_dim: int | None = None
) -> tuple[nn.Module, int]:
    """Build the input encoder and return it with its output width.

    Symbol inputs: ``"onehot"`` (default for ``"auto"``) or ``"embedding"`` (a learned
    ``nn.Embedding``, width ``embedding_dim``, default 128). Real inputs: ``"linear"`` (default for
    ``"auto"``): the identity when ``embedding_dim`` is None, else a learned ``nn.Linear`` to
    ``embedding_dim`` features.
    """
    if input_kind not in INPUT_KINDS:
        raise ValueError(f"input_kind={input_kind!r} is not allowed: choose one of {', '.join(INPUT_KINDS)}")
    if encoder not in ENCODERS:
        raise ValueError(f"encoder={encoder!r} is not allowed: choose one of {', '.join(ENCODERS)}")
    if embedding_dim is not None and (isinstance(embedding_dim, bool) or not isinstance(embedding_dim, int) or embedding_dim < 1):
        raise ValueError(f"embedding_dim={embedding_dim!r} must be a positive integer or None")
    if input_kind == "symbols":
        encoder = "onehot" if encoder == "auto" else encoder
        if encoder == "onehot":
            if embedding_dim is not None:
                raise ValueError(f"embedding_dim={embedding_dim!r} has no effect with encoder='onehot': leave it unset")
            return OneHotEncoder(num_inputs), num_inputs
        if encoder == "embedding":
            dim = embedding_dim or DEFAULT_EMBEDDING_DIM
            return nn.Embedding(num_inputs, dim), dim
        raise ValueError(f"encoder={encoder!r} does not take symbol inputs: use 'onehot' or 'embedding'")
    if encoder not in ("auto", "linear"):
        raise ValueError(f"encoder={encoder!r} does not take real-valued inputs: use 'linear'")
    if embedding_dim is None:
        return nn.Identity(), num_inputs
    return nn.Linear(num_inputs, embedding_dim), embedding_dim



class SequenceModel(nn.Module):
    """Encoder -> recurrent cell -> readout, mapping a sequence to one prediction per step.

    Args:
        input_kind: ``"symbols"`` (int ids ``[T, B]``) or ``"real"`` (floats ``[T, B, num_inputs]``).
        num_inputs: number of input symbols, or input features.
        num_outputs: number of classes (logits) or real output dimensions.
        cell: a name registered in :data:`agents.cells.CELLS`.
        hidden_size: the cell's hidden size.
        cell_kwargs: extra options of the cell (``make_cell`` rejects unknown ones).
        encoder: see :func:`make_encoder`.
        embedding_dim: width of the embedding / linear encoder.
        readout_hidden: 0 (default) for a linear readout; otherwise a 2-layer readout
            ``Linear -> ReLU -> Dropout -> Linear`` with this many hidden units (the aux-loss paper
            uses 256, docs/aux.md#architecture).
        dropout: dropout probability inside the 2-layer readout (paper: 0.5).
        readout_init: ``"default"`` (``nn.Linear``'s) or ``"xavier"`` (Xavier-normal weights,
            zero biases: the NRU reference code's readout for every model).
    """

    def __init__(
        self,
        input_kind: str,
        num_inputs: int,
        num_outputs: int,
        cell: str = "lstm",
        hidden_size: int = 128,
        cell_kwargs: dict[str, Any] | None = None,
        encoder: str = "auto",
        embedding_dim: int | None = None,
        readout_hidden: int = 0,
        dropout: float = 0.0,
        readout_init: str = "default",
    ) -> None:
        super().__init__()
        for name, value in (("num_inputs", num_inputs), ("num_outputs", num_outputs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive integer")
        if isinstance(readout_hidden, bool) or not isinstance(readout_hidden, int) or readout_hidden < 0:
            raise ValueError(f"readout_hidden={readout_hidden!r} must be an integer >= 0 (0 = linear readout)")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout!r} must be a number in [0, 1)")
        if dropout and not readout_hidden:
            raise ValueError(f"dropout={dropout!r} needs a 2-layer readout: set readout_hidden > 0")
        self.input_kind = input_kind
        self.num_inputs = num_inputs
        self.num_outputs = num_outputs
        self.encoder, encoded_size = make_encoder(input_kind, num_inputs, encoder, embedding_dim)
        self.cell: RecurrentCell = make_cell(cell, encoded_size, hidden_size, **(cell_kwargs or {}))
        if readout_hidden:
            self.readout: nn.Module = nn.Sequential(
                nn.Linear(self.cell.output_size, readout_hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(readout_hidden, num_outputs),
            )
        else:
            self.readout = nn.Linear(self.cell.output_size, num_outputs)
        if readout_init not in READOUT_INITS:
            raise ValueError(f"readout_init={readout_init!r} must be one of {', '.join(READOUT_INITS)}")
        if readout_init == "xavier":
            for layer in self.readout.modules():
                if isinstance(layer, nn.Linear):
                    nn.init.xavier_normal_(layer.weight)
                    nn.init.zeros_(layer.bias)

    @classmethod
    def for_task(cls, task: Any, **kwargs: Any) -> SequenceModel:
        """A model shaped for a :class:`memenvs.SequenceTask` (its input kind and sizes)."""
        return cls(task.input_kind, task.num_inputs, task.num_outputs, **kwargs)

    @property
    def encoded_size(self) -> int:
        """Width of the encoder's output, i.e. the cell's input size."""
        return self.cell.input_size

    def encode(self, inputs: Tensor) -> Tensor:
        """Raw inputs (``[T, B]`` ids or ``[T, B, F]`` floats) -> cell inputs ``[T, B, E]``."""
        if self.input_kind == "symbols":
            if inputs.dim() != 2 or inputs.is_floating_point():
                raise ValueError(f"symbol inputs must be an integer tensor [T, B], got {inputs.dtype} {tuple(inputs.shape)}")
        elif inputs.dim() != 3 or inputs.shape[2] != self.num_inputs or not inputs.is_floating_point():
            raise ValueError(f"real inputs must be a float tensor [T, B, {self.num_inputs}], got {inputs.dtype} {tuple(inputs.shape)}")
        return self.encoder(inputs)

    def forward(
        self,
        inputs: Tensor,
        state: State | None = None,
        resets: Tensor | None = None,
        tbptt: int | None = None,
        grad_steps: Sequence[bool] | np.ndarray | None = None,
    ) -> tuple[Tensor, State]:
        """Predictions ``[T, B, num_outputs]`` and the final state; see :meth:`run_encoded`."""
        return self.run_encoded(self.encode(inputs), state, resets, tbptt, grad_steps)

    def run_encoded(
        self,
        encoded: Tensor,
        state: State | None = None,
        resets: Tensor | None = None,
        tbptt: int | None = None,
        grad_steps: Sequence[bool] | np.ndarray | None = None,
    ) -> tuple[Tensor, State]:
        """Run cell and readout on already encoded inputs ``[T, B, E]``.

        Truncated BPTT (``tbptt=N``): the sequence is cut into chunks of ``N`` steps **aligned to
        the end of the sequence** (the last chunk is steps ``T-N .. T-1``; the first chunk holds the
        remaining ``T mod N`` steps) and the state is detached between chunks. A loss at step ``t``
        therefore backpropagates only into the steps of its own chunk — at most ``N`` steps, and
        exactly the last ``N`` steps for a loss at the final step ("Truncate300" in the aux-loss
        paper, docs/aux.md#anchors-and-segments). Gradients w.r.t. inputs in earlier chunks are exactly zero.

        ``grad_steps`` (optional, ``[T]`` bools, with ``tbptt``): chunks with no True step are
        run without building a graph (no loss reads them), which makes truncation cheap for
        last-step classification. Do not pass it when something else (a budget loss) needs the
        gradient of every step.

        Without gradient (evaluation, rollouts) a sequence longer than :data:`NO_GRAD_CHUNK` steps
        runs in chunks of that many steps with the same result, so the buffers a cell allocates
        per call (e.g. the input projection of every step, ``[T, B, 4H]`` for an LSTM) stay
        bounded too.

        The readout runs chunk by chunk too, so what an update keeps for backward is the graph of
        the chunks with gradient (about ``N`` steps) plus the outputs, not the hidden states of
        all ``T`` steps: this is what lets a 16k-step sequence train in bounded memory
        (``benchmarks/soak_long.py``).

        After the call ``cell.gate_openness`` / ``cell.update_count`` (time-gated cells) cover the
        whole sequence, not just the last chunk.
        """
        T = encoded.shape[0]
        if tbptt is None:
            if torch.is_grad_enabled() or T <= NO_GRAD_CHUNK:
                out, state = self.cell(encoded, state, resets)
                return self.readout(out), state
            tbptt = NO_GRAD_CHUNK  # no graph: chunks only bound the per-call buffers
        if isinstance(tbptt, bool) or not isinstance(tbptt, int) or tbptt < 1:
            raise ValueError(f"tbptt={tbptt!r} must be a positive integer or None")
        bounds = list(range(T, 0, -tbptt))[::-1]  # chunk ends, aligned to the end
        starts = [0] + bounds[:-1]
        outs, openness, counts = [], [], []
        for start, end in zip(starts, bounds):
            if start > 0:
                state = detach_state(state)
            needs_grad = grad_steps is None or bool(np.any(np.asarray(grad_steps[start:end])))
            with torch.set_grad_enabled(torch.is_grad_enabled() and needs_grad):
                chunk_resets = None if resets is None else resets[start:end]
                out, state = self.cell(encoded[start:end], state, chunk_resets)
                outs.append(self.readout(out))  # per chunk: a chunk without gradient keeps no graph
            if self.cell.gate_openness is not None:
                openness.append(self.cell.gate_openness)
            if self.cell.update_count is not None:
                counts.append(self.cell.update_count)
        if openness:
            self.cell.gate_openness = torch.cat(openness)
        if counts:
            self.cell.update_count = sum(counts[1:], counts[0])
        return torch.cat(outs), state

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """The cell's initial state."""
        return self.cell.initial_state(batch_size, device)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)

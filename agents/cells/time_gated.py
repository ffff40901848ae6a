"""The time-gated LSTM base shared by the Phased LSTM (:mod:`agents.cells.plstm`) and the
g-LSTM (:mod:`agents.cells.glstm`).

A time-gated LSTM computes an ordinary LSTM proposal ``(c~_t, h~_t)`` and mixes it with the old
state through a per-unit gate ``k_t`` that depends only on the time step::

    c_t = k_t * c~_t + (1 - k_t) * c_{t-1},    h_t = k_t * h~_t + (1 - k_t) * h_{t-1}

Where ``k_t = 0`` the state is copied unchanged (identity Jacobian, no compute needed).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from agents.cells.base import RecurrentCell, check_inputs
from agents.cells.fused import check_chrono_t_max
from agents.cells.lstm_sequence import run_lstm_sequence
from agents.init import GATE_INITS, WEIGHT_INITS, init_lstm_
from memenvs.core import check_choice, check_float

TimeGatedState = tuple[Tensor, Tensor, Tensor]


def step_times(start: Tensor, resets: Tensor | None, length: int) -> Tensor:
    """Time index ``[T, B]`` of every step: steps since the episode start (0 at the first step).

    ``start[b]`` is the counter carried in the state; a reset at ``(t, b)`` restarts it at 0.
    """
    idx = torch.arange(length, device=start.device, dtype=start.dtype).unsqueeze(1)  # [T, 1]
    times = start.unsqueeze(0) + idx
    if resets is None:
        return times
    # Index of the latest reset at or before each step (-1 if none), by a running maximum.
    marks = torch.where(resets, idx.to(torch.long).expand_as(resets), torch.full_like(resets, -1, dtype=torch.long))
    last = torch.cummax(marks, dim=0).values
    return torch.where(last >= 0, idx - last.to(start.dtype), times)


class TimeGatedLSTM(RecurrentCell):
    """Base class: an LSTM whose state update is mixed by a time gate ``k_t`` (see module doc).

    The LSTM part uses the parameter layout of ``nn.LSTM`` (``weight_ih [4H, I]``, ``weight_hh
    [4H, H]``, ``bias_ih``, ``bias_hh``; gate order i, f, g, o), so weights can be copied to and
    from ``nn.LSTM``, and the ``lstm`` cell's initialisation options with its defaults
    (``forget_bias=1.0``, ``init="default"|"chrono"``, ``t_max``, ``weight_init``; :func:`agents.init.init_lstm_`),
    so a time-gated cell starts from the same LSTM as the ``lstm`` baseline. State: ``(h, c, t)`` with ``t`` a ``[B]``
    float step counter, so a reset restarts the clock. Subclasses implement :meth:`openness`
    (gate values for given times) and :meth:`is_update` (which of them count as an update).

    After each forward, ``gate_openness`` holds the ``[T, B, H]`` gate values (differentiable, for
    a budget loss; an expanded view of one ``[T, 1, H]`` row when all samples share the clock) and ``update_count`` the number of (unit, step) pairs counted as an update,
    averaged over the batch, so ``1 - update_count / (T * H)`` is the fraction of skipped updates.
    """

    time_gated = True

    def __init__(
        self, input_size: int, hidden_size: int, forget_bias: float | None = 1.0, init: str = "default",
        t_max: float | None = None, weight_init: str = "uniform",
    ) -> None:
        super().__init__(input_size, hidden_size)
        #: Steps of the sequence per step of the gates' clock: the gates see ``t / time_scale``.
        #: 1 normally; a temporal curriculum sets it to (stage length / final length) so the gate
        #: layout shrinks with a short stage and the units open at a stage's answer step are the
        #: ones open at the final answer step. Not a parameter and not saved.
        self.time_scale = 1.0
        self.forget_bias = None if forget_bias is None else check_float("forget_bias", forget_bias)
        self.init = check_choice("init", init, GATE_INITS)
        self.t_max = check_chrono_t_max(init, t_max)
        self.weight_init = check_choice("weight_init", weight_init, WEIGHT_INITS)
        H = self.hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * H, self.input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * H, H))
        self.bias_ih = nn.Parameter(torch.empty(4 * H))
        self.bias_hh = nn.Parameter(torch.empty(4 * H))
        init_lstm_(self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh,
                   forget_bias=self.forget_bias, init=self.init, t_max=self.t_max, weight_init=self.weight_init)

    # -- to implement --------------------------------------------------------------------------

    def openness(self, times: Tensor) -> Tensor:
        """Gate values ``[..., H]`` for step indices ``times [...]``."""
        raise NotImplementedError

    def is_update(self, times: Tensor, gate: Tensor) -> Tensor:
        """Boolean ``[..., H]``: which (step, unit) pairs count as an update."""
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------------

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> TimeGatedState:
        """``(h, c, t)``: zero ``[B, H]`` states and a zero ``[B]`` step counter."""
        kw = dict(device=device, dtype=self.dtype)
        zeros = torch.zeros(batch_size, self.hidden_size, **kw)
        return zeros, zeros.clone(), torch.zeros(batch_size, **kw)

    def step(self, x: Tensor, state: TimeGatedState) -> tuple[Tensor, TimeGatedState]:
        out, state = self.forward(x.unsqueeze(0), state)
        return out[0], state

    def forward(
        self, inputs: Tensor, state: TimeGatedState | None = None, resets: Tensor | None = None
    ) -> tuple[Tensor, TimeGatedState]:
        """The shared contract. The gate depends on time only, so it is computed for all steps
        at once; the LSTM runs as one autograd node
        (:class:`agents.cells.lstm_sequence.LSTMSequence`, the gate as its ``mix``)."""
        check_inputs(self, inputs, resets)
        batch = inputs.shape[1]
        if state is None:
            state = self.initial_state(batch, inputs.device)
        h, c, start = state
        steps = inputs.shape[0]
        if resets is None and bool((start == start[:1]).all()):
            # Every sample is at the same step of its episode: one gate row serves the batch.
            times = step_times(start[:1], None, steps)  # [T, 1]
        else:
            times = step_times(start, resets, steps)  # [T, B]
        clock = times if self.time_scale == 1.0 else times / self.time_scale
        gates = self.openness(clock)  # [T, 1 or B, H]
        self.gate_openness = gates.expand(steps, batch, self.hidden_size)
        updates = self.is_update(clock.detach(), gates.detach()).sum().to(gates.dtype)
        self.update_count = updates / times.shape[1]  # per sequence: averaged over the batch
        out, c = run_lstm_sequence(self, inputs, h, c, resets, mix=gates)
        return out, (out[-1], c, (times[-1] + 1).expand(batch).clone())

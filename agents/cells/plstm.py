"""Phased LSTM (Neil, Pfeiffer & Liu, NIPS 2016; docs/glstm.md#background-phased-lstm): a
time-gated LSTM (:mod:`agents.cells.time_gated`) whose gates open periodically."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from agents.cells.time_gated import TimeGatedLSTM
from memenvs.core import check_bool, check_float


class PhasedLSTMCell(TimeGatedLSTM):
    """Phased LSTM: each unit's time gate opens periodically for a short part of its period.

    Per unit j with period ``tau_j``, shift ``s_j`` and open ratio ``r_on,j``, at step ``t``
    (0 at the episode start)::

        phi_t = ((t - s_j) mod tau_j) / tau_j
        k_t   = 2 phi / r_on            if phi < r_on / 2      (opening)
                2 - 2 phi / r_on        if r_on / 2 <= phi < r_on   (closing)
                leak * phi              otherwise                 (closed; leak only in train())

    and the state is mixed as in :class:`TimeGatedLSTM`. ``update_count`` counts the pairs in
    the open phase (``phi < r_on``): in eval mode (leak 0) exactly those change the state.

    Args:
        input_size, hidden_size: as for every cell.
        tau_range: ``(lo, hi)``: periods are initialised as ``tau = exp(U(lo, hi))`` steps;
            default (1, 5), i.e. about 2.7 to 148 steps, the official code's default. Shifts
            are drawn uniformly over each unit's period, ``s ~ U(0, tau)``.
        r_on: initial open ratio of every unit, in (0, 1]; default 0.05 (official default;
            the authors suggest 0.1 for hard problems).
        leak: slope of the gate in the closed phase while training (default 1e-3, official);
            it is always 0 in ``eval()`` mode.
        learn_r_on: learn ``r_on`` per unit (default True, as in the official code) or keep it
            fixed.
        forget_bias, init, t_max, weight_init: the LSTM's initialisation, as for ``lstm`` (see
            :class:`TimeGatedLSTM`).

    ``tau`` and ``r_on`` are learned through their logarithms so they stay positive.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        tau_range: tuple[float, float] = (1.0, 5.0),
        r_on: float = 0.05,
        leak: float = 1e-3,
        learn_r_on: bool = True,
        forget_bias: float | None = 1.0,
        init: str = "default",
        t_max: float | None = None,
        weight_init: str = "uniform",
    ) -> None:
        super().__init__(input_size, hidden_size, forget_bias, init, t_max, weight_init)
        if not isinstance(tau_range, (tuple, list)) or len(tau_range) != 2:
            raise ValueError(f"tau_range={tau_range!r} must be a pair (lo, hi) of log-periods with lo <= hi")
        lo = check_float("tau_range[0]", tau_range[0])
        hi = check_float("tau_range[1]", tau_range[1])
        if lo > hi:
            raise ValueError(f"tau_range={tau_range!r} must satisfy lo <= hi")
        self.tau_range = (lo, hi)
        self.r_on_init = check_float("r_on", r_on, low=0.0, high=1.0)
        if self.r_on_init == 0.0:
            raise ValueError(f"r_on={r_on!r} must be in (0, 1]")
        self.leak = check_float("leak", leak, low=0.0)
        self.learn_r_on = check_bool("learn_r_on", learn_r_on)
        H = self.hidden_size
        log_tau = torch.empty(H).uniform_(lo, hi)
        self.log_tau = nn.Parameter(log_tau)
        self.shift = nn.Parameter(torch.rand(H) * log_tau.exp())
        log_r_on = torch.full((H,), math.log(self.r_on_init))
        if self.learn_r_on:
            self.log_r_on = nn.Parameter(log_r_on)
        else:
            self.register_buffer("log_r_on", log_r_on)

    def phase(self, times: Tensor) -> Tensor:
        """``phi [..., H]`` in [0, 1) for step indices ``times [...]``."""
        tau = self.log_tau.exp()
        return torch.remainder(times.unsqueeze(-1) - self.shift, tau) / tau

    def openness(self, times: Tensor) -> Tensor:
        phi = self.phase(times)
        r_on = self.log_r_on.exp()
        leak = self.leak if self.training else 0.0
        rising = 2.0 * phi / r_on
        return torch.where(phi < 0.5 * r_on, rising, torch.where(phi < r_on, 2.0 - rising, leak * phi))

    def is_update(self, times: Tensor, gate: Tensor) -> Tensor:
        return self.phase(times) < self.log_r_on.exp()

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, tau_range={self.tau_range}, r_on={self.r_on_init}, "
            f"leak={self.leak}, learn_r_on={self.learn_r_on}"
        )

"""g-LSTM: the Gaussian-gated LSTM (Thornton, Anumula & Liu, 2019; docs/glstm.md).

Phased LSTM's periodic time gate replaced by one smooth Gaussian bump per unit, so each unit is
awake in one learnable window of the sequence and copies its state elsewhere.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from agents.cells.time_gated import TimeGatedLSTM
from memenvs.core import check_bool, check_float


class GLSTMCell(TimeGatedLSTM):
    """Gaussian-gated LSTM: an LSTM whose state update is mixed by a Gaussian time gate.

    Per unit j, at step ``t`` (0 at the episode start; the counter lives in the state)::

        k_t = exp(-(t - mu_j)^2 / (2 sigma_j^2))          (two_sigma_sq=True, default)
        k_t = exp(-(t - mu_j)^2 / sigma_j^2)              (two_sigma_sq=False)
        c_t = k_t * c~_t + (1 - k_t) * c_{t-1},   h_t = k_t * h~_t + (1 - k_t) * h_{t-1}

    where ``(c~_t, h~_t)`` is an ordinary LSTM step (``nn.LSTM`` layout and init). The gate does
    not depend on the input.

    Timing in fractions of the sequence: the learned parameters are ``position = mu / L`` and
    ``log_width = log(sigma / L)`` with ``L`` the cell's ``expected_length``, so ``mu`` and
    ``sigma`` (in steps) are properties. Adam moves each parameter by about its learning rate
    per update whatever the gradient's scale, so with ``mu`` in raw steps and lr 1e-3 a gate
    could travel about 20 steps in 20k updates, which on a 1,000-step task means it cannot
    move to where the information is. In fractions of ``L`` an update can move it by about
    ``lr * L`` steps: the whole sequence in ``1 / lr`` updates. (For ``sigma`` the choice changes
    nothing: ``log sigma`` and ``log(sigma / L)`` differ by a constant.) It also lets a
    temporal curriculum rescale the layout with the stage's length: set ``expected_length`` and
    every gate keeps its place relative to the sequence (the trainer does this per stage).

    Compute accounting: ``update_count`` is the number of (unit, step, sample) triples with
    ``k_t > gate_threshold``, divided by the batch size, i.e. the number of (unit, step) updates
    a sparse implementation must compute per sequence; ``1 - update_count / (T * H)`` is the
    fraction of updates skipped. ``gate_openness`` (``[T, B, H]``, differentiable) feeds the
    budget loss (docs/glstm.md#budget-loss).

    Args:
        input_size, hidden_size: as for every cell.
        expected_length: the sequence length ``L`` the gates are laid out for and the unit of
            their timing parameters: ``mu`` starts evenly spaced over ``[0, L]`` so that every
            step has open units (no "holes"). Default 784, the pixel-MNIST length, the paper's
            main benchmark. May be changed after construction (the layout scales with it).
        gate_threshold: gate value above which a (unit, step) counts as an update, in [0, 1).
            Default 0.01: skipping a step with ``k <= 0.01`` moves the state by at most 1% of
            the proposed change. The paper's value is unknown ((unverified)).
        sigma_init: initial ``sigma`` of every unit as a fraction of ``expected_length``
            (default 0.1, a common width that covers each step with many units; (unverified)).
        two_sigma_sq: whether the exponent has the factor 2 (``2 sigma^2``, the usual Gaussian,
            default) or not (``sigma^2``); docs/ marks the paper's form [U]. It only changes
            the meaning of ``sigma``.
        mu_init: ``"spread"`` (default: centres evenly over ``[0, L]``) or a fraction of ``L``
            in [0, 1] where every unit's gate starts (e.g. 0: all at the first step, a poor
            initialisation from which the timing must be learned).
        forget_bias, init, t_max, weight_init: the LSTM's initialisation, as for ``lstm`` (see
            :class:`agents.cells.time_gated.TimeGatedLSTM`).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        expected_length: float = 784,
        gate_threshold: float = 0.01,
        sigma_init: float = 0.1,
        two_sigma_sq: bool = True,
        mu_init: str | float = "spread",
        forget_bias: float | None = 1.0,
        init: str = "default",
        t_max: float | None = None,
        weight_init: str = "uniform",
    ) -> None:
        super().__init__(input_size, hidden_size, forget_bias, init, t_max, weight_init)
        self.expected_length = check_float("expected_length", expected_length, low=0.0)
        if self.expected_length <= 0:
            raise ValueError(f"expected_length={expected_length!r} must be > 0")
        self.gate_threshold = check_float("gate_threshold", gate_threshold, low=0.0, high=1.0)
        if self.gate_threshold >= 1.0:
            raise ValueError(f"gate_threshold={gate_threshold!r} must be in [0, 1)")
        self.sigma_init = check_float("sigma_init", sigma_init, low=0.0)
        if self.sigma_init <= 0:
            raise ValueError(f"sigma_init={sigma_init!r} must be > 0 (a fraction of expected_length)")
        self.two_sigma_sq = check_bool("two_sigma_sq", two_sigma_sq)
        H = self.hidden_size
        if mu_init == "spread":
            position = torch.linspace(0.0, 1.0, H)
        elif isinstance(mu_init, (int, float)) and not isinstance(mu_init, bool) and 0.0 <= mu_init <= 1.0:
            position = torch.full((H,), float(mu_init))
        else:
            raise ValueError(f"mu_init={mu_init!r} must be 'spread' or a fraction of expected_length in [0, 1]")
        self.mu_init = mu_init
        self.position = nn.Parameter(position)
        self.log_width = nn.Parameter(torch.full((H,), math.log(self.sigma_init)))

    @property
    def mu(self) -> Tensor:
        """Per-unit gate centre ``[H]`` in steps: ``position * expected_length``."""
        return self.position * self.expected_length

    @property
    def sigma(self) -> Tensor:
        """Per-unit gate width ``[H]`` in steps (positive): ``exp(log_width) * expected_length``."""
        return self.log_width.exp() * self.expected_length

    def openness(self, times: Tensor) -> Tensor:
        z = (times.unsqueeze(-1) - self.mu) / self.sigma
        return torch.exp(-(0.5 if self.two_sigma_sq else 1.0) * z * z)

    def is_update(self, times: Tensor, gate: Tensor) -> Tensor:
        return gate > self.gate_threshold

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, expected_length={self.expected_length}, "
            f"gate_threshold={self.gate_threshold}, sigma_init={self.sigma_init}, two_sigma_sq={self.two_sigma_sq}"
        )

"""The Statistical Recurrent Unit (Oliva, Póczos & Schneider, ICML 2017), an NRU-paper baseline.

Not the "Simple Recurrent Unit" of Lei et al.: this SRU has no gates at all. It keeps exponential
moving averages of ReLU features at several fixed decay rates, so a few slow averages (alpha
close to 1) hold information for ~1/(1-alpha) steps while fast ones track the present
(docs/nru.md#experiments-and-settings, docs/nru.md#baselines).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agents.cells.base import RecurrentCell, check_inputs
from memenvs.core import check_int

DEFAULT_ALPHAS = (0.0, 0.5, 0.9, 0.99, 0.999)


class StatisticalRecurrentCell(RecurrentCell):
    """Statistical recurrent unit with the semantics of the NRU authors' code (``myTorch`` SRUCell).

    Equations (``A`` the decay rates, ``mu`` the concatenation of the per-rate statistics)::

        r_t       = ReLU(W_r mu_{t-1} + b_r)                        # summary of the past
        phi_t     = ReLU(W_x x_t + W_p r_t + b_phi)                 # features of the present
        mu^a_t    = a * mu^a_{t-1} + (1 - a) * phi_t    for every a in A
        o_t       = ReLU(W_o mu_t + b_o)                            # output

    State: ``mu [B, len(alphas) * phi_size]`` (blocks in the order of ``alphas``), zeros at an
    episode start. Output: ``o_t`` (``output_size == hidden_size``). Weights start Xavier-uniform
    with the ReLU gain sqrt(2) (as in the authors' code); biases keep ``nn.Linear``'s uniform
    ±1/sqrt(fan_in) instead of the code's zeros, because with ``b_r = 0`` every episode start
    (``mu = 0``) puts ``r`` exactly on the ReLU kink, where the gradient is undefined. Parameters:
    ``A phi r + r + (I + r) phi + phi + A phi H + H``.

    Defaults are the NRU paper's copy-task setting (hidden 60, phi 55, r 16, ~23k parameters with
    a 9-way readout, docs/nru.md#experiments-and-settings); its psMNIST setting is hidden 150, ``phi_size=155``,
    ``r_size=50``.

    Args:
        input_size: features per step.
        hidden_size: size H of the output ``o_t``.
        phi_size: features per statistic (default 55).
        r_size: size of the recurrent summary ``r`` (default 16).
        alphas: the fixed decay rates, each in [0, 1) (default ``(0, .5, .9, .99, .999)``, the
            paper's and the code's set). 0 gives the current features themselves.

    Parameter layout: ``summary`` (W_r, b_r), ``features`` (``[W_x | W_p]``, b_phi), ``output``
    (W_o, b_o); the rates are constructor arguments, not parameters.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        phi_size: int = 55,
        r_size: int = 16,
        alphas: Sequence[float] = DEFAULT_ALPHAS,
    ) -> None:
        super().__init__(input_size, hidden_size)
        self.phi_size = check_int("phi_size", phi_size, low=1)
        self.r_size = check_int("r_size", r_size, low=1)
        values = tuple(alphas) if isinstance(alphas, Iterable) and not isinstance(alphas, str) else ()
        if not values or not all(
            isinstance(a, numbers.Real) and not isinstance(a, bool) and 0 <= a < 1 for a in values
        ):
            raise ValueError(f"alphas={alphas!r} must be a non-empty list of decay rates, each in [0, 1)")
        self.alphas = tuple(float(a) for a in values)
        stats = len(self.alphas) * self.phi_size
        self.summary = nn.Linear(stats, self.r_size)
        self.features = nn.Linear(self.input_size + self.r_size, self.phi_size)
        self.output = nn.Linear(stats, self.hidden_size)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Xavier-uniform weights with the ReLU gain, ``nn.Linear``'s default biases (class doc)."""
        gain = nn.init.calculate_gain("relu")
        for layer in (self.summary, self.features, self.output):
            layer.reset_parameters()
            nn.init.xavier_uniform_(layer.weight, gain=gain)

    @property
    def stats_size(self) -> int:
        """Size of the state ``mu``: ``len(alphas) * phi_size``."""
        return len(self.alphas) * self.phi_size

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> Tensor:
        """``mu``: zeros ``[B, len(alphas) * phi_size]``."""
        return torch.zeros(batch_size, self.stats_size, device=device or self.device, dtype=self.dtype)

    def decay(self, like: Tensor) -> Tensor:
        """Per entry of ``mu`` its rate (``mu = [stats at alpha_1 | stats at alpha_2 | ...]``), built
        in the dtype of ``like`` (a float32 buffer cast to float64 would carry rounded rates)."""
        return torch.tensor(self.alphas, dtype=like.dtype, device=like.device).repeat_interleave(self.phi_size)

    def _update(self, x_part: Tensor, mu: Tensor, w_r: Tensor, decay: Tensor) -> Tensor:
        """The new statistics given ``W_x x_t + b_phi`` (precomputed for all steps)."""
        r = F.relu(self.summary(mu))
        phi = F.relu(torch.addmm(x_part, r, w_r.t()))
        return decay * mu + (1 - decay) * phi.repeat(1, len(self.alphas))

    def _split_features(self) -> tuple[Tensor, Tensor]:
        return self.features.weight.split([self.input_size, self.r_size], dim=1)

    def step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        w_x, w_r = self._split_features()
        mu = self._update(F.linear(x, w_x, self.features.bias), state, w_r, self.decay(state))
        return F.relu(self.output(mu)), mu

    def forward(self, inputs: Tensor, state: Tensor | None = None, resets: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The shared contract; the input part of ``phi`` and the output map run for all steps at once."""
        check_inputs(self, inputs, resets)
        w_x, w_r = self._split_features()
        decay = self.decay(w_r)

        def step(x_part: Tensor, mu: Tensor) -> tuple[Tensor, Tensor]:
            mu = self._update(x_part, mu, w_r, decay)
            return mu, mu

        mus, mu = self._loop(F.linear(inputs, w_x, self.features.bias), state, resets, step=step)
        return F.relu(self.output(mus)), mu

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, phi_size={self.phi_size}, r_size={self.r_size}, alphas={self.alphas}"

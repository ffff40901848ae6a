"""Flexible gates with Kernel Activation Functions (Scardapane et al., 2018; docs/kaf.md).

A KAF is a per-unit learnable scalar function, a Gaussian-kernel expansion over a fixed
dictionary; the flexible gate ``sigmoid(KAF(s) / 2 + s / 2)`` keeps gate values in (0, 1) while
letting each unit learn the gate's shape. :class:`KAFLSTMCell` uses it for the i, f, o gates of an
LSTM and :class:`KAFGRUCell` for the z, r gates of a GRU.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agents.cells.base import RecurrentCell, check_inputs
from agents.cells.fused import check_chrono_t_max
from agents.cells.kaf_table import KAFGRUGates, Tabulate, TabulatedKAF
from agents.cells.lstm_sequence import run_lstm_sequence
from agents.init import GATE_INITS, WEIGHT_INITS, init_gru_, init_lstm_
from memenvs.core import check_choice, check_float, check_int

KAF_INITS = ("identity", "random")


def kernel_ridge_alpha(grid: Tensor, gamma: float, target: Callable[[Tensor], Tensor], ridge: float = 1e-4) -> Tensor:
    """Mixing coefficients ``[D]`` whose KAF fits ``target`` on the dictionary, in float64.

    Solves ``(K + ridge I) alpha = target(grid)`` with ``K_ab = exp(-gamma (d_a - d_b)^2)``
    (kernel ridge regression, as in the released KAF code; ridge 1e-4 there too). Float64
    because ``K`` is badly conditioned and ``alpha`` reaches tens (about 38 for the identity
    with D=20, boundary 4).
    """
    d = grid.detach().to("cpu", torch.float64)
    gram = torch.exp(-gamma * (d[:, None] - d[None, :]) ** 2)
    return torch.linalg.solve(gram + ridge * torch.eye(len(d), dtype=torch.float64), target(d))


# exp(-80) ~ 1.8e-35 is still a normal float32: capping the exponent there keeps exp and what
# follows off the slow underflow / denormal paths of x86 CPUs and changes nothing visible.
_MIN_EXPONENT = -80.0


def gaussian_kernel(s: Tensor, grid: Tensor, gamma: float) -> Tensor:
    """``exp(-gamma (s - grid_d)^2)`` for every dictionary point: ``[*s.shape, D]``."""
    diff = s.unsqueeze(-1) - grid
    return torch.exp((-gamma * diff * diff).clamp(min=_MIN_EXPONENT))


class KAF(nn.Module):
    """Kernel activation function applied element-wise to ``num_features`` units.

    ``KAF_n(s) = sum_d alpha[n, d] * exp(-gamma (s - grid_d)^2)`` with a fixed dictionary
    ``grid = linspace(-boundary, boundary, dict_size)`` shared by all units, learned ``alpha``
    per unit (the released code's layout), and the bandwidth rule of the released code: kernel
    standard deviation ``bandwidth * Delta`` (``Delta`` the grid spacing), i.e.
    ``gamma = 1 / (2 (bandwidth Delta)^2)``; the default ``bandwidth=2`` gives
    ``gamma = 1/(8 Delta^2)``. (The KAFnets journal paper quotes ``1/(6 Delta^2)``,
    ``bandwidth = sqrt(3)``.)

    Two evaluations of the same function:

    * ``kaf(s)``: the exact kernel sum (plain autograd; cost and memory ``O(D)`` per element).
    * ``fn = kaf.tabulate(); fn(s)``: for recurrent loops. Each unit's function (and its
      derivative) is tabulated once on a grid of spacing ``kernel_std / 16`` that spans the
      dictionary plus 8 kernel standard deviations (beyond which the KAF is below 1e-13), and
      evaluated by cubic Hermite interpolation: ``O(1)`` per element, only the input saved for
      backward. It matches the exact sum to about 1e-6 in value and 1e-4 in slope (relative to
      the size of ``alpha``), and gradients reach ``alpha`` through the tables. Per step this
      costs a few ``[B, N]`` operations instead of ``[B, N, D]`` ones.

    Args:
        num_features: number of units ``N`` (each has its own ``alpha``).
        dict_size: dictionary size ``D`` (>= 2).
        boundary: the dictionary spans ``[-boundary, boundary]``.
        init: ``"identity"``: kernel ridge regression so that ``KAF(s) ~ s`` on the dictionary
            range (computed in float64); ``"random"``: ``alpha ~ N(0, 0.8^2)`` (the released code).
        bandwidth: kernel standard deviation in grid spacings.
        ridge: the ridge term of the identity fit.
    """

    def __init__(
        self,
        num_features: int,
        dict_size: int = 20,
        boundary: float = 4.0,
        init: str = "identity",
        bandwidth: float = 2.0,
        ridge: float = 1e-4,
    ) -> None:
        super().__init__()
        self.num_features = check_int("num_features", num_features, low=1)
        self.dict_size = check_int("dict_size", dict_size, low=2)
        self.boundary = check_float("boundary", boundary, low=0.0)
        if self.boundary <= 0:
            raise ValueError(f"boundary={boundary!r} must be > 0")
        self.init = check_choice("kaf_init", init, KAF_INITS)
        self.bandwidth = check_float("bandwidth", bandwidth, low=0.0)
        if self.bandwidth <= 0:
            raise ValueError(f"bandwidth={bandwidth!r} must be > 0 (kernel width in grid spacings)")
        self.ridge = check_float("ridge", ridge, low=0.0)
        grid = torch.linspace(-self.boundary, self.boundary, self.dict_size, dtype=torch.float64)
        self.kernel_std = self.bandwidth * 2 * self.boundary / (self.dict_size - 1)
        self.gamma = 1.0 / (2.0 * self.kernel_std**2)
        self.register_buffer("grid", grid.float())
        # Interpolation table: nodes lo + g * step, g = 0..num_nodes-1, symmetric about 0.
        reach = self.boundary + 8.0 * self.kernel_std
        self.num_nodes = math.ceil(2 * reach / (self.kernel_std / 16)) + 1
        self.table_lo, self.table_step = -reach, 2 * reach / (self.num_nodes - 1)
        if self.init == "identity":
            alpha = kernel_ridge_alpha(grid, self.gamma, lambda d: d, self.ridge).float().expand(self.num_features, -1)
        else:
            alpha = 0.8 * torch.randn(self.num_features, self.dict_size)
        self.alpha = nn.Parameter(alpha.clone())
        self._basis: dict[tuple[torch.dtype, torch.device], Tensor] = {}  # see table_basis

    def reset_alpha(self) -> None:
        """Re-run the identity fit in float64 and store it in ``alpha``'s dtype (use after
        ``.double()`` for full float64 precision; no-op for ``init="random"``)."""
        if self.init == "identity":
            with torch.no_grad():
                a = kernel_ridge_alpha(self.grid, self.gamma, lambda d: d, self.ridge)
                self.alpha.copy_(a.to(self.alpha.dtype).expand_as(self.alpha))

    def forward(self, s: Tensor) -> Tensor:
        """Exact ``s [..., N] -> KAF(s) [..., N]``."""
        return (gaussian_kernel(s, self.grid.to(s.dtype), self.gamma) * self.alpha).sum(-1)

    def tabulate(self) -> TabulatedKAF:
        """The interpolated KAF for the current ``alpha`` (build it once per forward)."""
        basis = self.table_basis(self.alpha.dtype, self.alpha.device)
        buffer = self.alpha.new_zeros(4, self.num_features, basis.shape[2])
        table, token = Tabulate.apply(self.alpha, basis, buffer)
        return TabulatedKAF(table, token, buffer, self.table_lo, self.table_step)

    def table_basis(self, dtype: torch.dtype, device: torch.device) -> Tensor:
        """``[4, D, rows]``: the cubic table of each single kernel ``exp(-gamma (s - grid_d)^2)``,
        computed in float64 and kept per dtype and device (it depends on the hyper-parameters
        only). Row ``j`` holds the cubic Hermite interpolant on ``[node j-1, node j]`` in the
        local coordinate ``t in [0, 1)``, from the kernel's values and slopes at both nodes; the
        first and last rows are zero (the function outside the table)."""
        key = (dtype, torch.device(device))
        if key not in self._basis:
            nodes = self.table_lo + self.table_step * torch.arange(self.num_nodes, dtype=torch.float64)
            grid = self.grid.to('cpu', torch.float64)  # the dictionary forward() uses
            kernel = gaussian_kernel(nodes, grid, self.gamma).t()  # [D, G]
            slopes = kernel * (nodes - grid.unsqueeze(-1)) * (-2.0 * self.gamma * self.table_step)  # per unit t
            v0, v1, m0, m1 = kernel[:, :-1], kernel[:, 1:], slopes[:, :-1], slopes[:, 1:]
            cubic = torch.stack([v0, m0, 3 * (v1 - v0) - 2 * m0 - m1, 2 * (v0 - v1) + m0 + m1])  # [4, D, G-1]
            self._basis[key] = F.pad(cubic, (1, 1)).to(device=device, dtype=dtype)
        return self._basis[key]

    def extra_repr(self) -> str:
        return (
            f"num_features={self.num_features}, dict_size={self.dict_size}, boundary={self.boundary}, "
            f"init={self.init!r}, gamma={self.gamma:.4g}"
        )


def flexible_gate(kaf: Callable[[Tensor], Tensor], s: Tensor) -> Tensor:
    """The flexible gate ``sigmoid(KAF(s)/2 + s/2)``: a sigmoid at identity init, in (0, 1) always.

    ``kaf`` is a :class:`KAF` (exact) or the function returned by :meth:`KAF.tabulate`.
    """
    return torch.sigmoid(0.5 * (kaf(s) + s))


class _KAFCell(RecurrentCell):
    """Shared parts: ``nn.LSTM``/``nn.GRU`` parameter layout, the initialisation of the cell it
    modifies (:meth:`_init_gates`), KAF on the gate units."""

    num_chunks = 4
    num_flexible = 3

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        dict_size: int = 20,
        boundary: float = 4.0,
        kaf_init: str = "identity",
        bandwidth: float = 2.0,
        init: str = "default",
        t_max: float | None = None,
        weight_init: str = "uniform",
    ) -> None:
        super().__init__(input_size, hidden_size)
        self.init = check_choice("init", init, GATE_INITS)
        self.t_max = check_chrono_t_max(init, t_max)
        self.weight_init = check_choice("weight_init", weight_init, WEIGHT_INITS)
        H, n = self.hidden_size, self.num_chunks
        self.weight_ih = nn.Parameter(torch.empty(n * H, self.input_size))
        self.weight_hh = nn.Parameter(torch.empty(n * H, H))
        self.bias_ih = nn.Parameter(torch.empty(n * H))
        self.bias_hh = nn.Parameter(torch.empty(n * H))
        self._init_gates()
        self.kaf = KAF(self.num_flexible * H, dict_size, boundary, kaf_init, bandwidth)

    def _init_gates(self) -> None:
        """Draw the gate parameters as the plain cell does (same seed, same values)."""
        raise NotImplementedError

    def forward(self, inputs: Tensor, state=None, resets: Tensor | None = None):
        """The shared contract (see :mod:`agents.cells.base`), with the input projection of all
        steps done in one matmul and the KAF tables built once per call."""
        check_inputs(self, inputs, resets)
        weight_ih, bias, weight_hh = self._weights()
        kaf = self.kaf.tabulate()
        # The base class's reset-aware loop over the input projection of all steps (one matmul).
        return self._loop(F.linear(inputs, weight_ih, bias), state, resets,
                          step=lambda proj, st: self._update(proj, st, kaf, weight_hh))

    def step(self, x: Tensor, state):
        weight_ih, bias, weight_hh = self._weights()
        return self._update(F.linear(x, weight_ih, bias), state, self.kaf.tabulate(), weight_hh)

    def _weights(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(weight_ih, input bias, weight_hh)`` as the update uses them (the input bias is
        ``bias_ih``: the GRU needs ``bias_hh`` inside its update)."""
        return self.weight_ih, self.bias_ih, self.weight_hh

    def extra_repr(self) -> str:
        k = self.kaf
        return f"{super().extra_repr()}, dict_size={k.dict_size}, boundary={k.boundary}, kaf_init={k.init!r}"


class KAFLSTMCell(_KAFCell):
    """LSTM whose input, forget and output gates are flexible KAF gates (docs/kaf.md#flexible-gate).

    ``i, f, o = sigmoid(KAF(s)/2 + s/2)`` with ``s`` the usual pre-activations, one KAF unit per
    gate and hidden unit; the candidate keeps ``tanh``. Parameters use ``nn.LSTM``'s layout and
    init (``weight_ih [4H, I]``, ``weight_hh``, ``bias_ih``, ``bias_hh``; order i, f, g, o), so
    weights copy to and from ``nn.LSTM``; with ``kaf_init="identity"`` the cell then equals
    ``nn.LSTM`` at init up to the KRR fit error (gate error below 1e-4 on [-3, 3] with the
    defaults). State ``(h, c)``, zeros at an episode start.

    Args:
        input_size, hidden_size: as for every cell.
        dict_size: KAF dictionary size D (default 20, the KAF code's default).
        boundary: dictionary range [-boundary, boundary] (default 4.0, the current KAF code's
            default; it covers the non-saturated part of the sigmoid; the paper's range is [U]).
        kaf_init: ``"identity"`` (default: kernel ridge regression to the identity in float64,
            so every gate starts as a plain sigmoid and training starts from the LSTM) or
            ``"random"`` (``alpha ~ N(0, 0.8^2)``, the KAF code's random init).
        bandwidth: kernel width in grid spacings; ``gamma = 1/(2 (bandwidth Delta)^2)``,
            default 2 -> ``1/(8 Delta^2)`` as in the released KAF code.
        forget_bias, init, t_max, weight_init: the LSTM's initialisation, with the ``lstm`` cell's options and
            defaults (forget bias 1.0 on ``bias_ih``, other biases 0; or chrono biases), by the
            same rule (:func:`agents.init.init_lstm_`): the KAF-LSTM starts from the LSTM it is
            compared with, and only the gates differ.

    Which gates are flexible and the 1/2 weights are recalled, not verified ((unverified)/[U]).
    """

    num_chunks = 4
    num_flexible = 3

    def __init__(self, input_size: int, hidden_size: int, dict_size: int = 20, boundary: float = 4.0,
                 kaf_init: str = "identity", bandwidth: float = 2.0, forget_bias: float | None = 1.0,
                 init: str = "default", t_max: float | None = None, weight_init: str = "uniform") -> None:
        # Set before the base class draws the gates (_init_gates reads it).
        self.forget_bias = None if forget_bias is None else check_float("forget_bias", forget_bias)
        super().__init__(input_size, hidden_size, dict_size, boundary, kaf_init, bandwidth, init, t_max, weight_init)

    @torch.no_grad()
    def _init_gates(self) -> None:
        init_lstm_(self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh,
                   forget_bias=self.forget_bias, init=self.init, t_max=self.t_max, weight_init=self.weight_init)

    def forward(self, inputs: Tensor, state=None, resets: Tensor | None = None):
        """The shared contract (see :mod:`agents.cells.base`): the whole sequence as one autograd
        node (:class:`agents.cells.lstm_sequence.LSTMSequence` with the KAF in the gates)."""
        check_inputs(self, inputs, resets)
        h, c = self.initial_state(inputs.shape[1], inputs.device) if state is None else state
        if inputs.shape[0] == 0:
            return inputs.new_empty(0, inputs.shape[1], self.hidden_size), (h, c)
        kaf = self.kaf.tabulate()
        out, c = run_lstm_sequence(self, inputs, h, c, resets, phi=kaf, token=kaf.token)
        return out, (out[-1], c)

    def step(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        out, state = self.forward(x.unsqueeze(0), state)
        return out[0], state

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
        """``(h, c)``: zeros ``[B, hidden_size]``."""
        zeros = torch.zeros(batch_size, self.hidden_size, device=device, dtype=self.dtype)
        return zeros, zeros.clone()


class KAFGRUCell(_KAFCell):
    """GRU whose update (z) and reset (r) gates are flexible KAF gates (docs/kaf.md#flexible-gate).

    ``nn.GRU`` equations, layout and init (``weight_ih [3H, I]``, order r, z, n)::

        r, z = sigmoid(KAF(s)/2 + s/2),  n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h'   = (1 - z) * n + z * h

    With ``kaf_init="identity"`` it equals ``nn.GRU`` at init up to the KRR fit error. State
    ``h``, zeros at an episode start. Arguments as for :class:`KAFLSTMCell`, without
    ``forget_bias``: ``init``/``t_max`` as for the ``gru`` cell (all biases 0, or the chrono
    keep-gate bias; :func:`agents.init.init_gru_`).
    """

    num_chunks = 3
    num_flexible = 2

    @torch.no_grad()
    def _init_gates(self) -> None:
        init_gru_(self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, init=self.init, t_max=self.t_max,
                  weight_init=self.weight_init)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> Tensor:
        """``h``: zeros ``[B, hidden_size]``."""
        return torch.zeros(batch_size, self.hidden_size, device=device, dtype=self.dtype)

    def _update(self, proj: Tensor, h: Tensor, kaf: TabulatedKAF, weight_hh: Tensor) -> tuple[Tensor, Tensor]:
        h = KAFGRUGates.apply(proj, torch.addmm(self.bias_hh, h, weight_hh.t()), h, kaf, kaf.token)
        return h, h

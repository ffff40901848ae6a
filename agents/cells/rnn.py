"""Plain (Elman) RNN cell (the NRU paper's RNN-orth and RNN-id baselines) and the chrono paper's
leaky and gated RNNs."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from agents.cells.base import State
from agents.cells.fused import FusedCell
from agents.cells.gate_candidate import GateCandidateCell
from memenvs.core import check_bool, check_choice, check_float


class RNNCell(FusedCell):
    """Elman RNN: ``h' = act(LN(W x + b_ih + U h + b_hh))``.

    ``act`` is tanh or ReLU; ``LN`` is an optional LayerNorm (with its own gain and bias) on the
    pre-activation, as in all plain-RNN baselines of the NRU paper (docs/nru.md#experiments-and-settings, pitfall 10).
    The parameters live in ``self.rnn``, an ``nn.RNN`` (``weight_ih``, ``weight_hh``,
    ``bias_ih``, ``bias_hh`` point at them): without LayerNorm every forward runs PyTorch's fused
    kernel (in one call, resets included, for ReLU; tanh is cut where some sample resets, see
    :func:`agents.cells.fused.run_fused`); with LayerNorm a per-step loop runs, with ``x W_ih``
    computed for all steps in one matmul.

    State: ``h`` ``[B, hidden_size]``, zeros at an episode start.

    Args:
        input_size: features per input step.
        hidden_size: units H.
        nonlinearity: ``"tanh"`` (default, as ``nn.RNN``) or ``"relu"`` (the NRU baselines).
        recurrent_init: ``"orthogonal"`` (default; RNN-orth: a random orthogonal ``U`` keeps the
            norm of the linear recurrence), ``"identity"`` (RNN-id / IRNN of Le et al. 2015:
            ``U = I``), or ``"default"`` (``nn.RNN``'s own init, biases included). With
            ``"orthogonal"`` and ``"identity"`` both bias vectors start at 0; ``W`` always keeps
            ``nn.RNN``'s uniform ±1/sqrt(H).
        layer_norm: LayerNorm on the pre-activation (default False, as ``nn.RNN``; the NRU paper's
            RNN baselines set it with ``nonlinearity="relu"``).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        nonlinearity: str = "tanh",
        recurrent_init: str = "orthogonal",
        layer_norm: bool = False,
    ) -> None:
        super().__init__(input_size, hidden_size)
        self.nonlinearity = check_choice("nonlinearity", nonlinearity, ("tanh", "relu"))
        self.recurrent_init = check_choice("recurrent_init", recurrent_init, ("orthogonal", "identity", "default"))
        self.layer_norm = check_bool("layer_norm", layer_norm)
        self.rnn = nn.RNN(input_size, hidden_size, nonlinearity=nonlinearity)
        self.norm = nn.LayerNorm(hidden_size) if layer_norm else None
        self.act = torch.tanh if nonlinearity == "tanh" else torch.relu
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Re-draw all parameters as described in the class docstring."""
        self.rnn.reset_parameters()
        if self.norm is not None:
            self.norm.reset_parameters()
        if self.recurrent_init == "default":
            return
        self.bias_ih.zero_()
        self.bias_hh.zero_()
        if self.recurrent_init == "orthogonal":
            nn.init.orthogonal_(self.weight_hh)
        else:
            self.weight_hh.copy_(torch.eye(self.hidden_size))

    @property
    def fused(self) -> bool:
        """LayerNorm has no fused kernel: it runs the per-step loop."""
        return self.norm is None

    def _step_projected(self, xw: Tensor, h: Tensor) -> tuple[Tensor, State]:
        pre = torch.addmm(xw, h, self.weight_hh.t())
        if self.norm is not None:
            pre = self.norm(pre)
        h = self.act(pre)
        return h, h

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, nonlinearity={self.nonlinearity!r}, "
            f"recurrent_init={self.recurrent_init!r}, layer_norm={self.layer_norm}"
        )


class LeakyRNNCell(RNNCell):
    """Leaky RNN of the chrono paper's warping study (Tallec & Ollivier 2018, docs/chrono.md#the-chrono-rule):
    ``h' = a * act(LN(W x + b_ih + U h + b_hh)) + (1 - a) * h`` with a learned leak ``a`` per unit.

    A leak ``a`` makes the unit a first-order filter with time constant ``1 / a`` steps, which is
    what time-warping the input by a factor ``c`` requires (``a = 1 / c``). The leak is
    ``a = sigmoid(leak_logit)``, so it stays in (0, 1) while it learns; ``leak_logit = +inf``
    gives ``a = 1`` exactly, the plain :class:`RNNCell`.

    Args:
        input_size, hidden_size, nonlinearity, recurrent_init, layer_norm: as :class:`RNNCell`
            (defaults tanh, orthogonal ``U``, no LayerNorm: the chrono paper's RNNs use tanh).
        max_warp: largest time-warping factor expected in the data (>= 1, default 10, the
            smallest maximum warp of the paper's study). Each unit starts with ``a = 1 / c``,
            ``c ~ U[1, max_warp]``: time constants spread over the warps a variable-warping
            task draws (``r ~ U{1..max_warp}``). The reproduction draws ``a ~ U[1/max_warp,
            1/10]`` instead (docs/chrono.md#pitfalls item 6), which leaves out fast units.

    Always runs the per-step loop (the leak has no fused kernel), ``x W_ih`` precomputed.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        nonlinearity: str = "tanh",
        recurrent_init: str = "orthogonal",
        layer_norm: bool = False,
        max_warp: float = 10.0,
    ) -> None:
        self.max_warp = check_float("max_warp", max_warp, low=1)
        self.leak_logit = None
        super().__init__(input_size, hidden_size, nonlinearity, recurrent_init, layer_norm)
        self.leak_logit = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Re-draw all parameters as described in the class docstring."""
        super().reset_parameters()
        if self.leak_logit is not None:
            leak = 1.0 / torch.empty(self.hidden_size, dtype=torch.float64).uniform_(1.0, self.max_warp)
            self.leak_logit.copy_(torch.logit(leak))  # leak 1 (warp 1) maps to +inf: plain RNN

    @property
    def leak(self) -> Tensor:
        """The per-unit leak ``a`` in (0, 1]."""
        return torch.sigmoid(self.leak_logit)

    @property
    def fused(self) -> bool:
        """The leak has no fused kernel: always the per-step loop."""
        return False

    def _step_projected(self, xw: Tensor, h: Tensor) -> tuple[Tensor, State]:
        new, _ = super()._step_projected(xw, h)
        h = h + self.leak * (new - h)
        return h, h

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, max_warp={self.max_warp}"


class GatedRNNCell(GateCandidateCell):
    """Gated RNN of the chrono paper (Tallec & Ollivier 2018, docs/chrono.md#the-chrono-rule): one learned gate
    decides, per unit and step, how much of the new candidate enters the state.

    Equations (gate order g, candidate)::

        g  = sigmoid(W_g x + U_g h + b_g)
        h' = g * tanh(W_c x + U_c h + b_c) + (1 - g) * h

    The gate is an input-dependent leak: invariance to arbitrary time warping requires it.
    Chrono initialisation (the method's): ``b_g = -log(U[1, t_max - 1])`` (minus, because ``g``
    weights the *new* value; time constant ``1/g = 1 + exp(-b_g)`` in ``[2, t_max]``),
    ``b_c = 0``; weights uniform ±1/sqrt(H) as ``nn.RNN``. With the gate forced open (``g = 1``)
    this is the tanh :class:`RNNCell`.

    Args:
        input_size: features per input step.
        hidden_size: units H.
        t_max: longest chrono time constant in steps (>= 2). Default 10 = the smallest maximum
            warp of the paper's warping study, where ``t_max = max_warp`` (docs/chrono.md#pitfalls item 6);
            set it to the dependency length of your data.

    Runs the per-step loop with ``x W`` precomputed. State: ``h`` ``[B, H]``, zeros at a start.
    """

    gate_keeps_state = False  # g lets the new value in

    def __init__(self, input_size: int, hidden_size: int, t_max: float = 10.0) -> None:
        super().__init__(input_size, hidden_size, t_max)

    def _step_projected(self, xw: Tensor, h: Tensor) -> tuple[Tensor, State]:
        s_g, s_c = torch.addmm(xw, h, self.weight_hh.t()).chunk(2, 1)
        h = h + torch.sigmoid(s_g) * (torch.tanh(s_c) - h)
        return h, h

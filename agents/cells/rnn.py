"""Plain (Elman) RNN cell: the RNN-orth and RNN-id (IRNN) baselines of the NRU paper."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agents.cells.base import RecurrentCell, State, check_inputs
from agents.cells.lstm import run_fused
from memenvs.core import check_bool, check_choice


class RNNCell(RecurrentCell):
    """Elman RNN: ``h' = act(LN(W x + b_ih + U h + b_hh))``.

    ``act`` is tanh or ReLU; ``LN`` is an optional LayerNorm (with its own gain and bias) on the
    pre-activation, as in all plain-RNN baselines of the NRU paper (PAPERS §2.5, pitfall 10).
    The parameters live in ``self.rnn``, an ``nn.RNN`` (``weight_ih``, ``weight_hh``,
    ``bias_ih``, ``bias_hh`` point at them): without LayerNorm every forward runs PyTorch's fused
    kernel, cut only where some sample resets; with LayerNorm a per-step loop runs, with ``x W_ih``
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

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        return torch.zeros(batch_size, self.hidden_size, device=device or self.device, dtype=self.dtype)

    def forward(self, inputs: Tensor, state: State | None = None, resets: Tensor | None = None) -> tuple[Tensor, State]:
        check_inputs(self, inputs, resets)
        if state is None:
            state = self.initial_state(inputs.shape[1], inputs.device)
        if self.norm is None:
            initial = self.initial_state(inputs.shape[1], inputs.device) if resets is not None else None
            return run_fused(self.rnn, inputs, state, resets, initial)
        return self.loop(inputs, state, resets)

    def loop(self, inputs: Tensor, state: State | None = None, resets: Tensor | None = None) -> tuple[Tensor, State]:
        """The per-step path (same contract as ``forward``); ``forward`` uses it for LayerNorm."""
        check_inputs(self, inputs, resets)
        return self._loop(self._project(inputs), state, resets, step=self._step_projected)

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        return self._step_projected(self._project(x), state)

    def _project(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih + self.bias_hh)

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

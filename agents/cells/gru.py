"""GRU cell on PyTorch's fused kernel, with an optional chrono initialisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agents.cells.base import State
from agents.cells.fused import FusedCell, check_chrono_t_max
from agents.init import GATE_INITS, WEIGHT_INITS, chrono_init, init_gru_
from memenvs.core import check_choice


class GRUCell(FusedCell):
    """Gated recurrent unit (Cho et al. 2014) in PyTorch's convention.

    Equations (gate order r, z, n as in ``nn.GRU``)::

        r = sigmoid(W_r x + b_ir + U_r h + b_hr)
        z = sigmoid(W_z x + b_iz + U_z h + b_hz)
        n = tanh(W_n x + b_in + r * (U_n h + b_hn))
        h' = (1 - z) * n + z * h

    ``z`` is the *keep* gate: a unit with ``z`` near 1 holds its state. The parameters live in
    ``self.rnn``, an ``nn.GRU`` (``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh`` point at
    them), so every forward runs PyTorch's fused kernel (cuDNN on GPU) in one call, resets
    included (:func:`agents.cells.fused.run_fused`). :meth:`loop` runs the same math per
    step; ``step`` advances one time step.

    State: ``h`` ``[B, hidden_size]``, zeros at an episode start.

    Args:
        input_size: features per input step.
        hidden_size: units H.
        init: ``"default"``: ``nn.GRU``'s uniform ±1/sqrt(H) weights and all biases 0 (the NRU
            paper's GRU baseline, docs/nru.md#experiments-and-settings); ``"chrono"``: the same weights and
            ``b_iz = log(U[1, t_max - 1])``, every other bias 0 (:func:`agents.init.chrono_init`;
            the sign is + because ``z`` keeps the state, docs/chrono.md#the-chrono-rule).
        t_max: longest time constant for ``init="chrono"``, in time steps, >= 2; required then.
        weight_init: ``"uniform"`` (default: ``nn.GRU``'s draw) or ``"xavier"`` (Xavier-normal
            input and orthogonal recurrent weights, the NRU reference code's baselines;
            :data:`agents.init.WEIGHT_INITS`).
    """

    def __init__(self, input_size: int, hidden_size: int, init: str = "default", t_max: float | None = None,
                 weight_init: str = "uniform") -> None:
        super().__init__(input_size, hidden_size)
        self.init = check_choice("init", init, GATE_INITS)
        self.t_max = check_chrono_t_max(init, t_max)
        self.weight_init = check_choice("weight_init", weight_init, WEIGHT_INITS)
        self.rnn = nn.GRU(input_size, hidden_size, device="meta").to_empty(device="cpu")  # drawn once, below
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Re-draw all parameters as described in the class docstring."""
        init_gru_(self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, init=self.init, t_max=self.t_max,
                  weight_init=self.weight_init)

    def chrono_init_(self, t_max: float, generator: torch.Generator | None = None) -> None:
        """Chrono keep-gate bias (:func:`agents.init.chrono_init` on the ``nn.GRU``)."""
        chrono_init(self.rnn, t_max, generator)

    def _project(self, x: Tensor) -> Tensor:
        """``x W_ih^T + b_ih`` (``b_hn`` sits inside the reset gate's product, so ``b_hh`` stays out)."""
        return F.linear(x, self.weight_ih, self.bias_ih)

    def _step_projected(self, xw: Tensor, h: Tensor) -> tuple[Tensor, State]:
        hw = F.linear(h, self.weight_hh, self.bias_hh)
        x_r, x_z, x_n = xw.chunk(3, 1)
        h_r, h_z, h_n = hw.chunk(3, 1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h = n + z * (h - n)
        return h, h

    def extra_repr(self) -> str:
        text = f"{super().extra_repr()}, init={self.init!r}"
        return text + (f", t_max={self.t_max}" if self.init == "chrono" else "")

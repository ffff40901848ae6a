"""Initialisers for recurrent layers: chrono initialisation (Tallec & Ollivier, ICLR 2018).

A gate value ``g`` held constant keeps a fraction ``g`` of the state per step, so the state forgets
with the characteristic time ``1 / (1 - g)`` steps. The chrono rule spreads these times over
``[2, t_max]`` at initialisation by drawing the gate biases from a log-uniform law:

* LSTM (gate order i, f, g, o):  ``b_f = log(U[1, t_max - 1])``, ``b_i = -b_f``, all other biases 0
  (then ``1 / (1 - sigmoid(b_f)) = 1 + exp(b_f)`` lies in ``[2, t_max]``);
* GRU as in PyTorch (gate order r, z, n; ``h' = (1 - z) * n + z * h``, so ``z`` is the *keep*
  gate): ``b_z = +log(U[1, t_max - 1])``, all other biases 0;
* JANET (forget gate only, ``h' = f * h + (1 - f) * tanh(...)``): ``b_f = log(U[1, t_max - 1])``;
* gated RNN (``h' = g * tanh(...) + (1 - g) * h``, ``g`` lets new values in):
  ``b_g = -log(U[1, t_max - 1])``.

PyTorch's recurrent layers add two bias vectors (``bias_ih`` and ``bias_hh``); the chrono biases
go on ``bias_ih`` and ``bias_hh`` is zeroed, so the sum is exactly the drawn value (filling both
would double it). The law is the continuous ``U[1, t_max - 1]`` of the chrono paper, not the integer
draw of the NRU code (PAPERS §3.6). ``t_max`` is a number of time steps *as fed to the network*:
the longest dependency expected (e.g. ``3T/2`` for the copy task with delay T, ``T`` for variable
copy; NRU's runs use ``T + 20``).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

__all__ = ["chrono_bias", "chrono_init"]


def chrono_bias(hidden_size: int, t_max: float, generator: torch.Generator | None = None) -> Tensor:
    """``log(U[1, t_max - 1])`` for ``hidden_size`` units, in float64 on the CPU.

    Raises:
        ValueError: if ``t_max < 2`` (the shortest time constant of the rule is 2 steps).
    """
    if isinstance(t_max, bool) or not isinstance(t_max, (int, float)) or not t_max >= 2:
        raise ValueError(f"t_max={t_max!r} must be a number of time steps >= 2")
    u = torch.empty(hidden_size, dtype=torch.float64).uniform_(1.0, float(t_max) - 1.0, generator=generator)
    return torch.log(u)


def _bias_pairs(module: nn.Module) -> Iterator[tuple[Tensor, Tensor, int]]:
    """``(bias_ih, bias_hh, hidden_size)`` of every layer and direction of a PyTorch RNN."""
    if isinstance(module, nn.RNNBase):
        if not module.bias:
            raise ValueError(f"chrono_init needs biases: {type(module).__name__} was built with bias=False")
        suffixes = ["", "_reverse"] if module.bidirectional else [""]
        for layer in range(module.num_layers):
            for suffix in suffixes:
                yield (
                    getattr(module, f"bias_ih_l{layer}{suffix}"),
                    getattr(module, f"bias_hh_l{layer}{suffix}"),
                    module.hidden_size,
                )
    elif isinstance(module, nn.RNNCellBase):
        if not module.bias:
            raise ValueError(f"chrono_init needs biases: {type(module).__name__} was built with bias=False")
        yield module.bias_ih, module.bias_hh, module.hidden_size


@torch.no_grad()
def chrono_init(module: nn.Module, t_max: float, generator: torch.Generator | None = None) -> nn.Module:
    """Chrono-initialise the gate biases of ``module`` in place and return it.

    Works on this package's ``lstm``, ``gru``, ``janet`` and ``gated-rnn`` cells, on ``nn.LSTM`` /
    ``nn.GRU`` (every layer and both directions) and on ``nn.LSTMCell`` / ``nn.GRUCell``. Weights
    are left as they are.

    Args:
        module: the layer to initialise.
        t_max: the longest time constant, in time steps (>= 2).
        generator: optional ``torch.Generator`` for a reproducible draw.

    Raises:
        ValueError: for an unsupported module, a layer without biases, or ``t_max < 2``.
    """
    from agents.cells.gru import GRUCell
    from agents.cells.janet import JANETCell
    from agents.cells.lstm import LSTMCell
    from agents.cells.rnn import GatedRNNCell

    if isinstance(module, (LSTMCell, GRUCell)):
        target: nn.Module = module.rnn
    elif isinstance(module, (JANETCell, GatedRNNCell)):
        h = module.hidden_size
        b = chrono_bias(h, t_max, generator)
        module.bias.zero_()
        # Gate order (gate, candidate); JANET's f keeps the state, the gated RNN's g lets new in.
        module.bias[:h] = (b if isinstance(module, JANETCell) else -b).to(module.bias)
        return module
    else:
        target = module
    if isinstance(target, (nn.LSTM, nn.LSTMCell)):
        kind = "lstm"
    elif isinstance(target, (nn.GRU, nn.GRUCell)):
        kind = "gru"
    else:
        allowed = "the lstm/gru/janet/gated-rnn cells, nn.LSTM, nn.GRU, nn.LSTMCell, nn.GRUCell"
        raise ValueError(f"chrono_init does not support {type(module).__name__}: allowed are {allowed}")
    for bias_ih, bias_hh, h in _bias_pairs(target):
        b = chrono_bias(h, t_max, generator).to(bias_ih)
        bias_ih.zero_()
        bias_hh.zero_()
        if kind == "lstm":  # gate order i, f, g, o
            bias_ih[h : 2 * h] = b
            bias_ih[:h] = -b
        else:  # gate order r, z, n; z keeps the old state
            bias_ih[h : 2 * h] = b
    return module

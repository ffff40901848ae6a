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
draw of the NRU code (docs/chrono.md#pitfalls). ``t_max`` is a number of time steps *as fed to the network*:
the longest dependency expected (e.g. ``3T/2`` for the copy task with delay T, ``T`` for variable
copy; NRU's runs use ``T + 20``).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

__all__ = ["GATE_INITS", "WEIGHT_INITS", "chrono_bias", "chrono_init", "init_gru_", "init_lstm_"]

GATE_INITS = ("default", "chrono")
#: Weight draws: ``nn.LSTM``/``nn.GRU``'s uniform ±1/sqrt(H), or the NRU reference code's baselines'
#: Xavier-normal input weights with orthogonal recurrent weights (one orthogonal block per gate).
WEIGHT_INITS = ("uniform", "xavier")


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


def _chrono_lstm_biases(bias_ih: Tensor, bias_hh: Tensor, h: int, t_max: float, generator=None) -> None:
    """LSTM gate order i, f, g, o: ``b_f = log(U[1, t_max - 1])``, ``b_i = -b_f``, others 0."""
    b = chrono_bias(h, t_max, generator).to(bias_ih)
    bias_ih.zero_()
    bias_hh.zero_()
    bias_ih[h : 2 * h] = b
    bias_ih[:h] = -b


def _chrono_gru_biases(bias_ih: Tensor, bias_hh: Tensor, h: int, t_max: float, generator=None) -> None:
    """GRU gate order r, z, n (``z`` keeps the state): ``b_z = log(U[1, t_max - 1])``, others 0."""
    b = chrono_bias(h, t_max, generator).to(bias_ih)
    bias_ih.zero_()
    bias_hh.zero_()
    bias_ih[h : 2 * h] = b


def _draw_(weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor, bias_hh: Tensor, weight_init: str) -> None:
    """``nn.LSTM``/``nn.GRU``'s draw (every tensor uniform in ±1/sqrt(H), in the argument order),
    then with ``weight_init="xavier"`` the weights redrawn: ``weight_ih`` Xavier-normal and each
    gate's ``[H, H]`` block of ``weight_hh`` orthogonal. (Whether the NRU code draws one
    orthogonal matrix per gate or one for the stacked gates is not verified; per gate keeps
    every gate's recurrent map norm-preserving.)"""
    if weight_init not in WEIGHT_INITS:
        raise ValueError(f"weight_init={weight_init!r} must be one of {', '.join(WEIGHT_INITS)}")
    h = weight_hh.shape[1]
    bound = h**-0.5
    for p in (weight_ih, weight_hh, bias_ih, bias_hh):
        p.uniform_(-bound, bound)
    if weight_init == "xavier":
        nn.init.xavier_normal_(weight_ih)
        for block in weight_hh.split(h):
            nn.init.orthogonal_(block)


def _draw_gates_(weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor, bias_hh: Tensor, weight_init: str, init: str,
                 t_max: float | None, chrono_biases) -> bool:
    """:func:`_draw_`, then with ``init="chrono"`` the family's ``chrono_biases``; True if it set
    them (the caller sets its default biases otherwise)."""
    if init not in GATE_INITS:
        raise ValueError(f"init={init!r} must be one of {', '.join(GATE_INITS)}")
    if init == "chrono" and t_max is None:
        raise ValueError("t_max=None: init='chrono' needs t_max, the longest time constant in steps (>= 2)")
    _draw_(weight_ih, weight_hh, bias_ih, bias_hh, weight_init)
    if init == "chrono":
        chrono_biases(bias_ih, bias_hh, weight_hh.shape[1], t_max)
    return init == "chrono"


@torch.no_grad()
def init_lstm_(
    weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor, bias_hh: Tensor, *,
    forget_bias: float | None = 1.0, init: str = "default", t_max: float | None = None, weight_init: str = "uniform",
) -> None:
    """Initialise an LSTM's gate parameters in place (``nn.LSTM`` layout, gate order i, f, g, o):
    the one rule every LSTM-family cell (``lstm``, ``kaf-lstm``, ``glstm``, ``plstm``) uses, so a
    variant starts from the same LSTM as its baseline.

    The weights and biases are drawn as ``nn.LSTM`` draws them (uniform ±1/sqrt(H), in the order
    of the arguments: the same seed gives the same values in every cell), the weights redrawn
    with ``weight_init="xavier"`` (see :data:`WEIGHT_INITS`). Then the biases:
    ``init="chrono"`` puts the chrono biases on ``bias_ih`` (see the module docstring; ``t_max``
    required); otherwise ``forget_bias`` goes on ``bias_ih``'s forget block and every other bias
    is 0 (``None`` keeps the uniform biases of ``nn.LSTM``).
    """
    chrono = _draw_gates_(weight_ih, weight_hh, bias_ih, bias_hh, weight_init, init, t_max, _chrono_lstm_biases)
    if not chrono and forget_bias is not None:
        h = weight_hh.shape[1]
        bias_ih.zero_()
        bias_hh.zero_()
        bias_ih[h : 2 * h] = forget_bias


@torch.no_grad()
def init_gru_(
    weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor, bias_hh: Tensor, *,
    init: str = "default", t_max: float | None = None, weight_init: str = "uniform",
) -> None:
    """Initialise a GRU's gate parameters in place (``nn.GRU`` layout, gate order r, z, n), the
    rule of ``gru`` and ``kaf-gru``: weights drawn as ``nn.GRU`` draws them (or ``weight_init``,
    as for :func:`init_lstm_`), then every bias 0
    (``init="default"``) or the chrono keep-gate bias (``init="chrono"``, ``t_max`` required)."""
    if not _draw_gates_(weight_ih, weight_hh, bias_ih, bias_hh, weight_init, init, t_max, _chrono_gru_biases):
        bias_ih.zero_()
        bias_hh.zero_()


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
    if isinstance(module, (nn.LSTM, nn.LSTMCell)):
        set_biases = _chrono_lstm_biases
    elif isinstance(module, (nn.GRU, nn.GRUCell)):
        set_biases = _chrono_gru_biases
    elif callable(getattr(module, "chrono_init_", None)):  # a cell: it lays out its own biases
        module.chrono_init_(t_max, generator)
        return module
    else:
        allowed = "nn.LSTM, nn.GRU, nn.LSTMCell, nn.GRUCell, or a cell with a chrono_init_ method (lstm, gru, janet, gated-rnn)"
        raise ValueError(f"chrono_init does not support {type(module).__name__}: allowed are {allowed}")
    for bias_ih, bias_hh, h in _bias_pairs(module):
        set_biases(bias_ih, bias_hh, h, t_max, generator)
    return module

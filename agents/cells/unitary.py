"""Orthogonal-transition baselines of the NRU paper: EURNN and GORU (docs/nru.md#baselines).

Both keep the recurrent matrix exactly orthogonal throughout training by parametrising it as a
product of Givens rotations (Jing et al. 2017, "Tunable Efficient Unitary Neural Networks"), so
the linear part of the recurrence neither explodes nor vanishes gradients. We use real
arithmetic (orthogonal rather than unitary matrices), which is also what the authors' GORU code
does and what their EURNN code does with ``comp=False``.

The parametrisation (:class:`GivensRotations`): ``U = R_L ... R_2 R_1`` where each layer ``R_l``
rotates disjoint pairs of units ``(i, j)`` by a learned angle ``theta``::

    h'_i = cos(theta) h_i - sin(theta) h_j
    h'_j = sin(theta) h_i + cos(theta) h_j          (units in no pair of the layer are kept)

Layouts (the two styles of the reference code, generalised to any hidden size):

* ``"tunable"``: ``capacity`` layers alternating between the pairs ``(0,1), (2,3), ...`` and
  ``(1,2), (3,4), ...``. ``capacity`` trades cost for expressiveness: ``N`` layers reach every
  rotation in SO(N); the reference default is 2. The reference code requires an even hidden size
  and an even capacity; here any size >= 1 and capacity >= 1 work.
* ``"fft"``: ``ceil(log2 N)`` butterfly layers pairing ``i`` with ``i + 2^k`` (FFT-like mixing of
  every unit with every other in log N layers). The reference code requires N a power of 2; for
  other sizes the units without a partner in a layer are kept.

Execution: the rotation layers cost ``O(L N)`` per step but ``2L`` small kernels; one explicit
``N x N`` product costs ``O(N^2)`` per step in one kernel. Each forward call picks the cheaper one
(:meth:`GivensRotations.operator`): below ``N = 200 L`` the matrix, materialised once per call
from the angles (``O(L N^2)``), wins (measured on CPU at batch 64: 7x faster at N=128, L=2;
the crossover lies near N=400 for L=2); above it (e.g. very wide, low-capacity EURNNs) the
layers are applied directly. Both give the same values and gradients.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from agents.cells.base import RecurrentCell, check_inputs
from memenvs.core import check_choice, check_int

LAYOUTS = ("tunable", "fft")


def modrelu(z: Tensor, bias: Tensor) -> Tensor:
    """modReLU for real inputs (Arjovsky et al. 2016): ``sign(z) * relu(|z| + bias)``.

    It keeps the sign (the real "phase") of each unit and shrinks or grows its magnitude by a
    learned bias, so with ``bias = 0`` it is the identity. The reference code adds a small
    ``eps`` to ``|z|`` because the complex version divides by it; real arithmetic needs none.
    """
    return torch.sign(z) * torch.relu(z.abs() + bias)


def rotation_pairs(size: int, layout: str, capacity: int) -> list[list[tuple[int, int]]]:
    """The pairs of units ``(i, j), i < j`` rotated by each layer, in application order."""
    if layout == "tunable":
        return [[(i, i + 1) for i in range(layer % 2, size - 1, 2)] for layer in range(capacity)]
    layers, stride = [], 1
    while stride < size:
        layers.append([(i, i + stride) for i in range(size - stride) if (i // stride) % 2 == 0])
        stride *= 2
    return layers


class GivensRotations(nn.Module):
    """An orthogonal ``N x N`` matrix ``U`` as a product of layers of Givens rotations.

    Calling the module on ``h [..., N]`` returns ``h U^T`` (i.e. ``U`` applied to each row).
    Angles start uniform in [-pi, pi] as in the reference code.

    Args:
        size: N.
        layout: ``"tunable"`` or ``"fft"`` (see the module docstring).
        capacity: number of layers of the tunable layout (>= 1); must be None for ``"fft"``,
            whose depth is ``ceil(log2 N)``.
    """

    def __init__(self, size: int, layout: str = "tunable", capacity: int | None = 2) -> None:
        super().__init__()
        self.size = check_int("hidden_size", size, low=1)
        self.layout = check_choice("layout", layout, LAYOUTS)
        if layout == "fft" and capacity is not None:
            raise ValueError(f"capacity={capacity!r} must be None with layout='fft' (its depth is ceil(log2 N))")
        if layout == "tunable":
            capacity = check_int("capacity", capacity, low=1)
        self.pairs = rotation_pairs(self.size, layout, capacity or 0)
        self.num_layers = len(self.pairs)
        num_angles = sum(len(layer) for layer in self.pairs)
        self.angles = nn.Parameter(torch.empty(num_angles).uniform_(-math.pi, math.pi))
        # Per layer and unit: its partner, the index of its angle (num_angles = "no pair", angle 0)
        # and the sign of its sine term (-1 for the first unit of a pair, +1 for the second).
        partner = torch.arange(self.size).repeat(self.num_layers, 1)
        index = torch.full((self.num_layers, self.size), num_angles)
        sign = torch.zeros(self.num_layers, self.size)
        k = 0
        for layer, pairs in enumerate(self.pairs):
            for i, j in pairs:
                partner[layer, i], partner[layer, j] = j, i
                index[layer, i] = index[layer, j] = k
                sign[layer, i], sign[layer, j] = -1.0, 1.0
                k += 1
        self.register_buffer("partner", partner, persistent=False)
        self.register_buffer("angle_index", index, persistent=False)
        self.register_buffer("sine_sign", sign, persistent=False)

    def coefficients(self) -> tuple[Tensor, Tensor]:
        """Per layer and unit, the multipliers of ``h_i`` and of ``h_partner(i)``: ``[L, N]`` each."""
        angles = torch.cat([self.angles, self.angles.new_zeros(1)])
        return torch.cos(angles)[self.angle_index], self.sine_sign.to(angles.dtype) * torch.sin(angles)[self.angle_index]

    def forward(self, h: Tensor) -> Tensor:
        """``h U^T`` by applying the layers one after the other (``O(L N)`` per row)."""
        return self._apply_layers(h, *self.coefficients())

    def _apply_layers(self, h: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        for layer in range(self.num_layers):
            h = h * cos[layer] + h.index_select(-1, self.partner[layer]) * sin[layer]
        return h

    def matrix(self) -> Tensor:
        """The orthogonal matrix ``U`` itself (``U h`` rotates a column vector ``h``)."""
        eye = torch.eye(self.size, dtype=self.angles.dtype, device=self.angles.device)
        return self(eye).t()

    def operator(self) -> Callable[[Tensor], Tensor]:
        """``h -> h U^T``, with whatever representation is cheaper for this N and L (see module doc)."""
        if self.size >= 200 * max(self.num_layers, 1):
            cos, sin = self.coefficients()
            return lambda h: self._apply_layers(h, cos, sin)
        transposed = self(torch.eye(self.size, dtype=self.angles.dtype, device=self.angles.device))
        return lambda h: h @ transposed

    def extra_repr(self) -> str:
        return f"size={self.size}, layout={self.layout!r}, layers={self.num_layers}"


class _OrthogonalCell(RecurrentCell):
    """Shared loop: input projection for all steps in one matmul, then ``_update`` per step."""

    rotation: GivensRotations
    inputs: nn.Linear

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> Tensor:
        """``h``: zeros ``[B, hidden_size]``."""
        return torch.zeros(batch_size, self.hidden_size, device=device or self.device, dtype=self.dtype)

    def transition_matrix(self) -> Tensor:
        """The orthogonal recurrent matrix ``U`` (``N x N``) the cell currently uses."""
        return self.rotation.matrix()

    def _update(self, xw: Tensor, h: Tensor, rotate: Callable[[Tensor], Tensor]) -> Tensor:
        raise NotImplementedError

    def step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        h = self._update(self.inputs(x), state, self.rotation)
        return h, h

    def forward(self, inputs: Tensor, state: Tensor | None = None, resets: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_inputs(self, inputs, resets)
        rotate = self.rotation.operator()

        def step(xw: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
            h = self._update(xw, h, rotate)
            return h, h

        return self._loop(self.inputs(inputs), state, resets, step=step)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, layout={self.rotation.layout!r}, layers={self.rotation.num_layers}"


class EURNNCell(_OrthogonalCell):
    """Efficient unitary RNN (Jing et al., ICML 2017), real (orthogonal) version.

    Equations (``U`` orthogonal, :class:`GivensRotations`)::

        h_t = modReLU(W x_t + U h_{t-1}, b)          modReLU(z, b) = sign(z) relu(|z| + b)

    With ``b = 0`` and no input the update is a pure rotation: ``||h_t|| = ||h_{t-1}||``.

    Initialisation as in the reference code (``jingli9111/EUNN-tensorflow``): ``W`` uniform in
    ±0.01 (no input bias; ``b`` plays that role), angles uniform in [-pi, pi], ``b = 0``.
    Parameters: ``N I`` (W) + angles (``capacity (N-1) / 2`` for even N and capacity, e.g.
    ``N - 1`` at capacity 2) + ``N`` (b). A parameter budget therefore buys a very wide EURNN;
    raise ``capacity`` to spend it on the transition instead.

    State: ``h [B, hidden_size]``, zeros at an episode start. Output: ``h``.

    Args:
        input_size: features per step.
        hidden_size: N.
        capacity: layers of the tunable layout (default 2, the reference code's default; the NRU
            paper's setting is not known, docs/nru.md#experiments-and-settings (unverified)). Must be None with ``layout="fft"``;
            None with ``"tunable"`` means 2.
        layout: ``"tunable"`` (default) or ``"fft"`` (see the module docstring).
    """

    def __init__(self, input_size: int, hidden_size: int, capacity: int | None = None, layout: str = "tunable") -> None:
        super().__init__(input_size, hidden_size)
        check_choice("layout", layout, LAYOUTS)
        if layout == "tunable" and capacity is None:
            capacity = 2
        self.inputs = nn.Linear(self.input_size, self.hidden_size, bias=False)
        self.rotation = GivensRotations(self.hidden_size, layout, capacity)
        self.bias = nn.Parameter(torch.zeros(self.hidden_size))
        with torch.no_grad():
            self.inputs.weight.uniform_(-0.01, 0.01)

    def _update(self, xw: Tensor, h: Tensor, rotate: Callable[[Tensor], Tensor]) -> Tensor:
        return modrelu(xw + rotate(h), self.bias)


class GORUCell(_OrthogonalCell):
    """Gated orthogonal recurrent unit (Jing et al., Neural Computation 2019; arXiv 1706.02761).

    A GRU whose candidate uses an orthogonal transition and modReLU instead of a full matrix and
    tanh, so the gates can learn to forget while the transition itself preserves norms::

        r_t = sigmoid(W_r x_t + V_r h_{t-1} + b_r)                 # reset gate
        g_t = sigmoid(W_g x_t + V_g h_{t-1} + b_g)                 # update gate (keep)
        c_t = modReLU(W_c x_t + r_t * (U h_{t-1}), b_c)            # U orthogonal
        h_t = g_t * h_{t-1} + (1 - g_t) * c_t

    Initialisation as in the reference code (``jingli9111/GORU-tensorflow``): ``W_*`` and
    ``V_*`` uniform in ±0.01, ``b_r = 2`` (reset gate open), ``b_c = 0.01``, ``b_g`` uniform in
    ±sqrt(3/N) (TensorFlow's default initialiser for that variable), angles uniform in
    [-pi, pi]. Parameters: ``3 N I + 2 N^2 + 3 N`` + angles (``N - 1`` at capacity 2).

    Parameter layout: ``inputs`` (rows ``W_c; W_r; W_g``, no bias), ``gates`` (rows ``V_r; V_g``
    with biases ``b_r; b_g``), ``bias`` (``b_c``), ``rotation.angles``.

    State: ``h [B, hidden_size]``, zeros at an episode start. Output: ``h``.

    Args:
        input_size: features per step.
        hidden_size: N.
        capacity: layers of the tunable layout (default 2, the reference code's tunable default).
            Must be None with ``layout="fft"``; None with ``"tunable"`` means 2.
        layout: ``"tunable"`` (default, works for any N and so allows parameter matching) or
            ``"fft"`` (the reference code's default style).
    """

    def __init__(self, input_size: int, hidden_size: int, capacity: int | None = None, layout: str = "tunable") -> None:
        super().__init__(input_size, hidden_size)
        check_choice("layout", layout, LAYOUTS)
        if layout == "tunable" and capacity is None:
            capacity = 2
        n = self.hidden_size
        self.inputs = nn.Linear(self.input_size, 3 * n, bias=False)
        self.gates = nn.Linear(n, 2 * n)
        self.rotation = GivensRotations(n, layout, capacity)
        self.bias = nn.Parameter(torch.full((n,), 0.01))
        with torch.no_grad():
            self.inputs.weight.uniform_(-0.01, 0.01)
            self.gates.weight.uniform_(-0.01, 0.01)
            self.gates.bias[:n] = 2.0
            self.gates.bias[n:].uniform_(-math.sqrt(3 / n), math.sqrt(3 / n))

    def _update(self, xw: Tensor, h: Tensor, rotate: Callable[[Tensor], Tensor]) -> Tensor:
        x_c, x_rg = xw.split([self.hidden_size, 2 * self.hidden_size], dim=-1)
        r, g = torch.sigmoid(x_rg + self.gates(h)).chunk(2, dim=-1)
        c = modrelu(x_c + r * rotate(h), self.bias)
        return g * h + (1 - g) * c

"""NRU: the Non-saturating Recurrent Unit (Chandar et al., AAAI 2019; docs/nru.md).

A ReLU hidden state plus a separate memory vector that is updated purely additively by learned
write and erase directions with unbounded (linear) strengths, so nothing on the memory path can
saturate and the memory has an identity skip connection through time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agents.cells.base import RecurrentCell, check_inputs
from agents.cells.nru_sequence import NRUSequence, l5_norm
from memenvs.core import check_bool, check_int


class NRUCell(RecurrentCell):
    """Non-saturating Recurrent Unit with the semantics of the authors' released code.

    Equations (B batch, n_h = hidden_size, m = memory_size, k = num_heads, r = sqrt(k*m))::

        h_t   = ReLU(LN?(W_h [x_t; h_{t-1}; m_{t-1}] + b_h))
        u_t   = [h_t; m_{t-1}]                       # the new h and the OLD memory, no x_t
        a_t   = W_a u_t + b_a,  b_t = W_b u_t + b_b   # k write / k erase strengths (linear)
        [p; q] = W_w u_t + b_w   ->  V^w_t = reshape(p q^T, (k, m)) / ||.||_5 (per head, eps 1e-12)
        V^e_t  likewise from W_e
        m_t   = m_{t-1} + mean_k(a_t V^w_t - b_t V^e_t)

    Output: ``h_t`` (``output_size == hidden_size``). State: ``(h, m)``, both zero at an episode
    start. The paper writes a *sum* over heads and lets the strengths see ``x_t``; the released
    code (``apsarath/NRU``, ``apsarath/myTorch`` FlatMemoryCell) takes the *mean* and feeds
    ``[h_t, m_{t-1}]`` only. We follow the code, which produced the published numbers.

    Args:
        input_size: features per step.
        hidden_size: size ``n_h`` of the ReLU hidden state.
        memory_size: size ``m`` of the additive memory (default 64, the copy-task config).
        num_heads: number ``k`` of write and erase heads (default 4); ``k * m`` must be a perfect
            square because each head's direction comes from an outer product of two
            ``sqrt(k*m)``-vectors (cheaper than ``k*m`` outputs per head).
        use_relu: apply ReLU to the strengths and the directions (code flag; False in the
            synthetic-task configs, True in the char-PTB ones).
        layer_norm: LayerNorm on the pre-activation of ``h_t`` (code flag; False in all paper
            configs).

    Parameters keep the code's layout (all ``nn.Linear`` with PyTorch's default init):
    ``hidden`` (W_h), ``alpha`` (W_a), ``beta`` (W_b), ``write`` (W_w) and ``erase`` (W_e).

    Speed: ``forward`` runs the whole sequence as one autograd node with a hand-written
    backward (:class:`NRUSequence`): per step only the two recurrent matmuls and a handful of
    small operations, because the directions are never formed (each head's direction is a block
    of rows of ``p q^T``, so its L5 norm and the memory increment factorise, see
    :func:`agents.cells.nru_sequence._memory_terms`). About as fast as ``nn.LSTM`` of equal parameter count on long
    sequences (``benchmarks/cell_speed.py``). ``loop`` is the plain per-step autograd path, the
    reference the node is tested against; ``forward`` uses it with ``layer_norm`` (a
    hand-written LayerNorm backward is not worth its code for a flag no paper config sets) and
    when ``num_heads`` does not divide ``sqrt(k*m)`` (a head's direction would then split rows).
    ``step`` uses the autograd ops of ``loop``. The node is differentiable once; use ``loop`` for
    gradients of gradients.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        memory_size: int = 64,
        num_heads: int = 4,
        use_relu: bool = False,
        layer_norm: bool = False,
    ) -> None:
        super().__init__(input_size, hidden_size)
        self.memory_size = check_int("memory_size", memory_size, low=1)
        self.num_heads = check_int("num_heads", num_heads, low=1)
        self.use_relu = check_bool("use_relu", use_relu)
        self.layer_norm = check_bool("layer_norm", layer_norm)
        root = math.isqrt(self.num_heads * self.memory_size)
        if root * root != self.num_heads * self.memory_size:
            raise ValueError(
                f"num_heads * memory_size must be a perfect square (the directions are outer products "
                f"of two sqrt(k*m)-vectors), got num_heads={num_heads} * memory_size={memory_size} "
                f"= {self.num_heads * self.memory_size}"
            )
        self.root = root
        n_h, m, k = self.hidden_size, self.memory_size, self.num_heads
        self.hidden = nn.Linear(self.input_size + n_h + m, n_h)
        self.norm = nn.LayerNorm(n_h) if self.layer_norm else None
        self.alpha = nn.Linear(n_h + m, k)
        self.beta = nn.Linear(n_h + m, k)
        self.write = nn.Linear(n_h + m, 2 * root)
        self.erase = nn.Linear(n_h + m, 2 * root)
        self.register_buffer("_signs", torch.tensor([1.0] * k + [-1.0] * k), persistent=False)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
        """``(h, m)``: zeros of shape ``[B, hidden_size]`` and ``[B, memory_size]``."""
        kw = dict(device=device, dtype=self.dtype)
        return torch.zeros(batch_size, self.hidden_size, **kw), torch.zeros(batch_size, self.memory_size, **kw)

    def _update(self, pre_h: Tensor, h: Tensor, mem: Tensor, w_rec: Tensor, w_u: Tensor, b_u: Tensor) -> tuple[Tensor, Tensor]:
        """One step given the input part of the hidden pre-activation (``W_hx x_t + b_h``)."""
        pre = torch.addmm(pre_h, torch.cat([h, mem], dim=-1), w_rec.t())
        if self.norm is not None:
            pre = self.norm(pre)
        h = F.relu(pre)
        # One matmul gives [alpha | beta | p_w q_w | p_e q_e]; write and erase heads are then
        # handled together as 2k heads with strengths [alpha, -beta].
        heads = torch.addmm(b_u, torch.cat([h, mem], dim=-1), w_u.t())
        k, r = self.num_heads, self.root
        strengths, pq = heads.split([2 * k, 4 * r], dim=-1)
        pq = pq.view(-1, 2, 2 * r)
        directions = (pq[..., :r].unsqueeze(-1) * pq[..., r:].unsqueeze(-2)).view(-1, 2 * k, self.memory_size)
        if self.use_relu:
            strengths, directions = F.relu(strengths), F.relu(directions)
        directions = directions / l5_norm(directions).clamp_min(1e-12)  # F.normalize(p=5, eps=1e-12)
        strengths = strengths * self._signs  # write +alpha, erase -beta
        # m_t = m_{t-1} + (1/k) sum over the 2k heads of strength * direction
        mem = torch.baddbmm(mem.unsqueeze(1), strengths.unsqueeze(1), directions, alpha=1.0 / k).squeeze(1)
        return h, mem

    def _fused_weights(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Split / stack the weights once per call: (W_hx, b_h, W_h[h;m], W_u, b_u)."""
        w_x, w_rec = self.hidden.weight.split([self.input_size, self.hidden_size + self.memory_size], dim=1)
        heads = (self.alpha, self.beta, self.write, self.erase)
        w_u = torch.cat([lin.weight for lin in heads], dim=0)
        b_u = torch.cat([lin.bias for lin in heads], dim=0)
        return w_x, self.hidden.bias, w_rec, w_u, b_u

    def step(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        w_x, b_h, w_rec, w_u, b_u = self._fused_weights()
        h, mem = self._update(F.linear(x, w_x, b_h), *state, w_rec, w_u, b_u)
        return h, (h, mem)

    def forward(
        self, inputs: Tensor, state: tuple[Tensor, Tensor] | None = None, resets: Tensor | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """The shared contract (see :mod:`agents.cells.base`): the whole sequence is one autograd
        node (:class:`NRUSequence`). With ``layer_norm`` or when ``num_heads`` does not divide
        ``sqrt(k*m)`` it runs :meth:`loop`."""
        if self.layer_norm or self.root % self.num_heads:
            return self.loop(inputs, state, resets)
        check_inputs(self, inputs, resets)
        h, mem = self.initial_state(inputs.shape[1], inputs.device) if state is None else state
        if inputs.shape[0] == 0:
            return inputs.new_empty(0, inputs.shape[1], self.hidden_size), (h, mem)
        w_x, b_h, w_rec, w_u, b_u = self._fused_weights()
        # The node's head layout: rows [alpha | beta | p_w | p_e | q_w | q_e].
        n_h, k, r = self.hidden_size, self.num_heads, self.root
        rows = [2 * k, r, r, r, r]
        s, p_w, q_w, p_e, q_e = w_u.split(rows)
        w_uh, w_um = torch.cat([s, p_w, p_e, q_w, q_e]).split([n_h, self.memory_size], dim=1)
        s, p_w, q_w, p_e, q_e = b_u.split(rows)
        b_u = torch.cat([s, p_w, p_e, q_w, q_e])
        w_hh, w_hm = w_rec.split([n_h, self.memory_size], dim=1)
        # The initial state is zeros, so an episode start multiplies the state by 0.
        keep = None if resets is None else (~resets.bool()).to(inputs.dtype)
        out, mem = NRUSequence.apply(inputs, h, mem, w_x, b_h, w_hh, w_hm, w_uh, w_um, b_u, keep, k, self.use_relu)
        return out, (out[-1], mem)

    def loop(
        self, inputs: Tensor, state: tuple[Tensor, Tensor] | None = None, resets: Tensor | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """The per-step autograd path (same contract as ``forward``; the reference the sequence
        node is tested against), with the input projection of all steps done in one matmul."""
        check_inputs(self, inputs, resets)
        w_x, b_h, w_rec, w_u, b_u = self._fused_weights()

        def step(pre_t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
            h, mem = self._update(pre_t, *state, w_rec, w_u, b_u)
            return h, (h, mem)

        # The base class's reset-aware loop over the input projection of all steps (one matmul).
        return self._loop(F.linear(inputs, w_x, b_h), state, resets, step=step)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, memory_size={self.memory_size}, num_heads={self.num_heads}, "
            f"use_relu={self.use_relu}, layer_norm={self.layer_norm}"
        )

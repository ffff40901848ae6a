"""NRU: the Non-saturating Recurrent Unit (Chandar et al., AAAI 2019; PAPERS.md §2).

A ReLU hidden state plus a separate memory vector that is updated purely additively by learned
write and erase directions with unbounded (linear) strengths, so nothing on the memory path can
saturate and the memory has an identity skip connection through time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from agents.cells.base import RecurrentCell, check_inputs, reset_state
from memenvs.core import check_bool, check_int


def l5_norm(v: Tensor) -> Tensor:
    """``||v||_5`` over the last dimension (keepdim), by multiplications: several times faster
    on CPU, forward and backward, than the generic ``torch.linalg.vector_norm(v, 5)``."""
    v2 = v * v
    total = (v2 * v2 * v.abs()).sum(-1, keepdim=True)
    # The floor keeps the gradient finite for an all-zero vector (possible with use_relu).
    return total.clamp_min(torch.finfo(v.dtype).tiny).pow(0.2)


def _directions(heads: Tensor, k: int, r: int, use_relu: bool) -> tuple[Tensor, ...]:
    """The memory increment's factors from the heads' pre-activations ``heads [L, 2k + 4r]``
    (``[alpha | beta | p_w | q_w | p_e | q_e]``), for any number of rows ``L``, without ever
    forming the ``[L, 2k, m]`` directions.

    Head ``j``'s direction is rows ``j*rho .. (j+1)*rho - 1`` (``rho = m / r = r / k``) of the
    outer product ``p q^T``, i.e. ``P_j q^T`` with ``P_j`` a slice of ``p``. So its L5 norm
    factorises, ``||P_j q^T||_5^5 = ||P_j||_5^5 ||q||_5^5``, and the increment of a write (or
    erase) unit is ``sum_j c_j P_j q^T = (sum_j c_j P_j) q^T``, with the per-head scalar
    ``c_j = +-strength_j / (k ||V_j||_5)`` (sign, mean and normalisation folded in). With
    ``use_relu``, ``relu(p q^T) = p+ q+^T + p- q-^T`` (``p+ = relu(p)``, ``p- = relu(-p)``: the
    two terms have disjoint supports), so each unit becomes ``G = 2`` such rank-one groups whose
    fifth powers add. Needs ``k`` to divide ``r``.

    Returns ``(strengths [L, 2, k], factors [L, 2, G, 2, r], sp [L, 2, G, k], sq [L, 2, G, 1],
    norm [L, 2, k], c [L, 2, k], pc [L, 2G, rho], q [L, 2G, r])``: ``factors[:, u, g]`` holds
    ``(p, q)`` of unit u (write, erase) and group g; ``sp``, ``sq`` the fifth-power sums of the
    ``P_j`` and of ``q``; ``norm`` the clamped L5 norms; the increment is ``pc^T q``.
    """
    rows, rho = heads.shape[0], r // k
    strengths = heads[:, : 2 * k].view(rows, 2, k)
    factors = heads[:, 2 * k :].view(rows, 2, 1, 2, r)
    if use_relu:
        strengths = strengths.clamp_min(0.0)
        positive = factors.clamp_min(0.0)
        factors = torch.cat([positive, positive - factors], dim=2)  # relu(x), relu(-x)
    groups = factors.shape[2]
    fifth = factors.abs().pow_(5)
    sp = fifth[:, :, :, 0].unflatten(-1, (k, rho)).sum(-1)
    sq = fifth[:, :, :, 1].sum(-1, keepdim=True)
    total = sp * sq
    total = total.sum(2) if groups > 1 else total.squeeze(2)
    # The reference's clamps: l5_norm's floor (tiny) on the fifth-power sum, then 1e-12 on the norm.
    norm = total.clamp_min_(torch.finfo(heads.dtype).tiny).pow_(0.2).clamp_min_(1e-12)
    c = (strengths * _unit_signs(heads, k)).div_(norm)
    p = factors[:, :, :, 0].unflatten(-1, (k, rho))
    pc = (p * c[:, :, None, :, None]).sum(3)
    return strengths, factors, sp, sq, norm, c, pc.view(rows, 2 * groups, rho), factors[:, :, :, 1].reshape(rows, 2 * groups, r)


def _unit_signs(like: Tensor, k: int) -> Tensor:
    """``[[1/k], [-1/k]]``: the mean over k heads and the write (+) / erase (-) signs."""
    return torch.tensor([[1.0 / k], [-1.0 / k]], dtype=like.dtype, device=like.device)


class _NRUSequence(torch.autograd.Function):
    """A whole NRU sequence as one autograd node:
    ``(pre_x, h0, m0, w_rec, w_u, b_u) -> (out [T, B, n_h], m_T)``.

    ``pre_x [T, B, n_h]`` is the input part of the hidden pre-activation (``W_hx x_t + b_h``),
    ``w_rec [n_h, n_h + m]`` the rest of ``W_h``, ``w_u``/``b_u`` the stacked heads
    ``[alpha | beta | write | erase]``; ``keep [T, B, 1]`` (or None) is 0 where an episode starts
    (the state, zeros at a start, is multiplied by it before that step). The forward keeps per
    step only the matmul inputs and the heads' pre-activations; backward recomputes the rest of
    the head algebra for all steps at once, runs the time loop in reverse by hand, and forms the
    weight gradients with one matmul each over all ``T * B`` rows.
    """

    @staticmethod
    def forward(ctx, pre_x: Tensor, h0: Tensor, m0: Tensor, w_rec: Tensor, w_u: Tensor, b_u: Tensor,
                keep: Tensor | None, k: int, use_relu: bool) -> tuple[Tensor, Tensor]:
        (T, B, n_h), m, width = pre_x.shape, m0.shape[1], w_u.shape[0]
        r = (width - 2 * k) // 4
        rho = r // k
        # xs[t] = [h_{t-1}; m_{t-1}] as step t reads it (after a reset), us[t] = [h_t; m_{t-1}].
        xs = pre_x.new_empty(T + 1, B, n_h + m)
        us = pre_x.new_empty(T, B, n_h + m)
        heads = pre_x.new_empty(T, B, width)
        xs[0, :, :n_h], xs[0, :, n_h:] = h0, m0
        w_rec_t, w_u_t = w_rec.t(), w_u.t()
        for t in range(T):
            x, u = xs[t], us[t]
            if keep is not None:
                x.mul_(keep[t])
            h = torch.addmm(pre_x[t], x, w_rec_t, out=u[:, :n_h]).clamp_min_(0.0)
            u[:, n_h:] = x[:, n_h:]
            pc, q = _directions(torch.addmm(b_u, u, w_u_t, out=heads[t]), k, r, use_relu)[-2:]
            nxt = xs[t + 1]
            torch.baddbmm(x[:, n_h:].view(B, rho, r), pc.transpose(1, 2), q, out=nxt[:, n_h:].view(B, rho, r))
            nxt[:, :n_h] = h
        ctx.save_for_backward(w_rec, w_u, xs, us, heads, keep)
        ctx.k, ctx.use_relu = k, use_relu
        return us[:, :, :n_h].contiguous(), xs[T, :, n_h:].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor, grad_m: Tensor) -> tuple[Tensor | None, ...]:
        w_rec, w_u, xs, us, heads, keep = ctx.saved_tensors
        k, use_relu = ctx.k, ctx.use_relu
        (T, B, n_h), m, width = grad_out.shape, grad_m.shape[1], w_u.shape[0]
        r = (width - 2 * k) // 4
        rho, tiny = r // k, torch.finfo(heads.dtype).tiny
        # The head algebra of every step at once (rows t * B + b), and its local derivatives.
        strengths, factors, sp, sq, norm, c, pc, q = _directions(heads.view(T * B, width), k, r, use_relu)
        groups = factors.shape[2]
        total = (sp * sq).sum(2)
        clamped = total.clamp_min(tiny)
        unclamped_norm = clamped.pow(0.2)
        # d c / d total through norm = max(clamp(total, tiny)^0.2, 1e-12), zero where a clamp holds.
        live = (total >= tiny) & (unclamped_norm >= 1e-12)
        c_total = torch.where(live, -0.2 * c / norm * unclamped_norm / clamped, 0.0)  # where: inf * 0 is nan
        c_strength = _unit_signs(heads, k) / norm  # d c / d strength
        if use_relu:
            c_strength = c_strength * (strengths > 0)
        fifth_slope = factors * factors.abs().pow(3) * 5.0  # d |x|^5 / dx
        p = factors[:, :, :, 0].unflatten(-1, (k, rho))
        per_step = [x.view(T, B, *x.shape[1:]).unbind(0) for x in (
            sp, sq, c, pc, q, c_total, c_strength, p, fifth_slope[:, :, :, 0].unflatten(-1, (k, rho)),
            fifth_slope[:, :, :, 1])]
        if use_relu:  # back from (relu(x), relu(-x)) to x
            x = heads[..., 2 * k :].reshape(T * B, 2, 1, 2, r)
            signed = torch.cat([(x > 0).to(x.dtype), -(x < 0).to(x.dtype)], dim=2)
            per_step.append(signed.view(T, B, 2, 2, 2, r).unbind(0))
        h_active = (us[:, :, :n_h] > 0).to(grad_out.dtype)

        grad_heads = torch.empty_like(heads)
        grad_pre = torch.empty_like(grad_out)
        grad = torch.cat([torch.zeros_like(grad_out[0]), grad_m], dim=1)  # [dL/dh; dL/dm] of the state
        grad_h, grad_mem = grad[:, :n_h], grad[:, n_h:]
        for t in reversed(range(T)):
            sp_t, sq_t, c_t, pc_t, q_t, c_total_t, c_strength_t, p_t, slope_p, slope_q = (x[t] for x in per_step[:10])
            grad_h += grad_out[t]
            g_mem = grad_mem.view(B, rho, r)
            g_pc = torch.bmm(q_t, g_mem.transpose(1, 2)).view(B, 2, groups, 1, rho)
            g_c = (p_t * g_pc).sum((2, 4))
            g_total = (g_c * c_total_t).unsqueeze(2)
            g_heads = grad_heads[t]
            torch.mul(g_c, c_strength_t, out=g_heads[:, : 2 * k].view(B, 2, k))
            g_factors = g_heads[:, 2 * k :].view(B, 2, 1, 2, r) if not use_relu else factors.new_empty(B, 2, 2, 2, r)
            torch.addcmul(c_t[:, :, None, :, None] * g_pc, (g_total * sq_t).unsqueeze(-1), slope_p,
                          out=g_factors[:, :, :, 0].unflatten(-1, (k, rho)))
            torch.addcmul(torch.bmm(pc_t, g_mem).view(B, 2, groups, r), (g_total * sp_t).sum(-1, keepdim=True),
                          slope_q, out=g_factors[:, :, :, 1])
            if use_relu:
                torch.sum(g_factors * per_step[10][t], dim=2, out=g_heads[:, 2 * k :].view(B, 2, 2, r))
            grad.addmm_(g_heads, w_u)
            torch.mul(grad_h, h_active[t], out=grad_pre[t])
            grad_h.zero_()
            grad.addmm_(grad_pre[t], w_rec)
            if keep is not None:
                grad.mul_(keep[t])

        grad_w_rec = grad_w_u = grad_b_u = None
        if ctx.needs_input_grad[3]:
            grad_w_rec = grad_pre.view(T * B, n_h).t() @ xs[:T].view(T * B, n_h + m)
        if ctx.needs_input_grad[4]:
            grad_w_u = grad_heads.view(T * B, width).t() @ us.view(T * B, n_h + m)
        if ctx.needs_input_grad[5]:
            grad_b_u = grad_heads.view(T * B, width).sum(0)
        return grad_pre, grad_h.clone(), grad_mem.clone(), grad_w_rec, grad_w_u, grad_b_u, None, None, None


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
        node (:class:`_NRUSequence`) after one input projection for all steps. With
        ``layer_norm`` or when ``num_heads`` does not divide ``sqrt(k*m)`` it runs :meth:`loop`."""
        if self.layer_norm or self.root % self.num_heads:
            return self.loop(inputs, state, resets)
        check_inputs(self, inputs, resets)
        h, mem = self.initial_state(inputs.shape[1], inputs.device) if state is None else state
        if inputs.shape[0] == 0:
            return inputs.new_empty(0, inputs.shape[1], self.hidden_size), (h, mem)
        w_x, b_h, w_rec, w_u, b_u = self._fused_weights()
        pre_x = F.linear(inputs, w_x, b_h)
        # The initial state is zeros, so an episode start multiplies the state by 0.
        keep = None if resets is None else (~resets.bool()).unsqueeze(-1).to(pre_x.dtype)
        out, mem = _NRUSequence.apply(pre_x, h, mem, w_rec, w_u, b_u, keep, self.num_heads, self.use_relu)
        return out, (out[-1], mem)

    def loop(
        self, inputs: Tensor, state: tuple[Tensor, Tensor] | None = None, resets: Tensor | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """The per-step autograd path (same contract as ``forward``; the reference the sequence
        node is tested against), with the input projection of all steps done in one matmul."""
        check_inputs(self, inputs, resets)
        batch = inputs.shape[1]
        if state is None:
            state = self.initial_state(batch, inputs.device)
        w_x, b_h, w_rec, w_u, b_u = self._fused_weights()
        pre_x = F.linear(inputs, w_x, b_h)
        start = self.initial_state(batch, inputs.device) if resets is not None else None
        steps = resets.unbind(0) if resets is not None else [None] * inputs.shape[0]
        outs = []
        for pre_t, r in zip(pre_x.unbind(0), steps):
            if r is not None:
                state = reset_state(state, r, start)
            state = self._update(pre_t, *state, w_rec, w_u, b_u)
            outs.append(state[0])
        return torch.stack(outs), state

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, memory_size={self.memory_size}, num_heads={self.num_heads}, "
            f"use_relu={self.use_relu}, layer_norm={self.layer_norm}"
        )

"""The NRU's whole sequence as one autograd node with a hand-written reverse loop
(:class:`NRUSequence`), and the head algebra it shares with the cell's per-step reference loop
(:mod:`agents.cells.nru`, docs/nru.md#cell-equations)."""

from __future__ import annotations


import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


def l5_norm(v: Tensor) -> Tensor:
    """``||v||_5`` over the last dimension (keepdim), by multiplications: several times faster
    on CPU, forward and backward, than the generic ``torch.linalg.vector_norm(v, 5)``."""
    v2 = v * v
    total = (v2 * v2 * v.abs()).sum(-1, keepdim=True)
    # The floor keeps the gradient finite for an all-zero vector (possible with use_relu).
    return total.clamp_min(torch.finfo(v.dtype).tiny).pow(0.2)


def _head_matrices(k: int, r: int, groups: int, like: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Constant matrices that turn the per-head sums and expansions of the memory update into
    small matmuls on feature-major ``[rows, batch]`` tensors (see :func:`_memory_terms`).

    ``groups`` is the number ``2G`` of rank-one groups ``(p_g, q_g)`` (``g = sign * 2 + unit``,
    unit 0 write, 1 erase; ``G = 2`` signs with ``use_relu``, else 1). With ``rho = r / k``:

    * ``sums [2Gk*2, 2Gr*2]``: ``sum_a |p_g[j rho + a]|^5`` for every (g, head j), then
      ``sum_l |q_g[l]|^5`` repeated for every head;
    * ``expand [2Gr, 2k]``: copies the per-head scalar ``c[unit(g), j]`` onto ``p_g``'s rows of head j;
    * ``to_p [2Gm, 2Gr]``: ``(a, l) <- sum_j x_g[j rho + a]`` (the scaled ``p`` summed over heads,
      repeated along ``l``); ``to_q [2Gm, 2Gr]``: ``(a, l) <- +-q_g[l] / k`` (repeated along ``a``;
      the write/erase sign and the mean over heads folded in).
    """
    rho = r // k
    kw = dict(dtype=like.dtype, device=like.device)
    eye = lambda n: torch.eye(n, **kw)  # noqa: E731
    ones = lambda *shape: torch.ones(*shape, **kw)  # noqa: E731
    head_rows = torch.kron(eye(k), ones(1, rho))  # [k, r]: head j <- rows j*rho .. (j+1)*rho - 1
    sums = torch.block_diag(torch.kron(eye(groups), head_rows), torch.kron(eye(groups), ones(k, r)))
    expand = torch.kron(eye(2).repeat(groups // 2, 1), torch.kron(eye(k), ones(rho, 1)))
    to_p = torch.kron(eye(groups), torch.kron(ones(1, k), torch.kron(eye(rho), ones(r, 1))))
    signs = torch.tensor([1.0 / k, -1.0 / k], **kw).repeat(groups // 2)
    to_q = torch.kron(torch.diag(signs), torch.kron(ones(rho, 1), eye(r)))
    return sums, expand, to_p, to_q


def _memory_terms(heads: Tensor, k: int, r: int, use_relu: bool, matrices: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """The memory increment's factors from the heads' pre-activations, without ever forming the
    ``[2k, m]`` directions, for feature-major ``heads [..., 2k + 4r, N]`` (rows
    ``[alpha | beta | p_w | p_e | q_w | q_e]``, one column per sample and step).

    Head j's direction is rows ``j*rho .. (j+1)*rho - 1`` (``rho = m / r = r / k``) of the outer
    product ``p q^T``, i.e. ``P_j q^T`` with ``P_j`` a slice of ``p``. So its L5 norm factorises,
    ``||P_j q^T||_5^5 = ||P_j||_5^5 ||q||_5^5``, and a unit's increment is
    ``sum_j c_j P_j q^T = (sum_j c_j P_j) q^T`` with ``c_j = strength_j / ||V_j||_5``. With
    ``use_relu``, ``relu(p q^T) = p+ q+^T + p- q-^T`` (``x+ = relu(x)``, ``x- = relu(-x)``; the
    two terms have disjoint supports, so their fifth powers add): two rank-one groups per unit.

    Leading dimensions are kept. Returns ``(strengths [2k, N], factors [2 * 2Gr, N], sums,
    norm [2k, N], c, c_rows [2Gr, N], p_part [2Gm, N], q_part [2Gm, N])``: ``factors`` are the
    groups' ``p`` rows then ``q`` rows, ``sums`` the fifth-power sums (:func:`_head_matrices`),
    ``norm`` the clamped L5 norms, ``c_rows`` ``c`` on the rows of ``p``; the increment is
    ``sum_g (p_part * q_part)[g]`` (``[m, N]`` per group).
    """
    sums_matrix, expand, to_p, to_q = matrices
    strengths, x = heads.split([2 * k, 4 * r], dim=-2)
    if use_relu:
        strengths = strengths.clamp_min(0.0)
        x = x.unflatten(-2, (2, 2 * r))
        positive = x.clamp_min(0.0)
        factors = torch.stack([positive, positive - x], dim=-3).flatten(-4, -2)  # x+, x-
        fifth = factors * factors
        fifth.mul_(fifth).mul_(factors)
    else:
        factors = x
        fifth = factors * factors
        fifth.mul_(fifth).mul_(factors.abs())
    sums = sums_matrix @ fifth
    total = _total(sums, k, use_relu)
    # The reference's clamps: l5_norm's floor (tiny) on the fifth-power sum, then 1e-12 on the norm.
    norm = total.clamp_min_(torch.finfo(heads.dtype).tiny).pow_(0.2).clamp_min_(1e-12)
    c = strengths / norm
    c_rows = expand @ c
    p, q = factors.chunk(2, dim=-2)
    return strengths, factors, sums, norm, c, c_rows, to_p @ (p * c_rows), to_q @ q


def _total(sums: Tensor, k: int, use_relu: bool) -> Tensor:
    """Each head's fifth-power sum ``||V_j||_5^5 [..., 2k, N]`` from :func:`_memory_terms`'s ``sums``."""
    sp, sq = sums.chunk(2, dim=-2)
    total = sp * sq
    return total.unflatten(-2, (2, 2 * k)).sum(-3) if use_relu else total


# Backward processes steps in chunks of about this many columns (steps * batch): the batched
# work of a chunk (the head algebra, the weight-gradient products) stays large enough for
# efficient kernels while its buffers stay small and are reused, instead of fresh [T, ..., B]
# buffers whose page faults cost more than the arithmetic on long sequences.
_CHUNK_COLUMNS = 2048


def _chunks(steps: int, batch: int) -> list[tuple[int, int]]:
    """``[(t0, t1), ...]`` covering ``range(steps)`` in order."""
    size = max(1, _CHUNK_COLUMNS // batch)
    return [(t0, min(t0 + size, steps)) for t0 in range(0, steps, size)]


def _relu_backward(grad: Tensor, result: Tensor, out: Tensor) -> Tensor:
    """``grad * (result > 0)`` into ``out``: ReLU's own backward kernel, one pass (a bool mask
    and a multiplication cost several times more per step)."""
    return torch.ops.aten.threshold_backward.grad_input(grad, result, 0.0, grad_input=out)


class NRUSequence(torch.autograd.Function):
    """A whole NRU sequence as one autograd node:
    ``(inputs, h0, m0, w_x, b_h, w_hh, w_hm, w_uh, w_um, b_u) -> (out [T, B, n_h], m_T [B, m])``.

    ``W_h = [w_x | w_hh | w_hm]`` (acting on x, h and m) with bias ``b_h``,
    ``[w_uh | w_um]``/``b_u`` the stacked heads with rows ``[alpha | beta | p_w | p_e | q_w | q_e]``;
    ``keep [T, B]`` (or None) is 0 where an episode starts (the state, zeros there, is multiplied
    by it before that step).

    ``h`` runs batch-major (``[B, n_h]``, written straight into the output) and the memory
    feature-major (``[m, B]``), so that every small per-sample operation of the memory update is
    a contiguous operation over the batch; matmuls take either layout at no cost. The forward
    keeps the outputs, the memories and the heads' pre-activations; backward runs the time loop
    in reverse by hand, chunk by chunk (:data:`_CHUNK_COLUMNS`), recomputing the head algebra of
    a chunk's steps at once and adding the chunk's weight gradients with one matmul each.
    """

    @staticmethod
    def forward(ctx, inputs: Tensor, h0: Tensor, m0: Tensor, w_x: Tensor, b_h: Tensor, w_hh: Tensor, w_hm: Tensor,
                w_uh: Tensor, w_um: Tensor, b_u: Tensor, keep: Tensor | None, k: int, use_relu: bool
                ) -> tuple[Tensor, Tensor]:
        (T, B, _), n_h, m, width = inputs.shape, h0.shape[1], m0.shape[1], w_uh.shape[0]
        r, groups = (width - 2 * k) // 4, 4 if use_relu else 2
        matrices = _head_matrices(k, r, groups, w_uh)
        # The input part of every step's pre-activation, straight into the output buffer.
        out = torch.addmm(b_h, inputs.reshape(T * B, -1), w_x.t()).view(T, B, n_h)
        mem = inputs.new_empty(T + 1, m, B)  # mem[t] = m_{t-1} (as step t reads it, after a reset)
        mem[0] = m0.t()
        heads = inputs.new_empty(T, width, B)
        w_hh_t, w_hm_t, bias = w_hh.t(), w_hm.t(), b_u.unsqueeze(1)
        h = h0
        for t in range(T):
            m_prev = mem[t]
            if keep is not None:
                h = h * keep[t].unsqueeze(1)
                m_prev.mul_(keep[t])
            h = out[t].addmm_(h, w_hh_t).addmm_(m_prev.t(), w_hm_t).clamp_min_(0.0)
            u = torch.addmm(bias, w_um, m_prev, out=heads[t]).addmm_(w_uh, h.t())
            p_part, q_part = _memory_terms(u, k, r, use_relu, matrices)[-2:]
            torch.add(m_prev, p_part.mul_(q_part).view(groups, m, B).sum(0), out=mem[t + 1])
        ctx.save_for_backward(inputs, h0, w_x, w_hh, w_hm, w_uh, w_um, out, mem, heads, keep)
        ctx.k, ctx.use_relu, ctx.matrices = k, use_relu, matrices
        return out, mem[T].t().contiguous()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor, grad_m: Tensor) -> tuple[Tensor | None, ...]:
        inputs, h0, w_x, w_hh, w_hm, w_uh, w_um, out, mem, heads, keep = ctx.saved_tensors
        k, use_relu, matrices = ctx.k, ctx.use_relu, ctx.matrices
        sums_matrix, expand, to_p, to_q = matrices
        (T, B, n_h), m, width = grad_out.shape, grad_m.shape[1], w_uh.shape[0]
        r, groups = (width - 2 * k) // 4, 4 if use_relu else 2
        tiny, half = torch.finfo(out.dtype).tiny, groups * r
        grad_pre = torch.empty_like(grad_out)
        grad_w_hh, grad_w_hm = torch.zeros_like(w_hh), torch.zeros_like(w_hm)
        grad_w_uh, grad_w_um, grad_b_u = torch.zeros_like(w_uh), torch.zeros_like(w_um), w_uh.new_zeros(width)
        w_um_t = w_um.t()
        grad_mem = grad_m.t().contiguous()  # dL/dm_t, running backwards in time
        grad_h = grad_out[T - 1].clone()  # dL/dh_t
        for t0, t1 in reversed(_chunks(T, B)):
            n = t1 - t0
            # The head algebra of the chunk's steps at once ([n, rows, B]), and its local derivatives.
            terms = _memory_terms(heads[t0:t1], k, r, use_relu, matrices)
            strengths, factors, sums, norm, c, c_rows, p_part, q_part = terms
            total = _total(sums, k, use_relu)
            clamped = total.clamp_min(tiny)
            unclamped = clamped.pow(0.2)
            # d norm / d total is 0 where a clamp holds, and the head passes no gradient where the
            # float fifth-power sum overflowed: there the norm is inf and the direction V / inf is 0,
            # as in the reference's autograd through F.normalize (0 * inf would be nan here).
            live = (total >= tiny) & (unclamped >= 1e-12) & (total < torch.inf)
            c_total = torch.where(live, -0.2 * c / norm * unclamped / clamped, 0.0)  # where: inf * 0 is nan
            c_strength = 1.0 / norm if not use_relu else (strengths > 0) / norm
            # d total / d sums; the clamp keeps a dead head's 0 * (overflowed sum) at 0.
            swapped = torch.cat(sums.chunk(2, dim=1)[::-1], dim=1).clamp_max_(torch.finfo(out.dtype).max)
            slope = factors.abs().pow(3).mul_(factors).mul_(5.0)  # d |x|^5 / dx
            saved = [factors[:, :half], c_rows, p_part, q_part, c_total, c_strength, swapped, slope]
            if use_relu:  # back from (x+, x-) to x
                x = heads[t0:t1, 2 * k :].unflatten(1, (2, 1, 2 * r))
                saved.append(torch.cat([(x > 0).to(x.dtype), -(x < 0).to(x.dtype)], dim=2))
            per_step = [s.unbind(0) for s in saved]
            grad_heads = out.new_empty(n, width, B)
            for i in reversed(range(n)):
                t = t0 + i
                p_t, c_rows_t, p_part_t, q_part_t, c_total_t, c_strength_t, swapped_t, slope_t = (
                    s[i] for s in per_step[:8]
                )
                g_heads = grad_heads[i]
                g_factors = g_heads[2 * k :] if not use_relu else out.new_empty(2 * half, B)
                # increment = sum_g p_part_g * q_part_g
                g_p_part = (grad_mem * q_part_t.view(groups, m, B)).view(groups * m, B)
                g_q_part = (grad_mem * p_part_t.view(groups, m, B)).view(groups * m, B)
                torch.mm(to_q.t(), g_q_part, out=g_factors[half:])
                g_scaled = to_p.t() @ g_p_part  # scaled = p * c_rows
                torch.mul(g_scaled, c_rows_t, out=g_factors[:half])
                g_c = expand.t() @ g_scaled.mul_(p_t)
                torch.mul(g_c, c_strength_t, out=g_heads[: 2 * k])
                g_sums = swapped_t.view(2, -1, 2 * k, B) * g_c.mul_(c_total_t)
                g_factors.addcmul_(sums_matrix.t() @ g_sums.view(-1, B), slope_t)
                if use_relu:
                    torch.sum(g_factors.view(2, 2, 2 * r, B) * per_step[8][i], dim=1,
                              out=g_heads[2 * k :].view(2, 2 * r, B))
                # Through the heads (u = [h_t; m_{t-1}]), h_t = relu(pre) and the recurrent matmul;
                # m_t = m_{t-1} + increment keeps grad_mem's running value.
                grad_h.addmm_(g_heads.t(), w_uh)
                g_pre = _relu_backward(grad_h, out[t], out=grad_pre[t])
                grad_mem.addmm_(w_um_t, g_heads)
                if keep is not None:
                    g_pre = g_pre * keep[t].unsqueeze(1)
                    grad_mem.mul_(keep[t])
                grad_mem.addmm_(w_hm.t(), g_pre.t())
                grad_h = g_pre @ w_hh if t == 0 else torch.addmm(grad_out[t - 1], g_pre, w_hh)

            # The chunk's weight gradients, one matmul over its n * B columns each.
            rows = grad_pre[t0:t1].view(n * B, n_h)
            if keep is not None:
                rows = rows * keep[t0:t1].view(n * B, 1)
            h_prev = out[t0 - 1 : t1 - 1] if t0 > 0 else torch.cat([h0.unsqueeze(0), out[: t1 - 1]])
            grad_w_hh.addmm_(rows.t(), h_prev.reshape(n * B, n_h))
            m_prev = mem[t0:t1].transpose(1, 2).reshape(n * B, m)
            grad_w_hm.addmm_(rows.t(), m_prev)
            g_heads = grad_heads.transpose(1, 2).reshape(n * B, width)
            grad_w_uh.addmm_(g_heads.t(), out[t0:t1].view(n * B, n_h))
            grad_w_um.addmm_(g_heads.t(), m_prev)
            grad_b_u += g_heads.sum(0)
        rows = grad_pre.view(T * B, n_h)
        grad_inputs = (rows @ w_x).view(inputs.shape) if ctx.needs_input_grad[0] else None
        grad_w_x = rows.t() @ inputs.reshape(T * B, -1) if ctx.needs_input_grad[3] else None
        return (grad_inputs, grad_h, grad_mem.t(), grad_w_x, rows.sum(0), grad_w_hh, grad_w_hm, grad_w_uh, grad_w_um,
                grad_b_u, None, None, None)

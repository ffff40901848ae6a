"""A whole LSTM sequence as one autograd node with a hand-written backward: the engine of the
LSTM variants that PyTorch's fused kernel cannot run, the KAF-LSTM (flexible gates,
:mod:`agents.cells.kaf`) and the time-gated g-LSTM / Phased LSTM (:mod:`agents.cells.plstm`).

Against a per-step loop of autograd ops this saves the graph and the engine's work at every
step, projects the inputs of all steps with one matmul, and computes the weights' gradients with
one matmul per chunk of steps instead of one per step.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable


def ifog_rows(hidden_size: int, device: torch.device | str | None = None) -> Tensor:
    """Row index that reorders ``nn.LSTM``'s gate blocks ``(i, f, g, o)`` to ``(i, f, o, g)``,
    the order :class:`LSTMSequence` uses (the three sigmoid gates side by side)."""
    H = hidden_size
    return torch.cat([torch.arange(2 * H), torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)]).to(device)


class GateFunction(Protocol):
    """A per-unit function ``phi`` inside the gates, ``gate = sigmoid((phi(s) + s) / 2)`` (the KAF
    flexible gate, :class:`agents.cells.kaf.TabulatedKAF`). Without one the gates are
    ``sigmoid(s)``."""

    def lookup(self, s: Tensor, slope: Tensor, where: Tensor) -> Tensor:
        """``phi(s)`` for one step's ``s [B, N]`` (valid until the next lookup); writes
        ``phi'(s)`` into ``slope`` and where the values were looked up into ``where`` (a tensor
        like ``s``, what :meth:`add_grad` takes)."""

    def add_grad(self, where: Tensor, grad: Tensor) -> None:
        """Accumulate for ``phi``'s parameters the gradient ``grad [n, B, N]`` of its values at
        ``where [n, B, N]``, the lookups of ``n`` consecutive steps (``grad`` may be overwritten)."""


def run_lstm_sequence(
    cell: nn.Module, inputs: Tensor, h: Tensor, c: Tensor, resets: Tensor | None,
    mix: Tensor | None = None, phi: GateFunction | None = None, token: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """:class:`LSTMSequence` for a ``cell`` holding ``weight_ih``, ``weight_hh``, ``bias_ih`` and
    ``bias_hh`` in ``nn.LSTM``'s layout and gate order: the rows reordered to ``(i, f, o, g)``,
    the two biases summed, and ``resets [T, B]`` turned into ``keep`` (the cell's initial state
    must be zeros). Returns ``(out [T, B, H], c_T)``."""
    order = ifog_rows(cell.weight_hh.shape[1], inputs.device)
    bias = (cell.bias_ih + cell.bias_hh)[order]
    keep = None if resets is None else (~resets.bool()).unsqueeze(-1).to(inputs.dtype)
    return LSTMSequence.apply(inputs, cell.weight_ih[order], bias, h, c, cell.weight_hh[order], keep, mix, phi, token)


class LSTMSequence(torch.autograd.Function):
    """``(inputs, weight_ih, bias, h0, c0, weight_hh, keep, mix, phi, token) -> (out [T, B, H], c_T)``.

    ``inputs [T, B, I]``, ``weight_ih [4H, I]``, ``bias [4H]`` (both biases) and ``weight_hh
    [4H, H]``, gate blocks in the order ``(i, f, o, g)`` (see :func:`ifog_rows`). Per step::

        i, f, o = sigmoid(s)  or  sigmoid((phi(s) + s) / 2),   s = W_ih x + b + W_hh h  (gate blocks)
        c~ = f c + i tanh(g),  h~ = o tanh(c~)
        c_t = c + k_t (c~ - c),  h_t = h + k_t (h~ - h)     (k_t = mix[t]; without mix c~, h~)

    ``keep [T, B, 1]`` (or None) is 0 where an episode starts: the state is multiplied by it
    before the step (every user's initial state is zeros). ``mix [T, 1 or B, H]`` (or None) is
    the time gate of a time-gated LSTM; its gradient comes back in its own shape. ``phi`` (or
    None) is a :class:`GateFunction`; ``token`` a tensor that carries its gradient to its
    parameters (the node returns a zero gradient for it after ``phi.add_grad``).

    On a CPU, memory is the cost to watch: glibc hands freed memory back to the system, and
    each 4 kB a call touches afresh costs a page fault (about 2.5 us here, 80 ms per 100 MB).
    So the node touches little beyond what backward must keep (per step: the gates, tanh(c~),
    the state and, with ``phi``, its slope and lookup coordinates). The input projection of all
    steps is computed into the gates' own buffer, which each step completes in place; in
    backward the step's temporaries and the gradients of the pre-activations live in reused
    buffers, the latter one chunk of steps long (one matmul per chunk for the weight gradients,
    and ``phi``'s gradient added per chunk). Per-step views are made once: each indexing call
    costs about as much as a small op.
    """

    @staticmethod
    def forward(ctx, inputs: Tensor, weight_ih: Tensor, bias: Tensor, h: Tensor, c: Tensor, weight_hh: Tensor,
                keep: Tensor | None, mix: Tensor | None, phi: GateFunction | None,
                token: Tensor | None) -> tuple[Tensor, Tensor]:
        T, B, I = inputs.shape
        H = h.shape[1]
        # Kept for backward: the gates i, f, o and tanh(g) (in the buffer of the input projection,
        # which each step completes in place), tanh(c~), the cell state each step starts from
        # (after keep), and with phi, phi'(s) and where phi was looked up. The hidden state each
        # step starts from is out[t - 1] (or h0) times keep[t]: backward rebuilds it from the
        # saved output, so nothing of the output is kept outside save_for_backward (a view of an
        # output held by ctx would tie the graph into a reference cycle that is never freed).
        acts = torch.addmm(bias, inputs.reshape(T * B, I), weight_ih.t()).view(T, B, 4 * H)
        out, tanh_cs, c_starts = inputs.new_empty(T, B, H), inputs.new_empty(T, B, H), inputs.new_empty(T, B, H)
        slopes = wheres = None
        if phi is not None:
            slopes, wheres = inputs.new_empty(T, B, 3 * H), inputs.new_empty(T, B, 3 * H)
        h0 = h
        w_hh_t = weight_hh.t()
        pres, outs, tanhs, keeps, mixes, slope_steps, where_steps, c_steps = (
            None if x is None else x.unbind(0) for x in (acts, out, tanh_cs, keep, mix, slopes, wheres, c_starts))
        for t in range(T):
            if keep is not None:
                h, c = h * keeps[t], torch.mul(c, keeps[t], out=c_steps[t])
            else:
                c = c_steps[t].copy_(c)
            pre = pres[t].addmm_(h, w_hh_t)
            i, f, o, g = pre.view(B, 4, H).unbind(1)
            s = pre.narrow(1, 0, 3 * H)
            if phi is not None:  # flexible gates: sigmoid((phi(s) + s) / 2)
                s.lerp_(phi.lookup(s, slope_steps[t], where_steps[t]), 0.5)
            # tanh(x) = 2 sigmoid(2x) - 1: one sigmoid call for all four blocks (on a CPU torch's
            # tanh costs about three sigmoids per element).
            g.mul_(2.0)
            torch.sigmoid_(pre)
            g.mul_(2.0).sub_(1.0)
            c_new = torch.mul(f, c).addcmul_(i, g)
            tanh = _tanh(c_new, out=tanhs[t])
            if mix is None:
                h, c = torch.mul(o, tanh, out=outs[t]), c_new
            else:  # h_t = h + k (h~ - h), c_t = c + k (c~ - c)
                k = mixes[t]
                h = torch.addcmul(h, k, torch.mul(o, tanh).sub_(h), out=outs[t])
                c = torch.addcmul(c, k, c_new.sub_(c))
        # Saving out makes an in-place change of it an error in backward.
        ctx.save_for_backward(inputs, weight_ih, weight_hh, h0, keep, mix, out, acts, tanh_cs, c_starts, slopes, wheres)
        ctx.phi = phi
        return out, c

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor, grad_c: Tensor) -> tuple[Tensor | None, ...]:
        inputs, weight_ih, weight_hh, h0, keep, mix, out, acts, tanh_cs, c_starts, slopes, wheres = ctx.saved_tensors
        acts, tanh_cs, cs, outs = acts.unbind(0), tanh_cs.unbind(0), c_starts.unbind(0), out.unbind(0)
        needs = ctx.needs_input_grad
        phi = ctx.phi if needs[9] else None  # phi's own gradient wanted
        T, B, H = grad_out.shape
        I = inputs.shape[2]
        chunk = _chunk_steps(B, H)
        grad_pre = grad_out.new_empty(min(chunk, T), B, 4 * H)  # one chunk of steps at a time
        if phi is not None:  # and the gradient of phi's values, added to its parameters per chunk
            grad_phi = grad_out.new_empty(min(chunk, T), B, 3 * H)
        grad_inputs = grad_out.new_empty(T, B, I) if needs[0] else None
        grad_w_ih, grad_bias, grad_w_hh = (torch.zeros_like(w) for w in (weight_ih, weight_ih[:, 0], weight_hh))
        if mix is not None:  # d loss / d k_t = grad h_t (h~ - h) + grad c_t (c~ - c)
            grad_mix, shut = grad_out.new_empty(T, B, H), 1.0 - mix
            grad_mixes, shuts, mixes = grad_mix.unbind(0), shut.unbind(0), mix.unbind(0)
        # Per-step views, and the rows of the chunk buffers and their gate blocks, made once.
        grad_outs, keeps, slope_steps = (None if x is None else x.unbind(0) for x in (grad_out, keep, slopes))
        grad_pres = grad_pre.unbind(0)
        grad_gates = [p.narrow(1, 0, 3 * H) for p in grad_pres] if phi is None else grad_phi.unbind(0)
        blocks = [(gate.view(B, 3, H).unbind(1), p.narrow(1, 0, 3 * H), p.narrow(1, 3 * H, H))
                  for gate, p in zip(grad_gates, grad_pres)]
        # The state gradients are updated in place and the step's temporaries live in buffers: a
        # fresh tensor per op and step would page-fault (see the class docstring).
        grad_h, grad_c = torch.zeros_like(grad_outs[0]), grad_c.clone()
        one, tmp_a, tmp_b = torch.ones_like(grad_h), torch.empty_like(grad_h), torch.empty_like(grad_h)
        tmp_gates, h_rows = grad_out.new_empty(B, 3 * H), grad_out.new_empty(min(chunk, T), B, H)
        h_start = torch.empty_like(grad_h) if mix is not None and keep is not None else None
        for t in reversed(range(T)):
            grad_h.add_(grad_outs[t])
            i, f, o, g = acts[t].view(B, 4, H).unbind(1)
            tanh_c, c = tanh_cs[t], cs[t]
            if mix is not None:
                k = mixes[t]
                h = outs[t - 1] if t > 0 else h0  # the state step t starts from
                if keep is not None:
                    h = torch.mul(h, keeps[t], out=h_start)
                torch.mul(grad_h, torch.mul(o, tanh_c, out=tmp_a).sub_(h), out=grad_mixes[t])
                grad_mixes[t].addcmul_(grad_c, torch.mul(f, c, out=tmp_a).addcmul_(i, g).sub_(c))
                skip_h, skip_c = grad_h * shuts[t], grad_c * shuts[t]
                grad_h.mul_(k), grad_c.mul_(k)
            # d loss / d c~ in total: from the next step's c and through h~ = o tanh(c~).
            grad_c.addcmul_(torch.mul(grad_h, o, out=tmp_a), torch.addcmul(one, tanh_c, tanh_c, value=-1.0, out=tmp_b))
            grad_gate, (grad_i, grad_f, grad_o), grad_s, grad_g = grad_gates[t % chunk], *blocks[t % chunk]
            torch.mul(grad_c, g, out=grad_i)
            torch.mul(grad_c, c, out=grad_f)
            torch.mul(grad_h, tanh_c, out=grad_o)
            gates = acts[t].narrow(1, 0, 3 * H)
            grad_gate.mul_(torch.addcmul(gates, gates, gates, value=-1.0, out=tmp_gates))  # sigmoid' = s - s^2
            if slopes is not None:  # gate = sigmoid((phi(s) + s) / 2): d/d phi = sigmoid' / 2, d/ds = sigmoid' (1 + phi') / 2
                grad_gate.mul_(0.5)
                torch.addcmul(grad_gate, grad_gate, slope_steps[t], out=grad_s)
            torch.mul(torch.mul(grad_c, i, out=tmp_a), torch.addcmul(one, g, g, value=-1.0, out=tmp_b), out=grad_g)
            grad_c.mul_(f)
            torch.mm(grad_pres[t % chunk], weight_hh, out=grad_h)
            if mix is not None:
                grad_h.add_(skip_h), grad_c.add_(skip_c)
            if keep is not None:
                grad_h.mul_(keeps[t]), grad_c.mul_(keeps[t])
            if t % chunk == 0:  # the chunk of steps [t, t + n) is complete: its weight gradients
                n = min(chunk, T - t)
                if phi is not None:
                    phi.add_grad(wheres[t : t + n], grad_phi[:n])
                g_pre = grad_pre[:n].view(n * B, 4 * H)
                grad_w_ih.addmm_(g_pre.t(), inputs[t : t + n].reshape(n * B, I))
                grad_bias.add_(g_pre.sum(0))
                grad_w_hh.addmm_(g_pre.t(), _states_from(out, h0, keep, t, h_rows[:n]).view(n * B, H))
                if grad_inputs is not None:
                    torch.mm(g_pre, weight_ih, out=grad_inputs[t : t + n].view(n * B, I))
        if mix is not None and mix.shape[1] != B:
            grad_mix = grad_mix.sum(1, keepdim=True)
        grad_token = None if phi is None else grad_out.new_zeros(())
        return (grad_inputs, grad_w_ih, grad_bias, grad_h, grad_c, grad_w_hh, None,
                None if mix is None else grad_mix, None, grad_token)


def _states_from(out: Tensor, h0: Tensor, keep: Tensor | None, t: int, rows: Tensor) -> Tensor:
    """The hidden states steps ``[t, t + n)`` start from (``n = len(rows)``), written into
    ``rows``: ``out[t - 1 : t + n - 1]`` with ``h0`` before the first step, times ``keep``."""
    n = rows.shape[0]
    if t > 0:
        rows.copy_(out[t - 1 : t + n - 1])
    else:
        rows[0].copy_(h0)
        rows[1:].copy_(out[: n - 1])
    if keep is not None:
        rows.mul_(keep[t : t + n])
    return rows


def _chunk_steps(batch: int, hidden: int) -> int:
    """Steps per chunk of the backward's gradient buffers: about 2 MB of float32 ``[B, 4H]`` rows."""
    return max(1, (1 << 19) // (batch * 4 * hidden))


def _tanh(x: Tensor, out: Tensor) -> Tensor:
    """``tanh(x)`` as ``2 sigmoid(2x) - 1``, into ``out`` (see the note in the forward)."""
    return torch.sigmoid_(torch.mul(x, 2.0, out=out)).mul_(2.0).sub_(1.0)

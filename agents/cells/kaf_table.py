"""A KAF evaluated from per-unit cubic tables in the recurrent loops (:meth:`agents.cells.kaf.KAF.
tabulate`), and the autograd nodes around it: the table lookup, the table build that carries the
lookups' gradient back to the KAF's coefficients, and the KAF-GRU's gate step
(docs/kaf.md#evaluation-by-interpolation-table)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


class _CubicLookup(torch.autograd.Function):
    """Piecewise-cubic per-unit lookup: ``s [..., N] -> p [..., N]``.

    ``table[:, n, j] = (c0, c1, c2, c3)`` is unit n's cubic on interval j in the local coordinate
    ``t in [0, 1)``, where ``u = (s - lo) / step + 1``, ``j = floor(u)``, ``t = u - j``; the first
    and last rows are zero (the function outside the table). For backward it keeps ``u`` and the
    slope of each element (8 bytes, against ``D`` kernel values per element and gate for a
    direct evaluation). The gradient for the table is added into ``buffer`` and
    reaches ``alpha`` through ``token`` (see :class:`Tabulate`).
    """

    @staticmethod
    def forward(ctx, s: Tensor, table: Tensor, token: Tensor, buffer: Tensor, lo: float, step: float) -> Tensor:
        value, slope, u = _lookup(s, table, lo, step)
        ctx.save_for_backward(u, slope)
        ctx.buffer = buffer
        return value

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        u, slope = ctx.saved_tensors
        grad_token = None
        if ctx.needs_input_grad[2]:
            _add_table_grad(ctx.buffer, u, grad.clone())  # a clone: it overwrites the gradient
            grad_token = grad.new_zeros(())
        return grad * slope, None, grad_token, None, None, None


def _lookup(
    s: Tensor, table: Tensor, lo: float, step: float, scratch: dict | None = None,
    slope: Tensor | None = None, u: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Evaluate the cubic table at ``s [B, N]``: ``(value, slope, u)``, the last two for backward
    (``slope = dvalue/ds``; ``u`` the table coordinate, which holds both the row and the local
    coordinate: 4 bytes per element where the two would take 8). ``slope`` and ``u`` are written
    into the given tensors, if any. With a ``scratch`` dict the temporaries, ``value`` included,
    live in buffers that the next lookup reuses (see :func:`_buffer`)."""
    shift = _constant(scratch, 1.0 - lo / step, s)
    # A NaN in s looks up the zero row instead of a garbage index; the gate is NaN anyway (s is).
    u = torch.add(shift, s, alpha=1.0 / step, out=u).clamp_(0.0, table.shape[2] - 1).nan_to_num_(0.0)
    t, flat = _rows(u, table.shape[2], torch.int32, scratch)
    # Coefficient-major table [4, N, rows]: one gather gives each coefficient contiguous.
    gathered = _buffer(scratch, "gathered", (4, *s.shape), table.dtype, s.device)
    torch.index_select(table.view(4, -1), 1, flat.view(-1), out=gathered.view(4, -1))
    c0, c1, c2, c3 = gathered.unbind(0)
    # The slope dp/ds = (c1 + 2 c2 t + 3 c3 t^2) / step for backward; then Horner for the value,
    # in place in the gathered coefficients.
    inner = torch.addcmul(c2, c3, t, value=1.5, out=_buffer(scratch, "inner", s.shape, s.dtype, s.device))
    slope = torch.addcmul(c1, inner, t, value=2.0, out=slope).mul_(1.0 / step)
    value = c0.addcmul_(c1.addcmul_(c2.addcmul_(c3, t), t), t)
    return value, slope, u


def _rows(u: Tensor, rows: int, dtype: torch.dtype, scratch: dict | None = None) -> tuple[Tensor, Tensor]:
    """``(t, flat)`` for table coordinates ``u [..., N]`` (``u >= 0``): the local coordinate
    ``t = u - floor(u)`` and the row ``n * rows + floor(u)`` of unit ``n``'s table, as ``dtype``:
    int32 for ``index_select`` (markedly faster with it on a CPU), int64 for ``scatter_add_``."""
    t = torch.frac(u, out=_buffer(scratch, "t", u.shape, u.dtype, u.device))
    return t, _flat_rows(u, rows, dtype, scratch)


def _flat_rows(u: Tensor, rows: int, dtype: torch.dtype, scratch: dict | None = None) -> Tensor:
    """The row ``n * rows + floor(u)`` of unit ``n``'s table for table coordinates ``u [..., N]``."""
    flat = _buffer(scratch, "flat", u.shape, dtype, u.device).copy_(u)  # truncation: floor for u >= 0
    key = ("offsets", u.shape[-1], rows, dtype)
    offsets = None if scratch is None else scratch.get(key)
    if offsets is None:
        offsets = torch.arange(0, u.shape[-1] * rows, rows, device=u.device, dtype=dtype)
        if scratch is not None:
            scratch[key] = offsets
    return flat.add_(offsets)


def _add_table_grad(buffer: Tensor, u: Tensor, grad: Tensor, scratch: dict | None = None) -> None:
    """Add the gradient of the values looked up at table coordinates ``u`` (``grad``, shaped like
    ``u``) to the table gradient ``buffer``: ``d value / d (c0, c1, c2, c3) = (1, t, t^2, t^3)``.
    Overwrites ``grad``. Cheapest per element when ``u`` holds many steps at once."""
    t, where = _rows(u, buffer.shape[2], torch.int64, scratch)
    where, t, grad_power = where.view(-1), t.view(-1), grad.view(-1)
    # One 1-D scatter_add_ per coefficient into the coefficient-major buffer: on a CPU faster
    # per element than index_add_, and several times faster than adding the four interleaved.
    for k in range(4):
        buffer[k].view(-1).scatter_add_(0, where, grad_power)
        if k < 3:
            grad_power.mul_(t)


def _buffer(scratch: dict | None, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """An uninitialised tensor for a temporary: fresh without ``scratch``, else the one this
    ``scratch`` dict keeps for ``(name, shape, dtype)``. Reusing temporaries across the steps of
    a sequence matters on a CPU: most are about 100 kB, and glibc hands such blocks back to the
    system when they are freed at the top of its heap, so a fresh one page-faults on every 4 kB
    each step (about 40 faults and 0.1 ms of a KAF-LSTM step at B=64, H=128 here)."""
    if scratch is None:
        return torch.empty(shape, dtype=dtype, device=device)
    key = (name, tuple(shape), dtype)
    if key not in scratch:
        scratch[key] = torch.empty(shape, dtype=dtype, device=device)
    return scratch[key]


def _constant(scratch: dict | None, value: float, like: Tensor) -> Tensor:
    """``value`` as a 0-d tensor like ``like`` (kept in ``scratch``): ``torch.add(c, s, alpha=a)``
    computes ``a s + c`` in one call where a Python scalar would take two."""
    key = ("constant", value, like.dtype)
    if scratch is None or key not in scratch:
        constant = torch.tensor(value, dtype=like.dtype, device=like.device)
        if scratch is None:
            return constant
        scratch[key] = constant
    return scratch[key]


class Tabulate(torch.autograd.Function):
    """``(alpha [N, D], basis [4, D, rows], buffer [4, N, rows]) -> (table, token)``: the cubic
    tables of all units, ``table[k] = alpha @ basis[k]`` (the tables are linear in ``alpha``;
    ``basis`` holds those of the ``D`` single kernels), and a 0-d ``token`` that carries the
    lookups' gradient back to ``alpha``.

    Returning a dense table-sized gradient from every step's lookup would allocate, fill and
    sum one table-sized tensor per step (slower than the LSTM step itself on a CPU). Instead
    every lookup takes ``token`` as an input and adds its gradient into the shared ``buffer``;
    autograd runs this node's backward only after all of them (it waits for every gradient of
    ``token``), and it maps the sum to ``alpha`` with one matmul. ``table`` itself is not
    differentiable.
    """

    @staticmethod
    def forward(ctx, alpha: Tensor, basis: Tensor, buffer: Tensor) -> tuple[Tensor, Tensor]:
        ctx.save_for_backward(basis)
        ctx.buffer = buffer
        table = torch.matmul(alpha, basis)
        ctx.mark_non_differentiable(table)
        return table, alpha.new_zeros(())

    @staticmethod
    @once_differentiable
    def backward(ctx, _grad_table: Tensor, _grad_token: Tensor) -> tuple[Tensor, None, None]:
        (basis,) = ctx.saved_tensors
        grad_alpha = torch.matmul(ctx.buffer, basis.transpose(1, 2)).sum(0)  # sum_k buffer[k] @ basis[k]^T
        ctx.buffer.zero_()  # ready for another backward through a retained graph
        return grad_alpha, None, None


@dataclass(frozen=True)
class TabulatedKAF:
    """A KAF tabulated for one forward (see :meth:`KAF.tabulate`); call it like the KAF.

    ``table [4, N, rows]`` holds the cubic coefficients (detached); gradients for them go into
    ``buffer`` and reach ``alpha`` through ``token`` when autograd reaches :class:`Tabulate`.
    """

    table: Tensor
    token: Tensor
    buffer: Tensor
    lo: float
    step: float
    scratch: dict = field(default_factory=dict, repr=False, compare=False)  # see _buffer

    def __call__(self, s: Tensor) -> Tensor:
        return _CubicLookup.apply(s, self.table, self.token, self.buffer, self.lo, self.step)

    def lookup(self, s: Tensor, slope: Tensor, where: Tensor) -> Tensor:
        """The values at ``s`` without autograd, for a hand-written backward (the
        :class:`agents.cells.lstm_sequence.GateFunction` protocol; see :func:`_lookup`): the
        slope goes into ``slope``, the table coordinates into ``where``, and the values live in
        a buffer that the next lookup overwrites."""
        return _lookup(s, self.table, self.lo, self.step, self.scratch, slope, where)[0]

    def add_grad(self, where: Tensor, grad: Tensor) -> None:
        """Add the gradient ``grad`` of the values looked up at the table coordinates ``where``
        (from :meth:`lookup`, any shape ``[..., N]``) to the table's (see
        :func:`_add_table_grad`). Overwrites ``grad``."""
        _add_table_grad(self.buffer, where, grad, self.scratch)


class KAFGRUGates(torch.autograd.Function):
    """One KAF-GRU step after the matmuls: ``(proj, rec, h) -> h'``, one autograd node.

    ``proj = W_i x + b_i`` and ``rec = W_h h + b_h``, both ``[B, 3H]`` in the order (r, z, n).
    One node with a hand-written backward instead of a dozen small autograd ops per step: on a
    CPU those ops (their temporaries, concatenations and the engine's work) cost more than the
    step's matmul. (The KAF-LSTM goes further and makes the whole sequence one node.)
    """

    @staticmethod
    def forward(ctx, proj: Tensor, rec: Tensor, h: Tensor, kaf: TabulatedKAF, token: Tensor) -> Tensor:
        H = h.shape[1]
        s = proj[:, : 2 * H] + rec[:, : 2 * H]
        value, slope, u = _lookup(s, kaf.table, kaf.lo, kaf.step)
        gates = torch.sigmoid(value.add_(s).mul_(0.5))
        r, z = gates.split(H, dim=1)
        rec_n = rec[:, 2 * H :]
        n = torch.tanh(torch.addcmul(proj[:, 2 * H :], r, rec_n))
        ctx.save_for_backward(h, gates, n, rec_n, slope, u)
        ctx.kaf = kaf
        return torch.lerp(n, h, z)  # (1 - z) n + z h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h: Tensor) -> tuple[Tensor | None, ...]:
        h, gates, n, rec_n, slope, u = ctx.saved_tensors
        H = h.shape[1]
        r, z = gates.split(H, dim=1)
        grad_proj = torch.empty(h.shape[0], 3 * H, dtype=h.dtype, device=h.device)
        grad_rec = torch.empty_like(grad_proj)
        # n = tanh(a), a = proj_n + r * rec_n
        grad_a = grad_proj[:, 2 * H :]
        torch.mul(grad_h * (1.0 - z), torch.addcmul(torch.ones_like(n), n, n, value=-1.0), out=grad_a)
        torch.mul(grad_a, r, out=grad_rec[:, 2 * H :])
        grad_gates = torch.empty_like(gates)
        torch.mul(grad_a, rec_n, out=grad_gates[:, :H])  # r
        torch.mul(grad_h, h - n, out=grad_gates[:, H:])  # z
        grad_kaf = grad_gates.mul_(gates).mul_(1.0 - gates).mul_(0.5)
        torch.addcmul(grad_kaf, grad_kaf, slope, out=grad_proj[:, : 2 * H])  # (1 + KAF'(s))
        grad_rec[:, : 2 * H] = grad_proj[:, : 2 * H]
        grad_token = None
        if ctx.needs_input_grad[4]:
            _add_table_grad(ctx.kaf.buffer, u, grad_kaf)
            grad_token = grad_kaf.new_zeros(())
        return grad_proj, grad_rec, grad_h * z, None, grad_token

"""NRU-specific tests: the memory update against an independent numpy recomputation, the
sequence node (hand-written backward) against the per-step autograd loop, the perfect-square rule
and the parameter count of the paper's copy-task configuration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from agents.cells import make_cell
from agents.cells import nru_sequence
from agents.cells.nru import NRUCell


def numpy_nru_step(cell: NRUCell, x: np.ndarray, h: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One NRU step written out per sample and per head from the paper's equations (docs/nru.md#cell-equations)."""
    W = {name: getattr(cell, name).weight.detach().numpy() for name in ("hidden", "alpha", "beta", "write", "erase")}
    b = {name: getattr(cell, name).bias.detach().numpy() for name in ("hidden", "alpha", "beta", "write", "erase")}
    k, size, r = cell.num_heads, cell.memory_size, cell.root
    h_new, m_new = np.zeros_like(h), m.copy()
    for i in range(x.shape[0]):
        pre = W["hidden"] @ np.concatenate([x[i], h[i], m[i]]) + b["hidden"]
        if cell.layer_norm:  # LayerNorm at init: weight 1, bias 0, eps 1e-5
            pre = (pre - pre.mean()) / np.sqrt(pre.var() + 1e-5)
        h_new[i] = np.maximum(pre, 0.0)
        u = np.concatenate([h_new[i], m[i]])
        alpha, beta = W["alpha"] @ u + b["alpha"], W["beta"] @ u + b["beta"]
        if cell.use_relu:
            alpha, beta = np.maximum(alpha, 0), np.maximum(beta, 0)
        increment = np.zeros(size)
        for which, strength in (("write", alpha), ("erase", -beta)):
            pq = W[which] @ u + b[which]
            outer = np.outer(pq[:r], pq[r:]).ravel()  # row-major: head j owns entries j*m .. (j+1)*m-1
            for j in range(k):
                v = outer[j * size : (j + 1) * size]
                if cell.use_relu:
                    v = np.maximum(v, 0)
                v = v / max(np.sum(np.abs(v) ** 5) ** 0.2, 1e-12)
                increment += strength[j] * v / k
        m_new[i] = m[i] + increment
    return h_new, m_new


@pytest.mark.parametrize(
    "use_relu,layer_norm,memory_size,num_heads",
    [
        (False, False, 8, 2),
        (True, False, 8, 2),
        (True, False, 16, 4),
        (False, True, 8, 2),  # layer_norm: the per-step loop
        (False, False, 9, 4),  # 4 does not divide sqrt(36) = 6, heads split rows: the per-step loop
    ],
)
def test_memory_increment_matches_independent_recomputation(
    use_relu: bool, layer_norm: bool, memory_size: int, num_heads: int
) -> None:
    torch.manual_seed(0)
    cell = make_cell(
        "nru", 3, 5, memory_size=memory_size, num_heads=num_heads, use_relu=use_relu, layer_norm=layer_norm
    ).double()
    inputs = torch.randn(4, 3, 3, dtype=torch.float64)
    outputs, (h_T, m_T) = cell(inputs)
    h, m = np.zeros((3, 5)), np.zeros((3, memory_size))
    for t in range(4):
        m_prev = m
        h, m = numpy_nru_step(cell, inputs[t].numpy(), h, m)
        np.testing.assert_allclose(outputs[t].detach().numpy(), h, rtol=1e-10, atol=1e-12)
        assert np.abs(m - m_prev).max() > 1e-3  # the memory really moves
    np.testing.assert_allclose(m_T.detach().numpy(), m, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h_T.detach().numpy(), h, rtol=1e-10, atol=1e-12)


def test_step_equals_forward_with_resets() -> None:
    torch.manual_seed(1)
    cell = make_cell("nru", 2, 4, memory_size=4, num_heads=1)
    inputs = torch.randn(5, 2, 2)
    resets = torch.zeros(5, 2, dtype=torch.bool)
    resets[3, 0] = True
    out, state = cell(inputs, resets=resets)
    fresh, _ = cell(inputs[3:, :1])
    torch.testing.assert_close(out[3:, :1], fresh)
    s = cell.initial_state(2)
    for t in range(3):
        o, s = cell.step(inputs[t], s)
        torch.testing.assert_close(o, out[t])


def test_non_square_heads_times_memory_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"num_heads=3.*memory_size=10"):
        make_cell("nru", 4, 8, memory_size=10, num_heads=3)
    NRUCell(4, 8, memory_size=9, num_heads=1)  # 9 is a square: fine


@pytest.mark.parametrize("kwargs", [dict(memory_size=0), dict(num_heads=0), dict(use_relu="yes"), dict(layer_norm=1)])
def test_bad_options_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        make_cell("nru", 4, 8, **kwargs)


def test_parameter_count_of_copy_configuration() -> None:
    """docs/nru.md#experiments-and-settings: NRU hidden 80, memory 64, 4 heads, 10 inputs and a 9-way readout: 23,569."""
    cell = make_cell("nru", 10, 80, memory_size=64, num_heads=4)
    readout = nn.Linear(80, 9)
    total = sum(p.numel() for p in cell.parameters()) + sum(p.numel() for p in readout.parameters())
    assert total == 23_569
    assert cell.output_size == 80


def test_all_zero_directions_keep_gradients_finite() -> None:
    """With use_relu, a head whose outer product is all negative has a zero direction."""
    torch.manual_seed(0)
    cell = make_cell("nru", 2, 3, memory_size=4, num_heads=1, use_relu=True)
    with torch.no_grad():
        for lin in (cell.write, cell.erase):
            lin.weight.zero_()
            lin.bias.copy_(torch.tensor([-1.0, -1.0, 1.0, 1.0]))  # p = -1, q = 1: p q^T < 0
    out, (_, mem) = cell(torch.randn(3, 2, 2))
    assert torch.equal(mem, torch.zeros_like(mem))
    (out.sum() + mem.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in cell.parameters() if p.grad is not None)


def _run(fn, cell: NRUCell, inputs: torch.Tensor, state: tuple, resets: torch.Tensor | None) -> list[torch.Tensor]:
    """Outputs, final state and the gradients of a loss weighting all three (inputs, incoming
    state, every parameter) for one implementation ``fn`` (``cell.forward`` or ``cell.loop``)."""
    out, (h, m) = fn(inputs, state, resets)
    g = torch.Generator().manual_seed(5)
    loss = (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum()
    loss = loss + (h * torch.randn(h.shape, generator=g, dtype=h.dtype)).sum() + (m * m).sum()
    wrt = [t for t in (inputs, *state, *cell.parameters()) if t.requires_grad]
    return [out, h, m, *torch.autograd.grad(loss, wrt)]


@pytest.mark.parametrize("use_relu", [False, True])
@pytest.mark.parametrize("chunk_columns", [2048, 6])  # 6 columns at B=3: chunks of 2 steps, one of 1
def test_sequence_node_equals_autograd_loop(use_relu: bool, chunk_columns: int, monkeypatch) -> None:
    """Float64: the one-node sequence and the per-step autograd loop agree to 1e-10 in outputs,
    final state and all gradients, from a non-zero state, with resets at step 0 and back to back
    (the back-to-back pair straddles a chunk boundary when chunks are 2 steps)."""
    monkeypatch.setattr(nru_sequence, "_CHUNK_COLUMNS", chunk_columns)
    torch.manual_seed(3)
    cell = make_cell("nru", 3, 5, memory_size=16, num_heads=4, use_relu=use_relu).double()
    inputs = torch.randn(7, 3, 3, dtype=torch.float64, requires_grad=True)
    state = tuple(torch.randn(3, n, dtype=torch.float64, requires_grad=True) for n in (5, 16))
    resets = torch.zeros(7, 3, dtype=torch.bool)
    resets[0, 1] = True
    resets[3, 0] = resets[4, 0] = True
    node = _run(cell.forward, cell, inputs, state, resets)
    assert type(node[0].grad_fn).__name__ == "NRUSequenceBackward"  # not the loop
    loop = _run(cell.loop, cell, inputs, state, resets)
    assert len(node) == 3 + 3 + len(list(cell.parameters()))
    for a, b in zip(node, loop, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    assert node[4].abs().max() > 0 and node[4][1].abs().max() == 0  # h0 of the sample reset at step 0


def test_sequence_node_without_resets_or_parameter_gradients() -> None:
    """No resets, frozen parameters: only the input and state gradients, still equal to the loop."""
    torch.manual_seed(4)
    cell = make_cell("nru", 2, 4, memory_size=4, num_heads=4).double().requires_grad_(False)
    inputs = torch.randn(5, 2, 2, dtype=torch.float64, requires_grad=True)
    state = tuple(torch.randn(2, n, dtype=torch.float64, requires_grad=True) for n in (4, 4))
    node, loop = _run(cell.forward, cell, inputs, state, None), _run(cell.loop, cell, inputs, state, None)
    for a, b in zip(node, loop, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("use_relu", [False, True])
def test_sequence_node_gradcheck(use_relu: bool) -> None:
    """Finite differences through the node w.r.t. inputs, state and every parameter (two heads
    per unit, so the per-head slices of p are exercised)."""
    torch.manual_seed(6)
    cell = make_cell("nru", 2, 3, memory_size=8, num_heads=2, use_relu=use_relu).double()
    names = [n for n, _ in cell.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in cell.parameters()]
    inputs = torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True)
    h0, m0 = (torch.randn(2, n, dtype=torch.float64, requires_grad=True) for n in (3, 8))
    resets = torch.tensor([[False, True], [False, False], [True, False]])

    def run(x, h, m, *tensors):
        out, (_, m_T) = torch.func.functional_call(cell, dict(zip(names, tensors)), (x, (h, m), resets))
        return out, m_T

    assert torch.autograd.gradcheck(run, (inputs, h0, m0, *params), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_zero_directions_match_the_loop() -> None:
    """With use_relu, one head of a write unit gets an all-zero direction (the norm clamps hold):
    the node's gradients stay finite and equal to the loop's."""
    torch.manual_seed(7)
    cell = make_cell("nru", 2, 3, memory_size=8, num_heads=2, use_relu=True).double()
    with torch.no_grad():  # write p = (-1, -1, 1, 1) and q > 0: head 0 (rows 0, 1) is all zero
        cell.write.weight.zero_()
        cell.write.bias.copy_(torch.tensor([-1.0, -1.0, 1.0, 1.0, 1.0, 2.0, 3.0, 4.0], dtype=torch.float64))
    inputs = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    state = tuple(torch.zeros(2, n, dtype=torch.float64, requires_grad=True) for n in (3, 8))
    node = _run(cell.forward, cell, inputs, state, None)
    loop = _run(cell.loop, cell, inputs, state, None)
    assert all(torch.isfinite(t).all() for t in node)
    for a, b in zip(node, loop, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_float32_node_matches_float64() -> None:
    """The node keeps the cell's dtype and its float32 result is the float64 one to rounding."""
    torch.manual_seed(8)
    cell = make_cell("nru", 3, 6, memory_size=16, num_heads=4)
    inputs = torch.randn(20, 4, 3)
    out32, (_, m32) = cell(inputs)
    out64, (_, m64) = cell.double()(inputs.double())
    assert out32.dtype == m32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), out64, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(m32.double(), m64, rtol=1e-4, atol=1e-5)


def test_empty_sequence_returns_the_incoming_state() -> None:
    cell = make_cell("nru", 2, 3, memory_size=4, num_heads=1)
    state = (torch.randn(2, 3), torch.randn(2, 4))
    out, (h, m) = cell(torch.zeros(0, 2, 2), state)
    assert out.shape == (0, 2, 3)
    assert h is state[0] and m is state[1]


def _reference_formula_run(cell: NRUCell, inputs: torch.Tensor, state: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """The memory update as the authors' code writes it (``apsarath/NRU`` ``NRUCell.forward``):
    each head's direction formed as a ``[k, m]`` block of ``p q^T`` and divided by
    ``F.normalize(p=5, eps=1e-12)``, separate write and erase terms, mean over heads; autograd."""
    k, size = cell.num_heads, cell.memory_size
    h, m = state
    outs = []
    for x in inputs.unbind(0):
        h = torch.relu(cell.hidden(torch.cat([x, h, m], 1)))
        u = torch.cat([h, m], 1)
        increment = 0
        for strength, lin, sign in ((cell.alpha(u), cell.write, 1.0), (cell.beta(u), cell.erase, -1.0)):
            p, q = lin(u).chunk(2, dim=1)
            v = torch.bmm(p.unsqueeze(2), q.unsqueeze(1)).view(-1, k, size)
            v = nn.functional.normalize(v, p=5, dim=2, eps=1e-12)
            increment = increment + sign * strength.unsqueeze(2) * v
        m = m + increment.mean(1)
        outs.append(h)
    return torch.stack(outs), m


def test_float32_overflowing_l5_norm_gives_the_reference_gradient() -> None:
    """In float32 the fifth powers of ``||V||_5`` overflow once a direction's entries reach about
    5e7 (FLT_MAX ** 0.2): the norm is inf, the direction ``V / inf`` is 0 and the head stops
    writing. An untrained NRU gets there on long sequences (docs/nru.md#pitfalls), and the
    authors' autograd then passes a zero gradient through that head, so their training continues.
    The node must do the same, not compute 0 * inf = nan: one head's entries are ~1e8 (overflow),
    the other's ~1e4; outputs, memory and gradients equal the reference formula's."""
    torch.manual_seed(9)
    cell = make_cell("nru", 2, 3, memory_size=8, num_heads=2)  # r = 4, head j = rows 2j, 2j+1 of p q^T
    with torch.no_grad():
        for lin in (cell.write, cell.erase):
            lin.weight.mul_(1e-3)
            # p = (1e4, -1e4, 1, 2): head 0's entries ~1e8 overflow, head 1's ~1e4 do not.
            lin.bias.copy_(torch.tensor([1e4, -1e4, 1.0, 2.0, 1e4, 2e4, -1e4, 5e3]))
    inputs = torch.randn(3, 2, 2, requires_grad=True)
    state = tuple(torch.randn(2, n, requires_grad=True) for n in (3, 8))
    loss_weights = torch.randn(3, 2, 3), torch.randn(2, 8)

    def grads(fn) -> list[torch.Tensor]:
        out, m = fn()
        loss = (out * loss_weights[0]).sum() + (m * loss_weights[1]).sum()
        return [out, m, *torch.autograd.grad(loss, [inputs, *state, *cell.parameters()])]

    reference = grads(lambda: _reference_formula_run(cell, inputs, state))
    assert all(torch.isfinite(t).all() for t in reference)
    with torch.no_grad():  # the premise: head 0's norm overflows, head 1's does not
        u = torch.cat([torch.relu(cell.hidden(torch.cat([inputs[0], *state], 1))), state[1]], 1)
        pq = cell.write(u)
        v = nn.functional.normalize((pq[:, :4, None] * pq[:, None, 4:]).view(2, 2, 8), p=5, dim=2)
        assert (v[:, 0] == 0).all() and (v[:, 1].abs().amax(1) > 0.5).all()
    node = grads(lambda: (lambda out, s: (out, s[1]))(*cell(inputs, state)))
    assert all(torch.isfinite(t).all() for t in node)
    for a, b in zip(node, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)

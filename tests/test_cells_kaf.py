"""KAF layer and KAF-gated LSTM/GRU: the identity init reproduces a sigmoid gate and the plain
LSTM/GRU, the tabulated evaluation matches the exact kernel sum in values and gradients, and
the bandwidth rule is the released code's."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from agents.cells import lstm_sequence, make_cell
from agents.cells.kaf import KAF, flexible_gate


def copy_weights(cell: nn.Module, reference: nn.Module) -> None:
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(reference, f"{name}_l0").copy_(getattr(cell, name))


@pytest.mark.parametrize("boundary", [3.0, 4.0])
def test_identity_init_gate_matches_sigmoid_on_minus3_to_3(boundary: float) -> None:
    kaf = KAF(4, boundary=boundary).double()
    kaf.reset_alpha()
    s = torch.linspace(-3, 3, 601, dtype=torch.float64).unsqueeze(1).expand(601, 4)
    exact = flexible_gate(kaf, s)
    tabulated = flexible_gate(kaf.tabulate(), s)
    assert (exact - torch.sigmoid(s)).abs().max().item() < 1e-3
    assert (tabulated - torch.sigmoid(s)).abs().max().item() < 1e-3


def test_exact_kaf_is_the_kernel_expansion() -> None:
    """KAF(s) = sum_d alpha_d exp(-gamma (s - d)^2), recomputed point by point."""
    torch.manual_seed(0)
    kaf = KAF(2, dict_size=5, boundary=2.0, init="random").double()
    s = torch.tensor([[-2.5, 0.3], [1.1, 4.0]], dtype=torch.float64)
    grid = [-2.0, -1.0, 0.0, 1.0, 2.0]
    gamma = 1.0 / 8.0  # spacing 1, bandwidth 2
    alpha = kaf.alpha.detach()
    for b in range(2):
        for n in range(2):
            want = sum(alpha[n, d].item() * math.exp(-gamma * (s[b, n].item() - grid[d]) ** 2) for d in range(5))
            assert kaf(s)[b, n].item() == pytest.approx(want, rel=1e-12)


def test_bandwidth_rule() -> None:
    kaf = KAF(1, dict_size=11, boundary=5.0)  # spacing 1
    assert kaf.gamma == pytest.approx(1 / 8)
    assert KAF(1, dict_size=11, boundary=5.0, bandwidth=math.sqrt(3)).gamma == pytest.approx(1 / 6)


@pytest.mark.parametrize("init", ["identity", "random"])
def test_tabulated_kaf_matches_exact_in_values_and_gradients(init: str) -> None:
    torch.manual_seed(0)
    kaf = KAF(5, init=init).double()
    kaf.reset_alpha()
    s = torch.cat([4 * torch.randn(40, 5), torch.tensor([[-30.0, -11.0, 0.0, 11.0, 30.0]])]).double()
    s.requires_grad_(True)
    fn = kaf.tabulate()
    # Two uses of the same table in one graph, as in a recurrent loop.
    exact = kaf(s) + kaf(0.5 * s)
    approx = fn(s) + fn(0.5 * s)
    torch.testing.assert_close(approx, exact, rtol=0, atol=5e-6)
    g_exact = torch.autograd.grad((exact * torch.arange(5.0)).sum(), (s, kaf.alpha))
    g_approx = torch.autograd.grad((approx * torch.arange(5.0)).sum(), (s, kaf.alpha))
    torch.testing.assert_close(g_approx[0], g_exact[0], rtol=0, atol=1e-3)
    torch.testing.assert_close(g_approx[1], g_exact[1], rtol=0, atol=1e-5)


def test_tabulated_gradient_survives_a_second_backward() -> None:
    torch.manual_seed(0)
    kaf = KAF(3, init="random").double()
    s = torch.randn(4, 3, dtype=torch.float64)
    out = kaf.tabulate()(s).sum()
    (first,) = torch.autograd.grad(out, kaf.alpha, retain_graph=True)
    (second,) = torch.autograd.grad(out, kaf.alpha)
    torch.testing.assert_close(first, second)


def test_kaf_lstm_equals_lstm_at_identity_init() -> None:
    """Tolerance 1e-4: the KRR identity fit leaves gate errors below 1e-4 on [-3, 3]."""
    torch.manual_seed(0)
    cell = make_cell("kaf-lstm", 3, 6).double()
    cell.kaf.reset_alpha()
    lstm = nn.LSTM(3, 6).double()
    copy_weights(cell, lstm)
    x = torch.randn(8, 2, 3, dtype=torch.float64)
    out, (h, c) = cell(x)
    ref, (h_ref, c_ref) = lstm(x)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-4)
    torch.testing.assert_close(c, c_ref[0], rtol=0, atol=1e-4)


def test_kaf_gru_equals_gru_at_identity_init() -> None:
    torch.manual_seed(0)
    cell = make_cell("kaf-gru", 3, 6).double()
    cell.kaf.reset_alpha()
    gru = nn.GRU(3, 6).double()
    copy_weights(cell, gru)
    x = torch.randn(8, 2, 3, dtype=torch.float64)
    out, h = cell(x)
    ref, _ = gru(x)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-4)


@pytest.mark.parametrize("name,reference", [("kaf-lstm", nn.LSTM), ("kaf-gru", nn.GRU)])
def test_random_init_differs_from_the_plain_cell(name: str, reference: type) -> None:
    torch.manual_seed(0)
    cell = make_cell(name, 3, 6, kaf_init="random")
    plain = reference(3, 6)
    copy_weights(cell, plain)
    x = torch.randn(8, 2, 3)
    assert (cell(x)[0] - plain(x)[0]).abs().max().item() > 1e-2


def test_step_equals_forward() -> None:
    torch.manual_seed(0)
    cell = make_cell("kaf-lstm", 2, 3, kaf_init="random")
    x = torch.randn(4, 2, 2)
    out, _ = cell(x)
    state = cell.initial_state(2)
    for t in range(4):
        o, state = cell.step(x[t], state)
        torch.testing.assert_close(o, out[t])


def test_parameters_per_gate_and_unit() -> None:
    lstm = make_cell("kaf-lstm", 2, 5, dict_size=7)
    gru = make_cell("kaf-gru", 2, 5, dict_size=7)
    assert lstm.kaf.alpha.shape == (3 * 5, 7)
    assert gru.kaf.alpha.shape == (2 * 5, 7)
    assert sum(p.numel() for p in lstm.parameters()) == sum(p.numel() for p in nn.LSTM(2, 5).parameters()) + 15 * 7


@pytest.mark.parametrize("kwargs", [dict(dict_size=1), dict(boundary=0.0), dict(kaf_init="zeros"), dict(bandwidth=-1.0)])
def test_bad_options_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        make_cell("kaf-lstm", 2, 3, **kwargs)


def reference_kaf_lstm(cell: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """KAF-LSTM written out with plain autograd ops and the exact kernel sum (nn.LSTM order i, f, g, o)."""
    H = cell.hidden_size
    h = c = x.new_zeros(x.shape[1], H)
    outs = []
    for x_t in x:
        pre = x_t @ cell.weight_ih.t() + cell.bias_ih + h @ cell.weight_hh.t() + cell.bias_hh
        i, f, g, o = pre.split(H, dim=1)
        i, f, o = flexible_gate(cell.kaf, torch.cat([i, f, o], dim=1)).split(H, dim=1)
        c = f * c + i * torch.tanh(g)
        h = o * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs)


def reference_kaf_gru(cell: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """KAF-GRU with plain autograd ops and the exact kernel sum (nn.GRU order r, z, n)."""
    H = cell.hidden_size
    h = x.new_zeros(x.shape[1], H)
    outs = []
    for x_t in x:
        xr, xz, xn = (x_t @ cell.weight_ih.t() + cell.bias_ih).split(H, dim=1)
        hr, hz, hn = (h @ cell.weight_hh.t() + cell.bias_hh).split(H, dim=1)
        r, z = flexible_gate(cell.kaf, torch.cat([xr + hr, xz + hz], dim=1)).split(H, dim=1)
        n = torch.tanh(xn + r * hn)
        h = (1 - z) * n + z * h
        outs.append(h)
    return torch.stack(outs)


@pytest.mark.parametrize("chunk", [None, 4], ids=["one-chunk", "chunks-of-4"])
@pytest.mark.parametrize("name,reference", [("kaf-lstm", reference_kaf_lstm), ("kaf-gru", reference_kaf_gru)])
def test_fused_cell_matches_plain_autograd_with_exact_kaf(name: str, reference, chunk: int | None, monkeypatch) -> None:
    """The fused gate step (hand-written backward, table gradients collected per sequence)
    against the cell's equations in plain autograd with the exact kernel sum: outputs and the
    gradients of inputs, weights and alpha. Random KAF init so every gate is far from a sigmoid.
    The KAF-LSTM's backward also runs in chunks of 4 steps (6 steps: a partial last chunk),
    which is how it adds the table gradient."""
    if chunk is not None:
        monkeypatch.setattr(lstm_sequence, "_chunk_steps", lambda batch, hidden: chunk)
    torch.manual_seed(0)
    cell = make_cell(name, 3, 4, kaf_init="random").double()
    x = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(6, 2, 4, dtype=torch.float64)
    leaves = (x, *cell.parameters())
    out = cell(x)[0]
    ref = reference(cell, x)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
    grads = torch.autograd.grad((out * weights).sum(), leaves)
    ref_grads = torch.autograd.grad((ref * weights).sum(), leaves)
    for (pname, _), g, g_ref in zip([("x", x), *cell.named_parameters()], grads, ref_grads):
        torch.testing.assert_close(g, g_ref, rtol=0, atol=1e-4, msg=lambda m: f"{pname}: {m}")


@pytest.mark.parametrize("name", ["kaf-lstm", "kaf-gru"])
def test_nan_input_propagates_to_its_sample_instead_of_failing(name: str) -> None:
    """A NaN pre-activation gives NaN outputs from that step on for that sample only (the
    lookup must not turn it into an out-of-range table index)."""
    torch.manual_seed(0)
    cell = make_cell(name, 3, 4)
    x = torch.randn(5, 2, 3)
    x[2, 0, 1] = float("nan")
    out = cell(x)[0]
    assert out[2:, 0].isnan().all()
    assert out[:2].isfinite().all() and out[:, 1].isfinite().all()
    out.sum().backward()
    assert cell.kaf.alpha.grad.isnan().any()


def test_kaf_lstm_gradient_survives_a_second_backward() -> None:
    """A retained graph gives the same gradients twice: the sequence node keeps its saved
    values intact and the table's gradient buffer is emptied after each use."""
    torch.manual_seed(0)
    cell = make_cell("kaf-lstm", 3, 4, kaf_init="random")
    out = cell(torch.randn(5, 2, 3))[0].sum()
    first = torch.autograd.grad(out, list(cell.parameters()), retain_graph=True)
    second = torch.autograd.grad(out, list(cell.parameters()))
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, rtol=0, atol=0)

"""rnn, lstm, gru, janet and chrono initialisation checked against independent facts:
parity with nn.LSTM / nn.GRU / nn.RNN, equations recomputed step by step, and the time
constants the chrono biases imply."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from agents.cells import fused as fused_module
from agents.cells import make_cell, map_state
from agents.cells.gru import GRUCell
from agents.cells.janet import JANETCell
from agents.cells.lstm import LSTMCell
from agents.cells.rnn import GatedRNNCell, LeakyRNNCell, RNNCell
from agents.init import chrono_bias, chrono_init

I, H, T, B = 3, 5, 7, 4


def seeded_inputs(*shape, dtype=torch.float32, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


# -- parity with PyTorch's layers -------------------------------------------------------------

PARITY = {
    "lstm": (lambda: LSTMCell(I, H, forget_bias=None), lambda: nn.LSTM(I, H)),
    "gru": (lambda: GRUCell(I, H), lambda: nn.GRU(I, H)),
    "rnn-tanh": (lambda: RNNCell(I, H, recurrent_init="default"), lambda: nn.RNN(I, H)),
    "rnn-relu": (lambda: RNNCell(I, H, nonlinearity="relu"), lambda: nn.RNN(I, H, nonlinearity="relu")),
}


def random_biases(cell) -> None:
    with torch.no_grad():
        cell.bias_ih.normal_()
        cell.bias_hh.normal_()


@pytest.mark.parametrize("kind", sorted(PARITY))
@pytest.mark.parametrize("path", ["loop", "loop-with-resets", "forward-with-resets"])
def test_matches_torch_layer_in_outputs_and_gradients(kind, path):
    """Every path equals the PyTorch layer with the same weights (1e-5), outputs and gradients."""
    make, make_ref = PARITY[kind]
    torch.manual_seed(0)
    cell, ref = make(), make_ref()
    random_biases(cell)
    ref.load_state_dict({f"{k}_l0": getattr(cell, k) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
    x = seeded_inputs(T, B, I).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    state = tuple(seeded_inputs(B, H, seed=s).requires_grad_() for s in (1, 2))
    if kind != "lstm":
        state = state[0]
    ref_state = tuple(s.detach().clone().unsqueeze(0).requires_grad_() for s in (state if kind == "lstm" else (state,)))

    no_resets = torch.zeros(T, B, dtype=torch.bool)
    if path == "loop":
        out, final = cell.loop(x, state)
    elif path == "loop-with-resets":
        out, final = cell.loop(x, state, no_resets)
    else:
        out, final = cell(x, state, no_resets)
    ref_out, ref_final = ref(x_ref, ref_state if kind == "lstm" else ref_state[0])

    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    finals = final if kind == "lstm" else (final,)
    ref_finals = ref_final if kind == "lstm" else (ref_final,)
    for s, r in zip(finals, ref_finals, strict=True):
        torch.testing.assert_close(s, r[0], atol=1e-5, rtol=1e-5)
    weights = seeded_inputs(T, B, H, seed=3)
    ((out * weights).sum() + sum(s.sum() for s in finals)).backward()
    ((ref_out * weights).sum() + sum(r.sum() for r in ref_finals)).backward()
    torch.testing.assert_close(x.grad, x_ref.grad, atol=1e-5, rtol=1e-5)
    for s, r in zip(state if kind == "lstm" else (state,), ref_state):
        torch.testing.assert_close(s.grad, r.grad[0], atol=1e-5, rtol=1e-5)
    for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        torch.testing.assert_close(getattr(cell, k).grad, getattr(ref, f"{k}_l0").grad, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn"])
def test_fused_equals_loop_with_resets(name):
    """The fused kernel cut at reset steps equals the per-step loop, outputs and gradients."""
    torch.manual_seed(0)
    cell = make_cell(name, I, H).double()
    x = seeded_inputs(T, B, I, dtype=torch.float64).requires_grad_()
    resets = torch.rand(T, B, generator=torch.Generator().manual_seed(4)) < 0.25
    resets[3, 1] = resets[0, 2] = True
    results = []
    for run in (cell.forward, cell.loop):
        cell.zero_grad()
        x.grad = None
        out, state = run(x, cell.initial_state(B), resets)
        out.pow(2).sum().backward()
        results.append((out, state, x.grad, [p.grad.clone() for p in cell.parameters()]))
    (out, state, gx, gp), (out2, state2, gx2, gp2) = results
    torch.testing.assert_close(out, out2)
    torch.testing.assert_close(torch.stack(list(state) if name == "lstm" else [state]),
                               torch.stack(list(state2) if name == "lstm" else [state2]))
    torch.testing.assert_close(gx, gx2)
    for a, b in zip(gp, gp2, strict=True):
        torch.testing.assert_close(a, b)


def count_kernel_calls(monkeypatch, mode: str) -> list[int]:
    """The lengths of the fused kernel calls of ``mode`` made from now on."""
    calls = []
    original = fused_module._KERNELS[mode]
    monkeypatch.setitem(fused_module._KERNELS, mode, lambda x, *a: calls.append(x.shape[0]) or original(x, *a))
    return calls


@pytest.mark.parametrize("name", list(PARITY))
def test_fused_reset_paths_equal_the_loop(name, monkeypatch):
    """With resets inside the sequence (a reset at step 0, back-to-back resets, one at the last
    step) the fused path equals the per-step loop from a non-zero incoming state: outputs, final
    state and the gradients of inputs, incoming state and parameters. LSTM, GRU and ReLU RNN run
    the kernel once, over T + (most resets of one sample) steps; the tanh RNN once per piece."""
    torch.manual_seed(0)
    cell = PARITY[name][0]().double()
    random_biases(cell)  # the GRU's input bias takes a detour through the input at resets
    calls = count_kernel_calls(monkeypatch, cell.rnn.mode)
    steps, batch = 9, 5
    x = seeded_inputs(steps, batch, I, dtype=torch.float64).requires_grad_()
    resets = torch.rand(steps, batch, generator=torch.Generator().manual_seed(2)) < 0.3
    resets[0, 1] = resets[3, 4] = resets[4, 4] = resets[8, 3] = True
    flat0 = seeded_inputs(2 if name == "lstm" else 1, batch, H, dtype=torch.float64, seed=3).requires_grad_()
    results = []
    for run in (cell.forward, cell.loop):
        cell.zero_grad()
        x.grad = flat0.grad = None
        state0 = tuple(flat0.unbind(0)) if name == "lstm" else flat0[0]
        out, state = run(x, state0, resets)
        final = torch.stack(state) if name == "lstm" else state
        (out.pow(2).sum() + final.sin().sum()).backward()
        results.append([out, final, x.grad, flat0.grad] + [p.grad.clone() for p in cell.parameters()])
        if run == cell.forward:
            if name == "rnn-tanh":
                assert (len(calls), sum(calls)) == (int(resets[1:].any(1).sum()) + 1, steps)
            else:
                assert calls == [steps + int(resets[1:].sum(0).max())]
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn-relu"])
def test_reset_step_zeroes_the_state_and_its_gradient_exactly(name):
    """In float32, where the kernel's own arithmetic rounds: outputs from a reset on depend on
    nothing before it (the gradient of every earlier input and of the incoming state is exactly
    zero) and equal a fresh run of that sample from the reset."""
    torch.manual_seed(0)
    cell = PARITY[name][0]()
    random_biases(cell)
    steps, batch, t, b = 12, 3, 5, 1
    x = seeded_inputs(steps, batch, I).requires_grad_()
    resets = torch.zeros(steps, batch, dtype=torch.bool)
    resets[t, b] = resets[3, 0] = True
    state0 = map_state(lambda s: s.normal_().requires_grad_(), cell.initial_state(batch))
    out, _ = cell(x, state0, resets)
    out[t:, b].sum().backward()
    assert torch.equal(x.grad[:t], torch.zeros_like(x.grad[:t]))
    assert all(torch.equal(s.grad, torch.zeros_like(s.grad)) for s in (state0 if name == "lstm" else [state0]))
    assert x.grad[t:, b].abs().sum() > 0
    fresh, _ = cell(x[t:, b : b + 1].detach())
    torch.testing.assert_close(out[t:, b : b + 1], fresh, rtol=1e-5, atol=1e-6)


# -- equations recomputed step by step --------------------------------------------------------


def test_peephole_lstm_matches_independent_computation():
    torch.manual_seed(0)
    cell = LSTMCell(I, H, peepholes=True).double()
    with torch.no_grad():
        cell.peephole.normal_()
        random_biases(cell)
    x = seeded_inputs(T, B, I, dtype=torch.float64)
    h = seeded_inputs(B, H, dtype=torch.float64, seed=1)
    c = seeded_inputs(B, H, dtype=torch.float64, seed=2)
    out, (h_last, c_last) = cell(x, (h, c))

    W = dict(zip("ifgo", cell.weight_ih.detach().split(H)))
    U = dict(zip("ifgo", cell.weight_hh.detach().split(H)))
    b = dict(zip("ifgo", (cell.bias_ih + cell.bias_hh).detach().split(H)))
    p_i, p_f, p_o = cell.peephole.detach()
    for t in range(T):
        def pre(k):
            return x[t] @ W[k].T + h @ U[k].T + b[k]

        i = torch.sigmoid(pre("i") + p_i * c)  # Graves (2013): i and f see the old cell
        f = torch.sigmoid(pre("f") + p_f * c)
        c = f * c + i * torch.tanh(pre("g"))
        o = torch.sigmoid(pre("o") + p_o * c)  # o sees the new cell
        h = o * torch.tanh(c)
        torch.testing.assert_close(out[t], h)
    torch.testing.assert_close(h_last, h)
    torch.testing.assert_close(c_last, c)


def test_zero_peepholes_equal_plain_lstm():
    torch.manual_seed(0)
    cell = LSTMCell(I, H, peepholes=True)
    plain = LSTMCell(I, H)
    with torch.no_grad():
        cell.peephole.zero_()
    plain.load_state_dict({k: v for k, v in cell.state_dict().items() if k != "peephole"})
    x = seeded_inputs(T, B, I)
    torch.testing.assert_close(cell(x)[0], plain(x)[0])


def test_rnn_layer_norm_relu_matches_independent_computation():
    torch.manual_seed(0)
    cell = RNNCell(I, H, nonlinearity="relu", recurrent_init="orthogonal", layer_norm=True).double()
    with torch.no_grad():
        random_biases(cell)
        cell.norm.weight.normal_()
        cell.norm.bias.normal_()
    x = seeded_inputs(T, B, I, dtype=torch.float64)
    h = seeded_inputs(B, H, dtype=torch.float64, seed=1).abs()
    out, last = cell(x, h)
    W, U = cell.weight_ih.detach(), cell.weight_hh.detach()
    b = (cell.bias_ih + cell.bias_hh).detach()
    gain, shift = cell.norm.weight.detach(), cell.norm.bias.detach()
    for t in range(T):
        a = x[t] @ W.T + h @ U.T + b
        a = (a - a.mean(1, keepdim=True)) / torch.sqrt(a.var(1, unbiased=False, keepdim=True) + 1e-5)
        h = torch.clamp(gain * a + shift, min=0)
        torch.testing.assert_close(out[t], h)
    torch.testing.assert_close(last, h)


def test_janet_matches_independent_computation():
    torch.manual_seed(0)
    cell = JANETCell(I, H, t_max=30).double()
    with torch.no_grad():
        cell.bias.normal_()
    x = seeded_inputs(T, B, I, dtype=torch.float64)
    h = seeded_inputs(B, H, dtype=torch.float64, seed=1)
    out, last = cell(x, h)
    (W_f, W_c), (U_f, U_c) = cell.weight_ih.detach().split(H), cell.weight_hh.detach().split(H)
    b_f, b_c = cell.bias.detach().split(H)
    for t in range(T):
        f = torch.sigmoid(x[t] @ W_f.T + h @ U_f.T + b_f)
        h = f * h + (1 - f) * torch.tanh(x[t] @ W_c.T + h @ U_c.T + b_c)
        torch.testing.assert_close(out[t], h)
    torch.testing.assert_close(last, h)


# -- initialisation ---------------------------------------------------------------------------


def test_rnn_identity_init_holds_a_relu_state():
    """IRNN: U = I and zero biases, so with no input a non-negative state is kept exactly."""
    cell = RNNCell(I, H, nonlinearity="relu", recurrent_init="identity")
    torch.testing.assert_close(cell.weight_hh, torch.eye(H), rtol=0, atol=0)
    assert not cell.bias_ih.any() and not cell.bias_hh.any()
    h0 = seeded_inputs(B, H).abs()
    out, last = cell(torch.zeros(50, B, I), h0)
    torch.testing.assert_close(last, h0, rtol=0, atol=0)


def test_rnn_orthogonal_and_default_init():
    torch.manual_seed(0)
    ortho = RNNCell(I, 16)
    torch.testing.assert_close(ortho.weight_hh @ ortho.weight_hh.T, torch.eye(16), atol=1e-5, rtol=0)
    assert (ortho.weight_hh - torch.eye(16)).abs().max() > 0.1
    default = RNNCell(I, 16, recurrent_init="default")
    bound = 16**-0.5
    assert default.weight_hh.abs().max() <= bound and default.bias_hh.abs().max() > 0


def test_lstm_forget_bias_on_one_vector_only():
    cell = LSTMCell(I, H, forget_bias=2.5)
    expected = torch.zeros(4 * H)
    expected[H : 2 * H] = 2.5
    torch.testing.assert_close(cell.bias_ih.detach(), expected, rtol=0, atol=0)
    assert not cell.bias_hh.any()
    assert LSTMCell(I, H).bias_ih[H : 2 * H].eq(1.0).all()  # documented default
    torch.manual_seed(0)
    untouched = LSTMCell(I, H, forget_bias=None)
    assert untouched.bias_hh.abs().max() > 0 and untouched.bias_ih.abs().max() <= H**-0.5


def test_gru_default_biases_are_zero():
    cell = GRUCell(I, H)
    assert not cell.bias_ih.any() and not cell.bias_hh.any()


LSTM_LIKE = {
    "LSTMCell": lambda: LSTMCell(I, H, init="chrono", t_max=40),
    "nn.LSTM": lambda: chrono_init(nn.LSTM(I, H, num_layers=2, bidirectional=True), 40),
    "nn.LSTMCell": lambda: chrono_init(nn.LSTMCell(I, H), 40),
}
GRU_LIKE = {
    "GRUCell": lambda: GRUCell(I, H, init="chrono", t_max=40),
    "nn.GRU": lambda: chrono_init(nn.GRU(I, H, num_layers=2, bidirectional=True), 40),
    "nn.GRUCell": lambda: chrono_init(nn.GRUCell(I, H), 40),
}


def bias_pairs(module):
    ih = sorted(n for n, _ in module.named_parameters() if "bias_ih" in n)
    params = dict(module.named_parameters())
    return [(params[n], params[n.replace("bias_ih", "bias_hh")]) for n in ih]


@pytest.mark.parametrize("kind", sorted(LSTM_LIKE))
def test_chrono_lstm_biases(kind):
    torch.manual_seed(0)
    module = LSTM_LIKE[kind]()
    pairs = bias_pairs(module)
    assert len(pairs) == {"nn.LSTM": 4}.get(kind, 1)  # 2 layers x 2 directions
    for b_ih, b_hh in pairs:
        b_i, b_f, b_g, b_o = b_ih.detach().split(H)
        assert not b_hh.any(), "the second bias vector must be zero (PyTorch adds both)"
        assert (b_f >= 0).all() and (b_f <= math.log(40 - 1)).all()
        torch.testing.assert_close(b_i, -b_f, rtol=0, atol=0)
        assert not b_g.any() and not b_o.any()
    firsts = [b_ih[H : 2 * H] for b_ih, _ in pairs]
    assert all(not torch.equal(firsts[0], f) for f in firsts[1:])  # every layer has its own draw


@pytest.mark.parametrize("kind", sorted(GRU_LIKE))
def test_chrono_gru_biases(kind):
    torch.manual_seed(0)
    module = GRU_LIKE[kind]()
    for b_ih, b_hh in bias_pairs(module):
        b_r, b_z, b_n = b_ih.detach().split(H)
        assert not b_hh.any() and not b_r.any() and not b_n.any()
        assert (b_z >= 0).all() and (b_z <= math.log(40 - 1)).all()


def test_chrono_draw_is_log_uniform_and_reproducible():
    """exp(b_f) ~ U[1, t_max - 1]: check mean, spread and range on many units; seeded draws repeat."""
    t_max, n = 101.0, 20000
    u = chrono_bias(n, t_max, generator=torch.Generator().manual_seed(0)).exp()
    se = (t_max - 2) / math.sqrt(12 * n)  # std of U[1, t_max-1] over sqrt(n)
    assert abs(u.mean().item() - t_max / 2) < 4 * se
    assert abs(u.std().item() - (t_max - 2) / math.sqrt(12)) < 0.02 * (t_max - 2)
    assert 1 <= u.min().item() < 1.1 and t_max - 1.1 < u.max().item() <= t_max - 1
    one, two = (chrono_init(nn.LSTM(I, H), t_max, generator=torch.Generator().manual_seed(0)) for _ in range(2))
    assert torch.equal(one.bias_ih_l0, two.bias_ih_l0)


def decay_time_constants(cell, state, steps: int = 10) -> torch.Tensor:
    """With zero weights and zero input each unit's state decays geometrically; its time
    constant is 1 / (1 - per-step factor)."""
    with torch.no_grad():
        cell.weight_ih.zero_()
        cell.weight_hh.zero_()
        _, final = cell(torch.zeros(steps, 1, I, dtype=torch.float64), state)
    memory = final[1] if isinstance(final, tuple) else final  # the LSTM's cell state c
    factor = memory[0] ** (1.0 / steps)
    return 1.0 / (1.0 - factor)


@pytest.mark.parametrize("name", ["lstm", "gru", "janet", "gated-rnn"])
def test_chrono_time_constants(name):
    """The time constants implied by the chrono biases are spread over [2, t_max].

    For the GRU this checks the sign: PyTorch's z keeps the state, so b_z must be +log(U); with the
    opposite sign every time constant would be below 2 steps."""
    t_max = 60.0
    torch.manual_seed(0)
    hidden = 64
    kwargs = {"t_max": t_max} if name in ("janet", "gated-rnn") else {"init": "chrono", "t_max": t_max}
    cell = make_cell(name, I, hidden, **kwargs).double()
    ones = torch.ones(1, hidden, dtype=torch.float64)
    state = (torch.zeros_like(ones), ones) if name == "lstm" else ones
    tau = decay_time_constants(cell, state)
    assert (tau >= 2 - 1e-6).all() and (tau <= t_max + 1e-6).all()
    assert tau.max() > t_max / 2 and tau.min() < t_max / 4
    if name in ("lstm", "gru"):
        gate_bias = cell.bias_ih.detach()[hidden : 2 * hidden]
    else:
        gate_bias = cell.bias.detach()[:hidden]
    # The gated RNN's gate weights the new value: the opposite sign of a keep gate.
    torch.testing.assert_close(tau, 1 + (-gate_bias if name == "gated-rnn" else gate_bias).exp())


def test_chrono_rejects_bad_arguments():
    with pytest.raises(ValueError, match="t_max"):
        chrono_init(nn.LSTM(I, H), 1.5)
    with pytest.raises(ValueError, match="Linear"):
        chrono_init(nn.Linear(I, H), 10)
    with pytest.raises(ValueError, match="bias=False"):
        chrono_init(nn.GRU(I, H, bias=False), 10)
    for name in ("lstm", "gru"):
        with pytest.raises(ValueError, match="t_max"):
            make_cell(name, I, H, init="chrono")
        with pytest.raises(ValueError, match="init"):
            make_cell(name, I, H, init="xavier")
    with pytest.raises(ValueError, match="t_max"):
        make_cell("janet", I, H, t_max=1)
    with pytest.raises(ValueError, match="nonlinearity"):
        make_cell("rnn", I, H, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="recurrent_init"):
        make_cell("rnn", I, H, recurrent_init="eye")
    with pytest.raises(ValueError, match="peepholes"):
        make_cell("lstm", I, H, peepholes="yes")


# -- the chrono paper's leaky and gated RNNs (issue 9) ----------------------------------------


@pytest.mark.parametrize("kwargs", [{}, {"nonlinearity": "relu", "layer_norm": True}])
def test_leaky_rnn_with_leak_one_equals_rnn(kwargs):
    torch.manual_seed(0)
    leaky = LeakyRNNCell(I, H, **kwargs)
    with torch.no_grad():
        leaky.leak_logit.fill_(float("inf"))  # sigmoid(inf) = 1 exactly
    plain = RNNCell(I, H, **kwargs)
    plain.load_state_dict({k: v for k, v in leaky.state_dict().items() if k != "leak_logit"})
    x = seeded_inputs(T, B, I)
    resets = torch.zeros(T, B, dtype=torch.bool)
    resets[3, 1] = True
    h0 = seeded_inputs(B, H, seed=1)
    out, last = leaky(x, h0, resets)
    ref, ref_last = plain(x, h0, resets)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(last, ref_last)


def test_leaky_rnn_matches_independent_computation_and_init():
    torch.manual_seed(0)
    cell = LeakyRNNCell(I, H, max_warp=20).double()
    a = cell.leak.detach()
    assert (a >= 1 / 20 - 1e-9).all() and (a <= 1).all()
    x = seeded_inputs(T, B, I, dtype=torch.float64)
    h = seeded_inputs(B, H, dtype=torch.float64, seed=1)
    out, _ = cell(x, h)
    W, U = cell.weight_ih.detach(), cell.weight_hh.detach()
    b = (cell.bias_ih + cell.bias_hh).detach()
    for t in range(T):
        h = a * torch.tanh(x[t] @ W.T + h @ U.T + b) + (1 - a) * h
        torch.testing.assert_close(out[t], h)
    taus = 1 / LeakyRNNCell(I, 400, max_warp=20).leak.detach()  # time constants ~ U[1, 20]
    assert taus.min() < 2 and taus.max() > 19 and abs(taus.mean().item() - 10.5) < 1.0
    with pytest.raises(ValueError, match="max_warp"):
        LeakyRNNCell(I, H, max_warp=0.5)


def test_gated_rnn_with_open_gate_equals_rnn():
    torch.manual_seed(0)
    gated = GatedRNNCell(I, H)
    plain = RNNCell(I, H)
    with torch.no_grad():
        gated.bias[:H] = float("inf")  # gate forced open: g = 1
        gated.bias[H:].normal_()
        plain.weight_ih.copy_(gated.weight_ih[H:])
        plain.weight_hh.copy_(gated.weight_hh[H:])
        plain.bias_ih.copy_(gated.bias[H:])
        plain.bias_hh.zero_()
    x = seeded_inputs(T, B, I)
    h0 = seeded_inputs(B, H, seed=1)
    torch.testing.assert_close(gated(x, h0)[0], plain(x, h0)[0])


def test_gated_rnn_matches_independent_computation():
    torch.manual_seed(0)
    cell = GatedRNNCell(I, H, t_max=30).double()
    x = seeded_inputs(T, B, I, dtype=torch.float64)
    h = seeded_inputs(B, H, dtype=torch.float64, seed=1)
    out, _ = cell(x, h)
    (W_g, W_c), (U_g, U_c) = cell.weight_ih.detach().split(H), cell.weight_hh.detach().split(H)
    b_g, b_c = cell.bias.detach().split(H)
    for t in range(T):
        g = torch.sigmoid(x[t] @ W_g.T + h @ U_g.T + b_g)
        h = g * torch.tanh(x[t] @ W_c.T + h @ U_c.T + b_c) + (1 - g) * h
        torch.testing.assert_close(out[t], h)

"""g-LSTM and Phased LSTM: gate shapes against independent formulas, state copying when the
gate is shut, parity with nn.LSTM when it is wide open, the step counter in the state, and the
update count."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from agents.cells import lstm_sequence, make_cell
from agents.cells.glstm import GLSTMCell
from agents.cells.plstm import PhasedLSTMCell


def copy_lstm_weights(cell: nn.Module, lstm: nn.LSTM) -> None:
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(lstm, f"{name}_l0").copy_(getattr(cell, name))


# ----------------------------------------------------------------------------------------------
# g-LSTM
# ----------------------------------------------------------------------------------------------


def set_timing(cell: GLSTMCell, mu: torch.Tensor, sigma: torch.Tensor) -> None:
    """Set the gates' centres and widths in steps (the parameters hold fractions of L)."""
    length = cell.expected_length
    cell.position.copy_(mu / length)
    cell.log_width.copy_((sigma / length).log())


@pytest.mark.parametrize("two_sigma_sq", [True, False])
def test_glstm_gate_is_one_at_mu_and_gaussian_at_mu_plus_minus_sigma(two_sigma_sq: bool) -> None:
    cell = GLSTMCell(2, 3, two_sigma_sq=two_sigma_sq)
    with torch.no_grad():
        set_timing(cell, mu=torch.tensor([4.0, 7.0, 0.0]), sigma=torch.tensor([2.0, 3.0, 1.5]))
    cell(torch.randn(12, 2, 2))
    k = cell.gate_openness.detach()
    assert k.shape == (12, 2, 3)
    at_sigma = math.exp(-0.5) if two_sigma_sq else math.exp(-1.0)
    assert k[4, :, 0].tolist() == pytest.approx([1.0, 1.0])
    assert k[7, :, 1].tolist() == pytest.approx([1.0, 1.0])
    for t, unit in ((2, 0), (6, 0), (4, 1), (10, 1)):
        assert k[t, :, unit].tolist() == pytest.approx([at_sigma] * 2, rel=1e-6)
    # sigma 1.5 at mu = 0, t = 3 = 2 sigma: exp(-4/2) or exp(-4)
    assert k[3, 0, 2].item() == pytest.approx(math.exp(-2.0 if two_sigma_sq else -4.0), rel=1e-6)


def test_glstm_copies_state_exactly_when_gate_is_shut() -> None:
    torch.manual_seed(0)
    cell = GLSTMCell(3, 4, expected_length=10)
    with torch.no_grad():
        set_timing(cell, mu=torch.full((4,), 1e4), sigma=torch.ones(4))
    h0, c0 = torch.randn(2, 4), torch.randn(2, 4)
    out, (h, c, t) = cell(torch.randn(6, 2, 3), (h0, c0, torch.zeros(2)))
    assert torch.equal(h, h0) and torch.equal(c, c0)
    assert torch.equal(out, h0.expand(6, 2, 4))
    assert t.tolist() == [6.0, 6.0]
    assert cell.update_count.item() == 0.0


def test_glstm_with_wide_open_gate_equals_nn_lstm() -> None:
    torch.manual_seed(0)
    cell = GLSTMCell(3, 5).double()
    with torch.no_grad():
        set_timing(cell, mu=torch.zeros(5), sigma=torch.full((5,), 1e9))
    lstm = nn.LSTM(3, 5).double()
    copy_lstm_weights(cell, lstm)
    x = torch.randn(7, 2, 3, dtype=torch.float64)
    h0, c0 = torch.randn(2, 5, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64)
    out, (h, c, _) = cell(x, (h0, c0, torch.zeros(2, dtype=torch.float64)))
    ref, (h_ref, c_ref) = lstm(x, (h0[None], c0[None]))
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(c, c_ref[0], rtol=1e-9, atol=1e-9)


def test_glstm_counter_carries_over_chunks_and_restarts_on_reset() -> None:
    torch.manual_seed(0)
    cell = GLSTMCell(2, 6, expected_length=8)
    x = torch.randn(8, 3, 2)
    full, state = cell(x)
    gates_full = cell.gate_openness.detach()
    first, mid = cell(x[:5])
    second, end = cell(x[5:], mid)
    torch.testing.assert_close(torch.cat([first, second]), full)
    assert mid[2].tolist() == [5.0] * 3 and end[2].tolist() == [8.0] * 3
    resets = torch.zeros(8, 3, dtype=torch.bool)
    resets[3, 1] = True
    out, _ = cell(x, resets=resets)
    gates = cell.gate_openness.detach()
    torch.testing.assert_close(gates[3:, 1], gates_full[:5, 1])  # the clock restarts at 0
    fresh, _ = cell(x[3:, 1:2])
    torch.testing.assert_close(out[3:, 1:2], fresh)
    torch.testing.assert_close(out[:, [0, 2]], full[:, [0, 2]])


def test_glstm_update_count_counts_open_pairs_per_sample() -> None:
    cell = GLSTMCell(1, 4, expected_length=20, gate_threshold=0.3)
    start = torch.tensor([0.0, 10.0])  # sample 1 is 10 steps into its episode
    state = (torch.zeros(2, 4), torch.zeros(2, 4), start)
    cell(torch.zeros(15, 2, 1), state)
    mu = np.linspace(0, 20, 4)
    sigma = 0.1 * 20
    times = np.arange(15)[:, None] + start.numpy()[None, :]  # [T, B]
    gate = np.exp(-((times[..., None] - mu) ** 2) / (2 * sigma**2))
    assert cell.update_count.item() == pytest.approx((gate > 0.3).sum() / 2)
    assert 0 < cell.update_count.item() < 15 * 4


def test_glstm_default_spreads_mu_over_expected_length() -> None:
    cell = make_cell("glstm", 1, 5, expected_length=100)
    assert cell.mu.tolist() == pytest.approx([0, 25, 50, 75, 100])
    assert cell.sigma.tolist() == pytest.approx([10.0] * 5)


@pytest.mark.parametrize(
    "kwargs", [dict(expected_length=0), dict(gate_threshold=1.0), dict(sigma_init=-1.0), dict(two_sigma_sq="no")]
)
def test_glstm_bad_options_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        make_cell("glstm", 2, 3, **kwargs)


# ----------------------------------------------------------------------------------------------
# Phased LSTM
# ----------------------------------------------------------------------------------------------


def phased_gate(t: float, tau: float, shift: float, r_on: float, leak: float) -> float:
    """The piecewise Phased LSTM gate, written from docs/glstm.md#background-phased-lstm with Python's float modulo."""
    phi = ((t - shift) % tau) / tau
    if phi < r_on / 2:
        return 2 * phi / r_on
    if phi < r_on:
        return 2 - 2 * phi / r_on
    return leak * phi


@pytest.mark.parametrize("training", [True, False])
def test_plstm_openness_matches_piecewise_formula(training: bool) -> None:
    torch.manual_seed(0)
    cell = PhasedLSTMCell(2, 3).double()
    with torch.no_grad():  # r_on 0.35: no phase of these periods lands exactly on a breakpoint
        cell.log_r_on.fill_(math.log(0.35))
        cell.log_tau.copy_(torch.tensor([4.0, 7.5, 2.5], dtype=torch.float64).log())
        cell.shift.copy_(torch.tensor([0.5, 3.0, 9.0]))  # shift beyond the period: t - s < 0 early on
    cell.train(training)
    start = torch.tensor([0.0, 2.0], dtype=torch.float64)
    state = (torch.zeros(2, 3).double(), torch.zeros(2, 3).double(), start)
    cell(torch.randn(20, 2, 2, dtype=torch.float64), state)
    leak = 1e-3 if training else 0.0
    expected = np.array(
        [
            [[phased_gate(t + b0, tau, s, 0.35, leak) for tau, s in ((4.0, 0.5), (7.5, 3.0), (2.5, 9.0))] for b0 in (0, 2)]
            for t in range(20)
        ]
    )
    assert ((expected > 0.01) & (expected < 0.99)).sum() > 5  # both open branches are exercised
    np.testing.assert_allclose(cell.gate_openness.detach().numpy(), expected, rtol=1e-9, atol=1e-12)
    phases = np.array([[[((t + b0 - s) % tau) / tau for tau, s in ((4.0, 0.5), (7.5, 3.0), (2.5, 9.0))] for b0 in (0, 2)] for t in range(20)])
    assert cell.update_count.item() == pytest.approx((phases < 0.35).sum() / 2)


def test_plstm_eval_mode_copies_state_in_closed_phase() -> None:
    torch.manual_seed(0)
    cell = PhasedLSTMCell(2, 2, r_on=0.05).eval()
    with torch.no_grad():
        cell.log_tau.fill_(math.log(100.0))
        cell.shift.fill_(-50.0)  # phase 0.5 at t = 0: closed for the next 45 steps
    h0, c0 = torch.randn(3, 2), torch.randn(3, 2)
    out, (h, c, _) = cell(torch.randn(10, 3, 2), (h0, c0, torch.zeros(3)))
    assert torch.equal(h, h0) and torch.equal(c, c0)
    cell.train()
    _, (h, _, _) = cell(torch.randn(10, 3, 2), (h0, c0, torch.zeros(3)))
    assert not torch.equal(h, h0)  # the leak lets a little through in training


def test_plstm_initialisation_follows_the_official_defaults() -> None:
    torch.manual_seed(0)
    cell = make_cell("plstm", 1, 500)
    tau = cell.log_tau.exp()
    assert tau.min() >= math.exp(1) and tau.max() <= math.exp(5)
    assert tau.log().mean().item() == pytest.approx(3.0, abs=0.2)  # log-uniform on (1, 5)
    assert (cell.shift >= 0).all() and (cell.shift < tau).all()
    assert cell.log_r_on.exp().tolist() == pytest.approx([0.05] * 500)
    fixed = make_cell("plstm", 1, 3, learn_r_on=False, r_on=0.1)
    assert "log_r_on" not in dict(fixed.named_parameters())


def test_plstm_counter_restarts_on_reset() -> None:
    torch.manual_seed(0)
    cell = make_cell("plstm", 2, 4, r_on=0.5)
    x = torch.randn(9, 2, 2)
    resets = torch.zeros(9, 2, dtype=torch.bool)
    resets[4, 0] = True
    out, (_, _, t) = cell(x, resets=resets)
    assert t.tolist() == [5.0, 9.0]
    fresh, _ = cell(x[4:, :1])
    torch.testing.assert_close(out[4:, :1], fresh)


@pytest.mark.parametrize("kwargs", [dict(tau_range=(5, 1)), dict(tau_range=3), dict(r_on=0.0), dict(r_on=1.5), dict(leak=-1.0)])
def test_plstm_bad_options_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        make_cell("plstm", 2, 3, **kwargs)


@pytest.mark.parametrize("name", ["glstm", "plstm"])
def test_gate_openness_is_differentiable(name: str) -> None:
    cell = make_cell(name, 1, 3)
    cell(torch.randn(5, 2, 1))
    cell.gate_openness.sum().backward()
    timing = [p for n, p in cell.named_parameters() if n in ("position", "log_width", "log_tau", "shift", "log_r_on")]
    assert timing and all(p.grad is not None for p in timing)


@pytest.mark.parametrize("chunk", [None, 3], ids=["one-chunk", "chunks-of-3"])
@pytest.mark.parametrize("name", ["glstm", "plstm"])
def test_sequence_equals_nn_lstm_cell_steps_mixed_by_the_gate(name: str, chunk: int | None, monkeypatch) -> None:
    """The whole-sequence node against an independent loop: nn.LSTMCell steps mixed by the
    cell's own gate values (c = c + k (c~ - c), likewise h), the state zeroed at resets, from a
    non-zero state; outputs, final state and the gradients of inputs, incoming state and every
    parameter (mu / sigma / tau through the gate) in float64; also with the input projection
    done in chunks of 3 steps (8 steps: a partial last chunk)."""
    if chunk is not None:
        monkeypatch.setattr(lstm_sequence, "_chunk_steps", lambda batch, hidden: chunk)
    torch.manual_seed(0)
    kwargs = {"expected_length": 6} if name == "glstm" else {"tau_range": (2.0, 6.0), "r_on": 0.5}
    cell = make_cell(name, 3, 5, **kwargs).double()
    lstm = nn.LSTMCell(3, 5).double()
    with torch.no_grad():
        for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(lstm, p).copy_(getattr(cell, p))
    steps, batch = 8, 3
    x = torch.randn(steps, batch, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(batch, 5, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(batch, 5, dtype=torch.float64, requires_grad=True)
    resets = torch.zeros(steps, batch, dtype=torch.bool)
    resets[3, 1] = resets[4, 1] = resets[6, 2] = True
    out, (h, c, _) = cell(x, (h0, c0, torch.zeros(batch, dtype=torch.float64)), resets)
    gates = cell.gate_openness
    assert 0.05 < float(gates.detach().mean()) < 0.95  # partly open: the mixing matters
    (out.pow(2).sum() + h.sin().sum() + c.cos().sum()).backward()
    got = [out, h, c, x.grad, h0.grad, c0.grad] + [p.grad for p in cell.parameters() if p.requires_grad]
    for t in (x, h0, c0):
        t.grad = None
    cell.zero_grad()

    cell(x, (h0, c0, torch.zeros(batch, dtype=torch.float64)), resets)  # the same gate values, a new graph
    gates = cell.gate_openness
    lstm.weight_ih, lstm.weight_hh, lstm.bias_ih, lstm.bias_hh = cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh
    ref_h, ref_c, outs = h0, c0, []
    for t in range(steps):
        keep = (~resets[t]).double().unsqueeze(1)
        ref_h, ref_c = ref_h * keep, ref_c * keep
        h_new, c_new = lstm(x[t], (ref_h, ref_c))
        ref_c = ref_c + gates[t] * (c_new - ref_c)
        ref_h = ref_h + gates[t] * (h_new - ref_h)
        outs.append(ref_h)
    ref = torch.stack(outs)
    (ref.pow(2).sum() + ref_h.sin().sum() + ref_c.cos().sum()).backward()
    want = [ref, ref_h, ref_c, x.grad, h0.grad, c0.grad] + [p.grad for p in cell.parameters() if p.requires_grad]
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_glstm_timing_learns_from_a_poor_initialisation(tmp_path) -> None:
    """Every gate starts at step 0 of a 40-step adding task; the markers lie anywhere in the
    sequence. Timing in fractions of the sequence lets Adam (lr 1e-3) move the gates into it
    within 300 updates: the mean centre travels over a step, where with centres in raw steps
    no centre could have moved more than 300 * lr = 0.3 steps."""
    from agents.supervised import TrainConfig, train
    from agents.supervised.trainer import load_model

    config = TrainConfig(task="adding", task_kwargs={"seq_len": 40}, cell="glstm",
                         cell_kwargs={"expected_length": 40, "mu_init": 0.0}, hidden_size=16,
                         batch_size=32, updates=300, eval_every=300, eval_batches=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(config, tmp_path / "run", progress=False)
    finally:
        torch.set_num_threads(threads)
    mu = load_model(tmp_path / "run", "latest")[0].cell.mu.detach()
    assert mu.mean().item() > 1.0, mu
    assert (mu > 1.0).sum().item() >= 4, mu


def test_glstm_mu_init() -> None:
    assert make_cell("glstm", 1, 4, expected_length=50, mu_init=0.5).mu.tolist() == [25.0] * 4
    for bad in (-0.1, 1.5, "start", True):
        with pytest.raises(ValueError, match="mu_init"):
            make_cell("glstm", 1, 4, mu_init=bad)


@pytest.mark.parametrize("name", ["glstm", "plstm"])
def test_time_scale_lays_the_gates_out_for_a_shorter_sequence(name: str) -> None:
    """time_scale 0.5: step t of a 10-step sequence opens the gates of step 2t of 20 steps."""
    torch.manual_seed(0)
    cell = make_cell(name, 2, 6, **({"expected_length": 20} if name == "glstm" else {}))
    cell.eval()
    cell(torch.randn(20, 1, 2))
    full = cell.gate_openness.detach()
    cell.time_scale = 0.5
    cell(torch.randn(10, 1, 2))
    torch.testing.assert_close(cell.gate_openness.detach(), full[0::2])


def test_curriculum_stages_scale_the_gate_clock(monkeypatch) -> None:
    """The trainer sets time_scale to stage length / final length for training steps and back
    to 1 for evaluation."""
    from agents.cells.time_gated import TimeGatedLSTM
    from agents.supervised import TrainConfig, train

    seen: list[tuple[int, float]] = []
    forward = TimeGatedLSTM.forward

    def spy(self, inputs, state=None, resets=None):
        seen.append((inputs.shape[0], self.time_scale))
        return forward(self, inputs, state, resets)

    monkeypatch.setattr(TimeGatedLSTM, "forward", spy)
    config = TrainConfig(task="adding", task_kwargs={"seq_len": 40}, cell="glstm", cell_kwargs={"expected_length": 40},
                         hidden_size=4, batch_size=2, updates=4, curriculum=[[10, 2]], eval_every=4, eval_batches=1,
                         eval_batch_size=2)
    train(config, progress=False)
    assert {(10, 0.25), (40, 1.0)} == set(seen[1:])  # seen[0]: the build-time probe
    assert [scale for length, scale in seen if length == 10] == [0.25, 0.25]

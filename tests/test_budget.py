"""Tests for agents.losses.budget: the g-LSTM budget loss and update accounting (docs/glstm.md#budget-loss)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from agents.cells.base import RecurrentCell, make_cell
from agents.losses import AuxiliaryLoss, budget_loss, update_counts, update_fraction


class SigmoidGatedCell(RecurrentCell):
    """Stand-in time-gated cell: unit j's gate at step t is sigmoid(a_j t + b_j); counts updates
    above ``threshold`` per sequence, like the library's time-gated cells."""

    time_gated = True  # the contract: a cell that sets gate_openness / update_count says so

    def __init__(self, input_size: int, hidden_size: int, threshold: float = 0.5) -> None:
        super().__init__(input_size, hidden_size)
        self.lin = nn.Linear(input_size, hidden_size)
        self.a = nn.Parameter(torch.linspace(-1.0, 1.0, hidden_size))
        self.b = nn.Parameter(torch.linspace(0.5, -0.5, hidden_size))
        self.threshold = threshold

    def initial_state(self, batch_size, device=None):
        return torch.zeros(batch_size, self.hidden_size, device=device, dtype=self.dtype)

    def forward(self, inputs, state=None, resets=None):
        T, B, _ = inputs.shape
        h = self.initial_state(B, inputs.device) if state is None else state
        t = torch.arange(T, dtype=inputs.dtype).view(T, 1, 1).expand(T, B, 1)
        k = torch.sigmoid(self.a * t + self.b)  # [T, B, H]
        self.gate_openness = k
        self.update_count = (k.detach() > self.threshold).sum().to(k.dtype) / B
        outs = []
        for x, k_t in zip(torch.tanh(self.lin(inputs)).unbind(0), k.unbind(0)):
            h = k_t * x + (1 - k_t) * h
            outs.append(h)
        return torch.stack(outs), h


def test_budget_loss_is_weight_times_mean_openness_with_analytic_gradient():
    torch.manual_seed(0)
    T, B, H = 6, 3, 4
    cell = SigmoidGatedCell(2, H)
    cell(torch.randn(T, B, 2))
    loss = budget_loss(cell, 0.3)
    # independent value: the sigmoid gate recomputed unit by unit, step by step
    gates = [[1 / (1 + math.exp(-(cell.a[j].item() * t + cell.b[j].item()))) for j in range(H)] for t in range(T)]
    assert loss.item() == pytest.approx(0.3 * sum(map(sum, gates)) / (T * H), rel=1e-6)
    loss.backward()
    # d/db_j = 0.3 / (T H) * sum_t k (1 - k);  d/da_j = 0.3 / (T H) * sum_t t k (1 - k)
    grad_b = [0.3 / (T * H) * sum(g[j] * (1 - g[j]) for g in gates) for j in range(H)]
    grad_a = [0.3 / (T * H) * sum(t * g[j] * (1 - g[j]) for t, g in enumerate(gates)) for j in range(H)]
    assert cell.b.grad.tolist() == pytest.approx(grad_b, rel=1e-5)
    assert cell.a.grad.tolist() == pytest.approx(grad_a, rel=1e-5)


def test_cell_without_gates_gives_zero_and_full_updates():
    cell = make_cell("gru", 2, 4)
    cell(torch.randn(5, 2, 2))
    loss = budget_loss(cell, 1.0)
    assert loss.dim() == 0 and loss.item() == 0.0
    assert update_fraction(cell) == 1.0 and update_fraction(cell, threshold=0.5) == 1.0
    assert update_counts(cell) == (1.0, 1.0)


def test_update_fraction_counts_open_pairs():
    torch.manual_seed(1)
    T, B, H = 7, 2, 5
    cell = SigmoidGatedCell(2, H, threshold=0.6)
    cell(torch.randn(T, B, 2))
    opened = sum(
        1 / (1 + math.exp(-(cell.a[j].item() * t + cell.b[j].item()))) > 0.6 for t in range(T) for j in range(H)
    )
    assert update_counts(cell) == (pytest.approx(opened), T * H)
    assert update_fraction(cell) == pytest.approx(opened / (T * H))
    assert update_fraction(cell, threshold=0.6) == pytest.approx(opened / (T * H))
    assert update_fraction(cell, threshold=0.0) == 1.0  # sigmoid gates are never exactly 0


@pytest.mark.parametrize("weight, threshold", [(-0.1, None), (float("nan"), None), (1.0, 1.5)])
def test_bad_arguments_name_the_parameter(weight, threshold):
    cell = SigmoidGatedCell(2, 3)
    cell(torch.randn(3, 1, 2))
    with pytest.raises(ValueError, match="weight" if threshold is None else "threshold"):
        budget_loss(cell, weight) if threshold is None else update_fraction(cell, threshold=threshold)


# ----------------------------------------------------------------------------------------------
# With the library's g-LSTM: k_t = exp(-(t - mu)^2 / (2 sigma^2)) for t = steps since the episode start.
# ----------------------------------------------------------------------------------------------


def gaussian_gates(cell, times):
    """Independent recomputation of the g-LSTM gate for integer times (list) -> [len, H]."""
    mu, sigma = cell.mu.detach(), cell.sigma.detach()
    return torch.stack([torch.exp(-((t - mu) ** 2) / (2 * sigma**2)) for t in times])


def test_glstm_budget_value_gradient_and_update_fraction():
    torch.manual_seed(2)
    T, B, H = 12, 2, 6
    cell = make_cell("glstm", 3, H, expected_length=T, sigma_init=0.15)
    resets = torch.zeros(T, B, dtype=torch.bool)
    resets[8, 1] = True  # sample 1's clock restarts at step 8
    cell(torch.randn(T, B, 3), resets=resets)
    k0 = gaussian_gates(cell, range(T))
    k1 = gaussian_gates(cell, list(range(8)) + list(range(T - 8)))
    expected = 0.5 * (k0.mean() + k1.mean()) / 2
    loss = budget_loss(cell, 0.5)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)

    loss.backward()
    # d k / d log_sigma = k z^2 with z = (t - mu) / sigma; d k / d mu = k (t - mu) / sigma^2;
    # the parameters are log_width = log(sigma / T) (same gradient as log sigma) and position = mu / T.
    mu, sigma = cell.mu.detach(), cell.sigma.detach()
    times = torch.tensor([list(range(T)), list(range(8)) + list(range(T - 8))], dtype=mu.dtype).T  # [T, B]
    z = (times.unsqueeze(-1) - mu) / sigma
    k = torch.exp(-0.5 * z**2)
    scale = 0.5 / (T * B * H)
    assert torch.allclose(cell.log_width.grad, scale * (k * z**2).sum((0, 1)), rtol=1e-4, atol=1e-9)
    assert torch.allclose(cell.position.grad, T * scale * (k * z / sigma).sum((0, 1)), rtol=1e-4, atol=1e-9)

    opened = ((k0 > cell.gate_threshold).sum() + (k1 > cell.gate_threshold).sum()).item() / B
    assert update_fraction(cell) == pytest.approx(opened / (T * H))
    assert update_fraction(cell, threshold=cell.gate_threshold) == pytest.approx(opened / (T * H))


def test_minimising_the_budget_reduces_updates():
    """The budget term alone narrows the gates, so the fraction of updates goes down."""
    torch.manual_seed(3)
    cell = make_cell("glstm", 2, 8, expected_length=20, sigma_init=0.2)
    inputs = torch.randn(20, 1, 2)
    cell(inputs)
    before = update_fraction(cell)
    for _ in range(5):  # plain gradient descent (torch.optim's first use costs seconds of imports)
        cell.zero_grad()
        cell(inputs)
        budget_loss(cell, 20.0).backward()
        with torch.no_grad():
            for p in cell.parameters():
                if p.grad is not None:
                    p -= p.grad
    cell(inputs)
    assert update_fraction(cell) < 0.7 * before


def test_budget_still_sees_the_main_forward_after_an_aux_loss():
    torch.manual_seed(4)
    cell = make_cell("glstm", 3, 6, expected_length=10)
    inputs = torch.randn(10, 2, 3)
    cell(inputs)
    expected = budget_loss(cell, 1.0).item()
    aux = AuxiliaryLoss(cell, num_targets=3, segment_length=2, decoder_hidden=6, ffn_hidden=4)
    aux(cell, inputs, torch.randint(0, 3, (10, 2)))
    assert cell.gate_openness.shape == (10, 2, 6)
    assert budget_loss(cell, 1.0).item() == expected

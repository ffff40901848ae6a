"""CellPolicy's fast paths give the numbers of the plain paths they replace: training sequences
with inner episode starts run packed (pieces side by side), rollout steps sample Discrete actions
without building distribution objects, and the default optimizer is SB3's Adam, fused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch.distributions import Categorical

from agents.cells import list_cells
from agents.rl import CellPolicy
from agents.rl.policy import _categorical_step, _pack

OBS = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
ACTIONS = spaces.Discrete(3)
T, B = 12, 3
TIME_GATED = ("glstm", "plstm")  # run unpacked: their gate statistics must cover real steps only


def make_policy(cell: str, **kwargs) -> CellPolicy:
    torch.manual_seed(0)
    return CellPolicy(OBS, ACTIONS, lambda _: 1e-3, cell=cell, hidden_size=8, net_arch=[8], **kwargs)


def sparse_rollout() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Observations ``[T, B, 3]``, actions and episode starts of episodes of 3 to 9 steps (few
    enough pieces that packing pays), one sequence starting mid-episode."""
    rng = np.random.default_rng(0)
    obs = torch.as_tensor(rng.uniform(-1, 1, (T, B, 3)), dtype=torch.float32)
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[0, 1:] = True  # sequence 0 continues an episode from its stored state
    starts[5, 0] = starts[3, 1] = starts[9, 1] = starts[7, 2] = True
    actions = torch.as_tensor(rng.integers(0, ACTIONS.n, (T, B)))
    return obs, starts, actions


def random_state(policy: CellPolicy) -> object:
    """A non-initial state for every leaf, so that a piece wrongly started from zeros shows."""
    generator = torch.Generator().manual_seed(1)

    def fill(state):
        if isinstance(state, torch.Tensor):
            return (torch.rand(state.shape, generator=generator) * 0.5).to(state.dtype)
        return tuple(fill(s) for s in state)

    return fill(policy.initial_state(B))


def test_pack_places_every_step_like_a_loop_over_pieces() -> None:
    rng = np.random.default_rng(3)
    resets = torch.as_tensor(rng.random((9, 4)) < 0.3)
    packing = _pack(resets)
    # The same layout built one piece at a time.
    column, where, sequence, starts = -1, {}, [], []
    for n in range(resets.shape[1]):
        for t in range(resets.shape[0]):
            if t == 0 or resets[t, n]:
                column += 1
                sequence.append(n)
                starts.append(bool(resets[t, n]))
                row = 0
            where[(t, n)] = (row, column)
            row += 1
    pieces = column + 1
    length = max(r for r, _ in where.values()) + 1
    assert (packing.length, packing.pieces) == (length, pieces)
    assert packing.sequence.tolist() == sequence
    assert packing.starts.tolist() == starts
    expected = [where[(t, n)][0] * pieces + where[(t, n)][1] for t in range(resets.shape[0]) for n in range(resets.shape[1])]
    assert packing.index.tolist() == expected


@pytest.mark.parametrize("cell", list_cells())
@pytest.mark.parametrize("shared_cell", [True, False])
def test_packed_training_path_matches_the_unpacked_one(cell: str, shared_cell: bool) -> None:
    """evaluate_sequence (packed where it pays) equals the whole-sequence path with resets,
    from a non-initial stored state, for values, log-probs and the gradients of both."""
    policy = make_policy(cell, shared_cell=shared_cell)
    obs, starts, actions = sparse_rollout()
    assert (policy._packing(starts) is None) == (cell in TIME_GATED)
    state = random_state(policy)

    def outputs(packed: bool) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        policy.zero_grad()
        if packed:
            ev = policy.evaluate_sequence(obs, actions.flatten(), state, starts)
            log_prob, values = ev.log_prob, ev.values
        else:
            latent_pi, latent_vf, _, _ = policy._sequence_latent(obs, state, starts)
            log_prob = policy._get_action_dist_from_latent(latent_pi).log_prob(actions.flatten())
            values = policy.value_net(latent_vf)
        (log_prob.sum() + values.sum()).backward()
        grads = [p.grad.clone() for p in policy.parameters() if p.grad is not None]
        return log_prob.detach(), values.detach(), grads

    lp_packed, v_packed, g_packed = outputs(True)
    lp_plain, v_plain, g_plain = outputs(False)
    torch.testing.assert_close(lp_packed, lp_plain, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(v_packed, v_plain, atol=1e-5, rtol=1e-4)
    assert len(g_packed) == len(g_plain) > 0
    for got, want in zip(g_packed, g_plain):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-3)


def test_packing_is_skipped_when_padding_would_double_the_work() -> None:
    policy = make_policy("lstm")
    resets = torch.zeros(T, B, dtype=torch.bool)
    resets[1:, 0] = True  # one-step episodes beside two long ones: L * S = T * (T + 2) > 2 * T * B
    assert _pack(resets).length * _pack(resets).pieces > 2 * resets.numel()
    assert policy._packing(resets) is None
    assert policy._packing(torch.zeros(T, B, dtype=torch.bool)) is None  # no inner starts


@pytest.mark.parametrize("deterministic", [False, True])
def test_categorical_step_draws_like_torch_categorical(deterministic: bool) -> None:
    for seed in range(10):
        logits = torch.randn(16, 5, generator=torch.Generator().manual_seed(seed)) * 3
        torch.manual_seed(seed)
        dist = Categorical(logits=logits)
        want = torch.argmax(dist.probs, dim=1) if deterministic else dist.sample()
        torch.manual_seed(seed)
        actions, log_prob = _categorical_step(logits, deterministic)
        assert torch.equal(actions, want)
        assert torch.equal(log_prob, dist.log_prob(want))


def test_rollout_step_matches_the_distribution_path() -> None:
    """forward() (fast Discrete path) and get_distribution() give the same action draws."""
    policy = make_policy("gru", shared_cell=False)
    obs, starts, _ = sparse_rollout()
    with torch.no_grad():
        torch.manual_seed(5)
        actions, _, log_prob, _ = policy(obs[0], policy.initial_state(B), starts[0])
        torch.manual_seed(5)
        dist, _ = policy.get_distribution(obs[0], policy.initial_state(B), starts[0])
        want = dist.get_actions()
    assert torch.equal(actions, want)
    assert torch.equal(log_prob, dist.log_prob(want))


@pytest.mark.skipif(torch.__version__ < "2.4", reason="fused CPU Adam needs torch >= 2.4")
def test_default_optimizer_is_fused_adam_with_sb3_eps() -> None:
    group = make_policy("gru").optimizer.param_groups[0]
    assert group["fused"] is True and group["eps"] == 1e-5
    own = make_policy("gru", optimizer_kwargs={"eps": 1e-8}).optimizer.param_groups[0]
    assert not own["fused"] and own["eps"] == 1e-8

"""CellPolicy: the sequence path (training) and the step path (rollouts, predict) agree, and
predict() threads any state structure through numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from agents.cells import list_cells
from agents.rl import CellPolicy, MultiInputCellPolicy, state_to_numpy, state_to_tensor

OBS = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
ACTIONS = spaces.Discrete(3)
T, B = 10, 3


def make_policy(cell: str = "gru", obs_space: spaces.Space = OBS, **kwargs) -> CellPolicy:
    torch.manual_seed(0)
    kwargs.setdefault("hidden_size", 8)
    kwargs.setdefault("net_arch", [8])
    return CellPolicy(obs_space, ACTIONS, lambda _: 1e-3, cell=cell, **kwargs)


def rollout(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random observations ``[T, B, 3]``, episode starts (first step and a few inside) and actions."""
    rng = np.random.default_rng(seed)
    obs = torch.as_tensor(rng.uniform(-1, 1, (T, B, 3)), dtype=torch.float32)
    starts = torch.as_tensor(rng.random((T, B)) < 0.25)
    starts[0] = True
    starts[4, 0] = True  # at least one episode start inside a sequence
    actions = torch.as_tensor(rng.integers(0, 3, (T, B)))
    return obs, starts, actions


def step_through(policy: CellPolicy, obs, starts, actions):
    """Log-probs and values one step at a time through the step path (as in collect_rollouts)."""
    state = policy.initial_state(B)
    log_probs, values = [], []
    with torch.no_grad():
        for t in range(T):
            values.append(policy.predict_values(obs[t], state, starts[t]).flatten())
            dist, state = policy.get_distribution(obs[t], state, starts[t])
            log_probs.append(dist.log_prob(actions[t]))
    return torch.stack(log_probs), torch.stack(values), state


@pytest.mark.parametrize("cell", list_cells())
@pytest.mark.parametrize("shared_cell", [True, False])
def test_sequence_with_resets_matches_stepping(cell: str, shared_cell: bool) -> None:
    policy = make_policy(cell, shared_cell=shared_cell)
    obs, starts, actions = rollout()
    step_lp, step_v, _ = step_through(policy, obs, starts, actions)
    with torch.no_grad():
        seq = policy.evaluate_sequence(obs, actions.flatten(), policy.initial_state(B), starts)
    torch.testing.assert_close(seq.log_prob.reshape(T, B), step_lp, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(seq.values.reshape(T, B), step_v, atol=1e-5, rtol=1e-4)


def test_resets_change_the_outputs() -> None:
    """Guards the parity test against passing trivially: ignoring the episode starts inside the
    sequence gives different values after the first inner start."""
    policy = make_policy("gru")
    obs, starts, actions = rollout()
    no_inner = torch.zeros_like(starts)
    no_inner[0] = True
    with torch.no_grad():
        with_resets = policy.evaluate_sequence(obs, actions.flatten(), policy.initial_state(B), starts).values
        without = policy.evaluate_sequence(obs, actions.flatten(), policy.initial_state(B), no_inner).values
    assert (with_resets.reshape(T, B)[4:, 0] - without.reshape(T, B)[4:, 0]).abs().max() > 1e-4


@pytest.mark.parametrize("cell,shared_cell", [("lstm", True), ("gru", False), ("nru", True)])
def test_predict_threads_state_like_the_sequence_path(cell: str, shared_cell: bool) -> None:
    """predict() step by step with numpy states: deterministic actions are the argmax of the
    sequence path's action probabilities, and the final state equals the sequence path's."""
    policy = make_policy(cell, shared_cell=shared_cell)
    obs, starts, _ = rollout(1)
    with torch.no_grad():
        log_probs = torch.stack(
            [
                policy.evaluate_sequence(obs, torch.full((T * B,), a), policy.initial_state(B), starts).log_prob
                for a in range(ACTIONS.n)
            ],
            -1,
        ).reshape(T, B, -1)
        _, _, _, final = policy._sequence_latent(obs, policy.initial_state(B), starts)
    state = None
    for t in range(T):
        action, state = policy.predict(obs[t].numpy(), state, starts[t].numpy(), deterministic=True)
        np.testing.assert_array_equal(action, log_probs[t].argmax(-1).numpy())
    for got, want in zip(_leaves(state), _leaves(state_to_numpy(final))):
        assert isinstance(got, np.ndarray) and got.shape[0] == B
        np.testing.assert_allclose(got, want, atol=1e-5)


def _leaves(state):
    return [state] if not isinstance(state, tuple) else [x for s in state for x in _leaves(s)]


def test_predict_defaults_and_single_observation() -> None:
    policy = make_policy("lstm", shared_cell=False)
    obs, _, _ = rollout(2)
    x = obs[0].numpy()
    a_none, s_none = policy.predict(x, deterministic=True)
    init = state_to_numpy(policy.initial_state(B))
    a_init, s_init = policy.predict(x, init, np.zeros(B, dtype=bool), deterministic=True)
    np.testing.assert_array_equal(a_none, a_init)
    for u, v in zip(_leaves(s_none), _leaves(s_init)):
        np.testing.assert_array_equal(u, v)
    # separate actor/critic LSTMs: ((h, c), (h, c)) of numpy arrays
    assert isinstance(s_none, tuple) and len(s_none) == 2 and all(len(part) == 2 for part in s_none)

    # episode_start=True resets a carried state: same as starting from None.
    _, carried = policy.predict(obs[1].numpy(), s_none, deterministic=True)
    a_reset, s_reset = policy.predict(x, carried, np.ones(B, dtype=bool), deterministic=True)
    np.testing.assert_array_equal(a_reset, a_none)
    for u, v in zip(_leaves(s_reset), _leaves(s_none)):
        np.testing.assert_allclose(u, v, atol=1e-6)

    # One unbatched observation: a scalar action and a batch-1 state.
    action, state = policy.predict(x[0], deterministic=True)
    assert np.shape(action) == () and all(leaf.shape[0] == 1 for leaf in _leaves(state))
    assert int(action) == int(a_none[0])


def test_state_numpy_round_trip() -> None:
    state = (torch.randn(2, 3), (torch.randn(2, 4), torch.arange(2)))
    back = state_to_tensor(state_to_numpy(state), torch.device("cpu"))
    assert torch.equal(back[0], state[0]) and torch.equal(back[1][0], state[1][0])
    assert back[1][1].dtype == torch.int64 and torch.equal(back[1][1], state[1][1])


def test_custom_cell_class_and_dict_observations() -> None:
    """A user's RecurrentCell subclass plugs in by class; Dict spaces use the combined extractor."""
    from agents.cells import RecurrentCell

    class Leaky(RecurrentCell):
        def __init__(self, input_size: int, hidden_size: int, rate: float = 0.5) -> None:
            super().__init__(input_size, hidden_size)
            self.lin = torch.nn.Linear(input_size, hidden_size)
            self.rate = rate

        def initial_state(self, batch_size, device=None):
            return torch.zeros(batch_size, self.hidden_size, device=device)

        def step(self, x, h):
            h = (1 - self.rate) * h + self.rate * torch.tanh(self.lin(x))
            return h, h

    space = spaces.Dict({"a": OBS, "b": spaces.Discrete(4)})
    torch.manual_seed(0)
    policy = MultiInputCellPolicy(space, ACTIONS, lambda _: 1e-3, cell=Leaky, cell_kwargs={"rate": 0.3}, hidden_size=5)
    assert isinstance(policy.cell, Leaky) and policy.cell.rate == 0.3 and policy.cell.input_size == 3 + 4
    obs = {"a": torch.rand(T, B, 3), "b": torch.randint(0, 4, (T, B, 1))}
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[0] = starts[5] = True
    actions = torch.randint(0, 3, (T, B))
    state, lps = policy.initial_state(B), []
    with torch.no_grad():
        for t in range(T):
            dist, state = policy.get_distribution({k: v[t] for k, v in obs.items()}, state, starts[t])
            lps.append(dist.log_prob(actions[t]))
        seq = policy.evaluate_sequence(obs, actions.flatten(), policy.initial_state(B), starts)
    torch.testing.assert_close(seq.log_prob.reshape(T, B), torch.stack(lps), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"cell": "no-such-cell"}, "unknown cell"),
        ({"cell": 3}, "cell=3"),
        ({"hidden_size": 0}, "hidden_size=0"),
        ({"shared_cell": "yes"}, "shared_cell='yes'"),
        ({"cell": "gru", "cell_kwargs": {"bogus": 1}}, "bogus"),
    ],
)
def test_bad_policy_arguments(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        make_policy(**kwargs)

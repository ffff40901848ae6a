"""The recurrent-cell contract (docs/contracts.md#cell-contract), checked for every registered cell.

Parametrised over ``agents.list_cells()``, so a new cell is covered as soon as it is registered.
A cell whose module does not exist yet is skipped ("not implemented yet"); any other import
failure is an error. Cells run in training mode (the default): the contract requires forward to
be deterministic for fixed parameters, so the comparisons below need no eval().
"""

from __future__ import annotations

import io

import pytest
import torch

import agents
from agents.cells import CELLS, cell_class, detach_state, make_cell, map_state, select_state

I, H, T, B = 3, 4, 6, 3

# Small settings for cells whose defaults are sized for the papers' runs, so that gradcheck stays
# fast and time gates open within the few steps of these tests.
TINY_KWARGS: dict[str, dict] = {
    "nru": {"memory_size": 4, "num_heads": 1},
    "glstm": {"expected_length": T},
    "kaf-lstm": {"dict_size": 5},
    "kaf-gru": {"dict_size": 5},
    "sru-stat": {"phi_size": 3, "r_size": 2},
    "transformer": {"context": 4, "num_layers": 1, "feedforward_size": 4},
}


def build(name: str, dtype: torch.dtype = torch.float32, seed: int = 0, **kwargs) -> agents.RecurrentCell:
    """``make_cell(name, I, H)`` with the tiny settings; skip while the cell's module is missing."""
    module = CELLS[name].partition(":")[0]
    try:
        cell_class(name)
    except ModuleNotFoundError as err:
        if err.name == module:
            pytest.skip("not implemented yet")
        raise
    torch.manual_seed(seed)
    return make_cell(name, I, H, **{**TINY_KWARGS.get(name, {}), **kwargs}).to(dtype)


def leaves(state) -> list[torch.Tensor]:
    return [state] if isinstance(state, torch.Tensor) else [s for part in state for s in leaves(part)]


def assert_states_close(a, b, **tol) -> None:
    for x, y in zip(leaves(a), leaves(b), strict=True):
        torch.testing.assert_close(x, y, **tol)


def random_inputs(dtype=torch.float32, steps=T, batch=B, seed=1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(steps, batch, I, generator=g).to(dtype)


def random_state(cell, batch=B, seed=2):
    """A non-trivial state of the cell: the state reached after a few random steps."""
    with torch.no_grad():
        _, state = cell(random_inputs(cell.dtype, steps=3, batch=batch, seed=seed))
    return state


NAMES = agents.list_cells()


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_state_structure(name):
    cell = build(name)
    state0 = cell.initial_state(B, "cpu")
    out, state = cell(random_inputs(), state0)
    assert out.shape == (T, B, cell.output_size)
    assert out.dtype == torch.float32
    assert len(leaves(state)) == len(leaves(state0))
    for s, s0 in zip(leaves(state), leaves(state0)):
        assert s.shape == s0.shape and s.shape[0] == B  # batch dimension 0
        assert s.dtype == s0.dtype
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_float64(name):
    cell = build(name, torch.float64)
    state0 = cell.initial_state(B)
    assert all(s.dtype == torch.float64 for s in leaves(state0) if s.is_floating_point())
    out, state = cell(random_inputs(torch.float64), resets=torch.zeros(T, B, dtype=torch.bool))
    assert out.dtype == torch.float64
    assert all(s.dtype == torch.float64 for s in leaves(state) if s.is_floating_point())


@pytest.mark.parametrize("name", NAMES)
def test_no_state_means_initial_state(name):
    cell = build(name, torch.float64)
    x = random_inputs(torch.float64)
    out_none, state_none = cell(x)
    out_init, state_init = cell(x, cell.initial_state(B))
    torch.testing.assert_close(out_none, out_init)
    assert_states_close(state_none, state_init)


@pytest.mark.parametrize("name", NAMES)
def test_chunked_run_equals_one_run(name):
    """Carrying the returned state into the next call continues the sequence (truncated BPTT, RL)."""
    cell = build(name, torch.float64)
    x = random_inputs(torch.float64)
    state0 = random_state(cell)
    out, state = cell(x, state0)
    out_a, state_a = cell(x[:2], state0)
    out_b, state_b = cell(x[2:], state_a)
    torch.testing.assert_close(torch.cat([out_a, out_b]), out)
    assert_states_close(state_b, state)


@pytest.mark.parametrize("name", NAMES)
def test_step_equals_forward(name):
    cell = build(name, torch.float64)
    x = random_inputs(torch.float64)
    state = random_state(cell)
    out, final = cell(x, state)
    for t, x_t in enumerate(x.unbind(0)):
        out_t, state = cell.step(x_t, state)
        torch.testing.assert_close(out_t, out[t])
    assert_states_close(state, final)


@pytest.mark.parametrize("name", NAMES)
def test_resets_equal_fresh_start(name):
    """After resets[t, b], sample b's outputs equal a fresh run of b from t; the others are untouched."""
    cell = build(name, torch.float64)
    x = random_inputs(torch.float64)
    state0 = random_state(cell)
    resets = torch.zeros(T, B, dtype=torch.bool)
    resets[0, 0] = True  # a reset at the first step discards the incoming state
    resets[2, 1] = True
    resets[4, 1] = True  # a second episode start for the same sample
    out, state = cell(x, state0, resets)
    plain, plain_state = cell(x, state0)

    # Sample 2 never resets: identical to the run without resets.
    torch.testing.assert_close(out[:, 2], plain[:, 2])
    assert_states_close(select_state(state, slice(2, 3)), select_state(plain_state, slice(2, 3)))
    # Sample 1 is untouched before its first reset.
    torch.testing.assert_close(out[:2, 1], plain[:2, 1])
    # Every episode equals a fresh run of that sample from its start.
    for b, start, stop in ((0, 0, T), (1, 2, 4), (1, 4, T)):
        fresh, fresh_state = cell(x[start:stop, b : b + 1], cell.initial_state(1))
        torch.testing.assert_close(out[start:stop, b : b + 1], fresh)
        if stop == T:
            assert_states_close(select_state(state, slice(b, b + 1)), fresh_state)


@pytest.mark.parametrize("name", NAMES)
def test_detach_state(name):
    cell = build(name)
    x = random_inputs().requires_grad_()
    _, state = cell(x)
    cut = detach_state(state)
    assert all(not s.requires_grad for s in leaves(cut))
    assert_states_close(cut, state)
    out, _ = cell(random_inputs(seed=3), cut)
    out.sum().backward()
    assert x.grad is None  # no gradient flows back through the cut
    assert any(p.grad is not None for p in cell.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_with_resets(name):
    """Analytic gradients w.r.t. inputs, initial state and every parameter match finite differences."""
    cell = build(name, torch.float64)
    steps, batch = 4, 2
    x = random_inputs(torch.float64, steps=steps, batch=batch).requires_grad_()
    state0 = map_state(lambda s: s.detach().requires_grad_(s.is_floating_point() and s.dim() > 1),
                       random_state(cell, batch=batch))
    state_leaves = [s for s in leaves(state0) if s.requires_grad]
    resets = torch.tensor([[False, False], [False, True], [False, False], [True, False]])
    names = [n for n, p in cell.named_parameters() if p.requires_grad]
    params = [p.detach().clone().requires_grad_() for n, p in cell.named_parameters() if p.requires_grad]

    def run(x, *tensors):
        values = dict(zip(names, tensors[len(state_leaves):]))
        it = iter(tensors[: len(state_leaves)])
        state = map_state(lambda s: next(it) if s.requires_grad else s, state0)
        out, final = torch.func.functional_call(cell, values, (x, state, resets))
        return (out,) + tuple(s for s in leaves(final) if s.is_floating_point())

    assert torch.autograd.gradcheck(run, (x, *state_leaves, *params), eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip(name):
    """A checkpoint loads with weights_only=True into a fresh cell and reproduces the outputs."""
    cell = build(name, seed=0)
    buffer = io.BytesIO()
    torch.save(cell.state_dict(), buffer)
    buffer.seek(0)
    other = build(name, seed=123)
    other.load_state_dict(torch.load(buffer, weights_only=True))
    x = random_inputs()
    torch.testing.assert_close(other(x)[0], cell(x)[0])


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_rejected(name):
    cell = build(name)
    with pytest.raises(ValueError, match="inputs"):
        cell(torch.zeros(T, B, I + 1))
    with pytest.raises(ValueError, match="resets"):
        cell(torch.zeros(T, B, I), resets=torch.zeros(T, B + 1, dtype=torch.bool))


@pytest.mark.parametrize("name", NAMES)
def test_make_cell_rejects_unknown_kwargs_and_bad_sizes(name):
    build(name)  # skips while the module is missing
    with pytest.raises(ValueError, match="no_such_option"):
        make_cell(name, I, H, no_such_option=1)
    for bad in (0, -2, 2.5, True, "4"):
        with pytest.raises(ValueError, match="hidden_size"):
            make_cell(name, I, bad)
        with pytest.raises(ValueError, match="input_size"):
            make_cell(name, bad, H)


def test_unknown_cell_name_lists_choices():
    with pytest.raises(ValueError, match="lstm"):
        make_cell("no-such-cell", I, H)

"""SequenceModel: encoders, shapes, and truncated BPTT semantics (gradients w.r.t. inputs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import memenvs
from agents.models import OneHotEncoder, SequenceModel, count_parameters, make_encoder
from tiny_cells import TinyRNN, register


class TinyGated(TinyRNN):
    """A tanh RNN that reports a (fake) time gate so the chunked bookkeeping can be checked."""

    time_gated = True

    def forward(self, inputs, state=None, resets=None):
        out, state = self._loop(inputs, state, resets)
        T, B = inputs.shape[:2]
        self.gate_openness = torch.full((T, B, self.hidden_size), 0.5)
        self.update_count = torch.tensor(float(T * self.hidden_size))  # per sequence
        return out, state


@pytest.fixture(autouse=True)
def tiny_cells(monkeypatch):
    register(monkeypatch, "tiny", TinyRNN)
    register(monkeypatch, "tiny-gated", TinyGated)


def real_model(features: int = 2, hidden: int = 5, cell: str = "tiny") -> SequenceModel:
    torch.manual_seed(0)
    return SequenceModel("real", features, 1, cell=cell, hidden_size=hidden)


# -- encoders and shapes -------------------------------------------------------------------------


def test_onehot_encoder_equals_identity_rows():
    ids = torch.tensor([[0, 3], [2, 1]])
    encoded = OneHotEncoder(4)(ids)
    np.testing.assert_array_equal(encoded.numpy(), np.eye(4, dtype=np.float32)[ids.numpy()])


def test_encoders_chosen_by_input_kind():
    assert isinstance(make_encoder("symbols", 10)[0], OneHotEncoder)
    emb, width = make_encoder("symbols", 256, "embedding")
    assert isinstance(emb, nn.Embedding) and width == 128
    ident, width = make_encoder("real", 3)
    assert isinstance(ident, nn.Identity) and width == 3
    lin, width = make_encoder("real", 3, "linear", embedding_dim=7)
    assert isinstance(lin, nn.Linear) and width == 7


@pytest.mark.parametrize(
    "kind, encoder, dim, words",
    [
        ("real", "onehot", None, "encoder='onehot'"),
        ("symbols", "linear", None, "encoder='linear'"),
        ("symbols", "onehot", 8, "embedding_dim=8"),
        ("symbols", "conv", None, "encoder='conv'"),
        ("symbols", "embedding", 0, "embedding_dim=0"),
    ],
)
def test_bad_encoder_options_name_the_parameter(kind, encoder, dim, words):
    with pytest.raises(ValueError, match=words):
        make_encoder(kind, 4, encoder, dim)


def test_forward_shapes_for_a_copy_task():
    task = memenvs.make_task("copy", delay=4, length=2)
    model = SequenceModel.for_task(task, cell="tiny", hidden_size=6)
    batch = task.sample(3, np.random.default_rng(0))
    out, state = model(torch.as_tensor(batch.inputs))
    assert out.shape == (task.max_length, 3, task.num_outputs)
    assert state.shape == (3, 6)
    # one-hot (no parameters) + cell + linear readout
    assert count_parameters(model) == (task.num_inputs + 6) * 6 + 6 + 6 * task.num_outputs + task.num_outputs


def test_wrong_input_type_is_a_value_error():
    model = SequenceModel("symbols", 4, 3, cell="tiny", hidden_size=3)
    with pytest.raises(ValueError, match="integer tensor"):
        model(torch.zeros(5, 2))


def test_two_layer_readout_and_dropout_validation():
    model = SequenceModel("real", 2, 3, cell="tiny", hidden_size=4, readout_hidden=8, dropout=0.5)
    assert [type(m) for m in model.readout] == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    with pytest.raises(ValueError, match="dropout"):
        SequenceModel("real", 2, 3, cell="tiny", hidden_size=4, dropout=0.5)


# -- truncated BPTT --------------------------------------------------------------------------------


def input_grad(model: SequenceModel, T: int, loss_step: int, tbptt: int | None) -> torch.Tensor:
    torch.manual_seed(1)
    x = torch.randn(T, 2, 2, requires_grad=True)
    out, _ = model(x, tbptt=tbptt)
    out[loss_step].sum().backward()
    return x.grad.abs().sum(dim=(1, 2))  # [T]


def test_tbptt_zero_input_gradient_beyond_last_n_steps():
    model, T, N = real_model(), 12, 5
    truncated = input_grad(model, T, T - 1, tbptt=N)
    assert torch.all(truncated[: T - N] == 0)  # exactly zero, not just small
    assert torch.all(truncated[T - N :] > 0)
    full = input_grad(model, T, T - 1, tbptt=None)
    assert torch.all(full[: T - N] > 0)  # without truncation the early inputs do get gradient
    # Inside the window truncation changes nothing: the same chain rule over the same steps.
    torch.testing.assert_close(truncated[T - N :], full[T - N :])


def test_tbptt_chunks_are_aligned_to_the_end():
    model, T, N = real_model(), 12, 5  # chunks: [0, 2), [2, 7), [7, 12)
    grads = input_grad(model, T, loss_step=5, tbptt=N)  # loss inside the middle chunk
    nonzero = torch.nonzero(grads).squeeze(1).tolist()
    assert nonzero == [2, 3, 4, 5]  # its chunk up to the loss step, nothing before step 2
    grads = input_grad(model, T, loss_step=1, tbptt=N)  # loss inside the short first chunk
    assert torch.nonzero(grads).squeeze(1).tolist() == [0, 1]


def test_tbptt_does_not_change_forward_values():
    model = real_model()
    x = torch.randn(11, 3, 2)
    full, state_full = model(x)
    chunked, state_chunked = model(x, tbptt=4)
    torch.testing.assert_close(chunked, full)
    torch.testing.assert_close(state_chunked, state_full)


def test_grad_steps_skip_graphs_of_unscored_chunks():
    model, T, N = real_model(), 10, 3  # chunks [0,1), [1,4), [4,7), [7,10)
    x = torch.randn(T, 2, 2, requires_grad=True)
    scored = np.zeros(T, dtype=bool)
    scored[-1] = True
    out, _ = model(x, tbptt=N, grad_steps=scored)
    full, _ = model(x)
    torch.testing.assert_close(out, full)
    out[-1].sum().backward()
    assert torch.all(x.grad[: T - N] == 0) and torch.all(x.grad[T - N :].abs().sum(dim=(1, 2)) > 0)


def test_tbptt_reports_gates_of_the_whole_sequence():
    model = real_model(cell="tiny-gated", hidden=4)
    model(torch.randn(10, 3, 2), tbptt=4)  # chunks of 2, 4, 4 steps
    assert model.cell.gate_openness.shape == (10, 3, 4)
    assert float(model.cell.update_count) == 10 * 4


def test_tbptt_must_be_positive():
    with pytest.raises(ValueError, match="tbptt=0"):
        real_model()(torch.randn(3, 1, 2), tbptt=0)


@pytest.mark.parametrize("cell", ["lstm", "glstm"])
def test_long_forward_without_gradient_runs_in_bounded_chunks_with_the_same_result(monkeypatch, cell):
    """Evaluation of a long sequence runs the cell on at most NO_GRAD_CHUNK steps per call (its
    per-call buffers stay bounded) and gives what one call over the whole sequence gives."""
    import agents.models

    model = real_model(cell=cell)
    x = torch.randn(23, 3, 2)
    with torch.no_grad():
        whole, whole_state = model(x)
        openness = None if model.cell.gate_openness is None else model.cell.gate_openness.clone()
    lengths: list[int] = []
    original = model.cell.forward
    monkeypatch.setattr(model.cell, "forward", lambda inputs, *a: lengths.append(len(inputs)) or original(inputs, *a))
    monkeypatch.setattr(agents.models, "NO_GRAD_CHUNK", 5)
    with torch.no_grad():
        chunked, chunked_state = model(x)
    assert lengths == [3, 5, 5, 5, 5]  # aligned to the end, as truncated BPTT's chunks
    torch.testing.assert_close(chunked, whole)
    for a, b in zip(chunked_state, whole_state):
        torch.testing.assert_close(a, b)
    if openness is not None:
        torch.testing.assert_close(model.cell.gate_openness, openness)
    lengths.clear()
    model(x)  # with gradient: one call, the graph must cover every step
    assert lengths == [23]


def test_final_state_without_gradient_is_the_state_of_one_call(monkeypatch):
    import agents.cells.base as base

    torch.manual_seed(0)
    cell = base.make_cell("gru", input_size=2, hidden_size=4)
    x, resets = torch.randn(17, 3, 2), torch.rand(17, 3) < 0.1
    _, expected = cell(x, None, resets)
    monkeypatch.setattr(base, "NO_GRAD_CHUNK", 4)
    state = base.final_state_no_grad(cell, x, None, resets)
    assert not state.requires_grad
    torch.testing.assert_close(state, expected.detach())


def test_chunk_lengths_cover_the_steps_with_few_distinct_lengths():
    from agents.cells.base import NO_GRAD_CHUNK, chunk_lengths

    seen: set[int] = set()
    for steps in range(0, 3 * NO_GRAD_CHUNK + 7):
        chunks = chunk_lengths(steps)
        assert sum(chunks) == steps and all(c > 0 for c in chunks)
        seen |= set(chunks)
    assert seen == {2**k for k in range(NO_GRAD_CHUNK.bit_length())}  # 1, 2, 4, ..., NO_GRAD_CHUNK
    assert chunk_lengths(2 * NO_GRAD_CHUNK + 452) == [NO_GRAD_CHUNK] * 2 + [256, 128, 64, 4]

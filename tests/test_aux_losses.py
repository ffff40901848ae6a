"""Tests for agents.losses.auxiliary: r-/p-style auxiliary losses at random anchors (docs/aux.md)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from agents.cells.base import RecurrentCell, list_cells, make_cell
from agents.losses import AuxiliaryLoss

I, H, S = 3, 5, 4  # encoded input size, hidden size, number of symbols


@pytest.fixture(autouse=True)
def double_precision():
    """Exact comparisons below are done in double precision (restored after each test)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


# ----------------------------------------------------------------------------------------------
# Small stand-in cells with the three state structures (they use the shared base time loop).
# ----------------------------------------------------------------------------------------------


class TanhCell(RecurrentCell):
    """Elman RNN: state is one tensor."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.lin = nn.Linear(input_size + hidden_size, hidden_size)
        self.steps = 0

    def initial_state(self, batch_size, device=None):
        return torch.zeros(batch_size, self.hidden_size, device=device, dtype=self.dtype)

    def step(self, x, h):
        self.steps += 1
        h = torch.tanh(self.lin(torch.cat([x, h], -1)))
        return h, h


class PairCell(RecurrentCell):
    """LSTM written by hand: state (h, c), not the library's LSTM class."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.lstm = nn.LSTMCell(input_size, hidden_size)

    def initial_state(self, batch_size, device=None):
        z = torch.zeros(batch_size, self.hidden_size, device=device, dtype=self.dtype)
        return z, z.clone()

    def step(self, x, state):
        h, c = self.lstm(x, state)
        return h, (h, c)


class TripleCell(PairCell):
    """(h, c, t) with a [B] step counter that changes the update (like the time-gated cells)."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.rate = nn.Parameter(torch.linspace(0.1, 0.5, hidden_size))

    def initial_state(self, batch_size, device=None):
        h, c = super().initial_state(batch_size, device)
        return h, c, torch.zeros(batch_size, device=device, dtype=self.dtype)

    def step(self, x, state):
        h, c, t = state
        h_new, c_new = self.lstm(x, (h, c))
        k = torch.sigmoid(self.rate * (t.unsqueeze(1) - 2.0))
        h, c = k * h_new + (1 - k) * h, k * c_new + (1 - k) * c
        return h, (h, c, t + 1)


CELL_TYPES = [TanhCell, PairCell, TripleCell]


def make_aux(cell, mode="reconstruction", **kw):
    kw = {"num_targets": S, "segment_length": 3, "decoder_hidden": 6, "ffn_hidden": 7, "dropout": 0.0} | kw
    return AuxiliaryLoss(cell, mode, **kw)


def data(T=12, B=2, seed=0, real=False):
    g = torch.Generator().manual_seed(seed)
    encoded = torch.randn(T, B, I, generator=g)
    targets = torch.randn(T, B, S, generator=g) if real else torch.randint(0, S, (T, B), generator=g)
    return encoded, targets


def reference_loss(aux, cell, encoded, targets, anchors, resets=None):
    """Recompute the loss one (anchor, sequence) at a time: the main cell is stepped by hand from
    step 0 to the anchor, the decoder is fed the segment, per-token losses are averaged."""
    l = aux.segment_length
    losses = []
    for k in range(anchors.shape[0]):
        for b in range(anchors.shape[1]):
            a = int(anchors[k, b])
            state = cell.initial_state(1)
            for t in range(a + 1):
                if resets is not None and resets[t, b]:
                    state = cell.initial_state(1)
                _, state = cell.step(encoded[t, b : b + 1], state)
            if aux.project is None:
                h, c = state
            else:
                leaves = [state] if isinstance(state, torch.Tensor) else list(state[:2])  # not the counter
                flat = torch.cat(leaves, 1)
                h, c = aux.project(flat).chunk(2, -1)
            seg = list(range(a - l, a)) if aux.mode == "reconstruction" else list(range(a + 1, a + l + 1))
            fed = [encoded[t, b] for t in seg[:-1]]
            if aux.predict_first:
                fed, wanted = [aux.start] + fed, targets[seg, b]
            else:
                wanted = targets[seg[1:], b]
            zeros = torch.zeros_like(h)
            out, _ = aux.decoder(torch.stack(fed).unsqueeze(1), (torch.stack([h, zeros]), torch.stack([c, zeros])))
            pred = aux.head(out[:, 0])
            if aux.target == "symbols":
                losses.append(F.cross_entropy(pred, wanted, reduction="none"))
            else:
                losses.append(((pred - wanted) ** 2).mean(-1))
    return torch.cat(losses).mean()


# ----------------------------------------------------------------------------------------------
# Loss value: token normalisation and segment layout, against the hand recomputation.
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell_type", CELL_TYPES)
@pytest.mark.parametrize("mode", ["reconstruction", "prediction"])
def test_loss_equals_independent_recomputation(cell_type, mode):
    torch.manual_seed(1)
    cell = cell_type(I, H)
    aux = make_aux(cell, mode, bptt_length=2)
    encoded, targets = data()
    anchors = torch.tensor([[5, 8], [3, 4]]) if mode == "reconstruction" else torch.tensor([[0, 8], [6, 2]])
    loss = aux(cell, encoded, targets, anchors=anchors)
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(reference_loss(aux, cell, encoded, targets, anchors).item(), rel=1e-10)


@pytest.mark.parametrize("predict_first", [True, False])
def test_real_targets_use_mse_per_token(predict_first):
    torch.manual_seed(2)
    cell = PairCell(I, H)
    aux = make_aux(cell, target="real", predict_first=predict_first, segment_length=4)
    encoded, targets = data(real=True)
    anchors = torch.tensor([[4, 11]])
    loss = aux(cell, encoded, targets, anchors=anchors)
    assert loss.item() == pytest.approx(reference_loss(aux, cell, encoded, targets, anchors).item(), rel=1e-10)


@pytest.mark.parametrize(
    "mode, predict_first, scored",
    [
        ("reconstruction", True, range(3, 7)),  # anchor 7, l = 4: steps 3..6
        ("reconstruction", False, range(4, 7)),  # the first segment element is only fed
        ("prediction", True, range(8, 12)),  # steps 8..11
        ("prediction", False, range(9, 12)),
    ],
)
def test_loss_depends_on_exactly_the_segment_targets(mode, predict_first, scored):
    torch.manual_seed(3)
    T, a = 14, 7
    cell = TanhCell(I, H)
    aux = make_aux(cell, mode, segment_length=4, predict_first=predict_first)
    encoded, targets = data(T=T, B=1)
    anchors = torch.tensor([[a]])
    base = aux(cell, encoded, targets, anchors=anchors).item()
    changed = []
    for t in range(T):
        other = targets.clone()
        other[t] = (other[t] + 1) % S
        if aux(cell, encoded, other, anchors=anchors).item() != base:
            changed.append(t)
    assert changed == list(scored)


def test_dropout_only_in_training_mode():
    torch.manual_seed(4)
    cell = TanhCell(I, H)
    aux = make_aux(cell, dropout=0.5)
    encoded, targets = data()
    anchors = torch.tensor([[6, 9]])
    aux.eval()
    assert aux(cell, encoded, targets, anchors=anchors).item() == aux(cell, encoded, targets, anchors=anchors).item()
    aux.train()
    train_losses = {aux(cell, encoded, targets, anchors=anchors).item() for _ in range(5)}
    assert len(train_losses) > 1


# ----------------------------------------------------------------------------------------------
# Gradients: stopped at the segment start, reaching the main cell.
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell_type", CELL_TYPES)
def test_reconstruction_gradient_stops_at_segment_start(cell_type):
    torch.manual_seed(5)
    T, l = 16, 4
    cell = cell_type(I, H)
    aux = make_aux(cell, segment_length=l)
    encoded, targets = data(T=T, B=2)
    encoded.requires_grad_(True)
    anchors = torch.tensor([[9, 13]])
    aux(cell, encoded, targets, anchors=anchors).backward()
    for b, a in enumerate(anchors[0].tolist()):
        per_step = encoded.grad[:, b].abs().sum(-1)
        assert torch.all(per_step[: a - l] == 0)  # before the segment: exactly zero
        assert torch.all(per_step[a - l : a + 1] > 0)  # segment and anchor step (main cell path)
        assert torch.all(per_step[a + 1 :] == 0)  # after the anchor
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in cell.parameters())
    assert aux.project.weight.grad.abs().sum() > 0


def test_prediction_gradient_window_and_decoder_inputs():
    torch.manual_seed(6)
    T, l, w = 16, 3, 2
    cell = TanhCell(I, H)
    aux = make_aux(cell, "prediction", segment_length=l, bptt_length=w)
    encoded, targets = data(T=T, B=1)
    encoded.requires_grad_(True)
    a = 6
    aux(cell, encoded, targets, anchors=torch.tensor([[a]])).backward()
    per_step = encoded.grad[:, 0].abs().sum(-1)
    assert torch.all(per_step[: a - w] == 0)
    assert torch.all(per_step[a - w : a + 1] > 0)  # main cell window
    assert torch.all(per_step[a + 1 : a + l] > 0)  # teacher-forced decoder inputs
    assert torch.all(per_step[a + l :] == 0)


def test_given_state_is_detached():
    torch.manual_seed(7)
    cell = PairCell(I, H)
    aux = make_aux(cell, "prediction", segment_length=2, bptt_length=3)
    encoded, targets = data(T=8, B=2)
    h0 = torch.randn(2, H, requires_grad=True)
    state = (h0, torch.zeros(2, H))
    # anchor 1 < bptt_length: the window is clipped at step 0 and starts from the given state.
    loss = aux(cell, encoded, targets, state=state, anchors=torch.tensor([[1, 5]]))
    loss.backward()
    assert h0.grad is None
    # and that state is really used: another start state changes the loss
    other = aux(cell, encoded, targets, state=(h0.detach() + 1, torch.zeros(2, H)), anchors=torch.tensor([[1, 5]]))
    assert other.item() != loss.item()


# ----------------------------------------------------------------------------------------------
# Anchors: seeded sampling, validity under episode starts, resets passed to the main cell.
# ----------------------------------------------------------------------------------------------


def test_seeded_sampling_is_deterministic_and_uniform_over_valid_steps():
    cell = TanhCell(I, H)
    aux = make_aux(cell, segment_length=3, num_anchors=4)
    a1, _ = aux.sample_anchors(10, 50, generator=torch.Generator().manual_seed(0))
    a2, _ = aux.sample_anchors(10, 50, generator=torch.Generator().manual_seed(0))
    a3, _ = aux.sample_anchors(10, 50, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a1, a2) and not torch.equal(a1, a3)
    assert a1.shape == (4, 50)
    assert set(a1.unique().tolist()) == set(range(3, 10))  # every valid anchor, and only those

    encoded, targets = data()
    losses = [aux(cell, encoded, targets, generator=torch.Generator().manual_seed(s)).item() for s in (3, 3, 4)]
    assert losses[0] == losses[1] != losses[2]


def brute_force_valid(mode, l, resets):
    T, B = resets.shape
    valid = torch.zeros(T, B, dtype=torch.bool)
    for b in range(B):
        for a in range(T):
            seg = range(a - l, a) if mode == "reconstruction" else range(a + 1, a + l + 1)
            if seg.start < 0 or seg.stop > T:
                continue
            episode = lambda t: int(resets[: t + 1, b].sum())  # noqa: E731 - index of t's episode
            valid[a, b] = all(episode(t) == episode(a) for t in seg)
    return valid


@pytest.mark.parametrize("mode", ["reconstruction", "prediction"])
def test_valid_anchors_keep_segment_in_the_anchor_episode(mode):
    g = torch.Generator().manual_seed(8)
    resets = torch.rand(20, 6, generator=g) < 0.15
    resets[:, 5] = True  # episodes of one step: no valid anchor at all
    aux = make_aux(TanhCell(I, H), mode, segment_length=3, num_anchors=30)
    valid = aux.valid_anchors(20, 6, resets)
    assert torch.equal(valid, brute_force_valid(mode, 3, resets))
    anchors, ok = aux.sample_anchors(20, 6, resets, generator=g)
    assert torch.equal(ok, valid.any(0).expand_as(ok)) and not ok[:, 5].any()
    for b in range(5):
        assert valid[anchors[:, b], b].all()


@pytest.mark.parametrize("mode", ["reconstruction", "prediction"])
def test_anchors_stay_out_of_the_padding_of_shorter_sequences(mode):
    """With ``lengths``, an anchor (and a predicted segment) lies before its sequence's padding;
    the loss of a padded batch equals the loss of each sequence cut to its length."""
    lengths = torch.tensor([20, 12, 4, 9])
    aux = make_aux(TanhCell(I, H), mode, segment_length=3, num_anchors=40)
    valid = aux.valid_anchors(20, 4, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        expected = brute_force_valid(mode, 3, torch.zeros(n, 1, dtype=torch.bool))[:, 0]
        assert torch.equal(valid[:n, b], expected) and not valid[n:, b].any()
    anchors, _ = aux.sample_anchors(20, 4, generator=torch.Generator().manual_seed(1), lengths=lengths)
    assert (anchors <= (lengths - 1 - (0 if mode == "reconstruction" else 3))).all()
    torch.manual_seed(3)
    cell = TanhCell(I, H)
    aux = make_aux(cell, mode, segment_length=3)
    encoded, targets = data(T=20, B=2)
    fixed = torch.tensor([[8, 6]]) if mode == "reconstruction" else torch.tensor([[4, 2]])
    aux.eval()  # no dropout: the losses are comparable
    padded = aux(cell, encoded, targets, anchors=fixed, lengths=torch.tensor([20, 10]))
    alone = [aux(cell, encoded[:n, b : b + 1], targets[:n, b : b + 1], anchors=fixed[:, b : b + 1]) for b, n in ((0, 20), (1, 10))]
    assert padded.item() == pytest.approx(sum(x.item() for x in alone) / 2, rel=1e-10)


def test_resets_restart_the_main_cell():
    """An anchor in a later episode gives the loss computed on that episode alone, whether the
    episode starts inside the no-gradient prefix or at the segment start."""
    torch.manual_seed(9)
    cell = TripleCell(I, H)
    aux = make_aux(cell, segment_length=3)
    encoded, targets = data(T=14, B=2)
    resets = torch.zeros(14, 2, dtype=torch.bool)
    resets[7, 0] = resets[2, 1] = True  # at the segment start (anchor 10, l = 3) / in the prefix
    anchors = torch.tensor([[10, 10]])
    loss = aux(cell, encoded, targets, resets=resets, anchors=anchors)
    first = aux(cell, encoded[7:, :1], targets[7:, :1], anchors=torch.tensor([[3]]))
    second = aux(cell, encoded[2:, 1:], targets[2:, 1:], anchors=torch.tensor([[8]]))
    assert loss.item() == pytest.approx((first.item() + second.item()) / 2, rel=1e-10)
    assert loss.item() == pytest.approx(reference_loss(aux, cell, encoded, targets, anchors, resets).item(), rel=1e-10)
    assert loss.item() != pytest.approx(aux(cell, encoded, targets, anchors=anchors).item(), rel=1e-6)


def test_sequences_without_valid_anchor_contribute_nothing():
    torch.manual_seed(10)
    cell = TanhCell(I, H)
    aux = make_aux(cell, segment_length=3, num_anchors=2)
    encoded, targets = data(T=10, B=2)
    resets = torch.zeros(10, 2, dtype=torch.bool)
    resets[::2, 1] = True  # episodes of 2 steps < segment: nothing valid
    anchors, ok = aux.sample_anchors(10, 2, resets, generator=torch.Generator().manual_seed(5))
    assert ok[:, 0].all() and not ok[:, 1].any()
    loss = aux(cell, encoded, targets, resets=resets, generator=torch.Generator().manual_seed(5))
    alone = aux(cell, encoded[:, :1], targets[:, :1], anchors=anchors[:, :1])
    assert loss.item() == pytest.approx(alone.item(), rel=1e-12)
    # nothing valid anywhere: a zero that still supports backward()
    empty = aux(cell, encoded, targets, resets=torch.ones(10, 2, dtype=torch.bool))
    empty.backward()
    assert empty.item() == 0.0


def test_invalid_fixed_anchor_is_refused():
    aux = make_aux(TanhCell(I, H), segment_length=3)
    encoded, targets = data(T=10, B=2)
    with pytest.raises(ValueError, match="anchors"):
        aux(TanhCell(I, H), encoded, targets, anchors=torch.tensor([[2, 5]]))  # 2 < segment_length
    resets = torch.zeros(10, 2, dtype=torch.bool)
    resets[6, 1] = True
    with pytest.raises(ValueError, match="anchors"):
        aux(TanhCell(I, H), encoded, targets, resets=resets, anchors=torch.tensor([[5, 7]]))  # crosses step 6


# ----------------------------------------------------------------------------------------------
# Cost, side effects, state mapping, validation, library cells.
# ----------------------------------------------------------------------------------------------


def test_prefix_runs_once_for_all_anchors():
    cell = TanhCell(I, H)
    aux = make_aux(cell, segment_length=3, bptt_length=3)
    encoded, targets = data(T=20, B=2)
    cell.steps = 0
    aux(cell, encoded, targets, anchors=torch.tensor([[8, 19], [12, 10], [15, 16]]))
    # one batched pass up to the latest window start (19 - 3) plus one batched window of 3 + 1 steps
    assert cell.steps == 16 + 4


def test_gate_attributes_of_the_main_forward_are_kept():
    cell = TanhCell(I, H)
    marker_openness, marker_count = torch.ones(1), torch.tensor(3.0)
    cell.gate_openness, cell.update_count = marker_openness, marker_count
    aux = make_aux(cell)
    encoded, targets = data()
    aux(cell, encoded, targets)
    assert cell.gate_openness is marker_openness and cell.update_count is marker_count


def test_state_projection_choice():
    assert make_aux(TanhCell(I, 6)).project is not None
    assert make_aux(PairCell(I, 6)).project is not None  # not the library LSTM: auto -> linear
    forced = make_aux(PairCell(I, 6), state_projection="identity")
    assert forced.project is None
    with pytest.raises(ValueError, match="state_projection"):
        make_aux(PairCell(I, 5), state_projection="identity")  # decoder_hidden is 6
    # identity really hands (h, c) to the decoder: equal to the hand recomputation without projection
    torch.manual_seed(11)
    cell = PairCell(I, 6)
    aux = make_aux(cell, state_projection="identity")
    encoded, targets = data()
    anchors = torch.tensor([[7, 4]])
    assert aux(cell, encoded, targets, anchors=anchors).item() == pytest.approx(
        reference_loss(aux, cell, encoded, targets, anchors).item(), rel=1e-10
    )


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"mode": "recon"}, "mode"),
        ({"target": "reals"}, "target"),
        ({"segment_length": 0}, "segment_length"),
        ({"segment_length": 1, "predict_first": False}, "segment_length"),
        ({"num_anchors": 0}, "num_anchors"),
        ({"bptt_length": -1}, "bptt_length"),
        ({"dropout": 1.5}, "dropout"),
        ({"num_targets": 1}, "num_targets"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, name):
    mode = kwargs.pop("mode", "reconstruction")
    with pytest.raises(ValueError, match=name):
        make_aux(TanhCell(I, H), mode, **kwargs)


def test_bad_forward_inputs():
    cell = TanhCell(I, H)
    aux = make_aux(cell)
    encoded, targets = data()
    with pytest.raises(ValueError, match="encoded"):
        aux(cell, encoded[..., :2], targets)
    with pytest.raises(ValueError, match="targets"):
        aux(cell, encoded, targets.double())
    with pytest.raises(ValueError, match="targets"):
        aux(cell, encoded, targets[:, :1])
    with pytest.raises(ValueError, match="resets"):
        aux(cell, encoded, targets, resets=torch.zeros(3, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="does not match"):
        aux(PairCell(I, H), encoded, targets)


def library_cells():
    names = []
    for name in list_cells():
        try:
            make_cell(name, I, 8)
        except (ImportError, AttributeError):
            continue  # not written yet
        names.append(name)
    return names


@pytest.mark.parametrize("name", library_cells())
@pytest.mark.parametrize("mode", ["reconstruction", "prediction"])
def test_every_library_cell(name, mode):
    torch.set_default_dtype(torch.float32)  # the cells as users build them (the fixture restores)
    torch.manual_seed(12)
    cell = make_cell(name, I, 8)
    aux = make_aux(cell, mode, segment_length=3, decoder_hidden=8, num_anchors=2)
    encoded, targets = data(T=10, B=2)
    encoded.requires_grad_(True)
    resets = torch.zeros(10, 2, dtype=torch.bool)
    resets[2, 1] = True
    loss = aux(cell, encoded, targets, resets=resets, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in cell.parameters())
    if name == "lstm":  # the paper's case: (h, c) goes straight into the decoder
        assert aux.project is None
        anchors = torch.tensor([[6, 8]]) if mode == "reconstruction" else torch.tensor([[5, 1]])
        with torch.no_grad():
            value = aux(cell, encoded, targets, anchors=anchors).item()
            assert value == pytest.approx(reference_loss(aux, cell, encoded, targets, anchors).item(), rel=1e-5)

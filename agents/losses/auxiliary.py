"""Auxiliary reconstruction / prediction losses at random anchors (r-LSTM / p-LSTM; docs/aux.md).

Trinh, Dai, Luong & Le (ICML 2018) train a recurrent classifier on very long sequences with an
extra unsupervised loss: at randomly sampled *anchor* steps, a separate decoder, started from the
main cell's state at the anchor, must regenerate the segment just before the anchor
(reconstruction, "r-LSTM") or predict the segment just after it (prediction, "p-LSTM"). The
gradient of that loss flows into the main cell only over a short window ending at the anchor, so
it is cheap, yet it forces the state to keep information from far back.

:class:`AuxiliaryLoss` implements both for *any* :class:`~agents.cells.base.RecurrentCell` (state =
tensor or tuple of tensors), for symbol targets (cross-entropy) or real-valued targets (MSE), with
optional episode starts (``resets``) inside the sequence, as in RL rollouts.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agents.cells.base import (
    RecurrentCell,
    State,
    cat_states,
    cell_class,
    detach_state,
    final_state_no_grad,
    map_state,
    select_state,
)
from memenvs.core import check_bool, check_choice, check_float, check_int

Mode = Literal["reconstruction", "prediction"]
Target = Literal["symbols", "real"]
Projection = Literal["auto", "linear", "identity"]


def state_leaves(state: State) -> list[Tensor]:
    """The tensors of a (possibly nested) state, in a fixed order."""
    if isinstance(state, Tensor):
        return [state]
    return [leaf for part in state for leaf in state_leaves(part)]


def memory_leaves(state: State) -> list[Tensor]:
    """The leaves that hold memory content: floating-point tensors with a feature dimension.

    Per-sample scalars (``[B]``, e.g. the step counter of a time-gated cell) and integer leaves
    are left out: they say *when*, not *what*, and a raw counter (up to T) would swamp a linear map.
    """
    return [leaf for leaf in state_leaves(state) if leaf.is_floating_point() and leaf.dim() > 1]


def _is_lstm(cell: RecurrentCell) -> bool:
    """True when ``cell`` is the library's LSTM cell (whose state is exactly the paper's (h, c))."""
    try:
        return isinstance(cell, cell_class("lstm"))
    except (ImportError, AttributeError):  # lstm.py not available
        return False


class AuxiliaryLoss(nn.Module):
    """Reconstruct (r-) or predict (p-) a segment from the main cell's state at random anchors.

    Layout, for an anchor ``a`` (the main cell's state *after* reading step ``a``), segment length
    ``l`` and gradient window ``w`` (``bptt_length``, default ``l``)::

        reconstruction: segment = steps a-l .. a-1    valid anchors a in [l, T-1]
        prediction:     segment = steps a+1 .. a+l    valid anchors a in [0, T-1-l]
        main cell:      no gradient over steps 0 .. a-w-1, gradient over a-w .. a (clipped at 0)

    This is the layout of the paper's figure and of docs/aux.md#anchors-and-segments ([V-src]/[U]): the state at the
    anchor has read ``x_a``, and the reconstructed segment ends just before it. With the default
    ``w = l`` the reconstruction gradient stops exactly at the segment start, as in the paper.
    For prediction the paper gives no window ([R]); we use the same ``w`` steps before the anchor.

    Decoder ([V-src] slides, docs/aux.md#architecture): a 2-layer LSTM whose bottom layer starts from the main
    state at the anchor and whose top layer starts at zero, followed by a 2-layer feed-forward head
    ``Linear -> ReLU -> Dropout -> Linear``. "Dropout 0.5 on the second FFN layer" is read as dropout
    on the input of the second layer ([U]). The decoder is fed the segment with teacher forcing: at
    step ``j`` it reads the encoded input of segment step ``j - 1`` and predicts the target of
    segment step ``j``. Whether the first segment element is predicted is [U]: with
    ``predict_first=True`` (default) the decoder's first input is a learned start vector and all
    ``l`` elements are scored, so the element furthest from the anchor, the one that needs memory
    most, is scored too; ``predict_first=False`` follows the paper's figure literally (the first
    element is only fed, ``l - 1`` elements are scored). Teacher-forced inputs are the same encoded
    inputs the main cell reads (a shared embedding, as in the public reproduction; paper [U]), and
    their gradient is kept, so the aux loss also trains the input encoder.

    Main state -> decoder: when the main cell is the library's LSTM with ``hidden_size ==
    decoder_hidden`` its ``(h, c)`` initialises the decoder's bottom layer directly, exactly as in
    the paper. Any other state (a GRU tensor, NRU's ``(h, m)``, a 3-tuple with a step counter) is
    flattened (see :func:`memory_leaves`: step counters are left out) and mapped to ``(h, c)`` by
    one learned linear layer.
    ``state_projection`` forces either choice.

    Loss: token-normalised, as in the paper's slides: the sum of per-token losses over all anchors
    and sequences divided by the number of scored tokens. A token's loss is the cross-entropy over
    ``num_targets`` symbols, or the squared error averaged over the ``num_targets`` features.

    Episode starts (``resets[t, b]`` True: the state returns to its initial value before step
    ``t``): an anchor is valid only if its segment lies in the anchor's episode, i.e. no episode
    starts at a step in ``a-l+1 .. a`` (reconstruction; a segment may begin with an episode
    start) or in ``a+1 .. a+l`` (prediction). Anchors are drawn uniformly among the valid steps of
    each sequence; a sequence without any (episodes shorter than the segment) contributes nothing.
    We chose valid anchors over masking tokens of another episode because the teacher-forced
    decoder would still read that episode's inputs.

    Cost: the no-gradient prefix is run once for the whole batch up to the latest window start
    (stopping at each window start to keep that state), then all ``num_anchors x B`` windows are run
    as one batch (one batch per distinct window length, normally just one), then the decoder.
    Extra compute is therefore about one forward pass of the main cell plus ``num_anchors`` short
    windows with gradient, whatever ``num_anchors`` is.

    Args:
        cell: an example of the main cell (its input size and state structure size the module; it
            is *not* stored as a submodule, so its parameters stay with the model that owns it).
        mode: ``"reconstruction"`` (r-LSTM, default: the paper's best variant) or ``"prediction"``.
        target: ``"symbols"`` (targets ``[T, B]`` integer, cross-entropy) or ``"real"`` (targets
            ``[T, B, num_targets]``, MSE).
        num_targets: number of symbols, or number of real features.
        segment_length: ``l`` (the paper's reproduction uses 600 for MNIST; a hyper-parameter).
        num_anchors: anchors drawn per sequence and forward (independently, with replacement).
        bptt_length: ``w``, the steps before the anchor through which the aux gradient reaches the
            main cell (default ``segment_length``).
        decoder_hidden: width of both decoder LSTM layers (128 in the paper).
        ffn_hidden: width of the head's hidden layer (256 in the paper).
        dropout: dropout before the head's second layer (0.5 in the paper).
        predict_first: score the first segment element too (see above).
        state_projection: ``"auto"``, ``"linear"`` or ``"identity"`` (see above).
    """

    def __init__(
        self,
        cell: RecurrentCell,
        mode: Mode = "reconstruction",
        *,
        target: Target = "symbols",
        num_targets: int,
        segment_length: int,
        num_anchors: int = 1,
        bptt_length: int | None = None,
        decoder_hidden: int = 128,
        ffn_hidden: int = 256,
        dropout: float = 0.5,
        predict_first: bool = True,
        state_projection: Projection = "auto",
    ) -> None:
        super().__init__()
        if not isinstance(cell, RecurrentCell):
            raise ValueError(f"cell={cell!r} must be a RecurrentCell (used to size the decoder)")
        self.mode = check_choice("mode", mode, ("reconstruction", "prediction"))
        self.target = check_choice("target", target, ("symbols", "real"))
        self.num_targets = check_int("num_targets", num_targets, low=2 if target == "symbols" else 1)
        self.predict_first = check_bool("predict_first", predict_first)
        self.segment_length = check_int("segment_length", segment_length, low=1 if self.predict_first else 2)
        self.num_anchors = check_int("num_anchors", num_anchors, low=1)
        self.bptt_length = self.segment_length if bptt_length is None else check_int("bptt_length", bptt_length, low=0)
        self.decoder_hidden = check_int("decoder_hidden", decoder_hidden, low=1)
        ffn_hidden = check_int("ffn_hidden", ffn_hidden, low=1)
        dropout = check_float("dropout", dropout, low=0.0, high=1.0)
        state_projection = check_choice("state_projection", state_projection, ("auto", "linear", "identity"))
        self.input_size = cell.input_size

        example = cell.initial_state(1, cell.device)
        self._leaf_shapes = [tuple(leaf.shape[1:]) for leaf in state_leaves(example)]
        leaves = memory_leaves(example)
        lstm_like = (
            not isinstance(example, Tensor)
            and len(example) == 2
            and all(isinstance(s, Tensor) and tuple(s.shape) == (1, self.decoder_hidden) for s in example)
        )
        if state_projection == "identity" and not lstm_like:
            raise ValueError(
                f"state_projection='identity' needs a state (h, c) of shape [B, decoder_hidden={self.decoder_hidden}] "
                f"each; {type(cell).__name__} has state shapes {self._leaf_shapes}"
            )
        self.identity_state = state_projection == "identity" or (
            state_projection == "auto" and lstm_like and _is_lstm(cell)
        )
        state_size = sum(leaf[0].numel() for leaf in leaves)
        if not self.identity_state and state_size == 0:
            raise ValueError(
                f"{type(cell).__name__} has no floating-point state with a feature dimension to start the decoder from"
            )
        self.project = None if self.identity_state else nn.Linear(state_size, 2 * self.decoder_hidden)

        self.start = nn.Parameter(torch.zeros(self.input_size)) if self.predict_first else None
        self.decoder = nn.LSTM(self.input_size, self.decoder_hidden, num_layers=2)
        self.head = nn.Sequential(
            nn.Linear(self.decoder_hidden, ffn_hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(ffn_hidden, self.num_targets),
        )
        self.to(device=cell.device, dtype=cell.dtype)

    def extra_repr(self) -> str:
        return (
            f"mode={self.mode!r}, target={self.target!r}, segment_length={self.segment_length}, "
            f"num_anchors={self.num_anchors}, bptt_length={self.bptt_length}, "
            f"predict_first={self.predict_first}, identity_state={self.identity_state}"
        )

    # -- anchors ---------------------------------------------------------------------------------

    def valid_anchors(
        self, length: int, batch_size: int, resets: Tensor | None = None, lengths: Tensor | None = None
    ) -> Tensor:
        """``bool[T, B]``: the steps that may serve as anchors (segment inside the sequence, inside
        the anchor's episode and, with ``lengths [B]``, before the sequence's padding). On the
        device of ``resets`` (CPU without resets)."""
        device = resets.device if resets is not None else torch.device("cpu")
        steps = torch.arange(length, device=device)
        if self.mode == "reconstruction":
            low, high = self.segment_length, length - 1
        else:
            low, high = 0, length - 1 - self.segment_length
        valid = ((steps >= low) & (steps <= high)).unsqueeze(1).expand(length, batch_size)
        if lengths is not None:  # the anchor (and a predicted segment) before step lengths[b]
            last = lengths.to(device).long() - 1 - (0 if self.mode == "reconstruction" else self.segment_length)
            valid = valid & (steps.unsqueeze(1) <= last.unsqueeze(0))
        if resets is None:
            return valid.clone()
        # starts[i] = number of episode starts at steps < i, so the count in [i, j] is starts[j+1] - starts[i].
        starts = F.pad(resets.long().cumsum(0), (0, 0, 1, 0))
        if self.mode == "reconstruction":  # no start at a-l+1 .. a
            first, last = steps - self.segment_length + 1, steps
        else:  # no start at a+1 .. a+l
            first, last = steps + 1, steps + self.segment_length
        first, last = first.clamp(0, length - 1), last.clamp(0, length - 1)
        inside = starts[last + 1] - starts[first]
        return valid & (inside == 0)

    def sample_anchors(
        self, length: int, batch_size: int, resets: Tensor | None = None, generator: torch.Generator | None = None,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Draw ``num_anchors`` anchors per sequence uniformly among its valid steps.

        Returns ``(anchors long[num_anchors, B], ok bool[num_anchors, B])``; ``ok`` is False for
        sequences without a valid step (their anchor value is meaningless). Sampling happens on
        ``generator``'s device (CPU by default), so a seeded generator reproduces the anchors.
        """
        device = generator.device if generator is not None else torch.device("cpu")
        valid = self.valid_anchors(length, batch_size, None if resets is None else resets.to(device), lengths)
        has_valid = valid.any(0)
        weights = torch.where(has_valid, valid.double(), 1.0).T  # [B, T]; rows without a valid step: dummy
        anchors = torch.multinomial(weights, self.num_anchors, replacement=True, generator=generator).T
        return anchors, has_valid.unsqueeze(0).expand_as(anchors).clone()

    # -- loss ------------------------------------------------------------------------------------

    def forward(
        self,
        cell: RecurrentCell,
        encoded: Tensor,
        targets: Tensor,
        resets: Tensor | None = None,
        generator: torch.Generator | None = None,
        state: State | None = None,
        anchors: Tensor | None = None,
        lengths: Tensor | None = None,
    ) -> Tensor:
        """The token-normalised auxiliary loss (a scalar) for one batch.

        Args:
            cell: the main cell (the same structure as the example given at construction).
            encoded: ``[T, B, input_size]``, the inputs the main cell reads.
            targets: what the decoder must produce at each step: ``[T, B]`` symbols or
                ``[T, B, num_targets]`` reals (for r-/p-LSTM, usually the raw input tokens).
            resets: optional ``bool[T, B]`` episode starts (see the class docstring).
            generator: random source for the anchors (a seeded one makes runs reproducible).
            state: the main cell's state before step 0 (default: its initial state); it is
                detached, gradient never flows back out of the sequence.
            anchors: ``long[K, B]`` fixed anchors instead of sampled ones (tests, analyses); each
                must be valid.
            lengths: optional ``[B]`` real lengths of sequences padded after their end
                (``SequenceBatch.lengths``): anchors and segments stay out of the padding.

        The cell's ``gate_openness`` / ``update_count`` from the caller's own forward are left as
        they were, so a budget loss computed afterwards still sees the main forward.
        """
        length, batch = self._check(cell, encoded, targets, resets, state)
        if anchors is None:
            anchors, ok = self.sample_anchors(length, batch, resets, generator, lengths)
        else:
            anchors = self._check_anchors(anchors, length, batch, resets)
            ok = torch.ones_like(anchors, dtype=torch.bool)
        # One "virtual sample" per (anchor row k, sequence b), in row-major order; drop invalid ones.
        anchor = anchors.reshape(-1).cpu()
        seq = torch.arange(batch).repeat(anchors.shape[0])
        keep = ok.reshape(-1).cpu()
        anchor, seq = anchor[keep], seq[keep]
        if anchor.numel() == 0:
            return sum(p.sum() for p in self.parameters()) * 0.0

        saved = (cell.gate_openness, cell.update_count)
        try:
            anchor_state = self._main_states(cell, encoded, resets, state, anchor, seq)
        finally:
            cell.gate_openness, cell.update_count = saved
        hidden = self._decoder_state(anchor_state)

        offset = -self.segment_length if self.mode == "reconstruction" else 1
        positions = (anchor + offset).unsqueeze(0) + torch.arange(self.segment_length).unsqueeze(1)  # [l, V]
        positions, seq = positions.to(encoded.device), seq.to(encoded.device)
        fed = encoded[positions[:-1], seq]  # [l-1, V, E]: segment steps 0 .. l-2
        if self.predict_first:
            fed = torch.cat([self.start.expand(1, *fed.shape[1:]), fed], 0)
            wanted = targets[positions, seq]
        else:
            wanted = targets[positions[1:], seq]
        out, _ = self.decoder(fed, hidden)
        pred = self.head(out)
        if self.target == "symbols":
            total = F.cross_entropy(pred.reshape(-1, self.num_targets), wanted.reshape(-1).long(), reduction="sum")
        else:
            total = F.mse_loss(pred, wanted.to(pred.dtype), reduction="sum") / self.num_targets
        return total / wanted.shape[0] / wanted.shape[1]

    # -- internals -------------------------------------------------------------------------------

    def _main_states(
        self,
        cell: RecurrentCell,
        encoded: Tensor,
        resets: Tensor | None,
        state: State | None,
        anchor: Tensor,
        seq: Tensor,
    ) -> State:
        """The main cell's state after each virtual sample's anchor step, with gradient only over
        the window ``max(0, a - w) .. a`` (CPU index tensors ``anchor``, ``seq`` of length V)."""
        device = encoded.device
        start = (anchor - self.bptt_length).clamp(min=0)
        initial = cell.initial_state(encoded.shape[1], device) if state is None else state
        initial = detach_state(initial)

        # No-gradient prefix, once for the whole batch, pausing at every distinct window start.
        at: dict[int, State] = {}
        current, t = initial, 0
        for s in sorted(set(start.tolist())):
            if s > t:
                current = final_state_no_grad(cell, encoded[t:s], current, None if resets is None else resets[t:s])
                t = s
            at[s] = current
        starts = self._gather(
            {s: (start == s).nonzero().squeeze(1) for s in at},
            lambda s, idx: select_state(at[s], seq[idx].to(device)),
        )

        # Gradient windows, batched by window length (one batch unless windows were clipped at 0).
        width = anchor - start + 1
        offsets = torch.arange(int(width.max()))

        def window(w: int, idx: Tensor) -> State:
            steps = (start[idx].unsqueeze(0) + offsets[:w].unsqueeze(1)).to(device)  # [w, n]
            cols = seq[idx].to(device)
            win_resets = None if resets is None else resets[steps, cols]
            _, final = cell(encoded[steps, cols], select_state(starts, idx.to(device)), win_resets)
            return final

        return self._gather({int(w): (width == w).nonzero().squeeze(1) for w in width.unique()}, window)

    @staticmethod
    def _gather(groups: dict[int, Tensor], fn) -> State:
        """Compute ``fn(key, idx)`` for each group of virtual-sample indices and reassemble the
        resulting states in virtual-sample order."""
        keys = [k for k, idx in groups.items() if idx.numel()]
        parts = [fn(k, groups[k]) for k in keys]
        order = torch.cat([groups[k] for k in keys])
        merged = cat_states(parts)
        inverse = torch.argsort(order).to(state_leaves(merged)[0].device)
        return map_state(lambda s: s[inverse], merged)

    def _decoder_state(self, state: State) -> tuple[Tensor, Tensor]:
        """``(h0, c0)`` of shape ``[2, V, decoder_hidden]``: bottom layer from ``state``, top zero."""
        if self.identity_state:
            h, c = state
        else:
            leaves = memory_leaves(state)
            dtype = self.project.weight.dtype
            flat = torch.cat([leaf.reshape(leaf.shape[0], -1).to(dtype) for leaf in leaves], 1)
            h, c = self.project(flat).chunk(2, dim=-1)
        h0 = torch.stack([h, torch.zeros_like(h)])
        c0 = torch.stack([c, torch.zeros_like(c)])
        return h0.contiguous(), c0.contiguous()

    def _check(
        self, cell: RecurrentCell, encoded: Tensor, targets: Tensor, resets: Tensor | None, state: State | None
    ) -> tuple[int, int]:
        """Validate the inputs of :meth:`forward`; return ``(T, B)``."""
        if encoded.dim() != 3 or encoded.shape[2] != self.input_size:
            raise ValueError(f"encoded must have shape [T, B, {self.input_size}], got {tuple(encoded.shape)}")
        length, batch = encoded.shape[:2]
        shape = (length, batch) if self.target == "symbols" else (length, batch, self.num_targets)
        if tuple(targets.shape) != shape:
            raise ValueError(
                f"targets must have shape {list(shape)} for target={self.target!r}, got {tuple(targets.shape)}"
            )
        if self.target == "symbols" and (targets.is_floating_point() or targets.is_complex()):
            raise ValueError(f"targets must be integer symbols for target='symbols', got dtype {targets.dtype}")
        if resets is not None and tuple(resets.shape) != (length, batch):
            raise ValueError(f"resets must have shape [T, B] = {[length, batch]}, got {tuple(resets.shape)}")
        example = state if state is not None else cell.initial_state(1, encoded.device)
        shapes = [tuple(leaf.shape[1:]) for leaf in state_leaves(example)]
        if cell.input_size != self.input_size or shapes != self._leaf_shapes:
            raise ValueError(
                f"cell {type(cell).__name__} (input_size={cell.input_size}, state shapes {shapes}) does not match the "
                f"cell this AuxiliaryLoss was built for (input_size={self.input_size}, "
                f"state shapes {self._leaf_shapes})"
            )
        return length, batch

    def _check_anchors(self, anchors: Tensor, length: int, batch: int, resets: Tensor | None) -> Tensor:
        anchors = torch.as_tensor(anchors)
        if anchors.dim() == 1:
            anchors = anchors.unsqueeze(0)
        if anchors.dim() != 2 or anchors.shape[1] != batch or anchors.is_floating_point():
            raise ValueError(f"anchors must be integers of shape [K, B={batch}], got {tuple(anchors.shape)}")
        anchors = anchors.long().cpu()
        valid = self.valid_anchors(length, batch, None if resets is None else resets.cpu())
        inside = (anchors >= 0) & (anchors < length)
        if not inside.all() or not valid[anchors.clamp(0, length - 1), torch.arange(batch)].all():
            allowed = valid.any(1).nonzero().squeeze(1).tolist()
            raise ValueError(
                f"anchors={anchors.tolist()} include an invalid anchor for mode={self.mode!r}, "
                f"segment_length={self.segment_length}, T={length} (steps valid in some sequence: {allowed})"
            )
        return anchors

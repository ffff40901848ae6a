"""A causal Transformer encoder behind the recurrent-cell contract (docs/aux.md#experiments-and-settings).

The auxiliary-loss paper (Trinh et al. 2018) compares r-/p-LSTM against a Transformer of similar
size on pixel MNIST / pMNIST / CIFAR-10. To let both harnesses run it like any cell, the
Transformer is given a *state*: the keys and values of the last ``context - 1`` steps of every
layer (a KV cache). Each step attends to itself and to at most ``context - 1`` earlier steps of
its own episode, so

* ``resets[t, b]`` is an attention mask: no query at or after an episode start attends to a key
  before it (and the positions restart at 0);
* calling the cell chunk by chunk (truncated BPTT, RL rollouts, step-by-step acting) gives the
  same outputs as one call over the whole sequence, because a chunk sees exactly the keys and
  values it would have seen in the full call.

Cost, for ``T`` steps, batch ``B``, ``L`` layers, width ``H``, attention width ``D = heads x
head_size`` and ``C = context``: compute ``O(L B T (min(T, C) D + H^2))``; the attention scores of
up to :attr:`TransformerCell.query_block` queries at a time take ``B heads query_block (C + query_block)``
floats (autograd keeps those of every block for backward); the state holds ``B L 2 (C - 1) D``
floats, so memory grows with the context as for any Transformer (the paper notes the Transformer
runs out of memory on its longest sequences).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agents.cells.base import RecurrentCell, check_inputs
from memenvs.core import check_bool, check_float, check_int

TransformerState = tuple[Tensor, Tensor]


class TransformerBlock(nn.Module):
    """One pre-LayerNorm encoder layer (as ``nn.TransformerEncoderLayer(norm_first=True)``)
    whose self-attention also reads cached keys/values of earlier steps.

    Parameter names and layouts follow ``nn.TransformerEncoderLayer``: ``qkv`` holds the query,
    key and value projections stacked like ``self_attn.in_proj_weight``, ``out`` is
    ``self_attn.out_proj``, then ``linear1``, ``linear2``, ``norm1``, ``norm2``.
    """

    def __init__(self, width: int, num_heads: int, head_size: int, feedforward_size: int, dropout: float) -> None:
        super().__init__()
        self.num_heads, self.head_size, self.dropout = num_heads, head_size, dropout
        inner = num_heads * head_size
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * inner)
        self.out = nn.Linear(inner, width)
        self.norm2 = nn.LayerNorm(width)
        self.linear1 = nn.Linear(width, feedforward_size)
        self.linear2 = nn.Linear(feedforward_size, width)

    def _heads(self, x: Tensor) -> Tensor:
        """``[B, S, heads * head_size] -> [B, heads, S, head_size]``."""
        return x.unflatten(-1, (self.num_heads, self.head_size)).transpose(1, 2)

    def forward(self, h: Tensor, past: Tensor, allowed: Tensor) -> tuple[Tensor, Tensor]:
        """``h [T, B, H]``, ``past [B, 2, S_past, D]`` (keys, values), ``allowed [B, 1, T, S_past + T]``.

        Returns the new ``h`` and this chunk's keys/values ``[B, 2, T, D]``.
        """
        drop = self.dropout if self.training else 0.0
        q, k, v = self.qkv(self.norm1(h)).transpose(0, 1).chunk(3, dim=-1)  # [B, T, D] each
        keys = torch.cat([past[:, 0], k], dim=1)
        values = torch.cat([past[:, 1], v], dim=1)
        att = F.scaled_dot_product_attention(
            self._heads(q), self._heads(keys), self._heads(values), attn_mask=allowed, dropout_p=drop
        )
        h = h + self._drop(self.out(att.transpose(1, 2).flatten(2).transpose(0, 1)), drop)
        ff = self.linear2(self._drop(F.relu(self.linear1(self.norm2(h))), drop))
        return h + self._drop(ff, drop), torch.stack([k, v], dim=1)

    @staticmethod
    def _drop(x: Tensor, p: float) -> Tensor:
        return F.dropout(x, p) if p > 0 else x


class TransformerCell(RecurrentCell):
    """Causal Transformer encoder with a bounded attention window and a KV-cache state.

    Architecture (Vaswani et al. 2017, pre-LayerNorm as in GPT-2 for stable training without
    warm-up)::

        e_t = W_e x_t + b_e + PE(p_t)                 # p_t = steps since the episode start
        num_layers x [ e += Attention(LN(e)) ; e += FFN(LN(e)) ]   # FFN = Linear-ReLU-Linear
        out_t = LN(e_t)

    Query ``t`` attends to key ``s`` iff ``t - context < s <= t`` and no episode starts in
    ``(s, t]``. ``PE`` is the sinusoidal encoding of Vaswani et al. (``[sin | cos]`` halves).

    State: ``(cache, position)``: ``cache [B, num_layers, 2, context - 1, heads * head_size]``
    holds the keys and values of the last ``context - 1`` steps of each layer (oldest first;
    zeros for slots before the episode start), ``position [B]`` (int64) counts the steps since the
    episode start. Both are zero at an episode start. Output: ``out_t`` (``output_size ==
    hidden_size``).

    The auxiliary-loss paper only says "a Transformer of comparable size" (docs/aux.md#experiments-and-settings (unverified)), so
    the defaults are a small standard encoder: 2 layers, 4 heads, feed-forward 4x wide (the
    Vaswani ratio), context 1024 (covers the paper's 784-step MNIST and 1024-step CIFAR-10
    sequences), no dropout.

    Args:
        input_size: features per step.
        hidden_size: model width H (embedding, residual stream and output).
        num_layers: encoder layers (default 2).
        num_heads: attention heads (default 4).
        context: steps a query can see, itself included (default 1024); bounds the state size.
        feedforward_size: hidden units of each feed-forward block (default None: 4 H).
        dropout: dropout on attention weights, residual branches and the feed-forward hidden
            layer, in training mode only (default 0.0, so that a training-mode forward is
            deterministic as the cell contract requires; Vaswani et al. used 0.1).
        head_size: width of each head (default None: ceil(H / num_heads), so any H works,
            e.g. when sizing to a parameter budget; the attention width is heads x head_size).
        positional_encoding: add the sinusoidal position within the episode (default True).

    Attributes:
        query_block: ``forward`` processes at most this many steps at a time (default 256) to
            bound the attention-score memory; results do not depend on it.
    """

    query_block: int = 256

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 2,
        num_heads: int = 4,
        context: int = 1024,
        feedforward_size: int | None = None,
        dropout: float = 0.0,
        head_size: int | None = None,
        positional_encoding: bool = True,
    ) -> None:
        super().__init__(input_size, hidden_size)
        self.num_layers = check_int("num_layers", num_layers, low=1)
        self.num_heads = check_int("num_heads", num_heads, low=1)
        self.context = check_int("context", context, low=1)
        ff = 4 * self.hidden_size if feedforward_size is None else feedforward_size
        self.feedforward_size = check_int("feedforward_size", ff, low=1)
        self.dropout = check_float("dropout", dropout, low=0.0, high=1.0)
        hs = math.ceil(self.hidden_size / self.num_heads) if head_size is None else head_size
        self.head_size = check_int("head_size", hs, low=1)
        self.positional_encoding = check_bool("positional_encoding", positional_encoding)
        self.embed = nn.Linear(self.input_size, self.hidden_size)
        self.blocks = nn.ModuleList(
            TransformerBlock(self.hidden_size, self.num_heads, self.head_size, self.feedforward_size, self.dropout)
            for _ in range(self.num_layers)
        )
        self.norm = nn.LayerNorm(self.hidden_size)

    @property
    def attention_size(self) -> int:
        """Width D of the keys and values: ``num_heads * head_size``."""
        return self.num_heads * self.head_size

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> TransformerState:
        """``(cache, position)``: zeros ``[B, num_layers, 2, context - 1, D]`` and zeros ``[B]`` (int64)."""
        device = device or self.device
        cache = torch.zeros(
            batch_size, self.num_layers, 2, self.context - 1, self.attention_size, device=device, dtype=self.dtype
        )
        return cache, torch.zeros(batch_size, device=device, dtype=torch.long)

    def positions(self, position: Tensor) -> Tensor:
        """Sinusoidal encoding ``[..., H]`` of integer positions ``[...]``: ``[sin(p w) | cos(p w)]``
        with ``w_i = 10000^(-2i/H)``."""
        half = (self.hidden_size + 1) // 2
        freq = torch.exp(
            torch.arange(half, device=position.device, dtype=self.dtype) * (-2 * math.log(10000.0) / self.hidden_size)
        )
        angles = position.to(self.dtype).unsqueeze(-1) * freq
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)[..., : self.hidden_size]

    def _chunk(self, inputs: Tensor, state: TransformerState, resets: Tensor | None) -> tuple[Tensor, TransformerState]:
        """One pass over ``inputs [T, B, I]`` (all layers), reading and returning the KV cache."""
        cache, position = state
        steps, batch = inputs.shape[:2]
        device = inputs.device
        if resets is None:
            resets = torch.zeros(steps, batch, dtype=torch.bool, device=device)
        t = torch.arange(steps, device=device)
        # Position of every step in its episode: since its latest start in the chunk, else carried on.
        start = torch.where(resets, t[:, None], -1).cummax(0).values
        pos = torch.where(start >= 0, t[:, None] - start, position + t[:, None])  # [T, B]
        episode = resets.long().cumsum(0)  # [T, B]; 0 = the episode running at the chunk start

        # Keys: the cached steps that can still be in an episode (ages 1..m), then the T new steps.
        m = min(cache.shape[3], int(position.max())) if batch else 0
        past = cache[:, :, :, cache.shape[3] - m :]
        key_time = torch.arange(-m, steps, device=device)
        lag = t[:, None] - key_time  # [T, S]
        in_window = (lag >= 0) & (lag < self.context)
        cached_valid = (-key_time[:m, None] <= position).t()  # [B, m]: age <= steps into the episode
        key_episode = torch.cat([episode.new_zeros(batch, m), episode.t()], dim=1)  # [B, S]
        key_valid = torch.cat([cached_valid, resets.new_ones(batch, steps)], dim=1)
        allowed = in_window & (episode.t()[:, :, None] == key_episode[:, None, :]) & key_valid[:, None, :]

        h = self.embed(inputs)
        if self.positional_encoding:
            h = h + self.positions(pos)
        new = []
        for layer, block in enumerate(self.blocks):
            h, kv = block(h, past[:, layer], allowed.unsqueeze(1))
            new.append(kv)
        end = pos[-1] + 1

        # Next cache: the last context-1 of [cache | new steps], zeroed where they precede the
        # episode start (so a state never depends on what came before its episode).
        size = cache.shape[3]
        merged = torch.cat([cache, torch.stack(new, dim=1)], dim=3)[:, :, :, steps:]
        ages = torch.arange(size, 0, -1, device=device)
        valid = (ages <= end[:, None]).view(batch, 1, 1, size, 1)
        return self.norm(h), (torch.where(valid, merged, torch.zeros_like(merged)), end)

    def forward(
        self, inputs: Tensor, state: TransformerState | None = None, resets: Tensor | None = None
    ) -> tuple[Tensor, TransformerState]:
        """The shared contract, in blocks of at most :attr:`query_block` steps."""
        check_inputs(self, inputs, resets)
        if state is None:
            state = self.initial_state(inputs.shape[1], inputs.device)
        outs = []
        for begin in range(0, inputs.shape[0], self.query_block):
            piece = slice(begin, begin + self.query_block)
            out, state = self._chunk(inputs[piece], state, None if resets is None else resets[piece])
            outs.append(out)
        return (outs[0] if len(outs) == 1 else torch.cat(outs)), state

    def step(self, x: Tensor, state: TransformerState) -> tuple[Tensor, TransformerState]:
        out, state = self._chunk(x.unsqueeze(0), state, None)
        return out[0], state

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, num_layers={self.num_layers}, num_heads={self.num_heads}, "
            f"head_size={self.head_size}, context={self.context}, feedforward_size={self.feedforward_size}, "
            f"dropout={self.dropout}, positional_encoding={self.positional_encoding}"
        )


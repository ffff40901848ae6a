"""Actor-critic policies built around any :class:`~agents.cells.base.RecurrentCell`.

    obs -> SB3 features extractor -> cell (shared, or one for the actor and one for the critic)
        -> SB3 MlpExtractor (``net_arch``) -> action distribution / value

Everything except the cell is SB3's own ``ActorCriticPolicy`` machinery (features extractors,
``net_arch``, action distributions, orthogonal init, optimizer), so the policy behaves like SB3's
and sb3-contrib's. The recurrent state is whatever the cell uses (a tensor, a tuple, a nested tuple
for separate actor/critic cells), batch dimension 0.

Two code paths, one set of weights:

- *step* (collecting rollouts, :meth:`CellPolicy.predict`): one step for ``B`` envs; the state is
  reset where ``episode_starts`` is True, then the cell's ``step`` runs.
- *sequence* (training): ``[T, N]`` env-sequences go through ``cell(inputs, state, resets)`` in one
  call; ``resets`` are the episode starts. Both paths give the same numbers (tested).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Union

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import CategoricalDistribution, Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    MlpExtractor,
)
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from agents.cells.base import RecurrentCell, State, make_cell, reset_state, select_state
from memenvs.core import check_bool, check_int

#: A state as numpy arrays, as returned by and given to :meth:`CellPolicy.predict`.
NumpyState = Union[np.ndarray, tuple["NumpyState", ...]]


def state_to_numpy(state: State) -> NumpyState:
    """A (nested) tuple of tensors as the same structure of numpy arrays."""
    if isinstance(state, th.Tensor):
        return state.detach().cpu().numpy()
    return tuple(state_to_numpy(s) for s in state)


def state_to_tensor(state: Any, device: th.device) -> State:
    """Inverse of :func:`state_to_numpy` (also accepts tensors, lists and tuples)."""
    if isinstance(state, (tuple, list)):
        return tuple(state_to_tensor(s, device) for s in state)
    return th.as_tensor(state, device=device)


def _merge_time(obs: PyTorchObs) -> PyTorchObs:
    """``[T, N, ...]`` -> ``[T * N, ...]`` (per key for Dict observations)."""
    if isinstance(obs, dict):
        return {k: v.flatten(0, 1) for k, v in obs.items()}
    return obs.flatten(0, 1)


class _Packing(NamedTuple):
    """``[T, N]`` env-sequences cut at their inner episode starts, the pieces side by side as the
    columns of ``[L, S]`` (each piece starts at row 0, shorter ones padded at the end)."""

    index: th.Tensor  # [T * N]: row-major position in [L, S] of each step, in [T, N] time-major order
    sequence: th.Tensor  # [S]: the sequence each piece comes from
    starts: th.Tensor  # [S]: whether a piece begins with an episode start (all but some heads)
    length: int  # L, the longest piece
    pieces: int  # S


def _pack(resets: th.Tensor) -> _Packing:
    """Where each step of ``[T, N]`` sequences goes when they are cut at ``resets`` (see
    :class:`_Packing`); vectorised, no loop over pieces."""
    T, N = resets.shape
    by_sequence = resets.t().reshape(-1)  # sequence-major: the pieces are contiguous runs
    cuts = by_sequence.clone()
    cuts[::T] = True  # every sequence's first step begins a piece, reset or not
    first = cuts.nonzero().flatten()  # [S] where each piece begins
    piece = cuts.cumsum(0) - 1  # [N * T] the piece of each step
    row = th.arange(T * N, device=resets.device) - first[piece]
    pieces = len(first)
    index = (row * pieces + piece).reshape(N, T).t().reshape(-1)
    return _Packing(index, first // T, by_sequence[first], int(row.max()) + 1, pieces)


def _categorical_step(logits: th.Tensor, deterministic: bool) -> tuple[th.Tensor, th.Tensor]:
    """Actions ``[B]`` and their log-probabilities from action logits ``[B, n]``: the same numbers
    and random draws as SB3's ``CategoricalDistribution`` (``torch.distributions.Categorical``),
    without building distribution objects, whose argument checks cost more than this math at
    every rollout step."""
    logits = logits - logits.logsumexp(-1, keepdim=True)
    probs = th.softmax(logits, -1)
    actions = th.argmax(probs, dim=1) if deterministic else th.multinomial(probs, 1, True).squeeze(1)
    return actions, logits.gather(-1, actions.unsqueeze(-1)).squeeze(-1)


def _cell_step(cell: RecurrentCell, x: th.Tensor, state: State) -> tuple[th.Tensor, State]:
    """One step of ``cell``: its ``step`` if it has one, else a length-1 ``forward``."""
    if type(cell).step is RecurrentCell.step:  # a cell that only implements forward
        out, state = cell(x.unsqueeze(0), state)
        return out[0], state
    return cell.step(x, state)


class SequenceEvaluation(NamedTuple):
    """What the PPO update needs from one pass over ``[T, N]`` sequences (flat tensors are
    ``[T * N]`` in time-major order)."""

    values: th.Tensor  # [T*N, 1]
    log_prob: th.Tensor  # [T*N]
    entropy: th.Tensor | None  # [T*N]
    features: th.Tensor  # [T, N, F], the cell inputs (for auxiliary losses)


class CellPolicy(ActorCriticPolicy):
    """Recurrent actor-critic for Box / Discrete / MultiDiscrete / MultiBinary observations.

    Args:
        observation_space, action_space, lr_schedule: set by the algorithm.
        cell: a name from :func:`agents.list_cells` or a :class:`RecurrentCell` subclass
            (called as ``cls(input_size, hidden_size, **cell_kwargs)``).
        cell_kwargs: options of the cell (e.g. ``{"memory_size": 64}`` for NRU).
        hidden_size: the cell's hidden size.
        shared_cell: True (default): actor and critic read one cell, as in CleanRL's PPO-LSTM and
            sb3-contrib's ``shared_lstm``; half the recurrent compute. False: a second cell of the
            same kind feeds the critic (sb3-contrib's default ``enable_critic_lstm``), so value
            gradients do not shape the actor's memory.
        net_arch: SB3's ``net_arch`` for the heads after the cell (default ``dict(pi=[64, 64],
            vf=[64, 64])`` as SB3 and sb3-contrib; ``[]`` for linear heads as CleanRL).
        activation_fn, ortho_init, log_std_init, features_extractor_class,
        features_extractor_kwargs, normalize_images, optimizer_class, optimizer_kwargs: as SB3's
            ``ActorCriticPolicy`` (``ortho_init`` leaves the cell's own initialisation alone;
            the default optimizer is SB3's, Adam with ``eps=1e-5``, with ``fused=True`` on torch >= 2.4).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        cell: str | type[RecurrentCell] = "lstm",
        cell_kwargs: dict[str, Any] | None = None,
        hidden_size: int = 64,
        shared_cell: bool = True,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.Tanh,
        ortho_init: bool = True,
        use_sde: bool = False,
        log_std_init: float = 0.0,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if use_sde:
            raise ValueError("use_sde=True is not supported by recurrent cell policies")
        if not (isinstance(cell, str) or (isinstance(cell, type) and issubclass(cell, RecurrentCell))):
            raise ValueError(f"cell={cell!r} must be a cell name (see agents.list_cells()) or a RecurrentCell subclass")
        if cell_kwargs is not None and not isinstance(cell_kwargs, dict):
            raise ValueError(f"cell_kwargs={cell_kwargs!r} must be a dict of cell options")
        self.cell_spec = cell
        self.cell_kwargs = dict(cell_kwargs or {})
        self.hidden_size = check_int("hidden_size", hidden_size, low=1)
        self.shared_cell = check_bool("shared_cell", shared_cell)
        if optimizer_kwargs is None and optimizer_class is th.optim.Adam and th.__version__ >= "2.4":
            # SB3's default Adam (eps=1e-5) as one fused kernel (on CPUs since torch 2.4): the
            # per-tensor loop costs about four times as long per update on a CPU, where it is a
            # fifth of a PPO update.
            optimizer_kwargs = {"eps": 1e-5, "fused": True}
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=net_arch,
            activation_fn=activation_fn,
            ortho_init=ortho_init,
            log_std_init=log_std_init,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            share_features_extractor=True,
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        for key in ("use_sde", "squash_output", "full_std", "use_expln"):
            data.pop(key, None)
        data.update(
            cell=self.cell_spec, cell_kwargs=self.cell_kwargs, hidden_size=self.hidden_size, shared_cell=self.shared_cell
        )
        return data

    # -- construction --------------------------------------------------------------------------

    def _make_cell(self) -> RecurrentCell:
        if isinstance(self.cell_spec, str):
            return make_cell(self.cell_spec, self.features_dim, self.hidden_size, **self.cell_kwargs)
        return self.cell_spec(self.features_dim, self.hidden_size, **self.cell_kwargs)

    def _build_mlp_extractor(self) -> None:
        """Called by SB3's ``_build`` before the heads and the optimizer: add the cell(s) here so
        they are trained and saved with everything else."""
        self.cell = self._make_cell()
        self.critic_cell = None if self.shared_cell else self._make_cell()
        self.mlp_extractor = MlpExtractor(
            self.cell.output_size, net_arch=self.net_arch, activation_fn=self.activation_fn, device=self.device
        )

    @property
    def cells(self) -> list[RecurrentCell]:
        """The actor's cell, then the critic's if it has its own."""
        return [self.cell] if self.critic_cell is None else [self.cell, self.critic_cell]

    def initial_state(self, batch_size: int) -> State:
        """The state at an episode start for ``batch_size`` envs (on the policy's device)."""
        if self.critic_cell is None:
            return self.cell.initial_state(batch_size, self.device)
        return (self.cell.initial_state(batch_size, self.device), self.critic_cell.initial_state(batch_size, self.device))

    def actor_state(self, state: State) -> State:
        """The part of ``state`` that belongs to :attr:`cell`."""
        return state if self.critic_cell is None else state[0]

    # -- recurrent core --------------------------------------------------------------------------

    def _run_cells(self, features: th.Tensor, state: State, resets: th.Tensor | None) -> tuple[th.Tensor, th.Tensor, State]:
        """``features [T, N, F]`` -> actor and critic cell outputs ``[T, N, H]`` and the new state."""
        if self.critic_cell is None:
            out, state = self.cell(features, state, resets)
            return out, out, state
        out_pi, state_pi = self.cell(features, state[0], resets)
        out_vf, state_vf = self.critic_cell(features, state[1], resets)
        return out_pi, out_vf, (state_pi, state_vf)

    def _step_cells(self, features: th.Tensor, state: State) -> tuple[th.Tensor, th.Tensor, State]:
        """``features [B, F]`` -> actor and critic cell outputs ``[B, H]`` and the new state, via
        each cell's one-step ``step`` (cheaper than a length-1 ``forward`` through a fused kernel)."""
        if self.critic_cell is None:
            out, state = _cell_step(self.cell, features, state)
            return out, out, state
        out_pi, state_pi = _cell_step(self.cell, features, state[0])
        out_vf, state_vf = _cell_step(self.critic_cell, features, state[1])
        return out_pi, out_vf, (state_pi, state_vf)

    def _step_latent(
        self, obs: PyTorchObs, state: State, episode_starts: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor, State]:
        """Step path: one step for a batch of envs; resets the state where a new episode starts."""
        features = self.extract_features(obs)
        starts = episode_starts.reshape(-1).bool()
        if bool(starts.any()):
            state = reset_state(state, starts, self.initial_state(features.shape[0]))
        out_pi, out_vf, state = self._step_cells(features, state)
        return self.mlp_extractor.forward_actor(out_pi), self.mlp_extractor.forward_critic(out_vf), state

    def _packing(self, resets: th.Tensor) -> _Packing | None:
        """How to run ``[T, N]`` sequences with episode starts inside as one batch of pieces that
        each start from a state and run without resets (None where that does not pay).

        Unpacked, a cell runs ``T`` steps over ``N`` sequences (a fused LSTM/GRU a few more: one
        reset step per episode start, see :func:`agents.cells.fused.run_fused`), and a per-step
        cell pays a Python step each. Packed, the cell runs ``L <= T`` steps over ``S`` pieces. Not packed: when padding would more than double the steps computed, and for
        time-gated cells, whose ``gate_openness`` (budget loss) must cover the real steps only.
        """
        if resets.shape[0] < 2 or not bool(resets[1:].any()):
            return None
        if any(cell.time_gated for cell in self.cells):
            return None
        packing = _pack(resets)
        return packing if packing.length * packing.pieces <= 2 * resets.numel() else None

    def _run_packed(self, features: th.Tensor, state: State, packing: _Packing) -> tuple[th.Tensor, th.Tensor]:
        """:meth:`_run_cells` through a :class:`_Packing` (the same outputs; no final state)."""
        T, N, F = features.shape
        flat = features.reshape(T * N, F)
        inputs = flat.new_zeros(packing.length * packing.pieces, F).index_copy(0, packing.index, flat)
        inputs = inputs.view(packing.length, packing.pieces, F)

        def run(cell: RecurrentCell, cell_state: State) -> th.Tensor:
            initial = cell.initial_state(packing.pieces, features.device)
            out, _ = cell(inputs, reset_state(select_state(cell_state, packing.sequence), packing.starts, initial))
            return out.reshape(-1, out.shape[-1]).index_select(0, packing.index).view(T, N, -1)

        if self.critic_cell is None:
            out = run(self.cell, state)
            return out, out
        return run(self.cell, state[0]), run(self.critic_cell, state[1])

    def _sequence_latent(
        self, obs: PyTorchObs, state: State, episode_starts: th.Tensor, final_state: bool = True
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, State | None]:
        """Sequence path: ``[T, N, ...]`` observations through the cell in one call. With
        ``final_state=False`` (training) the state after the last step is not needed and is
        returned as None, which lets sequences with episode starts inside run packed."""
        T, N = episode_starts.shape
        features = self.extract_features(_merge_time(obs)).reshape(T, N, -1)
        resets = episode_starts.bool()
        packing = None if final_state else self._packing(resets)
        if packing is not None:
            out_pi, out_vf = self._run_packed(features, state, packing)
            state = None
        else:
            # Without episode starts, cells may use a fused kernel (nn.LSTM / nn.GRU) in one call.
            out_pi, out_vf, state = self._run_cells(features, state, resets if bool(resets.any()) else None)
        latent_pi = self.mlp_extractor.forward_actor(out_pi.flatten(0, 1))
        latent_vf = self.mlp_extractor.forward_critic(out_vf.flatten(0, 1))
        return latent_pi, latent_vf, features, state

    # -- SB3 policy interface, with state -------------------------------------------------------

    def forward(  # type: ignore[override]
        self, obs: PyTorchObs, state: State, episode_starts: th.Tensor, deterministic: bool = False
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, State]:
        """One step: ``(actions, values, log_prob, new_state)`` for a batch of envs."""
        latent_pi, latent_vf, state = self._step_latent(obs, state, episode_starts)
        if isinstance(self.action_dist, CategoricalDistribution):
            actions, log_prob = _categorical_step(self.action_net(latent_pi), deterministic)
        else:
            distribution = self._get_action_dist_from_latent(latent_pi)
            actions = distribution.get_actions(deterministic=deterministic)
            log_prob = distribution.log_prob(actions)
        actions = actions.reshape((-1, *self.action_space.shape))  # type: ignore[misc]
        return actions, self.value_net(latent_vf), log_prob, state

    def get_distribution(  # type: ignore[override]
        self, obs: PyTorchObs, state: State, episode_starts: th.Tensor
    ) -> tuple[Distribution, State]:
        """One step: the action distribution and the new state."""
        latent_pi, _, state = self._step_latent(obs, state, episode_starts)
        return self._get_action_dist_from_latent(latent_pi), state

    def predict_values(  # type: ignore[override]
        self, obs: PyTorchObs, state: State, episode_starts: th.Tensor
    ) -> th.Tensor:
        """One step: values ``[B, 1]``."""
        _, latent_vf, _ = self._step_latent(obs, state, episode_starts)
        return self.value_net(latent_vf)

    def evaluate_sequence(
        self, obs: PyTorchObs, actions: th.Tensor, state: State, episode_starts: th.Tensor
    ) -> SequenceEvaluation:
        """Values, log-probabilities and entropy of ``actions`` (``[T * N, ...]``) along ``[T, N]``
        sequences that start from ``state`` and reset where ``episode_starts`` is True."""
        latent_pi, latent_vf, features, _ = self._sequence_latent(obs, state, episode_starts, final_state=False)
        distribution = self._get_action_dist_from_latent(latent_pi)
        return SequenceEvaluation(
            self.value_net(latent_vf), distribution.log_prob(actions), distribution.entropy(), features
        )

    def evaluate_actions(  # type: ignore[override]
        self, obs: PyTorchObs, actions: th.Tensor, state: State, episode_starts: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
        """SB3's ``evaluate_actions`` over ``[T, N]`` sequences: ``(values, log_prob, entropy)``."""
        values, log_prob, entropy, _ = self.evaluate_sequence(obs, actions, state, episode_starts)
        return values, log_prob, entropy

    def _predict(  # type: ignore[override]
        self, observation: PyTorchObs, state: State, episode_starts: th.Tensor, deterministic: bool = False
    ) -> tuple[th.Tensor, State]:
        distribution, state = self.get_distribution(observation, state, episode_starts)
        return distribution.get_actions(deterministic=deterministic), state

    def predict(  # type: ignore[override]
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: NumpyState | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, NumpyState]:
        """Actions for one step, sb3-contrib style: ``(action, state)``.

        Args:
            observation: one observation, or a batch of ``B`` (one per env).
            state: the state returned by the previous call (numpy arrays, same structure as the
                cell's state, batch ``B``); None: the cell's initial state.
            episode_start: ``bool[B]``, True where a new episode starts (the state is reset
                before the step); None: no episode starts.
            deterministic: the most likely action instead of a sample.

        Returns:
            The actions and the new state (numpy), to pass back at the next call.
        """
        self.set_training_mode(False)
        obs_tensor, vectorized = self.obs_to_tensor(observation)
        first = next(iter(obs_tensor.values())) if isinstance(obs_tensor, dict) else obs_tensor
        n = first.shape[0]
        state_t = self.initial_state(n) if state is None else state_to_tensor(state, self.device)
        if episode_start is None:
            starts = th.zeros(n, dtype=th.bool, device=self.device)
        else:
            starts = th.as_tensor(np.asarray(episode_start, dtype=bool).reshape(n), device=self.device)
        with th.no_grad():
            actions, state_t = self._predict(obs_tensor, state_t, starts, deterministic)
        actions = actions.cpu().numpy().reshape((-1, *self.action_space.shape))  # type: ignore[misc]
        if isinstance(self.action_space, spaces.Box):
            actions = np.clip(actions, self.action_space.low, self.action_space.high)
        if not vectorized:
            actions = actions.squeeze(axis=0)
        return actions, state_to_numpy(state_t)


class MultiInputCellPolicy(CellPolicy):
    """:class:`CellPolicy` for Dict observation spaces (SB3's ``CombinedExtractor`` by default)."""

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        *args: Any,
        features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            observation_space, action_space, lr_schedule, *args, features_extractor_class=features_extractor_class, **kwargs
        )

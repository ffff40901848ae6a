"""Recurrent PPO for any recurrent cell, on Stable-Baselines3's ``OnPolicyAlgorithm``.

Rollouts are collected one step at a time for all envs (the policy carries each env's cell state
and resets it at episode starts); training feeds whole env-sequences (the rollout, or chunks of
``seq_len`` steps) through ``cell(inputs, state, resets)``. Compared with sb3-contrib's
``RecurrentPPO``: any cell and state structure instead of nn.LSTM's ``(h, c)``; no per-episode
padding and no per-step fallback when a minibatch contains episode starts; auxiliary
reconstruction and g-LSTM budget losses; Gymnasium vector envs through :mod:`agents.rl.vec_env`.

The training loop follows SB3's PPO (same losses, clipping, logging keys, early stop on
``target_kl``), so results compare directly with ``stable_baselines3.PPO``.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import FloatSchedule, explained_variance, obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv

from agents.cells.base import State, select_state
from agents.rl.buffer import DictSequenceRolloutBuffer, SequenceRolloutBuffer, check_seq_len
from agents.rl.policy import CellPolicy, MultiInputCellPolicy
from memenvs.core import check_float, check_int

SelfRecurrentPPO = TypeVar("SelfRecurrentPPO", bound="RecurrentPPO")


def _stack_obs(observations: list[Any]) -> np.ndarray | dict[str, np.ndarray]:
    """Stack single observations (arrays or dicts of arrays) into a batch."""
    if isinstance(observations[0], dict):
        return {key: np.stack([o[key] for o in observations]) for key in observations[0]}
    return np.stack(observations)


class RecurrentPPO(OnPolicyAlgorithm):
    """Proximal Policy Optimization with a recurrent cell policy (any cell of :mod:`agents.cells`).

    Example::

        from agents.rl import RecurrentPPO, make_vec_env
        env = make_vec_env("memenvs/TMaze-v0", n_envs=8, seed=0, corridor_length=10)
        model = RecurrentPPO("CellPolicy", env, policy_kwargs={"cell": "gru", "hidden_size": 64}, seed=0)
        model.learn(200_000, progress_bar=True)
        action, state = model.predict(obs, state=None, episode_start=starts, deterministic=True)

    Args:
        policy: ``"CellPolicy"`` (Box/Discrete obs), ``"MultiInputCellPolicy"`` (Dict obs) or a
            :class:`~agents.rl.policy.CellPolicy` subclass. ``policy_kwargs`` choose the cell
            (``cell``, ``cell_kwargs``, ``hidden_size``, ``shared_cell``, ``net_arch``).
        env: a VecEnv, a Gymnasium env, or an id (see :func:`agents.rl.make_vec_env` for memenvs
            native vector envs).
        learning_rate: Adam learning rate or schedule of the remaining progress.
        n_steps: steps per env and rollout (128, as CleanRL's PPO-LSTM and sb3-contrib).
        batch_size: steps per minibatch; must be a multiple of ``seq_len`` (a minibatch holds
            ``batch_size // seq_len`` env-sequences). None (default): a quarter of the rollout, as
            CleanRL's 4 minibatches.
        seq_len: steps per training sequence; must divide ``n_steps``. None (default): the whole
            rollout, one sequence per env, the fastest setting. Shorter chunks mean more, shorter
            sequences per minibatch (more decorrelated minibatches, shorter gradient paths).
        n_epochs: passes over the rollout per update. Default 4 (CleanRL's PPO-LSTM): every pass
            starts sequences from states stored during the rollout, which grow stale as the policy
            moves, so fewer passes than SB3 PPO's 10 are the safer default.
        gamma, gae_lambda, clip_range, clip_range_vf, normalize_advantage, vf_coef,
        max_grad_norm, target_kl: as SB3's PPO.
        ent_coef: entropy bonus. Default 0.01 (CleanRL) rather than SB3's 0.0: memory tasks such
            as the T-maze need exploration at the decision step.
        aux_coef: weight of the auxiliary loss (0 disables it).
        aux_kwargs: options of :class:`agents.losses.AuxiliaryLoss`. By default it reconstructs
            the cell's past *inputs* (the extracted observation features, MSE) from the actor
            cell's state at random anchors: ``mode="reconstruction"``, ``target="real"``,
            ``segment_length=min(8, seq_len - 1)``, smaller decoder (``decoder_hidden=64``,
            ``ffn_hidden=64``, ``dropout=0.0``) than the paper's since RL observations are small.
        budget_coef: weight of the g-LSTM computational budget loss (mean gate openness of
            time-gated cells; 0 disables it; docs/glstm.md#budget-loss).
        stats_window_size, tensorboard_log, policy_kwargs, verbose, seed, device: as SB3.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "CellPolicy": CellPolicy,
        "MultiInputCellPolicy": MultiInputCellPolicy,
    }
    policy: CellPolicy
    rollout_buffer: SequenceRolloutBuffer

    def __init__(
        self,
        policy: str | type[CellPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        n_steps: int = 128,
        batch_size: int | None = None,
        seq_len: int | None = None,
        n_epochs: int = 4,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip_range: float | Schedule = 0.2,
        clip_range_vf: float | Schedule | None = None,
        normalize_advantage: bool = True,
        ent_coef: float = 0.01,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        target_kl: float | None = None,
        aux_coef: float = 0.0,
        aux_kwargs: dict[str, Any] | None = None,
        budget_coef: float = 0.0,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        n_steps = check_int("n_steps", n_steps, low=1)
        seq_len = check_seq_len(n_steps, seq_len)
        if batch_size is not None:
            batch_size = check_int("batch_size", batch_size, low=seq_len)
            if batch_size % seq_len:
                raise ValueError(f"batch_size={batch_size} must be a multiple of seq_len={seq_len}")
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            gamma=check_float("gamma", gamma, low=0.0, high=1.0),
            gae_lambda=check_float("gae_lambda", gae_lambda, low=0.0, high=1.0),
            ent_coef=check_float("ent_coef", ent_coef),
            vf_coef=check_float("vf_coef", vf_coef, low=0.0),
            max_grad_norm=check_float("max_grad_norm", max_grad_norm, low=0.0),
            use_sde=False,
            sde_sample_freq=-1,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
            supported_action_spaces=(spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary),
        )
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.n_epochs = check_int("n_epochs", n_epochs, low=1)
        self.clip_range = clip_range
        self.clip_range_vf = clip_range_vf
        self.normalize_advantage = normalize_advantage
        self.target_kl = target_kl
        self.aux_coef = check_float("aux_coef", aux_coef, low=0.0)
        self.aux_kwargs = dict(aux_kwargs or {})
        self.budget_coef = check_float("budget_coef", budget_coef, low=0.0)
        self.aux_loss: th.nn.Module | None = None
        self._last_states: State | None = None
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        buffer_class = DictSequenceRolloutBuffer if isinstance(self.observation_space, spaces.Dict) else SequenceRolloutBuffer
        self.rollout_buffer = buffer_class(
            self.n_steps,
            self.observation_space,  # type: ignore[arg-type]
            self.action_space,
            device=self.device,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            n_envs=self.n_envs,
            seq_len=self.seq_len,
        )
        if self.batch_size is not None and self.batch_size > self.n_steps * self.n_envs:
            raise ValueError(
                f"batch_size={self.batch_size} is larger than the rollout (n_steps * n_envs = {self.n_steps * self.n_envs})"
            )
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space, self.action_space, self.lr_schedule, **self.policy_kwargs
        )
        if not isinstance(self.policy, CellPolicy):
            raise ValueError(f"policy {type(self.policy).__name__} must be a CellPolicy (or subclass)")
        self.policy = self.policy.to(self.device)
        if self.aux_coef > 0:
            self.aux_loss = self._make_aux_loss()
            self.policy.optimizer.add_param_group({"params": list(self.aux_loss.parameters())})
        self.clip_range = FloatSchedule(self.clip_range)
        if self.clip_range_vf is not None:
            self.clip_range_vf = FloatSchedule(self.clip_range_vf)

    def _make_aux_loss(self) -> th.nn.Module:
        """The auxiliary loss on the actor cell, reconstructing its past inputs by default."""
        from agents.losses.auxiliary import AuxiliaryLoss

        kwargs: dict[str, Any] = {
            "mode": "reconstruction",
            "target": "real",
            "num_targets": self.policy.features_dim,
            "segment_length": max(1, min(8, self.seq_len - 1)),
            "decoder_hidden": 64,
            "ffn_hidden": 64,
            "dropout": 0.0,
        }
        kwargs.update(self.aux_kwargs)
        if kwargs["target"] != "real" or kwargs["num_targets"] != self.policy.features_dim:
            raise ValueError(
                f"aux_kwargs target={kwargs['target']!r}, num_targets={kwargs['num_targets']!r}: the RL auxiliary "
                f"loss reconstructs the cell inputs, so only target='real' with num_targets={self.policy.features_dim}"
            )
        return AuxiliaryLoss(self.policy.cell, **kwargs)

    @classmethod
    def load_safe(
        cls, run_dir: str | os.PathLike, env: GymEnv | None = None, device: th.device | str | None = None
    ) -> RecurrentPPO:
        """The trained model of a ``memory-bench rl`` run directory, loaded without unpickling:
        rebuilt from its ``config.json``, weights from ``policy.pt`` via
        ``torch.load(weights_only=True)``. See :func:`agents.rl.runs.load_policy`.

        Prefer it to :meth:`load`: SB3's ``load("model.zip")`` restores the objects of the archive
        with cloudpickle, which runs whatever code the file holds.
        """
        from agents.rl.runs import load_policy

        return load_policy(run_dir, env=env, device=None if device is None else str(device))  # type: ignore[arg-type]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy", "policy.optimizer"] + (["aux_loss"] if self.aux_loss is not None else [])
        return state_dicts, []

    def _excluded_save_params(self) -> list[str]:
        # The carried rollout state is transient: learn() after load() starts fresh episodes.
        return [*super()._excluded_save_params(), "_last_states"]

    def _setup_learn(self, *args: Any, **kwargs: Any) -> tuple[int, BaseCallback]:
        total, callback = super()._setup_learn(*args, **kwargs)
        assert self.env is not None
        if self._last_states is None or bool(np.all(self._last_episode_starts)):
            self._last_states = self.policy.initial_state(self.env.num_envs)
        return total, callback

    # -- rollouts ------------------------------------------------------------------------------

    def collect_rollouts(
        self, env: VecEnv, callback: BaseCallback, rollout_buffer: RolloutBuffer, n_rollout_steps: int
    ) -> bool:
        """Step all envs ``n_rollout_steps`` times with the current policy, carrying each env's
        cell state, and fill ``rollout_buffer`` (with each chunk's starting state)."""
        assert self._last_obs is not None and self._last_states is not None
        self.policy.set_training_mode(False)
        rollout_buffer.reset()
        callback.on_rollout_start()
        for _ in range(n_rollout_steps):
            with th.no_grad():
                obs = obs_as_tensor(self._last_obs, self.device)  # type: ignore[arg-type]
                starts = th.as_tensor(self._last_episode_starts, dtype=th.bool, device=self.device)
                actions, values, log_probs, states = self.policy(obs, self._last_states, starts)
            actions = actions.cpu().numpy()
            clipped = actions
            if isinstance(self.action_space, spaces.Box):
                clipped = np.clip(actions, self.action_space.low, self.action_space.high)

            new_obs, rewards, dones, infos = env.step(clipped)
            self.num_timesteps += env.num_envs
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)

            if isinstance(self.action_space, spaces.Discrete):
                actions = actions.reshape(-1, 1)
            rewards = self._bootstrap_truncated(rewards, dones, infos, states)
            rollout_buffer.add(  # type: ignore[call-arg]
                self._last_obs, actions, rewards, self._last_episode_starts, values, log_probs, state=self._last_states
            )
            self._last_obs, self._last_episode_starts, self._last_states = new_obs, dones, states

        with th.no_grad():
            starts = th.as_tensor(dones, dtype=th.bool, device=self.device)
            values = self.policy.predict_values(obs_as_tensor(new_obs, self.device), states, starts)  # type: ignore[arg-type]
        rollout_buffer.compute_returns_and_advantage(last_values=values, dones=dones)
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def _bootstrap_truncated(
        self, rewards: np.ndarray, dones: np.ndarray, infos: list[dict[str, Any]], states: State
    ) -> np.ndarray:
        """Add ``gamma * V(terminal observation)`` to the reward of envs cut off by a time limit.

        The value is computed with the state *after* the truncated step (before the reset that
        the next step applies), continuing the ended episode by one step.
        """
        idx = [
            i
            for i, done in enumerate(dones)
            if done and infos[i].get("TimeLimit.truncated", False) and infos[i].get("terminal_observation") is not None
        ]
        if not idx:
            return rewards
        terminal_obs, _ = self.policy.obs_to_tensor(_stack_obs([infos[i]["terminal_observation"] for i in idx]))
        index = th.as_tensor(idx, device=self.device)
        no_start = th.zeros(len(idx), dtype=th.bool, device=self.device)
        with th.no_grad():
            values = self.policy.predict_values(terminal_obs, select_state(states, index), no_start)
        rewards = rewards.astype(np.float32, copy=True)
        rewards[idx] += self.gamma * values.flatten().cpu().numpy()
        return rewards

    # -- update --------------------------------------------------------------------------------

    def train(self) -> None:
        """PPO update on whole env-sequences of the rollout buffer (SB3's losses and logs)."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)  # type: ignore[operator]
        clip_range_vf = None
        if self.clip_range_vf is not None:
            clip_range_vf = self.clip_range_vf(self._current_progress_remaining)  # type: ignore[operator]
        logs: dict[str, list[float]] = {k: [] for k in ("pg", "value", "entropy", "clip", "kl", "aux", "budget")}
        continue_training = True

        for epoch in range(self.n_epochs):
            for batch in self.rollout_buffer.get(self.batch_size):
                actions = batch.actions.flatten(0, 1)
                if isinstance(self.action_space, spaces.Discrete):
                    actions = actions.long().flatten()
                evaluation = self.policy.evaluate_sequence(batch.observations, actions, batch.states, batch.episode_starts)
                values = evaluation.values.flatten()
                log_prob = evaluation.log_prob
                advantages = batch.advantages.flatten()
                if self.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

                old_log_prob = batch.old_log_prob.flatten()
                ratio = th.exp(log_prob - old_log_prob)
                policy_loss = -th.min(advantages * ratio, advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range)).mean()
                old_values = batch.old_values.flatten()
                if clip_range_vf is not None:
                    values = old_values + th.clamp(values - old_values, -clip_range_vf, clip_range_vf)
                value_loss = F.mse_loss(batch.returns.flatten(), values)
                entropy = evaluation.entropy
                entropy_loss = -th.mean(-log_prob) if entropy is None else -th.mean(entropy)
                loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss

                if self.budget_coef > 0:
                    from agents.losses.budget import budget_loss

                    budget = sum(budget_loss(cell, self.budget_coef) for cell in self.policy.cells)
                    loss = loss + budget
                    logs["budget"].append(float(budget.detach()))
                if self.aux_loss is not None:
                    features = evaluation.features
                    aux = self.aux_loss(
                        self.policy.cell,
                        features,
                        features.detach(),
                        resets=batch.episode_starts,
                        state=self.policy.actor_state(batch.states),
                    )
                    loss = loss + self.aux_coef * aux
                    logs["aux"].append(aux.item())

                with th.no_grad():
                    log_ratio = log_prob - old_log_prob
                    approx_kl = th.mean((th.exp(log_ratio) - 1) - log_ratio).item()
                logs["pg"].append(policy_loss.item())
                logs["value"].append(value_loss.item())
                logs["entropy"].append(entropy_loss.item())
                logs["clip"].append(th.mean((th.abs(ratio - 1) > clip_range).float()).item())
                logs["kl"].append(approx_kl)
                if self.target_kl is not None and approx_kl > 1.5 * self.target_kl:
                    continue_training = False
                    if self.verbose >= 1:
                        print(f"Early stopping at step {epoch} due to reaching max kl: {approx_kl:.2f}")
                    break

                self.policy.optimizer.zero_grad()
                loss.backward()
                params = [p for group in self.policy.optimizer.param_groups for p in group["params"]]
                th.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
                self.policy.optimizer.step()
            self._n_updates += 1
            if not continue_training:
                break

        explained_var = explained_variance(self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten())
        record = self.logger.record
        record("train/entropy_loss", np.mean(logs["entropy"]))
        record("train/policy_gradient_loss", np.mean(logs["pg"]))
        record("train/value_loss", np.mean(logs["value"]))
        record("train/approx_kl", np.mean(logs["kl"]))
        record("train/clip_fraction", np.mean(logs["clip"]))
        record("train/loss", loss.item())
        record("train/explained_variance", explained_var)
        if logs["aux"]:
            record("train/aux_loss", np.mean(logs["aux"]))
        if logs["budget"]:
            record("train/budget_loss", np.mean(logs["budget"]))
        if hasattr(self.policy, "log_std"):
            record("train/std", th.exp(self.policy.log_std).mean().item())
        record("train/n_updates", self._n_updates, exclude="tensorboard")
        record("train/clip_range", clip_range)
        if clip_range_vf is not None:
            record("train/clip_range_vf", clip_range_vf)

    def learn(
        self: SelfRecurrentPPO,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "RecurrentPPO",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfRecurrentPPO:
        """Train for ``total_timesteps`` env steps (SB3's ``learn``: callbacks, logger, progress bar)."""
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

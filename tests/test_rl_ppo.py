"""RecurrentPPO: rollout sequences reproduce the collected numbers, truncation bootstrapping,
save/load, every cell, auxiliary and budget losses, evaluation and a small learning check."""

from __future__ import annotations

import zipfile
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.wrappers import TimeLimit
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

from agents.cells import list_cells
from agents.rl import RecurrentPPO, evaluate, make_vec_env

SMALL = {"hidden_size": 8, "net_arch": [8]}


class CountingEnv(gym.Env):
    """Observation ``[x, t]`` with ``x`` drawn at reset; reward = action; action 1 ends the episode
    from step 3 on. Wrapped in ``TimeLimit(4)`` it mixes terminations and truncations, and its
    terminal observation (``t = 4``) is never seen as an input otherwise."""

    observation_space = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.t, self.x = 0, float(self.np_random.uniform(-1, 1))
        return self._obs(), {}

    def _obs(self) -> np.ndarray:
        return np.array([self.x, self.t], dtype=np.float32)

    def step(self, action):
        self.t += 1
        return self._obs(), float(action), bool(action == 1 and self.t >= 3), False, {}


def counting_env(n_envs: int = 3) -> DummyVecEnv:
    return DummyVecEnv([lambda: TimeLimit(CountingEnv(), max_episode_steps=4)] * n_envs)


class Recorder(BaseCallback):
    """Keeps the raw rewards, dones and infos of every rollout step."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[tuple[np.ndarray, np.ndarray, list[dict]]] = []

    def _on_step(self) -> bool:
        self.steps.append((self.locals["rewards"].copy(), self.locals["dones"].copy(), self.locals["infos"]))
        return True


def collect(model: RecurrentPPO, callback: BaseCallback | None = None) -> None:
    """One rollout with the current (untrained) policy, without an update."""
    _, cb = model._setup_learn(model.n_steps * model.n_envs, callback)
    assert model.collect_rollouts(model.env, cb, model.rollout_buffer, model.n_steps)


@pytest.mark.parametrize("cell", ["lstm", "gru", "glstm"])
@pytest.mark.parametrize("seq_len", [None, 4])
def test_training_sequences_reproduce_the_rollout(cell: str, seq_len: int | None) -> None:
    """Feeding the buffer's env-sequences through the cell with the resets mask (from the stored
    chunk-start states) gives the log-probs and values computed step by step during collection."""
    model = RecurrentPPO("CellPolicy", counting_env(), n_steps=12, seq_len=seq_len, policy_kwargs={"cell": cell, **SMALL}, seed=0)
    collect(model)
    buffer = model.rollout_buffer
    assert buffer.episode_starts[1:].any()  # episodes start inside sequences
    seen = 0
    for batch in buffer.get(None if seq_len is None else 8):
        T, N = batch.episode_starts.shape
        assert T == (seq_len or 12)
        seen += N
        actions = batch.actions.long().flatten()
        with torch.no_grad():
            ev = model.policy.evaluate_sequence(batch.observations, actions, batch.states, batch.episode_starts)
        torch.testing.assert_close(ev.log_prob, batch.old_log_prob.flatten(), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(ev.values.flatten(), batch.old_values.flatten(), atol=1e-5, rtol=1e-4)
    assert seen == 3 * 12 // (seq_len or 12)


def test_dict_observations_train_on_sequences_too() -> None:
    """MultiInputCellPolicy + the Dict buffer: same parity on a PreviousAction-wrapped T-maze."""
    from memenvs.control.tmaze import TMazeEnv
    from memenvs.wrappers import PreviousAction

    env = DummyVecEnv([lambda: PreviousAction(TMazeEnv(corridor_length=2))] * 2)
    model = RecurrentPPO("MultiInputCellPolicy", env, n_steps=12, seq_len=6, policy_kwargs={"cell": "lstm", **SMALL}, seed=0)
    collect(model)
    assert model.rollout_buffer.episode_starts[1:].any()
    for batch in model.rollout_buffer.get():
        assert set(batch.observations) == {"obs", "prev_action", "is_first"}
        with torch.no_grad():
            ev = model.policy.evaluate_sequence(batch.observations, batch.actions.long().flatten(), batch.states, batch.episode_starts)
        torch.testing.assert_close(ev.log_prob, batch.old_log_prob.flatten(), atol=1e-5, rtol=1e-4)
    model.learn(48)


def test_truncation_bootstraps_from_terminal_observation_with_pre_reset_state() -> None:
    model = RecurrentPPO("CellPolicy", counting_env(), n_steps=16, gamma=0.9, policy_kwargs={"cell": "gru", **SMALL}, seed=1)
    recorder = Recorder()
    collect(model, recorder)
    buffer, policy = model.rollout_buffer, model.policy

    def value_after(episode_obs: np.ndarray, state=None, start: bool = True) -> float:
        """Value at the last of ``episode_obs`` run as one sequence from ``state``."""
        obs = torch.as_tensor(episode_obs, dtype=torch.float32).unsqueeze(1)
        starts = torch.zeros(len(episode_obs), 1, dtype=torch.bool)
        starts[0] = start
        with torch.no_grad():
            _, latent_vf, _, _ = policy._sequence_latent(obs, policy.initial_state(1) if state is None else state, starts)
            return float(policy.value_net(latent_vf[-1]))

    checked = {"truncated": 0, "terminated": 0}
    for t, (raw, dones, infos) in enumerate(recorder.steps):
        for e in np.flatnonzero(dones):
            starts = np.flatnonzero(buffer.episode_starts[: t + 1, e])
            first = starts[-1]
            if infos[e]["TimeLimit.truncated"]:
                terminal = infos[e]["terminal_observation"]
                episode = np.concatenate([buffer.observations[first : t + 1, e], terminal[None]])
                expected = value_after(episode)
                bootstrap = (buffer.rewards[t, e] - raw[e]) / model.gamma
                assert bootstrap == pytest.approx(expected, abs=1e-5)
                # It matters: a reset state, or the next episode's first observation, give other values.
                assert abs(expected - value_after(terminal[None])) > 1e-4
                episode_next = np.concatenate([buffer.observations[first : t + 1, e], buffer.observations[t + 1, e][None]])
                if t + 1 < len(recorder.steps):
                    assert abs(expected - value_after(episode_next)) > 1e-4
                checked["truncated"] += 1
            else:
                assert buffer.rewards[t, e] == pytest.approx(raw[e])  # no bootstrap on termination
                checked["terminated"] += 1
    assert checked["truncated"] > 0 and checked["terminated"] > 0


def test_save_load_round_trip(tmp_path) -> None:
    env = make_vec_env("memenvs/MemoryChain-v0", n_envs=2, seed=0, memory_length=3)
    model = RecurrentPPO(
        "CellPolicy", env, n_steps=8, aux_coef=0.5, aux_kwargs={"segment_length": 2},
        policy_kwargs={"cell": "lstm", "shared_cell": False, **SMALL}, seed=0,
    )
    model.learn(32)
    path = tmp_path / "model.zip"
    model.save(path)
    loaded = RecurrentPPO.load(path, device="cpu")
    with zipfile.ZipFile(path) as archive, archive.open("policy.pth") as f:
        weights = torch.load(f, weights_only=True)
    assert any(k.startswith("cell.") for k in weights) and any(k.startswith("critic_cell.") for k in weights)
    for name, value in model.aux_loss.state_dict().items():
        torch.testing.assert_close(loaded.aux_loss.state_dict()[name], value)

    obs = np.random.default_rng(0).uniform(-1, 1, size=(6, 2, 3)).astype(np.float32)
    starts = np.zeros((6, 2), dtype=bool)
    starts[0] = starts[3, 1] = True
    state_a = state_b = None
    for t in range(6):
        a, state_a = model.predict(obs[t], state_a, starts[t], deterministic=True)
        b, state_b = loaded.predict(obs[t], state_b, starts[t], deterministic=True)
        np.testing.assert_array_equal(a, b)
    flat = lambda s: [s] if isinstance(s, np.ndarray) else [x for p in s for x in flat(p)]  # noqa: E731
    for u, v in zip(flat(state_a), flat(state_b)):
        np.testing.assert_array_equal(u, v)
    loaded.set_env(env)
    loaded.learn(16)  # continues training after loading


@pytest.mark.parametrize("cell", list_cells())
def test_learn_runs_for_every_cell(cell: str) -> None:
    env = make_vec_env("memenvs/MemoryChain-v0", n_envs=4, seed=0, memory_length=3)
    model = RecurrentPPO("CellPolicy", env, n_steps=16, n_epochs=1, policy_kwargs={"cell": cell, **SMALL}, seed=0)
    before = [p.detach().clone() for p in model.policy.cell.parameters()]
    model.learn(256)
    assert model.num_timesteps == 256
    after = list(model.policy.cell.parameters())
    assert all(torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(before, after))


def test_auxiliary_and_budget_losses_join_the_update() -> None:
    env = make_vec_env("memenvs/MemoryChain-v0", n_envs=2, seed=0, memory_length=3)
    model = RecurrentPPO(
        "CellPolicy", env, n_steps=8, aux_coef=1.0, budget_coef=0.1, aux_kwargs={"segment_length": 3},
        policy_kwargs={"cell": "glstm", **SMALL}, seed=0,
    )
    aux_before = [p.detach().clone() for p in model.aux_loss.parameters()]
    model.learn(16)
    logged = model.logger.name_to_value  # the last update's values (not yet dumped)
    assert logged["train/aux_loss"] > 0
    openness = model.policy.cell.gate_openness
    assert logged["train/budget_loss"] > 0 and openness is not None
    assert any(not torch.equal(a, b) for a, b in zip(aux_before, model.aux_loss.parameters()))  # in the optimizer
    with pytest.raises(ValueError, match="target='symbols'"):
        RecurrentPPO("CellPolicy", env, n_steps=8, aux_coef=1.0, aux_kwargs={"target": "symbols"}, policy_kwargs=SMALL)


class RememberingOracle:
    """A scripted 'model' for MemoryChain with one bit: keeps the context bit in its state and
    answers it, so it scores 1 only if evaluate() threads state and episode starts correctly."""

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        context = obs[:, 1]
        state = np.zeros(len(obs)) if state is None else state.copy()
        state = np.where(episode_start, context, state)
        return (state > 0).astype(np.int64), state


def test_evaluate_threads_state_for_the_user() -> None:
    env = make_vec_env("memenvs/MemoryChain-v0", n_envs=3, seed=0, memory_length=4)
    result = evaluate(RememberingOracle(), env, n_episodes=10)
    assert result["mean_return"] == pytest.approx(1.0, abs=1e-9)
    assert result["success_rate"] == 1.0 and result["n_episodes"] == 10 and result["mean_length"] == 5


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"n_steps": 12, "seq_len": 5}, "seq_len=5"),
        ({"n_steps": 12, "seq_len": 4, "batch_size": 6}, "batch_size=6"),
        ({"n_steps": 12, "batch_size": 48}, "batch_size=48"),
        ({"n_epochs": 0}, "n_epochs=0"),
        ({"aux_coef": -1.0}, "aux_coef=-1.0"),
        ({"policy_kwargs": {"cell": "nope"}}, "unknown cell"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RecurrentPPO("CellPolicy", counting_env(), **kwargs)


def test_gru_solves_a_short_memory_chain() -> None:
    """Learning check small enough for CI (~5-10 s on one core): remember one bit for 3 steps."""
    env = make_vec_env("memenvs/MemoryChain-v0", n_envs=8, seed=0, memory_length=3)
    model = RecurrentPPO(
        "CellPolicy", env, n_steps=64, batch_size=256, learning_rate=5e-3,
        policy_kwargs={"cell": "gru", "hidden_size": 32, "net_arch": [32]}, seed=0,
    )
    model.learn(4096)
    result = evaluate(model, make_vec_env("memenvs/MemoryChain-v0", n_envs=8, seed=1000, memory_length=3), 64)
    assert result["success_rate"] >= 0.95

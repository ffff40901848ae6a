"""The settings of an RL run: :class:`RLConfig`, saved as the run's ``config.json``.

::

    from agents.rl import RLConfig, train_rl
    summary = train_rl(RLConfig(task="memenvs/TMaze-v0", task_kwargs={"corridor_length": 10},
                                cell="nru", cell_kwargs={"memory_size": 32}, timesteps=200_000),
                       out_dir="runs/tmaze-nru")

Field names are :class:`agents.supervised.TrainConfig`'s where the meaning is the same (``task``,
``task_kwargs``, ``cell``, ``lr``, ``aux_weight``, ``budget_weight``, ...); the PPO settings
are :class:`~agents.rl.ppo.RecurrentPPO`'s. This module imports nothing heavy (``memory-bench rl
--help`` builds its flags from this class without importing torch).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agents.config import RunConfig

#: Fields that ``train_rl(..., resume=True)`` may change (everything else must match the saved config).
RESUMABLE_CHANGES = ("timesteps", "eval_episodes", "device")

#: Keys of the config.json files (and sweep plans) written before :class:`RLConfig`, and their
#: fields now (``shared_cell`` became ``separate_cells``, its negation).
LEGACY_KEYS = {
    "env": "task",
    "env_kwargs": "task_kwargs",
    "env_kw": "task_kwargs",
    "cell_kw": "cell_kwargs",
    "aux_kw": "aux_kwargs",
    "learning_rate": "lr",
    "aux_coef": "aux_weight",
    "budget_coef": "budget_weight",
}


@dataclass
class RLConfig(RunConfig):
    """Everything that defines an RL run (recurrent PPO on an env); saved as the run's ``config.json``.

    Defaults are the ``memory-bench rl`` defaults: PPO settings of CleanRL's PPO-LSTM where SB3's
    differ (docs/rl.md#recurrentppo).

    Attributes:
        task: a registered Gymnasium env id (``"memenvs/TMaze-v0"``; memenvs short names such as
            ``"TMaze-v0"`` work too).
        task_kwargs: the env's options (``{"corridor_length": 10}``).
        n_envs: parallel envs collecting each rollout.
        cell: the recurrent cell (a name from ``agents.list_cells()``).
        cell_kwargs: the cell's options.
        hidden_size: the cell's hidden size.
        separate_cells: give the critic its own cell (default: actor and critic share one).
        net_arch: layer sizes of the heads after the cell (``[64, 64]``; on the command line
            ``64,64``); ``[]`` (``none`` on the command line) for linear heads; None: SB3's
            default, 64, 64.
        timesteps: env steps to train in all (with resume: the new total).
        n_steps: steps per env and rollout.
        batch_size: steps per minibatch, a multiple of the training sequence length; None: a
            quarter of the rollout.
        seq_len: steps per training sequence, divides ``n_steps``; None: the whole rollout.
        n_epochs: passes over each rollout.
        lr: Adam learning rate.
        gamma: discount factor.
        gae_lambda: GAE's lambda.
        clip_range: PPO's policy clipping range.
        clip_range_vf: value clipping range; None: no value clipping.
        ent_coef: entropy bonus weight.
        vf_coef: value loss weight.
        max_grad_norm: gradient-norm clipping threshold.
        target_kl: stop an update's epochs early past this KL divergence; None: never.
        aux_weight: weight of the auxiliary reconstruction loss on the actor's cell (0: off).
        aux_kwargs: options of ``agents.losses.AuxiliaryLoss`` (e.g. ``segment_length``); needs
            ``aux_weight > 0``.
        budget_weight: g-LSTM budget loss weight, mean gate openness of time-gated cells (0: off).
        seed: seeds torch, numpy and the envs (the evaluation envs get ``seed + 10000``).
        eval_episodes: episodes of the final evaluation (deterministic actions).
        device: torch device (``"auto"``: CUDA when available).
    """

    task: str = "memenvs/TMaze-v0"
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    n_envs: int = 8
    cell: str = "gru"
    cell_kwargs: dict[str, Any] = field(default_factory=dict)
    hidden_size: int = 64
    separate_cells: bool = False
    net_arch: list[int] | None = None
    timesteps: int = 200_000
    n_steps: int = 128
    batch_size: int | None = None
    seq_len: int | None = None
    n_epochs: int = 4
    lr: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    clip_range_vf: float | None = None
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None
    aux_weight: float = 0.0
    aux_kwargs: dict[str, Any] = field(default_factory=dict)
    budget_weight: float = 0.0
    seed: int = 0
    eval_episodes: int = 100
    device: str = "auto"

    def __post_init__(self) -> None:
        from memenvs.core import check_float, check_int

        def positive(name: str) -> float:
            value = check_float(name, getattr(self, name), low=0.0)
            if value == 0:
                raise ValueError(f"{name}={value!r} is out of range: allowed > 0")
            return value

        self.check_names_and_kwargs()
        self.n_envs = check_int("n_envs", self.n_envs, low=1)
        self.hidden_size = check_int("hidden_size", self.hidden_size, low=1)
        if not isinstance(self.separate_cells, bool):
            raise ValueError(f"separate_cells={self.separate_cells!r} must be True or False")
        if self.net_arch is not None:
            if not isinstance(self.net_arch, (list, tuple)):
                raise ValueError(f"net_arch={self.net_arch!r} must be None or a list of layer sizes >= 1")
            self.net_arch = [check_int("net_arch layer size", size, low=1) for size in self.net_arch]
        self.timesteps = check_int("timesteps", self.timesteps, low=1)
        self.n_steps = check_int("n_steps", self.n_steps, low=1)
        seq_len = self.n_steps
        if self.seq_len is not None:
            seq_len = self.seq_len = check_int("seq_len", self.seq_len, low=1, high=self.n_steps)
            if self.n_steps % seq_len:
                raise ValueError(f"seq_len={seq_len} must divide n_steps={self.n_steps}")
        if self.batch_size is not None:
            rollout = self.n_steps * self.n_envs
            self.batch_size = check_int("batch_size", self.batch_size, low=seq_len, high=rollout,
                                        why=f"from seq_len={seq_len} to the rollout, n_steps * n_envs = {rollout}")
            if self.batch_size % seq_len:
                raise ValueError(f"batch_size={self.batch_size} must be a multiple of seq_len={seq_len}")
        self.n_epochs = check_int("n_epochs", self.n_epochs, low=1)
        self.lr = positive("lr")
        self.gamma = check_float("gamma", self.gamma, low=0.0, high=1.0)
        self.gae_lambda = check_float("gae_lambda", self.gae_lambda, low=0.0, high=1.0)
        self.clip_range = positive("clip_range")
        if self.clip_range_vf is not None:
            self.clip_range_vf = positive("clip_range_vf")
        self.ent_coef = check_float("ent_coef", self.ent_coef, low=0.0)
        self.vf_coef = check_float("vf_coef", self.vf_coef, low=0.0)
        self.max_grad_norm = positive("max_grad_norm")
        if self.target_kl is not None:
            self.target_kl = positive("target_kl")
        self.aux_weight = check_float("aux_weight", self.aux_weight, low=0.0)
        if self.aux_kwargs and self.aux_weight == 0:
            raise ValueError("aux_kwargs need an auxiliary loss: set aux_weight > 0")
        self.budget_weight = check_float("budget_weight", self.budget_weight, low=0.0)
        self.seed = check_int("seed", self.seed, low=0)
        self.eval_episodes = check_int("eval_episodes", self.eval_episodes, low=1)
        self.check_json()


def parse_net_arch(text: str, flag: str = "--net-arch") -> list[int]:
    """``"64,64"`` -> ``[64, 64]``; ``""`` or ``"none"`` -> ``[]`` (linear heads). ValueError naming
    ``flag`` when malformed."""
    if text.strip().lower() in ("", "none"):
        return []
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"{flag} {text!r} is malformed: expected comma-separated layer sizes, e.g. 64,64") from None
    if any(size < 1 for size in sizes):
        raise ValueError(f"{flag} {text!r}: layer sizes must be >= 1")
    return sizes


def upgrade_config(data: Mapping[str, Any]) -> dict[str, Any]:
    """An RL config dict in today's field names: the keys of runs and sweep plans written before
    :class:`RLConfig` (:data:`LEGACY_KEYS`, ``shared_cell``, ``net_arch`` as ``"64,64"``) are
    renamed; a current dict comes back unchanged. Pass the result to :meth:`RLConfig.from_dict`."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "shared_cell":
            out["separate_cells"] = not value
        elif key == "net_arch" and isinstance(value, str):
            out["net_arch"] = parse_net_arch(value)
        else:
            out[LEGACY_KEYS.get(key, key)] = value
    return out

"""The files of a ``memory-bench rl`` run, and loading a trained model from them without pickles.

Run directory::

    config.json     the run's :class:`~agents.rl.config.RLConfig` (plain JSON): enough to rebuild the model
    policy.pt       the trained policy's ``state_dict`` (tensors only)
    latest.pt       resume checkpoint: policy and optimizer ``state_dict`` s, auxiliary loss
                    weights, timesteps and updates done, wall time (tensors, numbers, strings)
    progress.csv    SB3's CSV log;  tensorboard/  the same numbers as TensorBoard events
    summary.json    final evaluation, normalised score, timesteps, FPS, wall time
    model.zip       SB3's archive, for ``RecurrentPPO.load`` (see the warning below)

**Which files are safe to load.** ``policy.pt`` and ``latest.pt`` are read with
``torch.load(weights_only=True)``, which refuses any pickle that would import or call code, and
the JSON / CSV files are plain data. :func:`load_policy` (also ``RecurrentPPO.load_safe``) rebuilds
the model from ``config.json`` and loads ``policy.pt`` this way. ``model.zip`` is not safe: SB3's
``RecurrentPPO.load`` unpickles the objects stored in it with cloudpickle, which can run any code
the file contains; load it only from runs you trust. Rebuilding the model makes the env that
``config.json`` names, which must be an id registered already (no module is imported by a name
from the file), with its JSON keyword arguments; pass ``env=`` to use your own instead.
"""

from __future__ import annotations

import csv
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from agents.rl.config import RLConfig, upgrade_config

if TYPE_CHECKING:
    from stable_baselines3.common.vec_env import VecEnv

    from agents.rl.ppo import RecurrentPPO

CONFIG_FILE = "config.json"
POLICY_FILE = "policy.pt"
LATEST = "latest.pt"
MODEL_ZIP = "model.zip"
PROGRESS_FILE = "progress.csv"
SUMMARY_FILE = "summary.json"
CHECKPOINT_FORMAT = "memory-bench-rl-checkpoint-v1"

#: :class:`~agents.rl.config.RLConfig` fields that are arguments of
#: :class:`~agents.rl.ppo.RecurrentPPO`, and their names there.
_PPO_ARGS = {
    "n_steps": "n_steps",
    "batch_size": "batch_size",
    "seq_len": "seq_len",
    "n_epochs": "n_epochs",
    "lr": "learning_rate",
    "gamma": "gamma",
    "gae_lambda": "gae_lambda",
    "clip_range": "clip_range",
    "clip_range_vf": "clip_range_vf",
    "ent_coef": "ent_coef",
    "vf_coef": "vf_coef",
    "max_grad_norm": "max_grad_norm",
    "target_kl": "target_kl",
    "aux_weight": "aux_coef",
    "aux_kwargs": "aux_kwargs",
    "budget_weight": "budget_coef",
}


# --------------------------------------------------------------------------------------------
# Building the model from config.json
# --------------------------------------------------------------------------------------------


def _as_config(config: RLConfig | Mapping[str, Any]) -> RLConfig:
    return config if isinstance(config, RLConfig) else RLConfig.from_dict(upgrade_config(config))


def policy_kwargs(config: RLConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The ``policy_kwargs`` of a run's config (cell, its options, sizes, heads)."""
    config = _as_config(config)
    kwargs: dict[str, Any] = {
        "cell": config.cell,
        "cell_kwargs": dict(config.cell_kwargs),
        "hidden_size": config.hidden_size,
        "shared_cell": not config.separate_cells,
    }
    if config.net_arch is not None:
        kwargs["net_arch"] = list(config.net_arch)
    return kwargs


def make_env(config: RLConfig | Mapping[str, Any], seed: int | None, n_envs: int | None = None) -> VecEnv:
    """The run's env (``config.task`` with its ``task_kwargs``) as an SB3 VecEnv."""
    from agents.rl.vec_env import make_vec_env

    config = _as_config(config)
    return make_vec_env(config.task, n_envs=n_envs or config.n_envs, seed=seed, **config.task_kwargs)


def build_model(
    config: RLConfig | Mapping[str, Any], env: VecEnv, seed: int | None = None, device: str | None = None
) -> RecurrentPPO:
    """A fresh :class:`~agents.rl.ppo.RecurrentPPO` with the settings of a run's config.

    Args:
        config: the run's :class:`~agents.rl.config.RLConfig` (or its dict, as in ``config.json``).
        env: the env to train or act on (its spaces must be the run's).
        seed: seeds torch, numpy and the env; default ``config.seed``.
        device: default ``config.device``.
    """
    from gymnasium import spaces

    from agents.rl.ppo import RecurrentPPO

    config = _as_config(config)
    kwargs = {arg: getattr(config, name) for name, arg in _PPO_ARGS.items()}
    return RecurrentPPO(
        "MultiInputCellPolicy" if isinstance(env.observation_space, spaces.Dict) else "CellPolicy",
        env,
        policy_kwargs=policy_kwargs(config),
        seed=config.seed if seed is None else seed,
        device=device or config.device,
        **kwargs,
    )


# --------------------------------------------------------------------------------------------
# Weights-only files
# --------------------------------------------------------------------------------------------


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _first_line(err: BaseException) -> str:
    """The line of a ``torch.load`` error that says what it refused (its message is long)."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    for line in lines:
        if line.startswith("WeightsUnpickler error:"):
            return line.split(" Please use", 1)[0]  # not torch's advice on how to allow it anyway
    return lines[0] if lines else type(err).__name__


def read_weights(path: str | os.PathLike) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``: tensors, numbers, strings,
    lists and dicts only; a pickle that would import or call anything is refused unrun.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: one line naming the file, when torch refuses it or it is not a torch file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {path.name} at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, TypeError, ValueError) as err:
        raise ValueError(f"refusing {path}: not a weights-only file ({_first_line(err)})") from None


def save_policy(model: RecurrentPPO, path: str | os.PathLike) -> None:
    """Write ``model.policy.state_dict()`` to ``path`` (atomically)."""
    _atomic_save(model.policy.state_dict(), Path(path))


def save_latest(model: RecurrentPPO, path: str | os.PathLike, wall_time_s: float) -> None:
    """Write the resume checkpoint (policy, optimizer, auxiliary loss, counters) atomically."""
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "num_timesteps": int(model.num_timesteps),
        "n_updates": int(model._n_updates),  # noqa: SLF001 - SB3 keeps the update count there
        "wall_time_s": float(wall_time_s),
        "policy": model.policy.state_dict(),
        "optimizer": model.policy.optimizer.state_dict(),
        "aux_loss": None if model.aux_loss is None else model.aux_loss.state_dict(),
    }
    _atomic_save(checkpoint, Path(path))


def read_latest(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint written by :func:`save_latest` (loaded weights-only; ValueError otherwise)."""
    checkpoint = read_weights(path)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"refusing {path}: not a {CHECKPOINT_FORMAT} file")
    return checkpoint


def _load_state(module: torch.nn.Module, state: Any, path: Path) -> None:
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ValueError(f"refusing {path}: not a state_dict (a dict of named tensors)")
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path} does not fit the model of {CONFIG_FILE} ({_first_line(err)})") from None


def restore_latest(model: RecurrentPPO, checkpoint: dict[str, Any], path: str | os.PathLike = LATEST) -> None:
    """Put a :func:`read_latest` checkpoint into ``model`` (built with the run's config)."""
    path = Path(path)
    _load_state(model.policy, checkpoint["policy"], path)
    if (checkpoint.get("aux_loss") is None) != (model.aux_loss is None):
        raise ValueError(f"{path} does not fit the model of {CONFIG_FILE} (auxiliary loss present in one only)")
    if model.aux_loss is not None:
        _load_state(model.aux_loss, checkpoint["aux_loss"], path)
    try:
        model.policy.optimizer.load_state_dict(checkpoint["optimizer"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: optimizer state does not fit the model ({_first_line(err)})") from None
    model.num_timesteps = int(checkpoint["num_timesteps"])
    model._n_updates = int(checkpoint["n_updates"])  # noqa: SLF001


def read_config(run_dir: str | os.PathLike) -> RLConfig:
    """A run's ``config.json`` as an :class:`~agents.rl.config.RLConfig` (the files of runs made
    before it, with ``env``, ``env_kwargs``, ``learning_rate``, ``aux_coef``, ... are read too).

    Raises:
        FileNotFoundError: the directory has no config.json.
        ValueError: config.json is not a valid RL config (one line naming the file).
    """
    import json

    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {CONFIG_FILE} in {Path(run_dir)}: not a memory-bench rl run directory")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"unreadable {path} ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a JSON object")
    try:
        return RLConfig.from_dict(upgrade_config(data))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path} is not a memory-bench rl config: {err}") from None


def load_policy(
    run_dir: str | os.PathLike,
    env: VecEnv | None = None,
    device: str | None = None,
    weights: str = POLICY_FILE,
) -> RecurrentPPO:
    """The trained model of a ``memory-bench rl`` run, without unpickling anything.

    Rebuilds :class:`~agents.rl.ppo.RecurrentPPO` from ``config.json`` and loads the policy
    weights with ``torch.load(weights_only=True)``; the safe counterpart of
    ``RecurrentPPO.load("model.zip")`` for prediction and evaluation::

        model = agents.rl.load_policy("runs/tmaze-nru")
        action, state = model.predict(obs, state=None, episode_start=starts, deterministic=True)

    Args:
        run_dir: the run directory.
        env: the env to act on (default: the run's env from ``config.json``, with its
            ``n_envs`` and seed).
        device: torch device (default: the run's, ``"auto"`` if it has none).
        weights: ``"policy.pt"`` (default: the final policy) or ``"latest.pt"`` (the last
            checkpoint of a run that is still going or was stopped).

    Raises:
        FileNotFoundError: no ``config.json`` or no weights file.
        ValueError: one line, when the weights file is refused (a pickle that would run code,
            not a torch file) or does not fit the model the config describes.
    """
    run_dir = Path(run_dir)
    if weights not in (POLICY_FILE, LATEST):
        raise ValueError(f"weights={weights!r} must be {POLICY_FILE!r} or {LATEST!r}")
    config = read_config(run_dir)
    path = run_dir / weights
    state = read_latest(path)["policy"] if weights == LATEST else read_weights(path)
    if env is None:
        env = make_env(config, seed=config.seed)
    model = build_model(config, env, device=device)
    _load_state(model.policy, state, path)
    return model


# --------------------------------------------------------------------------------------------
# progress.csv across a resume
# --------------------------------------------------------------------------------------------


def truncate_progress(path: str | os.PathLike, num_timesteps: int) -> None:
    """Drop the rows of ``progress.csv`` logged after ``num_timesteps`` (by a run that went on
    past its last checkpoint), so a resumed run does not log those steps twice."""
    path = Path(path)
    if not path.is_file():
        return
    with open(path, newline="") as f:
        reader = csv.reader(f)
        rows = list(reader)
    if not rows or "time/total_timesteps" not in rows[0]:
        return
    column = rows[0].index("time/total_timesteps")
    kept = [rows[0]] + [r for r in rows[1:] if column < len(r) and r[column] and float(r[column]) <= num_timesteps]
    if len(kept) == len(rows):
        return
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(kept)
    os.replace(tmp, path)

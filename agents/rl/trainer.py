"""Train recurrent PPO as an :class:`~agents.rl.config.RLConfig` says, into a run directory.

::

    from agents.rl import RLConfig, train_rl
    summary = train_rl(RLConfig(task="memenvs/TMaze-v0", task_kwargs={"corridor_length": 10},
                                cell="nru", timesteps=200_000), out_dir="runs/tmaze-nru")
    summary["score"]      # the final mean return, normalised: memoryless policy 0, optimum 1

Run directory::

    config.json     the RLConfig (``agents.rl.runs.read_config`` reads it back)
    progress.csv    SB3's CSV log, one row per rollout (rollout/ep_rew_mean, train/*, time/fps)
    tensorboard/    SB3's TensorBoard events of the same numbers
    policy.pt       the policy's state_dict: ``agents.rl.load_policy(run_dir)`` rebuilds the model
                    from config.json and loads it with ``torch.load(weights_only=True)``
    latest.pt       resume checkpoint (policy, optimizer, counters; weights only), written after
                    an update at most every CHECKPOINT_SECONDS and at the end
    summary.json    final evaluation, normalised score, timesteps, FPS, wall time, parameters
    model.zip       SB3 archive for ``RecurrentPPO.load``, which unpickles code: trusted runs only

Everything is built (envs, model, the env's reference returns) before the directory is created,
so a bad setting raises ValueError and leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any

from agents.cli import default_run_dir
from agents.rl import runs
from agents.rl.config import RESUMABLE_CHANGES, RLConfig
from agents.results.runs import RunDir, write_json

#: Seconds between two writes of latest.pt during training (it is also written at the end).
CHECKPOINT_SECONDS = 60.0


def env_reference(task: str, task_kwargs: dict[str, Any]) -> Any | None:
    """The env's reference returns (:func:`memenvs.reference_scores`: a
    :class:`memenvs.core.ReferenceScores` with ``memoryless`` and ``optimal``), or None when the
    env declares none or one that cannot normalise (memoryless == optimal)."""
    import memenvs

    reference = memenvs.reference_scores(task, **task_kwargs)
    if reference is None or reference.optimal == reference.memoryless:
        return None
    return reference


def _check_device(device: str) -> None:
    from stable_baselines3.common.utils import get_device

    try:
        get_device(device)
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"device={device!r} is not a torch device ({str(err).strip().splitlines()[0]})") from None


def _logger(out: Path, resume: bool):
    """SB3 logger writing progress.csv (appended to when resuming) and TensorBoard events."""
    from stable_baselines3.common.logger import CSVOutputFormat, Logger, TensorBoardOutputFormat

    class AppendingCSV(CSVOutputFormat):
        """SB3's CSV writer continuing an existing file (its header becomes the known keys)."""

        def __init__(self, filename: str) -> None:
            if not Path(filename).is_file():
                super().__init__(filename)
                return
            self.file = open(filename, "r+")  # noqa: SIM115 - closed by Logger.close
            header = self.file.readline().strip()
            self.keys = header.split(",") if header else []
            self.separator, self.quotechar = ",", '"'
            self.file.seek(0, os.SEEK_END)

    csv_format = AppendingCSV if resume else CSVOutputFormat
    return Logger(str(out), [csv_format(str(out / runs.PROGRESS_FILE)), TensorBoardOutputFormat(str(out / "tensorboard"))])


def _resume_point(config: RLConfig, out: Path) -> dict[str, Any]:
    """The checkpoint of the run in ``out``, after checking that ``config`` continues it."""
    saved = runs.read_config(out)
    changed = [f.name for f in dataclasses.fields(RLConfig)
               if f.name not in RESUMABLE_CHANGES and getattr(saved, f.name) != getattr(config, f.name)]
    if changed:
        raise ValueError(f"resume keeps the settings of {out / runs.CONFIG_FILE}: {', '.join(changed)} differ "
                         f"(only {', '.join(RESUMABLE_CHANGES)} may change)")
    checkpoint = runs.read_latest(out / runs.LATEST)
    done = int(checkpoint["num_timesteps"])
    if config.timesteps <= done:
        raise ValueError(f"the run in {out} has done {done} timesteps of timesteps={config.timesteps}: "
                         f"give a larger timesteps (--timesteps) to train longer")
    return checkpoint


def train_rl(
    config: RLConfig, out_dir: str | os.PathLike | None = None, resume: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Train :class:`~agents.rl.ppo.RecurrentPPO` as configured, evaluate it, and return the run
    summary (also written as summary.json).

    Args:
        config: the run's settings.
        out_dir: the run directory; None: ``runs/rl-<task>-<cell>-s<seed>-<time>``. It must be
            new or empty unless ``resume``.
        resume: continue the run in ``out_dir`` from its latest.pt. The saved config must match
            ``config`` except for :data:`~agents.rl.config.RESUMABLE_CHANGES` (a larger
            ``timesteps`` trains longer). Episodes restart (the envs are seeded with the seed plus
            the timesteps done), so a resumed run is not bit-identical to an uninterrupted one.
        progress: show SB3's progress bar.

    Returns:
        ``{"task", "cell", "timesteps", "wall_time_s", "fps", "num_params", "score", "reference",
        "eval": {"mean_return", "std", "success_rate", "mean_length", "n_episodes"}}`` (and
        ``resumed_from_timesteps``). ``score`` is ``eval.mean_return`` normalised with the env's
        reference returns, ``(mean_return - memoryless) / (optimal - memoryless)``; None when the
        env declares no reference (``reference`` is then None too).

    Raises:
        ValueError: a bad setting, a directory that is not new (or, with ``resume``, not a run
            this config continues); nothing is written in these cases.
    """
    from stable_baselines3.common.callbacks import BaseCallback

    from agents.rl.evaluation import evaluate

    if not isinstance(config, RLConfig):
        raise ValueError(f"config must be an RLConfig, got {type(config).__name__}")
    if resume:
        if out_dir is None:
            raise ValueError("resume needs out_dir (the run to continue)")
        out = Path(out_dir)
        checkpoint = _resume_point(config, out)
        done = int(checkpoint["num_timesteps"])
    else:
        out = Path(out_dir) if out_dir is not None else default_run_dir(f"rl-{config.task}-{config.cell}", config.seed)
        RunDir.check_new(out, advice="choose another --out, or --resume to continue it")
        checkpoint, done = None, 0
    _check_device(config.device)

    # Build everything first: a bad setting must fail before the run directory is written.
    env = runs.make_env(config, seed=config.seed + done)
    eval_env = runs.make_env(config, seed=config.seed + 10_000)
    model = runs.build_model(config, env, seed=config.seed + done)
    if checkpoint is not None:
        runs.restore_latest(model, checkpoint, out / runs.LATEST)
    reference = env_reference(config.task, config.task_kwargs)

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / runs.CONFIG_FILE, config.to_dict())
    if checkpoint is not None:
        runs.truncate_progress(out / runs.PROGRESS_FILE, done)
    model.set_logger(_logger(out, resume=checkpoint is not None))
    earlier_wall = 0.0 if checkpoint is None else float(checkpoint["wall_time_s"])
    start = time.perf_counter()

    class Checkpoint(BaseCallback):
        """Write latest.pt after an update (at the start of the next rollout), at most every
        CHECKPOINT_SECONDS."""

        last = start

        def _on_rollout_start(self) -> None:
            now = time.perf_counter()
            if now - self.last >= CHECKPOINT_SECONDS and self.model.num_timesteps > done:
                runs.save_latest(self.model, out / runs.LATEST, earlier_wall + now - start)
                self.last = now

        def _on_step(self) -> bool:
            return True

    try:
        model.learn(config.timesteps - done, callback=Checkpoint(), progress_bar=progress,
                    reset_num_timesteps=checkpoint is None)
        wall = time.perf_counter() - start
        runs.save_latest(model, out / runs.LATEST, earlier_wall + wall)
        runs.save_policy(model, out / runs.POLICY_FILE)
        model.save(out / runs.MODEL_ZIP)
        model.logger.close()
        result = evaluate(model, eval_env, n_episodes=config.eval_episodes, deterministic=True)
    finally:
        env.close()
        eval_env.close()
    mean_return = result["mean_return"]
    score = None if reference is None or not math.isfinite(mean_return) else float(reference.normalise(mean_return))
    summary: dict[str, Any] = {
        "task": config.task,
        "cell": config.cell,
        "timesteps": model.num_timesteps,
        "wall_time_s": earlier_wall + wall,
        "fps": (model.num_timesteps - done) / wall,
        "num_params": sum(p.numel() for p in model.policy.parameters()),
        "score": score,
        "reference": None if reference is None else {
            "random": float(reference.random), "memoryless": float(reference.memoryless), "optimal": float(reference.optimal)},
        "eval": {k: v for k, v in result.items() if k != "returns"},
    }
    if checkpoint is not None:
        summary["resumed_from_timesteps"] = done
    write_json(out / runs.SUMMARY_FILE, summary)
    return summary

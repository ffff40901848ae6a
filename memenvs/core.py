"""One task definition, two views: arrays for supervised training, Gymnasium envs for RL.

A :class:`SequenceTask` generates whole episodes at once, vectorised in numpy::

    batch = task.sample(batch_size, rng)   # SequenceBatch(inputs[T,B,...], targets[T,B,...], mask[T,B])

:class:`TaskEnv` is the Gymnasium view of one episode (obs_t = inputs[t], the action at step t is
the prediction for step t, reward only on scored steps, return in [-1, 1] with 1.0 for a perfect
episode). :class:`TaskVectorEnv` steps N such episodes in numpy and is registered as each id's
``vector_entry_point``, so ``gym.make_vec(id, num_envs=N)`` is one batched env rather than N Python
envs. Both views draw episodes from ``sample()``, so the supervised and RL harnesses see the same
data.

Seeding rule: env ``i`` of a vector env reset with ``seed=s`` draws exactly the episodes that a
single :class:`TaskEnv` reset with ``seed=s + i`` draws (the same rule as Gymnasium's
``SyncVectorEnv``).

This module depends on numpy and gymnasium only (never torch).
"""

from __future__ import annotations

import importlib
import numbers
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv

NAMESPACE = "memenvs"

InputKind = Literal["symbols", "real"]
TargetKind = Literal["class", "real"]


# --------------------------------------------------------------------------------------------
# Argument validation: every bad kwarg names the parameter, the value and what is allowed.
# --------------------------------------------------------------------------------------------


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an int, or raise ValueError naming ``name`` and the allowed range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}={value!r} must be an integer{_range_text(low, high)}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name}={value!r} is out of range: allowed{_range_text(low, high)}")
    return int(value)


def check_float(name: str, value: Any, low: float | None = None, high: float | None = None) -> float:
    """Return ``value`` as a float, or raise ValueError naming ``name`` and the allowed range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name}={value!r} must be a finite number{_range_text(low, high)}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name}={value!r} is out of range: allowed{_range_text(low, high)}")
    return float(value)


def check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise ValueError listing them."""
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not allowed: choose one of {', '.join(map(repr, choices))}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool, else raise ValueError."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}={value!r} must be True or False")
    return bool(value)


def _range_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f" in [{low}, {high}]"
    if low is not None:
        return f" >= {low}"
    if high is not None:
        return f" <= {high}"
    return ""


# --------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceScores:
    """Expected episode return of three reference policies, in the env's return units [-1, 1].

    ``random``: uniform random actions; ``memoryless``: the best policy that sees only the current
    observation (and may know the step index); ``optimal``: a policy with perfect memory.
    Results are normalised as ``(score - memoryless) / (optimal - memoryless)``.
    """

    random: float
    memoryless: float
    optimal: float = 1.0

    def normalise(self, score: float) -> float:
        """Map ``score`` so that the memoryless reference is 0 and the optimum is 1."""
        return (score - self.memoryless) / (self.optimal - self.memoryless)


@dataclass
class SequenceBatch:
    """A batch of whole episodes, time-major.

    Attributes:
        inputs: ``[T, B]`` int64 symbols (``input_kind="symbols"``) or ``[T, B, F]`` float32.
        targets: ``[T, B]`` int64 classes (``target_kind="class"``) or ``[T, B, D]`` float32.
            Values at unscored steps are arbitrary (but valid) and must not be trained on.
        mask: ``[T, B]`` bool, True where the step is scored.
        lengths: ``[B]`` int64 episode lengths; steps ``t >= lengths[b]`` are padding (never
            scored). Equal to ``T`` for fixed-length tasks.
    """

    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray
    lengths: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.lengths is None:
            T, B = self.mask.shape
            self.lengths = np.full(B, T, dtype=np.int64)

    @property
    def seq_len(self) -> int:
        return int(self.mask.shape[0])

    @property
    def batch_size(self) -> int:
        return int(self.mask.shape[1])


class SequenceTask:
    """Base class of every sequence-to-sequence memory task.

    Subclasses set the class attributes, validate their kwargs in ``__init__`` (via the
    ``check_*`` helpers, storing them with :meth:`_store_kwargs`) and implement
    :meth:`sample` and :meth:`reference_scores`. Real-valued targets also override
    :meth:`step_reward`.

    Class attributes:
        input_kind: ``"symbols"`` (inputs are int ids in ``[0, num_inputs)``) or ``"real"``
            (inputs are ``num_inputs`` floats).
        target_kind: ``"class"`` (targets are ids in ``[0, num_outputs)``, CE loss) or
            ``"real"`` (``num_outputs`` floats, MSE loss).
        length_knob: the kwarg that sets the memory length (``delay``, ``max_delay``, ...), used by
            curricula and memory-scaling sweeps; None if the task has none.
    """

    input_kind: ClassVar[InputKind] = "symbols"
    target_kind: ClassVar[TargetKind] = "class"
    length_knob: ClassVar[str | None] = None

    #: Number of input symbols (symbols) or input features (real).
    num_inputs: int
    #: Number of output classes (class) or output dimensions (real).
    num_outputs: int
    #: Maximum episode length T; ``sample()`` returns arrays with this many steps.
    max_length: int
    #: The validated constructor kwargs; ``type(task)(**task.kwargs)`` rebuilds the task.
    kwargs: dict[str, Any]

    # Real-valued inputs / outputs: bounds for the Gymnasium spaces.
    input_low: float = -np.inf
    input_high: float = np.inf
    output_low: float = -np.inf
    output_high: float = np.inf

    def _store_kwargs(self, **kwargs: Any) -> None:
        self.kwargs = dict(kwargs)

    def with_kwargs(self, **changes: Any) -> SequenceTask:
        """A new task of the same kind with some kwargs changed (e.g. a longer delay)."""
        return type(self)(**{**self.kwargs, **changes})

    # -- to implement -----------------------------------------------------------------------

    def sample(self, batch_size: int, rng: np.random.Generator) -> SequenceBatch:
        """Draw ``batch_size`` independent episodes using only ``rng``."""
        raise NotImplementedError

    def reference_scores(self) -> ReferenceScores:
        """Expected return of the random, best memoryless and optimal policies."""
        raise NotImplementedError

    def memoryless_prediction(self, inputs_t: np.ndarray, t: int) -> np.ndarray:
        """The best prediction from the current input and step index alone, batched over ``B``.

        Used by tests (its measured return must match ``reference_scores().memoryless``) and by
        the ``memory-bench envs`` table.
        """
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------------

    def step_reward(self, prediction: np.ndarray, target: np.ndarray, scored_count: np.ndarray) -> np.ndarray:
        """Reward for the predictions at one scored step, batched over ``B``.

        The default (class targets): ``1/scored_count`` for a correct class, else 0, so a perfect
        episode returns exactly 1 and the return is the fraction of scored steps right.
        """
        return (prediction == target).astype(np.float64) / scored_count

    def rewards(self, predictions: np.ndarray, batch: SequenceBatch) -> np.ndarray:
        """Per-step rewards ``[T, B]`` for a whole batch of predictions (0 on unscored steps)."""
        counts = np.maximum(batch.mask.sum(axis=0), 1)
        out = np.zeros(batch.mask.shape, dtype=np.float64)
        for t in range(batch.seq_len):
            scored = batch.mask[t]
            if scored.any():
                r = self.step_reward(predictions[t], batch.targets[t], counts)
                out[t] = np.where(scored, r, 0.0)
        return out

    def returns(self, predictions: np.ndarray, batch: SequenceBatch) -> np.ndarray:
        """Episode returns ``[B]`` of a batch of predictions."""
        return self.rewards(predictions, batch).sum(axis=0)

    def oracle_predictions(self, batch: SequenceBatch) -> np.ndarray:
        """Predictions of a policy with perfect memory: the targets themselves."""
        return batch.targets

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{type(self).__name__}({args})"


# --------------------------------------------------------------------------------------------
# Gymnasium views
# --------------------------------------------------------------------------------------------

ObsMode = Literal["onehot", "index"]


def _resolve_task(task: SequenceTask | str | type, task_kwargs: dict[str, Any]) -> SequenceTask:
    if isinstance(task, SequenceTask):
        if task_kwargs:
            raise ValueError(f"task kwargs {sorted(task_kwargs)} given together with a task instance")
        return task
    if isinstance(task, str):
        module, _, name = task.partition(":")
        task = getattr(importlib.import_module(module), name)
    return task(**task_kwargs)


def _observation_space(task: SequenceTask, obs_mode: ObsMode) -> spaces.Space:
    if task.input_kind == "real":
        return spaces.Box(task.input_low, task.input_high, shape=(task.num_inputs,), dtype=np.float32)
    if obs_mode == "index":
        return spaces.Discrete(task.num_inputs)
    return spaces.Box(0.0, 1.0, shape=(task.num_inputs,), dtype=np.float32)


def _action_space(task: SequenceTask) -> spaces.Space:
    if task.target_kind == "real":
        return spaces.Box(task.output_low, task.output_high, shape=(task.num_outputs,), dtype=np.float32)
    return spaces.Discrete(task.num_outputs)


class TaskEnv(gym.Env):
    """Gymnasium view of a :class:`SequenceTask`: one episode is one sequence.

    The observation at step ``t`` is ``inputs[t]`` (one-hot float vector or symbol index for
    symbol tasks, the feature vector for real-valued tasks); the action is the prediction for step
    ``t``. Rewards are given on scored steps only and sum to the episode return in [-1, 1]
    (1.0 = perfect). The episode terminates after its last step; the observation returned with
    termination is all zeros.

    Args:
        task: a task instance, a task class, or ``"module:Class"``.
        obs_mode: ``"onehot"`` (default, Box) or ``"index"`` (Discrete) for symbol inputs;
            ignored for real-valued inputs.
        render_mode: only ``None`` is supported.
        **task_kwargs: forwarded to the task class.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self,
        task: SequenceTask | str | type,
        obs_mode: ObsMode = "onehot",
        render_mode: str | None = None,
        **task_kwargs: Any,
    ) -> None:
        self.task = _resolve_task(task, task_kwargs)
        self.obs_mode = check_choice("obs_mode", obs_mode, ("onehot", "index"))
        if render_mode is not None:
            raise ValueError(f"render_mode={render_mode!r} is not supported: memenvs tasks have no rendering")
        self.render_mode = None
        self.observation_space = _observation_space(self.task, self.obs_mode)
        self.action_space = _action_space(self.task)
        self.reference = self.task.reference_scores()
        self._batch: SequenceBatch | None = None
        self._t = 0

    def _obs(self) -> Any:
        return _encode_obs(self.task, self.obs_mode, self._batch.inputs[self._t, :1])[0]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._batch = self.task.sample(1, self.np_random)
        self._length = int(self._batch.lengths[0])
        self._scored = max(int(self._batch.mask[:, 0].sum()), 1)
        self._t = 0
        return self._obs(), {}

    def step(self, action: Any):
        if self._batch is None:
            raise RuntimeError("call reset() before step()")
        if self._t >= self._length:
            raise RuntimeError("episode has ended: call reset() before step()")
        _check_action(self.action_space, action)
        t = self._t
        reward = 0.0
        if self._batch.mask[t, 0]:
            pred = np.asarray(action).reshape(self._batch.targets[t, :1].shape)
            reward = float(self.task.step_reward(pred, self._batch.targets[t, :1], np.array([self._scored]))[0])
        self._t += 1
        terminated = self._t >= self._length
        obs = _zero_obs(self.observation_space) if terminated else self._obs()
        return obs, reward, terminated, False, {}

    # Reference policies (tests, `memory-bench envs`).
    def oracle_action(self) -> Any:
        """The action a policy with perfect memory takes at the current step."""
        return _to_action(self.action_space, self.task.oracle_predictions(self._batch)[self._t, :1])[0]

    def memoryless_action(self) -> Any:
        """The best action given only the current input and step index."""
        pred = self.task.memoryless_prediction(self._batch.inputs[self._t, :1], self._t)
        return _to_action(self.action_space, pred)[0]


class TaskVectorEnv(VectorEnv):
    """Numpy-batched Gymnasium VectorEnv of ``num_envs`` independent episodes of a task.

    Autoreset mode is NEXT_STEP (Gymnasium's default): the step after an env terminates returns
    the first observation of its next episode with reward 0 and the action ignored. Env ``i``
    reset with ``seed=s`` replays the episodes of ``TaskEnv`` reset with ``seed=s+i``.

    Args:
        num_envs: number of parallel episodes.
        task, obs_mode, render_mode, **task_kwargs: as :class:`TaskEnv`.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        task: SequenceTask | str | type = "",
        obs_mode: ObsMode = "onehot",
        render_mode: str | None = None,
        **task_kwargs: Any,
    ) -> None:
        self.num_envs = check_int("num_envs", num_envs, low=1)
        self.task = _resolve_task(task, task_kwargs)
        self.obs_mode = check_choice("obs_mode", obs_mode, ("onehot", "index"))
        if render_mode is not None:
            raise ValueError(f"render_mode={render_mode!r} is not supported: memenvs tasks have no rendering")
        self.render_mode = None
        self.single_observation_space = _observation_space(self.task, self.obs_mode)
        self.single_action_space = _action_space(self.task)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.reference = self.task.reference_scores()
        self._rngs = [seeding.np_random(None)[0] for _ in range(self.num_envs)]
        T, N = self.task.max_length, self.num_envs
        probe = self.task.sample(1, np.random.default_rng(0))
        self._inputs = np.zeros((T, N) + probe.inputs.shape[2:], dtype=probe.inputs.dtype)
        self._targets = np.zeros((T, N) + probe.targets.shape[2:], dtype=probe.targets.dtype)
        self._mask = np.zeros((T, N), dtype=bool)
        self._lengths = np.zeros(N, dtype=np.int64)
        self._scored = np.ones(N, dtype=np.int64)
        self._t = np.zeros(N, dtype=np.int64)
        self._needs_reset = np.zeros(N, dtype=bool)
        self._cols = np.arange(N)
        self._started = False

    def _new_episodes(self, envs: np.ndarray) -> None:
        for i in envs:
            b = self.task.sample(1, self._rngs[i])
            self._inputs[:, i] = b.inputs[:, 0]
            self._targets[:, i] = b.targets[:, 0]
            self._mask[:, i] = b.mask[:, 0]
            self._lengths[i] = b.lengths[0]
            self._scored[i] = max(int(b.mask[:, 0].sum()), 1)
        self._t[envs] = 0

    def _obs(self) -> np.ndarray:
        t = np.minimum(self._t, self.task.max_length - 1)
        return _encode_obs(self.task, self.obs_mode, self._inputs[t, self._cols])

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"seed list has {len(seeds)} entries, expected num_envs={self.num_envs}")
            self._rngs = [seeding.np_random(s)[0] for s in seeds]
        self._new_episodes(self._cols)
        self._needs_reset[:] = False
        self._started = True
        return self._obs(), {}

    def step(self, actions: Any):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions)
        if not self.action_space.contains(actions.astype(self.action_space.dtype, copy=False)) or (
            actions.shape != self.action_space.shape
        ):
            raise ValueError(f"actions of shape {actions.shape} are not in the action space {self.action_space}")
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        restarting = np.flatnonzero(self._needs_reset)
        active = ~self._needs_reset
        t = self._t
        scored = active & self._mask[np.minimum(t, self.task.max_length - 1), self._cols]
        if scored.any():
            idx = np.flatnonzero(scored)
            targets = self._targets[t[idx], idx]
            preds = actions[idx].reshape(targets.shape)
            rewards[idx] = self.task.step_reward(preds, targets, self._scored[idx])
        self._t = np.where(active, t + 1, t)
        terminated = active & (self._t >= self._lengths)
        if restarting.size:
            self._new_episodes(restarting)
        self._needs_reset = terminated
        obs = self._obs()
        if terminated.any():
            obs[terminated] = 0
        truncated = np.zeros(self.num_envs, dtype=bool)
        return obs, rewards, terminated, truncated, {}

    def oracle_actions(self) -> np.ndarray:
        """Actions of a policy with perfect memory for the current step of every env."""
        t = np.minimum(self._t, self.task.max_length - 1)
        return _to_action(self.single_action_space, self._targets[t, self._cols])


# --------------------------------------------------------------------------------------------
# Encoding helpers shared by both views
# --------------------------------------------------------------------------------------------


def _encode_obs(task: SequenceTask, obs_mode: ObsMode, inputs: np.ndarray) -> np.ndarray:
    """Batch of observations ``[B, ...]`` from the task's inputs at one step."""
    if task.input_kind == "real":
        return inputs.astype(np.float32)
    if obs_mode == "index":
        return inputs.astype(np.int64)
    return np.eye(task.num_inputs, dtype=np.float32)[inputs]


def _zero_obs(space: spaces.Space) -> Any:
    if isinstance(space, spaces.Discrete):
        return np.int64(0)
    return np.zeros(space.shape, dtype=space.dtype)


def _to_action(space: spaces.Space, preds: np.ndarray) -> np.ndarray:
    if isinstance(space, spaces.Discrete):
        return np.asarray(preds, dtype=np.int64)
    return np.clip(np.asarray(preds, dtype=np.float32), space.low, space.high)


def _check_action(space: spaces.Space, action: Any) -> None:
    arr = np.asarray(action)
    ok = arr.shape == space.shape and space.contains(arr.astype(space.dtype) if arr.dtype != space.dtype else arr)
    if isinstance(space, spaces.Discrete):
        ok = arr.shape == () and np.issubdtype(arr.dtype, np.integer) and space.contains(int(arr))
    if not ok:
        raise ValueError(f"action {action!r} is not in the action space {space}")


# --------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------

_TASKS: dict[str, str] = {}


def register_task(env_id: str, task: str, max_episode_steps: int | None = None, **preset_kwargs: Any) -> None:
    """Register ``memenvs/<env_id>`` for the task class ``"module:Class"`` with preset kwargs.

    Both the single env (:class:`TaskEnv`) and the native vector env (:class:`TaskVectorEnv`) are
    registered; users override any preset kwarg in ``gym.make`` / ``gym.make_vec``.
    """
    full_id = f"{NAMESPACE}/{env_id}"
    gym.register(
        id=full_id,
        entry_point="memenvs.core:TaskEnv",
        vector_entry_point="memenvs.core:TaskVectorEnv",
        kwargs={"task": task, **preset_kwargs},
        max_episode_steps=max_episode_steps,
        disable_env_checker=False,
    )
    _TASKS[full_id] = task


def make_task(name: str, **kwargs: Any) -> SequenceTask:
    """Build the :class:`SequenceTask` behind an id (``"memenvs/Copy-v0"`` or ``"Copy-v0"``) or a
    short task name (``"copy"``), with the id's preset kwargs overridden by ``kwargs``."""
    env_id = resolve_id(name)
    spec = gym.spec(env_id)
    if env_id not in _TASKS:
        raise ValueError(f"{env_id} is not a sequence task (it has no SequenceTask): use gym.make instead")
    preset = {k: v for k, v in spec.kwargs.items() if k not in ("task", "obs_mode")}
    return _resolve_task(_TASKS[env_id], {**preset, **kwargs})


def resolve_id(name: str) -> str:
    """Map ``"copy"``, ``"Copy-v0"`` or ``"memenvs/Copy-v0"`` to the registered full id."""
    ids = list_ids()
    candidates = [name, f"{NAMESPACE}/{name}"]
    for candidate in candidates:
        if candidate in ids:
            return candidate
    short = {i.split("/", 1)[1].rsplit("-v", 1)[0].lower(): i for i in ids}
    key = name.lower().replace("_", "").replace("-", "")
    for short_name, full in short.items():
        if short_name.replace("-", "") == key:
            return full
    raise ValueError(f"unknown task {name!r}: choose one of {', '.join(sorted(ids))}")


def list_ids(kind: Literal["all", "tasks", "control"] = "all") -> list[str]:
    """Every registered memenvs id (``kind="tasks"``: sequence tasks only; ``"control"``: the rest)."""
    ids = sorted(i for i in gym.registry if i.startswith(f"{NAMESPACE}/"))
    if kind == "tasks":
        return [i for i in ids if i in _TASKS]
    if kind == "control":
        return [i for i in ids if i not in _TASKS]
    return ids

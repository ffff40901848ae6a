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
``SyncVectorEnv``); both draw an episode as ``task.sample(1, rng)`` from a generator seeded like
``np.random.default_rng(seed)``, so ``reset(seed=s)`` plays ``task.sample(1, default_rng(s))``.

This module depends on numpy and gymnasium only (never torch).
"""

from __future__ import annotations

import importlib
import math
import numbers
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv

from memenvs.render import RENDER_FPS, RENDER_MODES, Picture, check_render_mode, sequence_rows, shade_text, symbol_text

NAMESPACE = "memenvs"

#: Longest episode any memenvs env may have, in steps. Length knobs are validated against it at
#: construction, so an absurd size fails at once with a clear message instead of hanging or
#: running out of memory at the first reset.
MAX_EPISODE_LENGTH = 1_000_000
#: Most values (input features + target dimensions, summed over steps) one episode may hold.
MAX_EPISODE_VALUES = 100_000_000
#: Most values the buffers of one vector env may hold (``num_envs`` episodes of the longest length).
MAX_VECTOR_VALUES = 1_000_000_000
#: Most input symbols / output classes a task may have (one-hot observations have this size).
MAX_SYMBOLS = 65_536

InputKind = Literal["symbols", "real"]
TargetKind = Literal["class", "real"]


# --------------------------------------------------------------------------------------------
# Argument validation: every bad kwarg names the parameter, the value and what is allowed.
# --------------------------------------------------------------------------------------------


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None, why: str = "") -> int:
    """Return ``value`` as an int, or raise ValueError naming ``name`` and the allowed range
    (``why``, if given, is appended in brackets: the reason for the bound)."""
    reason = f" ({why})" if why else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}={value!r} must be an integer{_range_text(low, high)}{reason}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name}={value!r} is out of range: allowed{_range_text(low, high)}{reason}")
    return int(value)


def check_length(name: str, value: Any, low: int = 1, *, fixed: int = 0, per_unit: int = 1) -> int:
    """Validate a length knob of an episode that lasts ``fixed + per_unit * value`` steps: ``value``
    must be an int in ``[low, (MAX_EPISODE_LENGTH - fixed) // per_unit]``.

    Every length knob goes through here, so an absurd size (``delay=10**12``) is refused at
    construction with the allowed range instead of hanging or running out of memory later.
    """
    high = (MAX_EPISODE_LENGTH - fixed) // per_unit
    why = f"an episode lasts at most MAX_EPISODE_LENGTH={MAX_EPISODE_LENGTH} steps"
    return check_int(name, value, low=low, high=high, why=why)


def check_symbols(name: str, value: Any, low: int = 1, *, extra: int = 0) -> int:
    """Validate a vocabulary knob (``alphabet``) of a task with ``value + extra`` symbols: at most
    ``MAX_SYMBOLS`` (a one-hot observation has one entry per symbol)."""
    why = f"a task has at most MAX_SYMBOLS={MAX_SYMBOLS} symbols"
    return check_int(name, value, low=low, high=MAX_SYMBOLS - extra, why=why)


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
        """Map ``score`` so that the memoryless reference is 0 and the optimum is 1; NaN when the
        memoryless reference already reaches the optimum (the task then tests no memory, e.g. an
        image set whose last pixel alone names each image)."""
        gap = self.optimal - self.memoryless
        return (score - self.memoryless) / gap if gap > 0 else math.nan


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


def uniform_integers(rng: np.random.Generator, low: int, high: int, size: int | tuple[int, ...]) -> np.ndarray:
    """Uniform int64 draws from ``[low, high)``, as ``rng.integers`` but from ``rng.random``.

    ``Generator.integers`` costs ~10x more per call than ``Generator.random`` for small sizes,
    and the vector env draws one small episode per restarting env, so tasks draw their integers
    here. ``floor(u·n)`` with a 53-bit ``u`` has a bias below ``n/2^53``: negligible.
    """
    return low + (rng.random(size) * (high - low)).astype(np.int64)


def concat_batches(batches: Sequence[SequenceBatch]) -> SequenceBatch:
    """Join batches of the same task (same ``T``) along the batch axis."""
    return SequenceBatch(
        np.concatenate([b.inputs for b in batches], axis=1),
        np.concatenate([b.targets for b in batches], axis=1),
        np.concatenate([b.mask for b in batches], axis=1),
        np.concatenate([b.lengths for b in batches]),
    )


class SequenceTask:
    """Base class of every sequence-to-sequence memory task.

    Subclasses set the class attributes, validate their kwargs in ``__init__`` (via the
    ``check_*`` helpers, storing them with :meth:`_store_kwargs`) and implement
    :meth:`sample`, :meth:`reference_scores` and :meth:`memoryless_prediction`. Real-valued
    targets also override :meth:`step_reward`. For a fast vector env, override
    :meth:`sample_each` (or subclass :class:`DrawLayoutTask`, which splits ``sample`` into a
    per-generator ``_draw`` and a vectorised ``_episodes`` layout) and draw integers with
    :func:`uniform_integers`. Rendering draws one character per step through
    :meth:`render_inputs` and :meth:`render_targets`, which tasks override to name their symbols.

    Class attributes:
        input_kind: ``"symbols"`` (inputs are int ids in ``[0, num_inputs)``) or ``"real"``
            (inputs are ``num_inputs`` floats).
        target_kind: ``"class"`` (targets are ids in ``[0, num_outputs)``, CE loss) or
            ``"real"`` (``num_outputs`` floats, MSE loss).
        length_knob: the kwarg that sets the memory length (``delay``, ``max_delay``, ...), used by
            curricula and memory-scaling sweeps; None if the task has none.
        render_width: steps per line of the rendered episode.
        blank_symbol: the symbol / class id that means "nothing" (drawn as ``"."``), if any.
    """

    input_kind: ClassVar[InputKind] = "symbols"
    target_kind: ClassVar[TargetKind] = "class"
    length_knob: ClassVar[str | None] = None
    #: The dataset a real-data task reads (:class:`memenvs.data.DatasetInfo`); None for synthetic tasks.
    dataset: ClassVar[Any] = None
    render_width: int = 64
    blank_symbol: ClassVar[int | None] = None

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

    def sample_each(self, rngs: Sequence[np.random.Generator]) -> SequenceBatch:
        """One episode per generator: episode ``i`` equals ``sample(1, rngs[i])``.

        The vector env uses this to start the episodes of every env that restarts in a step while
        keeping each env's own random stream. The default loops over ``sample(1, rng)``; tasks
        override it to draw per generator and lay out all episodes in one vectorised pass.
        """
        return concat_batches([self.sample(1, rng) for rng in rngs])

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

    def render_inputs(self, inputs: np.ndarray) -> list[tuple[str, str]]:
        """Rows ``(name, one character per step)`` drawing the inputs ``[n, ...]`` of one episode.

        The default: one row ``"in"``, symbol ids as :data:`memenvs.render.SYMBOLS`
        characters, real inputs as grey shades of their mean feature.
        """
        if self.input_kind == "symbols":
            return [("in", symbol_text(inputs, blank=self.blank_symbol))]
        values = np.asarray(inputs, dtype=np.float64)
        return [("in", shade_text(values.reshape(values.shape[0], -1).mean(axis=1), self.input_low, self.input_high))]

    def render_targets(self, values: np.ndarray) -> str:
        """One character per step for targets or predictions ``[n, ...]`` of one episode: class
        ids as symbol characters, real values as grey shades of their first dimension."""
        if self.target_kind == "class":
            return symbol_text(values, blank=self.blank_symbol)
        values = np.asarray(values, dtype=np.float64)
        first = values.reshape(values.shape[0], -1)[:, 0] if values.size else values.reshape(-1)
        return shade_text(first, self.output_low, self.output_high)

    def oracle_predictions(self, batch: SequenceBatch) -> np.ndarray:
        """Predictions of a policy with perfect memory: the targets themselves."""
        return batch.targets

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{type(self).__name__}({args})"


class DrawLayoutTask(SequenceTask):
    """A :class:`SequenceTask` split into a random draw and a vectorised layout, which gives a fast
    :meth:`sample_each` (every restarting env of a vector env draws from its own generator, then
    all episodes are laid out in one pass).

    Subclasses implement :meth:`_draw` and :meth:`_episodes` instead of :meth:`sample`.
    """

    def _draw(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """The random content of ``batch_size`` episodes, using only ``rng``: arrays with batch dim 0."""
        raise NotImplementedError

    def _episodes(self, *draw: np.ndarray) -> SequenceBatch:
        """Lay out the episodes of one draw (all the arrays :meth:`_draw` returns) as a batch."""
        raise NotImplementedError

    def sample(self, batch_size: int, rng: np.random.Generator) -> SequenceBatch:
        return self._episodes(*self._draw(batch_size, rng))

    def sample_each(self, rngs: Sequence[np.random.Generator]) -> SequenceBatch:
        draws = [self._draw(1, rng) for rng in rngs]
        return self._episodes(*(np.concatenate(parts) for parts in zip(*draws)))


# --------------------------------------------------------------------------------------------
# Gymnasium views
# --------------------------------------------------------------------------------------------

ObsMode = Literal["onehot", "index"]


def _resolve_task(task: SequenceTask | str | type, task_kwargs: dict[str, Any]) -> SequenceTask:
    if isinstance(task, SequenceTask):
        if task_kwargs:
            raise ValueError(f"task kwargs {sorted(task_kwargs)} given together with a task instance")
        return check_task_size(task)
    if isinstance(task, str):
        module, _, name = task.partition(":")
        task = getattr(importlib.import_module(module), name)
    return check_task_size(task(**task_kwargs))


def step_values(task: SequenceTask) -> int:
    """Values one step of an episode holds: input features (1 for a symbol), target dimensions
    (1 for a class) and the mask."""
    inputs = task.num_inputs if task.input_kind == "real" else 1
    targets = task.num_outputs if task.target_kind == "real" else 1
    return inputs + targets + 1


def check_task_size(task: SequenceTask) -> SequenceTask:
    """Return ``task`` if its episodes fit the limits (``MAX_EPISODE_LENGTH`` steps,
    ``MAX_EPISODE_VALUES`` values, ``MAX_SYMBOLS`` symbols), else raise ValueError.

    The built-in tasks validate their knobs against these limits themselves, with the allowed
    range of each knob; this check, applied to every task that ``make_task``, ``TaskEnv`` and
    ``TaskVectorEnv`` build, catches a task that does not (it names the task's length knob).
    """
    knob = task.length_knob
    setting = f"{knob}={task.kwargs[knob]!r}" if knob in getattr(task, "kwargs", {}) else repr(task)
    if task.max_length > MAX_EPISODE_LENGTH:
        raise ValueError(
            f"{setting} gives episodes of {task.max_length} steps: allowed at most "
            f"MAX_EPISODE_LENGTH={MAX_EPISODE_LENGTH} steps"
        )
    values = task.max_length * step_values(task)
    if values > MAX_EPISODE_VALUES:
        raise ValueError(
            f"{task!r} gives episodes of {values} values ({task.max_length} steps): allowed at most "
            f"MAX_EPISODE_VALUES={MAX_EPISODE_VALUES} values"
        )
    symbols = max(
        task.num_inputs if task.input_kind == "symbols" else 0, task.num_outputs if task.target_kind == "class" else 0
    )
    if symbols > MAX_SYMBOLS:
        raise ValueError(f"{task!r} has {symbols} symbols: allowed at most MAX_SYMBOLS={MAX_SYMBOLS}")
    return task


class _Codec:
    """Translates between a task's arrays and one Gymnasium view's observations and actions.

    Symbol inputs become one-hot float32 vectors (``obs_mode="onehot"``) or int64 indices
    (``"index"``); real inputs pass through as float32. Class targets are ``Discrete`` actions.
    Real targets with a finite range ``[lo, hi]`` use the normalised ``Box(-1, 1)`` action space
    that Stable-Baselines3 recommends (a Gaussian policy starts at the middle of the range), and
    ``prediction = lo + (action + 1)·(hi - lo)/2``; unbounded real targets use the raw values.
    """

    def __init__(self, task: SequenceTask, obs_mode: ObsMode) -> None:
        self.task = task
        self.obs_mode = check_choice("obs_mode", obs_mode, ("onehot", "index"))
        if task.input_kind == "real":
            self.observation_space: spaces.Space = spaces.Box(
                task.input_low, task.input_high, shape=(task.num_inputs,), dtype=np.float32
            )
        elif obs_mode == "index":
            self.observation_space = spaces.Discrete(task.num_inputs)
        else:
            self.observation_space = spaces.Box(0.0, 1.0, shape=(task.num_inputs,), dtype=np.float32)
        # A lookup table of one-hots for small vocabularies; larger ones are scattered per step.
        self._symbols = task.input_kind == "symbols"
        self._eye = np.eye(task.num_inputs, dtype=np.float32) if self._symbols and task.num_inputs <= 1024 else None
        self.scaled = task.target_kind == "real" and bool(np.isfinite([task.output_low, task.output_high]).all())
        self._center = (task.output_high + task.output_low) / 2.0 if self.scaled else 0.0
        self._half = (task.output_high - task.output_low) / 2.0 if self.scaled else 1.0
        if task.target_kind == "class":
            self.action_space: spaces.Space = spaces.Discrete(task.num_outputs)
        elif self.scaled:
            self.action_space = spaces.Box(-1.0, 1.0, shape=(task.num_outputs,), dtype=np.float32)
        else:
            self.action_space = spaces.Box(
                task.output_low, task.output_high, shape=(task.num_outputs,), dtype=np.float32
            )

    def encode(self, inputs: np.ndarray) -> np.ndarray:
        """Observations ``[B, ...]`` from the task's inputs at one step ``[B, ...]``."""
        if not self._symbols:
            return inputs.astype(np.float32)
        if self.obs_mode == "index":
            return inputs.astype(np.int64)
        if self._eye is not None:
            return self._eye[inputs]
        out = np.zeros(inputs.shape + (self.task.num_inputs,), dtype=np.float32)
        np.put_along_axis(out, inputs[..., None], 1.0, axis=-1)
        return out

    def zero_obs(self) -> Any:
        """The observation returned with termination (there is no next input)."""
        if isinstance(self.observation_space, spaces.Discrete):
            return np.int64(0)
        return np.zeros(self.observation_space.shape, dtype=np.float32)

    def predictions(self, actions: np.ndarray) -> np.ndarray:
        """Task predictions from a batch of (already validated) actions."""
        if self.scaled:
            return self._center + self._half * actions.astype(np.float64)
        return actions

    def actions(self, predictions: np.ndarray) -> np.ndarray:
        """Actions ``[B, ...]`` that make the given task predictions (clipped to the space)."""
        if self.task.target_kind == "class":
            return np.asarray(predictions, dtype=np.int64)
        space = self.action_space
        scaled = (np.asarray(predictions, dtype=np.float64) - self._center) / self._half
        return np.clip(scaled, space.low, space.high).astype(np.float32)

    def check_action(self, action: Any) -> np.ndarray:
        """One env's action as an array, or ValueError saying what is allowed."""
        space = self.action_space
        arr = np.asarray(action)
        if isinstance(space, spaces.Discrete):
            ok = arr.shape == () and arr.dtype.kind in "iu" and 0 <= int(arr) < space.n
            allowed = f"an integer in [0, {space.n - 1}]"
        else:
            ok = arr.shape == space.shape and arr.dtype.kind in "iuf" and bool(np.all((arr >= space.low) & (arr <= space.high)))
            allowed = f"a float array of shape {space.shape} in [{space.low.min()}, {space.high.max()}]"
        if not ok:
            raise ValueError(f"action {action!r} is not in the action space {space}: expected {allowed}")
        return arr

    def check_actions(self, actions: Any, num_envs: int) -> np.ndarray:
        """A batch of actions as an array, or ValueError; vectorised (no per-env Python)."""
        space = self.action_space
        arr = np.asarray(actions)
        shape = (num_envs,) + space.shape
        if isinstance(space, spaces.Discrete):
            ok = arr.shape == shape and arr.dtype.kind in "iu" and arr.min() >= 0 and arr.max() < space.n
            allowed = f"integers in [0, {space.n - 1}]"
        else:
            ok = arr.shape == shape and arr.dtype.kind in "iuf" and bool(((arr >= space.low) & (arr <= space.high)).all())
            allowed = f"floats in [{space.low.min()}, {space.high.max()}]"
        if not ok:
            raise ValueError(
                f"actions of shape {arr.shape} and dtype {arr.dtype} are not in the action space: "
                f"expected shape {shape} of {allowed}"
            )
        return arr


def _bind_task(
    env: gym.Env | VectorEnv, task: SequenceTask | str | type, task_kwargs: dict[str, Any], obs_mode: ObsMode,
    render_mode: str | None,
) -> None:
    """Set what :class:`TaskEnv` and :class:`TaskVectorEnv` share: ``task``, its ``_codec``,
    ``obs_mode``, ``render_mode`` and ``reference`` scores."""
    env.render_mode = check_render_mode(render_mode)
    env.task = _resolve_task(task, task_kwargs)
    env._codec = _Codec(env.task, obs_mode)
    env.obs_mode = env._codec.obs_mode
    env.reference = env.task.reference_scores()


def episode_picture(
    task: SequenceTask,
    inputs: np.ndarray,
    targets: np.ndarray,
    mask: np.ndarray,
    predictions: np.ndarray,
    t: int,
    length: int,
    total: float,
) -> Picture:
    """The picture of one episode of ``task`` after ``t`` of its ``length`` steps.

    ``inputs``, ``targets``, ``mask`` and ``predictions`` are that episode's arrays (time first).
    The inputs are drawn up to the current observation (step ``t``), the targets and the
    predictions at the scored steps already played; the header gives the step and the return
    so far, the footer (real targets) the values at the last scored step.
    """
    shown = min(t + 1, length)
    played = np.asarray(mask[:t], dtype=bool)

    def scored(text: str) -> str:
        return "".join(c if m else " " for c, m in zip(text, played)).ljust(shown)

    rows = task.render_inputs(inputs[:shown])
    rows += [("tgt", scored(task.render_targets(targets[:t]))), ("out", scored(task.render_targets(predictions[:t])))]
    grid, notes = sequence_rows(rows, task.render_width)
    status = "done" if t >= length else f"step {t}/{length}"
    header = [f"{task!r}  {status}  return {total:+.3f}"] + notes
    footer = []
    if task.target_kind == "real" and played.any():
        last = int(np.flatnonzero(played)[-1])

        def values(v: np.ndarray) -> str:
            return np.array2string(np.asarray(v, dtype=np.float64).reshape(-1), precision=3)

        footer.append(f"step {last}: target {values(targets[last])}, prediction {values(predictions[last])}")
    return Picture(grid, header, footer)


def _no_render(env: gym.Env | VectorEnv) -> None:
    """Gymnasium's behaviour for ``render()`` without a render mode: a warning and None."""
    gym.logger.warn(
        "render() was called without a render mode: make the env with render_mode='ansi' or 'rgb_array', "
        "e.g. gym.make(id, render_mode='ansi')"
    )


def envs_to_reset(
    rngs: list[np.random.Generator], seed: int | list[int | None] | None, options: dict[str, Any] | None
) -> np.ndarray:
    """Indices of the envs a vector env's ``reset(seed=..., options=...)`` restarts, after reseeding
    their generators in ``rngs`` (one per env, replaced in place).

    All envs restart, or only those of Gymnasium's partial reset ``options={"reset_mask": mask}``.
    An int ``seed`` gives env ``i`` the seed ``seed + i`` (so it replays the single env seeded
    ``seed + i``); a list gives one seed (or None) per env; None keeps the generators.
    """
    num_envs = len(rngs)
    mask = None if options is None else options.get("reset_mask")
    envs = np.arange(num_envs) if mask is None else np.flatnonzero(mask)
    if seed is not None:
        seeds = [seed + i for i in range(num_envs)] if isinstance(seed, int) else list(seed)
        if len(seeds) != num_envs:
            raise ValueError(f"seed list has {len(seeds)} entries, expected num_envs={num_envs}")
        for i in envs:
            rngs[i] = seeding.np_random(seeds[i])[0]
    return envs


class TaskEnv(gym.Env):
    """Gymnasium view of a :class:`SequenceTask`: one episode is one sequence.

    The observation at step ``t`` is ``inputs[t]`` (one-hot float vector or symbol index for
    symbol tasks, the feature vector for real-valued tasks); the action is the prediction for step
    ``t`` (for bounded real-valued targets, a ``Box(-1, 1)`` action mapped affinely onto the
    target range, see :class:`_Codec`). Rewards are given on scored steps only and sum to the
    episode return in [-1, 1] (1.0 = perfect). The episode terminates after its last step; the
    observation returned with termination is all zeros.

    Episodes are ``task.sample(1, self.np_random)``, so ``reset(seed=s)`` fixes the whole
    sequence of episodes that follow.

    Args:
        task: a task instance, a task class, or ``"module:Class"``.
        obs_mode: ``"onehot"`` (default, Box) or ``"index"`` (Discrete) for symbol inputs;
            ignored for real-valued inputs.
        render_mode: None, ``"ansi"`` (:meth:`render` returns a text picture of the episode so
            far: the inputs, and the targets and predictions at the scored steps played) or
            ``"rgb_array"`` (the same picture as a ``uint8 [H, W, 3]`` image).
        **task_kwargs: forwarded to the task class.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": list(RENDER_MODES), "render_fps": RENDER_FPS}

    def __init__(
        self,
        task: SequenceTask | str | type,
        obs_mode: ObsMode = "onehot",
        render_mode: str | None = None,
        **task_kwargs: Any,
    ) -> None:
        _bind_task(self, task, task_kwargs, obs_mode, render_mode)
        self.observation_space = self._codec.observation_space
        self.action_space = self._codec.action_space
        self._batch: SequenceBatch | None = None
        self._t = 0
        self._length = 0
        self._predictions: np.ndarray | None = None  # kept for render() only
        self._return = 0.0

    def _obs(self) -> Any:
        return self._codec.encode(self._batch.inputs[self._t, :1])[0]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._batch = self.task.sample(1, self.np_random)
        self._length = int(self._batch.lengths[0])
        self._scored = np.array([max(int(self._batch.mask[:, 0].sum()), 1)])
        self._t = 0
        self._return = 0.0
        if self.render_mode is not None:
            self._predictions = np.zeros_like(self._batch.targets[:, 0])
        return self._obs(), {}

    def step(self, action: Any):
        if self._batch is None:
            raise RuntimeError("call reset() before step()")
        if self._t >= self._length:
            raise RuntimeError("episode has ended: call reset() before step()")
        arr = self._codec.check_action(action)
        t = self._t
        reward = 0.0
        if self._batch.mask[t, 0]:
            target = self._batch.targets[t, :1]
            pred = self._codec.predictions(arr.reshape(target.shape))
            reward = float(self.task.step_reward(pred, target, self._scored)[0])
            if self._predictions is not None:
                self._predictions[t] = pred[0]
        self._return += reward
        self._t += 1
        terminated = self._t >= self._length
        obs = self._codec.zero_obs() if terminated else self._obs()
        return obs, reward, terminated, False, {}

    def render(self) -> str | np.ndarray | None:
        """The episode so far as text (``"ansi"``) or an image (``"rgb_array"``); see the class."""
        if self.render_mode is None:
            return _no_render(self)
        if self._batch is None:
            return Picture(header=[f"{self.task!r}  no episode yet: call reset()"]).render(self.render_mode)
        b = self._batch
        picture = episode_picture(
            self.task, b.inputs[:, 0], b.targets[:, 0], b.mask[:, 0], self._predictions, self._t, self._length, self._return
        )
        return picture.render(self.render_mode)

    # Reference policies (tests, `memory-bench envs`).
    def oracle_action(self) -> Any:
        """The action a policy with perfect memory takes at the current step."""
        return self._codec.actions(self.task.oracle_predictions(self._batch)[self._t, :1])[0]

    def memoryless_action(self) -> Any:
        """The best action given only the current input and step index."""
        pred = self.task.memoryless_prediction(self._batch.inputs[self._t, :1], self._t)
        return self._codec.actions(pred)[0]


class TaskVectorEnv(VectorEnv):
    """Numpy-batched Gymnasium VectorEnv of ``num_envs`` independent episodes of a task.

    Autoreset mode is NEXT_STEP (Gymnasium's default): the step after an env terminates returns
    the first observation of its next episode with reward 0, ``terminated=False``, and the action
    ignored. Env ``i`` reset with ``seed=s`` replays the episodes of ``TaskEnv`` reset with
    ``seed=s+i``: every env keeps its own generator, and the envs that restart in a step draw
    their episodes together through ``task.sample_each``.

    With a ``render_mode``, :meth:`render` returns a tuple with one frame per env (Gymnasium's
    vector convention), each what :meth:`TaskEnv.render` draws.

    Args:
        num_envs: number of parallel episodes.
        task, obs_mode, render_mode, **task_kwargs: as :class:`TaskEnv`.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": list(RENDER_MODES),
        "render_fps": RENDER_FPS,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        num_envs: int = 1,
        task: SequenceTask | str | type = "",
        obs_mode: ObsMode = "onehot",
        render_mode: str | None = None,
        **task_kwargs: Any,
    ) -> None:
        check_int("num_envs", num_envs, low=1)
        _bind_task(self, task, task_kwargs, obs_mode, render_mode)
        per_env = (self.task.max_length + 1) * step_values(self.task)
        self.num_envs = check_int(
            "num_envs", num_envs, low=1, high=max(MAX_VECTOR_VALUES // per_env, 1),
            why=f"each env buffers {per_env} values, all envs together at most MAX_VECTOR_VALUES={MAX_VECTOR_VALUES}",
        )
        self.single_observation_space = self._codec.observation_space
        self.single_action_space = self._codec.action_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self._rngs = [seeding.np_random(None)[0] for _ in range(self.num_envs)]
        T, N = self.task.max_length, self.num_envs
        probe = self.task.sample(1, np.random.default_rng(0))
        # One spare row past the longest episode, never scored: an env whose episode just ended
        # (t == length <= T) can be indexed at step t without clipping.
        self._inputs = np.zeros((T + 1, N) + probe.inputs.shape[2:], dtype=probe.inputs.dtype)
        self._targets = np.zeros((T + 1, N) + probe.targets.shape[2:], dtype=probe.targets.dtype)
        self._mask = np.zeros((T + 1, N), dtype=bool)
        self._lengths = np.zeros(N, dtype=np.int64)
        self._scored = np.ones(N, dtype=np.int64)
        self._t = np.zeros(N, dtype=np.int64)
        self._needs_reset = np.zeros(N, dtype=bool)
        self._cols = np.arange(N)
        self._started = False
        # Kept for render() only: each env's predictions at scored steps and its return so far.
        self._predictions = np.zeros_like(self._targets) if self.render_mode is not None else None
        self._returns = np.zeros(N, dtype=np.float64)

    def _new_episodes(self, envs: np.ndarray) -> None:
        b = self.task.sample_each([self._rngs[i] for i in envs])
        T = self.task.max_length
        self._inputs[:T, envs] = b.inputs
        self._targets[:T, envs] = b.targets
        self._mask[:T, envs] = b.mask
        self._lengths[envs] = b.lengths
        self._scored[envs] = np.maximum(b.mask.sum(axis=0), 1)
        self._t[envs] = 0
        self._returns[envs] = 0.0

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        envs = envs_to_reset(self._rngs, seed, options)
        self._new_episodes(envs)
        self._needs_reset[envs] = False
        self._started = True
        obs = self._codec.encode(self._inputs[self._t, self._cols])
        obs[self._needs_reset] = 0
        return obs, {}

    def step(self, actions: Any):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        actions = self._codec.check_actions(actions, self.num_envs)
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        t = self._t
        # Envs waiting for a restart sit at t == length, a step that is never scored.
        scored = self._mask[t, self._cols]
        if scored.any():
            idx = np.flatnonzero(scored)
            targets = self._targets[t[idx], idx]
            preds = self._codec.predictions(actions[idx].reshape(targets.shape))
            rewards[idx] = self.task.step_reward(preds, targets, self._scored[idx])
            if self._predictions is not None:
                self._predictions[t[idx], idx] = preds
                self._returns += rewards
        self._t = t + 1
        if self._needs_reset.any():
            self._new_episodes(np.flatnonzero(self._needs_reset))  # their t becomes 0
        terminated = self._t >= self._lengths
        self._needs_reset = terminated
        obs = self._codec.encode(self._inputs[self._t, self._cols])
        if terminated.any():
            obs[terminated] = 0
        truncated = np.zeros(self.num_envs, dtype=bool)
        return obs, rewards, terminated, truncated, {}

    def render(self) -> tuple[str | np.ndarray, ...] | None:
        """One frame per env, as :meth:`TaskEnv.render` draws it (an env waiting for its NEXT_STEP
        restart shows its finished episode)."""
        if self.render_mode is None:
            return _no_render(self)
        if not self._started:
            blank = Picture(header=[f"{self.task!r}  no episode yet: call reset()"])
            return tuple(blank.render(self.render_mode) for _ in range(self.num_envs))
        return tuple(
            episode_picture(
                self.task, self._inputs[:, i], self._targets[:, i], self._mask[:, i], self._predictions[:, i],
                int(self._t[i]), int(self._lengths[i]), float(self._returns[i]),
            ).render(self.render_mode)
            for i in range(self.num_envs)
        )

    def oracle_actions(self) -> np.ndarray:
        """Actions of a policy with perfect memory for the current step of every env."""
        return self._codec.actions(self._targets[self._t, self._cols])

    def memoryless_actions(self) -> np.ndarray:
        """Best memoryless actions for the current step of every env (envs at different steps
        are grouped by step index, since a memoryless prediction may depend on it)."""
        t = self._t
        preds = None
        for step in np.unique(t):
            envs = np.flatnonzero(t == step)
            p = np.asarray(self.task.memoryless_prediction(self._inputs[step, envs], int(step)))
            if preds is None:
                preds = np.zeros((self.num_envs,) + p.shape[1:], dtype=p.dtype)
            preds[envs] = p
        return self._codec.actions(preds)


def _check_action(space: spaces.Space, action: Any) -> None:
    """Raise ValueError if ``action`` is not in ``space`` (exact dtype kind, shape and bounds);
    shared with the control envs so every memenvs env rejects bad actions the same way."""
    arr = np.asarray(action)
    if isinstance(space, spaces.Discrete):
        ok = arr.shape == () and arr.dtype.kind in "iu" and space.contains(int(arr))
    else:
        ok = arr.shape == space.shape and arr.dtype.kind in "iuf" and space.contains(arr.astype(space.dtype))
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

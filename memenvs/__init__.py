"""memenvs: long-term memory tasks as Gymnasium environments.

Importing the package registers every id in the ``memenvs/`` namespace::

    import gymnasium as gym, memenvs
    env = gym.make("memenvs/Copy-v0", delay=500)
    vec = gym.make_vec("memenvs/Copy-v0", num_envs=1024)      # numpy-batched, not 1024 envs
    task = memenvs.make_task("copy", delay=500)                # arrays for supervised training

``python -m memenvs`` prints every id with its spaces and reference returns.

Each module under ``memenvs/tasks/`` (sequence tasks) and ``memenvs/control/`` (RL tasks whose
actions change what comes next) registers its own ids when imported; this file imports them all.
Depends on numpy and gymnasium only.
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib import metadata

from memenvs.core import (
    ReferenceScores,
    SequenceBatch,
    SequenceTask,
    TaskEnv,
    TaskVectorEnv,
    list_ids,
    make_task,
    register_task,
    resolve_id,
)

__all__ = [
    "__version__",
    "ReferenceScores",
    "SequenceBatch",
    "SequenceTask",
    "TaskEnv",
    "TaskVectorEnv",
    "list_ids",
    "make_task",
    "reference_scores",
    "register_task",
    "resolve_id",
]


def _version() -> str:
    """The installed ``memory-bench`` distribution's version, or ``"0+unknown"`` when run from a
    source tree that is not installed."""
    try:
        return metadata.version("memory-bench")
    except metadata.PackageNotFoundError:
        return "0+unknown"


__version__ = _version()


def _register_all() -> None:
    for package in ("memenvs.tasks", "memenvs.control"):
        pkg = importlib.import_module(package)
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
            if not info.name.startswith("_"):
                importlib.import_module(f"{package}.{info.name}")


def reference_scores(env_id: str, **kwargs):
    """Random / memoryless / optimal expected returns of an id with the given kwargs; None for an
    env that declares none (another Gymnasium id, e.g. ``CartPole-v1``)."""
    import gymnasium as gym

    try:
        env_id = resolve_id(env_id)
    except ValueError:  # not a memenvs id: gym.make names the problem if it is no id at all
        pass
    env = gym.make(env_id, **kwargs)
    try:
        return getattr(env.unwrapped, "reference", None)
    finally:
        env.close()


_register_all()

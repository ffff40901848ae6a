"""Soak check: does training hold on to memory update after update?

A run of days needs memory that stays flat. A leak (e.g. a custom ``autograd.Function`` that
keeps views of its outputs on ``ctx``, a reference cycle through the graph that nothing frees)
shows as resident memory that grows with every update. Both checks here run the real harness
twice in one process: a warm-up run that brings the allocator and the caches to their steady
size, then a measured run; a leak of ``L`` bytes per update makes the process grow by about
``updates * L`` between the two readings, while a sound run grows by at most allocator noise.

Used by the suite (``tests/test_soak.py``, small sizes) and by ``benchmarks/soak.py`` (paper
sizes). Linux only: the resident size is read from ``/proc/self/statm``.
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_STATM = Path("/proc/self/statm")


def rss_mb() -> float:
    """This process's resident memory in MB (2**20 bytes), from ``/proc/self/statm``."""
    if not _STATM.exists():
        raise RuntimeError("the soak check reads /proc/self/statm, which this system does not have (Linux only)")
    resident_pages = int(_STATM.read_text().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass(frozen=True)
class SoakResult:
    """Resident memory after the warm-up run and after the measured run of ``updates`` updates."""

    warmup_mb: float
    final_mb: float
    updates: int

    @property
    def growth_mb(self) -> float:
        return self.final_mb - self.warmup_mb

    @property
    def mb_per_update(self) -> float:
        return self.growth_mb / self.updates


def _reading() -> float:
    """Resident memory once what is free has been handed back: Python's collector first (what
    it can free is not a leak), then glibc's ``malloc_trim`` (freed but fragmented heap pages
    otherwise make readings vary by a hundred MB between runs that hold the same data)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: readings are noisier, not wrong
        pass
    return rss_mb()


def soak_train(config: Any, warmup: int = 20, updates: int = 100) -> SoakResult:
    """Train ``config`` (a :class:`agents.supervised.TrainConfig`; its ``updates`` is replaced)
    for ``warmup`` updates, then afresh for ``updates`` updates, nothing written to disk, and
    read the resident memory after each run."""
    from agents.supervised import train

    if warmup < 1 or updates < 1:
        raise ValueError(f"warmup={warmup!r} and updates={updates!r} must both be >= 1")
    # Evaluate only at the end (the last update always evaluates), on a small batch.
    quiet = {"eval_every": 10**9, "eval_batches": 1}
    train(dataclasses.replace(config, updates=warmup, **quiet), progress=False)
    before = _reading()
    train(dataclasses.replace(config, updates=updates, **quiet), progress=False)
    return SoakResult(before, _reading(), updates)


def soak_rl(model: Any, warmup_steps: int, steps: int) -> SoakResult:
    """Run ``model.learn`` (an :class:`agents.rl.RecurrentPPO`) for ``warmup_steps`` env steps,
    then for ``steps`` more; ``updates`` counts the PPO iterations (rollout + optimisation) of
    the measured part."""
    per_iteration = model.n_steps * model.n_envs
    if warmup_steps < per_iteration or steps < per_iteration:
        raise ValueError(f"warmup_steps={warmup_steps!r} and steps={steps!r} must both be >= n_steps * n_envs = {per_iteration}")
    model.learn(warmup_steps)
    before = _reading()
    model.learn(steps, reset_num_timesteps=False)
    return SoakResult(before, _reading(), steps // per_iteration)

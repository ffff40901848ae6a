"""Where the runs of a sweep execute: a local process pool, or Ray (one machine or a cluster).

Both take a list of :class:`Job` and yield each run's result as it finishes (in completion order).
Scheduling, retries of lost workers and cluster placement are the engines' own; this module only
submits runs and collects results.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from agents.sweep.execute import ERROR_FILE, execute_run, execute_run_packed, unpack_run

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class Job:
    """A run to execute (a :class:`~agents.sweep.spec.RunSpec` dict), where its directory and
    its log go."""

    run: dict[str, Any]
    run_dir: Path
    log_path: Path


class SweepInterrupted(RuntimeError):
    """The executor lost its workers (a worker was killed, e.g. out of memory): the finished runs
    are kept; relaunching the sweep redoes the rest."""


def available_cpus() -> int:
    """CPUs this process may use (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _init_worker() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"  # before torch is imported in this process


class LocalExecutor:
    """A ``ProcessPoolExecutor`` with the spawn start method (no fork of a process that holds
    torch threads), ``workers`` processes (default: one per available CPU), one torch thread each."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ValueError(f"workers={workers!r} must be an integer >= 1")
        self.workers = workers or available_cpus()

    def run(self, jobs: list[Job]) -> Iterator[dict[str, Any]]:
        if not jobs:
            return
        pool = ProcessPoolExecutor(min(self.workers, len(jobs)), mp_context=get_context("spawn"), initializer=_init_worker)
        pending = {pool.submit(execute_run, job.run, job.run_dir, job.log_path): job for job in jobs}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    pending.pop(future)
                    try:
                        yield future.result()
                    except BrokenProcessPool:
                        raise SweepInterrupted(
                            "a worker process died abruptly (killed, out of memory or os._exit); the finished runs "
                            "are kept: relaunch the sweep to redo the others"
                        ) from None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """Each run is a Ray task with ``num_cpus=1`` (and ``num_gpus=1`` when its device is
    ``cuda...``). ``address``: an existing cluster (``"auto"``, ``"ray://host:10001"``); None
    starts a local Ray instance with ``workers`` CPUs (default: all). A Ray instance that is
    already initialised in this process is used as it is.

    Workers run in a temporary directory and send the run directory back as an archive, so the
    cluster's nodes need the package installed but no shared file system.
    """

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ValueError('the ray executor needs Ray: pip install "memory-bench[ray]" (or pip install "ray>=2.9")') from None
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ValueError(f"workers={workers!r} must be an integer >= 1")
        self.address = address
        self.workers = workers

    def run(self, jobs: list[Job]) -> Iterator[dict[str, Any]]:
        import ray

        if not jobs:
            return
        started_here = not ray.is_initialized()
        if started_here:
            if self.address is None:
                ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=self.address, log_to_driver=False)
        remote = ray.remote(execute_run_packed)
        pending = {}
        for job in jobs:
            device = str(job.run["config"].get("device", "cpu"))
            ref = remote.options(num_cpus=1, num_gpus=1 if device.startswith("cuda") else 0,
                                 name=f"memory-bench:{job.run['id']}").remote(job.run)
            pending[ref] = job
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    job = pending.pop(ref)
                    try:
                        result, archive, log = ray.get(ref)
                    except ray.exceptions.RayError as err:  # the worker or its node died
                        yield _lost(job, f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}")
                        continue
                    unpack_run(archive, job.run_dir)
                    job.log_path.parent.mkdir(parents=True, exist_ok=True)
                    job.log_path.write_text(log)
                    yield result
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            if started_here:
                ray.shutdown()


def _lost(job: Job, message: str) -> dict[str, Any]:
    """Record a run whose worker was lost as failed (error.json in its directory)."""
    job.run_dir.mkdir(parents=True, exist_ok=True)
    (job.run_dir / ERROR_FILE).write_text(json.dumps({"error": message, "traceback": None}, indent=2) + "\n")
    return {"id": job.run["id"], "status": "failed", "error": message, "started": None, "seconds": None,
            "host": None, "pid": None}


def make_executor(name: str, workers: int | None = None, address: str | None = None) -> LocalExecutor | RayExecutor:
    """``"local"`` or ``"ray"``; ``address`` only applies to Ray."""
    if name == "local":
        if address is not None:
            raise ValueError(f"address={address!r} only applies to the ray executor")
        return LocalExecutor(workers)
    if name == "ray":
        return RayExecutor(address, workers)
    raise ValueError(f"executor={name!r} is not one of {', '.join(EXECUTORS)}")

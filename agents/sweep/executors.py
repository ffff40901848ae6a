"""Where the runs of a sweep execute: a local process pool, or Ray (one machine or a cluster).

Both take a list of :class:`Job` and yield each run's result as it finishes (in completion order).
Scheduling, retries of lost workers and cluster placement are the engines' own; this module only
submits runs and collects results.

No local worker outlives its sweep: when the sweep stops before its runs are done (an exception,
Ctrl-C, SIGTERM turned into :class:`SweepStopped` by :func:`stop_on_signals`, or the generator
being closed) the workers are terminated, and a worker whose sweep process died without that
(SIGKILL) notices within half a second that its parent changed and exits. Workers ignore SIGINT:
Ctrl-C in a terminal reaches the whole process group, and the sweep stops them itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
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
    """A run to execute (a :class:`~agents.sweep.spec.RunSpec` dict), where its directory, its
    log and its lock file (see :mod:`agents.sweep.locks`; local workers only) go."""

    run: dict[str, Any]
    run_dir: Path
    log_path: Path
    lock_path: Path | None = None


class SweepInterrupted(RuntimeError):
    """The executor lost its workers (a worker was killed, e.g. out of memory): the finished runs
    are kept; relaunching the sweep redoes the rest."""


def available_cpus() -> int:
    """CPUs this process may use (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class SweepStopped(BaseException):
    """The sweep process got a termination signal (see :func:`stop_on_signals`). A
    BaseException, like KeyboardInterrupt, so that no ``except Exception`` swallows it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`SweepStopped` in the main thread
    (instead of ending the process on the spot), so the executors' clean-up runs (SIGINT already
    raises KeyboardInterrupt). Does nothing outside the main thread, where Python cannot install
    handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    stopping = False

    def handler(signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:  # a second signal must not interrupt the clean-up the first one started
            stopping = True
            raise SweepStopped(signum)

    signums = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {s: signal.signal(s, handler) for s in signums}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _exit_when_orphaned(parent: int) -> None:
    """Poll the parent pid; when the sweep process is gone (the worker was re-parented), exit."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def _init_worker(parent: int | None = None) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"  # before torch is imported in this process
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the sweep process stops its workers itself
    if parent is not None:
        threading.Thread(target=_exit_when_orphaned, args=(parent,), name="orphan-watch", daemon=True).start()


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold back SIGINT, SIGTERM and SIGHUP (delivered at the end of the block) in the main thread
    of a POSIX process; elsewhere do nothing."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _stop_workers(pool: ProcessPoolExecutor, grace: float = 5.0) -> None:
    """Terminate the pool's worker processes (SIGTERM, then SIGKILL after ``grace`` seconds)."""
    # ProcessPoolExecutor has no public list of its processes; _processes (pid -> Process) has
    # been there since Python 3.2.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join(1.0)


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
        pool = ProcessPoolExecutor(min(self.workers, len(jobs)), mp_context=get_context("spawn"),
                                   initializer=_init_worker, initargs=(os.getpid(),))
        pending = {}
        try:
            for job in jobs:
                pending[pool.submit(execute_run, job.run, job.run_dir, job.log_path, job.lock_path)] = job
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
            if pending:  # stopped early: no run may go on unrecorded
                with _signals_held():
                    _stop_workers(pool)
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

"""Run one sweep run in the current process: the function every executor calls in its workers.

A run writes its usual run directory (supervised: :func:`agents.supervised.train` on a
:class:`~agents.supervised.TrainConfig`; RL: :func:`agents.rl.train_rl` on an
:class:`~agents.rl.RLConfig`, the functions behind ``memory-bench train`` / ``rl``). Its
stdout/stderr go to a log file. An exception is recorded
as ``error.json`` in the run directory and returned as a ``failed`` result, so one bad run never
stops the others; KeyboardInterrupt and other BaseExceptions propagate (the sweep is stopping).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import tarfile
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

SUMMARY_FILE = "summary.json"
ERROR_FILE = "error.json"


#: A run's latest checkpoint (the same name in both harnesses' run directories).
LATEST_FILE = "latest.pt"


def _train_supervised(config: dict[str, Any], out: Path, resume: bool) -> None:
    from agents.supervised.trainer import TrainConfig, TrainingDiverged, train

    try:
        train(TrainConfig.from_dict(config), out_dir=out, resume=resume, progress=False)
    except TrainingDiverged as err:  # summary.json says "diverged": a result, not a crash
        print(f"diverged: {err}")


def _train_rl(config: dict[str, Any], out: Path, resume: bool) -> None:
    """:func:`agents.rl.train_rl` on an :class:`~agents.rl.RLConfig` dict (a plan written before
    RLConfig, with the ``memory-bench rl`` option names ``env``, ``env_kw``, ..., is read too)."""
    from agents.rl.config import RLConfig, upgrade_config
    from agents.rl.trainer import train_rl

    train_rl(RLConfig.from_dict(upgrade_config(config)), out_dir=out, resume=resume, progress=False)


def _train(run: dict[str, Any], run_dir: Path) -> None:
    """Train ``run`` into ``run_dir``: continued from its latest checkpoint when an earlier launch
    was stopped mid-run (a paper-scale run may take days), else from scratch. A directory that
    cannot be continued (an unreadable checkpoint, another run's files, a failed run) is cleared
    and the run redone."""
    train = _train_supervised if run["harness"] == "supervised" else _train_rl
    if (run_dir / LATEST_FILE).is_file() and not (run_dir / ERROR_FILE).is_file():
        try:
            train(run["config"], run_dir, resume=True)
            print(f"continued from {run_dir / LATEST_FILE}")
            return
        except ValueError as err:  # refused before anything was written
            print(f"cannot continue ({err}): starting again")
    if run_dir.exists():
        shutil.rmtree(run_dir)
    train(run["config"], run_dir, resume=False)


def execute_run(
    run: dict[str, Any], run_dir: str | os.PathLike, log_path: str | os.PathLike, lock_path: str | os.PathLike | None = None
) -> dict[str, Any]:
    """Train ``run`` (a :class:`~agents.sweep.spec.RunSpec` dict) into ``run_dir``.

    A run that an earlier launch left mid-way continues from its latest checkpoint; anything
    else at ``run_dir`` (a failed run, files that cannot be continued) is removed and the run
    redone from scratch. One torch thread per run: a sweep gets its parallelism from running many runs.
    With ``lock_path``, the run is locked for this process while it runs (see
    :mod:`agents.sweep.locks`): a run whose lock a live process holds is not touched (status
    ``"locked"``), one that a process of an earlier launch finished meanwhile is not redone.

    Returns:
        ``{"id", "status": "done" | "failed" | "locked", "error", "started", "seconds", "host", "pid"}``.
    """
    if lock_path is None:
        return _execute_run(run, Path(run_dir), Path(log_path))
    from agents.sweep import locks

    held_by = locks.acquire(lock_path)
    if held_by is not None:
        return {"id": run["id"], "status": "locked", "error": f"still running in {locks.describe(held_by)}",
                "started": None, "seconds": 0.0, "host": socket.gethostname(), "pid": os.getpid()}
    try:
        if (Path(run_dir) / SUMMARY_FILE).is_file():
            return {"id": run["id"], "status": "done", "error": None, "started": None, "seconds": 0.0,
                    "host": socket.gethostname(), "pid": os.getpid(), "note": "finished by a process of an earlier launch"}
        return _execute_run(run, Path(run_dir), Path(log_path))
    finally:
        locks.release(lock_path)


def _execute_run(run: dict[str, Any], run_dir: Path, log_path: Path) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    result: dict[str, Any] = {"id": run["id"], "status": "done", "error": None, "started": started,
                              "host": socket.gethostname(), "pid": os.getpid()}
    with open(log_path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            _train(run, run_dir)
            if not (run_dir / SUMMARY_FILE).is_file():
                raise RuntimeError(f"the run finished without writing {SUMMARY_FILE}")
        except Exception as err:  # noqa: BLE001 - any failure of one run is recorded, never fatal
            message = f"{type(err).__name__}: {err}"
            traceback.print_exc()
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / ERROR_FILE).write_text(json.dumps(
                {"error": message, "traceback": traceback.format_exc(), "host": result["host"]}, indent=2) + "\n")
            result.update(status="failed", error=message)
    result["seconds"] = time.time() - started
    return result


def execute_run_packed(run: dict[str, Any]) -> tuple[dict[str, Any], bytes, str]:
    """:func:`execute_run` in a temporary directory; returns the result, the run directory as a
    gzipped tar and the log text. Used by remote workers (Ray), which may not share a file system
    with the machine that launched the sweep."""
    with tempfile.TemporaryDirectory(prefix="memory-bench-run-") as tmp:
        result = execute_run(run, Path(tmp) / "run", Path(tmp) / "log.txt")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            tar.add(Path(tmp) / "run", arcname=".")
        return result, buffer.getvalue(), (Path(tmp) / "log.txt").read_text()


def unpack_run(archive: bytes, run_dir: str | os.PathLike) -> None:
    """Put a packed run directory in place: extracted next to ``run_dir``, then renamed over it."""
    run_dir = Path(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.", dir=run_dir.parent))
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(staging, filter="data")  # refuses absolute paths, links out, devices
    if run_dir.exists():
        shutil.rmtree(run_dir)
    os.replace(staging, run_dir)

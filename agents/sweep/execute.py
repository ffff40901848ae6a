"""Run one sweep run in the current process: the function every executor calls in its workers.

A run writes its usual run directory (supervised: :func:`agents.supervised.train`; RL: the
``memory-bench rl`` command, driven through its own parser so the sweep and the command line
accept exactly the same settings). Its stdout/stderr go to a log file. An exception is recorded
as ``error.json`` in the run directory and returned as a ``failed`` result, so one bad run never
stops the others; KeyboardInterrupt and other BaseExceptions propagate (the sweep is stopping).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
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
#: ``memory-bench rl`` options the sweep sets itself.
_RL_RESERVED = ("help", "out", "threads", "no_progress", "resume")
_RL_DICT_OPTIONS = ("env_kw", "cell_kw", "aux_kw")


@functools.lru_cache(maxsize=1)
def _rl_parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """A ``memory-bench`` parser with only the ``rl`` command, and that command's own parser."""
    from agents.rl.cli import add_parser

    parser = argparse.ArgumentParser(prog="memory-bench", add_help=False)
    subparsers = parser.add_subparsers(dest="command")
    add_parser(subparsers)
    return parser, subparsers.choices["rl"]


def _kw_text(value: Any) -> str:
    """A value as ``parse_value`` (the ``K=V`` parser of the CLI) reads it back unchanged."""
    return repr(value) if isinstance(value, str) else json.dumps(value)


def rl_argv(settings: dict[str, Any], out: str | os.PathLike | None = None) -> list[str]:
    """``memory-bench rl`` arguments for an RL run's settings, checked with that command's parser.

    Raises ValueError for an unknown setting or a value the parser rejects.
    """
    parser, rl = _rl_parser()
    actions = {a.dest: a for a in rl._actions}  # noqa: SLF001 - argparse has no public list of options
    allowed = sorted(set(actions) - set(_RL_RESERVED))
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise ValueError(f"unknown RL setting(s) {', '.join(unknown)}: allowed are {', '.join(allowed)}")
    argv = ["rl"]
    for dest, value in settings.items():
        flag = actions[dest].option_strings[-1]
        if dest in _RL_DICT_OPTIONS:
            if not isinstance(value, dict):
                raise ValueError(f"{dest}={value!r} must be a mapping")
            argv += [item for k, v in value.items() for item in (flag, f"{k}={_kw_text(v)}")]
        elif isinstance(actions[dest], argparse._StoreTrueAction):  # noqa: SLF001
            if not isinstance(value, bool):
                raise ValueError(f"{dest}={value!r} must be true or false")
            argv += [flag] if value else []
        elif dest == "net_arch" and isinstance(value, list):
            argv += [flag, ",".join(map(str, value)) or "none"]
        elif value is not None:
            argv += [flag, str(value)]
    argv += ["--no-progress", "--threads", "1"] + (["--out", str(out)] if out is not None else [])
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            parser.parse_args(argv)
    except SystemExit:
        message = stderr.getvalue().strip().splitlines()
        raise ValueError(message[-1] if message else f"memory-bench {' '.join(argv)} was rejected") from None
    return argv


def _train_supervised(config: dict[str, Any], out: Path) -> None:
    from agents.supervised.trainer import TrainConfig, TrainingDiverged, train

    try:
        train(TrainConfig.from_dict(config), out_dir=out, progress=False)
    except TrainingDiverged as err:  # summary.json says "diverged": a result, not a crash
        print(f"diverged: {err}")


def _train_rl(settings: dict[str, Any], out: Path) -> None:
    parser, _ = _rl_parser()
    args = parser.parse_args(rl_argv(settings, out))
    code = args.run(args)
    if code:
        raise RuntimeError(f"memory-bench rl exited with status {code}")


def execute_run(
    run: dict[str, Any], run_dir: str | os.PathLike, log_path: str | os.PathLike, lock_path: str | os.PathLike | None = None
) -> dict[str, Any]:
    """Train ``run`` (a :class:`~agents.sweep.spec.RunSpec` dict) into ``run_dir``.

    Whatever is at ``run_dir`` is removed first (a run left half-written by a crash is redone from
    scratch). One torch thread per run: a sweep gets its parallelism from running many runs.
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
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    result: dict[str, Any] = {"id": run["id"], "status": "done", "error": None, "started": started,
                              "host": socket.gethostname(), "pid": os.getpid()}
    with open(log_path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            if run["harness"] == "supervised":
                _train_supervised(run["config"], run_dir)
            else:
                _train_rl(run["config"], run_dir)
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

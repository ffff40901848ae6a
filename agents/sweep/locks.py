"""Per-run lock files: which process is running a run of a sweep.

A worker that starts a run writes ``locks/<run id>.lock`` (JSON: pid, host, the process's start
time where ``/proc`` has it, when it started) and removes it when the run ends. A relaunch skips
the runs whose lock names a process that is still alive (a worker of an earlier launch that was
not stopped, or a sweep started in another way), and takes over the locks of dead processes (a
killed worker leaves its lock behind). A lock from another host cannot be checked and counts as
alive. The process start time tells a live holder from an unrelated process that was given the
same pid later.

Two launches never take over the same stale lock at once: a sweep directory is held by one
sweep process at a time (``runner._lock``), and live holders are never taken over.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any


def process_start(pid: int) -> str | None:
    """A token for when process ``pid`` started (``/proc/<pid>/stat`` field 22), None where it
    cannot be read (no such process, or no ``/proc``)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def pid_alive(pid: int) -> bool:
    """True if a process ``pid`` exists on this host and has not ended (zombies have ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: os.kill is all there is
    return text[text.rindex(")") + 2:].split()[0] not in ("Z", "X")


def _read(path: Path) -> dict[str, Any] | None:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and isinstance(info.get("pid"), int) else None


def holder(path: str | os.PathLike) -> dict[str, Any] | None:
    """The lock's content if a live process holds it, else None (no lock, unreadable, or stale)."""
    info = _read(Path(path))
    if info is None:
        return None
    if info.get("host") != socket.gethostname():
        return info  # cannot be checked from here
    if not pid_alive(info["pid"]):
        return None
    start = info.get("start")
    if start is not None and process_start(info["pid"]) not in (None, start):
        return None  # the pid now belongs to another process
    return info


def describe(info: dict[str, Any]) -> str:
    """``process 123 on host (since 2024-01-01 12:00:00)``."""
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["time"])) if "time" in info else "?"
    return f"process {info['pid']} on {info.get('host', '?')} (since {since})"


def write_lock(path: str | os.PathLike, pid: int | None = None) -> None:
    """Write a lock for ``pid`` (default: this process), replacing any lock at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pid = os.getpid() if pid is None else pid
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "start": process_start(pid),
                               "time": time.time()}) + "\n")
    os.replace(tmp, path)


def acquire(path: str | os.PathLike) -> dict[str, Any] | None:
    """Take the lock at ``path`` for this process. Returns None when taken, or the content of the
    lock of the live process that holds it (which is left alone). A stale lock is replaced."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                               "start": process_start(os.getpid()), "time": time.time()}) + "\n")
    try:
        for _ in range(3):
            try:
                os.link(tmp, path)  # creates the lock with its content, only if there is none
                return None
            except FileExistsError:
                info = holder(path)
                if info is not None:
                    return info
                try:
                    path.unlink()  # stale: take it over
                except FileNotFoundError:
                    pass
        raise RuntimeError(f"could not take the lock {path}")
    finally:
        tmp.unlink(missing_ok=True)


def release(path: str | os.PathLike) -> None:
    """Remove the lock at ``path`` if this process holds it."""
    path = Path(path)
    info = _read(path)
    if info is not None and info["pid"] == os.getpid() and info.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)

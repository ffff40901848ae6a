"""A stopped ``memory-bench sweep`` leaves no worker behind, and a relaunch skips runs that a
live process still holds (its lock file) and takes over the locks of dead ones."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from agents.cli import main as cli_main
from agents.results.runs import read_json
from agents.sweep import SweepDir, expand, run_sweep
from agents.sweep.locks import holder, write_lock

ROOT = Path(__file__).resolve().parents[1]
TINY = {"updates": 3, "eval_every": 3, "eval_batches": 1, "eval_batch_size": 8, "batch_size": 4}

# A copy task (imported by the spawned workers from a temporary directory) that marks each run's
# start with a file named after its worker and, while the "slow" file exists, sleeps at every batch.
HELPERS = '''
import os, time
from pathlib import Path
from memenvs.tasks.copy import CopyTask


class SlowCopy(CopyTask):
    def __init__(self, marker_dir, slow="", **kwargs):
        super().__init__(**kwargs)
        self.marker_dir, self.slow, self.calls = marker_dir, slow, 0

    def sample(self, batch_size, rng):
        self.calls += 1
        if self.calls == 1:
            Path(self.marker_dir, f"{os.getpid()}-{self.kwargs['delay']}").touch()
        if self.slow and os.path.exists(self.slow):
            time.sleep(0.5)
        return super().sample(batch_size, rng)
'''


# `memory-bench` with Python's own SIGINT handler even where the test runs with SIGINT ignored (a
# background job of a non-interactive shell), so that SIGINT means what it means at a terminal.
LAUNCH = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from agents.cli import main
sys.exit(main(sys.argv[1:]))
"""


def slow_spec(markers: Path, slow: Path, updates: int = 3) -> dict:
    task = {"task": "sweep_kill_helpers:SlowCopy",
            "task_kwargs": {"length": 2, "marker_dir": str(markers), "slow": str(slow), "delay": [3, 4]}}
    return {"name": "slow", "seeds": 1, "supervised": {**TINY, "updates": updates, "eval_every": updates},
            "tasks": [task], "cells": [{"cell": "gru", "hidden_size": 8}]}


@pytest.fixture
def helpers(tmp_path, monkeypatch):
    (tmp_path / "sweep_kill_helpers.py").write_text(HELPERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    markers = tmp_path / "markers"
    markers.mkdir()
    return tmp_path, markers


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process from /proc, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (children, their children, ...)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                parents[int(entry.name)] = stat[1]
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """Running (a zombie left for a parent that never reaps it counts as ended)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process trees from /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["TERM", "INT", "KILL"])
def test_a_stopped_sweep_leaves_no_worker_and_a_relaunch_completes_it(helpers, tmp_path, signum):
    module_dir, markers = helpers
    slow = tmp_path / "slow"
    slow.touch()
    spec_path = tmp_path / "slow.yaml"
    spec_path.write_text(yaml.safe_dump(slow_spec(markers, slow, updates=40)))
    out = tmp_path / "sweep"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(module_dir), str(ROOT)])}
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:  # a file, not a pipe: workers left behind would hold a pipe open
        proc = subprocess.Popen([sys.executable, "-c", LAUNCH, "sweep", str(spec_path), "--out", str(out),
                                 "--workers", "2", "--no-progress", "--no-report"],
                                env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 180
        while len(list(markers.iterdir())) < 2:  # both runs are going, one in each worker
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the runs did not start"
            time.sleep(0.2)
        children = descendants(proc.pid)
        workers = {int(p.name.split("-")[0]) for p in markers.iterdir()}
        assert workers <= children and len(workers) == 2
        proc.send_signal(signum)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:  # the test failed before the signal did its work
            for pid in descendants(proc.pid):
                os.kill(pid, signal.SIGKILL)
            proc.kill()
            proc.wait()
    err = log.read_text()
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in children if alive(pid)]
    for pid in left:  # never leave them running
        os.kill(pid, signal.SIGKILL)
    assert not left, f"left behind: {left} of {children}; stderr: {err}"
    if signum != signal.SIGKILL:
        assert proc.returncode == 128 + signum and "relaunch" in err, err
    # The stopped runs were not finished by anyone, nor recorded.
    assert not list(out.glob("runs/*/summary.json")) and not SweepDir(out).executions()

    slow.unlink()
    outcome = run_sweep(spec_path, out=out, workers=2, progress=False, report=False)
    assert len(outcome.executed) == 2 and not outcome.failed and not outcome.locked
    assert all(read_json(p)["status"] == "completed" for p in out.glob("runs/*/summary.json"))
    assert not list((out / "locks").iterdir())


def test_a_run_locked_by_a_live_process_is_skipped_and_taken_over_when_it_dies(helpers, tmp_path, capsys):
    _, markers = helpers
    spec_path = tmp_path / "locked.yaml"
    spec = slow_spec(markers, tmp_path / "never")
    spec_path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "sweep"
    first, second = [run.id for run in expand(spec)]
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        lock = out / "locks" / f"{first}.lock"
        write_lock(lock, sleeper.pid)
        (out / "runs" / first).mkdir(parents=True)
        (out / "runs" / first / "partial.txt").write_text("being written by the other process")

        assert cli_main(["sweep", str(spec_path), "--out", str(out), "--workers", "1", "--no-progress", "--no-report"]) == 1
        captured = capsys.readouterr()
        assert f"run {first} is still running in process {sleeper.pid}" in captured.err
        assert "1 still running elsewhere" in captured.out
        assert SweepDir(out).status(second) == "done" and SweepDir(out).status(first) == "pending"
        assert (out / "runs" / first / "partial.txt").is_file()  # left alone
        assert [e["id"] for e in SweepDir(out).executions()] == [second]
        assert holder(lock)["pid"] == sleeper.pid
    finally:
        sleeper.kill()
        sleeper.wait()
    outcome = run_sweep(spec_path, out=out, workers=1, progress=False, report=False)
    assert outcome.executed == [first] and outcome.skipped == [second] and not outcome.locked
    assert not (out / "runs" / first / "partial.txt").exists() and not lock.exists()


def test_lock_liveness(tmp_path):
    path = tmp_path / "run.lock"
    write_lock(path, os.getpid())
    assert holder(path)["pid"] == os.getpid()
    info = read_json(path)
    # The same pid with another start time is a reused pid: the holder is gone.
    path.write_text(path.read_text().replace(f'"start": "{info["start"]}"', '"start": "1"'))
    if info.get("start") is not None:
        assert holder(path) is None
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    write_lock(path, int(done.stdout))
    assert holder(path) is None  # a dead pid
    assert holder(tmp_path / "missing.lock") is None

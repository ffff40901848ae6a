"""Run a sweep into a directory that can be relaunched until every run is done.

Sweep directory::

    spec.yaml           the spec as loaded (defaults filled in)
    sweep.json          the expanded runs (id, labels, knob, full config of each)
    runs/<id>/          one run directory per run (see agents.results.runs / memory-bench rl),
                        plus error.json when the run failed
    logs/<id>.log       stdout/stderr of the run's last execution
    locks/<id>.lock     the process running the run, while it runs (see agents.sweep.locks)
    executions.jsonl    one line per finished execution: id, status, error, host, pid, times
    report/             written by agents.sweep.report (report.md, report.html, PNGs, results.csv)

A run is finished when its ``summary.json`` exists; relaunching skips those and redoes every
other run from scratch (a directory left half-written by a crash or Ctrl-C is removed first;
failed runs are retried), except runs whose lock names a process that is still alive: those are
left alone and reported (relaunch once that process has ended). A relaunch with a spec that
changes the settings of a finished run is refused, so a sweep directory never mixes two
configurations under one name.

Stopping a sweep (Ctrl-C, SIGTERM, SIGHUP) stops its local workers before it exits (status
128 + signal number from the command line); see :mod:`agents.sweep.executors`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tqdm.auto import tqdm

from agents.results.runs import child_path, read_json, write_json
from agents.sweep.execute import ERROR_FILE, SUMMARY_FILE
from agents.sweep import locks
from agents.sweep.executors import Job, make_executor, stop_on_signals
from agents.sweep.spec import RunSpec, _slug, expand, load_spec

MANIFEST = "sweep.json"
SPEC_COPY = "spec.yaml"
EXECUTIONS = "executions.jsonl"


class SweepDir:
    """The files of a sweep directory (see the module docstring)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    manifest_path = child_path(MANIFEST)
    executions_path = child_path(EXECUTIONS)

    def run_dir(self, run_id: str) -> Path:
        return self.path / "runs" / run_id

    def log_path(self, run_id: str) -> Path:
        return self.path / "logs" / f"{run_id}.log"

    def lock_path(self, run_id: str) -> Path:
        return self.path / "locks" / f"{run_id}.lock"

    @staticmethod
    def is_sweep(path: str | os.PathLike) -> bool:
        return (Path(path) / MANIFEST).is_file()

    def read_manifest(self) -> dict[str, Any]:
        if not self.manifest_path.is_file():
            raise FileNotFoundError(f"{self.path} is not a sweep directory: no {MANIFEST}")
        return read_json(self.manifest_path)

    def runs(self) -> list[RunSpec]:
        return [RunSpec.from_dict(r) for r in self.read_manifest()["runs"]]

    def status(self, run_id: str) -> str:
        """``"done"`` (summary.json exists), ``"failed"`` (error.json) or ``"pending"``."""
        run_dir = self.run_dir(run_id)
        if (run_dir / SUMMARY_FILE).is_file():
            return "done"
        if (run_dir / ERROR_FILE).is_file():
            return "failed"
        return "pending"

    def executions(self) -> list[dict[str, Any]]:
        """The execution log (one dict per finished execution, oldest first)."""
        if not self.executions_path.is_file():
            return []
        return [json.loads(line) for line in self.executions_path.read_text().splitlines() if line.strip()]

    def log_execution(self, result: Mapping[str, Any]) -> None:
        with open(self.executions_path, "a") as f:
            f.write(json.dumps({**result, "finished": time.time()}) + "\n")


@dataclass
class SweepOutcome:
    """What one launch did."""

    path: Path
    total: int
    skipped: list[str] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    #: runs left alone because a live process (e.g. a worker of an earlier launch) holds their lock
    locked: dict[str, str] = field(default_factory=dict)
    report: Path | None = None


def default_sweep_dir(name: str) -> Path:
    return Path("sweeps") / _slug(name)


def _lock(path: Path):
    """Hold an exclusive lock on the sweep directory (released when the process ends, even if killed)."""
    handle = open(path / ".lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ValueError(f"another sweep is running in {path} (it holds {path / '.lock'})") from None
    return handle


def _current_form(run: dict[str, Any]) -> dict[str, Any]:
    """A planned run as this version plans it: its config through today's config class, so a
    field added since (at its default) or an RL key renamed since is not a change of settings."""
    from agents.rl.config import RLConfig, upgrade_config
    from agents.supervised.trainer import TrainConfig

    try:
        if run["harness"] == "supervised":
            config = TrainConfig.from_dict(run["config"]).to_dict()
        else:
            config = RLConfig.from_dict(upgrade_config(run["config"])).to_dict()
    except (ValueError, TypeError):
        return run  # not readable as today's config: compared as written
    return {**run, "config": config}


def prepare(spec: Mapping[str, Any], runs: list[RunSpec], sweep: SweepDir) -> None:
    """Write spec.yaml and sweep.json; refuse a relaunch that changes a finished run's settings."""
    if sweep.manifest_path.is_file():
        old = {r["id"]: _current_form(r) for r in sweep.read_manifest()["runs"]}
        for run in runs:
            before = old.get(run.id)
            if before is not None and before != run.to_dict() and sweep.status(run.id) == "done":
                changed = sorted(k for k in set(before["config"]) | set(run.config)
                                 if before["config"].get(k) != run.config.get(k))
                raise ValueError(
                    f"the spec changes finished run {run.id!r} ({', '.join(changed) or 'its labels'} differ): "
                    f"use another --out, or delete {sweep.run_dir(run.id)} to redo it"
                )
    sweep.path.mkdir(parents=True, exist_ok=True)
    (sweep.path / SPEC_COPY).write_text(yaml.safe_dump(dict(spec), sort_keys=False))
    write_json(sweep.manifest_path, {"name": spec["name"], "scale": spec.get("scale"), "claim": spec.get("claim"),
                                     "report": spec["report"], "not_run": dict(spec.get("not_run") or {}),
                                     "runs": [r.to_dict() for r in runs]})


def plan(runs: list[RunSpec], sweep: SweepDir) -> tuple[list[RunSpec], list[Job]]:
    """Split ``runs`` into the finished ones (skipped) and the jobs to execute (all others:
    never started, half-written, or failed)."""
    skipped = [run for run in runs if sweep.status(run.id) == "done"]
    jobs = [Job(run.to_dict(), sweep.run_dir(run.id), sweep.log_path(run.id), sweep.lock_path(run.id))
            for run in runs if run not in skipped]
    return skipped, jobs


def _locked_message(run_id: str, where: str, sweep: SweepDir) -> str:
    return (f"run {run_id} is still running in {where}: left alone (its lock is {sweep.lock_path(run_id)}); "
            f"relaunch when that process has ended")


def run_sweep(
    spec: str | os.PathLike | Mapping[str, Any],
    out: str | os.PathLike | None = None,
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
    report: bool = True,
) -> SweepOutcome:
    """Expand ``spec`` (a YAML path or the same dict), run every unfinished run, write the report.

    Args:
        spec: see :mod:`agents.sweep.spec`.
        out: the sweep directory (default ``sweeps/<spec name>``); relaunching with the same
            directory continues the sweep.
        executor: ``"local"`` (process pool) or ``"ray"``.
        workers: parallel runs (local: default one per CPU; ray without ``address``: CPUs of
            the local Ray instance).
        address: Ray cluster address (``ray.init(address=...)``).
        progress: a progress bar over runs.
        report: write the report when the runs are done (also after failures).

    Raises:
        ValueError: bad spec, executor or directory (nothing is run).
    """
    spec = load_spec(spec)
    runs = expand(spec)
    executor_obj = make_executor(executor, workers, address)
    sweep = SweepDir(out if out is not None else default_sweep_dir(spec["name"]))
    sweep.path.mkdir(parents=True, exist_ok=True)
    lock = _lock(sweep.path)
    try:
        prepare(spec, runs, sweep)
        outcome = SweepOutcome(sweep.path, len(runs))
        skipped, planned = plan(runs, sweep)
        outcome.skipped = [run.id for run in skipped]
        jobs = []
        for job in planned:
            held_by = locks.holder(job.lock_path) if job.lock_path is not None else None
            if held_by is not None:  # e.g. a worker of an earlier launch that is still going
                outcome.locked[job.run["id"]] = locks.describe(held_by)
                print(_locked_message(job.run["id"], outcome.locked[job.run["id"]], sweep), file=sys.stderr)
                continue
            if job.run_dir.exists():  # half-written by a crash, or failed before: start clean
                shutil.rmtree(job.run_dir)
            jobs.append(job)
        bar = tqdm(total=len(runs), initial=len(outcome.skipped), disable=not progress, unit="run", dynamic_ncols=True,
                   desc=f"sweep {spec['name']}")
        try:
            with stop_on_signals(), contextlib.closing(executor_obj.run(jobs)) as results:
                for result in results:
                    if result["status"] == "locked":
                        outcome.locked[result["id"]] = result["error"]
                        bar.write(_locked_message(result["id"], result["error"].removeprefix("still running in "), sweep),
                                  file=sys.stderr)
                        continue
                    sweep.log_execution(result)
                    outcome.executed.append(result["id"])
                    if result["status"] == "failed":
                        outcome.failed[result["id"]] = result["error"]
                        bar.write(f"run {result['id']} failed: {result['error']}", file=sys.stderr)
                    bar.update(1)
        finally:
            bar.close()
        if report:
            from agents.sweep.report import write_sweep_report

            outcome.report = write_sweep_report(sweep.path)
        return outcome
    finally:
        lock.close()

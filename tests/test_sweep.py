"""Sweeps: spec expansion, local and Ray executors, relaunch after a kill, failed runs, and the
report's statistics against hand-computed values."""

from __future__ import annotations

import base64
import csv
import json
import math
import os
import signal
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agents.cli import main as cli_main
from agents.cli import parse_kwargs
from agents.supervised.runs import read_json, write_json
from agents.sweep import expand, load_spec, run_sweep
from agents.sweep.spec import apply_overrides, apply_scale, scale_names, shipped_specs, spec_path
from agents.sweep.execute import rl_argv
from agents.sweep.report import TIMING_COLUMNS, build_report
from agents.sweep.runner import SweepDir, plan, prepare
from agents.sweep.stats import competition_ranks, largest_solved, mean_interval, t_quantile

ROOT = Path(__file__).resolve().parents[1]
TINY = {"updates": 3, "eval_every": 3, "eval_batches": 1, "eval_batch_size": 8, "batch_size": 4}

# A task module the spawned workers import (written to a temporary directory on sys.path). Its
# copy task leaves one marker file per training run (the trainer's build step samples exactly one
# batch of 2 sequences per run) and, at its first training batch (third sample call, after the run
# directory holds the update-0 evaluation), can kill the sweep process or raise.
HELPERS = '''
import os, signal, time
from pathlib import Path
from memenvs.tasks.copy import CopyTask


class MarkedCopy(CopyTask):
    def __init__(self, marker_dir, mode="none", trigger="", **kwargs):
        super().__init__(**kwargs)
        self.marker_dir, self.mode, self.trigger, self.calls = marker_dir, mode, trigger, 0

    def sample(self, batch_size, rng):
        self.calls += 1
        if self.calls == 1 and batch_size == 2:
            Path(self.marker_dir, f"{self.kwargs['delay']}-{os.getpid()}-{time.time_ns()}").touch()
        if self.calls == 3 and self.mode == "raise":
            raise RuntimeError("injected failure at the first training batch")
        if self.calls == 3 and self.mode == "kill" and os.path.exists(self.trigger):
            os.remove(self.trigger)
            os.kill(os.getppid(), signal.SIGKILL)  # the sweep process dies mid-run...
            os._exit(3)                            # ...and so does this worker
        return super().sample(batch_size, rng)
'''


def two_run_spec(name: str = "two") -> dict:
    return {
        "name": name,
        "seeds": 1,
        "supervised": TINY,
        "tasks": [{"task": "copy", "task_kwargs": {"delay": 3, "length": 2}}],
        "cells": [{"cell": "gru", "hidden_size": 8}, {"cell": "lstm", "hidden_size": 8}],
    }


def without_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows]


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "sweep"
    outcome = run_sweep(two_run_spec(), out=out, workers=1, progress=False)  # one worker: less start-up CPU
    return out, outcome


@pytest.fixture
def helpers(tmp_path, monkeypatch):
    """The helper task module importable here and in spawned workers; the marker directory."""
    (tmp_path / "sweep_helpers.py").write_text(HELPERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    markers = tmp_path / "markers"
    markers.mkdir()
    return tmp_path, markers


# --------------------------------------------------------------------------------------------
# Statistics against independent facts
# --------------------------------------------------------------------------------------------


def test_t_quantile_matches_closed_forms_and_normal_limit():
    for p in (0.9, 0.975, 0.995):
        assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-6)  # Cauchy
        assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-6)
        assert t_quantile(p, 20000) == pytest.approx(statistics.NormalDist().inv_cdf(p), abs=1e-3)
    with pytest.raises(ValueError, match="p=0.4"):
        t_quantile(0.4, 3)


def test_mean_interval_hand_computed():
    # values 1, 2, 3: mean 2, s = 1, t(0.975, 2) = 4.302653 -> half-width 4.302653 / sqrt(3)
    interval = mean_interval([1.0, 2.0, 3.0])
    assert interval.mean == pytest.approx(2.0)
    assert interval.half_width == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    # 90% with 4 values 0.2, 0.4, 0.4, 0.6: s = sqrt(0.08/3), t(0.95, 3) = 2.353363
    interval = mean_interval([0.2, 0.4, 0.4, 0.6], confidence=0.9)
    assert interval.half_width == pytest.approx(2.353363 * math.sqrt(0.08 / 3) / 2, rel=1e-5)
    assert mean_interval([0.5]).half_width is None and mean_interval([0.5]).text() == "0.5"
    assert mean_interval([float("nan")]).mean is None


def test_ranks_and_largest_solved():
    assert competition_ranks({"a": 0.9, "b": 0.5, "c": 0.9, "d": None}) == {"a": 1, "b": 3, "c": 1, "d": None}
    assert competition_ranks({"a": 0.1, "b": 0.5}, higher_is_better=False) == {"a": 1, "b": 2}
    assert largest_solved({10: 0.95, 20: 0.91, 40: 0.5}, 0.9) == 20
    assert largest_solved({10: 0.5, 20: 0.95, 40: None}, 0.9) == 20  # credited with the longest solved
    assert largest_solved({10: 0.5}, 0.9) is None


# --------------------------------------------------------------------------------------------
# Spec expansion
# --------------------------------------------------------------------------------------------


def test_expand_grid_expressions_and_overrides():
    spec = {
        "name": "grid",
        "seeds": [0, 5],
        "supervised": {"updates": 40, "batch_size": 4},
        "tasks": [{"task": "copy", "task_kwargs": {"delay": [10, 30], "length": 2, "score": ["all", "recall"]}},
                  {"task": "adding", "label": "add", "task_kwargs": {"seq_len": 20}}],
        "cells": [
            {"cell": "gru", "hidden_size": 8, "per_task": {"copy": {"clip": 0.5}}},
            {"label": "chrono", "cell": "lstm", "hidden_size": 8, "only": ["copy"],
             "cell_kwargs": {"init": "chrono", "t_max": "=1.5 * delay"},
             "supervised": {"aux": "reconstruction", "aux_pretrain_updates": "=updates // 10"}},
        ],
    }
    runs = expand(spec)
    # copy: 2 delays x 2 score modes x 2 cells x 2 seeds; adding: gru only x 2 seeds
    assert len(runs) == 2 * 2 * 2 * 2 + 2
    assert len({r.id for r in runs}) == len(runs)
    chrono = [r for r in runs if r.cell == "chrono"]
    assert {r.config["cell_kwargs"]["t_max"] for r in chrono} == {15.0, 45.0}
    assert all(r.config["cell_kwargs"]["t_max"] == 1.5 * r.config["task_kwargs"]["delay"] for r in chrono)
    assert all(r.config["aux_pretrain_updates"] == 4 for r in chrono)
    assert all(r.task == "copy" for r in chrono)
    gru = [r for r in runs if r.cell == "gru"]
    assert {r.config["clip"] for r in gru if r.task == "copy"} == {0.5}
    assert {r.config["clip"] for r in gru if r.task == "add"} == {1.0}  # TrainConfig default
    assert {r.seed for r in runs} == {0, 5} and all(r.config["seed"] == r.seed for r in runs)
    copy_run = next(r for r in runs if r.task == "copy")
    assert copy_run.knob == "delay" and copy_run.knob_value in (10, 30)
    assert copy_run.variant == f"copy delay={copy_run.knob_value} score={copy_run.config['task_kwargs']['score']}"
    assert copy_run.group == f"copy score={copy_run.config['task_kwargs']['score']}"
    assert next(r for r in runs if r.task == "add").knob is None  # seq_len is not swept


def test_expand_rl_settings_round_trip_through_the_rl_parser():
    spec = {"seeds": 1, "rl": {"timesteps": 64, "n_envs": 2, "net_arch": [], "separate_cells": True},
            "tasks": [{"task": "TMaze-v0", "harness": "rl", "task_kwargs": {"corridor_length": [3, 6]}}],
            "cells": [{"cell": "gru", "hidden_size": 8, "cell_kwargs": {"init": "chrono", "t_max": "=2 * corridor_length"}}]}
    runs = expand(spec)
    assert [r.knob_value for r in runs] == [3, 6] and runs[0].knob == "corridor_length"
    argv = rl_argv(runs[1].config)
    values = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}
    assert values["--timesteps"] == "64" and values["--net-arch"] == "none" and "--separate-cells" in argv
    cell_kw = [argv[i + 1] for i, a in enumerate(argv) if a == "--cell-kw"]
    assert parse_kwargs(cell_kw, "--cell-kw") == {"init": "chrono", "t_max": 12}
    with pytest.raises(ValueError, match="unknown RL setting.*gama"):
        expand({**spec, "rl": {"gama": 0.9}})
    with pytest.raises(ValueError, match="--timesteps"):
        expand({**spec, "rl": {"timesteps": "many"}})


@pytest.mark.parametrize(
    "change, message",
    [
        ({"tasks": [{"task": "copy", "delays": [1]}]}, "unknown key.*delays"),
        ({"cells": [{"cell": "no-such-cell"}]}, "unknown cell 'no-such-cell'"),
        ({"cells": [{"cell": "gru", "cell_kwargs": {"x": "=2 * dely"}}]}, "unknown name 'dely'"),
        ({"cells": [{"cell": "gru", "cell_kwargs": {"x": "=__import__('os')"}}]}, "only numbers"),
        ({"supervised": {"updates": 0}}, "updates=0"),
        ({"seeds": 0}, "seeds=0"),
        ({"cells": [{"cell": "gru"}, {"cell": "gru"}]}, "label.*gru.*twice"),
        ({"report": {"which": "last"}}, "report.which='last'"),
    ],
)
def test_bad_specs_name_the_problem(change, message):
    spec = {**two_run_spec(), **change}
    with pytest.raises(ValueError, match=message):
        expand(spec)


def test_load_spec_from_yaml_and_shipped_specs(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in two_run_spec().items() if k != "name"}))
    spec = load_spec(path)
    assert spec["name"] == "mine" and spec["seeds"] == [0]
    assert set(shipped_specs()) >= {"nru", "chrono", "glstm", "kaf", "aux", "cross"}
    for name in shipped_specs():  # every shipped spec expands at every scale (names, kwargs, expressions)
        written = load_spec(name)
        assert load_spec(spec_path(name)) == written
        assert "smoke" in scale_names(written), name  # every shipped spec has its wiring check
        for scale in [None, *scale_names(written)]:
            assert len(expand(apply_scale(written, scale))) > 0, (name, scale)
    with pytest.raises(ValueError, match="glstm, kaf, nru"):
        load_spec("no-such-spec")


def test_scales_patch_entries_and_force_settings_on_every_run():
    spec = {**two_run_spec(), "scales": {
        "tiny": {"seeds": 2, "override": {"supervised": {"updates": 3}, "hidden_size": 5},
                 "tasks": {"copy": {"task_kwargs": {"delay": 4}}}, "cells": {"gru": None}},
    }}
    spec["cells"][1]["per_task"] = {"copy": {"updates": 50, "hidden_size": 40}}
    runs = expand(apply_scale(load_spec(spec), "tiny"))
    assert {r.cell for r in runs} == {"lstm"} and [r.seed for r in runs] == [0, 1]
    for r in runs:  # the override wins over the per-task block
        assert (r.config["updates"], r.config["hidden_size"], r.config["task_kwargs"]["delay"]) == (3, 5, 4)
    assert [r.config["updates"] for r in expand(load_spec(spec))] == [TINY["updates"], 50]  # as written
    with pytest.raises(ValueError, match="scale='huge'.*allowed are tiny"):
        apply_scale(load_spec(spec), "huge")
    with pytest.raises(ValueError, match="unknown label"):
        apply_scale(load_spec({**spec, "scales": {"x": {"cells": {"nru": None}}}}), "x")


def test_set_shrinks_every_run_per_task_blocks_included():
    spec = two_run_spec()
    spec["cells"][0]["per_task"] = {"copy": {"updates": 50}}
    runs = expand(load_spec(apply_overrides(load_spec(spec), ["supervised.updates=5", "hidden_size=3", "seeds=2"])))
    assert {(r.config["updates"], r.config["hidden_size"]) for r in runs} == {(5, 3)} and len(runs) == 4


# --------------------------------------------------------------------------------------------
# Report aggregation on hand-written results
# --------------------------------------------------------------------------------------------


def test_report_statistics_against_hand_computed_values(tmp_path):
    spec = load_spec({
        "name": "hand", "seeds": 3, "supervised": TINY,
        "tasks": [{"task": "copy", "task_kwargs": {"delay": [3, 6, 12], "length": 2}}],
        "cells": [{"label": "A", "cell": "gru"}, {"label": "B", "cell": "lstm"}, {"label": "C", "cell": "rnn"}],
    })
    runs = expand(spec)
    sweep = SweepDir(tmp_path / "hand")
    prepare(spec, runs, sweep)
    scores = {  # (cell, delay) -> scores of seeds 0, 1, 2
        ("A", 3): [0.9, 1.0, 0.95], ("A", 6): [0.92, 0.92, 0.92], ("A", 12): [0.1, 0.2, 0.3],
        ("B", 3): [0.7, 0.8, 0.9], ("B", 6): [0.8, 0.9, 0.85], ("B", 12): [0.5, 0.6, 0.7],
        ("C", 3): [0.0, 0.1, 0.2], ("C", 6): [0.0, 0.0, 0.0], ("C", 12): [0.2, 0.2, 0.2],
    }
    for run in runs:
        run_dir = sweep.run_dir(run.id)
        run_dir.mkdir(parents=True)
        score = scores[(run.cell, run.knob_value)][run.seed]
        if (run.cell, run.knob_value, run.seed) == ("C", 6, 2):  # a failed seed: excluded from C's mean
            write_json(run_dir / "error.json", {"error": "RuntimeError: boom"})
            continue
        write_json(run_dir / "summary.json", {"status": "completed", "updates_per_second": 10.0 + run.seed,
                                              "final": {"update": 3, "metrics": {"score": score, "ce": 1 - score}},
                                              "best": {"metrics": {"score": score}}})
    report = build_report(sweep.path)
    cohort = report.cohorts[("copy delay=3", "A")]
    assert cohort.metric.mean == pytest.approx(0.95)
    assert cohort.metric.half_width == pytest.approx(4.302653 * 0.05 / math.sqrt(3), rel=1e-5)
    assert cohort.speed == pytest.approx(11.0)
    failed = report.cohorts[("copy delay=6", "C")]
    assert failed.metric.n == 2 and failed.seeds_text() == "2/3 (1 failed)"
    board = report.leaderboards["copy delay=12"]
    assert [(r["rank"], r["cell"]) for r in board] == [("1", "B"), ("2", "A"), ("2", "C")]  # A and C tie at 0.2
    assert board[0]["seeds"] == "3/3" and board[0]["updates/s"] == "11"
    overview = {r["cell"]: r for r in report.overview}
    assert [overview["A"][f"copy delay={d}"] for d in (3, 6, 12)] == ["1", "1", "2"]
    assert overview["A"]["top 2 on every task"] == "yes" and overview["B"]["top 2 on every task"] == "yes"
    assert overview["C"]["top 2 on every task"] == "no"  # rank 3 on delays 3 and 6
    assert overview["C"]["mean rank"] == f"{(3 + 3 + 2) / 3:.2f}"
    scaling = {r["cell"]: r["copy (max delay)"] for r in report.scaling}
    assert scaling == {"A": "6", "B": "none", "C": "none"}  # A: means 0.95, 0.92, 0.2 vs 0.9
    # ranking by a loss metric flips the order
    manifest = read_json(sweep.manifest_path)
    write_json(sweep.manifest_path, {**manifest, "report": {**manifest["report"], "metric": "ce", "threshold": 0.1}})
    report = build_report(sweep.path)
    assert [r["cell"] for r in report.leaderboards["copy delay=3"]] == ["A", "B", "C"]
    assert report.leaderboards["copy delay=3"][0]["score"] == mean_interval([0.9, 1.0, 0.95]).text()
    assert {r["cell"]: r["copy (max delay)"] for r in report.scaling}["C"] == "12"  # threshold 0.1


def test_relaunch_refuses_a_spec_that_changes_a_finished_run(tmp_path):
    spec = load_spec(two_run_spec())
    runs = expand(spec)
    sweep = SweepDir(tmp_path / "s")
    prepare(spec, runs, sweep)
    sweep.run_dir(runs[0].id).mkdir(parents=True)
    write_json(sweep.run_dir(runs[0].id) / "summary.json", {"status": "completed"})
    changed = load_spec({**two_run_spec(), "supervised": {**TINY, "lr": 0.01}})
    with pytest.raises(ValueError, match=f"changes finished run '{runs[0].id}'.*lr"):
        prepare(changed, expand(changed), sweep)
    prepare(spec, runs, sweep)  # the same spec is fine


# --------------------------------------------------------------------------------------------
# Executors, relaunch, failures (real tiny runs)
# --------------------------------------------------------------------------------------------


def test_local_sweep_writes_the_report(local_sweep):
    out, outcome = local_sweep
    assert outcome.total == 2 and sorted(outcome.executed) == sorted(r.id for r in SweepDir(out).runs())
    assert not outcome.failed and not outcome.skipped
    report_dir = out / "report"
    # The leaderboard equals the runs' own final scores, ranked by hand.
    finals = {r.cell: read_json(out / "runs" / r.id / "summary.json")["final"]["metrics"]["score"] for r in SweepDir(out).runs()}
    board = build_report(out).leaderboards["copy"]
    expected_order = sorted(finals, key=lambda c: -finals[c])
    assert [r["cell"] for r in board][0] == expected_order[0]
    for row in board:
        assert row["score (final, mean ± 95% CI)"] == mean_interval([finals[row["cell"]]]).text()
        assert float(row["updates/s"]) > 0
    md = (report_dir / "report.md").read_text()
    assert "## Top 2 on every task" in md and "### copy" in md and "![curves_copy](curves_copy.png)" in md
    page = (report_dir / "report.html").read_text()
    images = page.split('src="data:image/png;base64,')[1:]
    assert images and all(base64.b64decode(i.split('"')[0])[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    with open(report_dir / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["cell"], r["status"]) for r in rows} == {("gru", "done"), ("lstm", "done")}
    # A relaunch runs nothing; `memory-bench report SWEEP_DIR` rewrites the sweep report.
    again = run_sweep(two_run_spec(), out=out, workers=1, progress=False, report=False)
    assert again.executed == [] and len(again.skipped) == 2
    assert cli_main(["report", str(out), "--out", str(out / "again")]) == 0
    assert (out / "again" / "report.md").read_text() == md


def test_ray_executor_matches_the_local_report(local_sweep, tmp_path):
    ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'memory-bench[ray]' to run this test")
    local_dir, _ = local_sweep
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        outcome = run_sweep(two_run_spec(), out=tmp_path / "ray", executor="ray", progress=False)
    finally:
        ray.shutdown()
    assert len(outcome.executed) == 2 and not outcome.failed
    local, remote = build_report(local_dir), build_report(tmp_path / "ray")
    assert remote.overview == local.overview
    assert {k: without_timing(v) for k, v in remote.leaderboards.items()} == {
        k: without_timing(v) for k, v in local.leaderboards.items()}
    assert [(r.run.id, r.metric, r.curve) for r in remote.results] == [(r.run.id, r.metric, r.curve) for r in local.results]
    assert {e["host"] for e in SweepDir(tmp_path / "ray").executions()}  # results came back through Ray


def test_killed_sweep_resumes_without_redoing_finished_runs(helpers, tmp_path):
    module_dir, markers = helpers
    trigger = tmp_path / "armed"
    trigger.touch()
    marked = {"task": "sweep_helpers:MarkedCopy", "task_kwargs": {"length": 2, "marker_dir": str(markers)}}
    spec = {"name": "killed", "seeds": 1, "supervised": TINY,
            "tasks": [{**marked, "label": "first", "task_kwargs": {**marked["task_kwargs"], "delay": 3}},
                      {**marked, "label": "second",
                       "task_kwargs": {**marked["task_kwargs"], "delay": 4, "mode": "kill", "trigger": str(trigger)}}],
            "cells": [{"cell": "gru", "hidden_size": 8}]}
    spec_path = tmp_path / "killed.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "sweep"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(module_dir), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-m", "agents.cli", "sweep", str(spec_path), "--out", str(out), "--workers", "1",
                           "--no-progress"], env=env, capture_output=True, text=True, timeout=300)
    # The first run finished, then the sweep was killed in the middle of the second.
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    first, second = [r.id for r in SweepDir(out).runs()]
    assert (out / "runs" / first / "summary.json").is_file()
    assert (out / "runs" / second / "metrics.csv").is_file() and not (out / "runs" / second / "summary.json").exists()
    assert len(list(markers.iterdir())) == 2 and not trigger.exists()
    summary_before = (out / "runs" / first / "summary.json").read_bytes()
    mtime_before = (out / "runs" / first / "summary.json").stat().st_mtime_ns

    outcome = run_sweep(spec_path, out=out, workers=1, progress=False)
    assert outcome.skipped == [first] and outcome.executed == [second] and not outcome.failed
    # Executions: the first run once (before the kill), the second twice (killed, then redone).
    assert sorted(p.name.split("-")[0] for p in markers.iterdir()) == ["3", "4", "4"]
    assert [e["id"] for e in SweepDir(out).executions()] == [first, second]
    assert (out / "runs" / first / "summary.json").read_bytes() == summary_before
    assert (out / "runs" / first / "summary.json").stat().st_mtime_ns == mtime_before
    # The half-written run was redone from scratch: one evaluation row per evaluation, no leftovers.
    with open(out / "runs" / second / "metrics.csv", newline="") as f:
        assert [int(r["update"]) for r in csv.DictReader(f)] == [0, 3]
    assert read_json(out / "runs" / second / "summary.json")["status"] == "completed"


def test_failed_run_is_reported_and_the_others_finish(helpers, tmp_path):
    _, markers = helpers
    spec = {"name": "failing", "seeds": 1, "supervised": TINY,
            "rl": {"timesteps": 16, "n_envs": 2, "n_steps": 8, "eval_episodes": 4, "device": "cpu", "net_arch": []},
            "tasks": [{"task": "sweep_helpers:MarkedCopy", "label": "bad",
                       "task_kwargs": {"delay": 3, "length": 2, "marker_dir": str(markers), "mode": "raise"}},
                      {"task": "copy", "task_kwargs": {"delay": 3, "length": 2}},
                      {"task": "TMaze-v0", "harness": "rl", "task_kwargs": {"corridor_length": 2}}],
            "cells": [{"cell": "gru", "hidden_size": 8}]}
    out = tmp_path / "sweep"
    outcome = run_sweep(spec, out=out, workers=1, progress=False)
    bad = "bad-gru-s0"
    assert set(outcome.executed) == {bad, "copy-gru-s0", "TMaze-v0-gru-s0"}
    assert outcome.failed == {bad: "RuntimeError: injected failure at the first training batch"}
    assert read_json(out / "runs" / bad / "error.json")["error"] == outcome.failed[bad]
    assert "Traceback" in (out / "logs" / f"{bad}.log").read_text()
    report = build_report(out)
    assert report.leaderboards["bad"][0]["rank"] == "–" and report.leaderboards["bad"][0]["seeds"] == "0/1 (1 failed)"
    assert {r["cell"]: r["top 2 on every task"] for r in report.overview} == {"gru": "no"}
    assert "`bad-gru-s0`: RuntimeError: injected failure" in (out / "report" / "report.md").read_text()
    # The RL run's score is its final mean return normalised by the T-maze references (0 and 1).
    rl_summary = read_json(out / "runs" / "TMaze-v0-gru-s0" / "summary.json")
    rl_row = report.leaderboards["TMaze-v0"][0]
    assert rl_row["score (final, mean ± 95% CI)"] == mean_interval([rl_summary["eval"]["mean_return"]]).text()
    assert float(rl_row["env-steps/s"]) == pytest.approx(rl_summary["fps"], rel=1e-2)
    # A relaunch would retry only the failed run.
    skipped, jobs = plan(expand(spec), SweepDir(out))
    assert [j.run["id"] for j in jobs] == [bad] and sorted(r.id for r in skipped) == ["TMaze-v0-gru-s0", "copy-gru-s0"]


def test_sweep_cli_dry_run_and_bad_executor(tmp_path, capsys):
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(two_run_spec()))
    assert cli_main(["sweep", str(path), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "2 runs" in printed and "copy-gru-s0" in printed and "total: 6 supervised updates" in printed
    assert cli_main(["sweep", str(path), "--out", str(tmp_path / "x"), "--executor", "local", "--address", "auto"]) == 2
    assert "address='auto' only applies to the ray executor" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()

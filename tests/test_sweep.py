"""Sweeps: spec expansion, local and Ray executors, relaunch after a kill, failed runs, and the
report's statistics against hand-computed values."""

from __future__ import annotations

import base64
import csv
import json
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
from agents.results.runs import read_json, write_json
from agents.sweep import expand, load_spec, run_sweep
from agents.sweep.spec import (
    apply_overrides,
    apply_scale,
    scale_names,
    shipped_specs,
    spec_path,
    tasks_without_data,
    with_available_data,
)
from agents.sweep.execute import execute_run
from agents.sweep.report import TIMING_COLUMNS, build_report, curve_estimates, write_sweep_report
from agents.sweep.runner import SweepDir, plan, prepare
from agents.results.stats import competition_ranks, largest_solved

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


def test_expand_rl_settings_are_rl_configs():
    from agents.rl import RLConfig

    spec = {"seeds": 1, "rl": {"timesteps": 64, "n_envs": 2, "net_arch": [], "separate_cells": True},
            "tasks": [{"task": "TMaze-v0", "harness": "rl", "task_kwargs": {"corridor_length": [3, 6]}}],
            "cells": [{"cell": "gru", "hidden_size": 8, "cell_kwargs": {"init": "chrono", "t_max": "=2 * corridor_length"}}]}
    runs = expand(spec)
    assert [r.knob_value for r in runs] == [3, 6] and runs[0].knob == "corridor_length"
    config = runs[1].config
    assert config == RLConfig.from_dict(config).to_dict()  # the whole RLConfig, defaults included
    assert config["task"] == "TMaze-v0" and config["task_kwargs"] == {"corridor_length": 6}
    assert config["timesteps"] == 64 and config["net_arch"] == [] and config["separate_cells"] is True
    assert config["cell_kwargs"] == {"init": "chrono", "t_max": 12} and config["hidden_size"] == 8
    assert config["seed"] == 0 and config["eval_episodes"] == RLConfig().eval_episodes
    with pytest.raises(ValueError, match="unknown RLConfig field.*gama.*allowed are"):
        expand({**spec, "rl": {"gama": 0.9}})
    with pytest.raises(ValueError, match="timesteps='many'"):
        expand({**spec, "rl": {"timesteps": "many"}})
    with pytest.raises(ValueError, match="set task_kwargs in the task/cell entries"):
        expand({**spec, "rl": {"task_kwargs": {}}})


def test_the_sweep_runs_an_rl_run_through_train_rl(tmp_path, monkeypatch):
    import agents.rl.trainer
    from agents.rl import RLConfig

    spec = {"seeds": 1, "rl": {"timesteps": 32, "n_envs": 2, "n_steps": 16, "eval_episodes": 2, "device": "cpu", "net_arch": [4]},
            "tasks": [{"task": "TMaze-v0", "harness": "rl", "task_kwargs": {"corridor_length": 2}}],
            "cells": [{"cell": "gru", "hidden_size": 4}]}
    (run,) = expand(spec)
    calls = []
    real = agents.rl.trainer.train_rl

    def spy(config, out_dir=None, resume=False, progress=True):
        calls.append((config, resume, progress))
        return real(config, out_dir=out_dir, resume=resume, progress=progress)

    monkeypatch.setattr(agents.rl.trainer, "train_rl", spy)
    result = execute_run(run.to_dict(), tmp_path / "run", tmp_path / "log.txt")
    assert result["status"] == "done", result["error"]
    assert calls == [(RLConfig.from_dict(run.config), False, False)]
    assert read_json(tmp_path / "run" / "config.json") == run.config
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["timesteps"] == 32 and summary["reference"] is not None and summary["score"] is not None
    # stopped after its checkpoint (no summary): a relaunch continues it with resume=True
    (tmp_path / "run" / "summary.json").unlink()
    calls.clear()
    longer = {**run.to_dict(), "config": {**run.config, "timesteps": 64}}
    assert execute_run(longer, tmp_path / "run", tmp_path / "log.txt")["status"] == "done"
    assert [resume for _, resume, _ in calls] == [True]
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["timesteps"] == 64 and summary["resumed_from_timesteps"] == 32


def test_a_plan_written_before_rlconfig_still_runs(tmp_path):
    # sweep.json of a sweep planned by the old code: memory-bench rl option names
    old = {"env": "TMaze-v0", "env_kw": {"corridor_length": 2}, "cell": "gru", "cell_kw": {}, "hidden_size": 4,
           "timesteps": 32, "n_envs": 2, "n_steps": 16, "eval_episodes": 2, "device": "cpu", "net_arch": "4", "seed": 0}
    run = {"id": "old", "harness": "rl", "config": old}
    result = execute_run(run, tmp_path / "run", tmp_path / "log.txt")
    assert result["status"] == "done", result["error"]
    config = read_json(tmp_path / "run" / "config.json")
    assert config["task"] == "TMaze-v0" and config["task_kwargs"] == {"corridor_length": 2} and config["net_arch"] == [4]


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
            scaled = apply_scale(written, scale)
            missing = tasks_without_data(scaled)  # only the datasets a user provides may be missing
            assert set(missing) <= {"stanford-dogs", "dbpedia"}, (name, scale, missing)
            assert len(expand(with_available_data(scaled))) > 0, (name, scale)
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


def hand_sweep(path: Path, spec: dict, summary_of) -> SweepDir:
    """A prepared sweep whose runs hold the summaries ``summary_of(run)`` gives (None: a failed run)."""
    spec = load_spec(spec)
    runs = expand(spec)
    sweep = SweepDir(path)
    prepare(spec, runs, sweep)
    for run in runs:
        run_dir = sweep.run_dir(run.id)
        run_dir.mkdir(parents=True)
        summary = summary_of(run)
        if summary is None:
            write_json(run_dir / "error.json", {"error": "RuntimeError: boom"})
        else:
            write_json(run_dir / "summary.json", summary)
    return sweep


def parse_estimate(text: str) -> tuple[float, float, float]:
    """``"0.95 [0.9, 1]"`` -> (0.95, 0.9, 1.0); ``"0.5"`` (one seed) -> (0.5, 0.5, 0.5)."""
    point, _, rest = text.partition(" [")
    low, high = rest.rstrip("]").split(", ") if rest else (point, point)
    return float(point), float(low), float(high)


def test_report_statistics_against_hand_computed_values(tmp_path):
    scores = {  # (cell, delay) -> scores of seeds 0, 1, 2
        ("A", 3): [0.9, 1.0, 0.95], ("A", 6): [0.92, 0.92, 0.92], ("A", 12): [0.1, 0.2, 0.3],
        ("B", 3): [0.7, 0.8, 0.9], ("B", 6): [0.8, 0.9, 0.85], ("B", 12): [0.5, 0.6, 0.7],
        ("C", 3): [0.0, 0.1, 0.2], ("C", 6): [0.0, 0.0, 0.0], ("C", 12): [0.2, 0.2, 0.2],
    }

    def summary(run):
        score = scores[(run.cell, run.knob_value)][run.seed]
        if (run.cell, run.knob_value, run.seed) == ("C", 6, 2):  # a failed seed: excluded from C's IQM
            return None
        return {"status": "completed", "updates_per_second": 10.0 + run.seed,
                "final": {"update": 3, "metrics": {"score": score, "ce": 1 - score}}, "best": {"metrics": {"score": score}}}

    sweep = hand_sweep(tmp_path / "hand", {
        "name": "hand", "seeds": 3, "supervised": TINY,
        "tasks": [{"task": "copy", "task_kwargs": {"delay": [3, 6, 12], "length": 2}}],
        "cells": [{"label": "A", "cell": "gru"}, {"label": "B", "cell": "lstm"}, {"label": "C", "cell": "rnn"}],
    }, summary)
    report = build_report(sweep.path)
    # With 3 seeds the IQM trims nothing: it is the mean; the bootstrap interval lies within [min, max].
    estimate = report.cohorts[("copy delay=3", "A")].metric
    assert estimate.point == pytest.approx(statistics.mean([0.9, 1.0, 0.95])) and estimate.n == 3
    assert 0.9 <= estimate.low < estimate.point < estimate.high <= 1.0
    constant = report.cohorts[("copy delay=6", "A")].metric  # equal seeds: no spread
    assert constant.point == constant.low == constant.high == pytest.approx(0.92)
    assert report.cohorts[("copy delay=3", "A")].speed == pytest.approx(11.0)
    failed = report.cohorts[("copy delay=6", "C")]
    assert failed.metric.n == 2 and failed.seeds_text() == "2/3 (1 failed)"
    column = "score (final, IQM [95% CI])"
    point, low, high = parse_estimate(report.leaderboards["copy delay=3"][0][column])
    assert point == pytest.approx(0.95) and 0.9 <= low < point < high <= 1.0
    board = report.leaderboards["copy delay=12"]
    assert [(r["rank"], r["cell"]) for r in board] == [("1", "B"), ("2", "A"), ("2", "C")]  # A and C tie at 0.2
    assert board[0]["seeds"] == "3/3" and board[0]["updates/s"] == "11"
    # P(better than next) over seed pairs: B beats A in all 9; A vs C: 3 losses, 3 ties (1/2), 3 wins
    assert [r["P(better than next)"] for r in board] == ["1.00", f"{(3 * 0.5 + 3) / 9:.2f}", "–"]
    # C's IQM on delay 6 is 0 (its two finished seeds score 0): not solved, no rank, listed last
    assert [(r["rank"], r["cell"]) for r in report.leaderboards["copy delay=6"]] == [
        ("1", "A"), ("2", "B"), ("not solved", "C")]
    overview = {r["cell"]: r for r in report.overview}
    assert [overview["A"][f"copy delay={d}"] for d in (3, 6, 12)] == ["1", "1", "2"]
    assert [overview["C"][f"copy delay={d}"] for d in (3, 6, 12)] == ["3", "not solved", "2"]
    assert overview["A"]["top 2 on every task"] == "yes" and overview["B"]["top 2 on every task"] == "yes"
    assert overview["C"]["top 2 on every task"] == "no"
    assert overview["C"]["mean rank"] == f"{(3 + 2) / 2:.2f}" and overview["C"]["tasks solved"] == "2/3"
    scaling = {r["cell"]: (r["copy (max delay)"], r["copy (memory score)"]) for r in report.scaling}
    # A: IQMs 0.95, 0.92, 0.2 vs 0.9 -> solves 2 of 3 lengths; B: 0.8, 0.85, 0.6 -> none
    assert scaling == {"A": ("6", f"{2 / 3:.2f} (2/3)"), "B": ("none", "0.00 (0/3)"), "C": ("none", "0.00 (0/3)")}
    # ranking by a loss metric flips the order, and ranks every cell (no not-solved rule)
    manifest = read_json(sweep.manifest_path)
    write_json(sweep.manifest_path, {**manifest, "report": {**manifest["report"], "metric": "ce", "threshold": 0.1}})
    report = build_report(sweep.path)
    assert [r["cell"] for r in report.leaderboards["copy delay=3"]] == ["A", "B", "C"]
    assert [r["rank"] for r in report.leaderboards["copy delay=6"]] == ["1", "2", "3"]
    point, low, high = parse_estimate(report.leaderboards["copy delay=3"][0]["score"])
    assert point == pytest.approx(0.95) and 0.9 <= low < high <= 1.0
    assert "tasks solved" not in report.overview[0]
    # threshold 0.1: C's IQMs 0.1, 0, 0.2 solve delays 3 and 12
    assert {r["cell"]: r["copy (max delay)"] for r in report.scaling}["C"] == "12"
    assert {r["cell"]: r["copy (memory score)"] for r in report.scaling}["C"] == f"{2 / 3:.2f} (2/3)"


def test_report_nobody_solves_a_task_at_the_memoryless_level(tmp_path):
    def summary(run):  # every cell scores 0 (or below): nobody beats the memoryless reference
        score = -0.1 if run.cell == "lstm" and run.seed == 0 else 0.0
        return {"status": "completed", "updates_per_second": 5.0, "num_params": 10,
                "final": {"update": 3, "metrics": {"score": score, "accuracy": 0.5}}}

    sweep = hand_sweep(tmp_path / "zero", {
        "name": "zero", "seeds": 2, "supervised": TINY,
        "tasks": [{"task": "copy", "task_kwargs": {"delay": [3, 6], "length": 2}}],
        "cells": [{"cell": "gru"}, {"cell": "lstm"}],
    }, summary)
    report = build_report(sweep.path)
    for board in report.leaderboards.values():
        assert [(r["cell"], r["rank"]) for r in board] == [("gru", "not solved"), ("lstm", "not solved")]
    for row in report.overview:
        assert row["copy delay=3"] == row["copy delay=6"] == "not solved"
        assert row["mean rank"] == "–" and row["tasks solved"] == "0/2" and row["top 2 on every task"] == "no"
    md_path = write_sweep_report(sweep.path)
    md, page = md_path.read_text(), (md_path.parent / "report.html").read_text()
    assert "| not solved | gru | 0 [0, 0] |" in md and "<td>not solved</td><td>gru</td>" in page
    assert "IQM" in md and "Student" not in md
    # accuracy is not a normalised score: every cell is ranked (here they tie), so both are top 2
    manifest = read_json(sweep.manifest_path)
    write_json(sweep.manifest_path, {**manifest, "report": {**manifest["report"], "metric": "accuracy"}})
    report = build_report(sweep.path)
    assert {r["cell"]: r["top 2 on every task"] for r in report.overview} == {"gru": "yes", "lstm": "yes"}
    assert [r["rank"] for r in report.leaderboards["copy delay=3"]] == ["1", "1"]


def test_report_params_hyper_parameters_speed_and_memory_score(tmp_path):
    scores = {("chrono", 3): 0.95, ("chrono", 6): 0.5, ("chrono", 12): 0.91, ("gru", 3): 0.92, ("gru", 12): 0.2}
    speeds = {"chrono": 1234.56, "gru": 0.42}

    def summary(run):
        if run.cell == "gru" and run.knob_value == 6:
            return None  # every seed of this length failed: it counts as not solved
        return {"status": "completed", "updates_per_second": speeds[run.cell], "num_params": 1000 + run.config["hidden_size"],
                "final": {"update": 3, "metrics": {"score": scores[(run.cell, run.knob_value)]}}}

    sweep = hand_sweep(tmp_path / "hp", {
        "name": "hp", "seeds": 2, "supervised": TINY,
        "tasks": [{"task": "copy", "task_kwargs": {"delay": [3, 6, 12], "length": 2}}],
        "cells": [{"label": "chrono", "cell": "lstm", "hidden_size": 16, "cell_kwargs": {"init": "chrono", "t_max": 12},
                   "supervised": {"lr": 0.01}},
                  {"cell": "gru", "hidden_size": 8}],
    }, summary)
    report = build_report(sweep.path)
    rows = {r["cell"]: r for r in report.leaderboards["copy delay=3"]}
    assert (rows["chrono"]["params"], rows["chrono"]["hidden_size"], rows["chrono"]["cell_kwargs"]) == (
        "1016", "16", "init=chrono, t_max=12")
    assert (rows["gru"]["params"], rows["gru"]["hidden_size"], rows["gru"]["cell_kwargs"]) == ("1008", "8", "–")
    assert (rows["chrono"]["lr"], rows["gru"]["lr"]) == ("0.01", "0.001")  # lr differs between the cells...
    assert "batch_size" not in rows["gru"]  # ...the batch size does not
    assert (rows["chrono"]["updates/s"], rows["gru"]["updates/s"]) == ("1235", "0.42")
    assert rows["gru"]["params"] and report.leaderboards["copy delay=6"][1]["params"] == "–"  # gru failed there
    # memory score: chrono solves delays 3 and 12 of 3 (largest 12); gru solves 3, fails 12, has no run at 6
    scaling = {r["cell"]: (r["copy (max delay)"], r["copy (memory score)"]) for r in report.scaling}
    assert scaling == {"chrono": ("12", f"{2 / 3:.2f} (2/3)"), "gru": ("3", f"{1 / 3:.2f} (1/3)")}
    write_sweep_report(sweep.path)
    with open(sweep.path / "report" / "results.csv", newline="") as f:
        csv_rows = {(r["cell"], r["variant"], r["seed"]): r for r in csv.DictReader(f)}
    row = csv_rows[("chrono", "copy delay=3", "0")]
    assert (row["num_params"], row["hidden_size"], row["lr"]) == ("1016", "16", "0.01")
    assert json.loads(row["cell_kwargs"]) == {"init": "chrono", "t_max": 12}
    md = (sweep.path / "report" / "report.md").read_text()
    assert "| chrono | 12 | 0.67 (2/3) |" in md and "memory score" in md


def test_report_iqm_trims_the_outer_quartiles(tmp_path):
    values = [0.0, 0.5, 0.6, 10.0]  # 4 seeds: the IQM drops one each side -> mean(0.5, 0.6)

    def summary(run):
        run_dir = tmp_path / "four" / "runs" / run.id
        with open(run_dir / "metrics.csv", "w") as f:  # a learning curve: seed 3 alone logged update 6
            f.write("update,eval_score\n0,0.0\n" + f"3,{values[run.seed]}\n" + ("6,0.7\n" if run.seed == 3 else ""))
        return {"status": "completed", "final": {"update": 3, "metrics": {"score": values[run.seed]}}}

    sweep = hand_sweep(tmp_path / "four", {
        "name": "four", "seeds": 4, "supervised": TINY, "tasks": [{"task": "copy", "task_kwargs": {"delay": 3}}],
        "cells": [{"cell": "gru"}]}, summary)
    report = build_report(sweep.path)
    estimate = report.cohorts[("copy", "gru")].metric
    assert estimate.point == pytest.approx(0.55) and estimate.n == 4
    assert 0.0 <= estimate.low <= estimate.point <= estimate.high <= 10.0
    xs, band = curve_estimates(report.cohorts[("copy", "gru")], 0.95)
    assert xs == [0.0, 3.0, 6.0]
    assert band[0].point == band[0].low == band[0].high == 0.0 and band[0].n == 4
    assert band[1].point == pytest.approx(0.55) and 0.0 <= band[1].low < 0.55 < band[1].high <= 10.0
    assert (band[2].point, band[2].n) == (0.7, 1) and band[2].low == band[2].high == 0.7


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
        assert row["score (final, IQM [95% CI])"] == f"{finals[row['cell']]:.3g}"  # one seed: its score
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
    assert rl_row["score (final, IQM [95% CI])"] == f"{rl_summary['eval']['mean_return']:.3g}"
    assert float(rl_row["env-steps/s"]) == pytest.approx(rl_summary["fps"], abs=0.5)  # whole env-steps/s
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


def test_relaunch_accepts_a_manifest_from_before_a_config_field_was_added(tmp_path):
    """A finished run planned before TrainConfig gained a field (here max_loss, at its default)
    is the same run: the relaunch goes on; a real change of settings is still refused."""
    spec = load_spec(two_run_spec())
    runs = expand(spec)
    sweep = SweepDir(tmp_path / "s")
    prepare(spec, runs, sweep)
    manifest = sweep.read_manifest()
    for run in manifest["runs"]:
        del run["config"]["max_loss"]
        sweep.run_dir(run["id"]).mkdir(parents=True)
        write_json(sweep.run_dir(run["id"]) / "summary.json", {"status": "completed"})
    write_json(sweep.manifest_path, manifest)
    prepare(spec, runs, sweep)
    changed = expand(load_spec({**two_run_spec(), "supervised": {**TINY, "lr": 0.5}}))
    with pytest.raises(ValueError, match="lr differ"):
        prepare(spec, changed, sweep)


def test_dropping_a_task_at_a_scale_strikes_it_from_the_cells_only_lists():
    spec = two_run_spec()
    spec["tasks"] = [{"task": "copy", "task_kwargs": {"delay": 3, "length": 2}},
                     {"label": "longer", "task": "copy", "task_kwargs": {"delay": 5, "length": 2}}]
    spec["cells"] = [{"cell": "gru", "hidden_size": 4, "only": ["copy", "longer"]},
                     {"cell": "lstm", "hidden_size": 4, "only": ["longer"]}]
    spec["scales"] = {"small": {"tasks": {"longer": None}}}
    small = apply_scale(load_spec(spec), "small")
    assert small["cells"] == [{"cell": "gru", "hidden_size": 4, "only": ["copy"]}]  # lstm ran on `longer` only
    assert {r.cell for r in expand(small)} == {"gru"}


def test_a_run_stopped_mid_way_continues_from_its_checkpoint(tmp_path):
    """A relaunch continues a supervised run that an earlier launch left after a checkpoint
    (no summary yet) instead of redoing it: its metrics rows before the stop are kept, and the
    run ends as an uninterrupted one (bit-identical on CPU). A run that failed is redone."""
    import shutil

    from agents.supervised import TrainConfig, train

    spec = {**two_run_spec("resume"), "supervised": {**TINY, "updates": 6, "eval_every": 2},
            "cells": [{"cell": "gru", "hidden_size": 8}]}
    (run,) = expand(load_spec(spec))
    whole = tmp_path / "whole"
    train(TrainConfig.from_dict(run.config), out_dir=whole, progress=False)

    sweep = SweepDir(tmp_path / "sweep")
    stopped = sweep.run_dir(run.id)
    train(TrainConfig.from_dict({**run.config, "updates": 4}), out_dir=stopped, progress=False)
    (stopped / "summary.json").unlink()  # as if the process died after its update-4 checkpoint
    rows_before = (stopped / "metrics.csv").read_text().splitlines()
    result = execute_run(run.to_dict(), stopped, sweep.log_path(run.id))
    assert result["status"] == "done"
    assert "continued from" in sweep.log_path(run.id).read_text()
    rows = (stopped / "metrics.csv").read_text().splitlines()
    assert rows[: len(rows_before)] == rows_before and len(rows) == len(rows_before) + 1  # one more evaluation
    final = read_json(stopped / "summary.json")["final"]
    assert final == read_json(whole / "summary.json")["final"]

    (stopped / "summary.json").unlink()
    (stopped / "error.json").write_text("{}")  # a failed run is never continued
    execute_run(run.to_dict(), stopped, sweep.log_path(run.id))
    assert "continued from" not in sweep.log_path(run.id).read_text()
    assert read_json(stopped / "summary.json")["final"] == final and not (stopped / "error.json").exists()
    shutil.rmtree(whole)

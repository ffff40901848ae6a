"""Claim checks on hand-written sweeps: each outcome against values computed by hand."""

from __future__ import annotations

import shutil

import pytest

from agents.results.runs import write_json
from agents.sweep.claims import evaluate_claim
from agents.sweep.runner import SweepDir, prepare
from agents.sweep.spec import expand, load_spec
from agents.results.stats import iqm, iqm_estimate, probability_of_improvement

TINY = {"updates": 3, "eval_every": 3, "eval_batches": 1, "eval_batch_size": 4, "batch_size": 2}


def make_sweep(tmp_path, checks, scores, curves=None, fractions=None, delays=(3,)):
    """A sweep of cells A, B, C on copy with the given ``scores[(cell, delay)]`` per seed
    (None: a diverged run) and optional learning ``curves[(cell, delay)][seed]``."""
    spec = load_spec({
        "name": "hand", "seeds": 3, "supervised": TINY,
        "tasks": [{"task": "copy", "task_kwargs": {"delay": list(delays), "length": 2}}],
        "cells": [{"label": c, "cell": "gru"} for c in "ABC"],
        "claim": {"statement": "A is better.", "criterion": "see checks", "checks": checks},
    })
    runs = expand(spec)
    sweep = SweepDir(tmp_path / "hand")
    prepare(spec, runs, sweep)
    for run in runs:
        run_dir = sweep.run_dir(run.id)
        run_dir.mkdir(parents=True)
        score = scores[(run.cell, run.knob_value)][run.seed]
        metrics = {"score": score}
        if fractions:
            metrics["updated_fraction"] = fractions[run.cell][run.seed]
        write_json(run_dir / "summary.json", {"status": "diverged" if score is None else "completed",
                                              "final": {"update": 3, "metrics": metrics}})
        rows = (curves or {}).get((run.cell, run.knob_value), [[]] * 3)[run.seed]
        (run_dir / "metrics.csv").write_text("update,eval_score\n" + "".join(f"{u},{y}\n" for u, y in rows))
    return sweep.path


def test_stats_against_hand_computed_values():
    assert iqm([1, 2, 3, 4, 100]) == pytest.approx(3.0)  # 25% trimmed each side: mean of 2, 3, 4
    assert iqm([0.2, 0.4, 0.9]) == pytest.approx(0.5)  # fewer than 4 seeds: the mean
    # pairs (a, b): 1>0; 2=2 (half) 2>0; 3>2, 3>2, 3>0 -> (1 + 2 + 3) / 9 with ties at 1/2
    assert probability_of_improvement([1, 2, 3], [2, 2, 0]) == pytest.approx(6 / 9)
    estimate = iqm_estimate([0.1, 0.5, 0.9])
    assert estimate.point == pytest.approx(0.5) and 0.1 <= estimate.low < 0.5 < estimate.high <= 0.9
    assert iqm_estimate([0.3]).text() == "0.3"


def test_better_passes_fails_and_is_inconclusive(tmp_path):
    checks = [
        {"type": "better", "cell": "A", "than": "B", "task": "copy delay=3", "margin": 0.1},   # 0.9 vs 0.5: pass
        {"type": "better", "cell": "B", "than": "A", "task": "copy delay=3", "margin": 0.1},   # worse: fail
        {"type": "better", "cell": "C", "than": "B", "task": "copy delay=3", "margin": 0.1},   # +0.05 only: inconclusive
    ]
    scores = {("A", 3): [0.8, 0.9, 1.0], ("B", 3): [0.4, 0.5, 0.6], ("C", 3): [0.3, 0.55, 0.8]}
    result = evaluate_claim(make_sweep(tmp_path, checks, scores))
    assert [c.outcome for c in result.checks] == ["pass", "fail", "inconclusive"]
    assert result.verdict == "not reproduced"
    assert "P(A > B) = 1.00" in result.checks[0].detail


def test_probability_of_improvement_guards_a_lucky_seed(tmp_path):
    """A's IQM is 0.2 above B's, but only one seed of A beats B's seeds: P = 3/9 < 0.75."""
    checks = [{"type": "better", "cell": "A", "than": "B", "task": "copy delay=3", "margin": 0.1}]
    scores = {("A", 3): [0.1, 0.1, 1.0], ("B", 3): [0.2, 0.2, 0.2], ("C", 3): [0, 0, 0]}
    result = evaluate_claim(make_sweep(tmp_path, checks, scores))
    assert result.checks[0].outcome == "inconclusive" and result.verdict == "inconclusive"


def test_missing_runs_make_a_check_inconclusive(tmp_path):
    checks = [{"type": "better", "cell": "A", "than": "B", "task": "copy delay=3", "margin": 0.1}]
    scores = {("A", 3): [0.8, None, 1.0], ("B", 3): [0.4, 0.5, 0.6], ("C", 3): [0, 0, 0]}
    result = evaluate_claim(make_sweep(tmp_path, checks, scores))
    assert result.checks[0].outcome == "inconclusive" and "missing" in result.checks[0].detail


def test_not_worse_solves_and_compute(tmp_path):
    checks = [
        {"type": "not_worse", "cell": "C", "than": "A", "task": "copy delay=3", "margin": 0.1},  # 0.85 vs 0.9: pass
        {"type": "not_worse", "cell": "B", "than": "A", "task": "copy delay=3", "margin": 0.1},  # 0.5: fail
        {"type": "solves", "cell": "A", "task": "copy delay=3", "threshold": 0.9},               # pass
        {"type": "compute_at_most", "cell": "C", "task": "copy delay=3", "fraction": 0.1},       # 0.08: pass
        {"type": "compute_at_most", "cell": "A", "task": "copy delay=3", "fraction": 0.1},       # 0.5: fail
    ]
    scores = {("A", 3): [0.8, 0.9, 1.0], ("B", 3): [0.4, 0.5, 0.6], ("C", 3): [0.8, 0.85, 0.9]}
    fractions = {"A": [0.5] * 3, "B": [1.0] * 3, "C": [0.06, 0.08, 0.1]}
    result = evaluate_claim(make_sweep(tmp_path, checks, scores, fractions=fractions))
    assert [c.outcome for c in result.checks] == ["pass", "fail", "pass", "pass", "fail"]


def test_faster_reads_the_learning_curves(tmp_path):
    checks = [
        {"type": "faster", "cell": "A", "than": "B", "task": "copy delay=3", "threshold": 0.9},  # 200 vs 400: pass
        {"type": "faster", "cell": "B", "than": "A", "task": "copy delay=3", "threshold": 0.9},  # fail
        {"type": "faster", "cell": "C", "than": "B", "task": "copy delay=3", "threshold": 0.99},  # nobody: inconclusive
    ]
    up = lambda at: [(100, 0.1), (at, 0.95), (600, 0.96)]  # noqa: E731
    curves = {("A", 3): [up(200), up(200), [(100, 0.1)]], ("B", 3): [up(400)] * 3, ("C", 3): [[(100, 0.5)]] * 3}
    scores = {("A", 3): [0.9] * 3, ("B", 3): [0.9] * 3, ("C", 3): [0.5] * 3}
    result = evaluate_claim(make_sweep(tmp_path, checks, scores, curves=curves))
    assert [c.outcome for c in result.checks] == ["pass", "fail", "inconclusive"]
    assert "A [200, 200, never]" in result.checks[0].detail


def test_top_k_ranks_only_solved_cells(tmp_path):
    """Delay 3: A 0.9, B 0.5, C 0.7 -> top 2 A, C. Delay 6: A 0.6, B 0.8, C 0.0 (not solved)
    -> top 2 B, A. A is the only cell in the top 2 on both: pass; C is not: fail."""
    scores = {("A", 3): [0.9] * 3, ("B", 3): [0.5] * 3, ("C", 3): [0.7] * 3,
              ("A", 6): [0.6] * 3, ("B", 6): [0.8] * 3, ("C", 6): [0.0] * 3}
    result = evaluate_claim(make_sweep(tmp_path, [{"type": "top_k", "cell": "A", "k": 2},
                                                  {"type": "top_k", "cell": "C", "k": 2}], scores, delays=(3, 6)))
    assert [c.outcome for c in result.checks] == ["pass", "fail"]
    # B also top 2 everywhere when C fails delay 3 too: A's check becomes inconclusive
    scores[("C", 3)] = [0.0] * 3
    result = evaluate_claim(make_sweep(tmp_path / "2", [{"type": "top_k", "cell": "A", "k": 2}], scores, delays=(3, 6)))
    assert result.checks[0].outcome == "inconclusive" and "also top 2 everywhere: B" in result.checks[0].detail


def test_unknown_check_or_cell_names_the_problem(tmp_path):
    scores = {(c, 3): [0.5] * 3 for c in "ABC"}
    with pytest.raises(ValueError, match="type must be one of"):
        evaluate_claim(make_sweep(tmp_path, [{"type": "wins", "cell": "A"}], scores))
    with pytest.raises(ValueError, match="no runs of cell 'D'"):
        evaluate_claim(make_sweep(tmp_path / "2", [{"type": "solves", "cell": "D", "task": "copy delay=3", "threshold": 1}], scores))


def test_results_page_from_an_archive_alone(tmp_path):
    """archive() keeps the small outputs only; the page built from the archive equals the page
    built after archiving, and shows the verdict, the checks and the figures."""
    from agents.sweep.results import archive, write_results_page

    checks = [{"type": "better", "cell": "A", "than": "B", "task": "copy delay=3", "margin": 0.1}]
    scores = {("A", 3): [0.8, 0.9, 1.0], ("B", 3): [0.4, 0.5, 0.6], ("C", 3): [0, 0, 0]}
    curves = {(c, 3): [[(0, 0.0), (3, s)] for s in scores[(c, 3)]] for c in "ABC"}
    sweep = make_sweep(tmp_path, checks, scores, curves=curves)
    (sweep / "runs" / "copy-delay_3-A-s0" / "latest.pt").write_bytes(b"weights")
    (sweep / "notes.md").write_text("Runs of B were\nrerun after a fix.\n")
    kept = archive(sweep, tmp_path / "results")
    assert kept == tmp_path / "results" / "hand"
    assert (kept / "runs" / "copy-delay_3-A-s0" / "summary.json").is_file()
    assert not list(kept.rglob("*.pt"))
    page = write_results_page([kept], tmp_path / "docs" / "results.md")
    text = page.read_text()
    assert "## hand: reproduced" in text and "| **pass** |" in text
    assert "| copy delay=3 | A | 0.9 [0.8, 1] | 3/3 |" in text
    assert (tmp_path / "docs" / "results" / "hand-curves.png").is_file()
    assert "**Notes on these runs.** Runs of B were rerun after a fix." in text  # the sweep's notes travel
    shutil.rmtree(sweep)  # the archive alone rebuilds the same page
    assert archive(kept, tmp_path / "results") == kept
    assert write_results_page([kept], tmp_path / "docs" / "results.md").read_text() == text


def test_checks_are_per_scale_and_checked_before_running():
    from agents.sweep.claims import check_claim, checks_at
    from agents.sweep.spec import apply_scale, with_available_data

    claim = {"checks": {"small": [{"type": "solves", "cell": "gru", "task": "copy delay=3", "threshold": 0.9}]}}
    assert checks_at(claim, "small") and checks_at(claim, "paper") == []
    spec = load_spec({"name": "s", "seeds": 1, "supervised": TINY, "claim": claim, "scales": {"small": {}},
                      "tasks": [{"task": "copy", "task_kwargs": {"delay": [3], "length": 2}}],
                      "cells": [{"cell": "gru"}]})
    small = apply_scale(spec, "small")
    check_claim(small, expand(small))  # names what the runs produce: fine
    claim["checks"]["small"][0]["task"] = "copy delay=30"
    small = apply_scale(load_spec({**spec, "claim": claim}), "small")
    with pytest.raises(ValueError, match="'copy delay=30' is not a task variant of these runs"):
        check_claim(small, expand(small))
    for name in ("chrono", "glstm", "kaf", "aux", "nru", "demo"):  # the shipped claims name real variants
        scales = ("small",) if name == "demo" else ("small", "paper")
        for scale in scales:
            shipped = apply_scale(load_spec(name), scale)
            assert checks_at(shipped["claim"], scale), (name, scale)
            shipped = with_available_data(shipped)  # the datasets a user provides are not here
            check_claim(shipped, expand(shipped))


def test_which_test_falls_back_to_final_without_a_test_split():
    from agents.results.stats import evaluation_of

    with_test = {"final": {"metrics": {"score": 0.1}}, "test": {"metrics": {"score": 0.7}}}
    assert evaluation_of(with_test, "test")["metrics"]["score"] == 0.7
    assert evaluation_of({"final": {"metrics": {"score": 0.1}}}, "test")["metrics"]["score"] == 0.1
    assert evaluation_of(with_test, "final")["metrics"]["score"] == 0.1


def test_tasks_without_data_are_refused_or_left_out_and_said(tmp_path, monkeypatch, capsys):
    """A task whose data is not on the machine stops the sweep before any run, naming the task
    and --skip-missing-data; with that flag the other tasks run, the sweep records what was left
    out and why, a claim check on the missing task is inconclusive, and the results page says it."""
    from agents.cli import main as cli_main
    from agents.sweep.results import write_results_page

    monkeypatch.delenv("MEMENVS_DATA", raising=False)
    spec = {"name": "data", "seeds": 1, "supervised": TINY,
            "tasks": [{"task": "copy", "task_kwargs": {"delay": 3, "length": 2}},
                      {"label": "dogs", "task": "SequentialImages-v0", "task_kwargs": {"side": [4, 8]}}],
            "cells": [{"cell": "gru", "hidden_size": 4}],
            "claim": {"statement": "s", "criterion": "c",
                      "checks": [{"type": "solves", "cell": "gru", "task": "dogs side=8", "threshold": 0.5},
                                 {"type": "solves", "cell": "gru", "task": "copy", "threshold": 2.0}]}}
    path = tmp_path / "spec.yaml"
    path.write_text(__import__("yaml").safe_dump(spec))
    out = tmp_path / "sweep"
    assert cli_main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 2
    assert "no data here for task dogs" in capsys.readouterr().err and not out.exists()
    assert cli_main(["sweep", str(path), "--out", str(out), "--no-progress", "--skip-missing-data"]) == 0
    manifest = SweepDir(out).read_manifest()
    assert [r["task"] for r in manifest["runs"]] == ["copy"] and list(manifest["not_run"]) == ["dogs"]
    result = evaluate_claim(out)
    assert [c.outcome for c in result.checks] == ["inconclusive", "fail"]
    assert result.checks[0].detail.startswith("not run: no image class folders found")
    assert "Not run (their data is not on this machine): dogs: no image class folders found" in (out / "report" / "report.md").read_text()
    text = write_results_page([out], tmp_path / "docs" / "results.md").read_text()
    assert "**Not run here** (their data was not on the machine that ran the sweep): `dogs`: no image class folders found" in text


def test_the_committed_results_page_is_what_the_committed_run_outputs_give(tmp_path):
    """docs/results.md is rebuilt from results/ alone (`memory-bench results results/*`): a page
    edited by hand, or outputs changed without rebuilding it, fail here."""
    from pathlib import Path

    from agents.sweep.results import write_results_page

    root = Path(__file__).resolve().parents[1]
    archived = sorted(p for p in (root / "results").iterdir() if (p / "sweep.json").is_file())
    assert archived, "results/ holds no archived sweep"
    docs = tmp_path / "docs"
    shutil.copytree(root / "docs", docs, ignore=shutil.ignore_patterns("results", "results.md"))
    rebuilt = write_results_page(archived, docs / "results.md").read_text()
    assert rebuilt == (root / "docs" / "results.md").read_text()

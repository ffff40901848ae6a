"""Paper suites: definitions, planning rules, leaderboard ranking, and an end-to-end tiny suite."""

from __future__ import annotations


import pytest
import torch

from agents.cells.base import CELLS
from agents.models import count_parameters
from agents.supervised import suites
from agents.supervised.suites import (
    SCALES,
    SUITES,
    CellSpec,
    Curriculum,
    Leaderboard,
    PlannedRun,
    Scaled,
    Suite,
    TaskSpec,
    plan,
    run_suite,
)
from agents.sweep.stats import competition_ranks
from agents.supervised.trainer import TrainConfig, build_model, make_task

# --------------------------------------------------------------------------------------------
# Definitions
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", list(SUITES))
def test_every_suite_plans_valid_configs(name, scale):
    runs = plan(name, scale)
    assert runs, f"{name} has no runs at {scale}"
    suite = SUITES[name]
    for r in runs:
        spec = next(c for c in suite.cells if c.key == r.cell_key)
        if spec.cell in CELLS:
            assert isinstance(r.config, TrainConfig) and r.skip_reason is None
            assert r.config.cell == spec.cell and r.config.best_metric == "score"
            if scale != "paper":  # the cell accepts its options (paper-size models: see below, they are slow to build)
                build_model(r.config, make_task(r.config.task, r.config.task_kwargs))
        else:
            assert r.config is None and "not registered" in r.skip_reason
    # (task, cell) pairs are unique, so run directories never collide
    assert len({(r.task_key, r.cell_key) for r in runs}) == len(runs)


def test_unregistered_cells_are_skipped_knowingly():
    runs = plan("nru", "smoke", cells={"lstm", "gru"})
    active = {r.cell_key for r in runs if r.config is not None}
    assert active == {"lstm", "lstm-chrono", "gru"}
    skipped = {r.cell_key for r in runs if r.config is None}
    assert {"nru", "janet", "rnn-orth", "eurnn"} <= skipped


def test_nru_copy_sizes_match_the_paper_parameter_budget():
    """PAPERS §2.5: the NRU copy model has exactly 23,569 parameters; the baselines ~23.5k."""
    runs = {r.cell_key: r.config for r in plan("nru", "paper") if r.task_key == "copy-100" and r.config is not None}
    task = make_task("copy", {"delay": 100, "score": "all"})
    counts = {k: count_parameters(build_model(c, task)) for k, c in runs.items()}
    assert counts["nru"] == 23_569
    for key in ("lstm", "lstm-chrono", "gru", "janet", "rnn-orth", "rnn-id", "sru-stat", "eurnn", "goru"):
        assert abs(counts[key] - 23_500) / 23_500 < 0.05, (key, counts[key])


def test_paper_scale_settings_follow_papers():
    nru = {(r.task_key, r.cell_key): r.config for r in plan("nru", "paper") if r.config is not None}
    c = nru[("copy-100", "nru")]
    assert (c.optimizer, c.clip, c.batch_size, c.lr, c.updates) == ("amsgrad", 0.5, 10, 1e-3, 200_000)
    assert (nru[("copy-100", "lstm")].optimizer, nru[("copy-100", "lstm")].clip) == ("adam", 1.0)
    assert nru[("copy-100", "lstm-chrono")].cell_kwargs["t_max"] == 120  # T + 20
    assert nru[("denoise-100", "lstm-chrono")].cell_kwargs["t_max"] == 111  # T + 11
    p = nru[("psmnist", "nru")]
    assert (p.batch_size, p.updates, p.hidden_size, p.cell_kwargs["memory_size"]) == (100, 50_000, 212, 256)
    assert p.task_kwargs == {"extra_step": True}  # 785 steps as in the NRU code
    psmnist_task = make_task(p.task, p.task_kwargs)
    for key in ("nru", "sru-stat", "eurnn", "goru"):  # ~165.6k, the NRU psMNIST budget
        count = count_parameters(build_model(nru[("psmnist", key)], psmnist_task))
        assert 160_000 < count < 170_000, (key, count)
    chrono = {(r.task_key, r.cell_key): r.config for r in plan("chrono", "paper") if r.config is not None}
    assert chrono[("copy-500", "lstm-chrono")].cell_kwargs["t_max"] == 750  # 3T/2
    assert chrono[("copy-2000", "lstm-chrono")].cell_kwargs["t_max"] == 3000
    assert chrono[("varcopy-500", "lstm-chrono")].cell_kwargs["t_max"] == 500  # T
    assert chrono[("copy-500", "lstm")].optimizer == "rmsprop"
    aux = {r.cell_key: r.config for r in plan("aux", "paper") if r.config is not None}
    assert aux["lstm-full"].tbptt is None and aux["lstm-full"].aux == "none"
    assert aux["lstm-tbptt300"].tbptt == 300 and aux["lstm-tbptt300"].aux == "none"
    assert aux["r-lstm-tbptt300"].tbptt == 300 and aux["r-lstm-tbptt300"].aux == "reconstruction"
    assert aux["r-lstm-full"].aux_pretrain_updates == 3_000  # 10% of 30k
    assert aux["r-lstm-full"].encoder == "embedding" and aux["r-lstm-full"].embedding_dim == 128


def test_overrides_and_derived_values_follow_updates():
    runs = plan("glstm", "small", overrides={"updates": 40, "eval_every": 40})
    cur = next(r.config for r in runs if r.cell_key == "glstm-curriculum")
    assert cur.updates == 40
    # half of 40 updates over three stages at 10/25/50% of seq_len=100
    assert cur.curriculum == [[10, 7], [25, 7], [50, 7]]
    budget = next(r.config for r in runs if r.cell_key == "glstm-budget" and r.task_key == "smnist")
    assert budget.budget_weight > 0 and budget.cell_kwargs["expected_length"] == 784


def test_scaled_and_curriculum_rules():
    task = make_task("copy", {"delay": 40})
    assert Scaled("delay", 1.5).resolve(task) == 60
    assert Scaled("max_length", 1.0, -20).resolve(task) == 40
    assert Curriculum((0.5,), share=1.0).resolve(task, 10) == [[20, 10]]
    with pytest.raises(ValueError, match="length knob"):
        Curriculum().resolve(make_task("SequentialMNIST-v0", {}), 10)


def test_bad_suite_or_scale():
    with pytest.raises(ValueError, match="scale='huge'"):
        plan("nru", "huge")
    with pytest.raises(ValueError, match="suite='nope'"):
        plan("nope", "smoke")
    with pytest.raises(ValueError, match="updates"):
        plan("kaf", "smoke", overrides={"updates": 0})


# --------------------------------------------------------------------------------------------
# Leaderboard
# --------------------------------------------------------------------------------------------


def test_rank_is_competition_ranking():
    assert competition_ranks({"a": 0.9, "b": 0.5, "c": 0.9, "d": None, "e": 0.95}) == {"a": 2, "b": 4, "c": 2, "d": None, "e": 1}
    assert competition_ranks({"a": float("nan"), "b": 0.5}) == {"a": None, "b": 1}  # a diverged score is unranked
    assert competition_ranks({}) == {}


def _summary(score, status="completed", fraction=None):
    metrics = {"score": score} if fraction is None else {"score": score, "updated_fraction": fraction}
    return {"status": status, "best": {"metric": "score", "value": score, "metrics": metrics}}


def test_leaderboard_ranks_and_top2_on_hand_made_summaries():
    # Three tasks; "x" is planned on t1 and t2 only.
    tasks = tuple(TaskSpec(t, "copy", {}) for t in ("t1", "t2", "t3"))
    cells = (CellSpec("a", "lstm", {}), CellSpec("b", "lstm", {}), CellSpec("c", "lstm", {}), CellSpec("x", "lstm", {}, tasks=("t1", "t2")))
    suite = Suite("demo", "Demo", "", tasks, cells, {})
    scores = {
        "t1": {"a": 0.9, "b": 0.8, "c": 0.1, "x": 0.85},  # ranks a1 x2 b3 c4
        "t2": {"a": 0.2, "b": 0.7, "c": 0.7, "x": 0.9},  # ranks x1 b2 c2 a4
        "t3": {"a": 0.5, "b": 0.4, "c": None},  # ranks a1 b2, c missing
    }
    runs = [PlannedRun("demo", t, c, TrainConfig()) for t in scores for c in scores[t]]
    summaries = {(t, c): (None if s is None else _summary(s)) for t in scores for c, s in scores[t].items()}
    board = Leaderboard.from_runs(suite, runs, summaries)
    assert board.ranks == {
        "t1": {"a": 1, "b": 3, "c": 4, "x": 2},
        "t2": {"a": 4, "b": 2, "c": 2, "x": 1},
        "t3": {"a": 1, "b": 2, "c": None},
    }
    # a: 4th on t2; b: 3rd on t1; c: 4th on t1 and no score on t3; x: 2nd and 1st on its two tasks.
    assert {c: board.top2_everywhere(c) for c in "abcx"} == {"a": False, "b": False, "c": False, "x": True}
    assert board.mean_rank("x") == pytest.approx(1.5)
    assert board.mean_rank("c") is None
    rows = {row["cell"]: row for row in board.rows()}
    assert rows["x"]["t3"] == "" and rows["x"]["top 2 on every task"] == "yes"
    assert rows["c"]["t3"].startswith("–") and rows["a"]["t1"] == "0.900 (1)"
    text = board.markdown("smoke")
    assert "| x | 0.850 (2) | 0.900 (1) |  |" in text


def test_leaderboard_marks_diverged_runs_and_compute_columns():
    suite = Suite("demo", "Demo", "", (TaskSpec("t", "copy", {}),), (CellSpec("g", "glstm", {}), CellSpec("l", "lstm", {})), {})
    runs = [PlannedRun("demo", "t", c, TrainConfig()) for c in ("g", "l")]
    board = Leaderboard.from_runs(suite, runs, {("t", "g"): _summary(0.5, "diverged", fraction=0.25), ("t", "l"): _summary(0.7)})
    rows = {row["cell"]: row for row in board.rows()}
    assert rows["g"]["t"] == "0.500 (2) [diverged]" and rows["g"]["compute t"] == "25.0%"
    assert rows["l"]["compute t"] == "" and rows["l"]["t"] == "0.700 (1)"


# --------------------------------------------------------------------------------------------
# End to end
# --------------------------------------------------------------------------------------------

TINY = Suite(
    name="tiny",
    title="Tiny suite for tests",
    notes="two tasks x two cells, one update",
    tasks=(
        TaskSpec("copy", "copy", {"smoke": {"task_kwargs": {"delay": 3, "length": 2, "score": "all"}, "size": "s"}}),
        TaskSpec("adding", "adding", {"smoke": {"task_kwargs": {"seq_len": 6}, "size": "s"}}),
    ),
    cells=(
        CellSpec("lstm", "lstm", {"s": {"hidden_size": 4}}),
        CellSpec("gru-chrono", "gru", {"s": {"hidden_size": 4, "cell_kwargs": {"init": "chrono", "t_max": Scaled("max_length")}}}),
        CellSpec("missing", "no-such-cell", {"s": {"hidden_size": 4}}),
    ),
    train={"smoke": {"batch_size": 2, "eval_batches": 1, "eval_batch_size": 4}},
)


@pytest.fixture
def one_thread():
    """Tiny models run faster (and stay polite on a shared CPU) on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_tiny_suite_end_to_end_and_relaunch_skips(tmp_path, monkeypatch, one_thread):
    calls = []
    real_train = suites.train

    def counting_train(config, *args, **kwargs):
        calls.append(config)
        return real_train(config, *args, **kwargs)

    monkeypatch.setattr(suites, "train", counting_train)
    lines: list[str] = []
    overrides = {"updates": 2, "eval_every": 1}
    board = run_suite(TINY, "smoke", tmp_path, overrides=overrides, progress=False, log=lines.append)
    assert len(calls) == 4
    assert calls[1].cell_kwargs == {"init": "chrono", "t_max": 7.0}  # copy: 3 + 2·2 = 7 steps
    assert any("skip copy/missing" in line for line in lines)
    leaderboard = tmp_path / "tiny" / "leaderboard.md"
    assert leaderboard.is_file() and "top 2 on every task" in leaderboard.read_text()
    assert "`copy` = copy(delay=3, length=2, score=all)" in leaderboard.read_text()
    for task in ("copy", "adding"):
        assert (tmp_path / "tiny" / task / "report.md").is_file()
        assert (tmp_path / "tiny" / task / "curves_score.png").is_file()
        for cell in ("lstm", "gru-chrono"):
            assert (tmp_path / "tiny" / task / cell / "summary.json").is_file()
    assert set(board.cells) == {"lstm", "gru-chrono"}
    assert all(isinstance(board.scores[t][c], float) for t in board.tasks for c in board.cells)

    # Relaunch: everything is done, nothing trains, same leaderboard.
    calls.clear()
    again = run_suite(TINY, "smoke", tmp_path, overrides=overrides, progress=False, log=lines.append)
    assert calls == []
    assert again.scores == board.scores

    # A run whose summary is missing (interrupted after its checkpoint) is resumed, alone.
    (tmp_path / "tiny" / "adding" / "lstm" / "summary.json").unlink()
    run_suite(TINY, "smoke", tmp_path, overrides=overrides, progress=False, log=lines.append)
    assert [(c.task, c.cell) for c in calls] == [("adding", "lstm")]

    # A finished run with another config is not silently mixed in.
    with pytest.raises(ValueError, match="different config"):
        run_suite(TINY, "smoke", tmp_path, overrides={"updates": 3, "eval_every": 1}, progress=False, log=lines.append)


def test_cli_dry_run_lists_runs(capsys, tmp_path):
    from agents.cli import main

    assert main(["suite", "kaf", "--scale", "smoke", "--dry-run", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 4 and all(str(tmp_path / "kaf") in line for line in out)
    assert not any(tmp_path.iterdir())  # a dry run writes nothing
    assert main(["suite", "kaf", "--scale", "smoke", "--threads", "0"]) == 2

"""Run directories: weights-only checkpoints (malicious pickles refused), RNG state round trips,
atomic writes, metrics.csv handling and the markdown / PNG report."""

from __future__ import annotations

import json
import pathlib
import pickle

import numpy as np
import pytest
import torch

from agents.results.report import load_run, markdown_table, write_report
from agents.results.runs import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    RunDir,
    find_runs,
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)


class Evil:
    """Unpickling this would create a file (stands in for arbitrary code execution)."""

    def __init__(self, target: pathlib.Path) -> None:
        self.target = target

    def __reduce__(self):
        return (pathlib.Path.touch, (self.target,))


# -- checkpoints -------------------------------------------------------------------------------


def test_raw_pickle_with_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"format": CHECKPOINT_FORMAT, "x": Evil(marker)}, protocol=2))
    with pytest.raises(CheckpointError, match="weights-only loading refused it"):
        load_checkpoint(path)
    assert not marker.exists()


def test_torch_zip_checkpoint_with_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "model": {"w": torch.ones(2)}, "x": Evil(marker)}, path)
    assert not marker.exists()  # saving does not run it
    with pytest.raises(CheckpointError, match="weights-only loading refused it"):
        load_checkpoint(path)
    assert not marker.exists()


def test_foreign_checkpoint_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}}, path)
    with pytest.raises(CheckpointError, match=CHECKPOINT_FORMAT):
        load_checkpoint(path)
    save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "update": 1})
    assert load_checkpoint(path, keys=("update",))["update"] == 1
    with pytest.raises(CheckpointError, match="no model, rng in it"):
        load_checkpoint(path, keys=("update", "model", "rng"))
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_round_trip_with_rng_states(tmp_path):
    rng = np.random.default_rng(7)
    rng.random(3)
    torch.manual_seed(5)
    ckpt = {"format": CHECKPOINT_FORMAT, "update": 3, "model": {"w": torch.arange(4.0)}, "rng": rng_state(rng),
            "best": {"value": None, "metrics": {"ce": 0.5}}}
    save_checkpoint(tmp_path / "c.pt", ckpt)
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left behind
    expected_np, expected_torch = rng.random(4), torch.rand(4)

    raw = torch.load(tmp_path / "c.pt", weights_only=True)  # loadable by plain torch, weights only
    assert raw["update"] == 3 and raw["best"]["value"] is None
    other = np.random.default_rng(0)
    torch.manual_seed(99)
    restore_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"], other)
    np.testing.assert_array_equal(other.random(4), expected_np)
    assert torch.equal(torch.rand(4), expected_torch)


# -- run directory -------------------------------------------------------------------------------


def test_metrics_rows_round_trip_exactly_and_truncate(tmp_path):
    run = RunDir.create(tmp_path / "r", {"task": "copy"}, ["update", "wall_time", "eval_ce"])
    values = [0.1 + 0.2, 1 / 3, 2.0 ** -40]
    for i, v in enumerate(values):
        run.append_metrics({"update": i * 5, "wall_time": 0.0, "eval_ce": v})
    _, rows = run.read_metrics()
    assert [float(r["eval_ce"]) for r in rows] == values  # repr round-trips floats exactly
    run.truncate_metrics(5)
    assert [r["update"] for r in run.read_metrics()[1]] == ["0", "5"]


def test_reopen_drops_rows_after_the_checkpoint_or_all_of_them(tmp_path):
    run = RunDir.create(tmp_path / "r", {"task": "copy", "updates": 4}, ["update", "eval_ce"])
    for update in (0, 2, 4):
        run.append_metrics({"update": update, "eval_ce": 1.0})
    run.reopen({"task": "copy", "updates": 8}, ["update", "eval_ce"], last_update=2)
    assert [r["update"] for r in run.read_metrics()[1]] == ["0", "2"]
    assert run.read_config()["updates"] == 8
    run.reopen({"task": "copy", "updates": 8}, ["update", "wall_time", "eval_ce"], last_update=None)
    assert run.read_metrics() == (["update", "wall_time", "eval_ce"], [])


def test_unreadable_config_is_one_line_naming_the_file(tmp_path):
    run = RunDir.create(tmp_path / "r", {"task": "copy"}, ["update"])
    for text in ('{"task": "co', "[1, 2]", "\udcff"):
        run.config_path.write_text(text, errors="surrogateescape")
        with pytest.raises(ValueError, match="unreadable .*config.json") as err:
            run.read_config()
        assert "\n" not in str(err.value)


def test_create_refuses_non_empty_directory(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "x").write_text("")
    with pytest.raises(ValueError, match="not empty"):
        RunDir.create(tmp_path / "r", {}, ["update"])


def test_find_runs_expands_a_parent_directory(tmp_path):
    for name in ("b", "a"):
        RunDir.create(tmp_path / "all" / name, {"task": "copy"}, ["update"])
    (tmp_path / "all" / "not-a-run").mkdir()
    assert [r.path.name for r in find_runs([tmp_path / "all"])] == ["a", "b"]
    with pytest.raises(FileNotFoundError):
        find_runs([tmp_path / "nothing"])


# -- report --------------------------------------------------------------------------------------


def fake_run(path: pathlib.Path, cell: str, losses: list[float], scores: list[float], speed: float) -> None:
    config = {"task": "copy", "task_kwargs": {"delay": 10}, "cell": cell, "hidden_size": 4, "cell_kwargs": {}}
    run = RunDir.create(path, config, ["update", "wall_time", "eval_ce", "eval_score", "eval_accuracy"])
    for i, (loss, score) in enumerate(zip(losses, scores)):
        run.append_metrics({"update": 10 * i, "wall_time": float(i), "eval_ce": loss, "eval_score": score,
                            "eval_accuracy": 0.5})
    (path / "summary.json").write_text(json.dumps({"status": "completed", "num_params": 123, "updates_per_second": speed}))


def test_report_writes_markdown_table_and_pngs(tmp_path):
    fake_run(tmp_path / "runs" / "lstm", "lstm", [2.0, 0.5, 0.7], [0.0, 0.6, 0.4], 12.5)
    fake_run(tmp_path / "runs" / "gru", "gru", [2.0, 1.0], [0.0, 0.2], 20.0)
    path, table = write_report([tmp_path / "runs"], tmp_path / "out")
    assert path == tmp_path / "out" / "report.md"
    text = path.read_text()
    assert table in text
    lines = table.splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {r[0]: dict(zip(header, r)) for r in ([c.strip() for c in line.strip("|").split("|")] for line in lines[2:])}
    assert rows["lstm"]["final loss"] == "0.7" and rows["lstm"]["best loss"] == "0.5"
    assert rows["lstm"]["best score"] == "0.6" and rows["lstm"]["updates"] == "20"
    assert rows["gru"]["updates/s"] == "20" and rows["gru"]["params"] == "123"
    for name in ("curves_loss.png", "curves_score.png", "curves_accuracy.png"):
        data = (tmp_path / "out" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
        assert f"]({name})" in text


def test_report_of_a_run_without_summary_uses_metrics(tmp_path):
    fake_run(tmp_path / "r", "nru", [1.0, 0.25], [0.0, 0.5], 1.0)
    (tmp_path / "r" / "summary.json").unlink()
    record = load_run(RunDir(tmp_path / "r"))
    assert record.summary is None and record.column(["eval_ce"]) == ([0.0, 10.0], [1.0, 0.25])
    path, table = write_report([tmp_path / "r"])
    assert path.parent == tmp_path / "r" and "running?" in table and "| 10 |" in table  # 10 updates / 1 s


def test_markdown_table_escapes_pipes():
    assert markdown_table([{"a": "x|y"}]).splitlines()[2] == "| x\\|y |"

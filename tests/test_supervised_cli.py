"""``memory-bench train`` / ``report``: flag parsing, bad input (one line, no directory),
a real train -> resume -> report round trip."""

from __future__ import annotations

import csv
import json

import pytest

from agents.cli import main, parse_kwargs, parse_value
from agents.supervised.cli import parse_curriculum
from tiny_cells import TinyRNN, register


class CheckedTinyRNN(TinyRNN):
    """TinyRNN with an option whose bad values the CLI must report in one line."""

    def __init__(self, input_size: int, hidden_size: int, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError(f"scale={scale!r} must be > 0")
        super().__init__(input_size, hidden_size)


@pytest.fixture(autouse=True)
def tiny_cell(monkeypatch):
    register(monkeypatch, "tiny", CheckedTinyRNN)


SMALL = ["--task", "copy", "--task-kw", "delay=3", "--task-kw", "length=2", "--cell", "tiny", "--hidden-size", "6",
         "--batch-size", "3", "--eval-every", "2", "--eval-batches", "1", "--eval-batch-size", "4", "--no-progress"]


# -- parsing ---------------------------------------------------------------------------------------


def test_parse_value_types():
    assert parse_value("3") == 3 and isinstance(parse_value("3"), int)
    assert parse_value("0.5") == 0.5
    assert parse_value("true") is True and parse_value("False") is False
    assert parse_value("none") is None
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value("all") == "all" and parse_value("'x y'") == "x y"


def test_parse_kwargs_and_errors():
    assert parse_kwargs(["delay=100", "score=all"], "--task-kw") == {"delay": 100, "score": "all"}
    assert parse_kwargs(["sep=a=b"], "--task-kw") == {"sep": "a=b"}
    for bad in (["delay"], ["=3"], ["two words=1"]):
        with pytest.raises(ValueError, match="--task-kw"):
            parse_kwargs(bad, "--task-kw")
    assert parse_kwargs(["a=1", "a=2"], "--cell-kw") == {"a": 2}  # the last one wins


def test_parse_curriculum():
    assert parse_curriculum("20:500, 50:1000") == [[20, 500], [50, 1000]]
    for bad in ("20", "20:x", ":5"):
        with pytest.raises(ValueError, match="--curriculum"):
            parse_curriculum(bad)


# -- bad input: one line naming the problem, exit code != 0, no run directory ----------------------


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--task", "nosuchtask"], "nosuchtask"),
        (["--cell", "nosuchcell"], "nosuchcell"),
        (["--task-kw", "delay"], "--task-kw 'delay'"),
        (["--task-kw", "delay=-4"], "delay=-4"),
        (["--task-kw", "dealy=4"], "dealy"),
        (["--cell-kw", "width=3"], "width"),
        (["--cell-kw", "scale=-1"], "scale=-1"),
        (["--optimizer", "sgd"], "optimizer='sgd'"),
        (["--clip", "abc"], "--clip"),
        (["--clip", "0"], "clip=0.0"),  # 0 is not an alias of none: the config refuses it
        (["--tbptt", "0"], "tbptt=0"),
        (["--max-loss", "-1"], "max_loss=-1"),
        (["--curriculum", "5"], "--curriculum"),
        (["--aux", "recon"], "aux='recon'"),
        (["--hidden-size", "0"], "hidden_size=0"),
        (["--threads", "0"], "--threads=0"),
    ],
)
def test_bad_input_exits_with_one_line_and_no_directory(tmp_path, capsys, flags, words):
    out = tmp_path / "run"
    code = main(["train", *SMALL, "--updates", "2", *flags, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and words in err and err.startswith("memory-bench train: error:")
    assert not out.exists()


def test_resume_without_a_run_is_an_error(tmp_path, capsys):
    assert main(["train", "--resume", "--out", str(tmp_path / "none"), "--no-progress"]) != 0
    assert "config.json" in capsys.readouterr().err


# -- a real round trip -----------------------------------------------------------------------------


def test_train_resume_and_report(tmp_path, capsys):
    out = tmp_path / "runs" / "tiny"
    assert main(["train", *SMALL, "--updates", "2", "--clip", "none", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["task_kwargs"] == {"delay": 3, "length": 2} and config["clip"] is None
    assert "completed after 2 updates" in capsys.readouterr().out

    # --resume takes the saved config; only --updates changes
    assert main(["train", "--resume", "--out", str(out), "--updates", "4", "--no-progress"]) == 0
    with open(out / "metrics.csv", newline="") as f:
        assert [r["update"] for r in csv.DictReader(f)] == ["0", "2", "4"]
    # changing anything else is refused, naming the field
    assert main(["train", "--resume", "--out", str(out), "--lr", "0.5", "--no-progress"]) == 2
    assert "lr" in capsys.readouterr().err

    # an existing run directory is not overwritten without --resume
    assert main(["train", *SMALL, "--updates", "2", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err

    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report")]) == 0
    printed = capsys.readouterr().out
    assert "| tiny |" in printed and "completed" in printed
    assert (tmp_path / "report" / "report.md").is_file()
    assert (tmp_path / "report" / "curves_loss.png").is_file()

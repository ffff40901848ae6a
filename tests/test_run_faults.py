"""Faults found by using the supervised harness as a new user would, one test each: unreadable
checkpoints, ``tbptt=0``, a run killed right after an evaluation or before its first checkpoint,
a finite loss explosion, and the CLI's thread default."""

from __future__ import annotations

import csv
import json
import math
import pathlib
import pickle
import shutil
import time

import pytest
import torch

from agents.cli import main
from agents.supervised import TrainConfig, TrainingDiverged, load_model, train
from agents.supervised import trainer as trainer_module
from agents.results.runs import CHECKPOINT_FORMAT, CheckpointError, load_checkpoint, save_checkpoint
from memenvs.tasks.copy import CopyTask

MODULE = __name__


class Killed(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing in the trainer handles it."""


class KilledCopyTask(CopyTask):
    """Copy task that "kills the process" on the ``kill_at``-th batch of size ``kill_size``
    (3: training batches, 4: evaluation batches of :func:`small`; the model probe draws 2)."""

    kill_at: int | None = None
    kill_size = 3
    calls = 0

    def sample(self, batch_size, rng):
        if batch_size == KilledCopyTask.kill_size and KilledCopyTask.kill_at is not None:
            KilledCopyTask.calls += 1
            if KilledCopyTask.calls >= KilledCopyTask.kill_at:
                raise Killed
        return super().sample(batch_size, rng)


@pytest.fixture(autouse=True)
def no_kill():
    KilledCopyTask.kill_at, KilledCopyTask.kill_size, KilledCopyTask.calls = None, 3, 0
    yield
    KilledCopyTask.kill_at = None


def small(**changes) -> TrainConfig:
    base = dict(
        task=f"{MODULE}:KilledCopyTask", task_kwargs={"delay": 3, "length": 2}, cell="gru", hidden_size=4,
        updates=4, batch_size=3, eval_every=2, eval_batches=1, eval_batch_size=4, seed=1,
    )
    return TrainConfig(**{**base, **changes})


def updates_in(run: pathlib.Path) -> list[int]:
    with open(run / "metrics.csv", newline="") as f:
        return [int(r["update"]) for r in csv.DictReader(f)]


def tensorboard_steps(run: pathlib.Path, tag: str = "eval/ce") -> list[int]:
    """Steps of ``tag`` as TensorBoard shows them (purged events dropped)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


def next_second() -> None:
    """Wait for the clock's next second: TensorBoard reads event files in name order, and a name
    holds the second it was created in, then a process-wide counter (so ".10" sorts before ".9")."""
    now = time.time()
    time.sleep(math.floor(now) + 1.01 - now)


def snapshot(path: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------------------------
# 1. Unreadable checkpoints: one clear error, nothing touched
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("finished") / "run"
    train(small(updates=2), out_dir=path, progress=False)
    return path


def _cut(fraction):
    def damage(path: pathlib.Path) -> None:
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])

    return damage


def _write(data: bytes):
    return lambda path: path.write_bytes(data)


def _other_model(path: pathlib.Path) -> None:  # a readable checkpoint of another model
    ckpt = load_checkpoint(path)
    ckpt["model"] = {k: torch.zeros(3, 3) for k in ckpt["model"]}
    save_checkpoint(path, ckpt)


def _missing_keys(path: pathlib.Path) -> None:
    save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "update": 2})


DAMAGE = {
    **{f"cut-{f}": _cut(f) for f in (0.0, 0.001, 0.1, 0.45, 0.8, 0.99)},
    "last-byte-cut": lambda p: p.write_bytes(p.read_bytes()[:-1]),
    "garbage": _write(b"these are not the bytes of a checkpoint\n" * 50),
    "zip-magic-then-garbage": _write(b"PK\x03\x04" + bytes(range(256)) * 4),
    "plain-pickle": _write(pickle.dumps({"format": CHECKPOINT_FORMAT, "update": 2}, protocol=4)),
    "foreign-torch-file": lambda p: torch.save({"state_dict": {"w": torch.ones(2)}}, p),
    "missing-keys": _missing_keys,
    "other-model": _other_model,
}


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_unreadable_checkpoint_is_one_clear_error_and_the_run_is_untouched(finished_run, tmp_path, capsys, damage):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    DAMAGE[damage](run / "latest.pt")
    before = snapshot(run)

    with pytest.raises(CheckpointError) as err:
        train(small(updates=4), out_dir=run, resume=True, progress=False)
    message = str(err.value)
    assert isinstance(err.value, ValueError)
    assert "\n" not in message and str(run / "latest.pt") in message
    assert "unreadable" in message and "delete it" in message
    assert snapshot(run) == before

    # the same line from the command line (exit status 2), and from load_model
    assert main(["train", "--resume", "--out", str(run), "--updates", "4", "--no-progress"]) == 2
    printed = capsys.readouterr().err.strip()
    assert printed == f"memory-bench train: error: {message}"
    assert snapshot(run) == before
    if damage != "other-model":  # load_model builds the model from config.json; the weights must fit it
        (run / "best.pt").unlink()
        with pytest.raises(CheckpointError, match="unreadable"):
            load_model(run, "latest")


def test_other_model_is_unreadable_for_load_model_too(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    _other_model(run / "best.pt")
    with pytest.raises(CheckpointError, match=r"unreadable checkpoint .*best\.pt"):
        load_model(run, "best")


def test_checkpoint_loads_stay_weights_only(finished_run, monkeypatch, tmp_path):
    calls = []
    real = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    train(small(updates=4), out_dir=run, resume=True, progress=False)
    load_model(run, "best")
    load_model(run, "latest")
    assert calls == [True, True, True]


# --------------------------------------------------------------------------------------------
# 2. tbptt=0 is not full BPTT
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -3])
def test_tbptt_below_one_is_refused(value):
    with pytest.raises(ValueError) as err:
        small(tbptt=value)
    message = str(err.value)
    assert f"tbptt={value}" in message and "None" in message and ">= 1" in message


@pytest.mark.parametrize("value", ["0", "-3"])
def test_tbptt_flag_below_one_is_refused(tmp_path, capsys, value):
    out = tmp_path / "run"
    argv = ["train", "--task", "copy", "--task-kw", "delay=3", "--cell", "gru", "--hidden-size", "4", "--updates", "1",
            "--tbptt", value, "--out", str(out), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"tbptt={value}" in err and ">= 1" in err
    assert not out.exists()


# --------------------------------------------------------------------------------------------
# 3. A run killed right after an evaluation logs each update once after resuming
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("killed_in_update", [1, 3])
def test_resume_after_a_kill_logs_each_update_once(tmp_path, killed_in_update):
    run = tmp_path / "run"
    KilledCopyTask.kill_at = killed_in_update
    with pytest.raises(Killed):
        train(small(), out_dir=run, progress=False)
    done = killed_in_update - 1
    assert load_checkpoint(run / "latest.pt")["update"] == done
    assert updates_in(run) == list(range(0, done + 1, 2))

    KilledCopyTask.kill_at = None
    next_second()
    summary = train(small(), out_dir=run, resume=True, progress=False)
    assert summary["status"] == "completed"
    assert updates_in(run) == [0, 2, 4]
    assert tensorboard_steps(run) == [0, 2, 4]


# --------------------------------------------------------------------------------------------
# 4. A run killed before its first checkpoint restarts with --resume
# --------------------------------------------------------------------------------------------


def test_resume_without_a_checkpoint_starts_afresh(tmp_path, capsys):
    run = tmp_path / "run"
    KilledCopyTask.kill_at, KilledCopyTask.kill_size = 1, 4  # during the update-0 evaluation
    with pytest.raises(Killed):
        train(small(), out_dir=run, progress=False)
    assert (run / "config.json").is_file() and not (run / "latest.pt").exists()
    capsys.readouterr()

    KilledCopyTask.kill_at = None
    summary = train(small(), out_dir=run, resume=True, progress=False)
    assert summary["status"] == "completed" and summary["updates"] == 4
    assert "no latest.pt" in capsys.readouterr().err
    assert updates_in(run) == [0, 2, 4]
    reference = train(small(), out_dir=tmp_path / "reference", progress=False)
    assert summary["final"]["metrics"] == reference["final"]["metrics"]


def test_resume_without_a_checkpoint_drops_rows_logged_before_the_kill(tmp_path, capsys):
    run = tmp_path / "run"
    train(small(updates=2), out_dir=run, progress=False)
    (run / "latest.pt").unlink()  # as if killed after logging, before the first checkpoint was saved
    (run / "best.pt").unlink()
    next_second()
    assert main(["train", "--resume", "--out", str(run), "--updates", "4", "--no-progress"]) == 0
    assert "starting it afresh" in capsys.readouterr().err
    assert updates_in(run) == [0, 2, 4]
    assert tensorboard_steps(run) == [0, 2, 4]
    assert load_checkpoint(run / "latest.pt")["update"] == 4


# --------------------------------------------------------------------------------------------
# 5. A finite loss explosion stops the run like a NaN
# --------------------------------------------------------------------------------------------


def _explode_from(monkeypatch, call: int) -> None:
    """From the ``call``-th training step on, the task loss is 1e12 times larger: finite, and small
    enough that the gradient norm stays finite in float32 (so only ``max_loss`` can stop the run)."""
    real, calls = trainer_module.sequence_loss, [0]

    def exploding(*args, **kwargs):
        calls[0] += 1
        loss = real(*args, **kwargs)
        return loss * 1e12 if calls[0] >= call else loss

    monkeypatch.setattr(trainer_module, "sequence_loss", exploding)


def test_loss_above_max_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    _explode_from(monkeypatch, 3)
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="at update 3") as err:
        train(small(), out_dir=run, progress=False)
    assert "max_loss=1e+06" in str(err.value) and "latest.pt" in str(err.value)
    assert load_checkpoint(run / "latest.pt")["update"] == 2
    assert updates_in(run) == [0, 2]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "diverged" and "update 3" in summary["error"]


def test_max_loss_none_disables_the_bound(monkeypatch):
    _explode_from(monkeypatch, 3)
    assert train(small(max_loss=None), progress=False)["status"] == "completed"


def test_a_run_saved_before_max_loss_existed_resumes(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    saved = json.loads((run / "config.json").read_text())
    del saved["max_loss"]
    (run / "config.json").write_text(json.dumps(saved))
    assert main(["train", "--resume", "--out", str(run), "--updates", "4", "--no-progress"]) == 0
    assert json.loads((run / "config.json").read_text())["max_loss"] == 1e6


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf"), "big"])
def test_bad_max_loss_is_refused(value):
    with pytest.raises(ValueError, match="max_loss"):
        small(max_loss=value)


def test_max_loss_flag(tmp_path, capsys, monkeypatch):
    _explode_from(monkeypatch, 1)
    common = ["train", "--task", "copy", "--task-kw", "delay=3", "--cell", "gru", "--hidden-size", "4", "--updates", "2",
              "--eval-every", "2", "--eval-batches", "1", "--eval-batch-size", "4", "--no-progress"]
    assert main([*common, "--max-loss", "0", "--out", str(tmp_path / "zero")]) == 2
    assert "max_loss=0" in capsys.readouterr().err and not (tmp_path / "zero").exists()
    assert main([*common, "--max-loss", "1e20", "--out", str(tmp_path / "high")]) == 0
    assert main([*common, "--out", str(tmp_path / "default")]) == 1
    assert "max_loss" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# 6. One torch thread by default on CPU
# --------------------------------------------------------------------------------------------


def test_cli_uses_one_thread_on_cpu_unless_told(tmp_path, capsys, monkeypatch):
    import agents.supervised.cli as cli

    seen = []
    monkeypatch.setattr(cli, "set_torch_threads", lambda threads, flag="--threads": seen.append(threads))
    common = ["train", "--task", "copy", "--task-kw", "delay=3", "--cell", "gru", "--hidden-size", "4", "--updates", "1",
              "--eval-batches", "1", "--eval-batch-size", "4", "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "a")]) == 0
    assert main([*common, "--threads", "2", "--out", str(tmp_path / "b")]) == 0
    assert main(["train", "--resume", "--out", str(tmp_path / "a"), "--updates", "2", "--no-progress"]) == 0
    assert seen == [1, 2, 1]
    assert "threads" not in (tmp_path / "a" / "config.json").read_text()
    assert cli.default_threads(None, "cpu") == 1 and cli.default_threads(3, "cpu") == 3
    assert cli.default_threads(None, "cuda:0") is None


def test_help_says_the_thread_default(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--threads" in text and "default 1 on CPU" in text

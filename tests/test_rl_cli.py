"""``memory-bench rl``: a tiny run writes its directory; bad flags fail in one line, leaving nothing."""

from __future__ import annotations

import json

import pytest
import torch

from agents.cli import main
from agents.rl import RecurrentPPO

TINY = [
    "--task", "memenvs/MemoryChain-v0", "--task-kw", "memory_length=2", "--cell", "gru", "--timesteps", "64",
    "--n-envs", "2", "--n-steps", "16", "--hidden-size", "8", "--net-arch", "8", "--eval-episodes", "4",
    "--no-progress", "--threads", "1",
]


def test_rl_run_writes_a_complete_run_directory(tmp_path, capsys) -> None:
    assert main(["rl", *TINY, "--out", str(tmp_path / "run")]) == 0
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["timesteps"] == 64 and summary["eval"]["n_episodes"] == 4
    assert json.loads((run / "config.json").read_text())["task_kwargs"] == {"memory_length": 2}
    lines = (run / "progress.csv").read_text().splitlines()
    assert "rollout/ep_rew_mean" in lines[0] and len(lines) == 1 + 64 // 32
    assert any((run / "tensorboard").iterdir())
    weights = torch.load(run / "policy.pt", weights_only=True)
    loaded = RecurrentPPO.load(run / "model.zip", device="cpu")
    for name, value in loaded.policy.state_dict().items():
        torch.testing.assert_close(weights[name], value)
    out = capsys.readouterr().out
    assert "success rate" in out and str(run) in out


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--cell", "nope"], "unknown cell 'nope'"),
        (["--cell-kw", "bogus=1"], "bogus"),
        (["--task-kw", "memory_length=0"], "memory_length=0"),
        (["--env", "NoSuchEnv-v3"], "unknown task"),
        (["--seq-len", "5"], "seq_len=5"),
        (["--net-arch", "a,b"], "--net-arch 'a,b'"),
        (["--env-kw", "oops"], "--env-kw 'oops' is malformed"),
        (["--task-kw", "oops"], "--task-kw 'oops' is malformed"),
        (["--timesteps", "0"], "timesteps=0"),
        (["--hidden-size", "abc"], "--hidden-size 'abc' must be an integer"),
        (["--lr", "fast"], "--lr 'fast' must be a number"),
        (["--target-kl", "x"], "--target-kl 'x' must be a number or none"),
        (["--separate-cells", "maybe"], "--separate-cells 'maybe' must be true or false"),
        (["--aux-kw", "segment_length=2"], "aux_kwargs need an auxiliary loss"),
        (["--device", "nodevice"], "nodevice"),
        (["--threads", "0"], "--threads=0"),
    ],
)
def test_bad_flags_fail_in_one_line_and_leave_no_directory(tmp_path, capsys, flags, message) -> None:
    out = tmp_path / "run"
    assert main(["rl", *TINY, *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("memory-bench rl: error:") and message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_a_non_empty_out_directory_is_refused(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["rl", *TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "already exists and is not empty: choose another --out" in err and len(err.splitlines()) == 1
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_rl_runs_on_a_gymnasium_env_with_a_vector_entry_point(tmp_path) -> None:
    # CartPole-v1 has its own vector env (int seeds only, no partial reset): it used to crash
    # with "Seed must be a python integer".
    flags = ["--env", "CartPole-v1", "--timesteps", "32", "--n-envs", "2", "--n-steps", "16", "--hidden-size", "8",
             "--net-arch", "8", "--eval-episodes", "2", "--no-progress", "--threads", "1"]
    assert main(["rl", *flags, "--out", str(tmp_path / "run")]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["timesteps"] == 32 and summary["eval"]["n_episodes"] == 2


def test_threads_default_to_one_on_the_cpu(tmp_path, capsys) -> None:
    flags = [f for f in TINY if f not in ("--threads", "1")] + ["--device", "cpu", "--timesteps", "32"]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert main(["rl", *flags, "--out", str(tmp_path / "default")]) == 0
        assert torch.get_num_threads() == 1
        assert main(["rl", *flags, "--threads", "2", "--out", str(tmp_path / "two")]) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    from agents.cli import build_parser

    (sub,) = [a for a in build_parser("rl")._actions if a.dest == "command"]  # noqa: SLF001
    (threads,) = [a for a in sub.choices["rl"]._actions if a.dest == "threads"]  # noqa: SLF001
    assert threads.default is None and "default 1" in threads.help


def test_report_reads_an_rl_run(tmp_path):
    """memory-bench report on an RL run: env steps, the evaluation's normalised score (checked
    against the summary's reference returns) and a curve of normalised training returns."""
    from agents.cli import main as cli_main
    from agents.results.report import write_report

    out = tmp_path / "run"
    assert cli_main(["rl", "--task", "memenvs/TMaze-v0", "--task-kw", "corridor_length=3", "--cell", "gru",
                     "--hidden-size", "8", "--timesteps", "256", "--n-envs", "2", "--n-steps", "64",
                     "--eval-episodes", "4", "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    ref = summary["reference"]
    want = (summary["eval"]["mean_return"] - ref["memoryless"]) / (ref["optimal"] - ref["memoryless"])
    path, table = write_report([out], tmp_path / "report")
    row = table.splitlines()[2].split(" | ")
    assert row[4] == "256" and float(row[7]) == pytest.approx(want, abs=1e-3) and row[-1].startswith("completed")
    assert (tmp_path / "report" / "curves_score.png").is_file()

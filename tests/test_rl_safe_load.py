"""Loading a ``memory-bench rl`` run without unpickling: config.json + weights-only policy.pt,
the same actions and values as SB3's model.zip; files whose unpickling would run code are refused
before any of it runs; ``--resume`` continues from latest.pt."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.cli import main
from agents.rl import RecurrentPPO, load_policy, make_vec_env, state_to_tensor
from agents.rl.runs import read_latest

TINY = [
    "--env", "memenvs/MemoryChain-v0", "--env-kw", "memory_length=2", "--cell", "gru", "--timesteps", "64",
    "--n-envs", "2", "--n-steps", "16", "--hidden-size", "8", "--net-arch", "8", "--eval-episodes", "4",
    "--no-progress", "--threads", "1",
]


class WritesMarker:
    """Unpickling this object calls ``exec``, which creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rl") / "run"
    assert main(["rl", *TINY, "--out", str(out)]) == 0
    return out


def rollout(model: RecurrentPPO, steps: int = 12) -> tuple[list[np.ndarray], list[torch.Tensor]]:
    """Actions and values of ``model`` on a fixed stream of observations, carrying its state."""
    env = make_vec_env("memenvs/MemoryChain-v0", n_envs=2, seed=3, memory_length=2)
    obs, starts, state = env.reset(), np.ones(2, dtype=bool), None
    actions, values = [], []
    for _ in range(steps):
        tensor_state = model.policy.initial_state(2) if state is None else state_to_tensor(state, model.device)
        with torch.no_grad():
            values.append(model.policy.predict_values(model.policy.obs_to_tensor(obs)[0], tensor_state,
                                                      torch.as_tensor(starts)))
        action, state = model.predict(obs, state=state, episode_start=starts, deterministic=True)
        actions.append(action)
        obs, _, starts, _ = env.step(action)
    return actions, values


def test_load_policy_gives_the_actions_and_values_of_the_sb3_archive(run) -> None:
    safe = load_policy(run, device="cpu")
    archive = RecurrentPPO.load(run / "model.zip", device="cpu")  # a run we made ourselves: trusted
    for name, value in archive.policy.state_dict().items():
        torch.testing.assert_close(safe.policy.state_dict()[name], value, rtol=0, atol=0)
    got, want = rollout(safe), rollout(archive)
    for a, b in zip(got[0], want[0]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(got[1], want[1]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # latest.pt, written at the end, holds the same policy.
    latest = load_policy(run, device="cpu", weights="latest.pt").policy.state_dict()
    for name, value in safe.policy.state_dict().items():
        torch.testing.assert_close(latest[name], value, rtol=0, atol=0)
    with pytest.raises(ValueError, match="weights='model.zip'"):
        load_policy(run, weights="model.zip")
    # The classmethod spelling, with an env of our own.
    env = make_vec_env("memenvs/MemoryChain-v0", n_envs=3, seed=0, memory_length=2)
    again = RecurrentPPO.load_safe(run, env=env, device="cpu")
    assert again.n_envs == 3
    np.testing.assert_array_equal(rollout(again)[0][-1], want[0][-1])


def test_a_policy_file_that_would_run_code_is_refused_unrun(run, tmp_path) -> None:
    marker = tmp_path / "marker"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((run / "config.json").read_text())
    torch.save({"policy": WritesMarker(marker)}, bad / "policy.pt")
    with pytest.raises(ValueError) as info:
        load_policy(bad, device="cpu")
    message = str(info.value)
    assert len(message.splitlines()) == 1 and "refusing" in message and "policy.pt" in message
    assert not marker.exists()
    # The file is really dangerous: an ordinary unpickling runs its code.
    torch.load(bad / "policy.pt", weights_only=False)
    assert marker.exists()


def test_a_policy_file_of_another_model_is_refused_in_one_line(run, tmp_path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text((run / "config.json").read_text())
    torch.save({"not.a.parameter": torch.zeros(2)}, other / "policy.pt")
    with pytest.raises(ValueError, match="does not fit the model of config.json") as info:
        load_policy(other, device="cpu")
    assert len(str(info.value).splitlines()) == 1
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_policy(tmp_path / "nothing")


def test_resume_continues_from_latest_and_refuses_changed_settings(run, tmp_path, capsys) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("config.json", "latest.pt", "progress.csv"):
        (copy / name).write_bytes((run / name).read_bytes())
    # As if the run had gone on past its checkpoint before it stopped: that row is dropped.
    with open(copy / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(copy / "progress.csv", "a", newline="") as f:
        csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n").writerow({**rows[-1], "time/total_timesteps": "96"})
    before = torch.load(run / "policy.pt", weights_only=True)
    assert read_latest(copy / "latest.pt")["num_timesteps"] == 64

    assert main(["rl", "--resume", "--out", str(copy), "--cell", "lstm"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--resume keeps the settings" in err and "--cell" in err and len(err.splitlines()) == 1
    assert main(["rl", "--resume", "--out", str(copy), "--no-progress"]) == 2
    assert "give a larger timesteps (--timesteps)" in capsys.readouterr().err

    assert main(["rl", "--resume", "--out", str(copy), "--timesteps", "128", "--no-progress"]) == 0
    summary = json.loads((copy / "summary.json").read_text())
    assert summary["timesteps"] == 128 and summary["resumed_from_timesteps"] == 64
    assert json.loads((copy / "config.json").read_text())["timesteps"] == 128
    with open(copy / "progress.csv", newline="") as f:
        assert [int(r["time/total_timesteps"]) for r in csv.DictReader(f)] == [32, 64, 96, 128]
    after = load_policy(copy, device="cpu").policy.state_dict()
    assert any(not torch.equal(after[k], before[k]) for k in before)  # it trained on


def test_resume_refuses_a_latest_file_that_would_run_code(run, tmp_path, capsys) -> None:
    marker = tmp_path / "marker"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((run / "config.json").read_text())
    torch.save({"format": "memory-bench-rl-checkpoint-v1", "policy": WritesMarker(marker)}, bad / "latest.pt")
    assert main(["rl", "--resume", "--out", str(bad), "--timesteps", "128", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("memory-bench rl: error: refusing") and "latest.pt" in err and len(err.splitlines()) == 1
    assert not marker.exists()
    assert sorted(p.name for p in bad.iterdir()) == ["config.json", "latest.pt"]  # nothing written


def test_latest_is_written_during_training(tmp_path, monkeypatch) -> None:
    import agents.rl.runs
    import agents.rl.trainer

    saved: list[int] = []
    original = agents.rl.runs.save_latest

    def recording(model, path, wall_time_s):
        saved.append(model.num_timesteps)
        original(model, path, wall_time_s)

    monkeypatch.setattr(agents.rl.trainer, "CHECKPOINT_SECONDS", 0.0)
    monkeypatch.setattr(agents.rl.runs, "save_latest", recording)
    assert main(["rl", *TINY, "--out", str(tmp_path / "run")]) == 0
    assert saved == [32, 64]  # after the first update, and at the end

"""RLConfig (validation, dict round trip, old config.json files), train_rl (run layout, normalised
score, resume checks), and the flags memory-bench rl / train generate from their dataclasses."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re

import gymnasium as gym
import pytest

from agents.cli import build_parser, field_docs, main
from agents.rl import RecurrentPPO, RLConfig, load_policy, train_rl
from agents.rl.config import RESUMABLE_CHANGES, upgrade_config
from agents.rl.runs import _PPO_ARGS
from agents.supervised.trainer import TrainConfig

TINY = {"task": "memenvs/Copy-v0", "task_kwargs": {"delay": 2, "length": 2}, "n_envs": 2, "n_steps": 16,
        "hidden_size": 8, "net_arch": [8], "timesteps": 64, "eval_episodes": 6, "device": "cpu"}


# -- RLConfig --------------------------------------------------------------------------------------


def test_defaults_are_recurrent_ppo_defaults() -> None:
    config = RLConfig()
    signature = inspect.signature(RecurrentPPO.__init__).parameters
    for field_name, arg in _PPO_ARGS.items():
        default = signature[arg].default
        assert getattr(config, field_name) == ({} if default is None and field_name == "aux_kwargs" else default), field_name
    assert (config.task, config.cell, config.hidden_size, config.n_envs) == ("memenvs/TMaze-v0", "gru", 64, 8)
    assert (config.timesteps, config.eval_episodes, config.device) == (200_000, 100, "auto")


def test_field_names_follow_train_config() -> None:
    shared = {"task", "task_kwargs", "cell", "cell_kwargs", "hidden_size", "batch_size", "lr", "aux_weight",
              "aux_kwargs", "budget_weight", "seed", "device"}
    assert shared <= {f.name for f in dataclasses.fields(RLConfig)} & {f.name for f in dataclasses.fields(TrainConfig)}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"task": ""}, "task='' must be a non-empty string"),
        ({"task_kwargs": [1]}, "task_kwargs=[1] must be a dict"),
        ({"n_envs": 0}, "n_envs=0 is out of range: allowed >= 1"),
        ({"hidden_size": 2.5}, "hidden_size=2.5 must be an integer"),
        ({"separate_cells": "yes"}, "separate_cells='yes' must be True or False"),
        ({"net_arch": [8, 0]}, "net_arch layer size=0 is out of range"),
        ({"net_arch": "64,64"}, "net_arch='64,64' must be None or a list"),
        ({"timesteps": 0}, "timesteps=0 is out of range: allowed >= 1"),
        ({"n_steps": 16, "seq_len": 5}, "seq_len=5 must divide n_steps=16"),
        ({"n_steps": 16, "seq_len": 32}, "seq_len=32 is out of range: allowed in [1, 16]"),
        ({"n_steps": 16, "n_envs": 2, "batch_size": 64}, "batch_size=64 is out of range"),
        ({"n_steps": 16, "seq_len": 8, "batch_size": 12}, "batch_size=12 must be a multiple of seq_len=8"),
        ({"lr": 0}, "lr=0.0 is out of range: allowed > 0"),
        ({"gamma": 1.5}, "gamma=1.5 is out of range"),
        ({"gae_lambda": -0.1}, "gae_lambda=-0.1 is out of range"),
        ({"clip_range": 0.0}, "clip_range=0.0 is out of range"),
        ({"ent_coef": -1.0}, "ent_coef=-1.0 is out of range"),
        ({"target_kl": 0.0}, "target_kl=0.0 is out of range"),
        ({"aux_weight": -1}, "aux_weight=-1 is out of range"),
        ({"aux_kwargs": {"segment_length": 4}}, "aux_kwargs need an auxiliary loss: set aux_weight > 0"),
        ({"budget_weight": -0.5}, "budget_weight=-0.5 is out of range"),
        ({"seed": -1}, "seed=-1 is out of range"),
        ({"eval_episodes": 0}, "eval_episodes=0 is out of range"),
        ({"device": None}, "device=None must be a non-empty string"),
        ({"cell_kwargs": {"f": object()}}, "JSON-serialisable"),
    ],
)
def test_bad_values_name_the_field_the_value_and_the_range(change, message) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        RLConfig(**change)


def test_dict_round_trip_and_unknown_keys() -> None:
    config = RLConfig(task="CartPole-v1", cell="lstm", cell_kwargs={"forget_bias": 1.0}, net_arch=(), seq_len=8,
                      batch_size=16, n_steps=32, aux_weight=0.5, aux_kwargs={"segment_length": 3}, target_kl=0.02)
    data = config.to_dict()
    assert data["net_arch"] == [] and RLConfig.from_dict(json.loads(json.dumps(data))) == config
    assert list(data) == [f.name for f in dataclasses.fields(RLConfig)]
    with pytest.raises(ValueError, match=r"unknown RLConfig field\(s\) aux_coef, env: allowed are .*aux_weight.*task"):
        RLConfig.from_dict({"env": "TMaze-v0", "aux_coef": 0.5})


def test_old_config_files_are_upgraded() -> None:
    old = {"env": "memenvs/TMaze-v0", "env_kwargs": {"corridor_length": 3}, "cell": "gru", "cell_kwargs": {},
           "hidden_size": 8, "shared_cell": False, "net_arch": None, "timesteps": 64, "n_envs": 2, "n_steps": 16,
           "batch_size": None, "seq_len": None, "n_epochs": 4, "learning_rate": 1e-3, "gamma": 0.99, "gae_lambda": 0.95,
           "ent_coef": 0.01, "clip_range": 0.2, "aux_coef": 0.0, "aux_kwargs": {}, "budget_coef": 0.1, "seed": 3,
           "eval_episodes": 4, "device": "auto"}
    config = RLConfig.from_dict(upgrade_config(old))
    assert (config.task, config.task_kwargs, config.lr, config.budget_weight) == ("memenvs/TMaze-v0", {"corridor_length": 3}, 1e-3, 0.1)
    assert config.separate_cells is True and config.seed == 3
    # a sweep plan of the old code: memory-bench rl option names, net_arch as the flag's text
    plan = {"env": "TMaze-v0", "env_kw": {"corridor_length": 3}, "cell_kw": {"init": "chrono"}, "aux_kw": {},
            "separate_cells": True, "net_arch": "none", "lr": 0.01}
    assert upgrade_config(plan) == {"task": "TMaze-v0", "task_kwargs": {"corridor_length": 3},
                                    "cell_kwargs": {"init": "chrono"}, "aux_kwargs": {}, "separate_cells": True,
                                    "net_arch": [], "lr": 0.01}
    assert upgrade_config(config.to_dict()) == config.to_dict()


# -- train_rl --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rl") / "run"
    return out, train_rl(RLConfig(**TINY), out_dir=out, progress=False)


def test_train_rl_writes_the_run_layout_and_a_normalised_score(tiny_run) -> None:
    out, summary = tiny_run
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "latest.pt", "model.zip", "policy.pt",
                                                     "progress.csv", "summary.json", "tensorboard"]
    assert json.loads((out / "config.json").read_text()) == RLConfig(**TINY).to_dict()
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["timesteps"] == 64 and summary["eval"]["n_episodes"] == 6 and summary["task"] == TINY["task"]
    # The score is the mean return normalised by the env's own reference returns.
    env = gym.make("memenvs/Copy-v0", delay=2, length=2)
    reference = env.unwrapped.reference
    memoryless, optimal = reference.memoryless, reference.optimal
    assert memoryless != 0  # a normalisation that is not the identity
    expected = (summary["eval"]["mean_return"] - memoryless) / (optimal - memoryless)
    assert summary["score"] == pytest.approx(expected, abs=1e-12)
    assert summary["reference"] == {"random": reference.random, "memoryless": memoryless, "optimal": optimal}
    model = load_policy(out, device="cpu")
    assert summary["num_params"] == sum(p.numel() for p in model.policy.parameters())


def test_the_score_is_none_without_a_reference(tmp_path) -> None:
    config = RLConfig(**{**TINY, "task": "CartPole-v1", "task_kwargs": {}, "timesteps": 32, "eval_episodes": 2})
    summary = train_rl(config, out_dir=tmp_path / "run", progress=False)
    assert summary["score"] is None and summary["reference"] is None
    assert summary["eval"]["mean_return"] > 0


def test_train_rl_refuses_a_used_directory_and_changed_settings_on_resume(tiny_run, tmp_path) -> None:
    out, _ = tiny_run
    with pytest.raises(ValueError, match="already exists and is not empty"):
        train_rl(RLConfig(**TINY), out_dir=out, progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(ValueError, match=r"resume keeps the settings of .*config.json: cell, lr differ \(only "
                       + ", ".join(RESUMABLE_CHANGES)):
        train_rl(RLConfig(**{**TINY, "cell": "lstm", "lr": 0.1, "timesteps": 128}), out_dir=out, resume=True)
    with pytest.raises(ValueError, match="has done 64 timesteps of timesteps=64"):
        train_rl(RLConfig(**TINY), out_dir=out, resume=True)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    with pytest.raises(ValueError, match="resume needs out_dir"):
        train_rl(RLConfig(**TINY), resume=True)
    with pytest.raises(ValueError, match="config must be an RLConfig"):
        train_rl(TINY, out_dir=tmp_path / "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cell 'nope'|unknown cell 'nope'"):
        train_rl(RLConfig(**{**TINY, "cell": "nope"}), out_dir=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_a_run_with_an_old_config_file_still_loads(tiny_run, tmp_path) -> None:
    out, _ = tiny_run
    old = tmp_path / "old"
    old.mkdir()
    config = json.loads((out / "config.json").read_text())
    renamed = {"task": "env", "task_kwargs": "env_kwargs", "lr": "learning_rate", "aux_weight": "aux_coef",
               "budget_weight": "budget_coef"}
    legacy = {renamed.get(k, k): v for k, v in config.items() if k not in ("separate_cells", "clip_range_vf",
                                                                           "vf_coef", "max_grad_norm", "target_kl")}
    legacy["shared_cell"] = True
    (old / "config.json").write_text(json.dumps(legacy))
    (old / "policy.pt").write_bytes((out / "policy.pt").read_bytes())
    model = load_policy(old, device="cpu")
    assert model.n_envs == 2 and model.policy.shared_cell


# -- generated flags -------------------------------------------------------------------------------


def _command_parser(command: str):
    (sub,) = [a for a in build_parser(command)._actions if a.dest == "command"]  # noqa: SLF001
    return sub.choices[command]


@pytest.mark.parametrize("command, cls", [("rl", RLConfig), ("train", TrainConfig)])
def test_every_field_has_a_flag_whose_default_is_the_dataclass_default(command, cls) -> None:
    parser = _command_parser(command)
    actions = {a.dest: a for a in parser._actions}  # noqa: SLF001
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        action = actions[f.name]
        assert f"--{f.name.replace('_', '-')}" in action.option_strings
        assert action.default is None  # left out: the dataclass decides
        assert docs[f.name].split()[0] in action.help
        if f.default is not dataclasses.MISSING and not isinstance(f.default, bool) and f.default is not None \
                and f.name != "net_arch":
            assert f"(default: {f.default})" in action.help, f.name
    config_dests = {f.name for f in dataclasses.fields(cls)}
    others = {a.dest for a in parser._actions} - config_dests  # noqa: SLF001
    assert others == {"help", "threads", "out", "resume", "no_progress"}
    args = parser.parse_args([])
    assert args.config_flags.given(args) == {}
    assert cls.from_dict(args.config_flags.given(args)) == cls()


def test_rl_flags_round_trip_a_config() -> None:
    parser = _command_parser("rl")
    config = RLConfig(task="CartPole-v1", task_kwargs={"a": 1, "b": "x y"}, n_envs=3, cell="lstm",
                      cell_kwargs={"forget_bias": 1.0}, hidden_size=5, separate_cells=True, net_arch=[], timesteps=7,
                      n_steps=16, batch_size=None, seq_len=8, lr=1e-3, clip_range_vf=0.3, target_kl=None,
                      aux_weight=0.5, aux_kwargs={"segment_length": 3}, budget_weight=0.1, seed=4, device="cpu")
    argv = ["--env", "CartPole-v1", "--env-kw", "a=1", "--task-kw", "b='x y'", "--n-envs", "3", "--cell", "lstm",
            "--cell-kw", "forget_bias=1.0", "--hidden-size", "5", "--separate-cells", "--net-arch", "none",
            "--timesteps", "7", "--n-steps", "16", "--batch-size", "none", "--seq-len", "8", "--lr", "1e-3",
            "--clip-range-vf", "0.3", "--target-kl", "none", "--aux-weight", "0.5", "--aux-kw", "segment_length=3",
            "--budget-weight", "0.1", "--seed", "4", "--device", "cpu"]
    args = parser.parse_args(argv)
    assert RLConfig.from_dict(args.config_flags.given(args)) == config
    args = parser.parse_args(["--separate-cells", "false", "--lr", "1"])
    assert args.config_flags.given(args) == {"separate_cells": False, "lr": 1.0}


def test_resume_refuses_config_flags_other_than_the_resumable_ones(tmp_path, capsys) -> None:
    assert main(["rl", "--resume", "--out", str(tmp_path / "none"), "--seed", "2", "--lr", "0.1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--resume keeps the settings" in err and "--lr, --seed cannot be given" in err
    assert "only --timesteps, --eval-episodes, --device" in err and len(err.splitlines()) == 1

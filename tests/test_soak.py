"""Soak tests: training holds no memory from one update to the next (see :mod:`agents.soak`).

Sized so that a leak of one forward's saved tensors per update (the fault this guards against:
+0.3 MB per update for glstm/plstm and +2.3 MB for kaf-lstm at these sizes) grows the process by
well over the bound, while a sound run, measured after ``malloc_trim``, moves by under 0.1 MB.
"""

from __future__ import annotations

import pytest
import torch

from agents.cells import list_cells
from agents.rl import RecurrentPPO, make_vec_env
from agents.soak import rss_mb, soak_rl, soak_train
from agents.supervised import TrainConfig
from agents.supervised import trainer

try:
    rss_mb()
except RuntimeError as err:  # pragma: no cover - not Linux
    pytest.skip(str(err), allow_module_level=True)

# Growth allowed over the measured updates: about a tenth of what the smallest leak above adds.
MAX_GROWTH_MB = 2.0
SMALL = {"task": "adding", "task_kwargs": {"seq_len": 50}, "hidden_size": 32, "batch_size": 16}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("cell", list_cells())
def test_training_memory_stays_flat(cell: str) -> None:
    result = soak_train(TrainConfig(cell=cell, **SMALL), warmup=10, updates=60)
    assert result.growth_mb < MAX_GROWTH_MB, f"{cell}: {result}"


@pytest.mark.parametrize(
    "options",
    [
        {"cell": "glstm", "budget_weight": 0.1},
        {"cell": "kaf-lstm", "aux": "reconstruction", "tbptt": 20},
        {"cell": "nru", "aux": "prediction"},
    ],
    ids=["glstm-budget", "kaf-lstm-aux-tbptt", "nru-aux"],
)
def test_training_memory_stays_flat_with_trainer_options(options: dict) -> None:
    result = soak_train(TrainConfig(**{**SMALL, **options}), warmup=10, updates=60)
    assert result.growth_mb < MAX_GROWTH_MB, f"{options}: {result}"


@pytest.mark.parametrize("cell", ["lstm", "glstm", "kaf-lstm", "nru"])
def test_recurrent_ppo_memory_stays_flat(cell: str) -> None:
    env = make_vec_env("memenvs/TMaze-v0", n_envs=8, seed=0, corridor_length=20)
    model = RecurrentPPO(
        "CellPolicy", env, n_steps=64, n_epochs=2, batch_size=256, seq_len=32,
        policy_kwargs={"cell": cell, "hidden_size": 32}, seed=0,
    )
    per_iteration = model.n_steps * model.n_envs
    result = soak_rl(model, warmup_steps=3 * per_iteration, steps=20 * per_iteration)
    assert result.updates == 20
    assert result.growth_mb < MAX_GROWTH_MB, f"{cell}: {result}"


def test_soak_detects_a_leak(monkeypatch) -> None:
    """The measurement itself: memory kept on purpose at every update shows as growth."""
    kept = []

    class Leaky(torch.optim.Adam):
        def step(self, closure=None):
            kept.append(torch.ones(64 * 1024))  # 256 kB per update
            return super().step(closure)

    monkeypatch.setattr(trainer, "make_optimizer", lambda config, params: Leaky(params, lr=config.lr))
    result = soak_train(TrainConfig(cell="lstm", **SMALL), warmup=10, updates=60)
    assert result.growth_mb > 60 * 0.25 * 0.9, result

"""Every variant of an LSTM or GRU starts from the same LSTM/GRU as the baseline it is compared with.

The KAF, g-LSTM and Phased-LSTM papers compare a modified LSTM with a plain one: only the
paper's change may differ. With the same seed, the gate parameters shared with the baseline
(``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``) must come out identical, for the cell
settings that the paper suites and the shipped sweep specs actually use.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from agents.cells import make_cell
from agents.supervised.suites import SCALES, SUITES, plan
from agents.sweep.spec import expand, load_spec

SHARED = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
BASELINE = {"kaf-lstm": "lstm", "glstm": "lstm", "plstm": "lstm", "kaf-gru": "gru"}
SPECS = sorted((Path(__file__).resolve().parents[1] / "benchmarks" / "specs").glob("*.yaml"))


def _draw(cell: str, hidden_size: int, kwargs: dict, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    built = make_cell(cell, 3, hidden_size, **kwargs)
    return {name: getattr(built, name).detach().clone() for name in SHARED}


def _assert_same_start(variant: tuple[str, int, dict], baseline: tuple[str, int, dict], where: str) -> None:
    for seed in (0, 1):
        got, want = _draw(*variant, seed), _draw(*baseline, seed)
        for name in SHARED:
            assert torch.equal(got[name], want[name]), f"{where}: {variant[0]} {name} differs from {baseline[0]}'s (seed {seed})"


def _pairs(runs: list[tuple[str, str, int, dict]]) -> list[tuple[str, tuple, tuple]]:
    """(task, variant, baseline) for every variant cell that has its baseline on the same task."""
    by_task: dict[str, dict[str, tuple]] = {}
    for task, cell, hidden, kwargs in runs:
        by_task.setdefault(task, {}).setdefault(cell, (cell, hidden, kwargs))
    return [(task, cells[c], cells[BASELINE[c]]) for task, cells in by_task.items() for c in cells
            if c in BASELINE and BASELINE[c] in cells]


def _suite_runs(name: str, scale: str) -> list[tuple[str, str, int, dict]]:
    return [(r.task_key, r.config.cell, r.config.hidden_size, r.config.cell_kwargs)
            for r in plan(name, scale) if r.config is not None]


SUITE_CASES = [(name, scale) for name in SUITES for scale in SCALES]


@pytest.mark.parametrize(("suite", "scale"), SUITE_CASES, ids=[f"{n}-{s}" for n, s in SUITE_CASES])
def test_suite_variants_start_from_their_baseline(suite: str, scale: str) -> None:
    for task, variant, baseline in _pairs(_suite_runs(suite, scale)):
        _assert_same_start(variant, baseline, f"suite {suite} ({scale}), task {task}")


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_spec_variants_start_from_their_baseline(path: Path) -> None:
    runs = [(r.task, r.config["cell"], r.config["hidden_size"], r.config.get("cell_kwargs", {}))
            for r in expand(load_spec(path)) if r.harness == "supervised"]
    for task, variant, baseline in _pairs(runs):
        _assert_same_start(variant, baseline, f"{path.name}, task {task}")


def test_the_suites_compare_the_paper_variants_with_their_baselines() -> None:
    """The checks above are not empty: the g-LSTM and KAF suites pair their variants with an LSTM."""
    paired = {variant[0] for suite in ("glstm", "kaf") for _, variant, _ in _pairs(_suite_runs(suite, "paper"))}
    assert {"glstm", "kaf-lstm"} <= paired


@pytest.mark.parametrize("variant", sorted(BASELINE))
@pytest.mark.parametrize("init", [{}, {"init": "chrono", "t_max": 50}], ids=["default", "chrono"])
def test_every_family_cell_takes_the_baselines_init_options(variant: str, init: dict) -> None:
    """Same options, same defaults: forget bias 1 on bias_ih (LSTMs), or chrono biases."""
    _assert_same_start((variant, 6, dict(init)), (BASELINE[variant], 6, dict(init)), "init options")
    if BASELINE[variant] == "lstm" and not init:
        bias = make_cell(variant, 3, 6).bias_ih.detach()
        assert torch.equal(bias[6:12], torch.ones(6)) and not bias[:6].any() and not bias[12:].any()


@pytest.mark.parametrize("cell", ["lstm", "gru", *sorted(BASELINE)])
def test_xavier_weight_init_draws_orthogonal_recurrent_blocks(cell: str) -> None:
    """weight_init="xavier": every gate's [H, H] recurrent block is orthogonal and the input
    weights have the Xavier-normal spread; the family's variants draw the same values."""
    torch.manual_seed(0)
    built = make_cell(cell, 40, 32, weight_init="xavier")
    for block in built.weight_hh.detach().split(32):
        torch.testing.assert_close(block @ block.T, torch.eye(32), atol=1e-5, rtol=0)
    gates = built.weight_ih.shape[0]
    want_std = (2.0 / (40 + gates)) ** 0.5
    assert built.weight_ih.detach().std().item() == pytest.approx(want_std, rel=0.1)
    if cell in BASELINE:
        _assert_same_start((cell, 32, {"weight_init": "xavier"}), (BASELINE[cell], 32, {"weight_init": "xavier"}), "xavier")
    with pytest.raises(ValueError, match="weight_init"):
        make_cell(cell, 3, 4, weight_init="kaiming")


def test_xavier_readout() -> None:
    from agents.models import SequenceModel

    torch.manual_seed(0)
    model = SequenceModel("real", 3, 500, cell="gru", hidden_size=300, readout_init="xavier")
    assert not model.readout.bias.any()
    assert model.readout.weight.std().item() == pytest.approx((2.0 / 800) ** 0.5, rel=0.05)
    with pytest.raises(ValueError, match="readout_init"):
        SequenceModel("real", 3, 5, readout_init="orthogonal")

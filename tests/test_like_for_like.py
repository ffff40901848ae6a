"""Every variant of an LSTM or GRU starts from the same LSTM/GRU as the baseline it is compared with.

The KAF, g-LSTM and Phased-LSTM papers compare a modified LSTM with a plain one: only the
paper's change may differ. With the same seed, the gate parameters shared with the baseline
(``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``) must come out identical, for the cell
settings that the shipped specs (the paper suites) use at every scale.
"""

from __future__ import annotations


import pytest
import torch

from agents.cells import make_cell
from agents.sweep.spec import apply_scale, expand, load_spec, scale_names, shipped_specs, with_available_data

SHARED = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
BASELINE = {"kaf-lstm": "lstm", "glstm": "lstm", "plstm": "lstm", "kaf-gru": "gru"}


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


def _spec_runs(name: str, scale: str | None) -> list[tuple[str, str, int, dict]]:
    spec = with_available_data(apply_scale(load_spec(name), scale))
    return [(r.task, r.config["cell"], r.config["hidden_size"], r.config.get("cell_kwargs", {}))
            for r in expand(spec) if r.harness == "supervised"]


CASES = [(name, scale) for name in shipped_specs() for scale in [None, *scale_names(load_spec(name))]]


@pytest.mark.parametrize(("spec", "scale"), CASES, ids=[f"{n}-{s or 'as-written'}" for n, s in CASES])
def test_spec_variants_start_from_their_baseline(spec: str, scale: str | None) -> None:
    for task, variant, baseline in _pairs(_spec_runs(spec, scale)):
        _assert_same_start(variant, baseline, f"spec {spec} ({scale}), task {task}")


def test_the_paper_specs_compare_the_variants_with_their_baselines() -> None:
    """The checks above are not empty: the g-LSTM and KAF specs pair their variants with an LSTM."""
    paired = {variant[0] for name in ("glstm", "kaf") for _, variant, _ in _pairs(_spec_runs(name, "paper"))}
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

"""The wiring check: every shipped spec runs end to end at its smoke scale through the CLI
(tiny models, a few updates: it checks that everything runs, not what learns)."""

from __future__ import annotations

import json

from agents.cli import main
from agents.sweep.spec import shipped_specs


def test_every_shipped_spec_runs_at_smoke_scale(tmp_path, capsys):
    assert main(["suite", "all", "--scale", "smoke", "--out", str(tmp_path), "--no-progress", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    for name in shipped_specs():
        sweep = tmp_path / f"{name}-smoke"
        runs = json.loads((sweep / "sweep.json").read_text())["runs"]
        assert runs and all((sweep / "runs" / r["id"] / "summary.json").is_file() for r in runs), name
        assert (sweep / "report" / "report.md").is_file()
        assert f"{name}: {len(runs)} runs: 0 already finished, {len(runs)} executed, 0 failed" in out


def test_device_sets_every_run_and_an_unavailable_one_fails_first(tmp_path, capsys):
    import pytest
    import torch

    from agents.sweep.spec import apply_overrides, apply_scale, expand, load_spec

    runs = expand(apply_overrides(apply_scale(load_spec("nru"), "small"), ["supervised.device=meta"]))
    assert {r.config["device"] for r in runs} == {"meta"}  # what --device D sets, per-task blocks included
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["suite", "demo", "--scale", "smoke", "--device", "cuda", "--out", str(tmp_path / "x")]) == 2
    assert "torch sees no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()

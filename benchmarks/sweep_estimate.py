"""Estimate how long a sweep spec takes on this machine, from a few measured updates per config.

::

    python benchmarks/sweep_estimate.py nru --updates 3 --workers 2

Every distinct (task variant, cell) of the spec is trained for ``--updates`` updates (supervised;
one torch thread, no run directory, one small evaluation) or two PPO rollouts (RL), timed, and
the spec's runs are summed at that speed: CPU time, and wall time on ``--workers`` parallel runs.
Evaluation cost is not included (it is small at the specs' eval_every). Numbers are as good as
the machine is quiet: on a shared CPU they overestimate.
"""

from __future__ import annotations

import argparse
import time

import torch

from agents.sweep.spec import apply_overrides, expand, load_spec, with_available_data


def supervised_speed(config: dict, updates: int) -> float:
    from agents.supervised.trainer import TrainConfig, train

    probe = {**config, "updates": updates, "eval_every": updates, "eval_batches": 1,
             "eval_batch_size": config["batch_size"], "curriculum": None}
    if probe.get("eval_split") is not None:
        probe["eval_batches"] = 1
    if probe.get("aux_pretrain_updates", 0) > updates:
        probe["aux_pretrain_updates"] = 0
    start = time.perf_counter()
    train(TrainConfig.from_dict(probe), progress=False)
    return updates / (time.perf_counter() - start)


def rl_speed(settings: dict) -> float:
    import contextlib
    import io
    import tempfile

    from agents.sweep.execute import _train_rl
    from agents.results.runs import read_json

    n = int(settings.get("n_envs", 8)) * int(settings.get("n_steps", 128))
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        _train_rl({**settings, "timesteps": 2 * n, "eval_episodes": 1}, f"{tmp}/run")
        return read_json(f"{tmp}/run/summary.json")["fps"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("--updates", type=int, default=3, help="timed updates per supervised config (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="parallel runs for the wall-time estimate (default 2)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="spec override, as memory-bench sweep --set")
    args = parser.parse_args()
    torch.set_num_threads(1)
    spec = with_available_data(load_spec(apply_overrides(load_spec(args.spec), args.set)))
    for label, why in (spec.get("not_run") or {}).items():
        print(f"not timed (no data here): {label}: {why.split(';')[0]}")
    runs = expand(spec)
    speeds: dict[tuple[str, str], float] = {}
    total = 0.0
    for run in runs:
        key = (run.variant, run.cell)
        if key not in speeds:
            speeds[key] = supervised_speed(run.config, args.updates) if run.harness == "supervised" else rl_speed(run.config)
            unit = "updates/s" if run.harness == "supervised" else "env-steps/s"
            print(f"{run.variant:40s} {run.cell:18s} {speeds[key]:10.3g} {unit}", flush=True)
        work = run.config["updates"] if run.harness == "supervised" else run.config.get("timesteps", 200_000)
        total += work / speeds[key]
    print(f"\n{len(runs)} runs: {total / 3600:.1f} CPU-hours; {total / 3600 / args.workers:.1f} h wall on {args.workers} workers")


if __name__ == "__main__":
    main()

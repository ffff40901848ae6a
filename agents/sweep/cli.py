"""``memory-bench sweep``: run a grid of runs from a YAML spec, then write the sweep report.

::

    memory-bench sweep nru --scale small --workers 2
    memory-bench sweep cross --executor ray --address auto
    memory-bench sweep nru --scale paper --dry-run      # list the runs, run nothing
    memory-bench sweep my_spec.yaml --set supervised.updates=500 --set seeds=2
    memory-bench report sweeps/nru                               # re-write the report

Relaunching the same command continues an interrupted sweep: finished runs are skipped, the others
are redone from scratch. Ctrl-C, SIGTERM or SIGHUP stop the sweep and its workers (exit status
128 + the signal's number); runs still held by a live process of an earlier launch are left alone
and reported (exit status 1). ``memory-bench report`` on a sweep directory writes the sweep report
(leaderboards, memory scaling, learning curves; see :mod:`agents.sweep.report`).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path


def run_sweep_command(args: argparse.Namespace) -> int:
    """``memory-bench sweep SPEC`` and ``memory-bench suite NAME``: the same engine."""
    from agents.sweep.spec import load_spec, scale_names, shipped_specs

    if args.spec != "all":
        return _run_one_spec(args.spec, args, args.out)
    status = 0
    for name in shipped_specs():
        if args.scale and args.scale not in scale_names(load_spec(name)):
            print(f"{name}: no {args.scale} scale, skipped")
            continue
        folder = f"{name}-{args.scale}" if args.scale else name
        status = max(status, _run_one_spec(name, args, Path(args.out or "sweeps") / folder))
    return status


def _run_one_spec(name: str, args: argparse.Namespace, out: str | Path | None) -> int:
    from agents.sweep.runner import default_sweep_dir, run_sweep
    from agents.sweep.claims import check_claim
    from agents.sweep.spec import (
        apply_overrides,
        apply_scale,
        check_datasets,
        expand,
        load_spec,
        scale_names,
        tasks_without_data,
        without_tasks,
    )

    written = load_spec(name)
    device = []
    if args.device is not None:
        from agents.supervised.trainer import make_device

        make_device(args.device)  # one clear error before any run, not one failed run each
        device = [f"supervised.device={args.device}", f"rl.device={args.device}"]
    spec = load_spec(apply_overrides(apply_scale(written, args.scale), device + list(args.set or [])))
    if out is None:
        out = default_sweep_dir(spec["name"] + (f"-{args.scale}" if args.scale else ""))
    missing = tasks_without_data(spec)
    if missing and not args.skip_missing_data:
        raise ValueError("no data here for task " + "; ".join(f"{label}: {why}" for label, why in missing.items())
                         + " (or pass --skip-missing-data to run the other tasks)")
    for label, why in missing.items():
        print(f"not run (no data): {label}: {why}")
    if missing:
        spec = load_spec(without_tasks(spec, missing))
    runs = expand(spec)
    check_claim(spec, runs)
    if args.scale == "paper" or (args.scale is None and scale_names(written)):
        check_datasets(runs, args.allow_subset)
    if args.dry_run:
        print(f"{spec['name']}" + (f" at scale {args.scale}" if args.scale else "") + f": {len(runs)} runs -> {out}")
        updates = sum(r.config["updates"] for r in runs if r.harness == "supervised")
        steps = sum(int(r.config.get("timesteps", 200_000)) for r in runs if r.harness == "rl")
        for r in runs:
            size = f"{r.config['updates']} updates" if r.harness == "supervised" else f"{r.config.get('timesteps', 200_000)} env steps"
            print(f"  {r.id}  [{r.harness}, {size}]")
        print(f"total: {updates} supervised updates, {steps} RL env steps")
        return 0
    from agents.sweep.executors import SweepInterrupted, SweepStopped

    try:
        outcome = run_sweep(spec, out=out, executor=args.executor, workers=args.workers, address=args.address,
                            progress=not args.no_progress, report=not args.no_report)
    except SweepInterrupted as err:
        print(f"memory-bench sweep: error: {err}", file=sys.stderr)
        return 1
    except (SweepStopped, KeyboardInterrupt) as err:
        signum = err.signum if isinstance(err, SweepStopped) else signal.SIGINT
        print(f"memory-bench sweep: {signal.Signals(signum).name}: stopped, and its workers with it; the finished runs "
              f"are kept: relaunch the same command to run the others", file=sys.stderr)
        return 128 + signum
    locked = f", {len(outcome.locked)} still running elsewhere" if outcome.locked else ""
    print(f"{spec['name']}: {outcome.total} runs: {len(outcome.skipped)} already finished, {len(outcome.executed)} executed, "
          f"{len(outcome.failed)} failed{locked}")
    for run_id, error in outcome.failed.items():
        print(f"  failed: {run_id}: {error}", file=sys.stderr)
    if outcome.report is not None:
        print(f"report: {outcome.report} (and report.html beside it)")
    print(f"sweep directory: {outcome.path}")
    if spec.get("claim") and not outcome.failed and not outcome.locked:
        _print_claim(outcome.path)
    return 1 if outcome.failed or outcome.locked else 0


def _add_run_options(p: argparse.ArgumentParser, default_scale: str | None) -> None:
    p.add_argument("--scale", default=default_scale, metavar="SCALE",
                   help="run the spec at one of its scales (smoke: a wiring check; small: the claim experiments "
                   "sized for a 2-core CPU; paper: the papers' settings)"
                   + (f"; default {default_scale}" if default_scale else "; default: the spec as written"))
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a spec value by its dot path (repeatable); supervised.*, rl.* and hidden_size apply "
                   "to every run, e.g. --set supervised.updates=2000 --set seeds=2")
    p.add_argument("--device", default=None,
                   help="torch device of every run, e.g. cuda (default: the spec's, cpu); the same as "
                   "--set supervised.device=D --set rl.device=D")
    p.add_argument("--allow-subset", action="store_true",
                   help="let a paper-scale run use an embedded data subset (e.g. 5,000 MNIST digits) instead of the "
                   "full dataset in $MEMENVS_DATA")
    p.add_argument("--skip-missing-data", action="store_true",
                   help="leave out the tasks whose data is not on this machine (e.g. StanfordDogs, DBpedia) and run the "
                   "rest; the sweep records which were left out and why (default: stop with what to download)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: process pool on this machine (default); ray: Ray tasks (pip install 'memory-bench[ray]')")
    p.add_argument("--address", default=None, help="Ray cluster address for ray.init(address=...), e.g. auto; default: start a local Ray")
    p.add_argument("--workers", type=int, default=None, help="parallel runs (default: one per CPU; one torch thread each)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="sweep directory (default sweeps/<spec name>[-<scale>]; with suite all, DIR/<spec name>-<scale>)")
    p.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their total size; run nothing")
    p.set_defaults(run=run_sweep_command)


def _print_claim(path: Path) -> None:
    """The claim the sweep tests, its checks and the verdict (see agents.sweep.claims)."""
    from agents.sweep.claims import evaluate_claim

    result = evaluate_claim(path)
    print(f"\nclaim: {result.statement}")
    for check in result.checks:
        print(f"  [{check.outcome}] {check.check['type']} {check.check.get('cell', '')}: {check.detail}")
    print(f"verdict: {result.verdict}")


def results_command(args: argparse.Namespace) -> int:
    from agents.sweep.results import archive, write_results_page

    folders = [archive(d, args.archive) for d in args.sweeps]
    page = write_results_page(folders, args.out)
    print(f"wrote {page} from {', '.join(str(f) for f in folders)}")
    return 0


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


def run_report(args: argparse.Namespace) -> int:
    from agents.results.report import write_report

    if len(args.runs) == 1 and (Path(args.runs[0]) / "sweep.json").is_file():  # a sweep directory
        from agents.sweep.report import write_sweep_report

        print(f"wrote {write_sweep_report(args.runs[0], args.out)}")
        return 0
    path, table = write_report(args.runs, args.out)
    print(table)
    print(f"\nwrote {path}")
    return 0


def _add_report(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="markdown table and learning curves of runs",
        description="Write report.md (a table of runs) and PNG learning curves, and print the table.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories, or directories containing runs, or one sweep directory (sweep report)")
    p.add_argument("--out", metavar="DIR", help="where to write; default the run itself, or the runs' common parent")
    p.set_defaults(run=run_report)


def add_parser(subparsers) -> None:
    """Register ``suite``, ``sweep``, ``results`` and ``report`` (called by :mod:`agents.cli`)."""
    from agents.sweep.spec import SPECS_DIR

    names = sorted(p.stem for p in SPECS_DIR.glob("*.yaml"))
    p = subparsers.add_parser(
        "suite",
        help="replay a paper's experiments (a shipped sweep spec) at a scale, then report",
        description="Run a shipped spec (one per paper, and the cross-paper comparison) at one of its scales: "
        "the same engine as `memory-bench sweep`. Relaunch the same command to continue.",
    )
    p.add_argument("spec", metavar="NAME", choices=[*names, "all"], help=f"one of {', '.join(names)}, or all")
    _add_run_options(p, default_scale="smoke")
    p = subparsers.add_parser(
        "sweep",
        help="run a grid of runs (cells x tasks x lengths x seeds) locally or on Ray, then report",
        description="Expand a YAML sweep spec (see agents.sweep.spec; shipped ones: "
        f"{', '.join(names)}) into runs, execute the unfinished ones on a local process pool or a Ray "
        "cluster, and write the sweep report. Relaunch the same command to continue an interrupted sweep.",
    )
    p.add_argument("spec", metavar="SPEC", help="a YAML file, or the name of a shipped spec")
    _add_run_options(p, default_scale=None)
    p = subparsers.add_parser(
        "results",
        help="check each sweep's claim and write the results page",
        description="Archive the small outputs of finished sweeps (configs, summaries, metrics; no checkpoints) "
        "into results/<name>-<scale>/, then write docs/results.md: per claim, the verdict its criterion gives, "
        "the checks, final figures (IQM and bootstrap interval over seeds) and learning curves. Given the "
        "archived folders themselves, it rebuilds the page without copying.",
    )
    p.add_argument("sweeps", nargs="+", metavar="SWEEP_DIR", help="finished sweep directories (or their archived copies)")
    p.add_argument("--archive", default="results", metavar="DIR", help="where the small outputs are kept (default results)")
    p.add_argument("--out", default="docs/results.md", metavar="PAGE", help="the page (default docs/results.md)")
    p.set_defaults(run=results_command)
    _add_report(subparsers)

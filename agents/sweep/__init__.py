"""Sweeps: grids of runs (cells x tasks x memory lengths x seeds) on a process pool or Ray, and
the benchmark report (leaderboards, memory-scaling curves, learning curves, speed).

::

    from agents.sweep import run_sweep, write_sweep_report
    outcome = run_sweep("benchmarks/specs/nru.yaml", out="sweeps/nru", executor="local", workers=2)
    write_sweep_report("sweeps/nru")        # also done by run_sweep at the end

- :mod:`agents.sweep.spec`: the YAML spec and its expansion into :class:`RunSpec` s.
- :mod:`agents.sweep.executors`: ``local`` (ProcessPoolExecutor) and ``ray`` executors.
- :mod:`agents.sweep.runner`: the sweep directory, skip-finished-runs relaunch, execution log.
- :mod:`agents.sweep.report`: aggregation over seeds and the markdown / HTML / PNG report.
- :mod:`agents.sweep.cli`: ``memory-bench sweep`` (``memory-bench report SWEEP_DIR`` delegates here).
"""

from agents.sweep.runner import SweepDir, SweepOutcome, run_sweep
from agents.sweep.spec import RunSpec, expand, load_spec

__all__ = ["RunSpec", "SweepDir", "SweepOutcome", "build_report", "expand", "load_spec", "run_sweep", "write_sweep_report"]


def __getattr__(name: str):
    # The report pulls in matplotlib: import it only when asked for.
    if name in ("build_report", "write_sweep_report"):
        from agents.sweep import report

        return getattr(report, name)
    raise AttributeError(f"module 'agents.sweep' has no attribute {name!r}")

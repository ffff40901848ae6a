"""Sweeps: grids of runs (cells x tasks x memory lengths x seeds) on a process pool or Ray, and
the benchmark report (leaderboards, memory-scaling curves, learning curves, speed).

::

    from agents.sweep import run_sweep, write_sweep_report
    outcome = run_sweep("nru", out="sweeps/nru", executor="local", workers=2)   # a shipped spec or a YAML path
    write_sweep_report("sweeps/nru")        # also done by run_sweep at the end

- :mod:`agents.sweep.spec`: the YAML spec and its expansion into :class:`RunSpec` s.
- :mod:`agents.sweep.executors`: ``local`` (ProcessPoolExecutor) and ``ray`` executors.
- :mod:`agents.sweep.runner`: the sweep directory, skip-finished-runs relaunch, execution log.
- :mod:`agents.sweep.report`: aggregation over seeds and the markdown / HTML / PNG report.
- :mod:`agents.sweep.cli`: ``memory-bench sweep`` (``memory-bench report SWEEP_DIR`` delegates here).
"""

from __future__ import annotations

from agents._lazy import lazy_exports

# Public names and their modules, imported on first use (the runner pulls in torch through the
# run-directory helpers, the report matplotlib; ``memory-bench --help`` needs neither).
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "agents.sweep.report": ["build_report", "write_sweep_report"],
    "agents.sweep.runner": ["SweepDir", "SweepOutcome", "run_sweep"],
    "agents.sweep.spec": ["RunSpec", "expand", "load_spec"],
})

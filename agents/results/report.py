"""Turn run directories into a markdown table and PNG learning curves.

::

    memory-bench report runs/nru runs/lstm --out reports/copy
    # -> reports/copy/report.md, curves_loss.png, curves_score.png (+ curves_accuracy.png)

Numbers come from each run's ``metrics.csv`` (so a run still in progress can be reported) plus
``summary.json`` / ``config.json`` for the parameter count, status and speed. An RL run
(``memory-bench rl``) is read from its ``progress.csv``: its updates are environment steps, its
speed env steps/s, its final score the evaluation's normalised return and its curve the training
episodes' normalised return. "final" is the last
evaluation, "best" the best evaluation of the run (lowest loss, highest score).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.results import plots

from agents.results.runs import RunDir, find_runs, read_curve, read_json
from agents.results.stats import finite

#: Learning-curve plots: file suffix -> (metrics.csv columns to try, y label).
CURVES = {
    "loss": (("eval_ce", "eval_mse"), "evaluation loss (CE nats / MSE)"),
    "score": (("eval_score",), "normalised score (0 = memoryless, 1 = perfect)"),
    "accuracy": (("eval_accuracy",), "per-step accuracy"),
}


@dataclass
class RunRecord:
    """What the report needs from one run directory."""

    name: str
    config: dict[str, Any]
    summary: dict[str, Any] | None
    rows: list[dict[str, float | None]]

    def column(self, names: Iterable[str]) -> tuple[list[float], list[float]]:
        """(updates, values) of the first of ``names`` that the run logged (missing values skipped)."""
        for name in names:
            points = [(r["update"], r[name]) for r in self.rows if r.get(name) is not None]
            if points:
                return [p[0] for p in points], [p[1] for p in points]
        return [], []


def _number(text: str) -> float | None:
    if text in ("", None):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def load_run(run: RunDir, name: str | None = None) -> RunRecord:
    """Read config, summary (if written) and metrics of a run: a supervised run's metrics.csv, or
    an RL run's progress.csv with its episode returns normalised by the env's reference returns
    (``summary["reference"]``) as ``eval_score`` per environment step."""
    summary = read_json(run.summary_path) if run.summary_path.is_file() else None
    progress = run.path / "progress.csv"
    if not run.metrics_path.is_file() and progress.is_file():
        return RunRecord(name or run.path.name, run.read_config(), summary, _rl_rows(progress, summary))
    _, rows = run.read_metrics() if run.metrics_path.is_file() else ([], [])
    parsed = [{k: _number(v) for k, v in row.items()} for row in rows]
    return RunRecord(name or run.path.name, run.read_config(), summary, parsed)


def _rl_rows(progress: Path, summary: dict[str, Any] | None) -> list[dict[str, float | None]]:
    """An RL run's progress.csv as report rows: ``update`` = environment steps, ``eval_score`` =
    the mean episode return normalised by the reference returns (None without them)."""
    from memenvs.core import ReferenceScores

    reference = (summary or {}).get("reference")
    scores = None if not reference else ReferenceScores(**reference)
    return [{"update": steps, "eval_score": None if scores is None else finite(scores.normalise(ret))}
            for steps, ret in read_curve(progress, "time/total_timesteps", "rollout/ep_rew_mean")]


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _task_label(config: dict[str, Any]) -> str:
    kwargs = config.get("task_kwargs") or {}
    args = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    label = f"{config.get('task')}({args})" if args else str(config.get("task"))
    if config.get("curriculum"):
        label += " +curriculum"
    return label


def _cell_label(config: dict[str, Any]) -> str:
    extras = [f"H={config.get('hidden_size')}"]
    extras += [f"{k}={v}" for k, v in (config.get("cell_kwargs") or {}).items()]
    if config.get("tbptt"):
        extras.append(f"tbptt={config['tbptt']}")
    if config.get("aux", "none") != "none":
        extras.append(f"aux={config['aux']}")
    if config.get("budget_weight"):
        extras.append(f"budget={config['budget_weight']}")
    return f"{config.get('cell')} ({', '.join(extras)})"


def table_rows(records: list[RunRecord]) -> list[dict[str, str]]:
    """One dict of formatted cells per run (the columns of the markdown table)."""
    out = []
    for rec in records:
        updates, losses = rec.column(CURVES["loss"][0])
        _, scores = rec.column(CURVES["score"][0])
        summary = rec.summary or {}
        speed = summary.get("updates_per_second", summary.get("fps"))
        if speed is None and rec.rows and rec.rows[-1].get("wall_time"):
            speed = rec.rows[-1]["update"] / rec.rows[-1]["wall_time"]
        out.append(
            {
                "run": rec.name,
                "task": _task_label(rec.config),
                "cell": _cell_label(rec.config),
                "params": _fmt(summary.get("num_params")),
                "updates": _fmt(summary.get("timesteps") if "fps" in summary else (int(updates[-1]) if updates else None)),
                "final loss": _fmt(losses[-1] if losses else None),
                "best loss": _fmt(min(losses) if losses else None),
                "final score": _fmt(summary.get("score") if "fps" in summary else (scores[-1] if scores else None), 3),
                "best score": _fmt(max(scores) if scores else None, 3),
                "updates/s": _fmt(speed, 3),
                "status": summary.get("status", "completed" if summary else "running?"),
            }
        )
    return out


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A GitHub-flavoured markdown table of ``rows`` (the first row's keys are the columns)."""
    if not rows:
        return ""
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(r.get(h, "")).replace("|", "\\|") for h in header) + " |" for r in rows]
    return "\n".join(lines)


def plot_curves(records: list[RunRecord], out_dir: Path) -> list[Path]:
    """One PNG per metric in :data:`CURVES` that some run logged, a line per run."""
    paths = []
    for suffix, (columns, ylabel) in CURVES.items():
        series = [(rec.name, *rec.column(columns)) for rec in records]
        series = [s for s in series if s[1]]
        if not series:
            continue
        fig, (ax,) = plots.panels(1, width=7, height=4.5)
        for name, x, y in series:
            plots.band(ax, x, y, label=name)
        if suffix == "loss" and all(v > 0 for _, _, y in series for v in y):
            ax.set_yscale("log")
        plots.finish(ax, "update", ylabel)
        paths.append(plots.save(fig, out_dir / f"curves_{suffix}.png"))
    return paths


def default_out_dir(runs: list[RunDir]) -> Path:
    """The run itself for one run, else the runs' common parent directory."""
    if len(runs) == 1:
        return runs[0].path
    return Path(os.path.commonpath([str(r.path.resolve()) for r in runs]))


def write_report(paths: Iterable[str | os.PathLike], out_dir: str | os.PathLike | None = None) -> tuple[Path, str]:
    """Write ``report.md`` and the learning-curve PNGs; return the report path and the table.

    ``paths`` are run directories or directories of runs (searched one level down).
    """
    runs = find_runs(paths)
    out = Path(out_dir) if out_dir is not None else default_out_dir(runs)
    out.mkdir(parents=True, exist_ok=True)
    names = [r.path.name for r in runs]
    if len(set(names)) < len(names):  # same leaf name in different parents: use longer names
        names = [os.path.relpath(r.path.resolve(), out.resolve()) for r in runs]
    records = [load_run(r, n) for r, n in zip(runs, names)]
    table = markdown_table(table_rows(records))
    plots = plot_curves(records, out)
    lines = ["# Training report", "", table, ""]
    lines += [f"![{p.stem}]({p.name})" for p in plots]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path, table

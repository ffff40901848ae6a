"""The benchmark report of a sweep: leaderboards, memory-scaling curves, learning curves, speed.

::

    memory-bench report sweeps/copy-scaling          # -> sweeps/copy-scaling/report/
    # report.md + report.html (self-contained: PNGs embedded) + scaling_*.png + curves_*.png
    # + results.csv (one row per run)

Scores. Every run is reduced to the spec's ranking metric (``report.metric``, default ``score``:
the task's normalised score, 0 = best memoryless policy, 1 = perfect memory) at its ``final``
evaluation (``report.which: best`` takes the run's best evaluation instead). RL runs are ranked
by the normalised return of their final evaluation (``(return - memoryless) / (optimal -
memoryless)`` with the env's reference scores), or by the raw return for envs without references.
Over seeds a cell gets mean ± the 95% Student-t interval (``report.confidence``).

Tables.
- One leaderboard per task variant (task + swept kwargs): cells ranked by mean (1 = best, equal
  means share a rank), with the speed of training next to the score (updates/s, or env-steps/s
  for RL) and the seeds that finished / failed / diverged.
- "Top 2 on every task": each cell's rank on every variant, its mean rank, and whether it is in
  the top 2 on every variant it was planned on (the NRU paper's headline criterion). A planned
  variant without any finished seed counts as not in the top 2.
- Memory scaling (bsuite style): for each task with a memory knob, the normalised score against
  the knob per cell (PNG), and one number per cell: the largest knob value whose mean normalised
  score reaches ``report.threshold`` (default 0.9, i.e. 90% of the way from memoryless to perfect).
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from agents.supervised.metrics import LOWER_IS_BETTER
from agents.supervised.report import markdown_table
from agents.supervised.runs import read_json
from agents.sweep.execute import ERROR_FILE, SUMMARY_FILE
from agents.sweep.runner import SweepDir
from agents.sweep.spec import REPORT_DEFAULTS, RunSpec, _slug
from agents.sweep.stats import Interval, competition_ranks, largest_solved, mean_interval

#: Columns that hold wall-clock measurements (differ between identical sweeps).
TIMING_COLUMNS = ("updates/s", "env-steps/s")


@dataclass
class RunResult:
    """One run reduced to what the report needs."""

    run: RunSpec
    status: str  # "done", "diverged", "failed" or "pending"
    error: str | None = None
    metric: float | None = None  # the ranking metric
    score: float | None = None  # normalised score (memory-scaling curves)
    speed: float | None = None  # updates/s (supervised) or env-steps/s (RL)
    curve: tuple[list[float], list[float]] = field(default_factory=lambda: ([], []))


@dataclass
class Cohort:
    """The seeds of one cell on one task variant."""

    cell: str
    variant: str
    results: list[RunResult]
    confidence: float

    def finished(self) -> list[RunResult]:
        return [r for r in self.results if r.status in ("done", "diverged")]

    @property
    def metric(self) -> Interval:
        return mean_interval([r.metric for r in self.finished() if r.metric is not None], self.confidence)

    @property
    def score(self) -> Interval:
        return mean_interval([r.score for r in self.finished() if r.score is not None], self.confidence)

    @property
    def speed(self) -> float | None:
        speeds = [r.speed for r in self.finished() if r.speed is not None]
        return sum(speeds) / len(speeds) if speeds else None

    def seeds_text(self) -> str:
        counts = {s: sum(r.status == s for r in self.results) for s in ("done", "diverged", "failed", "pending")}
        text = f"{counts['done'] + counts['diverged']}/{len(self.results)}"
        extras = [f"{n} {s}" for s, n in counts.items() if s != "done" and n]
        return text + (f" ({', '.join(extras)})" if extras else "")


@dataclass
class SweepReport:
    """Everything the report shows, as data (tables are lists of string dicts)."""

    name: str
    settings: dict[str, Any]
    results: list[RunResult]
    leaderboards: dict[str, list[dict[str, str]]]
    overview: list[dict[str, str]]
    scaling: list[dict[str, str]]
    scaling_points: dict[str, dict[str, dict[Any, Interval]]]  # group -> cell -> knob value -> score
    knobs: dict[str, str]  # group -> knob name
    cohorts: dict[tuple[str, str], Cohort]


# --------------------------------------------------------------------------------------------
# Reading runs
# --------------------------------------------------------------------------------------------


def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@lru_cache(maxsize=None)
def _rl_reference(env: str, env_kw_json: str) -> tuple[float, float] | None:
    """(memoryless, optimal) returns an env declares (``env.unwrapped.reference``), if any."""
    import gymnasium as gym

    import memenvs  # noqa: F401  (registers the ids)
    from memenvs.core import resolve_id

    try:
        env_id = resolve_id(env)
    except ValueError:
        env_id = env
    instance = gym.make(env_id, **json.loads(env_kw_json))
    try:
        reference = getattr(instance.unwrapped, "reference", None)
    finally:
        instance.close()
    if reference is None or reference.optimal == reference.memoryless:
        return None
    return float(reference.memoryless), float(reference.optimal)


def _normalise(value: float | None, reference: tuple[float, float] | None) -> float | None:
    if value is None or reference is None:
        return value if reference is None else None
    memoryless, optimal = reference
    return (value - memoryless) / (optimal - memoryless)


def _metric_name(metric: str, metrics: dict[str, Any]) -> str:
    if metric == "loss":
        return "ce" if "ce" in metrics else "mse"
    return metric


def load_result(sweep: SweepDir, run: RunSpec, settings: dict[str, Any]) -> RunResult:
    """Read one run's directory (summary, metrics/progress CSV, error.json)."""
    run_dir = sweep.run_dir(run.id)
    if not (run_dir / SUMMARY_FILE).is_file():
        if (run_dir / ERROR_FILE).is_file():
            return RunResult(run, "failed", error=read_json(run_dir / ERROR_FILE).get("error"))
        return RunResult(run, "pending")
    summary = read_json(run_dir / SUMMARY_FILE)
    if run.harness == "supervised":
        evaluation = summary.get(settings["which"]) or {}
        metrics = evaluation.get("metrics") or {}
        rows = _read_csv(run_dir / "metrics.csv")
        points = [(_finite(r.get("update")), _finite(r.get("eval_score"))) for r in rows]
        points = [(x, y) for x, y in points if x is not None and y is not None]
        return RunResult(
            run,
            "diverged" if summary.get("status") == "diverged" else "done",
            error=summary.get("error"),
            metric=_finite(metrics.get(_metric_name(settings["metric"], metrics))),
            score=_finite(metrics.get("score")),
            speed=_finite(summary.get("updates_per_second")),
            curve=([p[0] for p in points], [p[1] for p in points]),
        )
    reference = _rl_reference(run.config["env"], json.dumps(run.config.get("env_kw") or {}, sort_keys=True))
    score = _normalise(_finite((summary.get("eval") or {}).get("mean_return")), reference)
    rows = _read_csv(run_dir / "progress.csv")
    points = [(_finite(r.get("time/total_timesteps")), _normalise(_finite(r.get("rollout/ep_rew_mean")), reference))
              for r in rows]
    points = [(x, y) for x, y in points if x is not None and y is not None]
    return RunResult(run, "done", metric=score, score=score, speed=_finite(summary.get("fps")),
                     curve=([p[0] for p in points], [p[1] for p in points]))


# --------------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------------


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _higher_is_better(metric: str, harness: str) -> bool:
    return harness == "rl" or metric not in LOWER_IS_BETTER and metric != "loss"


def _knob_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def build_report(path: str | os.PathLike) -> SweepReport:
    """Aggregate a sweep directory into tables (no files written)."""
    sweep = SweepDir(path)
    manifest = sweep.read_manifest()
    settings = {**REPORT_DEFAULTS, **(manifest.get("report") or {})}
    runs = [RunSpec.from_dict(r) for r in manifest["runs"]]
    results = [load_result(sweep, run, settings) for run in runs]
    cells = _unique(r.cell for r in runs)
    variants = _unique(r.variant for r in runs)
    harness_of = {r.variant: r.harness for r in runs}
    cohorts: dict[tuple[str, str], Cohort] = {}
    for result in results:
        key = (result.run.variant, result.run.cell)
        cohorts.setdefault(key, Cohort(result.run.cell, result.run.variant, [], settings["confidence"])).results.append(result)

    metric = settings["metric"]
    leaderboards: dict[str, list[dict[str, str]]] = {}
    ranks: dict[str, dict[str, int | None]] = {}
    for variant in variants:
        harness = harness_of[variant]
        shown_metric = "score" if harness == "rl" else metric
        members = [cohorts[(variant, c)] for c in cells if (variant, c) in cohorts]
        ranks[variant] = competition_ranks({c.cell: c.metric.mean for c in members}, _higher_is_better(metric, harness))
        order = sorted(members, key=lambda c: (ranks[variant][c.cell] is None, ranks[variant][c.cell] or 0))
        speed_column = "updates/s" if harness == "supervised" else "env-steps/s"
        rows = []
        for c in order:
            row = {"rank": str(ranks[variant][c.cell] or "–"), "cell": c.cell,
                   f"{shown_metric} ({settings['which'] if harness == 'supervised' else 'final'}, "
                   f"mean ± {settings['confidence']:.0%} CI)": c.metric.text()}
            if shown_metric != "score":
                row["score"] = c.score.text()
            row["seeds"] = c.seeds_text()
            row[speed_column] = "–" if c.speed is None else f"{c.speed:.3g}"
            rows.append(row)
        leaderboards[variant] = rows

    overview = []
    for cell in cells:
        planned = [v for v in variants if (v, cell) in cohorts]
        cell_ranks = {v: ranks[v][cell] for v in planned}
        known = [r for r in cell_ranks.values() if r is not None]
        row = {"cell": cell}
        row.update({v: ("" if v not in cell_ranks else str(cell_ranks[v] or "–")) for v in variants})
        row["mean rank"] = f"{sum(known) / len(known):.2f}" if known else "–"
        row["top 2 on every task"] = "yes" if planned and all(r is not None and r <= 2 for r in cell_ranks.values()) else "no"
        overview.append(row)

    groups = _unique(r.group for r in runs if r.knob is not None)
    knobs = {r.group: r.knob for r in runs if r.knob is not None}
    scaling_points: dict[str, dict[str, dict[Any, Interval]]] = {}
    for group in groups:
        per_cell: dict[str, dict[Any, list[float]]] = {}
        for result in results:
            if result.run.group == group and result.status in ("done", "diverged"):
                per_cell.setdefault(result.run.cell, {}).setdefault(result.run.knob_value, [])
                if result.score is not None:
                    per_cell[result.run.cell][result.run.knob_value].append(result.score)
        scaling_points[group] = {
            cell: {x: mean_interval(ys, settings["confidence"]) for x, ys in sorted(per_cell[cell].items())}
            for cell in cells if cell in per_cell
        }
    scaling = []
    for cell in cells:
        row = {"cell": cell}
        for group in groups:
            points = scaling_points[group].get(cell)
            if points is None:
                row[f"{group} (max {knobs[group]})"] = ""
                continue
            best = largest_solved({x: i.mean for x, i in points.items()}, settings["threshold"])
            row[f"{group} (max {knobs[group]})"] = "none" if best is None else _knob_text(best)
        scaling.append(row)
    return SweepReport(manifest["name"], settings, results, leaderboards, overview, scaling if groups else [],
                       scaling_points, knobs, cohorts)


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


def _band(ax, xs: list[float], intervals: list[Interval], label: str) -> None:
    means = [i.mean for i in intervals]
    line = ax.plot(xs, means, marker="o" if len(xs) < 30 else None, markersize=3, label=label)[0]
    if any(i.half_width is not None for i in intervals):
        low = [i.mean - (i.half_width or 0.0) for i in intervals]
        high = [i.mean + (i.half_width or 0.0) for i in intervals]
        ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)


def plot_scaling(report: SweepReport, out: Path) -> list[Path]:
    """One PNG per task group with a memory knob: normalised score vs knob value, a line per cell."""
    paths = []
    for group, per_cell in report.scaling_points.items():
        if not per_cell:
            continue
        fig = Figure(figsize=(6.5, 4.2), dpi=100)
        ax = fig.add_subplot()
        xs_all = []
        for cell, points in per_cell.items():
            xs = [x for x, i in points.items() if i.mean is not None]
            xs_all += xs
            if xs:
                _band(ax, xs, [points[x] for x in xs], cell)
        ax.axhline(report.settings["threshold"], color="gray", linestyle="--", linewidth=1,
                   label=f"solved ({report.settings['threshold']:g})")
        numeric = [x for x in xs_all if isinstance(x, (int, float))]
        if numeric and min(numeric) > 0 and max(numeric) / min(numeric) >= 10:
            ax.set_xscale("log")
        ax.set_xlabel(report.knobs[group])
        ax.set_ylabel("normalised score (0 = memoryless, 1 = perfect)")
        ax.set_title(f"memory scaling: {group}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        path = out / f"scaling_{_slug(group)}.png"
        fig.savefig(path)
        paths.append(path)
    return paths


def plot_curves(report: SweepReport, out: Path) -> list[Path]:
    """One PNG per task: a panel per variant, the mean normalised score over training per cell."""
    paths = []
    by_task: dict[str, list[str]] = {}
    for result in report.results:
        by_task.setdefault(result.run.task, [])
        if result.run.variant not in by_task[result.run.task]:
            by_task[result.run.task].append(result.run.variant)
    for task, variants in by_task.items():
        columns = min(3, len(variants))
        rows = math.ceil(len(variants) / columns)
        fig = Figure(figsize=(4.6 * columns, 3.4 * rows), dpi=100)
        drew = False
        for i, variant in enumerate(variants):
            ax = fig.add_subplot(rows, columns, i + 1)
            harness = "supervised"
            for (v, cell), cohort in report.cohorts.items():
                if v != variant:
                    continue
                by_x: dict[float, list[float]] = {}
                for r in cohort.finished():
                    harness = r.run.harness
                    for x, y in zip(*r.curve):
                        by_x.setdefault(x, []).append(y)
                if by_x:
                    xs = sorted(by_x)
                    _band(ax, xs, [mean_interval(by_x[x], report.settings["confidence"]) for x in xs], cell)
                    drew = True
            ax.set_title(variant, fontsize="medium")
            ax.set_xlabel("update" if harness == "supervised" else "env steps")
            ax.set_ylabel("normalised score")
            ax.grid(True, alpha=0.3)
            if ax.lines:
                ax.legend(fontsize="x-small")
        if not drew:
            continue
        fig.tight_layout()
        path = out / f"curves_{_slug(task)}.png"
        fig.savefig(path)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _html_table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "<p>(none)</p>"
    header = "".join(f"<th>{html.escape(h)}</th>" for h in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def _results_csv(report: SweepReport, path: Path) -> None:
    columns = ["id", "harness", "task", "variant", "knob", "knob_value", "cell", "seed", "status",
               "metric", "score", "speed", "error"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        for r in report.results:
            writer.writerow({"id": r.run.id, "harness": r.run.harness, "task": r.run.task, "variant": r.run.variant,
                             "knob": r.run.knob or "", "knob_value": "" if r.run.knob_value is None else r.run.knob_value,
                             "cell": r.run.cell, "seed": r.run.seed, "status": r.status,
                             "metric": "" if r.metric is None else repr(r.metric),
                             "score": "" if r.score is None else repr(r.score),
                             "speed": "" if r.speed is None else repr(r.speed), "error": r.error or ""})


_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee;margin:0.5em 0}code{background:#f6f6f6}"""


def write_sweep_report(path: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write report.md, report.html, the PNGs and results.csv for a sweep; return report.md's path."""
    report = build_report(path)
    out = Path(out) if out is not None else Path(path) / "report"
    out.mkdir(parents=True, exist_ok=True)
    scaling_pngs = plot_scaling(report, out)
    curve_pngs = plot_curves(report, out)
    _results_csv(report, out / "results.csv")
    s = report.settings
    counts = {k: sum(r.status == k for r in report.results) for k in ("done", "diverged", "failed", "pending")}
    intro = (f"{len(report.results)} runs: {counts['done']} done, {counts['diverged']} diverged, {counts['failed']} failed, "
             f"{counts['pending']} not finished. Ranking metric: `{s['metric']}` at the {s['which']} evaluation "
             f"(RL: normalised final return), mean ± {s['confidence']:.0%} Student-t interval over seeds.")
    failures = [r for r in report.results if r.status == "failed"]

    md = [f"# Sweep report: {report.name}", "", intro, "",
          "## Top 2 on every task", "", "Rank of each cell on every task variant (1 = best).", "",
          markdown_table(report.overview), "", "## Leaderboards", ""]
    for variant, rows in report.leaderboards.items():
        md += [f"### {variant}", "", markdown_table(rows), ""]
    if report.scaling:
        md += ["## Memory scaling", "",
               f"Largest memory length whose mean normalised score is at least {s['threshold']:g} "
               "(none: no length solved).", "", markdown_table(report.scaling), ""]
        md += [f"![{p.stem}]({p.name})" for p in scaling_pngs] + [""]
    if curve_pngs:
        md += ["## Learning curves", ""] + [f"![{p.stem}]({p.name})" for p in curve_pngs] + [""]
    if failures:
        md += ["## Failed runs", ""] + [f"- `{r.run.id}`: {r.error}" for r in failures] + [""]
    md_path = out / "report.md"
    md_path.write_text("\n".join(md) + "\n")

    def img(p: Path) -> str:
        data = base64.b64encode(p.read_bytes()).decode("ascii")
        return f'<img alt="{html.escape(p.stem)}" src="data:image/png;base64,{data}">'

    page = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(report.name)}</title>",
            f"<style>{_CSS}</style></head><body>", f"<h1>Sweep report: {html.escape(report.name)}</h1>",
            f"<p>{html.escape(intro).replace('`', '')}</p>", "<h2>Top 2 on every task</h2>", _html_table(report.overview),
            "<h2>Leaderboards</h2>"]
    for variant, rows in report.leaderboards.items():
        page += [f"<h3>{html.escape(variant)}</h3>", _html_table(rows)]
    if report.scaling:
        page += ["<h2>Memory scaling</h2>",
                 f"<p>Largest memory length whose mean normalised score is at least {s['threshold']:g}.</p>",
                 _html_table(report.scaling)] + [img(p) for p in scaling_pngs]
    if curve_pngs:
        page += ["<h2>Learning curves</h2>"] + [img(p) for p in curve_pngs]
    if failures:
        page += ["<h2>Failed runs</h2><ul>"] + [
            f"<li><code>{html.escape(r.run.id)}</code>: {html.escape(r.error or '')}</li>" for r in failures] + ["</ul>"]
    page.append("</body></html>")
    (out / "report.html").write_text("\n".join(page) + "\n")
    return md_path

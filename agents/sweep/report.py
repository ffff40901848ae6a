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
Over seeds a cell gets the interquartile mean (IQM, the mean of the middle 50% of seeds; the plain
mean for fewer than 4 seeds) and its stratified-bootstrap confidence interval (rliable,
percentile method, ``report.confidence``, a fixed bootstrap seed so reports are reproducible):
``0.912 [0.88, 0.95]``; a single seed shows its value alone.

Tables.
- One leaderboard per task variant (task + swept kwargs): cells ranked by IQM (1 = best, equal
  IQMs share a rank), the probability of improvement over the next row (rliable: the fraction of
  seed pairs where this cell does better, ties counting one half), the seeds that finished /
  failed / diverged, the parameter count, the main hyper-parameters (hidden size, cell kwargs;
  lr and batch size when they differ between cells) and the speed of training (updates/s, or
  env-steps/s for RL).
- Not solved. When the ranking metric is the normalised score (or an RL normalised return), a
  cell whose IQM is at or below the memoryless reference (score <= 0) has not solved the variant:
  it is shown as "not solved", gets no rank and is never in the top 2 there; the others are ranked
  among themselves. Other metrics (accuracy, ce, raw returns) rank every cell.
- "Top 2 on every task": each cell's rank on every variant, its mean rank over the variants it is
  ranked on, how many variants it solved, and whether it is in the top 2 (of the solved cells) on
  every variant it was planned on (the NRU paper's headline criterion). A planned variant without
  any finished seed counts as not in the top 2.
- Memory scaling (bsuite style): for each task with a memory knob, the normalised score (IQM and
  band) against the knob per cell (PNG), and per cell: the largest knob value whose IQM normalised
  score reaches ``report.threshold`` (default 0.9, i.e. 90% of the way from memoryless to perfect)
  and bsuite's memory score, the fraction of the planned knob values it solves (a value without
  finished seeds counts as not solved).
- Learning curves: per evaluation step, the IQM over seeds with its bootstrap band.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.results import plots
from agents.results.report import markdown_table
from agents.results.runs import read_curve, read_json
from agents.sweep.execute import ERROR_FILE, SUMMARY_FILE
from agents.sweep.runner import SweepDir
from agents.sweep.spec import REPORT_DEFAULTS, RunSpec, _slug
from agents.results.stats import LOWER_IS_BETTER, Estimate, competition_ranks, evaluation_of, finite, iqm_estimate, largest_solved, metric_key, probability_of_improvement

if TYPE_CHECKING:
    from memenvs.core import ReferenceScores

#: Columns that hold wall-clock measurements (differ between identical sweeps).
TIMING_COLUMNS = ("updates/s", "env-steps/s")
#: Bootstrap resamples for the leaderboard and scaling intervals, and for the learning-curve bands.
REPS = 2000
CURVE_REPS = 1000
NOT_SOLVED = "not solved"


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
    num_params: int | None = None  # trainable parameters (summary.json), if recorded
    normalised: bool = True  # False for RL returns of an env without reference scores


@lru_cache(maxsize=4096)
def _estimate(values: tuple[float, ...], confidence: float) -> Estimate | None:
    """:func:`iqm_estimate` with the report's resamples, cached (scaling reuses the cohorts' scores)."""
    return iqm_estimate(values, confidence, reps=REPS, seed=0)


def _iqm_rows(samples: np.ndarray) -> np.ndarray:
    """The IQM of each row (scipy's ``trim_mean(row, 0.25)``, what rliable's ``aggregate_iqm`` is)."""
    n = samples.shape[1]
    cut = int(0.25 * n)
    return np.sort(samples, axis=1)[:, cut:n - cut].mean(axis=1)


def _iqm_band(values: Sequence[float | None], confidence: float, reps: int = CURVE_REPS, seed: int = 0) -> Estimate | None:
    """IQM over seeds with a percentile-bootstrap interval, vectorised in numpy: the same estimate
    as :func:`iqm_estimate` (with one task the stratified bootstrap resamples the seeds) without
    its per-resample Python loop, for learning curves with hundreds of points per cohort."""
    xs = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if len(xs) == 0:
        return None
    point = float(_iqm_rows(xs[None, :])[0])
    if len(xs) < 2:
        return Estimate(point, point, point, 1)
    boot = _iqm_rows(xs[np.random.default_rng(seed).integers(0, len(xs), size=(reps, len(xs)))])
    low, high = np.percentile(boot, [50 * (1 - confidence), 50 * (1 + confidence)])
    return Estimate(point, float(low), float(high), len(xs))


@dataclass
class Cohort:
    """The seeds of one cell on one task variant."""

    cell: str
    variant: str
    results: list[RunResult]
    confidence: float

    def finished(self) -> list[RunResult]:
        return [r for r in self.results if r.status in ("done", "diverged")]

    def metric_values(self) -> list[float]:
        return [r.metric for r in self.finished() if r.metric is not None]

    @property
    def metric(self) -> Estimate | None:
        """IQM of the ranking metric over the finished seeds and its bootstrap interval."""
        return _estimate(tuple(self.metric_values()), self.confidence)

    @property
    def score(self) -> Estimate | None:
        """IQM of the normalised score over the finished seeds and its bootstrap interval."""
        return _estimate(tuple(r.score for r in self.finished() if r.score is not None), self.confidence)

    @property
    def speed(self) -> float | None:
        speeds = [r.speed for r in self.finished() if r.speed is not None]
        return sum(speeds) / len(speeds) if speeds else None

    @property
    def num_params(self) -> int | None:
        counts = [r.num_params for r in self.finished() if r.num_params is not None]
        return counts[0] if counts else None

    @property
    def config(self) -> dict[str, Any]:
        """The run configuration of the cell on this variant (the seeds differ only in their seed)."""
        return self.results[0].run.config

    def seeds_text(self) -> str:
        counts = {s: sum(r.status == s for r in self.results) for s in ("done", "diverged", "failed", "pending")}
        text = f"{counts['done'] + counts['diverged']}/{len(self.results)}"
        extras = [f"{n} {s}" for s, n in counts.items() if s != "done" and n]
        return text + (f" ({', '.join(extras)})" if extras else "")


@dataclass
class SweepReport:
    """Everything the report shows, as data (tables are lists of string dicts).

    ``ranks[variant][cell]`` is the cell's rank among the solved cells (None: no finished seed, or
    not solved); ``solved[variant][cell]`` is False for a cell that did not beat the memoryless
    reference (only on variants ranked by a normalised score; elsewhere every cell with results is
    True) and None for a cell without results.
    """

    name: str
    settings: dict[str, Any]
    results: list[RunResult]
    leaderboards: dict[str, list[dict[str, str]]]
    overview: list[dict[str, str]]
    scaling: list[dict[str, str]]
    scaling_points: dict[str, dict[str, dict[Any, Estimate | None]]]  # group -> cell -> knob value -> IQM score
    knobs: dict[str, str]  # group -> knob name
    cohorts: dict[tuple[str, str], Cohort]
    ranks: dict[str, dict[str, int | None]] = field(default_factory=dict)
    solved: dict[str, dict[str, bool | None]] = field(default_factory=dict)
    ruled: list[str] = field(default_factory=list)  # variants ranked by a normalised score (not-solved rule)
    not_run: dict[str, str] = field(default_factory=dict)  # task label -> why it was left out (no data here)


# --------------------------------------------------------------------------------------------
# Reading runs
# --------------------------------------------------------------------------------------------


def _count(value: Any) -> int | None:
    value = finite(value)
    return None if value is None else int(value)


@lru_cache(maxsize=None)
def _rl_reference(env: str, env_kw_json: str) -> ReferenceScores | None:
    """The reference returns an env declares, if any (cached per env and kwargs)."""
    from agents.rl.trainer import env_reference

    return env_reference(env, json.loads(env_kw_json))


def _normalise(value: float | None, reference: ReferenceScores | None) -> float | None:
    """``value`` normalised by the env's references; as it is where the env declares none, and
    None where it is missing or the normalised score is undefined."""
    if value is None or reference is None:
        return value if reference is None else None
    return finite(reference.normalise(value))


def load_result(sweep: SweepDir, run: RunSpec, settings: dict[str, Any]) -> RunResult:
    """Read one run's directory (summary, metrics/progress CSV, error.json)."""
    run_dir = sweep.run_dir(run.id)
    if not (run_dir / SUMMARY_FILE).is_file():
        if (run_dir / ERROR_FILE).is_file():
            return RunResult(run, "failed", error=read_json(run_dir / ERROR_FILE).get("error"))
        return RunResult(run, "pending")
    summary = read_json(run_dir / SUMMARY_FILE)
    if run.harness == "supervised":
        evaluation = evaluation_of(summary, settings["which"])
        metrics = evaluation.get("metrics") or {}
        points = read_curve(run_dir / "metrics.csv", "update", "eval_score")
        return RunResult(
            run,
            "diverged" if summary.get("status") == "diverged" else "done",
            error=summary.get("error"),
            metric=finite(metrics.get(metric_key(settings["metric"], metrics))),
            score=finite(metrics.get("score")),
            speed=finite(summary.get("updates_per_second")),
            curve=([p[0] for p in points], [p[1] for p in points]),
            num_params=_count(summary.get("num_params")),
        )
    config = run.config  # an RLConfig dict (or, in a sweep planned before it, the rl options)
    reference = _rl_reference(config.get("task", config.get("env")),
                              json.dumps(config.get("task_kwargs", config.get("env_kw")) or {}, sort_keys=True))
    score = _normalise(finite((summary.get("eval") or {}).get("mean_return")), reference)
    points = [(x, _normalise(y, reference)) for x, y in read_curve(run_dir / "progress.csv", "time/total_timesteps",
                                                                   "rollout/ep_rew_mean")]
    points = [(x, y) for x, y in points if y is not None]
    return RunResult(run, "done", metric=score, score=score, speed=finite(summary.get("fps")),
                     curve=([p[0] for p in points], [p[1] for p in points]),
                     num_params=_count(summary.get("num_params")), normalised=reference is not None)


# --------------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------------


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _higher_is_better(metric: str, harness: str) -> bool:
    return harness == "rl" or metric not in LOWER_IS_BETTER and metric != "loss"


def _knob_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _value_text(value: Any) -> str:
    """A hyper-parameter value, compactly: ``64``, ``0.001``, ``chrono``, ``[1,2]``."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _kwargs_text(kwargs: dict[str, Any] | None) -> str:
    """``memory_size=64, num_heads=4``; ``–`` for none."""
    return ", ".join(f"{k}={_value_text(v)}" for k, v in (kwargs or {}).items()) or "–"


def _cell_kwargs(config: dict[str, Any]) -> dict[str, Any]:
    return config.get("cell_kwargs", config.get("cell_kw")) or {}


def _speed_text(speed: float | None) -> str:
    """Whole numbers (``1234``); two significant digits below one (``0.42``), never ``0``."""
    if speed is None:
        return "–"
    return f"{speed:.0f}" if speed >= 0.5 else f"{speed:.2g}"


def _uses_not_solved(metric: str, harness: str, members: list[Cohort]) -> bool:
    """Whether the variant is ranked by a normalised score, where <= 0 means not solved."""
    if harness == "rl":
        return all(r.normalised for c in members for r in c.finished())
    return metric == "score"


def _rank_text(rank: int | None, solved: bool | None) -> str:
    return NOT_SOLVED if solved is False else str(rank or "–")


def _leaderboard(harness: str, members: list[Cohort], settings: dict[str, Any],
                 ranks: dict[str, int | None], solved: dict[str, bool | None], higher: bool) -> list[dict[str, str]]:
    metric = settings["metric"]
    shown_metric = "score" if harness == "rl" else metric
    which = settings["which"] if harness == "supervised" else "final"
    metric_column = f"{shown_metric} ({which}, IQM [{settings['confidence']:.0%} CI])"
    sign = 1.0 if higher else -1.0

    def order_key(c: Cohort) -> tuple:
        estimate = c.metric
        group = 0 if ranks[c.cell] is not None else 1 if estimate is not None else 2
        return group, ranks[c.cell] or 0, -sign * estimate.point if estimate is not None else 0.0

    order = sorted(members, key=order_key)
    optional = {key: len({repr(c.config.get(key)) for c in members}) > 1 for key in ("lr", "batch_size")}
    speed_column = "updates/s" if harness == "supervised" else "env-steps/s"
    rows = []
    for i, c in enumerate(order):
        estimate = c.metric
        row = {"rank": _rank_text(ranks[c.cell], solved[c.cell]), "cell": c.cell,
               metric_column: "–" if estimate is None else estimate.text()}
        if shown_metric != "score":
            row["score"] = "–" if c.score is None else c.score.text()
        following = next((o for o in order[i + 1:] if o.metric_values()), None)
        p = None
        if estimate is not None and following is not None:
            p = probability_of_improvement([sign * v for v in c.metric_values()],
                                           [sign * v for v in following.metric_values()])
        row["P(better than next)"] = "–" if p is None else f"{p:.2f}"
        row["seeds"] = c.seeds_text()
        row["params"] = "–" if c.num_params is None else str(c.num_params)
        row["hidden_size"] = _value_text(c.config.get("hidden_size"))
        row["cell_kwargs"] = _kwargs_text(_cell_kwargs(c.config))
        for key, shown in optional.items():
            if shown:
                row[key] = "default" if c.config.get(key) is None else _value_text(c.config[key])
        row[speed_column] = _speed_text(c.speed)
        rows.append(row)
    return rows


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
    solved: dict[str, dict[str, bool | None]] = {}
    ruled: list[str] = []  # variants where the not-solved rule applies
    for variant in variants:
        harness = harness_of[variant]
        members = [cohorts[(variant, c)] for c in cells if (variant, c) in cohorts]
        higher = _higher_is_better(metric, harness)
        points = {c.cell: None if c.metric is None else c.metric.point for c in members}
        if _uses_not_solved(metric, harness, members):
            ruled.append(variant)
            solved[variant] = {cell: None if p is None else p > 0 for cell, p in points.items()}
        else:
            solved[variant] = {cell: None if p is None else True for cell, p in points.items()}
        # rounded so that float noise in equal IQMs (0.1 + 0.2 + 0.3 vs 3 x 0.2) does not split a tie
        ranks[variant] = competition_ranks(
            {cell: round(p, 12) if solved[variant][cell] else None for cell, p in points.items()}, higher)
        leaderboards[variant] = _leaderboard(harness, members, settings, ranks[variant], solved[variant], higher)

    overview = []
    for cell in cells:
        planned = [v for v in variants if (v, cell) in cohorts]
        cell_ranks = {v: ranks[v][cell] for v in planned}
        known = [r for r in cell_ranks.values() if r is not None]
        row = {"cell": cell}
        row.update({v: ("" if v not in cell_ranks else _rank_text(cell_ranks[v], solved[v][cell])) for v in variants})
        row["mean rank"] = f"{sum(known) / len(known):.2f}" if known else "–"
        if ruled:
            mine = [v for v in planned if v in ruled]
            row["tasks solved"] = f"{sum(bool(solved[v][cell]) for v in mine)}/{len(mine)}" if mine else "–"
        row["top 2 on every task"] = "yes" if planned and all(r is not None and r <= 2 for r in cell_ranks.values()) else "no"
        overview.append(row)

    groups = _unique(r.group for r in runs if r.knob is not None)
    knobs = {r.group: r.knob for r in runs if r.knob is not None}
    scaling_points: dict[str, dict[str, dict[Any, Estimate | None]]] = {}
    for group in groups:
        per_cell: dict[str, dict[Any, list[float]]] = {}
        for result in results:  # every planned knob value; scores of the finished seeds
            if result.run.group == group:
                ys = per_cell.setdefault(result.run.cell, {}).setdefault(result.run.knob_value, [])
                if result.status in ("done", "diverged") and result.score is not None:
                    ys.append(result.score)
        scaling_points[group] = {
            cell: {x: _estimate(tuple(ys), settings["confidence"]) for x, ys in sorted(per_cell[cell].items())}
            for cell in cells if cell in per_cell
        }
    scaling = []
    threshold = settings["threshold"]
    for cell in cells:
        row = {"cell": cell}
        for group in groups:
            points = scaling_points[group].get(cell)
            largest_column, score_column = f"{group} (max {knobs[group]})", f"{group} (memory score)"
            if points is None:
                row[largest_column] = row[score_column] = ""
                continue
            best = largest_solved({x: None if e is None else e.point for x, e in points.items()}, threshold)
            row[largest_column] = "none" if best is None else _knob_text(best)
            hits = sum(e is not None and e.point >= threshold for e in points.values())
            row[score_column] = f"{hits / len(points):.2f} ({hits}/{len(points)})"
        scaling.append(row)
    return SweepReport(manifest["name"], settings, results, leaderboards, overview, scaling if groups else [],
                       scaling_points, knobs, cohorts, ranks, solved, ruled, dict(manifest.get("not_run") or {}))


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


def _band(ax: Any, xs: list[float], estimates: list[Estimate], label: str) -> None:
    """IQM line with its bootstrap band (the band only where some point has more than one seed)."""
    spread = any(e.n > 1 for e in estimates)
    plots.band(ax, xs, [e.point for e in estimates], [e.low for e in estimates] if spread else None,
               [e.high for e in estimates] if spread else None, label=label)


def plot_scaling(report: SweepReport, out: Path) -> list[Path]:
    """One PNG per task group with a memory knob: IQM normalised score (and its bootstrap band)
    vs knob value, a line per cell."""
    paths = []
    for group, per_cell in report.scaling_points.items():
        if not per_cell:
            continue
        fig, (ax,) = plots.panels(1, width=6.5, height=4.2)
        xs_all = []
        for cell, points in per_cell.items():
            xs = [x for x, e in points.items() if e is not None]
            xs_all += xs
            if xs:
                _band(ax, xs, [points[x] for x in xs], cell)
        ax.axhline(report.settings["threshold"], color="gray", linestyle="--", linewidth=1,
                   label=f"solved ({report.settings['threshold']:g})")
        numeric = [x for x in xs_all if isinstance(x, (int, float))]
        if numeric and min(numeric) > 0 and max(numeric) / min(numeric) >= 10:
            ax.set_xscale("log")
        plots.finish(ax, report.knobs[group], "normalised score, IQM (0 = memoryless, 1 = perfect)",
                     title=f"memory scaling: {group}")
        paths.append(plots.save(fig, out / f"scaling_{_slug(group)}.png"))
    return paths


def curve_estimates(cohort: Cohort, confidence: float) -> tuple[list[float], list[Estimate]]:
    """A cohort's learning curve: per evaluation step, the IQM over the seeds that logged it and
    its bootstrap interval."""
    by_x: dict[float, list[float]] = {}
    for r in cohort.finished():
        for x, y in zip(*r.curve):
            by_x.setdefault(x, []).append(y)
    xs = sorted(by_x)
    return xs, [_iqm_band(by_x[x], confidence) for x in xs]


def plot_curves(report: SweepReport, out: Path) -> list[Path]:
    """One PNG per task: a panel per variant, the IQM normalised score over training per cell."""
    paths = []
    by_task: dict[str, list[str]] = {}
    for result in report.results:
        by_task.setdefault(result.run.task, [])
        if result.run.variant not in by_task[result.run.task]:
            by_task[result.run.task].append(result.run.variant)
    for task, variants in by_task.items():
        fig, axes = plots.panels(len(variants))
        drew = False
        for ax, variant in zip(axes, variants):
            harness = "supervised"
            for (v, cell), cohort in report.cohorts.items():
                if v != variant:
                    continue
                harness = cohort.results[0].run.harness
                xs, estimates = curve_estimates(cohort, report.settings["confidence"])
                if xs:
                    _band(ax, xs, estimates, cell)
                    drew = True
            plots.finish(ax, "update" if harness == "supervised" else "env steps", "normalised score (IQM)",
                         title=variant, legend="x-small")
        if drew:
            paths.append(plots.save(fig, out / f"curves_{_slug(task)}.png"))
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
    """One row per run: its identity, status, raw values and hyper-parameters (for re-aggregation)."""
    columns = ["id", "harness", "task", "variant", "knob", "knob_value", "cell", "seed", "status",
               "metric", "score", "speed", "num_params", "hidden_size", "cell_kwargs", "lr", "batch_size", "error"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        for r in report.results:
            config = r.run.config
            writer.writerow({"id": r.run.id, "harness": r.run.harness, "task": r.run.task, "variant": r.run.variant,
                             "knob": r.run.knob or "", "knob_value": "" if r.run.knob_value is None else r.run.knob_value,
                             "cell": r.run.cell, "seed": r.run.seed, "status": r.status,
                             "metric": "" if r.metric is None else repr(r.metric),
                             "score": "" if r.score is None else repr(r.score),
                             "speed": "" if r.speed is None else repr(r.speed),
                             "num_params": "" if r.num_params is None else r.num_params,
                             "hidden_size": "" if config.get("hidden_size") is None else config["hidden_size"],
                             "cell_kwargs": json.dumps(_cell_kwargs(config), sort_keys=True),
                             "lr": "" if config.get("lr") is None else config["lr"],
                             "batch_size": "" if config.get("batch_size") is None else config["batch_size"],
                             "error": r.error or ""})


_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee;margin:0.5em 0}code{background:#f6f6f6}"""


def _datasets(path: Path, report: SweepReport) -> list[str]:
    """The datasets the sweep's runs read, as their summaries record them (an embedded subset is
    marked so: it is not the full dataset a paper uses)."""
    sweep, seen = SweepDir(path), {}
    for result in report.results:
        summary_path = sweep.run_dir(result.run.id) / SUMMARY_FILE
        dataset = read_json(summary_path).get("dataset") if summary_path.is_file() else None
        if dataset:
            text = dataset_text(dataset)
            seen.setdefault(text, text)
    return list(seen.values())


def dataset_text(dataset: dict[str, Any]) -> str:
    """``"mnist (embedded subset): train 4,000, validation 500, test 500"`` from a run summary's
    ``dataset`` (where the files lay is in the summary itself)."""
    splits = ", ".join(f"{k} {v:,}" for k, v in dataset["splits"].items())
    return f"{dataset['name']}{' (embedded subset)' if dataset.get('embedded') else ''}: {splits}"


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
             f"(RL: normalised final return), aggregated over seeds by the interquartile mean (IQM; the mean for "
             f"fewer than 4 seeds) with its {s['confidence']:.0%} stratified-bootstrap interval (rliable, "
             f"{REPS} resamples). P(better than next): the probability of improvement over the next row, "
             f"the fraction of seed pairs where this cell does better.")
    datasets = _datasets(Path(path), report)
    if datasets:
        intro += " Data: " + "; ".join(datasets) + "."
    if report.not_run:
        intro += " Not run (their data is not on this machine): " + "; ".join(
            f"{label}: {why.split(';')[0]}" for label, why in report.not_run.items()) + "."
    if report.ruled:
        intro += (" On a normalised score, a cell whose IQM is at or below the memoryless reference (score <= 0) "
                  "has not solved the task: it gets no rank and is never in the top 2.")
    overview_text = "Rank of each cell on every task variant (1 = best among the cells that solved it)."
    scaling_text = (f"Largest memory length whose IQM normalised score is at least {s['threshold']:g} (none: no "
                    f"length solved), and the memory score: the fraction of the planned lengths solved (bsuite).")
    failures = [r for r in report.results if r.status == "failed"]

    md = [f"# Sweep report: {report.name}", "", intro, "",
          "## Top 2 on every task", "", overview_text, "",
          markdown_table(report.overview), "", "## Leaderboards", ""]
    for variant, rows in report.leaderboards.items():
        md += [f"### {variant}", "", markdown_table(rows), ""]
    if report.scaling:
        md += ["## Memory scaling", "", scaling_text, "", markdown_table(report.scaling), ""]
        md += [f"![{p.stem}]({p.name})" for p in scaling_pngs] + [""]
    if curve_pngs:
        md += ["## Learning curves", "", "IQM over seeds per evaluation, with its bootstrap band.", ""]
        md += [f"![{p.stem}]({p.name})" for p in curve_pngs] + [""]
    if failures:
        md += ["## Failed runs", ""] + [f"- `{r.run.id}`: {r.error}" for r in failures] + [""]
    md_path = out / "report.md"
    md_path.write_text("\n".join(md) + "\n")

    def img(p: Path) -> str:
        data = base64.b64encode(p.read_bytes()).decode("ascii")
        return f'<img alt="{html.escape(p.stem)}" src="data:image/png;base64,{data}">'

    page = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(report.name)}</title>",
            f"<style>{_CSS}</style></head><body>", f"<h1>Sweep report: {html.escape(report.name)}</h1>",
            f"<p>{html.escape(intro).replace('`', '')}</p>", "<h2>Top 2 on every task</h2>",
            f"<p>{html.escape(overview_text)}</p>", _html_table(report.overview), "<h2>Leaderboards</h2>"]
    for variant, rows in report.leaderboards.items():
        page += [f"<h3>{html.escape(variant)}</h3>", _html_table(rows)]
    if report.scaling:
        page += ["<h2>Memory scaling</h2>", f"<p>{html.escape(scaling_text)}</p>",
                 _html_table(report.scaling)] + [img(p) for p in scaling_pngs]
    if curve_pngs:
        page += ["<h2>Learning curves</h2>", "<p>IQM over seeds per evaluation, with its bootstrap band.</p>"]
        page += [img(p) for p in curve_pngs]
    if failures:
        page += ["<h2>Failed runs</h2><ul>"] + [
            f"<li><code>{html.escape(r.run.id)}</code>: {html.escape(r.error or '')}</li>" for r in failures] + ["</ul>"]
    page.append("</body></html>")
    (out / "report.html").write_text("\n".join(page) + "\n")
    return md_path

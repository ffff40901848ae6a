"""A paper's claim, checked on a finished sweep: the verdict the spec's criterion gives.

A spec's ``claim:`` block (written before its runs) states the claim, the criterion in words and
the machine-checkable ``checks``. Each check reads the runs of one or two cells on a task variant
(``task`` is the variant as the report names it, e.g. ``copy delay=100``), aggregated over seeds
with the interquartile mean (IQM, :func:`agents.results.stats.iqm`), and gives ``pass``, ``fail``
or ``inconclusive``:

- ``better`` (cell A, than B, margin m): pass when IQM(A) - IQM(B) >= m and the probability of
  improvement P(A > B) over seed pairs is >= 0.75; fail when IQM(A) <= IQM(B); else inconclusive.
- ``not_worse`` (A, than B, margin m): pass when IQM(A) >= IQM(B) - m, else fail.
- ``solves`` (A, threshold t): pass when IQM(A) >= t, else fail.
- ``compute_at_most`` (A, fraction f): pass when the IQM of A's fraction of (unit, step) updates
  (``updated_fraction``) is <= f, else fail.
- ``faster`` (A, than B, threshold t): the first evaluated update at which each seed's metric
  reaches t (never: infinite); pass when A reaches it in most seeds and A's median is lower than
  B's; inconclusive when neither reaches it in most seeds; else fail.
- ``top_k`` (A, k): on every task variant of the sweep, cells are ranked by IQM; a cell whose IQM
  is at or below the memoryless reference (score 0) has not solved the task and gets no place.
  Pass when A is in the top k everywhere and no other cell is; fail when A is outside the top k
  somewhere; inconclusive when another cell is also in the top k everywhere.

``checks`` is a list, or a mapping from scale to list (the task variants differ between scales).
The metric is the spec's report metric at its ``which`` evaluation (``final``, ``best`` or
``test``). The verdict: ``reproduced`` when every check passes, ``not reproduced`` when one
fails, else ``inconclusive``; runs that are missing or failed make a check inconclusive.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from agents.results.runs import read_curve, read_json
from agents.sweep.runner import SPEC_COPY, SweepDir
from agents.sweep.spec import RunSpec, load_spec, shipped_specs
from agents.results.stats import competition_ranks, evaluation_of, finite, iqm, metric_key, probability_of_improvement

OUTCOMES = ("pass", "fail", "inconclusive")
CHECK_TYPES = ("better", "not_worse", "solves", "compute_at_most", "faster", "top_k")
#: Probability of improvement a ``better`` check needs.
MIN_PROBABILITY = 0.75


@dataclass
class CheckResult:
    check: dict[str, Any]
    outcome: str
    detail: str


@dataclass
class ClaimResult:
    name: str
    scale: str | None
    statement: str
    criterion: str
    checks: list[CheckResult]
    metric: str
    which: str
    cohorts: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # variant -> cell -> values
    curves: dict[str, dict[str, list[list[tuple[float, float]]]]] = field(default_factory=dict)  # ... -> per seed

    @property
    def verdict(self) -> str:
        outcomes = [c.outcome for c in self.checks]
        if not outcomes:
            return "no checks at this scale"
        if all(o == "pass" for o in outcomes):
            return "reproduced"
        if "fail" in outcomes:
            return "not reproduced"
        return "inconclusive"


def read_manifest(sweep: SweepDir) -> dict[str, Any]:
    """The sweep's manifest, with its ``scale`` read from its spec copy for sweeps written before
    the manifest recorded it."""
    manifest = sweep.read_manifest()
    if manifest.get("scale") is None and (sweep.path / SPEC_COPY).is_file():
        manifest["scale"] = (yaml.safe_load((sweep.path / SPEC_COPY).read_text()) or {}).get("scale")
    return manifest


def claim_of(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The claim block of a sweep: from its manifest, else from the shipped spec of that name."""
    if manifest.get("claim"):
        return manifest["claim"]
    if manifest.get("name") in shipped_specs():
        return load_spec(manifest["name"]).get("claim")
    return None


def checks_at(claim: dict[str, Any], scale: str | None) -> list[dict[str, Any]]:
    """The claim's checks for runs at ``scale``: ``checks`` is a list, or a mapping from scale to
    list (the task variants differ between scales, so each scale names its own)."""
    checks = claim.get("checks") or []
    if isinstance(checks, dict):
        return list(checks.get(scale) or [])
    return list(checks)


def not_run_reason(variant: str | None, not_run: Mapping[str, str] | None) -> str | None:
    """Why the task entry of ``variant`` (``"dogs side=128"`` belongs to entry ``dogs``) was left
    out of the sweep, if it was."""
    for label, why in (not_run or {}).items():
        if variant == label or (variant or "").startswith(label + " "):
            return why
    return None


def check_claim(spec: dict[str, Any], runs: list[RunSpec]) -> None:
    """Before running: every check of the spec's claim at its scale names task variants and cells
    that the runs produce (a ValueError naming the check otherwise)."""
    claim = spec.get("claim") or {}
    cells_of: dict[str, set[str]] = {}
    for run in runs:
        cells_of.setdefault(run.variant, set()).add(run.cell)
    for check in checks_at(claim, spec.get("scale")):
        if check.get("type") not in CHECK_TYPES:
            raise ValueError(f"claim check {check!r}: type must be one of {', '.join(CHECK_TYPES)}")
        if check["type"] == "top_k":
            if not any(check["cell"] in cells for cells in cells_of.values()):
                raise ValueError(f"claim check {check!r}: no runs of cell {check['cell']!r}")
            continue
        task = check.get("task")
        if not_run_reason(task, spec.get("not_run")):
            continue  # its task was left out for want of data: the check will be inconclusive
        if task not in cells_of:
            raise ValueError(f"claim check {check!r}: task {task!r} is not a task variant of these runs "
                             f"(they are: {', '.join(cells_of)})")
        for key in ("cell", "than"):
            if key in check and check[key] not in cells_of[task]:
                raise ValueError(f"claim check {check!r}: no runs of cell {check[key]!r} on {task!r}")


def evaluate_claim(sweep_dir: str | Path) -> ClaimResult:
    """Check the claim of the sweep in ``sweep_dir`` (see the module docstring). ValueError if the
    sweep has no claim or a check is malformed."""
    sweep = SweepDir(sweep_dir)
    manifest = read_manifest(sweep)
    claim = claim_of(manifest)
    if not claim:
        raise ValueError(f"{sweep.path}: the sweep's spec states no claim")
    settings = manifest["report"]
    runs = [RunSpec.from_dict(r) for r in manifest["runs"]]
    values: dict[str, dict[str, list[float]]] = {}
    missing: dict[str, dict[str, int]] = {}
    records: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for run in runs:
        record = _read_run(sweep.run_dir(run.id), settings)
        records.setdefault(run.variant, {}).setdefault(run.cell, []).append(record)
        values.setdefault(run.variant, {}).setdefault(run.cell, [])
        if record["value"] is None:
            missing.setdefault(run.variant, {}).setdefault(run.cell, 0)
            missing[run.variant][run.cell] += 1
        else:
            values[run.variant][run.cell].append(record["value"])
    results = []
    for check in checks_at(claim, manifest.get("scale")):
        why = not_run_reason(check.get("task"), manifest.get("not_run"))
        results.append(CheckResult(check, "inconclusive", f"not run: {why}") if why
                       else _check(check, values, missing, records, settings))
    return ClaimResult(manifest["name"], manifest.get("scale"), " ".join(claim.get("statement", "").split()),
                       " ".join(claim.get("criterion", "").split()), results, settings["metric"], settings["which"],
                       values, {v: {c: [r["curve"] for r in rs] for c, rs in cells.items()} for v, cells in records.items()})


def _read_run(run_dir: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """The run's metric at the report's evaluation, its update fraction and its learning curve."""
    if not (run_dir / "summary.json").is_file():
        return {"value": None, "fraction": None, "curve": []}
    summary = read_json(run_dir / "summary.json")
    metrics = evaluation_of(summary, settings["which"]).get("metrics") or {}
    metric = metric_key(settings["metric"], metrics)
    value = finite(metrics.get(metric)) if summary.get("status") != "diverged" else None
    curve = read_curve(run_dir / "metrics.csv", "update", f"eval_{metric}")
    return {"value": value, "fraction": finite(metrics.get("updated_fraction")), "curve": curve}


def _check(check: dict[str, Any], values, missing, records, settings) -> CheckResult:
    kind = check.get("type")
    if kind not in CHECK_TYPES:
        raise ValueError(f"claim check {check!r}: type must be one of {', '.join(CHECK_TYPES)}")
    if kind == "top_k":
        return _top_k(check, values, missing)
    task, a = check["task"], check["cell"]
    if task not in values or a not in values[task]:
        raise ValueError(f"claim check {check!r}: no runs of cell {a!r} on task {task!r} (tasks: {', '.join(values)})")
    b = check.get("than")
    if b is not None and b not in values[task]:
        raise ValueError(f"claim check {check!r}: no runs of cell {b!r} on task {task!r}")
    lost = [c for c in (a, b) if c is not None and missing.get(task, {}).get(c)]
    if lost:
        return CheckResult(check, "inconclusive", f"runs missing or diverged: {', '.join(f'{c} ({missing[task][c]})' for c in lost)}")
    va, vb = values[task][a], values[task].get(b, [])
    if kind == "better":
        ia, ib, p = iqm(va), iqm(vb), probability_of_improvement(va, vb)
        detail = f"IQM {a} {ia:.3f} vs {b} {ib:.3f} (difference {ia - ib:+.3f}, margin {check['margin']}), P({a} > {b}) = {p:.2f}"
        if ia - ib >= check["margin"] and p >= MIN_PROBABILITY:
            return CheckResult(check, "pass", detail)
        return CheckResult(check, "fail" if ia <= ib else "inconclusive", detail)
    if kind == "not_worse":
        ia, ib = iqm(va), iqm(vb)
        detail = f"IQM {a} {ia:.3f} vs {b} {ib:.3f} (allowed {check['margin']} below)"
        return CheckResult(check, "pass" if ia >= ib - check["margin"] else "fail", detail)
    if kind == "solves":
        ia = iqm(va)
        return CheckResult(check, "pass" if ia >= check["threshold"] else "fail", f"IQM {a} {ia:.3f} (threshold {check['threshold']})")
    if kind == "compute_at_most":
        fractions = [r["fraction"] for r in records[task][a] if r["fraction"] is not None]
        if not fractions:
            return CheckResult(check, "inconclusive", f"{a} reports no update fraction")
        f = iqm(fractions)
        return CheckResult(check, "pass" if f <= check["fraction"] else "fail",
                           f"IQM update fraction of {a} {f:.3f} ({1 / f:.1f}x fewer updates than every unit at every step; "
                           f"at most {check['fraction']})")
    # faster
    t = check["threshold"]
    first = {c: [_first_reaching(r["curve"], t) for r in records[task][c]] for c in (a, b)}
    medians = {c: statistics.median(v) for c, v in first.items()}
    reached = {c: sum(math.isfinite(x) for x in v) for c, v in first.items()}
    shown = {c: ", ".join("never" if not math.isfinite(x) else str(int(x)) for x in first[c]) for c in (a, b)}
    detail = f"updates to reach {t}: {a} [{shown[a]}], {b} [{shown[b]}]"
    most = {c: reached[c] > len(first[c]) / 2 for c in (a, b)}
    if not most[a] and not most[b]:
        return CheckResult(check, "inconclusive", detail + " (neither reaches it in most seeds)")
    return CheckResult(check, "pass" if most[a] and medians[a] < medians[b] else "fail", detail)


def _first_reaching(curve: list[tuple[float, float]], threshold: float) -> float:
    return next((update for update, y in curve if y >= threshold), math.inf)


def _top_k(check: dict[str, Any], values, missing) -> CheckResult:
    cell, k = check["cell"], int(check.get("k", 2))
    everywhere: dict[str, bool] = {}
    lines = []
    incomplete = []
    for task, cells in values.items():
        if any(missing.get(task, {}).values()):
            lost = ", ".join(f"{c} {n} of {n + len(cells[c])}" for c, n in missing[task].items() if n)
            incomplete.append(f"{task}: runs missing or diverged ({lost})")
            continue
        scores = {c: iqm(v) for c, v in cells.items()}
        solved = {c: s for c, s in scores.items() if s is not None and s > 0}
        ranks = competition_ranks(solved)
        top = sorted((c for c in solved if ranks[c] <= k), key=lambda c: ranks[c])
        lines.append(f"{task}: top {k} " + (", ".join(f"{c} {scores[c]:.3f}" for c in top) or "none (no cell solved it)"))
        for c in cells:
            everywhere[c] = everywhere.get(c, True) and c in top
    detail = "; ".join(lines + incomplete)
    if incomplete:
        return CheckResult(check, "inconclusive", detail)
    if not everywhere.get(cell, False):
        return CheckResult(check, "fail", detail)
    others = [c for c, ok in everywhere.items() if ok and c != cell]
    if others:
        return CheckResult(check, "inconclusive", detail + f"; also top {k} everywhere: {', '.join(others)}")
    return CheckResult(check, "pass", detail)

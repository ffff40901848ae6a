"""The results page: each claim's verdict, figures and learning curves, from sweep directories.

::

    memory-bench results sweeps/chrono-small sweeps/nru-small   # archive them into results/, write docs/results.md
    memory-bench results results/*                              # rebuild the page from the archive alone

:func:`archive` copies the small outputs of a sweep (``sweep.json``, ``spec.yaml`` and per run
``config.json``, ``summary.json``, ``metrics.csv``, ``error.json``; never checkpoints) into
``results/<name>-<scale>/``, so the page can be rebuilt and audited without retraining.
:func:`write_results_page` writes one section per claim (:mod:`agents.sweep.claims`): the
paper's statement, our setup, the criterion, the checks and the verdict, final figures as IQM
with a 95% stratified-bootstrap interval over seeds, throughput, and a PNG of learning curves.
"""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path
from typing import Any

import yaml

from agents.results import plots
from agents.results.report import markdown_table
from agents.results.runs import read_json
from agents.sweep.claims import ClaimResult, evaluate_claim, read_manifest
from agents.sweep.report import dataset_text
from agents.sweep.runner import MANIFEST, SPEC_COPY, SweepDir
from agents.sweep.spec import RunSpec
from agents.results.stats import iqm_estimate

RUN_FILES = ("config.json", "summary.json", "metrics.csv", "error.json")
#: A sweep directory's own record of what happened to it (a rerun after a fix, a correction),
#: written by hand in markdown, archived with the runs and shown under the claim's verdict.
NOTES_FILE = "notes.md"
DEFAULT_ARCHIVE = Path("results")
DEFAULT_PAGE = Path("docs") / "results.md"


def archive(sweep_dir: str | Path, into: str | Path = DEFAULT_ARCHIVE) -> Path:
    """Copy the small outputs of the sweep in ``sweep_dir`` to ``into/<name>[-<scale>]/`` (replacing
    an earlier copy) and return that folder."""
    sweep = SweepDir(sweep_dir)
    manifest = read_manifest(sweep)
    name = manifest["name"] + (f"-{manifest['scale']}" if manifest.get("scale") else "")
    target = Path(into) / name
    if target.resolve() == sweep.path.resolve():
        return target
    if target.exists():
        shutil.rmtree(target)
    (target / "runs").mkdir(parents=True)
    for file in (MANIFEST, SPEC_COPY, NOTES_FILE):
        if (sweep.path / file).is_file():
            shutil.copy2(sweep.path / file, target / file)
    for run in manifest["runs"]:
        source = sweep.run_dir(run["id"])
        for file in RUN_FILES:
            if (source / file).is_file():
                (target / "runs" / run["id"]).mkdir(exist_ok=True)
                shutil.copy2(source / file, target / "runs" / run["id"] / file)
    return target


def write_results_page(sweep_dirs: list[str | Path], out: str | Path = DEFAULT_PAGE) -> Path:
    """Write the results page for the claims of ``sweep_dirs`` (figures beside it, in
    ``<page folder>/results/``)."""
    out = Path(out)
    figures = out.parent / "results"
    figures.mkdir(parents=True, exist_ok=True)
    sections, summary_rows = [], []
    for directory in sweep_dirs:
        result = evaluate_claim(directory)
        section, row = _section(SweepDir(directory), result, figures, out.parent)
        sections.append(section)
        summary_rows.append(row)
    lines = [
        "# Results: the papers' claims, tested",
        "",
        "Each section states a paper's headline claim, our setup, the pass/fail criterion (written "
        "into the claim's spec before its runs) and the verdict it gives: *reproduced*, *not "
        "reproduced* or *inconclusive*. Figures are the interquartile mean (IQM) over seeds with a "
        "95% stratified-bootstrap interval (rliable). A claim tested at `small` scale is tested on "
        "shorter sequences, smaller models and far smaller budgets than the paper's; its verdict is "
        "about that setting, and the setup says how it differs.",
        "",
        "Rebuild this page from the committed run outputs (no training): `memory-bench results "
        + " ".join(f"results/{SweepDir(d).path.name}" for d in sweep_dirs) + "`.",
        "",
        markdown_table(summary_rows),
        "",
        *sections,
    ]
    out.write_text("\n".join(lines) + "\n")
    return out


def _section(sweep: SweepDir, result: ClaimResult, figures: Path, page_dir: Path) -> tuple[str, dict[str, str]]:
    manifest = sweep.read_manifest()
    spec = yaml.safe_load((sweep.path / SPEC_COPY).read_text()) if (sweep.path / SPEC_COPY).is_file() else {}
    runs = [RunSpec.from_dict(r) for r in manifest["runs"]]
    summaries = {r.id: _summary(sweep, r.id) for r in runs}
    label = result.name + (f" ({result.scale} scale)" if result.scale else "")
    command = f"memory-bench suite {result.name}" + (f" --scale {result.scale}" if result.scale else "")
    curves = _plot_curves(result, figures / f"{sweep.path.name}-curves.png")
    lines = [
        f"## {label}: {result.verdict}",
        "",
        f"**Claim.** {result.statement}",
        "",
        f"**Our setup.** {' '.join(str(spec.get('description', '')).split())}"
        + (f" Method and the paper's own settings: [docs/{result.name}.md]({result.name}.md)."
           if (page_dir / f"{result.name}.md").is_file() else "")
        + f" Reproduce: `{command}`.",
        "",
        f"**Budget.** {_budget(runs)}",
        "",
        f"**Criterion** (written before the runs). {result.criterion}",
        "",
        "| check | outcome | figures |",
        "|---|---|---|",
        *[f"| {_check_text(c.check)} | **{c.outcome}** | {c.detail} |" for c in result.checks],
        "",
        f"**Verdict: {result.verdict}.**",
        "",
        f"Final figures: `{result.metric}` at the `{result.which}` evaluation"
        + (" (the best-validation checkpoint on the test split; the final evaluation for tasks without one)"
           if result.which == "test" else "") + ", IQM [95% CI] over seeds; "
        "updates/s is the median over seeds, each run on one torch thread with two runs side by side on a "
        "2-core CPU, at times with other work running: indicative, not a speed benchmark.",
        "",
        markdown_table(_figure_rows(runs, summaries, result)),
        "",
    ]
    if manifest.get("not_run"):
        lines += ["**Not run here** (their data was not on the machine that ran the sweep): "
                  + "; ".join(f"`{label}`: {why.split(';')[0]}" for label, why in manifest["not_run"].items()), ""]
    if (sweep.path / NOTES_FILE).is_file():
        lines += ["**Notes on these runs.** " + " ".join((sweep.path / NOTES_FILE).read_text().split()), ""]
    datasets = {dataset_text(s["dataset"]) for s in summaries.values() if s and s.get("dataset")}
    if datasets:
        lines += [f"Data: {'; '.join(sorted(datasets))}.", ""]
    if curves is not None:
        lines += [f"![learning curves of {label}]({curves.relative_to(page_dir).as_posix()})", ""]
    row = {"claim": label, "verdict": result.verdict, "checks passed": f"{sum(c.outcome == 'pass' for c in result.checks)}/{len(result.checks)}",
           "runs": f"{sum(1 for s in summaries.values() if s)}/{len(runs)}", "command": f"`{command}`"}
    return "\n".join(lines), row


def _budget(runs: list[RunSpec]) -> str:
    """``"90 runs; 600-3,000 updates of batch 10-32"`` (supervised) / env steps (RL)."""
    def span(values: list[int]) -> str:
        low, high = min(values), max(values)
        return f"{low:,}" if low == high else f"{low:,}-{high:,}"

    parts = [f"{len(runs)} runs"]
    supervised = [r.config for r in runs if r.harness == "supervised"]
    if supervised:
        parts.append(f"{span([c['updates'] for c in supervised])} updates of batch {span([c['batch_size'] for c in supervised])}")
    rl = [r.config for r in runs if r.harness == "rl"]
    if rl:
        parts.append(f"{span([c['timesteps'] for c in rl])} environment steps")
    return "; ".join(parts) + "."


def _summary(sweep: SweepDir, run_id: str) -> dict[str, Any] | None:
    path = sweep.run_dir(run_id) / "summary.json"
    return read_json(path) if path.is_file() else None


def _check_text(check: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in check.items())


def _figure_rows(runs: list[RunSpec], summaries: dict[str, Any], result: ClaimResult) -> list[dict[str, str]]:
    rows = []
    for variant, cells in result.cohorts.items():
        for cell, values in cells.items():
            cohort = [r for r in runs if r.variant == variant and r.cell == cell]
            speeds = [summaries[r.id]["updates_per_second"] for r in cohort
                      if summaries[r.id] and summaries[r.id].get("updates_per_second")]
            estimate = iqm_estimate(values)
            rows.append({"task": variant, "cell": cell, result.metric: "–" if estimate is None else estimate.text(),
                         "seeds": f"{len(values)}/{len(cohort)}",
                         "updates/s": f"{statistics.median(speeds):.0f}" if speeds else "–"})
    return rows


def _plot_curves(result: ClaimResult, path: Path) -> Path | None:
    """One panel per task variant: each cell's mean evaluation metric over seeds (the curves the
    claim's checks read), shaded between the lowest and highest seed."""
    fig, axes = plots.panels(len(result.curves), height=3.3)
    drew = False
    for ax, (variant, cells) in zip(axes, result.curves.items()):
        for cell, curves in cells.items():
            by_update: dict[float, list[float]] = {}
            for update, value in (point for curve in curves for point in curve):
                by_update.setdefault(update, []).append(value)
            if not by_update:
                continue
            xs = sorted(by_update)
            plots.band(ax, xs, [statistics.fmean(by_update[x]) for x in xs], [min(by_update[x]) for x in xs],
                       [max(by_update[x]) for x in xs], label=cell)
            drew = True
        plots.finish(ax, "update", result.metric, title=variant, legend="x-small")
    return plots.save(fig, path) if drew else None

"""Sweep specs: a YAML file (or the same dict) that expands into one run per grid point.

::

    name: copy-scaling
    seeds: 3                       # or a list: [0, 1, 2]
    supervised:                    # TrainConfig fields shared by every supervised run
      updates: 2000
      batch_size: 10
    rl:                            # RLConfig fields shared by every RL run
      timesteps: 100000
    tasks:
      - task: copy                 # a list value is a grid axis; the rest is fixed
        task_kwargs: {delay: [50, 100, 200, 500], score: all}
      - task: TMaze-v0
        harness: rl                # default: supervised (or the spec's top-level `harness`)
        task_kwargs: {corridor_length: [5, 10, 20]}
    cells:
      - cell: nru
        hidden_size: 80
        cell_kwargs: {memory_size: 64, num_heads: 4}
        supervised: {optimizer: amsgrad}    # settings for this cell's supervised runs
      - label: lstm-chrono                   # a row name when one cell appears twice
        cell: lstm
        hidden_size: 70
        cell_kwargs: {init: chrono, t_max: "=1.5 * delay"}
        only: [copy]                         # run on these task labels only
    report: {metric: score, which: final, threshold: 0.9, confidence: 0.95}

Expansion: tasks (each list-valued task kwarg is an axis) x cells x seeds. A run's settings are
the harness defaults, overridden by the task entry's ``supervised:``/``rl:`` block, then by the
cell entry's block and its ``per_task: {TASK_LABEL: {...}}`` block, then the seed. A ``per_task``
block may also set ``hidden_size`` and ``cell_kwargs`` (merged into the cell's) for that task, e.g.
the larger psMNIST models of a paper.

A string starting with ``=`` anywhere in the settings or cell kwargs is a small arithmetic
expression (numbers, + - * / // % **, min, max, round, int) over the run's task kwargs, its
settings (e.g. ``updates``) and, for supervised tasks, the task's numeric attributes (e.g.
``max_length``, the sequence length): ``t_max: "=1.5 * delay"``,
``aux_pretrain_updates: "=updates // 10"``. Values that follow the task are what made
copy-and-paste specs wrong in the papers' own configs (chrono's ``T_max`` per delay).

Scales: a spec may carry ``scales: {smoke: PATCH, small: PATCH, paper: PATCH}`` and is then run
at one of them (``memory-bench suite NAME --scale S``, ``memory-bench sweep SPEC --scale S``). A
patch may set ``seeds``, ``description``, ``override`` (below), and per entry label
``tasks: {LABEL: {task_kwargs: ..., supervised: ..., ...}}`` / ``cells: {LABEL: {...}}``, whose
mappings are merged into the entry (``null`` drops the entry at that scale).

``override: {supervised: {...}, rl: {...}, hidden_size: N}`` is applied to every run after all
other layers, per-task blocks included: ``--set supervised.updates=500`` writes there, so it
really shrinks every run.

A ``claim:`` block (``statement``, ``setup``, ``criterion``, ``checks``) states what the spec
tests and its pass/fail criterion, written before the runs; the report evaluates the
``checks`` (see :mod:`agents.sweep.claims`).

Memory knob (the x axis of the scaling curves): the entry's ``knob:``, else the task's declared
length knob (``delay``, ``max_delay``, ``seq_len``, ...) when it is swept, else the only swept
kwarg; a task entry with none of these has no scaling curve.
"""

from __future__ import annotations

import ast
import copy
import itertools
import json
import math
import operator
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

HARNESSES = ("supervised", "rl")
REPORT_DEFAULTS = {"metric": "score", "which": "final", "threshold": 0.9, "confidence": 0.95}
_TOP_KEYS = {"name", "description", "seeds", "harness", "supervised", "rl", "tasks", "cells", "report", "scales",
             "scale", "override", "claim", "not_run"}
_SCALE_KEYS = {"seeds", "description", "override", "tasks", "cells"}
_OVERRIDE_KEYS = {"supervised", "rl", "hidden_size"}
_TASK_KEYS = {"task", "label", "harness", "task_kwargs", "knob", "supervised", "rl"}
_CELL_KEYS = {"cell", "label", "hidden_size", "cell_kwargs", "only", "per_task", "supervised", "rl"}
#: RL settings carried by the cell / task rather than the PPO block.
_RL_IDENTITY = ("task", "task_kwargs", "cell", "cell_kwargs", "hidden_size", "seed")


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep.

    Attributes:
        id: unique directory name (``copy-delay_100-nru-s0``).
        harness: ``"supervised"`` or ``"rl"``.
        task: the task entry's label (one leaderboard family, one scaling plot).
        variant: task label plus the swept kwargs (``copy delay=100``): one leaderboard column.
        group: task label plus the swept kwargs other than the knob: one scaling curve per cell.
        cell: the cell entry's label (a leaderboard row).
        seed: the run's seed.
        knob, knob_value: the memory-length kwarg and its value (None if the task has none).
        config: a :class:`~agents.supervised.TrainConfig` dict (supervised) or a
            :class:`~agents.rl.RLConfig` dict (RL).
    """

    id: str
    harness: str
    task: str
    variant: str
    group: str
    cell: str
    seed: int
    knob: str | None
    knob_value: Any
    config: dict[str, Any] = field(hash=False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSpec:
        return cls(**data)


# --------------------------------------------------------------------------------------------
# Loading and checking
# --------------------------------------------------------------------------------------------


#: The specs shipped with the package: one per paper (their ``scales`` make them the paper suites)
#: and the cross-paper comparison.
SPECS_DIR = Path(__file__).resolve().parent / "specs"


def shipped_specs() -> list[str]:
    """Names of the shipped specs (``memory-bench suite NAME``)."""
    return sorted(p.stem for p in SPECS_DIR.glob("*.yaml"))


def spec_path(name_or_path: str | Path) -> Path:
    """A spec file: an existing path, else a shipped spec by name; ValueError listing the names."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = SPECS_DIR / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    raise ValueError(f"spec={str(name_or_path)!r} is neither a file nor a shipped spec: choose a YAML path or one of "
                     f"{', '.join(shipped_specs())}")


def load_spec(path_or_dict: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """Read a YAML spec (a path or a shipped spec's name; or copy a dict) and check its layout;
    ValueError naming what is wrong."""
    if isinstance(path_or_dict, (str, Path)):
        path_or_dict = spec_path(path_or_dict)
    if isinstance(path_or_dict, Mapping):
        spec = copy.deepcopy(dict(path_or_dict))
        where = "spec"
    else:
        path = Path(path_or_dict)
        try:
            spec = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ValueError(f"{path} is not valid YAML: {err}") from None
        where = str(path)
        if not isinstance(spec, dict):
            raise ValueError(f"{path}: a sweep spec is a mapping with tasks, cells and seeds, got {type(spec).__name__}")
        spec.setdefault("name", path.stem)
    _check_keys(where, spec, _TOP_KEYS)
    for key in ("tasks", "cells"):
        if not isinstance(spec.get(key), list) or not spec[key] or not all(isinstance(e, dict) for e in spec[key]):
            raise ValueError(f"{where}: {key}={spec.get(key)!r} must be a non-empty list of mappings")
    spec.setdefault("name", "sweep")
    if not isinstance(spec["name"], str) or not spec["name"]:
        raise ValueError(f"{where}: name={spec['name']!r} must be a non-empty string")
    spec["seeds"] = _seeds(spec.get("seeds", 1))
    harness = spec.setdefault("harness", "supervised")
    if harness not in HARNESSES:
        raise ValueError(f"{where}: harness={harness!r} is not one of {', '.join(HARNESSES)}")
    for block in HARNESSES:
        if not isinstance(spec.setdefault(block, {}), dict):
            raise ValueError(f"{where}: {block}={spec[block]!r} must be a mapping of settings")
    report = spec.setdefault("report", {})
    if not isinstance(report, dict):
        raise ValueError(f"{where}: report={report!r} must be a mapping")
    _check_keys(f"{where}: report", report, set(REPORT_DEFAULTS))
    spec["report"] = {**REPORT_DEFAULTS, **report}
    if spec["report"]["which"] not in ("final", "best", "test"):
        raise ValueError(f"{where}: report.which={spec['report']['which']!r} must be 'final', 'best' or 'test' "
                         "(the best-validation checkpoint on the test split; final where a task has none)")
    for key, low, high in (("threshold", -math.inf, math.inf), ("confidence", 0.0, 1.0)):
        value = spec["report"][key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value < high:
            raise ValueError(f"{where}: report.{key}={value!r} must be a number" + (" in (0, 1)" if key == "confidence" else ""))
    for i, entry in enumerate(spec["tasks"]):
        _check_keys(f"{where}: tasks[{i}]", entry, _TASK_KEYS)
        if not isinstance(entry.get("task"), str):
            raise ValueError(f"{where}: tasks[{i}].task={entry.get('task')!r} must be a task name or env id")
        if entry.get("harness", harness) not in HARNESSES:
            raise ValueError(f"{where}: tasks[{i}].harness={entry['harness']!r} is not one of {', '.join(HARNESSES)}")
    for i, entry in enumerate(spec["cells"]):
        _check_keys(f"{where}: cells[{i}]", entry, _CELL_KEYS)
        if not isinstance(entry.get("cell"), str):
            raise ValueError(f"{where}: cells[{i}].cell={entry.get('cell')!r} must be a cell name")
    override = spec.setdefault("override", {})
    if not isinstance(override, dict):
        raise ValueError(f"{where}: override={override!r} must be a mapping")
    _check_keys(f"{where}: override", override, _OVERRIDE_KEYS)
    scales = spec.setdefault("scales", {})
    if not isinstance(scales, dict) or not all(isinstance(p, dict) for p in scales.values()):
        raise ValueError(f"{where}: scales={scales!r} must map scale names to patches")
    for name, patch in scales.items():
        _check_keys(f"{where}: scales.{name}", patch, _SCALE_KEYS)
    return spec


def scale_names(spec: Mapping[str, Any]) -> list[str]:
    """The scales a loaded spec defines (empty: the spec runs as written)."""
    return list(spec.get("scales") or {})


def apply_scale(spec: Mapping[str, Any], scale: str | None) -> dict[str, Any]:
    """A loaded spec at ``scale``: its patch merged in (see the module docstring), ``scales``
    removed and ``scale`` recorded. ``None`` keeps the spec as written. ValueError for a scale
    the spec does not define."""
    spec = copy.deepcopy(dict(spec))
    scales = spec.pop("scales", None) or {}
    if scale is None:
        return spec
    if scale not in scales:
        allowed = ", ".join(scales) or "none (this spec has no scales: run it without --scale)"
        raise ValueError(f"scale={scale!r} is not defined by spec {spec.get('name')!r}: allowed are {allowed}")
    patch = copy.deepcopy(scales[scale])
    if "seeds" in patch:
        spec["seeds"] = _seeds(patch["seeds"])
    if "description" in patch:
        spec["description"] = patch["description"]
    spec["override"] = _merged(spec.get("override") or {}, patch.get("override") or {})
    for kind in ("tasks", "cells"):
        changes = patch.get(kind) or {}
        labels = [e.get("label", e[kind[:-1]]) for e in spec[kind]]
        unknown = sorted(set(changes) - set(labels))
        if unknown:
            raise ValueError(f"scales.{scale}.{kind}: unknown label(s) {', '.join(unknown)}: the spec's are {', '.join(labels)}")
        spec[kind] = [_merged(entry, changes.get(label) or {}) for entry, label in zip(spec[kind], labels)]
        dropped = {label for label, change in changes.items() if change is None}
        spec = _drop_tasks(spec, dropped) if kind == "tasks" else {
            **spec, "cells": [c for c in spec["cells"] if c.get("label", c["cell"]) not in dropped]}
        if not spec[kind]:
            raise ValueError(f"scales.{scale} drops every entry of {kind}")
    spec["scale"] = scale
    return load_spec(spec)


def with_available_data(spec: Mapping[str, Any]) -> dict[str, Any]:
    """``spec`` without the task entries whose data is not on this machine (recorded under
    ``not_run``): what ``--skip-missing-data`` runs."""
    missing = tasks_without_data(spec)
    return load_spec(without_tasks(spec, missing)) if missing else dict(spec)


def _drop_tasks(spec: dict[str, Any], labels: set[str]) -> dict[str, Any]:
    """``spec`` without the task entries ``labels``, also struck from the cells' ``only`` lists (a
    cell left with no task to run on goes too)."""
    spec = {**spec, "tasks": [t for t in spec["tasks"] if t.get("label", t["task"]) not in labels]}
    cells = []
    for cell in spec["cells"]:
        if cell.get("only") is not None:
            only = [label for label in cell["only"] if label not in labels]
            if not only:
                continue
            cell = {**cell, "only": only}
        cells.append(cell)
    spec["cells"] = cells
    return spec


def _merged(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``patch`` merged in: nested mappings merge, anything else is replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_overrides(spec: Mapping[str, Any], items: list[str] | None) -> dict[str, Any]:
    """``["supervised.updates=2000", "seeds=2"]`` -> a copy of ``spec`` with those values set
    (dot paths into nested mappings; values parsed like ``--task-kw`` values). Paths under
    ``supervised.``, ``rl.`` and ``hidden_size`` go to the ``override`` layer, which wins over
    every task, cell and per-task setting: they change every run of the spec."""
    from agents.cli import parse_value

    spec = copy.deepcopy(dict(spec))
    for item in items or []:
        path, sep, text = item.partition("=")
        keys = path.strip().split(".")
        if not sep or not all(keys):
            raise ValueError(f"--set {item!r} is malformed: expected KEY.SUBKEY=VALUE, e.g. supervised.updates=2000")
        if keys[0] in _OVERRIDE_KEYS:
            keys = ["override", *keys]
        node = spec
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {item!r}: {key!r} is not a mapping in the spec")
        node[keys[-1]] = parse_value(text)
    return spec


def check_datasets(runs: list[RunSpec], allow_subset: bool) -> None:
    """Refuse paper-scale runs on an embedded data subset (e.g. 5,000 MNIST digits instead of
    70,000) unless ``allow_subset``: a paper-scale result must not quietly shrink its data."""
    from agents.supervised.trainer import make_task

    if allow_subset:
        return
    for run in runs:
        if run.harness != "supervised":
            continue
        dataset = make_task(run.config["task"], run.config["task_kwargs"]).dataset
        if dataset is not None and dataset.embedded:
            raise ValueError(
                f"run {run.id} would train on the embedded subset ({dataset.source}, {sum(dataset.splits.values()):,} items), "
                f"not the full {dataset.name} dataset the paper uses: put the full dataset in a folder and set MEMENVS_DATA "
                f"to it (MNIST: the four IDX files train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                f"t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz, or an mnist.npz), or pass --allow-subset")


def tasks_without_data(spec: Mapping[str, Any]) -> dict[str, str]:
    """Task entry label -> why its data cannot be found, for the supervised task entries whose
    task raises ``FileNotFoundError`` when built (data the user provides: StanfordDogs, DBpedia,
    CIFAR-10). Checked on each entry's first grid point, before :func:`expand` builds any task."""
    from agents.supervised.trainer import make_task

    missing: dict[str, str] = {}
    for entry in spec["tasks"]:
        if entry.get("harness", spec.get("harness", "supervised")) != "supervised":
            continue
        kwargs = {k: v[0] if isinstance(v, list) and v else v for k, v in (entry.get("task_kwargs") or {}).items()}
        try:
            make_task(entry["task"], kwargs)
        except FileNotFoundError as err:
            missing[entry.get("label", entry["task"])] = " ".join(str(err).split())
    return missing


def without_tasks(spec: Mapping[str, Any], reasons: Mapping[str, str]) -> dict[str, Any]:
    """``spec`` without the task entries labelled in ``reasons``, which it records under
    ``not_run`` (label -> reason) so that reports can say what was left out and why."""
    kept = _drop_tasks(copy.deepcopy(dict(spec)), set(reasons))
    if not kept["tasks"]:
        raise ValueError(f"no task of spec {spec.get('name')!r} can run here: " + "; ".join(f"{k}: {v}" for k, v in reasons.items()))
    kept["not_run"] = {**kept.get("not_run", {}), **reasons}
    return kept


def _check_keys(where: str, mapping: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}: allowed are {', '.join(sorted(allowed))}")


def _seeds(value: Any) -> list[int]:
    if isinstance(value, bool):
        raise ValueError(f"seeds={value!r} must be a count or a list of seeds")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"seeds={value!r} must be >= 1 (a count) or a list of seeds")
        return list(range(value))
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value):
        if len(set(value)) < len(value):
            raise ValueError(f"seeds={value!r} lists a seed twice")
        return list(value)
    raise ValueError(f"seeds={value!r} must be a count >= 1 or a non-empty list of distinct integers >= 0")


# --------------------------------------------------------------------------------------------
# Expressions ("=1.5 * delay")
# --------------------------------------------------------------------------------------------

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_FUNCS = {"min": min, "max": max, "round": round, "int": int}


def evaluate_expression(text: str, names: Mapping[str, Any]) -> float | int:
    """Evaluate ``text`` (without the leading ``=``): arithmetic on numbers and ``names``."""

    def walk(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in names:
                raise ValueError(f"expression {text!r}: unknown name {node.id!r} (known: {', '.join(sorted(names))})")
            value = names[node.id]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"expression {text!r}: {node.id}={value!r} is not a number")
            return value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = walk(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS
                and not node.keywords):
            return _FUNCS[node.func.id](*(walk(a) for a in node.args))
        raise ValueError(f"expression {text!r}: only numbers, names, + - * / // % **, min, max, round and int are allowed")

    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise ValueError(f"expression {text!r} is not valid: {err.msg}") from None
    try:
        return walk(tree)
    except (ZeroDivisionError, OverflowError, TypeError) as err:
        raise ValueError(f"expression {text!r} failed: {err}") from None


def _resolve(value: Any, names: Mapping[str, Any]) -> Any:
    if isinstance(value, str) and value.startswith("="):
        return evaluate_expression(value[1:], names)
    if isinstance(value, dict):
        return {k: _resolve(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, names) for v in value]
    return value


class _Names(dict):
    """Expression names: explicit values first, then numeric attributes of the task (lazily)."""

    def __init__(self, values: Mapping[str, Any], task: Any) -> None:
        super().__init__(values)
        self._task = task

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key) or (self._task is not None and isinstance(key, str)
                                             and not key.startswith("_") and hasattr(self._task, key))

    def __getitem__(self, key: str) -> Any:
        if super().__contains__(key):
            return super().__getitem__(key)
        return getattr(self._task, key)

    def __iter__(self):
        return iter(list(super().keys()) + ["<task attributes>"])


# --------------------------------------------------------------------------------------------
# Expansion
# --------------------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def _fmt(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def _declared_knob(harness: str, task: str, kwargs: dict[str, Any]) -> str | None:
    """The task's ``length_knob`` (sequence tasks, or env classes that declare one)."""
    import memenvs  # noqa: F401  (registers the ids)
    from memenvs.core import resolve_id

    if harness == "supervised":
        from agents.supervised.trainer import make_task

        return make_task(task, kwargs).length_knob
    import gymnasium as gym

    try:
        env_spec = gym.spec(resolve_id(task) if "/" not in task else task)
    except (ValueError, gym.error.Error):
        return None
    entry = env_spec.entry_point
    if isinstance(entry, str):
        from gymnasium.envs.registration import load_env_creator

        entry = load_env_creator(entry)
    knob = getattr(entry, "length_knob", None)
    if knob is None and entry.__name__ == "TaskEnv":
        from memenvs.core import make_task as make_sequence_task

        knob = make_sequence_task(task, **kwargs).length_knob
    return knob if isinstance(knob, str) else None


def _variants(entry: dict[str, Any], where: str) -> tuple[list[str], list[dict[str, Any]]]:
    kwargs = entry.get("task_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise ValueError(f"{where}.task_kwargs={kwargs!r} must be a mapping")
    swept = [k for k, v in kwargs.items() if isinstance(v, list)]
    for k in swept:
        if not kwargs[k]:
            raise ValueError(f"{where}.task_kwargs.{k}=[] is an empty axis")
    combos = itertools.product(*(kwargs[k] for k in swept))
    return swept, [{**kwargs, **dict(zip(swept, values))} for values in combos]


def expand(spec: Mapping[str, Any]) -> list[RunSpec]:
    """Every run of a loaded spec (see the module docstring), validated; ValueError naming the
    task/cell entry and the problem. Order: tasks, then their variants, then cells, then seeds."""
    spec = load_spec(spec)
    runs: list[RunSpec] = []
    task_labels = [e.get("label", e["task"]) for e in spec["tasks"]]
    cell_labels = [e.get("label", e["cell"]) for e in spec["cells"]]
    for kind, labels in (("task", task_labels), ("cell", cell_labels)):
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"{kind} label(s) {', '.join(dupes)} appear twice: give the entries distinct `label:`s")
    for i, c in enumerate(spec["cells"]):
        only = c.get("only")
        if only is not None and (not isinstance(only, list) or not set(only) <= set(task_labels)):
            raise ValueError(f"cells[{i}].only={only!r} must be a list of task labels ({', '.join(task_labels)})")
        per_task = c.get("per_task") or {}
        if not isinstance(per_task, dict) or not set(per_task) <= set(task_labels):
            raise ValueError(f"cells[{i}].per_task={per_task!r} must map task labels ({', '.join(task_labels)}) to settings")

    for ti, (t_entry, t_label) in enumerate(zip(spec["tasks"], task_labels)):
        where = f"tasks[{ti}] ({t_label})"
        harness = t_entry.get("harness", spec["harness"])
        other = "rl" if harness == "supervised" else "supervised"
        if t_entry.get(other):
            raise ValueError(f"{where}: a {harness} task cannot have {other!r} settings")
        swept, variants = _variants(t_entry, where)
        for variant_kwargs in variants:
            knob = t_entry.get("knob")
            if knob is None:
                declared = _declared_knob(harness, t_entry["task"], variant_kwargs)
                knob = declared if declared in swept else (swept[0] if len(swept) == 1 else None)
            elif knob not in variant_kwargs:
                raise ValueError(f"{where}: knob={knob!r} is not one of its task_kwargs ({', '.join(variant_kwargs)})")
            shown = {k: variant_kwargs[k] for k in swept}
            variant = " ".join([t_label] + [f"{k}={_fmt(v)}" for k, v in shown.items()])
            group = " ".join([t_label] + [f"{k}={_fmt(v)}" for k, v in shown.items() if k != knob])
            for ci, (c_entry, c_label) in enumerate(zip(spec["cells"], cell_labels)):
                if c_entry.get("only") is not None and t_label not in c_entry["only"]:
                    continue
                for seed in spec["seeds"]:
                    config = _run_config(spec, harness, t_entry, t_label, variant_kwargs, c_entry, seed,
                                         f"{where} x cells[{ci}] ({c_label})")
                    run_id = _slug("-".join([t_label] + [f"{k}_{_fmt(v)}" for k, v in shown.items()] + [c_label, f"s{seed}"]))
                    runs.append(RunSpec(run_id, harness, t_label, variant, group, c_label, seed, knob,
                                        variant_kwargs.get(knob) if knob else None, config))
    ids = [r.id for r in runs]
    dupes = sorted({x for x in ids if ids.count(x) > 1})
    if dupes:
        raise ValueError(f"run ids {', '.join(dupes[:3])} collide: labels or kwarg values differ only in punctuation")
    return runs


def _run_config(spec, harness, t_entry, t_label, task_kwargs, c_entry, seed, where) -> dict[str, Any]:
    per_task = dict((c_entry.get("per_task") or {}).get(t_label) or {})
    hidden_size = per_task.pop("hidden_size", c_entry.get("hidden_size"))
    cell_kwargs = {**(c_entry.get("cell_kwargs") or {}), **(per_task.pop("cell_kwargs", None) or {})}
    settings: dict[str, Any] = {}
    override = spec.get("override") or {}
    if override.get("hidden_size") is not None:
        hidden_size = override["hidden_size"]
    for block in (spec[harness], t_entry.get(harness) or {}, c_entry.get(harness) or {}, per_task,
                  override.get(harness) or {}):
        if not isinstance(block, dict):
            raise ValueError(f"{where}: {harness} settings {block!r} must be a mapping")
        settings.update(copy.deepcopy(block))
    identity = {"cell", "cell_kwargs", "hidden_size", "seed", "task", "task_kwargs", "env", "env_kw", "cell_kw"}
    clash = sorted(identity & set(settings))
    if clash:
        raise ValueError(f"{where}: set {', '.join(clash)} in the task/cell entries, not in {harness} settings")
    if not isinstance(cell_kwargs, dict):
        raise ValueError(f"{where}: cell_kwargs={cell_kwargs!r} must be a mapping")
    task_obj = None
    if harness == "supervised":
        from agents.supervised.trainer import make_task

        try:
            task_obj = make_task(t_entry["task"], task_kwargs)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
    plain = {k: v for k, v in settings.items() if not (isinstance(v, str) and v.startswith("="))}
    names = _Names({**plain, **task_kwargs, "seed": seed}, task_obj)
    try:
        settings = _resolve(settings, names)
        cell_kwargs = _resolve(copy.deepcopy(cell_kwargs), names)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    if harness == "supervised":
        from agents.supervised.trainer import TrainConfig

        data = {"task": t_entry["task"], "task_kwargs": dict(task_kwargs), "cell": c_entry["cell"],
                "cell_kwargs": cell_kwargs, **settings, "seed": seed}
        if hidden_size is not None:
            data["hidden_size"] = hidden_size
        try:
            config = TrainConfig.from_dict(data).to_dict()
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        _check_cell(c_entry["cell"], where)
        return config
    from agents.rl.config import RLConfig

    data = {"task": t_entry["task"], "task_kwargs": dict(task_kwargs), "cell": c_entry["cell"],
            "cell_kwargs": cell_kwargs, **settings, "seed": seed}
    if hidden_size is not None:
        data["hidden_size"] = hidden_size
    try:
        config = RLConfig.from_dict(data).to_dict()  # unknown keys / bad values fail here
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    _check_cell(c_entry["cell"], where)
    return config


def _check_cell(name: str, where: str) -> None:
    from agents.cells.base import CELLS

    if name not in CELLS:
        raise ValueError(f"{where}: unknown cell {name!r}: choose one of {', '.join(sorted(CELLS))}")

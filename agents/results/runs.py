"""Run directories, checkpoints and resume.

A run directory holds::

    config.json        the TrainConfig (JSON)
    metrics.csv        one row per evaluation: update, wall_time, train_*, eval_* columns
    tensorboard/       TensorBoard events of the same numbers
    latest.pt          checkpoint after the last evaluation (resume point)
    best.pt            checkpoint with the best evaluation so far
    summary.json       final / best metrics, status, speed (written at the end or on failure)

Checkpoints contain only tensors, numbers, strings, lists and dicts, so they load with
``torch.load(weights_only=True)``, which refuses pickles that would run code. Random number
generator states are saved as a tensor (torch) and as JSON text (numpy), which makes a resumed CPU
run bit-identical to an uninterrupted one. Every file is written to a temporary name and moved
into place with ``os.replace``, so a crash never leaves half a checkpoint. A checkpoint that cannot
be read anyway (cut short by a full disk or a copy, overwritten, from another run) raises
:class:`CheckpointError`, one line naming the file, and :func:`load_checkpoint` is the only place
that reads checkpoints.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_FORMAT = "memory-bench-checkpoint-v1"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.json"
LATEST = "latest.pt"
BEST = "best.pt"
TENSORBOARD_DIR = "tensorboard"


# --------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    _atomic(Path(path), lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n"))


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def save_checkpoint(path: str | os.PathLike, checkpoint: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file, then move it into place."""
    _atomic(Path(path), lambda tmp: torch.save(checkpoint, tmp))


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: truncated, corrupt, not plain data, not of this format,
    or not fitting the run. The message is one line naming the file and what to do."""

    def __init__(self, path: str | os.PathLike, detail: str) -> None:
        self.path = Path(path)
        self.detail = detail
        super().__init__(
            f"unreadable checkpoint {self.path} ({detail}): it is truncated, corrupt or not a checkpoint of this run; "
            f"delete it and start the run afresh (resuming a run that has no {LATEST} starts it from update 0)"
        )


def load_checkpoint(
    path: str | os.PathLike, map_location: torch.device | str | None = "cpu", keys: Iterable[str] = ()
) -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(weights_only=True)`` (a file's content never runs code).

    Args:
        path: the ``.pt`` file.
        map_location: device for the tensors.
        keys: entries the caller needs; a checkpoint without one of them is refused.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: (a ValueError) the file cannot be read (truncated, empty, garbage), is
            not plain data (a pickle that would run code, which ``weights_only=True`` refuses to
            unpickle), is not a checkpoint of this format, or lacks one of ``keys``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():  # e.g. torch's note on the pickle protocol of a foreign file
            warnings.simplefilter("ignore")
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only" in str(err).lower():
            raise CheckpointError(path, "weights-only loading refused it: it holds more than tensors and plain data") from err
        raise CheckpointError(path, error_line(err)) from err
    except Exception as err:  # torch raises OSError, RuntimeError, EOFError... depending on where a file is cut
        raise CheckpointError(path, "the file is empty" if path.stat().st_size == 0 else error_line(err)) from err
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(path, f"not a {CHECKPOINT_FORMAT} file")
    missing = [k for k in keys if k not in checkpoint]
    if missing:
        raise CheckpointError(path, f"no {', '.join(missing)} in it")
    return checkpoint


def error_line(err: BaseException, limit: int = 160) -> str:
    """``"Type: first sentence of the message"``, on one line of at most ``limit`` characters."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    text = text.split(". ")[0]
    line = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------
# Random number generator states as plain data
# --------------------------------------------------------------------------------------------


def rng_state(numpy_rng: np.random.Generator) -> dict[str, Any]:
    """The torch (CPU and current CUDA device) and numpy RNG states as tensors / JSON text."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": json.dumps(numpy_rng.bit_generator.state),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any], numpy_rng: np.random.Generator) -> None:
    """Inverse of :func:`rng_state` (``numpy_rng`` is updated in place)."""
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    numpy_rng.bit_generator.state = json.loads(state["numpy"])


# --------------------------------------------------------------------------------------------
# The run directory
# --------------------------------------------------------------------------------------------


def read_csv_rows(path: str | os.PathLike) -> tuple[list[str], list[dict[str, str]]]:
    """Columns and rows (as strings) of a run's CSV log (metrics.csv, or an RL run's SB3
    progress.csv); empty when the file does not exist (a run that has not logged yet)."""
    if not Path(path).is_file():
        return [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def read_curve(path: str | os.PathLike, x: str, y: str) -> list[tuple[float, float]]:
    """``(x, y)`` pairs of two columns of a CSV log, where both are finite numbers: a learning
    curve (``"update"``, ``"eval_score"``), or an RL run's (``"time/total_timesteps"``,
    ``"rollout/ep_rew_mean"``)."""
    from agents.results.stats import finite

    points = [(finite(row.get(x)), finite(row.get(y))) for row in read_csv_rows(path)[1]]
    return [(px, py) for px, py in points if px is not None and py is not None]


def child_path(name: str) -> property:
    """A read-only attribute: the path of ``name`` inside the object's directory ``self.path``."""
    return property(lambda self: self.path / name, doc=f"``self.path / {name!r}``")


class RunDir:
    """Files of one training run (see the module docstring for the layout)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    config_path = child_path(CONFIG_FILE)
    metrics_path = child_path(METRICS_FILE)
    summary_path = child_path(SUMMARY_FILE)
    latest_path = child_path(LATEST)
    best_path = child_path(BEST)
    tensorboard_path = child_path(TENSORBOARD_DIR)

    @staticmethod
    def check_new(path: str | os.PathLike, advice: str = "use --resume or another --out") -> None:
        """Raise ValueError (ending in ``advice``) if ``path`` is a non-empty directory or a file
        (call before creating)."""
        path = Path(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise ValueError(f"run directory {str(path)!r} already exists and is not empty: {advice}")

    @classmethod
    def create(cls, path: str | os.PathLike, config: dict[str, Any], columns: Iterable[str]) -> RunDir:
        """Make a new run directory with its config and an empty metrics.csv."""
        cls.check_new(path)
        run = cls(path)
        run.path.mkdir(parents=True, exist_ok=True)
        write_json(run.config_path, config)
        run._write_rows(list(columns), [])
        return run

    def read_config(self) -> dict[str, Any]:
        if not self.config_path.is_file():
            raise FileNotFoundError(f"{self.path} is not a run directory: no {CONFIG_FILE}")
        try:
            config = read_json(self.config_path)
        except (ValueError, UnicodeDecodeError) as err:
            raise ValueError(f"unreadable {self.config_path} ({error_line(err)}): fix or delete the run directory") from None
        if not isinstance(config, dict):
            raise ValueError(f"unreadable {self.config_path}: not a JSON object")
        return config

    def reopen(self, config: dict[str, Any], columns: Iterable[str], last_update: int | None) -> None:
        """Continue this run after its checkpoint at ``last_update``: drop the metrics rows logged
        after it, and save ``config`` (which may differ in the fields a resume may change).
        ``last_update=None`` (no checkpoint yet) starts metrics.csv afresh with ``columns``."""
        if last_update is None:
            self._write_rows(list(columns), [])
        else:
            self.truncate_metrics(last_update)
        write_json(self.config_path, config)

    # -- metrics.csv ------------------------------------------------------------------------

    def read_metrics(self) -> tuple[list[str], list[dict[str, str]]]:
        """Columns and rows (as strings) of metrics.csv."""
        return read_csv_rows(self.metrics_path)

    def append_metrics(self, row: dict[str, Any]) -> None:
        """Append one row; floats are written with ``repr`` so they round-trip exactly."""
        with open(self.metrics_path, newline="") as f:
            columns = next(csv.reader(f))
        with open(self.metrics_path, "a", newline="") as f:
            csv.DictWriter(f, columns).writerow({k: _cell(row.get(k)) for k in columns})

    def truncate_metrics(self, last_update: int) -> None:
        """Drop rows after ``last_update`` (written after the checkpoint a run resumes from)."""
        columns, rows = self.read_metrics()
        self._write_rows(columns, [r for r in rows if int(r["update"]) <= last_update])

    def _write_rows(self, columns: list[str], rows: list[dict[str, Any]]) -> None:
        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, columns)
                writer.writeheader()
                writer.writerows(rows)

        _atomic(self.metrics_path, write)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def find_runs(paths: Iterable[str | os.PathLike]) -> list[RunDir]:
    """Run directories among ``paths``; a path without config.json is searched one level down
    (so ``memory-bench report runs/`` reports every run in it)."""
    runs: list[RunDir] = []
    for p in map(Path, paths):
        if (p / CONFIG_FILE).is_file():
            runs.append(RunDir(p))
        elif p.is_dir():
            found = sorted(c for c in p.iterdir() if (c / CONFIG_FILE).is_file())
            if not found:
                raise FileNotFoundError(f"{p} is not a run directory and contains none (no {CONFIG_FILE})")
            runs.extend(RunDir(c) for c in found)
        else:
            raise FileNotFoundError(f"no run directory at {p}")
    return runs

"""The figures' common parts: a figure of panels, a line with its band over seeds, and the
finishing of an axis and a PNG, so that every report draws alike."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure


def panels(count: int, width: float = 4.6, height: float = 3.4, columns: int = 3) -> tuple[Figure, list[Any]]:
    """A figure of ``count`` panels, at most ``columns`` a row, each ``width x height`` inches."""
    columns = max(1, min(columns, count))
    rows = math.ceil(count / columns)
    fig = Figure(figsize=(width * columns, height * rows), dpi=100)
    return fig, [fig.add_subplot(rows, columns, i + 1) for i in range(count)]


def band(ax: Any, xs: Sequence[float], centre: Sequence[float], low: Sequence[float] | None = None,
         high: Sequence[float] | None = None, label: str | None = None) -> None:
    """A line (markers when there are few points) and, when given, its shaded ``low..high`` band."""
    line = ax.plot(xs, centre, marker="o" if len(xs) < 30 else None, markersize=3, label=label)[0]
    if low is not None and high is not None:
        ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)


def finish(ax: Any, xlabel: str, ylabel: str, title: str | None = None, legend: str = "small") -> None:
    """Label an axis, draw its grid and, when it has lines, its legend in font size ``legend``."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize="medium")
    ax.grid(True, alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=legend)


def save(fig: Figure, path: Path) -> Path:
    """Lay out and write ``fig`` as a PNG at ``path``; returns the path."""
    fig.tight_layout()
    fig.savefig(path)
    return path

"""agents: recurrent architectures behind one cell contract, and the harnesses that train them.

    import agents
    cell = agents.make_cell("nru", input_size=10, hidden_size=80, memory_size=64, num_heads=4)
    out, state = cell(inputs)          # inputs [T, B, 10] -> out [T, B, 80]

The names below are imported on first use, so ``import agents`` (and ``memory-bench --help``)
does not import torch.
"""

from __future__ import annotations

from agents._lazy import lazy_exports


def _version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - Python < 3.8
        return "0+unknown"
    try:
        return version("memory-bench")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


__version__ = _version()

_LAZY = {
    "RecurrentCell": "agents.cells",
    "detach_state": "agents.cells",
    "list_cells": "agents.cells",
    "make_cell": "agents.cells",
}

__all__ = ["RecurrentCell", "__version__", "detach_state", "list_cells", "make_cell"]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

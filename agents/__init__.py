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
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("memory-bench")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


__version__ = _version()

__getattr__, __dir__, __all__ = lazy_exports(
    __name__, {"agents.cells": ["RecurrentCell", "detach_state", "list_cells", "make_cell"]}
)
__all__ += ["__version__"]

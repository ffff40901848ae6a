"""The ``memory-bench`` command line.

Each sub-command lives beside the code it drives and contributes ``add_parser(subparsers)``;
this file assembles them, so ``memory-bench --help`` stays fast (torch is imported by the
sub-command that needs it, not here), and holds the flag helpers the sub-commands share.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import re
import sys
import time
from pathlib import Path
from typing import Any

# Modules that define sub-commands, in the order they appear in --help.
COMMAND_MODULES = (
    "memenvs.catalog",
    "agents.supervised.cli",
    "agents.supervised.suites",
    "agents.rl.cli",
    "agents.sweep.cli",
)


# --------------------------------------------------------------------------------------------
# Helpers shared by the sub-commands
# --------------------------------------------------------------------------------------------


def parse_value(text: str) -> Any:
    """``"3"`` -> 3, ``"0.5"`` -> 0.5, ``"true"``/``"True"`` -> True, ``"none"`` -> None,
    ``"[1, 2]"`` -> [1, 2]; anything else stays a string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def parse_kwargs(items: list[str] | None, flag: str) -> dict[str, Any]:
    """Repeated ``key=value`` flags -> dict; a later flag overrides an earlier one for the same
    key. ValueError naming the flag on a malformed item."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ValueError(f"{flag} {item!r} is malformed: expected key=value with a Python identifier as key")
        out[key] = parse_value(value)
    return out


def set_torch_threads(threads: int | None, flag: str = "--threads") -> None:
    """Set torch's intra-op threads from a flag (None: leave torch's choice); ValueError below 1."""
    if threads is None:
        return
    from memenvs.core import check_int

    threads = check_int(flag, threads, low=1)
    import torch

    torch.set_num_threads(threads)


def default_run_dir(name: str, seed: int) -> Path:
    """``runs/<name>-s<seed>-<YYYYmmdd-HHMMSS>``, with ``name`` made safe for a path."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
    return Path("runs") / f"{slug}-s{seed}-{time.strftime('%Y%m%d-%H%M%S')}"


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memory-bench",
        description="Long-term memory benchmark for recurrent networks.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse ``argv`` and run the chosen sub-command; returns the exit status.

    Errors meant for the user (``ValueError`` from argument checks) print one line and exit 2.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        print(f"memory-bench {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"memory-bench {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

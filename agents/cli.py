"""The ``memory-bench`` command line.

Each sub-command lives beside the code it drives and contributes ``add_parser(subparsers)``;
this file assembles them and holds the flag helpers the sub-commands share. :func:`main` imports
only the module of the command it runs, and none for ``memory-bench --help`` / ``--version``
(which list the commands from :data:`COMMANDS`), so those answer without importing torch.
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

# Every sub-command, the module whose ``add_parser`` registers it, and its one-line help (the
# same text as that module's; a test checks they agree), in the order of ``--help``.
COMMANDS = (
    ("envs", "memenvs.catalog", "list every registered env with its spaces and random / memoryless / oracle returns"),
    ("train", "agents.supervised.cli", "train a cell on a task (supervised)"),
    ("report", "agents.supervised.cli", "markdown table and learning curves of runs"),
    ("suite", "agents.sweep.cli", "replay a paper's experiments (a shipped sweep spec) at a scale, then report"),
    ("sweep", "agents.sweep.cli", "run a grid of runs (cells x tasks x lengths x seeds) locally or on Ray, then report"),
    ("results", "agents.sweep.cli", "check each sweep's claim and write the results page"),
    ("rl", "agents.rl.cli", "train recurrent PPO with any cell on an env"),
)
# Modules that define sub-commands, in the order they appear in --help.
COMMAND_MODULES = tuple(dict.fromkeys(module for _, module, _ in COMMANDS))


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


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``memory-bench`` parser.

    Args:
        command: None (default): every sub-command with all its options (imports every command
            module). A command name: that command's module only, the others as bare entries
            (name and help), enough for ``--help`` and for argparse's errors. ``""``: bare
            entries only, importing nothing.
    """
    from agents import __version__

    parser = argparse.ArgumentParser(
        prog="memory-bench",
        description="Long-term memory benchmark for recurrent networks.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if command is None:
        for module in COMMAND_MODULES:
            importlib.import_module(module).add_parser(subparsers)
        return parser
    wanted = {module for name, module, _ in COMMANDS if name == command}
    done: set[str] = set()
    for name, module, help_text in COMMANDS:
        if module in wanted:
            if module not in done:
                importlib.import_module(module).add_parser(subparsers)
                done.add(module)
        else:
            subparsers.add_parser(name, help=help_text)
    return parser


def _command_of(argv: list[str]) -> str:
    """The sub-command named in ``argv`` (its first argument that is not an option), or ``""``.
    The top-level parser has no option that takes a value, so this is what argparse will pick."""
    for arg in argv:
        if arg == "--":
            break
        if not arg.startswith("-"):
            return arg
    return ""


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse ``argv`` and run the chosen sub-command; returns the exit status.

    Errors meant for the user (``ValueError`` from argument checks) print one line and exit 2.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_of(argv))
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

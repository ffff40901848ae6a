"""The ``memory-bench`` command line.

Each sub-command lives beside the code it drives and contributes ``add_parser(subparsers)``;
this file only assembles them, so ``memory-bench --help`` stays fast (torch is imported by the
sub-command that needs it, not here).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that define sub-commands, in the order they appear in --help.
COMMAND_MODULES = (
    "memenvs.catalog",
    "agents.supervised.cli",
    "agents.supervised.suites",
    "agents.rl.cli",
    "agents.sweep.cli",
)


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

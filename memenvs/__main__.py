"""``python -m memenvs``: every registered env with its spaces and reference returns.

The same table as ``memory-bench envs`` (:mod:`memenvs.catalog`), without loading the agents
half (no torch): ``python -m memenvs TMaze --episodes 5``.
"""

from __future__ import annotations

import argparse
import sys

import memenvs
from memenvs import catalog


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line), print the table and return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m memenvs", description=catalog.DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"memenvs {memenvs.__version__}")
    catalog.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ValueError as err:
        parser.error(str(err))


if __name__ == "__main__":
    sys.exit(main())

"""The ``memory-bench`` entry point: --version, and --help without importing torch."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

import agents
from agents.cli import main

ROOT = Path(__file__).resolve().parents[1]

# Prints which heavy modules a command imported, after it ran (or exited through argparse).
PROBE = """
import sys
from agents.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(sorted(m for m in ("torch", "stable_baselines3", "matplotlib", "pandas") if m in sys.modules))
"""


def test_version_attribute_is_the_installed_distribution_version() -> None:
    assert agents.__version__ == importlib.metadata.version("memory-bench")


def test_version_flag_prints_the_version(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"memory-bench {agents.__version__}"


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["train", "--help"], ["rl", "--help"], ["sweep", "--help"],
                                  ["suite", "--help"], ["report", "--help"], ["envs", "--help"]])
def test_help_does_not_import_torch(argv) -> None:
    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    *_, imported = proc.stdout.strip().splitlines()
    assert imported == "[]", f"memory-bench {' '.join(argv)} imported {imported}"


def test_the_command_table_matches_the_command_modules() -> None:
    from agents.cli import COMMANDS, build_parser

    full = build_parser()  # imports every command module
    (subparsers,) = [a for a in full._actions if a.dest == "command"]  # noqa: SLF001
    registered = [(a.dest, a.help) for a in subparsers._choices_actions]  # noqa: SLF001
    assert registered == [(name, help_text) for name, _, help_text in COMMANDS]


def test_unknown_command_lists_every_command(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["nope"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err and "'rl'" in err and "'sweep'" in err

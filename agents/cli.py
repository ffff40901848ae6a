"""The ``memory-bench`` command line.

Each sub-command lives beside the code it drives and contributes ``add_parser(subparsers)``;
this file assembles them and holds the flag helpers the sub-commands share. :func:`main` imports
only the module of the command it runs, and none for ``memory-bench --help`` / ``--version``
(which list the commands from :data:`COMMANDS`), so those answer without importing torch.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import inspect
import re
import sys
import time
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Every sub-command, the module whose ``add_parser`` registers it, and its one-line help (the
# same text as that module's; a test checks they agree), in the order of ``--help``.
COMMANDS = (
    ("envs", "memenvs.catalog", "list every registered env with its spaces and random / memoryless / oracle returns"),
    ("train", "agents.supervised.cli", "train a cell on a task (supervised)"),
    ("suite", "agents.sweep.cli", "replay a paper's experiments (a shipped sweep spec) at a scale, then report"),
    ("sweep", "agents.sweep.cli", "run a grid of runs (cells x tasks x lengths x seeds) locally or on Ray, then report"),
    ("results", "agents.sweep.cli", "check each sweep's claim and write the results page"),
    ("report", "agents.sweep.cli", "markdown table and learning curves of runs"),
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


# --------------------------------------------------------------------------------------------
# Flags generated from a config dataclass
# --------------------------------------------------------------------------------------------


def _clean_doc(text: str) -> str:
    """Docstring markup as plain text: ``x`` -> x, :class:`~a.b.C` -> C."""
    text = re.sub(r":\w+:`~?([^`]*?)`", lambda m: m.group(1).rsplit(".", 1)[-1] if "~" in m.group(0) else m.group(1), text)
    return " ".join(text.replace("``", "").split())


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> its text in the ``Attributes:`` section of ``cls``'s docstring (an entry
    ``a, b: text`` documents both fields)."""
    lines = inspect.cleandoc(cls.__doc__ or "").splitlines()
    out: dict[str, str] = {}
    names: list[str] = []
    text: list[str] = []
    indent = None
    inside = False

    def flush() -> None:
        for name in names:
            out[name] = _clean_doc(" ".join(text))

    for line in lines:
        if line.strip() == "Attributes:":
            inside = True
            continue
        if not inside or not line.strip():
            continue
        lead = len(line) - len(line.lstrip())
        if lead == 0:
            break
        indent = lead if indent is None else indent
        entry = re.fullmatch(r"(\w+(?:\s*,\s*\w+)*):\s*(.*)", line.strip()) if lead == indent else None
        if entry:
            flush()
            names = [n.strip() for n in entry.group(1).split(",")]
            text = [entry.group(2)]
        else:
            text.append(line.strip())
    flush()
    return out


class _Given(argparse.Action):
    """Keeps what the user typed and under which option (``(option, text)``; a list of them for a
    repeatable ``key=value`` flag), converted later by :meth:`ConfigFlags.given` so that a bad
    value is one line naming that option."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        item = (option_string, values)
        if self.nargs == "?" and values is None:  # a bare boolean flag
            item = (option_string, "true")
        if getattr(self, "repeat", False):
            item = [*(getattr(namespace, self.dest) or []), item]
        setattr(namespace, self.dest, item)


def _describe(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "[]"
    return str(value)


class ConfigFlags:
    """One ``--field-name`` flag per field of a config dataclass (see :func:`add_config_flags`)."""

    def __init__(self, cls: type, fields: dict[str, tuple[str, Any, bool]], parsers: dict[str, Callable[[str, str], Any]]):
        self.cls = cls
        self._fields = fields  # name -> (primary flag, base type, optional)
        self._parsers = parsers

    def flag(self, name: str) -> str:
        """The field's flag (``--hidden-size``)."""
        return self._fields[name][0]

    def _convert(self, name: str, option: str, text: str) -> Any:
        _, kind, optional = self._fields[name]
        if name in self._parsers:
            return self._parsers[name](text, option)
        if optional and text.strip().lower() in ("none", "null") + (("off",) if kind in (int, float) else ()):
            return None
        if kind is str:
            return text
        value = parse_value(text)
        if kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{option} {text!r} must be true or false")
            return value
        numeric = isinstance(value, int) if kind is int else isinstance(value, (int, float))
        if isinstance(value, bool) or not numeric:
            what = "an integer" if kind is int else "a number"
            raise ValueError(f"{option} {text!r} must be {what}{' or none' if optional else ''}")
        return float(value) if kind is float else value

    def given(self, args: argparse.Namespace) -> dict[str, Any]:
        """The fields given on the command line, converted (ValueError naming the flag as typed)."""
        out: dict[str, Any] = {}
        for name, (_, kind, _) in self._fields.items():
            raw = getattr(args, name, None)
            if raw is None:
                continue
            if kind is dict:
                out[name] = {}
                for option, item in raw:
                    out[name].update(parse_kwargs([item], option))
            else:
                out[name] = self._convert(name, *raw)
        return out


#: ``--threads`` of the training commands (not saved in the run's config).
THREADS_HELP = ("torch CPU threads; default 1 on CPU (small recurrent models run fastest on one thread, and on a "
                "busy machine several can be many times slower), torch's choice on a GPU")


def add_run_command(
    subparsers: Any, name: str, *, help: str, description: str, config: type, run: Callable[[argparse.Namespace], int],
    run_dir: str, longer_flag: str, **flag_options: Any,
) -> None:
    """A training command (``train``, ``rl``): one flag per field of the ``config`` dataclass
    (:func:`add_config_flags` with ``flag_options``), then the flags that are not saved in the
    config: ``--out`` (default ``runs/<run_dir>``), ``--resume`` (which may raise
    ``longer_flag`` to train longer), ``--threads`` and ``--no-progress``."""
    description += (f" One flag per {config.__name__} field; flags left out keep its defaults "
                    "(with --resume: the run's settings).")
    out_help = f"run directory (default runs/{run_dir})"
    resume_help = f"continue the run in --out from its latest checkpoint with its saved settings (give {longer_flag} to train longer)"
    p = subparsers.add_parser(name, help=help, description=description)
    group = p.add_argument_group(f"run settings ({config.__module__.rsplit('.', 1)[0]}.{config.__name__})")
    flags = add_config_flags(group, config, **flag_options)
    group = p.add_argument_group("command (not saved in the config)")
    group.add_argument("--out", metavar="DIR", help=out_help)
    group.add_argument("--resume", action="store_true", help=resume_help)
    group.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    group.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run, config_flags=flags)


def add_config_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,  # noqa: SLF001 - argparse's group type
    cls: type,
    aliases: dict[str, list[str]] | None = None,
    parsers: dict[str, Callable[[str, str], Any]] | None = None,
    metavars: dict[str, str] | None = None,
    shown_defaults: dict[str, str] | None = None,
) -> ConfigFlags:
    """Add one flag per field of the dataclass ``cls`` to ``parser``; returns the :class:`ConfigFlags`
    that reads them back (:meth:`ConfigFlags.given`: only the fields the user gave, so defaults
    are the dataclass's and written once).

    ``--field-name`` per field, typed from its annotation: int, float, str, bool (``--flag`` alone
    means true, or ``--flag true|false``), ``X | None`` (also accepts ``none``), dicts (repeated
    ``--name-kw key=value``; a ``*_kwargs`` field gets ``--name-kw`` as well as ``--name-kwargs``),
    a ``Literal`` of strings (its values shown as ``{a,b}``; the config's ``__post_init__`` checks them).
    Help is the field's entry in the ``Attributes:`` section of the class docstring, with its
    default.

    Args:
        aliases: extra option strings per field (``{"task": ["--env"]}``).
        parsers: per field, ``parse(text, option) -> value`` for types the rules above do not
            cover (lists); it raises ValueError naming ``option``.
        metavars: per field, the metavar shown in ``--help``.
        shown_defaults: per field, how ``--help`` shows its default (when the value's text would
            mislead, e.g. a None that a custom parser spells differently).
    """
    aliases, parsers, metavars, shown_defaults = aliases or {}, parsers or {}, metavars or {}, shown_defaults or {}
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    fields: dict[str, tuple[str, Any, bool]] = {}
    for f in dataclasses.fields(cls):
        kind, optional = hints[f.name], False
        args = typing.get_args(kind)
        if typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in args:
            rest = [a for a in args if a is not type(None)]
            kind, optional = (rest[0] if len(rest) == 1 else Any), True
        choices: tuple[str, ...] = ()
        if typing.get_origin(kind) is typing.Literal:
            kind, choices = str, typing.get_args(kind)
        kind = typing.get_origin(kind) or kind
        if kind not in (int, float, str, bool, dict) and f.name not in parsers:
            raise TypeError(f"{cls.__name__}.{f.name}: no flag for type {hints[f.name]!r} (give a parser)")
        flag = "--" + f.name.replace("_", "-")
        options = [flag]
        if kind is dict and f.name.endswith("_kwargs"):
            options.append(flag[: -len("kwargs")] + "kw")
        options += [a for a in aliases.get(f.name, []) if a not in options]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default  # type: ignore[misc]
        help_text = docs.get(f.name, "")
        if kind is not dict and default is not dataclasses.MISSING:
            shown = f" (default: {shown_defaults.get(f.name) or _describe(default)})"
            help_text = help_text[:-1] + shown + "." if help_text.endswith(".") else help_text + shown
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "action": _Given, "help": help_text.replace("%", "%%")}
        if kind is bool:
            kwargs.update(nargs="?", metavar="true|false")
        elif kind is dict:
            kwargs["metavar"] = "K=V"
        else:
            named = "{" + ",".join(choices) + "}" if choices else f.name.upper()
            kwargs["metavar"] = metavars.get(f.name) or (named + ("|none" if optional else ""))
        action = parser.add_argument(*options, **kwargs)
        action.repeat = kind is dict
        fields[f.name] = (flag, kind, optional)
    return ConfigFlags(cls, fields, parsers)


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

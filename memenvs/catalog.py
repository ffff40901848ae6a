"""``memory-bench envs``: every registered env with its spaces and reference returns.

For each id (default kwargs) it plays seeded episodes with three policies and prints one aligned
table row: a uniformly random policy, the best memoryless policy (``memoryless_action()``) and
the oracle (``oracle_action()``, perfect memory), next to the returns the env declares in
``env.unwrapped.reference``. A memoryless or oracle column far from its declared reference points
at a bug in the env. Sequence tasks and control envs are treated alike; an env without one of the
policies or references shows ``-``. Depends on numpy and gymnasium only (never torch).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from tqdm import tqdm

import memenvs
from memenvs.core import check_int

POLICIES = ("random", "memoryless", "oracle")
#: Safety cap on one episode's steps, for an env whose random policy never ends an episode.
MAX_EPISODE_STEPS = 100_000


@dataclass
class Row:
    """One line of the table: an id, its spaces, measured returns and declared references."""

    env_id: str
    observation: str = "-"
    action: str = "-"
    steps: float | None = None
    returns: dict[str, float | None] = field(default_factory=dict)
    reference: dict[str, float | None] = field(default_factory=dict)
    error: str | None = None
    #: True when the env could not be built for want of local data (e.g. a dataset that has no
    #: embedded default); shown in the table but not counted as a failure.
    unavailable: bool = False


def describe_space(space: spaces.Space) -> str:
    """A compact one-line description of a Gymnasium space, e.g. ``Box(0,1,(10,))``."""
    if isinstance(space, spaces.Discrete):
        return f"Discrete({space.n})" if space.start == 0 else f"Discrete({space.n},start={space.start})"
    if isinstance(space, spaces.Box):
        low, high = np.unique(space.low), np.unique(space.high)
        bounds = f"{low[0]:g},{high[0]:g}," if low.size == 1 and high.size == 1 else ""
        return f"Box({bounds}{space.shape})"
    if isinstance(space, spaces.MultiDiscrete):
        return f"MultiDiscrete({space.nvec.tolist()})"
    if isinstance(space, spaces.Dict):
        return "Dict(" + ", ".join(f"{k}:{describe_space(v)}" for k, v in space.spaces.items()) + ")"
    return str(space)


def _policy(env: gym.Env, name: str) -> Callable[[], Any] | None:
    """The action function of a reference policy, or None if the env does not provide it."""
    if name == "random":
        return env.action_space.sample
    method = getattr(env.unwrapped, f"{name}_action", None)
    return method if callable(method) else None


def play_episode(env: gym.Env, policy: str, seed: int) -> tuple[float, int] | None:
    """Return and length of one episode of ``policy`` after ``reset(seed=seed)``; None if the env
    lacks the policy. The same seed gives every policy the same episode of a sequence task."""
    act = _policy(env, policy)
    if act is None:
        return None
    env.reset(seed=seed)
    env.action_space.seed(seed)
    total = 0.0
    for step in range(1, MAX_EPISODE_STEPS + 1):
        try:
            action = act()
        except NotImplementedError:
            return None
        _, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        if terminated or truncated:
            return total, step
    return total, MAX_EPISODE_STEPS


def _declared(env: gym.Env) -> dict[str, float | None]:
    ref = getattr(env.unwrapped, "reference", None)
    return {name: _as_float(getattr(ref, "optimal" if name == "oracle" else name, None)) for name in POLICIES}


def _as_float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float, np.floating, np.integer)) else None


def catalog_row(env_id: str, seed: int = 0, episodes: int = 1) -> Row:
    """Measure one id: mean return of each policy over ``episodes`` seeded episodes.

    Episode ``k`` of every policy uses seed ``seed + k``. ``steps`` is the mean episode length of
    the oracle if the env has one (the task's own length), else of the random policy.
    """
    row = Row(env_id)
    try:
        env = gym.make(env_id)
    except FileNotFoundError as err:
        row.error, row.unavailable = _first_sentence(err), True
        return row
    except Exception as err:  # noqa: BLE001 - one broken id must not hide the rest of the table
        row.error = f"{type(err).__name__}: {err}"
        return row
    try:
        row.observation = describe_space(env.observation_space)
        row.action = describe_space(env.action_space)
        row.reference = _declared(env)
        lengths: dict[str, list[int]] = {}
        for policy in POLICIES:
            results = [play_episode(env, policy, seed + k) for k in range(episodes)]
            if any(r is None for r in results):
                row.returns[policy] = None
                continue
            row.returns[policy] = float(np.mean([r[0] for r in results]))
            lengths[policy] = [r[1] for r in results]
        steps = lengths.get("oracle") or lengths.get("random")
        row.steps = float(np.mean(steps)) if steps else None
    except Exception as err:  # noqa: BLE001
        row.error = f"{type(err).__name__}: {err}"
    finally:
        env.close()
    return row


def _first_sentence(err: Exception) -> str:
    text = str(err).split(";")[0].split(". ")[0]
    return text if len(text) <= 100 else text[:97] + "..."


def format_table(rows: list[Row]) -> str:
    """Aligned plain-text table of the rows (numbers right-aligned, 3 decimals)."""
    header = ["id", "observation", "action", "steps"]
    header += [f"{p} ret" for p in POLICIES] + [f"ref {p}" for p in POLICIES]

    def num(x: float | None, digits: int = 3) -> str:
        return "-" if x is None else f"{x:.{digits}f}"

    lines = []
    for r in rows:
        if r.error is not None:
            lines.append([r.env_id, f"{'unavailable' if r.unavailable else 'error'}: {r.error}"])
            continue
        steps = "-" if r.steps is None else f"{r.steps:g}"
        lines.append(
            [r.env_id, r.observation, r.action, steps]
            + [num(r.returns.get(p)) for p in POLICIES]
            + [num(r.reference.get(p)) for p in POLICIES]
        )
    full = [line for line in lines if len(line) == len(header)]
    widths = [max([len(h)] + [len(line[i]) for line in full]) for i, h in enumerate(header)]
    widths[0] = max(len(line[0]) for line in lines + [header])

    def render(cells: list[str]) -> str:
        if len(cells) != len(header):
            return "  ".join([cells[0].ljust(widths[0])] + cells[1:])
        out = [c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([render(header), rule] + [render(line) for line in lines])


def select_ids(patterns: list[str], kind: str) -> list[str]:
    """Registered ids of ``kind`` whose name contains any of ``patterns`` (case-insensitive)."""
    ids = memenvs.list_ids(kind)
    if patterns:
        ids = [i for i in ids if any(p.lower() in i.lower() for p in patterns)]
        if not ids:
            scope = "" if kind == "all" else f"{kind} "
            raise ValueError(f"no registered {scope}id matches {patterns}: see `memory-bench envs`")
    return ids


def run(args: argparse.Namespace) -> int:
    """Print the catalog table; exit status 1 if any id failed to build or run (ids whose data
    files are missing are listed as unavailable and do not fail the command)."""
    seed = check_int("--seed", args.seed, low=0)
    episodes = check_int("--episodes", args.episodes, low=1)
    ids = select_ids(args.ids, args.kind)
    rows = [catalog_row(i, seed, episodes) for i in tqdm(ids, desc="envs", leave=False, file=sys.stderr, disable=None)]
    print(format_table(rows))
    return 1 if any(r.error and not r.unavailable for r in rows) else 0


DESCRIPTION = (
    "Make every registered memenvs id with its default kwargs, play seeded episodes with a "
    "random, the best memoryless and the oracle policy, and print their returns next to the "
    "references the env declares ('-' where an env has no such policy or reference). "
    "'steps' is the oracle's episode length (the random policy's if there is no oracle)."
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``envs`` sub-command."""
    parser = subparsers.add_parser(
        "envs",
        help="list every registered env with its spaces and random / memoryless / oracle returns",
        description=DESCRIPTION,
    )
    add_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of the table (``memory-bench envs`` and ``python -m memenvs``)."""
    parser.add_argument("ids", nargs="*", help="only ids containing one of these strings (case-insensitive)")
    parser.add_argument("--kind", choices=("all", "tasks", "control"), default="all", help="which ids (default all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (default 0)")
    parser.add_argument("--episodes", type=int, default=1, help="episodes per policy, averaged (default 1)")
    parser.set_defaults(run=run)

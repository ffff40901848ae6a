"""Env-steps per second of memenvs ids with random actions, in three forms:

* ``gym.make``: one Python env (N = 1 only);
* ``SyncVectorEnv``: N Python envs stepped in a loop (``gym.make_vec(..., vectorization_mode="sync")``);
* native: the numpy-batched vector env of the id's ``vector_entry_point`` (``gym.make_vec``).

For each N it prints the steps/s of each and the ratio native / sync. Anchor (issue 2): for
Copy (T = 100) the native env should reach >= 1,000,000 env-steps/s at N = 1024 and >= 20x
``SyncVectorEnv``. Add ids to ``ENVS`` to benchmark them too.

Usage::

    python benchmarks/env_throughput.py [--seconds 1.0] [--sizes 1 64 1024] [--ids memenvs/Copy-v0]
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

import gymnasium as gym
import numpy as np

import memenvs  # noqa: F401  (registers the ids)

#: (id, kwargs) pairs to benchmark; other modules' envs can be appended here.
ENVS: list[tuple[str, dict[str, Any]]] = [
    ("memenvs/Copy-v0", {"delay": 100}),
    ("memenvs/VariableCopy-v0", {}),
    ("memenvs/Denoise-v0", {}),
    ("memenvs/Adding-v0", {}),
    ("memenvs/TimeWarp-v0", {}),
    # RL memory envs (issue 5); StatelessCartPole has no native vector env, so it is not listed.
    ("memenvs/TMaze-v0", {}),
    ("memenvs/MemoryChain-v0", {}),
    ("memenvs/RepeatPreviousEasy-v0", {}),
    ("memenvs/RepeatFirstEasy-v0", {}),
    ("memenvs/CountRecallEasy-v0", {}),
    ("memenvs/AutoencodeEasy-v0", {}),
]
#: Optional side-by-side with POPGym (``pip install popgym``): (their id, our id). Target: our
#: native vector env at N = 1024 >= 20x their single env.
POPGYM_PAIR = ("popgym-RepeatPreviousEasy-v0", "memenvs/RepeatPreviousEasy-v0")
POPGYM_TARGET_RATIO = 20.0
SIZES = (1, 64, 1024)
#: Clock of the timings: "wall" (time.perf_counter) or "cpu" (time.process_time, this process's
#: CPU time: steadier on a shared machine; the envs are single-threaded, so on an idle machine
#: both agree). Set by --clock.
CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = time.perf_counter
#: Anchor for the first entry of ENVS at the largest N.
TARGET_STEPS_PER_S = 1_000_000
TARGET_RATIO = 20.0


def _time_loop(step: Callable[[int], None], min_seconds: float) -> tuple[int, float]:
    """Call ``step(k)`` for k = 0, 1, ... until ``min_seconds`` have passed; return (calls, seconds)."""
    calls, chunk = 0, 1
    start = _clock()
    while True:
        for _ in range(chunk):
            step(calls)
            calls += 1
        elapsed = _clock() - start
        if elapsed >= min_seconds:
            return calls, elapsed
        chunk = min(chunk * 2, 1024)


def single_env_rate(env_id: str, kwargs: dict[str, Any], min_seconds: float) -> float:
    """Env-steps/s of one ``gym.make`` env (with its default wrappers), resetting on episode end."""
    env = gym.make(env_id, **kwargs)
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(64)]

    def step(k: int) -> None:
        _, _, terminated, truncated, _ = env.step(actions[k % 64])
        if terminated or truncated:
            env.reset()

    calls, elapsed = _time_loop(step, min_seconds)
    env.close()
    return calls / elapsed


def vector_env_rate(env_id: str, kwargs: dict[str, Any], num_envs: int, mode: str, min_seconds: float) -> float:
    """Env-steps/s of ``gym.make_vec(..., vectorization_mode=mode)`` (autoreset inside)."""
    env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode, **kwargs)
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(16)]
    for k in range(8):  # warm up (first calls allocate)
        env.step(actions[k % 16])
    calls, elapsed = _time_loop(lambda k: env.step(actions[k % 16]), min_seconds)
    env.close()
    return calls * num_envs / elapsed


def benchmark(envs: list[tuple[str, dict[str, Any]]], sizes: tuple[int, ...], min_seconds: float) -> list[dict]:
    rows = []
    for env_id, kwargs in envs:
        for n in sizes:
            single = single_env_rate(env_id, kwargs, min_seconds) if n == 1 else None
            sync = vector_env_rate(env_id, kwargs, n, "sync", min_seconds)
            native = vector_env_rate(env_id, kwargs, n, "vector_entry_point", min_seconds)
            rows.append({"id": env_id, "kwargs": kwargs, "N": n, "single": single, "sync": sync, "native": native})
    return rows


def popgym_comparison(min_seconds: float, num_envs: int = 1024) -> str:
    """POPGym's single env vs ours (single and native vector) in the same run, or why skipped."""
    try:
        import popgym.envs  # noqa: F401  (registers the popgym-* ids)
    except ImportError:
        return "popgym comparison skipped: popgym is not installed (pip install popgym)"
    theirs, ours = POPGYM_PAIR
    popgym_single = single_env_rate(theirs, {}, min_seconds)
    ours_single = single_env_rate(ours, {}, min_seconds)
    ours_native = vector_env_rate(ours, {}, num_envs, "vector_entry_point", min_seconds)
    ratio = ours_native / popgym_single
    return (
        f"{theirs} gym.make: {popgym_single:,.0f} steps/s; {ours} gym.make: {ours_single:,.0f} steps/s "
        f"({ours_single / popgym_single:.1f}x), native N={num_envs}: {ours_native:,.0f} steps/s = {ratio:.0f}x popgym "
        f"(target >= {POPGYM_TARGET_RATIO:.0f}x): {'met' if ratio >= POPGYM_TARGET_RATIO else 'NOT met'}"
    )


def format_rows(rows: list[dict]) -> str:
    def rate(x: float | None) -> str:
        return "-" if x is None else f"{x:,.0f}"

    header = ["env", "N", "gym.make", "SyncVectorEnv", "native make_vec", "native/sync"]
    lines = [header]
    for r in rows:
        name = r["id"] + (" " + ",".join(f"{k}={v}" for k, v in r["kwargs"].items()) if r["kwargs"] else "")
        lines.append([name, str(r["N"]), rate(r["single"]), rate(r["sync"]), rate(r["native"]), f"{r['native'] / r['sync']:.1f}x"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))) for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="minimum timed seconds per cell (default 1)")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="numbers of envs N")
    parser.add_argument("--ids", nargs="+", default=None, help="ids to run instead of ENVS (kwargs from ENVS if listed)")
    parser.add_argument("--clock", choices=tuple(CLOCK), default="wall", help="wall (default) or process CPU time")
    args = parser.parse_args(argv)
    global _clock
    _clock = CLOCK[args.clock]
    known = dict(ENVS)
    envs = [(i, known.get(i, {})) for i in args.ids] if args.ids else ENVS
    rows = benchmark(envs, tuple(args.sizes), args.seconds)
    print(f"env-steps per second ({args.clock} clock), random actions")
    print(format_rows(rows))
    anchor = [r for r in rows if r["id"] == ENVS[0][0] and r["kwargs"] == ENVS[0][1] and r["N"] == max(args.sizes)]
    if anchor:
        r = anchor[0]
        ok = r["native"] >= TARGET_STEPS_PER_S and r["native"] / r["sync"] >= TARGET_RATIO
        print(
            f"anchor {r['id']} N={r['N']}: native {r['native']:,.0f} steps/s (target >= {TARGET_STEPS_PER_S:,}), "
            f"{r['native'] / r['sync']:.1f}x sync (target >= {TARGET_RATIO:.0f}x): {'met' if ok else 'NOT met'}"
        )
    if not args.ids:
        print(popgym_comparison(args.seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Forward+backward speed of every registered cell against PyTorch's fused nn.LSTM / nn.GRU.

For each cell and each shape it prints the parameter count, the median milliseconds of one
forward+backward pass (``out.sum().backward()``, parameter gradients included) and the ratio to the
anchor measured in the same run: ``nn.GRU`` for the GRU family, ``nn.LSTM`` otherwise, both of the
same hidden size. Shapes (issue 3): T=784, B=64, I=1, H=128 (pixel MNIST) and T=100, B=64, I=64,
H=128. Extra rows: ``lstm``/``gru`` with episode starts (each sample resets with probability 1/100
per step, i.e. RL-like episodes of mean length 100), ``lstm`` with peepholes, and ``nru`` at the
parameter count of the anchor (``=params``; the issue's NRU target is at equal parameter count).
``--equal-params`` sizes *every* cell that way.

Each cell is timed with its anchor in a fresh Python process, round-robin (each repeat times
both once), so a change of machine load affects both alike and the ratio stays meaningful on a
shared CPU; the anchor's printed time is the median over its pairs. Each timed pass comes right
after an untimed pass of the same module. Both rules keep one module from paying for the memory
another left behind: glibc returns freed memory to the system and the next large allocation
costs a page fault per 4 kB, which on this machine moved single rows by up to 2x when all rows
shared a process.

    python benchmarks/cell_speed.py                 # full run (minutes on a laptop CPU)
    python benchmarks/cell_speed.py --quick         # small shapes, 5 repeats: a smoke run
    python benchmarks/cell_speed.py --cells lstm gru janet --equal-params
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from agents.cells import CELLS, cell_class, list_cells, make_cell  # noqa: E402

GRU_FAMILY = ("gru", "kaf-gru")
RESET_PROBABILITY = 0.01


@dataclass
class Shape:
    steps: int
    batch: int
    inputs: int
    hidden: int

    def __str__(self) -> str:
        return f"T={self.steps} B={self.batch} I={self.inputs} H={self.hidden}"


@dataclass
class Row:
    label: str
    name: str  # registry name, or "nn.LSTM" / "nn.GRU" for the anchors
    kwargs: dict = field(default_factory=dict)
    resets: bool = False
    equal_params: bool = False

    @property
    def anchor(self) -> str:
        return "nn.GRU" if self.name in GRU_FAMILY or self.name == "nn.GRU" else "nn.LSTM"


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def anchor_module(name: str, shape: Shape) -> nn.Module:
    return (nn.GRU if name == "nn.GRU" else nn.LSTM)(shape.inputs, shape.hidden)


def matched_hidden(name: str, kwargs: dict, inputs: int, target: int, limit: int) -> int:
    """The hidden size whose parameter count is closest to ``target`` (counts grow with H)."""
    def params(h: int) -> int:
        return count(make_cell(name, inputs, h, **kwargs))

    lo, hi = 1, limit
    while lo < hi:  # first h with params(h) >= target
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if params(mid) < target else (lo, mid)
    return min((h for h in (lo - 1, lo) if h >= 1), key=lambda h: abs(params(h) - target))


def build(row: Row, shape: Shape, device: torch.device) -> tuple[nn.Module, int]:
    """The module of a row and its hidden size."""
    if row.name.startswith("nn."):
        return anchor_module(row.name, shape).to(device), shape.hidden
    hidden = shape.hidden
    if row.equal_params:
        target = count(anchor_module(row.anchor, shape))
        hidden = matched_hidden(row.name, row.kwargs, shape.inputs, target, limit=8 * shape.hidden)
    return make_cell(row.name, shape.inputs, hidden, **row.kwargs).to(device), hidden


def make_pass(module: nn.Module, row: Row, shape: Shape, device: torch.device) -> Callable[[], None]:
    """One forward+backward pass of ``module`` on fixed random data."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape.steps, shape.batch, shape.inputs, generator=gen).to(device)
    resets = None
    if row.resets:
        resets = (torch.rand(shape.steps, shape.batch, generator=gen) < RESET_PROBABILITY).to(device)

    def run() -> None:
        module.zero_grad(set_to_none=True)
        out = module(x)[0] if row.name.startswith("nn.") else module(x, None, resets)[0]
        out.sum().backward()

    return run


def measure(rows: list[Row], shape: Shape, device: torch.device, repeats: int, warmup: int) -> dict[str, dict]:
    built = {row.label: build(row, shape, device) for row in rows}
    passes = {row.label: make_pass(built[row.label][0], row, shape, device) for row in rows}
    times: dict[str, list[float]] = {row.label: [] for row in rows}
    for r in range(warmup + repeats):
        for row in rows:
            passes[row.label]()  # untimed: the timed pass starts from this row's own memory state
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            passes[row.label]()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if r >= warmup:
                times[row.label].append(time.perf_counter() - start)
    return {
        row.label: {
            "ms": 1000 * statistics.median(times[row.label]),
            "params": count(built[row.label][0]),
            "hidden": built[row.label][1],
        }
        for row in rows
    }


def measure_pair(argv: list[str] | None, shape_index: int, row_index: int) -> dict[str, dict]:
    """:func:`measure` of one row and its anchor, round-robin, in a fresh Python process.

    In one process timing every row, each row's speed depended on what ran before it: the
    heap that other cells and the longer shape leave behind (fragmented, mostly returned to the
    system) slowed the per-step cells by up to 2x, unevenly and differently from run to run.
    A cell with its anchor alone in a process is what a training run looks like."""
    args = sys.argv[1:] if argv is None else argv
    command = [sys.executable, str(Path(__file__).resolve()), *args,
               "--pair", str(shape_index), str(row_index)]
    done = subprocess.run(command, stdout=subprocess.PIPE, check=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def importable(names: list[str]) -> tuple[list[str], list[str]]:
    ok, skipped = [], []
    for name in names:
        try:
            cell_class(name)
            ok.append(name)
        except ImportError as err:
            skipped.append(f"{name} ({type(err).__name__}: {err})")
    return ok, skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small shapes and 5 repeats (a smoke run)")
    parser.add_argument("--equal-params", action="store_true",
                        help="size every cell to the anchor's parameter count instead of H")
    parser.add_argument("--cells", nargs="+", default=None, metavar="NAME",
                        help=f"cells to time (default: all registered: {', '.join(list_cells())})")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per row (default 10; 5 with --quick)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's choice; 1 is steadier on a busy CPU)")
    parser.add_argument("--pair", type=int, nargs=2, default=None, help=argparse.SUPPRESS)  # internal: shape, row -> JSON
    args = parser.parse_args(argv)
    for name in args.cells or []:
        if name not in CELLS:
            parser.error(f"unknown cell {name!r}: choose from {', '.join(list_cells())}")
    repeats = args.repeats or (5 if args.quick else 10)
    if repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    device = torch.device(args.device)
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be >= 1")
        torch.set_num_threads(args.threads)

    names, skipped = importable(args.cells or list_cells())
    rows = [Row("nn.LSTM", "nn.LSTM"), Row("nn.GRU", "nn.GRU")]
    for name in names:
        rows.append(Row(name, name, equal_params=args.equal_params))
        if name in ("lstm", "gru"):
            rows.append(Row(f"{name} +resets", name, resets=True, equal_params=args.equal_params))
        if name == "lstm":
            rows.append(Row("lstm +peepholes", name, {"peepholes": True}, equal_params=args.equal_params))
        if name == "nru" and not args.equal_params:
            rows.append(Row("nru =params", name, equal_params=True))

    if args.quick:
        shapes = [Shape(100, 16, 1, 32), Shape(30, 16, 16, 32)]
    else:
        shapes = [Shape(784, 64, 1, 128), Shape(100, 64, 64, 128)]
    if args.pair is not None:
        shape, row = shapes[args.pair[0]], rows[args.pair[1]]
        anchor = next(r for r in rows if r.label == row.anchor)
        print(json.dumps(measure([anchor, row] if row is not anchor else [row], shape, device, repeats, args.warmup)))
        return 0
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"median of {repeats} forward+backward passes after {args.warmup} warm-up rounds, "
          "each cell with its anchor in a fresh process"
          + (", every cell at the anchor's parameter count" if args.equal_params else ""))
    for line in skipped:
        print(f"skipped {line}")
    results = []  # per shape: label -> {ms, params, hidden, ratio}
    for shape_index, shape in enumerate(shapes):
        res: dict[str, dict] = {}
        anchor_ms: dict[str, list[float]] = {}
        for row_index, row in enumerate(rows):
            if row.name.startswith("nn."):
                continue
            print(f"timing {row.label} at {shape} ...", file=sys.stderr, flush=True)
            pair = measure_pair(argv, shape_index, row_index)
            res[row.label] = dict(pair[row.label], ratio=pair[row.label]["ms"] / pair[row.anchor]["ms"])
            anchor_ms.setdefault(row.anchor, []).append(pair[row.anchor]["ms"])
            res.setdefault(row.anchor, pair[row.anchor])
        for label, times in anchor_ms.items():  # the anchors: median over their pairs
            res[label] = dict(res[label], ms=statistics.median(times), ratio=1.0)
        results.append(res)

    header = "| cell | anchor |" + "".join(f" {s}: H | params | ms | ratio |" for s in shapes)
    print()
    print(header)
    print("|" + "---|" * (2 + 4 * len(shapes)))
    for row in rows:
        if row.label not in results[0]:  # an anchor no cell is paired with
            continue
        cells = [row.label, row.anchor if not row.name.startswith("nn.") else "-"]
        for res in results:
            r = res[row.label]
            cells += [str(r["hidden"]), f"{r['params']:,}", f"{r['ms']:.1f}", f"{r['ratio']:.2f}x"]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Paper suites: each paper's experiments as plain data, a runner, and a leaderboard.

::

    memory-bench suite all --scale smoke            # every suite, tiny: about two minutes on a laptop CPU
    memory-bench suite nru --scale small --out runs/suites
    memory-bench suite chrono --scale paper --device cuda

A suite (:class:`Suite`) lists the paper's tasks (:class:`TaskSpec`: task options and training
settings per scale) and cells (:class:`CellSpec`: sizes per size group, options, per-task
training overrides). :func:`plan` turns a suite and a scale into validated
:class:`~agents.supervised.TrainConfig` objects; :func:`run_suite` trains each one into
``OUT/<suite>/<task>/<cell>/`` with :func:`~agents.supervised.train`, skipping runs whose
``summary.json`` already exists (so an interrupted suite continues where it stopped; a run cut
off mid-way resumes from its latest checkpoint), then writes ``OUT/<suite>/leaderboard.md`` and a
report with learning curves per task (:mod:`agents.supervised.report`).

Scales:
    ``paper``: the papers' sizes, optimisers and update counts (PAPERS.md §2.5, §3.4, §4.5, §5.3,
    §6.2); facts marked [R]/[U] there are choices documented beside each suite.
    ``small``: shorter sequences, smaller cells and a few hundred updates, sized so that one suite
    finishes in at most 15 minutes on a 2-core CPU. Tasks that cannot fit (the NRU suite's
    785-step pMNIST with ten cells) run at ``paper`` scale only.
    ``smoke``: a handful of updates of tiny cells on tiny tasks: checks that everything runs
    (``all`` takes one to two minutes), not what learns.

Leaderboard score: the task's normalised score (0 = best memoryless policy, 1 = perfect memory;
:mod:`agents.supervised.metrics`) at the run's best evaluation (every suite run selects ``best.pt``
by ``score``), like the NRU plotting script, which takes each model's best validation epoch. Cells
are ranked per task (1 = best; equal scores share a rank), and the last column says whether a cell
is in the top 2 on every task it was planned on: the NRU paper's headline criterion. A planned run
that is missing or has no score counts as not in the top 2.

Cells that are not registered (``agents.list_cells()``) are skipped with a message, so a suite
lists every baseline of its paper and runs those available.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.cells.base import CELLS
from agents.supervised.runs import RunDir, read_json
from agents.supervised.trainer import TrainConfig, make_task, train
from agents.sweep.stats import competition_ranks
from memenvs.core import SequenceTask, check_choice


SCALES = ("smoke", "small", "paper")


# --------------------------------------------------------------------------------------------
# Values derived from the task (plain data, resolved when a run is planned)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scaled:
    """``factor * task.<attr> + offset``: a cell option that follows the task, e.g. chrono's
    ``t_max = 3T/2`` is ``Scaled("delay", 1.5)`` and NRU's ``t_max = T + 20`` (the sequence
    length) is ``Scaled("max_length")``."""

    attr: str
    factor: float = 1.0
    offset: float = 0.0

    def resolve(self, task: SequenceTask) -> float:
        return self.factor * float(getattr(task, self.attr)) + self.offset


@dataclass(frozen=True)
class Curriculum:
    """A temporal curriculum (PAPERS §4.4) relative to the task: the first ``share`` of the
    updates is split evenly over stages whose length knob (``task.length_knob``) is each of
    ``fractions`` times the task's own value; the remaining updates use the task itself."""

    fractions: tuple[float, ...] = (0.1, 0.25, 0.5)
    share: float = 0.5

    def resolve(self, task: SequenceTask, updates: int) -> list[list[Any]]:
        knob = task.length_knob
        if knob is None:
            raise ValueError(f"a curriculum needs a task with a length knob; {type(task).__name__} has none")
        full = getattr(task, knob)
        per_stage = max(1, round(self.share * updates / len(self.fractions)))
        return [[max(1, round(f * full)), per_stage] for f in self.fractions]


@dataclass(frozen=True)
class OfUpdates:
    """``round(fraction * updates)`` of the run, e.g. an auxiliary pre-training phase."""

    fraction: float

    def resolve(self, updates: int) -> int:
        return round(self.fraction * updates)


def _resolve(value: Any, task: SequenceTask, updates: int) -> Any:
    if isinstance(value, OfUpdates):
        return value.resolve(updates)
    if isinstance(value, Scaled):
        return value.resolve(task)
    if isinstance(value, Curriculum):
        return value.resolve(task, updates)
    if isinstance(value, Mapping):
        return {k: _resolve(v, task, updates) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------------------------
# Suite definitions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskSpec:
    """One task of a suite.

    Attributes:
        key: column name in the leaderboard and directory name (``copy-100``).
        task: registered task name (``memenvs.make_task``).
        scales: scale -> ``{"task_kwargs": {...}, "size": size group, "train": {TrainConfig
            fields}}``. A scale that is missing skips the task at that scale. ``aux_kwargs``
            here apply only to the runs of cells that use an auxiliary loss.
    """

    key: str
    task: str
    scales: Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class CellSpec:
    """One model of a suite.

    Attributes:
        key: row name in the leaderboard and directory name (``lstm-chrono``).
        cell: registered cell name.
        sizes: size group -> ``{"hidden_size": H, "cell_kwargs": {...}}`` (plus any other
            TrainConfig field, e.g. ``embedding_dim``). Values may be :class:`Scaled`.
        train: TrainConfig overrides for every task (tbptt, aux, budget_weight, curriculum...).
        task_train: task key -> TrainConfig overrides for that task only.
        tasks: the task keys this cell runs on (None: all).
    """

    key: str
    cell: str
    sizes: Mapping[str, Mapping[str, Any]]
    train: Mapping[str, Any] = field(default_factory=dict)
    task_train: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    tasks: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Suite:
    """A paper's experiments: tasks x cells, with training settings per scale.

    ``train``: scale -> TrainConfig fields shared by all runs (optimiser, lr, clip, batch...);
    a task's ``train`` overrides them, then the cell's, then the caller's overrides.
    """

    name: str
    title: str
    notes: str
    tasks: tuple[TaskSpec, ...]
    cells: tuple[CellSpec, ...]
    train: Mapping[str, Mapping[str, Any]]


def _sizes(table: Mapping[str, tuple[int, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """``{"group": (H, kwargs)}`` -> the ``CellSpec.sizes`` layout."""
    return {group: {"hidden_size": h, "cell_kwargs": dict(kw)} for group, (h, kw) in table.items()}


# Evaluation and length settings shared by several suites.
_SMOKE = {"updates": 4, "eval_every": 4, "eval_batches": 1, "eval_batch_size": 16}
_SMOKE_PIXELS = {"updates": 2, "eval_every": 2, "batch_size": 4, "eval_split": "validation", "eval_batches": 1, "eval_batch_size": 16}
_SYNTHETIC_EVAL = {"eval_batches": 10, "eval_batch_size": 100}
_PIXEL_EVAL = {"eval_split": "validation", "eval_batches": 0, "eval_batch_size": 100}


def _copy_like(key: str, task: str, knob: str, paper_value: int, extra: Mapping[str, Any], paper_train: Mapping[str, Any],
               small_value: int = 20, small_train: Mapping[str, Any] | None = None) -> TaskSpec:
    """A copy / variable copy / denoise task at the three scales (shorter delays below paper)."""
    return TaskSpec(key, task, {
        "smoke": {"task_kwargs": {knob: 5, **extra, "length": 3}, "size": "tiny", "train": _SMOKE},
        "small": {"task_kwargs": {knob: small_value, **extra}, "size": "small",
                  "train": {"updates": 300, "eval_every": 50, "eval_batches": 2, "eval_batch_size": 100, **(small_train or {})}},
        "paper": {"task_kwargs": {knob: paper_value, **extra}, "size": "synthetic", "train": {**_SYNTHETIC_EVAL, **paper_train}},
    })


# -- NRU (Chandar et al. 2019), PAPERS §2.5-2.9 ------------------------------------------------

_NRU_PAPER = {"updates": 200_000, "eval_every": 1000}
_NRU_SMALL = {"updates": 200}  # ten cells x three tasks in <= 15 minutes
NRU = Suite(
    name="nru",
    title="Towards Non-saturating Recurrent Units (Chandar et al., AAAI 2019)",
    notes=(
        "Synthetic tasks: Adam 1e-3, batch 10, clip 1.0, 200k updates, full BPTT, ~23.5k parameters per "
        "model; NRU uses AMSGrad and clip 0.5 on copy (PAPERS §2.5). Copy and variable copy score every "
        "step (CE over T+20 steps); variable copy draws one delay per batch as in the NRU code. psMNIST: "
        "batch 100, 50k updates, 785 steps (extra blank step), best validation evaluation; paper scale "
        "only (ten cells x 785 steps do not fit the small budget). EURNN/GORU sizes are not in the "
        "configs ([U]): 128 units (synthetic) / 512 (psMNIST), capacity 2."
    ),
    tasks=(
        _copy_like("copy-100", "copy", "delay", 100, {"score": "all"}, _NRU_PAPER, small_train=_NRU_SMALL),
        TaskSpec("copy-200", "copy", {"paper": {"task_kwargs": {"delay": 200, "score": "all"}, "size": "synthetic",
                                               "train": {**_SYNTHETIC_EVAL, **_NRU_PAPER}}}),
        _copy_like("varcopy-100", "VariableCopy-v0", "max_delay", 100, {"score": "all", "per_batch": True}, _NRU_PAPER, small_train=_NRU_SMALL),
        _copy_like("denoise-100", "denoise", "delay", 100, {}, _NRU_PAPER, small_train=_NRU_SMALL),
        TaskSpec("psmnist", "PermutedMNIST-v0", {
            "paper": {"task_kwargs": {"extra_step": True}, "size": "pmnist",
                      "train": {"updates": 50_000, "batch_size": 100, "eval_every": 500, **_PIXEL_EVAL}},
        }),
    ),
    cells=(
        CellSpec("nru", "nru", _sizes({
            "synthetic": (80, {"memory_size": 64, "num_heads": 4}), "pmnist": (212, {"memory_size": 256, "num_heads": 4}),
            "small": (40, {"memory_size": 16, "num_heads": 4}), "tiny": (8, {"memory_size": 4, "num_heads": 4}),
        }), task_train={"copy-100": {"optimizer": "amsgrad", "clip": 0.5}, "copy-200": {"optimizer": "amsgrad", "clip": 0.5}}),
        CellSpec("lstm", "lstm", _sizes({
            g: (h, {"peepholes": True, "forget_bias": 1.0}) for g, h in (("synthetic", 70), ("pmnist", 200), ("small", 35), ("tiny", 8))
        })),
        CellSpec("lstm-chrono", "lstm", _sizes({
            g: (h, {"peepholes": True, "init": "chrono", "t_max": Scaled("max_length")})
            for g, h in (("synthetic", 70), ("pmnist", 200), ("small", 35), ("tiny", 8))
        })),
        CellSpec("gru", "gru", _sizes({"synthetic": (82, {}), "pmnist": (232, {}), "small": (41, {}), "tiny": (8, {})})),
        CellSpec("janet", "janet", _sizes({
            g: (h, {"t_max": Scaled("max_length")}) for g, h in (("synthetic", 101), ("pmnist", 283), ("small", 50), ("tiny", 8))
        })),
        CellSpec("rnn-orth", "rnn", _sizes({
            g: (h, {"nonlinearity": "relu", "layer_norm": True, "recurrent_init": "orthogonal"})
            for g, h in (("synthetic", 143), ("pmnist", 400), ("small", 72), ("tiny", 8))
        })),
        CellSpec("rnn-id", "rnn", _sizes({
            g: (h, {"nonlinearity": "relu", "layer_norm": True, "recurrent_init": "identity"})
            for g, h in (("synthetic", 143), ("pmnist", 400), ("small", 72), ("tiny", 8))
        })),
        CellSpec("sru-stat", "sru-stat", _sizes({
            "synthetic": (60, {"phi_size": 55, "r_size": 16}), "pmnist": (150, {"phi_size": 155, "r_size": 50}),
            "small": (30, {"phi_size": 28, "r_size": 8}), "tiny": (8, {"phi_size": 8, "r_size": 4}),
        })),
        # EURNN/GORU sizes in the NRU paper are [U]: matched to the ~23.5k (copy) / ~165k (psMNIST)
        # budgets. EURNN uses capacity = N (a full tunable mesh): at the default capacity 2 the budget
        # would make it ~1,100 units wide.
        CellSpec("eurnn", "eurnn", _sizes({
            g: (h, {"capacity": h}) for g, h in (("synthetic", 198), ("pmnist", 564), ("small", 64), ("tiny", 8))
        })),
        CellSpec("goru", "goru", _sizes({"synthetic": (98, {}), "pmnist": (284, {}), "small": (49, {}), "tiny": (8, {})})),
    ),
    train={scale: {"optimizer": "adam", "lr": 1e-3, "clip": 1.0, "batch_size": 10} for scale in SCALES},
)

# -- Chrono initialisation (Tallec & Ollivier 2018), PAPERS §3.4-3.7 ---------------------------

_CHRONO_COPY = {"batch_size": 32, "updates": 20_000, "eval_every": 500}
_CHRONO_SMALL = {"batch_size": 32, "updates": 1000, "eval_every": 100}  # fused LSTMs: ~5 minutes in all here
_CHRONO_ADDING = {"batch_size": 256, "updates": 20_000, "eval_every": 500}
_WARP_PAPER = {"batch_size": 32, "updates": 4_700, "eval_every": 250}  # 3 epochs of 50k sequences
_WARP_CELLS = ("warp-10", "warp-50", "warp-100", "warp-uniform-50")
CHRONO = Suite(
    name="chrono",
    title="Can recurrent neural networks warp time? (Tallec & Ollivier, ICLR 2018)",
    notes=(
        "LSTM with forget bias 1 vs chrono init, 128 units, RMSprop lr 1e-3 (smoothing 0.9), clip 1.0 "
        "(the paper's clipping is [U]). Chrono t_max: 3T/2 on copy, T on variable copy (PAPERS §7.2) and "
        "T on adding ([U]). Batch 32 for copy tasks and 256 for adding (the reproduction's; paper [U]); "
        "20k updates ([U]: the paper shows curves only). Warping study: RNN / leaky RNN / gated RNN with 64 "
        "units on TimeWarp (length 500, alphabet 10, variable warps 10/50/100 and uniform 50), RMSprop, "
        "batch 32, 3 epochs of 50k sequences; the leak and gate inits follow max_warp (PAPERS §3.6). "
        "The paper's lr halving on plateaus is not applied."
    ),
    tasks=(
        _copy_like("copy-500", "copy", "delay", 500, {"score": "all"}, _CHRONO_COPY, small_value=50, small_train=_CHRONO_SMALL),
        TaskSpec("copy-2000", "copy", {"paper": {"task_kwargs": {"delay": 2000, "score": "all"}, "size": "synthetic",
                                                 "train": {**_SYNTHETIC_EVAL, **_CHRONO_COPY}}}),
        _copy_like("varcopy-500", "VariableCopy-v0", "max_delay", 500, {"score": "all"}, _CHRONO_COPY, small_value=50,
                   small_train=_CHRONO_SMALL),
        TaskSpec("adding-200", "adding", {
            "smoke": {"task_kwargs": {"seq_len": 10}, "size": "tiny", "train": _SMOKE},
            "small": {"task_kwargs": {"seq_len": 50}, "size": "small",
                      "train": {"eval_batches": 2, "eval_batch_size": 100, **_CHRONO_SMALL, "batch_size": 64}},
            "paper": {"task_kwargs": {"seq_len": 200}, "size": "synthetic", "train": {**_SYNTHETIC_EVAL, **_CHRONO_ADDING}},
        }),
        TaskSpec("adding-750", "adding", {"paper": {"task_kwargs": {"seq_len": 750}, "size": "synthetic",
                                                    "train": {**_SYNTHETIC_EVAL, **_CHRONO_ADDING}}}),
        TaskSpec("warp-10", "TimeWarp-v0", {
            "smoke": {"task_kwargs": {"seq_len": 12, "max_warp": 3}, "size": "tiny", "train": _SMOKE},
            "small": {"task_kwargs": {"seq_len": 100, "max_warp": 10}, "size": "warp-small",
                      "train": {"eval_batches": 2, "eval_batch_size": 100, **_CHRONO_SMALL}},
            "paper": {"task_kwargs": {"seq_len": 500, "max_warp": 10}, "size": "warp", "train": {**_SYNTHETIC_EVAL, **_WARP_PAPER}},
        }),
        *(TaskSpec(f"warp-{w}", "TimeWarp-v0", {"paper": {"task_kwargs": {"seq_len": 500, "max_warp": w}, "size": "warp",
                                                          "train": {**_SYNTHETIC_EVAL, **_WARP_PAPER}}}) for w in (50, 100)),
        TaskSpec("warp-uniform-50", "TimeWarp-v0", {"paper": {"task_kwargs": {"seq_len": 500, "max_warp": 50, "warp": "uniform"},
                                                              "size": "warp", "train": {**_SYNTHETIC_EVAL, **_WARP_PAPER}}}),
    ),
    cells=(
        CellSpec("lstm", "lstm", _sizes({g: (h, {"forget_bias": 1.0}) for g, h in (("synthetic", 128), ("small", 64), ("tiny", 8))}),
                 tasks=("copy-500", "copy-2000", "varcopy-500", "adding-200", "adding-750")),
        CellSpec("lstm-chrono", "lstm", {
            g: {"hidden_size": h, "cell_kwargs": {"init": "chrono", "t_max": Scaled("max_length")}}
            for g, h in (("synthetic", 128), ("small", 64), ("tiny", 8))
        }, task_train={
            # The chrono rule per task (PAPERS §7.2): 3T/2 for copy, T for variable copy and adding.
            key: {"cell_kwargs": {"init": "chrono", "t_max": rule}}
            for key, rule in (("copy-500", Scaled("delay", 1.5)), ("copy-2000", Scaled("delay", 1.5)),
                              ("varcopy-500", Scaled("max_delay")), ("adding-200", Scaled("seq_len")),
                              ("adding-750", Scaled("seq_len")))
        }, tasks=("copy-500", "copy-2000", "varcopy-500", "adding-200", "adding-750")),
        CellSpec("rnn", "rnn", _sizes({"warp": (64, {}), "warp-small": (32, {}), "tiny": (8, {})}), tasks=_WARP_CELLS),
        CellSpec("leaky-rnn", "leaky-rnn", _sizes({g: (h, {"max_warp": Scaled("max_warp")}) for g, h in (("warp", 64), ("warp-small", 32), ("tiny", 8))}),
                 tasks=_WARP_CELLS),
        CellSpec("gated-rnn", "gated-rnn", _sizes({g: (h, {"t_max": Scaled("max_warp", 1.0, 1.0)}) for g, h in (("warp", 64), ("warp-small", 32), ("tiny", 8))}),
                 tasks=_WARP_CELLS),
    ),
    train={scale: {"optimizer": "rmsprop", "lr": 1e-3, "clip": 1.0} for scale in SCALES},
)

# -- g-LSTM (Thornton et al. 2019), PAPERS §4.2-4.9 --------------------------------------------

_GLSTM_SIZES = {g: h for g, h in (("synthetic", 128), ("small", 32), ("tiny", 8))}
GLSTM = Suite(
    name="glstm",
    title="Reducing state updates via Gaussian-gated LSTMs (Thornton et al., 2019)",
    notes=(
        "Every setting of this paper is [U] (PAPERS §4): LSTM vs g-LSTM of equal width (128), Adam 1e-3, "
        "batch 32, clip 1.0; adding T=1000 (20k updates) and sMNIST (784 steps, 30k updates). g-LSTM gates "
        "are laid out over the sequence length (mu spread over [0, T], sigma 0.1 T). glstm-budget adds the "
        "budget loss 0.05 x mean gate openness; glstm-curriculum trains the first half of its updates on "
        "adding sequences of 10%, 25% and 50% of the length (tasks with a length knob only). The "
        "'compute' columns give the fraction of (unit, step) updates a sparse implementation computes "
        "(gate > 0.01)."
    ),
    tasks=(
        TaskSpec("adding-1000", "adding", {
            "smoke": {"task_kwargs": {"seq_len": 20}, "size": "tiny", "train": _SMOKE},
            "small": {"task_kwargs": {"seq_len": 100}, "size": "small",
                      "train": {"updates": 250, "eval_every": 50, "eval_batches": 2, "eval_batch_size": 100}},
            "paper": {"task_kwargs": {"seq_len": 1000}, "size": "synthetic",
                      "train": {"updates": 20_000, "eval_every": 500, **_SYNTHETIC_EVAL}},
        }),
        TaskSpec("smnist", "SequentialMNIST-v0", {
            "smoke": {"task_kwargs": {}, "size": "tiny", "train": _SMOKE_PIXELS},
            "small": {"task_kwargs": {}, "size": "small",
                      "train": {"updates": 60, "batch_size": 16, "eval_every": 20, "eval_split": "validation",
                                "eval_batches": 1, "eval_batch_size": 100}},
            "paper": {"task_kwargs": {}, "size": "synthetic", "train": {"updates": 30_000, "eval_every": 500, **_PIXEL_EVAL}},
        }),
    ),
    cells=(
        CellSpec("lstm", "lstm", _sizes({g: (h, {}) for g, h in _GLSTM_SIZES.items()})),
        CellSpec("glstm", "glstm", _sizes({g: (h, {"expected_length": Scaled("max_length")}) for g, h in _GLSTM_SIZES.items()})),
        CellSpec("glstm-budget", "glstm", _sizes({g: (h, {"expected_length": Scaled("max_length")}) for g, h in _GLSTM_SIZES.items()}),
                 train={"budget_weight": 0.05}),
        CellSpec("glstm-curriculum", "glstm", _sizes({g: (h, {"expected_length": Scaled("max_length")}) for g, h in _GLSTM_SIZES.items()}),
                 train={"curriculum": Curriculum()}, tasks=("adding-1000",)),
    ),
    train={scale: {"optimizer": "adam", "lr": 1e-3, "clip": 1.0, "batch_size": 32} for scale in SCALES},
)

# -- Flexible gates with KAFs (Scardapane et al. 2018), PAPERS §5.3-5.6 ------------------------

_KAF_PIXELS = {
    "smoke": {"task_kwargs": {}, "size": "tiny", "train": _SMOKE_PIXELS},
    "small": {"task_kwargs": {}, "size": "small",
              "train": {"updates": 50, "batch_size": 16, "eval_every": 25, "eval_split": "validation",
                        "eval_batches": 1, "eval_batch_size": 100}},
    "paper": {"task_kwargs": {}, "size": "paper", "train": {"updates": 20_000, "eval_every": 500, **_PIXEL_EVAL}},
}
_KAF_SIZES = (("paper", 100), ("small", 16), ("tiny", 8))
KAF = Suite(
    name="kaf",
    title="Recurrent neural networks with flexible gates using kernel activation functions (Scardapane et al., 2018)",
    notes=(
        "LSTM vs KAF-gated LSTM of the same width on sMNIST and pMNIST (784 steps). The paper's sizes and "
        "optimiser are [U]: 100 units, Adam 1e-3, batch 100, clip 1.0, 20k updates; KAF gates start as plain "
        "sigmoids (kernel ridge fit to the identity, D=20 on [-4, 4]). The claim under test is faster "
        "convergence: compare the learning curves."
    ),
    tasks=(TaskSpec("smnist", "SequentialMNIST-v0", _KAF_PIXELS), TaskSpec("pmnist", "PermutedMNIST-v0", _KAF_PIXELS)),
    cells=(
        CellSpec("lstm", "lstm", _sizes({g: (h, {}) for g, h in _KAF_SIZES})),
        CellSpec("kaf-lstm", "kaf-lstm", _sizes({g: (h, {}) for g, h in _KAF_SIZES})),
    ),
    train={scale: {"optimizer": "adam", "lr": 1e-3, "clip": 1.0, "batch_size": 100} for scale in SCALES},
)

# -- Auxiliary losses (Trinh et al. 2018), PAPERS §6.2-6.9 -------------------------------------

_AUX_SIZES = {
    "paper": {"hidden_size": 128, "embedding_dim": 128, "readout_hidden": 256, "dropout": 0.5},
    "small": {"hidden_size": 48, "embedding_dim": 32, "readout_hidden": 64, "dropout": 0.5},
    "tiny": {"hidden_size": 8, "embedding_dim": 8, "readout_hidden": 8, "dropout": 0.5},
}
_R_LSTM = {"aux": "reconstruction", "aux_pretrain_updates": OfUpdates(0.1)}
AUX = Suite(
    name="aux",
    title="Learning longer-term dependencies in RNNs with auxiliary losses (Trinh et al., ICML 2018)",
    notes=(
        "pMNIST with 256 pixel tokens through an embedding (128), LSTM 128, 2-layer readout 256 with dropout "
        "0.5 (PAPERS §6.2). Four runs: LSTM full BP, LSTM with truncated BPTT 300, r-LSTM (reconstruction "
        "loss) with truncation 300 and r-LSTM full BP; Table 2 targets 89.4 / 88.8 / 92.8 / 95.2 %. The "
        "optimiser is the reproduction's ([U]): RMSprop 1e-3, batch 128; 30k updates, the first 10% with "
        "the auxiliary loss only, one anchor, segment 600 steps ([U]: reproduction). A transformer baseline "
        "runs when that cell is registered. Small/smoke scales shrink the widths, the batch and the segment."
    ),
    tasks=(TaskSpec("pmnist", "PermutedMNIST-v0", {
        "smoke": {"task_kwargs": {"pixels": "tokens"}, "size": "tiny", "train": {**_SMOKE_PIXELS, "aux_kwargs": {"segment_length": 8}}},
        "small": {"task_kwargs": {"pixels": "tokens"}, "size": "small",
                  "train": {"updates": 150, "batch_size": 16, "eval_every": 50, "eval_split": "validation",
                            "eval_batches": 1, "eval_batch_size": 100, "aux_kwargs": {"segment_length": 100}}},
        "paper": {"task_kwargs": {"pixels": "tokens"}, "size": "paper",
                  "train": {"updates": 30_000, "batch_size": 128, "eval_every": 500, "aux_kwargs": {"segment_length": 600}, **_PIXEL_EVAL}},
    }),),
    cells=(
        CellSpec("lstm-full", "lstm", _AUX_SIZES),
        CellSpec("lstm-tbptt300", "lstm", _AUX_SIZES, train={"tbptt": 300}),
        CellSpec("r-lstm-tbptt300", "lstm", _AUX_SIZES, train={"tbptt": 300, **_R_LSTM}),
        CellSpec("r-lstm-full", "lstm", _AUX_SIZES, train=_R_LSTM),
        CellSpec("transformer", "transformer", _AUX_SIZES),
    ),
    train={scale: {"optimizer": "rmsprop", "lr": 1e-3, "clip": 1.0, "encoder": "embedding"} for scale in SCALES},
)

#: Every suite by name, in the order ``all`` runs them.
SUITES: dict[str, Suite] = {s.name: s for s in (NRU, CHRONO, GLSTM, KAF, AUX)}


# --------------------------------------------------------------------------------------------
# Planning: suite + scale -> validated TrainConfigs
# --------------------------------------------------------------------------------------------


@dataclass
class PlannedRun:
    """One (task, cell) run of a suite: its config, or why it is skipped."""

    suite: str
    task_key: str
    cell_key: str
    config: TrainConfig | None
    skip_reason: str | None = None

    def path(self, out: str | Path) -> Path:
        return Path(out) / self.suite / self.task_key / self.cell_key


def _merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win; ``cell_kwargs`` / ``aux_kwargs`` dicts are merged key by key."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key in ("cell_kwargs", "aux_kwargs") and isinstance(value, Mapping):
                out[key] = {**out.get(key, {}), **value}
            else:
                out[key] = value
    return out


def plan(
    suite: Suite | str,
    scale: str,
    seed: int = 0,
    device: str = "cpu",
    overrides: Mapping[str, Any] | None = None,
    cells: Iterable[str] | None = None,
) -> list[PlannedRun]:
    """The runs of ``suite`` at ``scale``, task by task, as validated :class:`TrainConfig`.

    Args:
        suite: a :class:`Suite` or a name in :data:`SUITES`.
        scale: ``"smoke"``, ``"small"`` or ``"paper"``.
        seed, device: set on every run.
        overrides: TrainConfig fields forced on every run (e.g. ``{"updates": 2}``); curricula
            and pre-training fractions follow the overridden ``updates``.
        cells: the registered cell names (default: :data:`agents.cells.CELLS`); cells of the suite
            that are not among them are planned as skipped.

    Raises:
        ValueError: unknown suite or scale, or a config that TrainConfig rejects.
    """
    if isinstance(suite, str):
        suite = SUITES[check_choice("suite", suite, tuple(SUITES))]
    check_choice("scale", scale, SCALES)
    registered = set(CELLS if cells is None else cells)
    runs: list[PlannedRun] = []
    for spec in suite.tasks:
        setting = spec.scales.get(scale)
        if setting is None:
            continue
        task_kwargs = dict(setting.get("task_kwargs", {}))
        task = make_task(spec.task, task_kwargs)
        for cell in suite.cells:
            if cell.tasks is not None and spec.key not in cell.tasks:
                continue
            if cell.cell not in registered:
                runs.append(PlannedRun(suite.name, spec.key, cell.key, None, f"cell {cell.cell!r} is not registered"))
                continue
            size = cell.sizes.get(setting["size"])
            if size is None:
                raise ValueError(f"suite {suite.name}: cell {cell.key!r} has no size for group {setting['size']!r} (task {spec.key})")
            fields = _merge(
                suite.train.get(scale, {}),
                setting.get("train", {}),
                size,
                cell.train,
                cell.task_train.get(spec.key, {}),
                {"task": spec.task, "task_kwargs": task_kwargs, "cell": cell.cell, "seed": seed, "device": device,
                 "best_metric": "score"},
                overrides or {},
            )
            if fields.get("aux", "none") == "none":  # task-level aux settings only concern aux runs
                fields.pop("aux_kwargs", None)
            updates = fields.get("updates", TrainConfig.updates)
            fields = _resolve(fields, task, updates)
            try:
                config = TrainConfig.from_dict(fields)
            except ValueError as err:
                raise ValueError(f"suite {suite.name}, task {spec.key}, cell {cell.key}: {err}") from None
            runs.append(PlannedRun(suite.name, spec.key, cell.key, config))
    return runs


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def _run_one(run: PlannedRun, out: Path, progress: bool) -> tuple[dict[str, Any] | None, str]:
    """Train one planned run unless its summary exists; returns (summary, what happened)."""
    assert run.config is not None
    rundir = RunDir(run.path(out))
    wanted = run.config.to_dict()
    if rundir.summary_path.is_file():
        saved = rundir.read_config()
        differ = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
        if differ:
            raise ValueError(
                f"{rundir.path} holds a finished run with a different config ({', '.join(differ)} differ): "
                "use another --out, or delete that run"
            )
        return read_json(rundir.summary_path), "done before, skipped"
    resume = rundir.latest_path.is_file()
    if not resume and rundir.path.exists():
        # Interrupted before its first checkpoint: nothing worth keeping.
        shutil.rmtree(rundir.path)
    summary = train(run.config, out_dir=rundir.path, resume=resume, progress=progress)
    return summary, "resumed" if resume else "trained"


def run_suite(
    suite: Suite | str,
    scale: str,
    out: str | Path,
    seed: int = 0,
    device: str = "cpu",
    overrides: Mapping[str, Any] | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Leaderboard:
    """Plan and train every run of a suite, then write ``OUT/<suite>/leaderboard.md`` and a
    report with learning curves per task; returns the leaderboard.

    A run whose ``summary.json`` exists is not trained again (its config must match the plan);
    one that stopped after a checkpoint resumes from it. A run that diverges (NaN loss) keeps its
    summary and score so far, and the suite goes on.
    """
    from agents.supervised.report import write_report
    from agents.supervised.trainer import TrainingDiverged

    if isinstance(suite, str):
        suite = SUITES[check_choice("suite", suite, tuple(SUITES))]
    out = Path(out)
    runs = plan(suite, scale, seed, device, overrides)
    active = [r for r in runs if r.config is not None]
    log(f"== suite {suite.name} ({scale}): {len(active)} runs -> {out / suite.name}  [{suite.title}]")
    for r in runs:
        if r.config is None:
            log(f"   skip {r.task_key}/{r.cell_key}: {r.skip_reason}")
    summaries: dict[tuple[str, str], dict[str, Any] | None] = {}
    changed: set[str] = set()  # tasks with a run trained now: their reports are rewritten
    t0 = time.perf_counter()
    for i, r in enumerate(active, 1):
        c = r.config
        log(f"[{i}/{len(active)}] {r.task_key} / {r.cell_key}: {c.cell} H={c.hidden_size}, {c.updates} updates, batch {c.batch_size}")
        start = time.perf_counter()
        try:
            summary, what = _run_one(r, out, progress)
        except TrainingDiverged as err:
            log(f"   diverged: {err}")
            summary, what = read_json(RunDir(r.path(out)).summary_path), "diverged"
        summaries[(r.task_key, r.cell_key)] = summary
        if what != "done before, skipped":
            changed.add(r.task_key)
        score = summary_score(summary)
        log(f"   {what}: score {'–' if score is None else f'{score:.3f}'} ({time.perf_counter() - start:.1f} s)")
    board = Leaderboard.from_runs(suite, runs, summaries)
    suite_dir = out / suite.name
    suite_dir.mkdir(parents=True, exist_ok=True)
    for task_key in board.tasks:
        task_dir = suite_dir / task_key
        if task_dir.is_dir() and (task_key in changed or not (task_dir / "report.md").is_file()):
            write_report([task_dir], task_dir)
    path = suite_dir / "leaderboard.md"
    path.write_text(board.markdown(scale) + "\n")
    log(board.table())
    log(f"wrote {path} ({time.perf_counter() - t0:.0f} s)")
    return board


# --------------------------------------------------------------------------------------------
# Leaderboard
# --------------------------------------------------------------------------------------------


def summary_score(summary: Mapping[str, Any] | None) -> float | None:
    """The normalised score at a run's best evaluation (None if the run has none)."""
    if not summary:
        return None
    best = summary.get("best") or {}
    value = (best.get("metrics") or {}).get("score")
    if value is None or not math.isfinite(value):
        return None
    return float(value)


@dataclass
class Leaderboard:
    """Scores, ranks and the top-2 criterion of a suite's runs.

    ``scores[task][cell]`` (None: planned but no score), ``ranks`` likewise, ``compute[task][cell]``
    the fraction of (unit, step) updates of time-gated cells, ``planned[cell]`` the tasks each cell
    was planned on, ``status[task][cell]`` the run status.
    """

    suite: str
    title: str
    notes: str
    tasks: list[str]
    cells: list[str]
    scores: dict[str, dict[str, float | None]]
    status: dict[str, dict[str, str]]
    compute: dict[str, dict[str, float]]
    planned: dict[str, list[str]]
    task_labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_runs(
        cls, suite: Suite, runs: Sequence[PlannedRun], summaries: Mapping[tuple[str, str], Mapping[str, Any] | None]
    ) -> Leaderboard:
        """Build from planned runs (skipped ones included) and the summaries of those that ran."""
        tasks, cells = [], []
        scores: dict[str, dict[str, float | None]] = {}
        status: dict[str, dict[str, str]] = {}
        compute: dict[str, dict[str, float]] = {}
        planned: dict[str, list[str]] = {}
        labels: dict[str, str] = {}
        for r in runs:
            if r.config is None:
                continue
            args = ", ".join(f"{k}={v}" for k, v in r.config.task_kwargs.items())
            labels.setdefault(r.task_key, f"{r.config.task}({args})")
            tasks += [r.task_key] if r.task_key not in tasks else []
            cells += [r.cell_key] if r.cell_key not in cells else []
            planned.setdefault(r.cell_key, []).append(r.task_key)
            summary = summaries.get((r.task_key, r.cell_key))
            scores.setdefault(r.task_key, {})[r.cell_key] = summary_score(summary)
            status.setdefault(r.task_key, {})[r.cell_key] = (summary or {}).get("status", "missing")
            fraction = (((summary or {}).get("best") or {}).get("metrics") or {}).get("updated_fraction")
            if fraction is not None:
                compute.setdefault(r.task_key, {})[r.cell_key] = float(fraction)
        return cls(suite.name, suite.title, suite.notes, tasks, cells, scores, status, compute, planned, labels)

    @property
    def ranks(self) -> dict[str, dict[str, int | None]]:
        return {task: competition_ranks(self.scores[task]) for task in self.tasks}

    def top2_everywhere(self, cell: str) -> bool:
        """Ranked 1 or 2 on every task the cell was planned on (missing scores count as not)."""
        ranks = self.ranks
        tasks = self.planned.get(cell, [])
        return bool(tasks) and all((ranks[t].get(cell) or math.inf) <= 2 for t in tasks)

    def mean_rank(self, cell: str) -> float | None:
        values = [self.ranks[t].get(cell) for t in self.planned.get(cell, [])]
        return None if not values or None in values else sum(values) / len(values)

    def rows(self) -> list[dict[str, str]]:
        """One dict per cell: ``score (rank)`` per task, compute fractions, mean rank, top-2."""
        ranks, out = self.ranks, []
        for cell in self.cells:
            row = {"cell": cell}
            for task in self.tasks:
                if cell not in self.scores[task]:
                    row[task] = ""
                    continue
                score, r = self.scores[task][cell], ranks[task][cell]
                mark = "" if self.status[task][cell] in ("completed", "target_reached") else f" [{self.status[task][cell]}]"
                row[task] = "–" + mark if score is None else f"{score:.3f} ({r}){mark}"
            for task in self.tasks:
                if task in self.compute:
                    value = self.compute[task].get(cell)
                    row[f"compute {task}"] = "" if value is None else f"{value:.1%}"
            mean = self.mean_rank(cell)
            row["mean rank"] = "–" if mean is None else f"{mean:.2f}"
            row["top 2 on every task"] = "yes" if self.top2_everywhere(cell) else "no"
            out.append(row)
        return out

    def table(self) -> str:
        from agents.supervised.report import markdown_table

        return markdown_table(self.rows())

    def markdown(self, scale: str | None = None) -> str:
        """The leaderboard file: title, how to read it, the table, the suite's settings, plots."""
        lines = [f"# Leaderboard: {self.suite} suite" + (f" ({scale} scale)" if scale else ""), "", f"*{self.title}*", "",
                 "Each entry: normalised score at the run's best evaluation (0 = best memoryless policy, "
                 "1 = perfect) and, in brackets, the rank on that task. *top 2 on every task*: the NRU "
                 "paper's headline criterion. *compute*: fraction of (unit, step) updates performed by "
                 "time-gated cells.", "", self.table(), ""]
        if self.task_labels:
            lines += ["Tasks at this scale: " + "; ".join(f"`{k}` = {v}" for k, v in self.task_labels.items()), ""]
        lines += [f"Settings (paper scale): {self.notes}", ""]
        lines += [f"- learning curves of `{t}`: [{t}/report.md]({t}/report.md)" for t in self.tasks]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Command line: memory-bench suite
# --------------------------------------------------------------------------------------------


def run_command(args: argparse.Namespace) -> int:
    from agents.cli import set_torch_threads

    set_torch_threads(args.threads)
    names = list(SUITES) if args.suite == "all" else [args.suite]
    overrides = {} if args.updates is None else {"updates": args.updates, "eval_every": max(1, args.updates)}
    out = Path(args.out) if args.out else Path("runs") / f"suites-{args.scale}"
    if args.dry_run:
        defaults = TrainConfig().to_dict()
        for name in names:
            for r in plan(name, args.scale, args.seed, args.device, overrides):
                what = r.skip_reason or json.dumps({k: v for k, v in r.config.to_dict().items()
                                                    if v != defaults[k] or k in ("task", "cell", "hidden_size", "updates", "batch_size")})
                print(f"{r.path(out)}: {what}")
        return 0
    boards = [run_suite(name, args.scale, out, args.seed, args.device, overrides, progress=not args.no_progress) for name in names]
    if len(boards) > 1:
        path = out / "leaderboard.md"
        path.write_text("\n\n".join(b.markdown(args.scale) .replace("](", f"]({b.suite}/") for b in boards) + "\n")
        print(f"wrote {path}")
    return 0


def add_parser(subparsers) -> None:
    """Register ``memory-bench suite`` (called by :mod:`agents.cli`)."""
    p = subparsers.add_parser(
        "suite",
        help="replay a paper's experiments and print a leaderboard",
        description="Train every cell of a paper's suite on its tasks at a chosen scale, then print and write "
        "a leaderboard (normalised score, rank per task, top 2 on every task). Finished runs are skipped "
        "when the command is run again.",
    )
    p.add_argument("suite", choices=[*SUITES, "all"])
    p.add_argument("--scale", choices=SCALES, default="smoke", help="smoke (~1 min), small (<= 15 min per suite on 2 CPU cores) or paper")
    p.add_argument("--out", metavar="DIR", help="default runs/suites-<scale>; runs go to DIR/<suite>/<task>/<cell>/")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: small recurrent steps gain little from more, and several threads "
                   "on a busy machine can be 10x slower; raise it for paper-scale runs on a free CPU)")
    p.add_argument("--updates", type=int, help="override the number of updates of every run (evaluating at the end)")
    p.add_argument("--dry-run", action="store_true", help="print the planned runs and their settings, train nothing")
    p.add_argument("--no-progress", action="store_true", help="no per-run progress bars")
    p.set_defaults(run=run_command)

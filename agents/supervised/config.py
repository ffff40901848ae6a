"""The settings of a supervised run: :class:`TrainConfig`, saved as the run's ``config.json``.

This module imports nothing heavy: ``memory-bench train --help`` builds its flags from this class
without importing torch (the loop is :mod:`agents.supervised.trainer`).
"""

from __future__ import annotations

import numbers
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from agents.config import ENCODERS, READOUT_INITS, EncoderName, ReadoutInit, RunConfig

OptimizerName = Literal["adam", "amsgrad", "rmsprop"]
OPTIMIZERS: tuple[str, ...] = typing.get_args(OptimizerName)
AuxMode = Literal["none", "reconstruction", "prediction"]
AUX_MODES: tuple[str, ...] = typing.get_args(AuxMode)
#: Config fields that ``resume`` may change (everything else must match the saved config).
RESUMABLE_CHANGES = ("updates", "device", "target_metric", "target_value", "max_loss")


@dataclass
class TrainConfig(RunConfig):
    """Everything that defines a supervised run; saved as the run's ``config.json``.

    Defaults follow the NRU paper's synthetic-task recipe (docs/nru.md#experiments-and-settings: Adam 1e-3, batch 10, clip
    1.0, full BPTT) where one exists.

    Attributes:
        task: a registered task (``"copy"``, ``"Copy-v0"``, ``"memenvs/Copy-v0"``) or a task class
            as ``"module:Class"``.
        task_kwargs: the task's options (``{"delay": 100, "score": "all"}``).
        cell, cell_kwargs, hidden_size: the recurrent cell (``agents.make_cell``).
        encoder, embedding_dim, readout_hidden, dropout, readout_init: see
            :class:`agents.models.SequenceModel`.
        updates: number of optimiser steps.
        batch_size: sequences per update.
        optimizer: ``"adam"``, ``"amsgrad"`` (Adam with AMSGrad, NRU's copy-task setting) or
            ``"rmsprop"`` (smoothing ``alpha=0.9``, as in the chrono paper).
        lr: learning rate.
        lr_halving_patience: halve the learning rate when the evaluation's ``best_metric`` has
            not improved for this many updates (checked at each evaluation, so in multiples of
            ``eval_every``); None (default) keeps it constant. The chrono paper's warping runs
            halve it after 100 batches without improvement.
        clip: gradient-norm clipping threshold; None disables clipping.
        seed: seeds model init (torch), the training stream and the evaluation stream.
        tbptt: None for full BPTT, else truncated BPTT over chunks of ``tbptt`` >= 1 steps aligned
            to the end of the sequence (:meth:`SequenceModel.run_encoded`).
        max_loss: stop the run as diverged, as a NaN loss does, when the training loss of an
            update (all terms) exceeds this; None: only NaN/inf stop it. The default 1e6 is far
            above any loss of a sound run of the built-in tasks (a uniform guess over a million
            classes costs 14 nats); raise it for a task whose losses are legitimately larger.
        aux: ``"none"``, ``"reconstruction"`` (r-LSTM) or ``"prediction"`` (p-LSTM).
        aux_weight: weight of the auxiliary loss (paper: 1).
        aux_kwargs: options of :class:`agents.losses.AuxiliaryLoss`; ``segment_length`` defaults
            to ``max(2, round(0.75 T))`` (the public reproduction's 600 of 784 steps; paper [U]).
        aux_pretrain_updates: the first this many updates train the auxiliary loss only.
        budget_weight: g-LSTM budget λ: adds ``λ · mean(gate openness)`` (0 = off).
        curriculum: None, or ``[[knob_value, updates], ...]``: train on the task with its
            length knob (``task.length_knob``, e.g. ``delay``) set to each value for that many
            updates, then on the configured task. Evaluation always uses the configured task.
        eval_every: evaluate (and checkpoint) every this many updates, and at the last update.
        eval_batches: evaluation batches; with ``eval_split``, at most this many (0 = whole split).
        eval_batch_size: sequences per evaluation batch.
        eval_split: None (held-out random stream) or a split name of ``task.iterate``.
        eval_carry_state: carry the recurrent state from one evaluation batch to the next (for
            splits streamed as contiguous columns, e.g. ``CharStreamTask.iterate``: the standard
            BPC evaluation); False treats every batch as fresh episodes.
        best_metric: the evaluation metric that selects ``best.pt`` (``"loss"`` = ce or mse).
        target_metric, target_value: stop early once the metric reaches the value (``<=`` for
            ce/bpc/mse/loss, ``>=`` otherwise).
        device: any torch device string.
    """

    task: str = "copy"
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    cell: str = "lstm"
    cell_kwargs: dict[str, Any] = field(default_factory=dict)
    hidden_size: int = 128
    encoder: EncoderName = "auto"
    embedding_dim: int | None = None
    readout_hidden: int = 0
    dropout: float = 0.0
    readout_init: ReadoutInit = "default"
    updates: int = 1000
    batch_size: int = 10
    optimizer: OptimizerName = "adam"
    lr: float = 1e-3
    lr_halving_patience: int | None = None
    clip: float | None = 1.0
    seed: int = 0
    tbptt: int | None = None
    max_loss: float | None = 1e6
    aux: AuxMode = "none"
    aux_weight: float = 1.0
    aux_kwargs: dict[str, Any] = field(default_factory=dict)
    aux_pretrain_updates: int = 0
    budget_weight: float = 0.0
    curriculum: list[list[Any]] | None = None
    eval_every: int = 100
    eval_batches: int = 10
    eval_batch_size: int = 100
    eval_split: str | None = None
    eval_carry_state: bool = False
    best_metric: str = "loss"
    target_metric: str | None = None
    target_value: float | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        from memenvs.core import check_choice, check_float, check_int

        self.check_names_and_kwargs()
        self.hidden_size = check_int("hidden_size", self.hidden_size, low=1)
        check_choice("encoder", self.encoder, ENCODERS)
        check_choice("readout_init", self.readout_init, READOUT_INITS)
        if self.embedding_dim is not None:
            self.embedding_dim = check_int("embedding_dim", self.embedding_dim, low=1)
        self.readout_hidden = check_int("readout_hidden", self.readout_hidden, low=0)
        self.dropout = check_float("dropout", self.dropout, low=0.0, high=0.99)
        self.updates = check_int("updates", self.updates, low=1)
        self.batch_size = check_int("batch_size", self.batch_size, low=1)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        self.lr = check_float("lr", self.lr, low=0.0)
        if self.lr == 0:
            raise ValueError("lr=0.0 must be > 0")
        if self.lr_halving_patience is not None:
            self.lr_halving_patience = check_int("lr_halving_patience", self.lr_halving_patience, low=1)
        if self.clip is not None:
            self.clip = check_float("clip", self.clip, low=0.0)
            if self.clip == 0:
                raise ValueError("clip=0.0 must be > 0 (use None to disable clipping)")
        self.seed = check_int("seed", self.seed, low=0)
        if self.tbptt is not None:
            if isinstance(self.tbptt, bool) or not isinstance(self.tbptt, numbers.Integral) or self.tbptt < 1:
                raise ValueError(
                    f"tbptt={self.tbptt!r} is not allowed: None (full BPTT) or an integer >= 1 (chunk length in steps)"
                )
            self.tbptt = int(self.tbptt)
        if self.max_loss is not None:
            self.max_loss = check_float("max_loss", self.max_loss, low=0.0)
            if self.max_loss == 0:
                raise ValueError(f"max_loss={self.max_loss!r} must be > 0 (None: stop only on NaN/inf)")
        check_choice("aux", self.aux, AUX_MODES)
        self.aux_weight = check_float("aux_weight", self.aux_weight, low=0.0)
        self.aux_pretrain_updates = check_int("aux_pretrain_updates", self.aux_pretrain_updates, low=0)
        if self.aux == "none" and (self.aux_pretrain_updates or self.aux_kwargs):
            raise ValueError("aux_pretrain_updates / aux_kwargs need an auxiliary loss: set aux to 'reconstruction' or 'prediction'")
        self.budget_weight = check_float("budget_weight", self.budget_weight, low=0.0)
        if self.curriculum is not None:
            stages = self.curriculum
            if not isinstance(stages, (list, tuple)) or not stages or not all(
                isinstance(s, (list, tuple)) and len(s) == 2 for s in stages
            ):
                raise ValueError(f"curriculum={stages!r} must be a non-empty list of [knob_value, updates] pairs")
            for _, n in stages:
                check_int("curriculum updates", n, low=1)
            self.curriculum = [[v, int(n)] for v, n in stages]
        self.eval_every = check_int("eval_every", self.eval_every, low=1)
        self.eval_batches = check_int("eval_batches", self.eval_batches, low=0 if self.eval_split is not None else 1)
        self.eval_batch_size = check_int("eval_batch_size", self.eval_batch_size, low=1)
        if self.eval_split is not None and (not isinstance(self.eval_split, str) or not self.eval_split):
            raise ValueError(f"eval_split={self.eval_split!r} must be None or a split name")
        if not isinstance(self.eval_carry_state, bool):
            raise ValueError(f"eval_carry_state={self.eval_carry_state!r} must be True or False")
        if not isinstance(self.best_metric, str):
            raise ValueError(f"best_metric={self.best_metric!r} must be a metric name")
        if (self.target_metric is None) != (self.target_value is None):
            raise ValueError(
                f"target_metric={self.target_metric!r} and target_value={self.target_value!r} must be given together"
            )
        if self.target_value is not None:
            self.target_value = check_float("target_value", self.target_value)
        self.check_json()

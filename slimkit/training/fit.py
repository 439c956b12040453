"""The fit loop: train a Recommender with early stopping, like RecBole 1.2.1 does for
sequential models.

Two modes read the same targets (every item of each user's training part but the first):

* ``per-prefix`` (RecBole's): one sample per target, its input the last ``max_seq_len``
  items before it; one backbone forward per target;
* ``causal`` (SASRec's own recipe): one forward per training window of up to
  ``max_seq_len`` items (:func:`~slimkit.training.samples.training_windows`), a loss at
  every position, for backbones whose output at a position depends on earlier items only
  (``forward_positions``). A batch holds about ``batch_size`` targets in both modes, so
  an epoch takes the same number of optimiser steps.

``auto`` picks causal when the model supports it. With ``rationale_rows``
(:class:`~slimkit.training.samples.RationaleRows`, a leakage-free ``prompt.rationale_cut``)
each training target reads the per-user table row it may read: ``users`` is that row per
sample, or a ``(B, L)`` tensor of rows per position in the causal mode. Cross-entropy over
the full catalogue (or BCE with uniformly sampled negatives, or for large catalogues a
sampled or in-batch softmax with the logQ correction, :mod:`.losses`); Adam; validation
after every epoch, stop after
``patience`` epochs without improvement of the validation metric, restore the best
state. Batches are gathered from the flat event array with one indexing operation.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from slimkit.errors import SlimkitError
from slimkit.fusions.base import Recommender
from slimkit.training import distributed
from slimkit.training.evaluate import EvalResult, Evaluator
from slimkit.training.losses import SAMPLED_LOSSES, CandidateLoss, training_target_counts
from slimkit.training.optim import adam
from slimkit.training.options import EvalOptions, TrainOptions
from slimkit.training.progress import EpochProgress
from slimkit.training.samples import (
    RationaleRows,
    WindowRows,
    sample_batch,
    training_samples,
    training_windows,
    window_batch,
    with_rationale_rows,
)

TRAIN_MODES = ("auto", "causal", "per-prefix")


@dataclass
class FitResult:
    """How a fit went: the best epoch and its validation value, one history row per epoch."""

    best_epoch: int
    epochs_run: int
    best_valid: float
    history: list[dict[str, float]] = field(default_factory=list)
    seconds_per_epoch: float = 0.0  # training only, evaluation excluded
    mode: str = "per-prefix"  # the training mode that ran: "causal" | "per-prefix"


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_mode(requested: str, model: Any) -> str:
    """The training mode that runs: ``auto`` is ``causal`` when ``model`` gives
    per-position outputs (``supports_positions()``), else ``per-prefix``."""
    if requested not in TRAIN_MODES:
        raise SlimkitError(
            f"train.mode must be one of {', '.join(TRAIN_MODES)}, got {requested!r}."
        )
    check = getattr(model, "supports_positions", None)
    supports = bool(check()) if callable(check) else False
    if requested == "auto":
        return "causal" if supports else "per-prefix"
    if requested == "causal" and not supports:
        backbone = type(getattr(model, "backbone", model)).__name__
        raise SlimkitError(
            f"train.mode is causal, but {backbone} inside {type(model).__name__} gives no "
            "per-position output (forward_positions, or encode_embedded_positions when the "
            "fusion head feeds it item vectors).",
            hint="Set train.mode=auto (per-prefix for this backbone), or implement "
            "forward_positions in the backbone (docs/plugins.md).",
        )
    return requested


class Trainer:
    """Fits and evaluates one Recommender on one PreparedDataset-like object.

    ``dataset`` needs ``offsets`` ``(U + 1,)``, ``items`` ``(E,)``, ``num_users`` and
    ``num_items`` (see :class:`slimkit.data.dataset.PreparedDataset`).
    """

    def __init__(
        self,
        model: Recommender,
        dataset: Any,
        options: TrainOptions,
        eval_options: EvalOptions,
        *,
        progress: bool = False,
        rationale_rows: RationaleRows | None = None,
    ):
        self.options = options
        self.eval_options = eval_options
        self.device = torch.device(options.device)
        self.model = model.to(self.device)
        self.progress = progress
        offsets = np.asarray(dataset.offsets, dtype=np.int64)
        items = np.asarray(dataset.items, dtype=np.int64)
        self.num_users = int(dataset.num_users)
        self.num_items = int(dataset.num_items)
        self.events = torch.as_tensor(items, device=self.device)  # (E,)
        self.mode = resolve_mode(options.mode, self.model)
        if self.mode == "causal":
            stride = options.window_stride or None
            if stride is not None and stride > options.max_seq_len:
                raise SlimkitError(
                    f"train.window_stride ({stride}) is larger than the window "
                    f"(max_seq_len {options.max_seq_len}): targets between windows would be lost.",
                    hint=f"Use a stride from 1 to {options.max_seq_len}, or leave it empty.",
                )
            self.train_windows = training_windows(offsets, items, options.max_seq_len, stride)
            # Leakage-free rationales: each position reads its own table row (B, L).
            self.window_rows = (WindowRows.of(offsets, self.train_windows, rationale_rows)
                                if rationale_rows is not None else None)
            self.num_targets = self.train_windows.num_targets
            # About batch_size targets per batch, as per prefix: same steps per epoch.
            per_window = self.num_targets / len(self.train_windows)
            self.rows_per_batch = max(1, round(options.batch_size / per_window))
            self.num_rows = len(self.train_windows)
        else:
            self.train_samples = training_samples(offsets, items, options.max_seq_len)
            if rationale_rows is not None:  # each sample reads the table row its target may
                self.train_samples = with_rationale_rows(offsets, self.train_samples, rationale_rows)
            self.num_targets = self.num_rows = len(self.train_samples)
            self.rows_per_batch = options.batch_size
        self.candidate_loss = None  # train.loss sampled / in-batch (training/losses.py)
        if options.loss in SAMPLED_LOSSES:
            self.candidate_loss = CandidateLoss(
                options.loss,
                training_target_counts(offsets, items, self.num_items),
                num_negatives=options.sampled_negatives,
                sampler=options.negative_sampler,
                device=self.device,
            )
        self.evaluator = Evaluator(
            self.events, offsets, items, self.num_items, options.max_seq_len, eval_options
        )
        # Under torchrun: DDP over the model, each rank a share of every batch.
        self.group = distributed.current()
        self.ddp = self.group.wrap(self.model) if self.group is not None else None
        too_big = [k for k in eval_options.ks if k > self.num_items]
        if too_big:
            raise SlimkitError(
                f"eval.ks {list(eval_options.ks)} has cut-offs larger than the catalogue "
                f"({self.num_items} items): {too_big}.",
                hint="Use cut-offs no larger than the number of items.",
            )
        if eval_options.protocol == "sampled" and eval_options.num_negatives >= self.num_items:
            raise SlimkitError(
                f"eval.num_negatives ({eval_options.num_negatives}) must be smaller than the "
                f"number of items ({self.num_items}) for protocol: sampled."
            )

    def evaluate(self, split: str, *, with_lists: bool = True) -> EvalResult:
        """Metrics of the model (in its current state) on ``valid`` or ``test``."""
        return self.evaluator.evaluate(self.model, split, with_lists=with_lists)

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(self.num_rows / self.rows_per_batch)

    def _loss(self, seq, lengths, users, targets, where=None) -> torch.Tensor:
        """Mean loss of a batch: per prefix, ``targets`` (B,); causal, ``targets`` (B, L)
        with a loss where ``where`` (B, L) holds. The R rows below are B or P = where.sum()."""
        if self.candidate_loss is not None:
            return self.candidate_loss(self.model, seq, lengths, users, targets, where)
        ce = self.options.loss == "ce"
        if where is None:
            if ce:
                logits = self.model.score_all(seq, lengths, users)  # (R, N + 1)
            else:
                user_vec = self.model(seq, lengths, users)  # (R, D)
        else:
            targets = targets[where]  # (P,)
            if ce:
                logits = self.model.score_positions(seq, lengths, users, where)  # (P, N + 1)
            else:
                user_vec = self.model.forward_positions(seq, lengths, users)[where]  # (P, D)
        if ce:
            return F.cross_entropy(logits[:, 1:], targets - 1)  # padding is never a class
        item_vecs = self.model.item_matrix()  # (N + 1, D)
        neg = torch.randint(
            1, self.num_items + 1, (len(targets), self.options.num_negatives), device=self.device
        )  # (B, K)
        clash = neg == targets.unsqueeze(1)
        neg = torch.where(clash, neg % self.num_items + 1, neg)  # never the positive itself
        pos_score = (user_vec * item_vecs[targets]).sum(-1)  # (B,)
        neg_score = torch.einsum("bd,bkd->bk", user_vec, item_vecs[neg])  # (B, K)
        return F.binary_cross_entropy_with_logits(
            pos_score, torch.ones_like(pos_score)
        ) + F.binary_cross_entropy_with_logits(neg_score, torch.zeros_like(neg_score))

    def _targets_per_row(self, index: torch.Tensor) -> torch.Tensor:
        """(B,) targets each row of ``index`` holds: 1 per prefix sample, its loss
        positions per causal window."""
        if self.mode != "causal":
            return torch.ones(len(index), dtype=torch.int64)
        w = self.train_windows
        return torch.as_tensor(w.lengths - w.first_loss)[index]

    def train_epoch(
        self, generator: torch.Generator, on_batch: Callable[[float], None] | None = None
    ) -> float:
        """One pass over the shuffled training samples (or windows); returns the mean loss
        per target. In a distributed run every rank draws the same order and trains on its
        share of each batch (:mod:`slimkit.training.distributed`)."""
        self.model.train()
        total, count = 0.0, 0
        order = torch.randperm(self.num_rows, generator=generator)
        for index in order.split(self.rows_per_batch):
            if self.group is not None:
                index, scale, global_targets = self.group.share(
                    index, self._targets_per_row(index))
            if self.mode == "causal":
                seq, lengths, users, targets, where = window_batch(
                    self.events, self.train_windows, index
                )
                if self.window_rows is not None:
                    users = self.window_rows.batch(index, seq.size(1), self.device)  # (B, L)
                targets_in_batch = int(where.sum())
            else:
                seq, lengths, users, targets = sample_batch(self.events, self.train_samples, index)
                where, targets_in_batch = None, len(index)
            if self.ddp is None:
                loss = self._loss(seq, lengths, users, targets, where)
            else:
                loss = self.ddp(self._loss, seq, lengths, users, targets, where)
            self.optimizer.zero_grad(set_to_none=True)
            (loss if self.ddp is None else loss * scale).backward()
            self.optimizer.step()
            if self.ddp is None:
                value = float(loss.detach())
            else:
                value, targets_in_batch = self.group.batch_loss(loss, scale), global_targets
            if not math.isfinite(value):
                raise SlimkitError(
                    f"The training loss became {value}.",
                    hint="Lower train.lr or check the fusion head's inputs.",
                )
            total += value * targets_in_batch
            count += targets_in_batch
            if on_batch is not None:
                on_batch(value)
        return total / max(count, 1)

    def _valid_value(self) -> float:
        """The validation metric now; in a distributed run rank 0's, broadcast."""
        def compute() -> float:
            return self.evaluate("valid", with_lists=False).metrics[self.options.valid_metric]

        return compute() if self.group is None else self.group.from_main(compute)

    def fit(self) -> FitResult:
        """Train with early stopping; the model ends in its best validation state."""
        opts = self.options
        seed_everything(opts.seed)
        generator = torch.Generator().manual_seed(opts.seed)  # the same order on every rank
        main = self.group is None or self.group.main
        if not main:  # other dropout masks and sampled negatives than rank 0's
            torch.manual_seed(distributed.rank_seed(opts.seed, self.group.rank))
        self.optimizer = adam(self.model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
        best_value, best_epoch, best_state, stale = -math.inf, 0, None, 0
        history: list[dict[str, float]] = []
        train_seconds = 0.0
        with EpochProgress(self.progress and main, opts, self.batches_per_epoch,
                           report=main) as bar:
            for epoch in range(1, opts.epochs + 1):
                bar.start_epoch(epoch)
                started = time.perf_counter()
                loss = self.train_epoch(generator, bar.advance)
                seconds = time.perf_counter() - started
                train_seconds += seconds
                value = self._valid_value()
                improved = value > best_value
                if improved:
                    best_value, best_epoch, stale = value, epoch, 0
                    best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                else:
                    stale += 1
                history.append(
                    {"epoch": epoch, "loss": loss, opts.valid_metric: value, "seconds": seconds}
                )
                bar.end_epoch(epoch, loss, value, improved, seconds)
                if stale >= opts.patience:
                    break
        if best_state is not None:
            self.model.load_state_dict(best_state)
        epochs_run = len(history)
        return FitResult(
            best_epoch=best_epoch,
            epochs_run=epochs_run,
            best_valid=best_value,
            history=history,
            seconds_per_epoch=train_seconds / max(epochs_run, 1),
            mode=self.mode,
        )

"""The fit loop: train a Recommender with early stopping, like RecBole 1.2.1 does for
sequential models.

One training sample per prefix of each user's training part, inputs truncated to the last
``max_seq_len`` items; cross-entropy over the full catalogue (or BCE with uniformly
sampled negatives); Adam; validation after every epoch, stop after ``patience`` epochs
without improvement of the validation metric, restore the best state. Batches are
gathered from the flat event array with one indexing operation.
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
from slimkit.training.evaluate import EvalResult, Evaluator
from slimkit.training.options import EvalOptions, TrainOptions
from slimkit.training.progress import EpochProgress
from slimkit.training.samples import sample_batch, training_samples


@dataclass
class FitResult:
    """How a fit went: the best epoch and its validation value, one history row per epoch."""

    best_epoch: int
    epochs_run: int
    best_valid: float
    history: list[dict[str, float]] = field(default_factory=list)
    seconds_per_epoch: float = 0.0  # training only, evaluation excluded


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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
        self.train_samples = training_samples(offsets, items, options.max_seq_len)
        self.evaluator = Evaluator(
            self.events, offsets, items, self.num_items, options.max_seq_len, eval_options
        )
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

    def _loss(self, seq, lengths, users, targets) -> torch.Tensor:
        if self.options.loss == "ce":
            logits = self.model.score_all(seq, lengths, users)  # (B, N + 1)
            return F.cross_entropy(logits[:, 1:], targets - 1)  # padding is never a class
        user_vec = self.model(seq, lengths, users)  # (B, D)
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

    def train_epoch(
        self, generator: torch.Generator, on_batch: Callable[[float], None] | None = None
    ) -> float:
        """One pass over the shuffled training samples; returns the mean loss."""
        self.model.train()
        total, count = 0.0, 0
        order = torch.randperm(len(self.train_samples), generator=generator)
        for index in order.split(self.options.batch_size):
            seq, lengths, users, targets = sample_batch(self.events, self.train_samples, index)
            loss = self._loss(seq, lengths, users, targets)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise SlimkitError(
                    f"The training loss became {value}.",
                    hint="Lower train.lr or check the fusion head's inputs.",
                )
            total += value * len(index)
            count += len(index)
            if on_batch is not None:
                on_batch(value)
        return total / max(count, 1)

    def fit(self) -> FitResult:
        """Train with early stopping; the model ends in its best validation state."""
        opts = self.options
        seed_everything(opts.seed)
        generator = torch.Generator().manual_seed(opts.seed)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay
        )
        best_value, best_epoch, best_state, stale = -math.inf, 0, None, 0
        history: list[dict[str, float]] = []
        train_seconds = 0.0
        with EpochProgress(self.progress, opts, len(self.train_samples)) as bar:
            for epoch in range(1, opts.epochs + 1):
                bar.start_epoch(epoch)
                started = time.perf_counter()
                loss = self.train_epoch(generator, bar.advance)
                seconds = time.perf_counter() - started
                train_seconds += seconds
                value = self.evaluate("valid", with_lists=False).metrics[opts.valid_metric]
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
        )

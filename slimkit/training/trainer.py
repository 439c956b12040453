"""The trainer: fit a Recommender with early stopping and evaluate it like RecBole does.

Protocol (same as RecBole 1.2.1 for sequential models): one training sample per prefix of
each user's training part, validation ``sequence[:-2] -> sequence[-2]``, test
``sequence[:-1] -> sequence[-1]``, inputs truncated to the last ``max_seq_len`` items;
cross-entropy over the full catalogue (or BCE with uniformly sampled negatives); Adam;
validation after every epoch, stop after ``patience`` epochs without improvement of the
validation metric, restore the best state, evaluate on test.

The hot path is tensor code: batches are gathered from the flat event array with one
indexing operation, metrics come from one comparison against the target's score.
"""

from __future__ import annotations

import logging
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
from slimkit.evaluation.metrics import (
    mask_history,
    mean_metrics,
    mean_std,
    rank_counts,
    ranking_metrics,
    sample_negatives,
)
from slimkit.evaluation.popularity import item_popularity, popularity_metrics
from slimkit.evaluation.sparsity import sparsity_groups
from slimkit.fusions.base import Recommender
from slimkit.training.samples import (
    Samples,
    evaluation_samples,
    gather_batch,
    history_pairs,
    training_samples,
)

log = logging.getLogger(__name__)

NEGATIVES_SEED = 2024
"""Seed of the sampled-protocol candidates: fixed, so every model and seed ranks the same."""


@dataclass
class TrainOptions:
    """How to fit (plain values; :mod:`slimkit.stages.train` fills them from the spec)."""

    epochs: int = 50
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    loss: str = "ce"  # "ce" | "bce"
    num_negatives: int = 1
    patience: int = 10
    valid_metric: str = "ndcg@10"
    seed: int = 42
    device: str = "cpu"
    max_seq_len: int = 50


@dataclass
class EvalOptions:
    """How to evaluate."""

    ks: tuple[int, ...] = (5, 10, 20)
    protocol: str = "full"  # "full" | "sampled"
    num_negatives: int = 100
    mask_history: bool = True
    tail_share: float = 0.8
    batch_size: int = 0  # rows scored at once; 0: chosen from the catalogue size

    def rows_per_batch(self, num_items: int) -> int:
        if self.batch_size:
            return self.batch_size
        return int(max(64, min(4096, 2**25 // max(num_items + 1, 1))))


@dataclass
class EvalResult:
    """Metrics of one split plus what popularity and sparsity analyses need."""

    metrics: dict[str, float]
    per_user: dict[str, np.ndarray]
    top_items: np.ndarray  # (U, 10) full-ranking top-10 after masking
    targets: np.ndarray  # (U,)


@dataclass
class FitResult:
    best_epoch: int
    epochs_run: int
    best_valid: float
    history: list[dict[str, float]] = field(default_factory=list)
    seconds_per_epoch: float = 0.0  # training only, evaluation excluded


def seed_everything(seed: int) -> None:
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
        self.offsets = np.asarray(dataset.offsets, dtype=np.int64)
        self.items_np = np.asarray(dataset.items, dtype=np.int64)
        self.num_users = int(dataset.num_users)
        self.num_items = int(dataset.num_items)
        self.events = torch.as_tensor(self.items_np, device=self.device)  # (E,)
        self.train_samples = training_samples(self.offsets, self.items_np, options.max_seq_len)
        self._eval_cache: dict[str, tuple[Samples, tuple, np.ndarray | None]] = {}
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

    # -- data ------------------------------------------------------------------------
    def _tensor_batch(self, samples: Samples, index: np.ndarray | torch.Tensor):
        idx = torch.as_tensor(index)
        starts = torch.as_tensor(samples.starts)[idx].to(self.device)
        lengths = torch.as_tensor(samples.lengths)[idx].to(self.device)
        users = torch.as_tensor(samples.users)[idx].to(self.device)
        targets = torch.as_tensor(samples.targets)[idx].to(self.device)
        seq = gather_batch(self.events, starts, lengths)  # (B, W)
        return seq, lengths, users, targets

    def _eval_data(self, split: str):
        if split not in self._eval_cache:
            samples = evaluation_samples(
                self.offsets, self.items_np, self.options.max_seq_len, split
            )
            history = history_pairs(self.offsets, self.items_np, split)
            negatives = None
            if self.eval_options.protocol == "sampled":
                try:
                    negatives = sample_negatives(
                        self.offsets,
                        self.items_np,
                        self.num_items,
                        self.eval_options.num_negatives,
                        NEGATIVES_SEED,
                    )
                except ValueError as exc:
                    raise SlimkitError(f"protocol: sampled: {exc}") from exc
            self._eval_cache[split] = (samples, history, negatives)
        return self._eval_cache[split]

    # -- training --------------------------------------------------------------------
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

    def train_epoch(self, generator: torch.Generator, on_batch: Callable[[float], None] | None = None) -> float:
        """One pass over the shuffled training samples; returns the mean loss."""
        self.model.train()
        total, count = 0.0, 0
        order = torch.randperm(len(self.train_samples), generator=generator)
        for index in order.split(self.options.batch_size):
            seq, lengths, users, targets = self._tensor_batch(self.train_samples, index)
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
        with _EpochProgress(self.progress, opts, len(self.train_samples)) as bar:
            for epoch in range(1, opts.epochs + 1):
                bar.start_epoch(epoch)
                started = time.perf_counter()
                loss = self.train_epoch(generator, bar.advance)
                seconds = time.perf_counter() - started
                train_seconds += seconds
                valid = self.evaluate("valid", with_lists=False).metrics
                value = valid[opts.valid_metric]
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

    # -- evaluation ------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, split: str, *, with_lists: bool = True) -> EvalResult:
        """Metrics on ``valid`` or ``test`` (one target per user)."""
        self.model.eval()
        samples, (hist_rows, hist_items, pointer), negatives = self._eval_data(split)
        opts = self.eval_options
        rows = opts.rows_per_batch(self.num_items)
        greater_all, ties_all, tops = [], [], []
        for begin in range(0, len(samples), rows):
            end = min(begin + rows, len(samples))
            index = np.arange(begin, end)
            seq, lengths, users, targets = self._tensor_batch(samples, index)
            scores = self.model.score_all(seq, lengths, users).float()  # (B, N + 1)
            if opts.mask_history:
                lo, hi = pointer[begin], pointer[end]
                mask_history(scores, hist_rows[lo:hi] - begin, hist_items[lo:hi])
            else:
                scores[:, 0] = -torch.inf
            if negatives is not None:
                cand = torch.cat(
                    [targets.unsqueeze(1), torch.as_tensor(negatives[begin:end], device=self.device)],
                    dim=1,
                )  # (B, 1 + M): the target first
                greater, ties = rank_counts(scores.gather(1, cand), torch.zeros_like(targets))
            else:
                greater, ties = rank_counts(scores, targets)
            greater_all.append(greater)
            ties_all.append(ties)
            if with_lists:
                tops.append(scores.topk(min(10, self.num_items), dim=1).indices.cpu().numpy())
        per_user = ranking_metrics(np.concatenate(greater_all), np.concatenate(ties_all), opts.ks)
        return EvalResult(
            metrics=mean_metrics(per_user),
            per_user=per_user,
            top_items=np.concatenate(tops) if tops else np.zeros((0, 10), dtype=np.int64),
            targets=samples.targets,
        )


class _EpochProgress:
    """Rich progress on stderr: a bar per epoch with the running loss, a line per epoch."""

    def __init__(self, enabled: bool, opts: TrainOptions, num_samples: int):
        self.enabled = enabled
        self.opts = opts
        self.batches = math.ceil(num_samples / opts.batch_size)
        self.num_samples = num_samples

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.console = Console(stderr=True)
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[status]}"),
                console=self.console,
                transient=True,
            )
            self.bar.__enter__()
            self.task = self.bar.add_task("epoch", total=self.batches, status="")
        self.running = 0.0
        return self

    def start_epoch(self, epoch: int) -> None:
        self.running, self.seen = 0.0, 0
        if self.enabled:
            self.bar.reset(self.task, total=self.batches, description=f"epoch {epoch}/{self.opts.epochs}")

    def advance(self, loss: float) -> None:
        if self.enabled:
            self.seen += 1
            self.running += (loss - self.running) / self.seen
            self.bar.update(self.task, advance=1, status=f"loss {self.running:.4f}")

    def end_epoch(self, epoch: int, loss: float, value: float, improved: bool, seconds: float):
        line = (
            f"epoch {epoch:3d}  loss {loss:.4f}  valid {self.opts.valid_metric} {value:.4f}"
            f"{'  *best' if improved else ''}  {seconds:.1f}s"
        )
        if self.enabled:
            self.bar.console.print(line)
        log.info(line)

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.__exit__(*exc)
        return False


# ---------------------------------------------------------------------------------------
# Several seeds, popularity and sparsity: what the train stage reports
# ---------------------------------------------------------------------------------------
@dataclass
class RunResult:
    """Everything ``metrics.json`` holds, plus the best model's state."""

    report: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    best_seed: int


def _average_rows(runs: list[list[dict[str, float]]]) -> list[dict[str, float]]:
    out = []
    for rows in zip(*runs):
        merged = dict(rows[0])
        for key in merged:
            if key not in ("group", "users", "min_length", "max_length"):
                merged[key] = float(np.mean([r[key] for r in rows]))
        out.append(merged)
    return out


def train_and_evaluate(
    build_model: Callable[[], Recommender],
    dataset: Any,
    options: TrainOptions,
    eval_options: EvalOptions,
    seeds: list[int] | None = None,
    *,
    progress: bool = False,
) -> RunResult:
    """Train one model per seed (``build_model`` is called after seeding), evaluate each,
    and report means and standard deviations over seeds.

    ``report`` has ``valid``/``test`` (means), ``valid_std``/``test_std``, ``popularity``
    and ``sparsity`` (means over seeds), ``seeds`` (one entry per run), ``masked_history``,
    ``protocol`` and ``best_seed`` (the run with the best validation metric, whose state
    is returned).
    """
    seeds = list(seeds) if seeds else [options.seed]
    counts = item_popularity(dataset.offsets, dataset.items, dataset.num_items)
    train_lengths = np.diff(np.asarray(dataset.offsets)) - 2
    runs, best = [], None
    for seed in seeds:
        opts = TrainOptions(**{**options.__dict__, "seed": seed})
        seed_everything(seed)
        model = build_model()
        trainer = Trainer(model, dataset, opts, eval_options, progress=progress)
        if progress and len(seeds) > 1:
            from rich.console import Console

            Console(stderr=True).print(f"[bold]seed {seed}[/] ({len(runs) + 1}/{len(seeds)})")
        fit = trainer.fit()
        valid = trainer.evaluate("valid", with_lists=False)
        test = trainer.evaluate("test")
        hits10 = ranking_metrics_hits(test, eval_options)
        popularity = popularity_metrics(
            test.top_items,
            test.targets,
            hits10,
            counts,
            num_train_users=int(dataset.num_users),
            tail_share=eval_options.tail_share,
            k=10,
        )
        sparsity = sparsity_groups(train_lengths, test.per_user)
        run = {
            "seed": seed,
            "valid": valid.metrics,
            "test": test.metrics,
            "popularity": popularity,
            "sparsity": sparsity,
            "best_epoch": fit.best_epoch,
            "epochs": fit.epochs_run,
            "seconds_per_epoch": fit.seconds_per_epoch,
            "history": fit.history,
        }
        runs.append(run)
        score = valid.metrics[options.valid_metric]
        if best is None or score > best[0]:
            best = (score, seed, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
    valid_mean, valid_std = mean_std([r["valid"] for r in runs])
    test_mean, test_std = mean_std([r["test"] for r in runs])
    popularity_mean, _ = mean_std([r["popularity"] for r in runs])
    report = {
        "valid": valid_mean,
        "test": test_mean,
        "valid_std": valid_std,
        "test_std": test_std,
        "popularity": popularity_mean,
        "sparsity": _average_rows([r["sparsity"] for r in runs]),
        "seeds": runs,
        "masked_history": bool(eval_options.mask_history),
        "protocol": eval_options.protocol,
        "num_negatives": eval_options.num_negatives if eval_options.protocol == "sampled" else None,
        "best_seed": best[1],
        "valid_metric": options.valid_metric,
        "seconds_per_epoch": float(np.mean([r["seconds_per_epoch"] for r in runs])),
    }
    return RunResult(report=report, state_dict=best[2], best_seed=best[1])


def ranking_metrics_hits(result: EvalResult, eval_options: EvalOptions) -> np.ndarray:
    """Per-user hit@10 of a result (computed from its ranks when 10 is not in eval.ks)."""
    if "hit@10" in result.per_user:
        return result.per_user["hit@10"]
    return (result.top_items[:, :10] == result.targets[:, None]).any(1).astype(np.float64)

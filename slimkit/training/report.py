"""What the train stage reports: one run per seed, means and standard deviations over
seeds, the popularity-bias and user-sparsity analyses, and the best run's state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from slimkit.console import stderr_console
from slimkit.evaluation.metrics import mean_std
from slimkit.evaluation.popularity import item_popularity, popularity_metrics
from slimkit.evaluation.sparsity import sparsity_groups
from slimkit.fusions.base import Recommender
from slimkit.training import distributed
from slimkit.training.evaluate import EvalResult
from slimkit.training.fit import Trainer, seed_everything
from slimkit.training.options import EvalOptions, TrainOptions


@dataclass
class RunResult:
    """Everything ``metrics.json`` holds, plus the best model's state."""

    report: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    best_seed: int
    per_user_test: dict[int, dict[str, np.ndarray]]
    """``{seed: {metric: (U,) values, "top10": (U, 10) items}}`` on the test targets, for
    paired comparisons and the per-item popularity curve."""


def _average_rows(runs: list[list[dict[str, float]]]) -> list[dict[str, float]]:
    """Rows of the same groups over seeds, their metrics averaged."""
    out = []
    for rows in zip(*runs):
        merged = dict(rows[0])
        for key in merged:
            if key not in ("group", "users", "min_length", "max_length"):
                merged[key] = float(np.mean([r[key] for r in rows]))
        out.append(merged)
    return out


def hits_at_10(result: EvalResult) -> np.ndarray:
    """Per-user hit@10 of a result (computed from its top-10 when 10 is not in eval.ks)."""
    if "hit@10" in result.per_user:
        return result.per_user["hit@10"]
    return (result.top_items[:, :10] == result.targets[:, None]).any(1).astype(np.float64)


def train_and_evaluate(
    build_model: Callable[[], Recommender],
    dataset: Any,
    options: TrainOptions,
    eval_options: EvalOptions,
    seeds: list[int] | None = None,
    *,
    progress: bool = False,
    rationale_rows: Any = None,
) -> RunResult | None:
    """Train one model per seed (``build_model`` is called after seeding), evaluate each,
    and report means and standard deviations over seeds. In a distributed run
    (:mod:`slimkit.training.distributed`) every rank fits, rank 0 alone evaluates and
    reports; the other ranks get None.

    ``report`` has ``valid``/``test`` (means), ``valid_std``/``test_std``, ``popularity``
    and ``sparsity`` (means over seeds), ``seeds`` (one entry per run), ``masked_history``,
    ``protocol``, ``train_mode`` (``causal`` or ``per-prefix``, what ``auto`` resolved to)
    and ``best_seed`` (the run with the best validation metric, whose state
    is returned). ``rationale_rows``: which per-user table row each training target
    reads (:class:`~slimkit.training.samples.RationaleRows`; None: row ``u`` for all).
    """
    seeds = list(seeds) if seeds else [options.seed]
    counts = item_popularity(dataset.offsets, dataset.items, dataset.num_items)
    train_lengths = np.diff(np.asarray(dataset.offsets)) - 2
    runs, best = [], None
    per_user_test: dict[int, dict[str, np.ndarray]] = {}
    group = distributed.current()
    main = group is None or group.main
    for seed in seeds:
        opts = TrainOptions(**{**options.__dict__, "seed": seed})
        seed_everything(seed)
        model = build_model()
        trainer = Trainer(model, dataset, opts, eval_options, progress=progress,
                          rationale_rows=rationale_rows)
        if progress and main and len(seeds) > 1:
            stderr_console().print(f"[bold]seed {seed}[/] ({len(runs) + 1}/{len(seeds)})")
        fit = trainer.fit()
        if not main:
            continue
        valid = trainer.evaluate("valid", with_lists=False)
        test = trainer.evaluate("test")
        popularity = popularity_metrics(
            test.top_items,
            test.targets,
            hits_at_10(test),
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
            "train_mode": fit.mode,
            "history": fit.history,
        }
        runs.append(run)
        per_user_test[seed] = {k: np.asarray(v, dtype=np.float32) for k, v in test.per_user.items()}
        per_user_test[seed]["top10"] = np.asarray(test.top_items, dtype=np.int32)
        score = valid.metrics[options.valid_metric]
        if best is None or score > best[0]:
            state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            best = (score, seed, state)
    if not main:
        return None
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
        "train_mode": runs[0]["train_mode"],  # the same model type every seed
    }
    return RunResult(report=report, state_dict=best[2], best_seed=best[1],
                     per_user_test=per_user_test)

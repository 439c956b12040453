"""Training and evaluation of a :class:`~slimkit.fusions.base.Recommender`.

* :mod:`.options`: :class:`TrainOptions` and :class:`EvalOptions`, plain values (library
  code never receives a spec; :mod:`slimkit.stages.train` unpacks it);
* :mod:`.samples`: the leave-one-out split as RecBole-style samples (one per prefix of
  each user's training part; validation ``sequence[:-2] -> sequence[-2]``; test
  ``sequence[:-1] -> sequence[-1]``), and the causal mode's training windows holding the
  same targets, views into the event array gathered into padded batches with tensor
  indexing;
* :mod:`.fit`: :class:`Trainer`, the fit loop (``causal`` or ``per-prefix`` mode, CE over
  the catalogue or BCE with sampled negatives, Adam, early stopping, best state kept);
* :mod:`.evaluate`: :class:`Evaluator`, full or sampled ranking of the held-out targets;
* :mod:`.progress`: the per-epoch bar and lines;
* :mod:`.report`: :func:`train_and_evaluate`, one run per seed, mean and std, popularity
  and sparsity.

The options import without torch; the rest imports torch on first use.
"""

from __future__ import annotations

from typing import Any

from slimkit.training.options import EvalOptions, TrainOptions

__all__ = [
    "EvalOptions",
    "EvalResult",
    "Evaluator",
    "FitResult",
    "RunResult",
    "TrainOptions",
    "Trainer",
    "train_and_evaluate",
]


def __getattr__(name: str) -> Any:
    # torch is imported only when the trainer itself is asked for.
    if name in ("train_and_evaluate", "RunResult"):
        from slimkit.training import report

        return getattr(report, name)
    if name in ("Trainer", "FitResult"):
        from slimkit.training import fit

        return getattr(fit, name)
    if name in ("Evaluator", "EvalResult"):
        from slimkit.training import evaluate

        return getattr(evaluate, name)
    raise AttributeError(f"module 'slimkit.training' has no attribute {name!r}")

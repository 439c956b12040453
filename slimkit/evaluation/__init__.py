"""Evaluation: ranking metrics, popularity bias, sparsity groups.

* :mod:`slimkit.evaluation.metrics`: ranks of targets (full ranking or sampled
  candidates), ``hit@K``, ``ndcg@K``, ``mrr@K`` with ties broken uniformly at random in
  expectation (exact, deterministic), history masking.
* :mod:`slimkit.evaluation.popularity`: EFD@K and EPC@K (Vargas & Castells 2011, as the
  Elliot framework computes them), tail share, coverage, hit@K by head/tail target.
* :mod:`slimkit.evaluation.sparsity`: metrics by user-sparsity group.

Everything here works on numpy arrays (and torch tensors where scores are computed), so
it is usable without the trainer.
"""

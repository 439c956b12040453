"""Training and evaluation of a :class:`~slimkit.fusions.base.Recommender`.

* :mod:`slimkit.training.samples`: RecBole-style samples (one per prefix of each user's
  training part; validation ``sequence[:-2] -> sequence[-2]``; test
  ``sequence[:-1] -> sequence[-1]``), stored as (start, length) views into the event
  array and gathered into padded batches with tensor indexing;
* :mod:`slimkit.training.trainer`: :class:`Trainer` (CE over the catalogue or BCE with
  sampled negatives, Adam, early stopping, best state kept) and
  :func:`train_and_evaluate` (one run per seed, mean and std, popularity and sparsity).

Library code takes plain arguments (:class:`TrainOptions`, :class:`EvalOptions`), never a
spec; :mod:`slimkit.stages.train` unpacks the spec.
"""

"""Which history a rationale is written from, so no training target is ever in it.

A user's rationale is a function of a history. Written from the whole training part
``sequence[:-2]`` (``rationale_cut: none``, slimkit's behaviour before 0.x), it has seen
every training target of that user, and the recommender learns to read those targets
back out of it during training, a shortcut that is gone at validation and test time.
The leakage-free modes cut the training part of each user at position ``cut(u)``:

* the rationale "from the cut" sees ``sequence[:cut(u)]`` only, and is read only by
  training targets at positions ``>= cut(u)`` (the items after the cut);
* training targets before the cut read no rationale (the fusion head's learned
  "missing" vector, which users without a rationale already get);
* ``shared``: that one rationale per user is also what validation and test read (no
  extra generation, the rationale is ``cut_items`` items staler at evaluation);
* ``separate``: validation and test read a second rationale written from
  ``sequence[:-2]`` (it holds neither target), at twice the teacher's and the student's
  cost.

``cut(u) = T - min(cut_items, T // 2)`` for a training part of ``T`` items: the last
``cut_items`` training items (at most half of them, so a short history still gives the
rationale something to read) are the targets that read the rationale.

:class:`CutHistories` is the prepared dataset seen from the cut: ``train_items(u)`` is
``sequence[:cut(u)]``, and every statistic the prompts and the ``statistics`` teacher
compute from "training items" (popularity, co-occurrence candidates, grounding) is
computed from the cut histories of all users, so not even a count includes an item of
``u`` after the cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from slimkit.data.dataset import TARGET_FROM_END

CUT_MODES = ("shared", "separate", "none")
"""``prompt.rationale_cut`` values: leakage-free ``shared`` (the default) and ``separate``,
and ``none`` (every rationale from ``sequence[:-2]``, read by every training target: leaky)."""


def cut_positions(offsets: np.ndarray, cut_items: int) -> np.ndarray:
    """``(U,)`` int64: ``cut(u)``, the length of the history a cut rationale sees, and the
    position of the first training target allowed to read it."""
    if cut_items < 1:
        raise ValueError(f"cut_items must be at least 1, got {cut_items}")
    train_len = np.diff(np.asarray(offsets, dtype=np.int64)) - TARGET_FROM_END["valid"]  # (U,) T
    train_len = np.maximum(train_len, 0)
    return (train_len - np.minimum(cut_items, train_len // 2)).astype(np.int64)


class CutHistories:
    """A prepared dataset seen from the cut: ``train_items(u)`` is ``sequence[:cut(u)]``;
    everything else (items, texts, ids, full sequences) is the dataset's own."""

    def __init__(self, dataset: Any, cut_items: int):
        self.base = dataset
        self.cut_items = int(cut_items)
        self.rationale_lengths = cut_positions(dataset.offsets, cut_items)  # (U,)

    def train_items(self, user: int) -> np.ndarray:
        """The items a rationale from the cut may see: ``sequence[:cut(u)]``."""
        return self.base.sequence(user)[: int(self.rationale_lengths[user])]

    def __getattr__(self, name: str) -> Any:
        if name == "base":  # not set yet (copy/pickle): never recurse
            raise AttributeError(name)
        return getattr(self.base, name)


@dataclass(frozen=True)
class RationaleViews:
    """The histories a stage writes rationales from under one ``rationale_cut`` mode.

    ``main``: the rationales validation and test read (``rationales.jsonl``); in
    ``shared`` mode the cut histories, otherwise the dataset. ``cut``: the separate
    training rationales from the cut (``cut_rationales.jsonl``), ``separate`` mode only.
    ``train``: the view whose teacher rationales the student learns from (the cut
    histories in both leakage-free modes, so the adapter never sees an item after a cut).
    """

    mode: str
    main: Any
    cut: Any | None
    train: Any


def rationale_views(dataset: Any, mode: str, cut_items: int) -> RationaleViews:
    """The :class:`RationaleViews` of ``dataset`` under ``prompt.rationale_cut`` ``mode``."""
    if mode not in CUT_MODES:
        raise ValueError(f"rationale_cut must be one of {', '.join(CUT_MODES)}, got {mode!r}")
    if mode == "none":
        return RationaleViews(mode, dataset, None, dataset)
    cut = CutHistories(dataset, cut_items)
    if mode == "shared":
        return RationaleViews(mode, cut, None, cut)
    return RationaleViews(mode, dataset, cut, cut)


def views_of(dataset: Any, prompt: Any) -> RationaleViews:
    """:func:`rationale_views` under a spec's ``prompt`` section."""
    return rationale_views(dataset, getattr(prompt, "rationale_cut", "none"),
                           getattr(prompt, "cut_items", 3))

"""The trainer's options as plain values (:mod:`slimkit.stages.train` fills them from the
spec); importing them needs no torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainOptions:
    """How to fit."""

    epochs: int = 50
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    loss: str = "ce"  # "ce" | "bce" | "sampled" | "in-batch"
    num_negatives: int = 1  # bce: negatives per positive
    sampled_negatives: int = 1024  # sampled: items drawn per batch, shared by its rows
    negative_sampler: str = "popularity"  # sampled: "popularity" | "uniform"
    patience: int = 10
    valid_metric: str = "ndcg@10"
    seed: int = 42
    device: str = "cpu"
    max_seq_len: int = 50
    mode: str = "auto"  # "auto" | "causal" | "per-prefix"
    window_stride: int = 0  # causal windows of a long sequence start this far apart; 0: half


@dataclass
class EvalOptions:
    """How to evaluate."""

    ks: tuple[int, ...] = (5, 10, 20)
    protocol: str = "full"  # "full" | "sampled"
    num_negatives: int = 100
    mask_history: bool = True
    tail_share: float = 0.8
    batch_size: int = 0  # rows scored at once; 0: chosen from the catalogue size
    item_chunk: int = 0  # full ranking: items scored at once; 0: chosen from the catalogue size

    def rows_per_batch(self, num_items: int) -> int:
        """Users scored at once: about 32M scores per batch unless ``batch_size`` is set."""
        if self.batch_size:
            return self.batch_size
        return int(max(64, min(4096, 2**25 // max(num_items + 1, 1))))

    def items_per_chunk(self, num_items: int) -> int:
        """Items scored at once in full ranking: the whole catalogue (N + 1 columns) up to
        ``WHOLE_CATALOGUE`` items, else chunks of ``ITEM_CHUNK``, unless ``item_chunk`` is set."""
        if self.item_chunk:
            return min(self.item_chunk, num_items + 1)
        if num_items + 1 <= WHOLE_CATALOGUE:
            return num_items + 1
        return ITEM_CHUNK


WHOLE_CATALOGUE = 2**17
"""Catalogues up to this many items are scored whole (one (users x items) block per batch)."""

ITEM_CHUNK = 2**16
"""Items per chunk when a larger catalogue is ranked chunk by chunk."""

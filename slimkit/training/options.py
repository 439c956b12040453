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
    loss: str = "ce"  # "ce" | "bce"
    num_negatives: int = 1
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

    def rows_per_batch(self, num_items: int) -> int:
        """Users scored at once: about 32M scores per batch unless ``batch_size`` is set."""
        if self.batch_size:
            return self.batch_size
        return int(max(64, min(4096, 2**25 // max(num_items + 1, 1))))

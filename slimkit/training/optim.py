"""The fit loop's optimiser: Adam, fused where torch has a fused kernel for the device.

With a large catalogue the item table dominates a step: Adam updates every row each
step (dense gradients). torch's fused kernel does that update ~10x faster on CPU
(1M x 64 parameters: 0.084 s against 0.898 s a step, measured on the 2-core machine),
with the same algorithm; torch versions or devices without one get the plain Adam.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


def adam(params: Iterable[torch.nn.Parameter], *, lr: float, weight_decay: float = 0.0):
    """``torch.optim.Adam`` over ``params``, fused when supported."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this torch/device
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)

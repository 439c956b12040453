"""The fit loop's Adam: fused where torch can, the same updates as the plain one."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from slimkit.training.optim import adam


def test_fused_adam_makes_the_plain_adam_updates():
    torch.manual_seed(0)
    start = torch.randn(50, 8)
    grads = [torch.randn(50, 8) for _ in range(5)]
    results = []
    for make in (adam, lambda p, **kw: torch.optim.Adam(p, **kw)):
        param = torch.nn.Parameter(start.clone())
        optimizer = make([param], lr=1e-2, weight_decay=1e-4)
        for grad in grads:
            param.grad = grad.clone()
            optimizer.step()
        results.append(param.detach())
    assert torch.allclose(results[0], results[1], atol=1e-6)

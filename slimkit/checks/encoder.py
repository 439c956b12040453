"""``check_encoder``: a text encoder against the contract the encode stage relies on.

The contract (``slimkit.plugins.Encoder``): ``encode(texts) -> np.ndarray (T, dim)``
float32 and an int ``dim``; optionally an ``identity`` dict. The check also runs the
encoder the way the stages do, through :func:`slimkit.encoders.cached.encode_cached`, so
an encoder that passes it works inside ``slimkit run``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from slimkit.checks._common import fail

__all__ = ["check_encoder"]

_SAMPLE_TEXTS = [
    "Step 1: The user likes open-world adventure games. Step 2: Nintendo. Step 3: Zelda.",
    "Organic green tea; Grocery > Tea; Yogi",
    "Cast iron skillet 12 inch; Home & Kitchen > Cookware; Lodge",
    "",
]


class _MemoryRecords(dict):
    """The ``get``/``set`` part of a diskcache store, in memory."""

    def set(self, key: str, value: bytes) -> None:
        self[key] = value


def check_encoder(encoder: Any, *, texts: Sequence[str] | None = None,
                  atol: float = 1e-4) -> dict[str, Any]:
    """Check a text encoder: ``encoder.encode(texts) -> (n, dim)`` float32, and ``dim``.

    Rows must be finite, one per text, identical across calls, and a text's row must not
    depend on which other texts share its batch. Empty texts must work (items without
    metadata have empty text). ``identity``, when present, must be a JSON-able dict.
    Encoding through slimkit's per-text cache must give the same vectors.
    """
    import numpy as np

    component = f"encoder {type(encoder).__name__}"
    if not callable(getattr(encoder, "encode", None)):
        raise fail(component, "has no encode(texts) method",
                   "implement encode(texts: Sequence[str]) -> np.ndarray (T, dim) float32")
    texts = list(texts) if texts is not None else list(_SAMPLE_TEXTS)
    vectors = _encode(encoder, texts, component)
    if vectors.ndim != 2 or vectors.shape[0] != len(texts) or vectors.shape[1] < 1:
        raise fail(component, f"encode returned shape {vectors.shape}, expected (n, E) with "
                   f"n = {len(texts)}")
    if vectors.dtype != np.float32 or not np.isfinite(vectors).all():
        raise fail(component, f"encode returned {vectors.dtype} values (or non-finite ones); "
                   "expected finite float32", "return np.asarray(vectors, dtype=np.float32)")
    dim = getattr(encoder, "dim", None)
    if not isinstance(dim, int) or dim != vectors.shape[1]:
        raise fail(component, f"dim is {dim!r} but vectors have {vectors.shape[1]} columns",
                   "give the encoder an int attribute (or property) dim = E")
    if not np.allclose(vectors, _encode(encoder, texts, component), atol=atol):
        raise fail(component, "two encode calls on the same texts differ")
    reversed_rows = _encode(encoder, texts[::-1], component)[::-1]
    if not np.allclose(vectors, reversed_rows, atol=atol):
        raise fail(component, "a text's vector depends on its position in the batch")
    single = _encode(encoder, texts[:1], component)
    if single.shape != (1, dim) or not np.allclose(single[0], vectors[0], atol=atol):
        raise fail(component, "a text's vector depends on the other texts in its batch "
                   "(encoding it alone gives another vector)")
    if len(texts) > 1 and np.allclose(vectors[0], vectors[1], atol=atol):
        raise fail(component, "different texts got the same vector")
    identity = _identity(encoder, component)
    _through_the_cache(encoder, texts, vectors, identity, component, atol)
    return {"component": component, "dim": dim, "texts": len(texts),
            "checked": ["shapes", "dim", "determinism", "batch independence", "identity",
                        "cached encoding"]}


def _encode(encoder: Any, texts: list[str], component: str):
    import numpy as np

    try:
        out = encoder.encode(list(texts))
    except TypeError as exc:
        raise fail(component, f"encode(texts) failed: {exc}",
                   "take one argument: the texts (slimkit caches vectors around the encoder)"
                   ) from exc
    if hasattr(out, "detach"):  # a torch tensor
        out = out.detach().cpu().numpy()
    return np.asarray(out)


def _identity(encoder: Any, component: str) -> dict[str, Any]:
    identity = getattr(encoder, "identity", None)
    if identity is None:
        return {}
    if not isinstance(identity, dict):
        raise fail(component, f"identity is a {type(identity).__name__}, expected a dict")
    try:
        json.dumps(identity, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise fail(component, f"identity is not JSON-able: {exc}",
                   "use strings, numbers and booleans (it keys the vector cache)") from exc
    return identity


def _through_the_cache(encoder, texts, vectors, identity, component: str, atol: float) -> None:
    """encode_cached (what the stages call) gives the same rows, and reuses them."""
    import numpy as np

    from slimkit.encoders.cached import encode_cached

    records = _MemoryRecords()
    stats: dict[str, Any] = {}
    first = encode_cached(encoder, texts + texts[:1], records, identity=identity, stats=stats)
    if not np.allclose(first[:-1], vectors, atol=atol) or not np.allclose(first[-1], vectors[0],
                                                                          atol=atol):
        raise fail(component, "vectors encoded through slimkit's cache differ from encode()")
    again = encode_cached(encoder, texts, records, identity=identity, stats=stats)
    if stats.get("encoded") != 0 or not np.array_equal(again, first[:-1]):
        raise fail(component, "vectors read back from slimkit's cache differ")

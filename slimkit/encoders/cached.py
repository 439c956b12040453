"""Per-text vector caching around any encoder: :func:`encode_cached`.

An encoder only encodes (``encode(texts) -> (T, dim)``); this module keeps one vector per
distinct text in a record store (``StageCache.records("vectors")``) under a key made of
the encoder's identity and the text's hash. So a re-run encodes only texts it has not
seen, an interrupted run resumes from the last chunk written, and every encoder, built-in
or plugin, gets the same behaviour.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import MutableMapping, Sequence
from typing import Any, Protocol

import numpy as np

from slimkit.cache import canonical_json
from slimkit.errors import SlimkitError

RECORD_NAMESPACE = "vectors"
"""``StageCache.records(...)`` namespace of the per-text vectors."""
CHUNK_BATCHES = 8
"""Encoder batches encoded between two writes to the store (the resume granularity)."""
_DEFAULT_BATCH_SIZE = 64


class RecordStore(Protocol):
    """The part of a diskcache store ``encode_cached`` uses."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: bytes) -> Any: ...


def text_hash(text: str) -> str:
    """A short digest of one text (part of its record key)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def identity_prefix(identity: dict[str, Any]) -> str:
    """The record-key prefix of an encoder identity (JSON, keys sorted, hashed)."""
    return hashlib.sha256(canonical_json(identity).encode()).hexdigest()[:16]


def encode_cached(
    encoder: Any,
    texts: Sequence[str],
    records: RecordStore | None,
    *,
    identity: dict[str, Any],
    progress: bool = False,
    stats: MutableMapping[str, Any] | None = None,
) -> np.ndarray:
    """Vectors ``(len(texts), dim)`` float32 of ``texts``; texts already in ``records`` are
    not encoded again.

    ``encoder`` has ``encode(texts) -> (T, dim)`` and ``dim``; ``records`` is a diskcache
    store (``StageCache.records("vectors")``) or ``None`` (no caching); ``identity`` is
    what the vectors depend on besides the text (the spec's encoder section and the
    encoder's own ``identity``): vectors made under another identity are never reused.
    Duplicate texts are encoded once; missing texts go to the encoder longest first (less
    padding per batch), in chunks of ``8 * encoder.batch_size`` written to ``records``
    one chunk at a time. ``progress`` draws a bar on stderr; ``stats``, when given, is
    filled with ``encoded`` / ``reused`` (distinct texts) and ``seconds``.
    """
    start = time.perf_counter()
    texts = [str(t) for t in texts]
    prefix = identity_prefix(identity)
    unique: dict[str, str] = {}  # text hash -> text
    for text in texts:
        unique.setdefault(text_hash(text), text)
    found: dict[str, np.ndarray] = {}
    missing: list[str] = []
    for digest in unique:
        raw = records.get(f"{prefix}:{digest}") if records is not None else None
        if raw is None:
            missing.append(digest)
        else:
            found[digest] = np.frombuffer(raw, dtype=np.float32)
    missing.sort(key=lambda d: len(unique[d]), reverse=True)  # long texts together
    _encode_missing(encoder, unique, missing, found, records, prefix, progress)
    if texts:
        out = np.stack([found[text_hash(t)] for t in texts]).astype(np.float32, copy=False)
    else:
        out = np.zeros((0, int(encoder.dim)), dtype=np.float32)
    if stats is not None:
        stats.update(encoded=len(missing), reused=len(unique) - len(missing),
                     seconds=round(time.perf_counter() - start, 3))
    return out  # (T, E)


def _encode_missing(encoder, unique: dict[str, str], missing: list[str],
                    found: dict[str, np.ndarray], records, prefix: str, progress: bool) -> None:
    """Encode ``missing`` text hashes chunk by chunk into ``found`` (and ``records``)."""
    from slimkit.console import progress_bar

    chunk = int(getattr(encoder, "batch_size", None) or _DEFAULT_BATCH_SIZE) * CHUNK_BATCHES
    with progress_bar(enabled=progress and bool(missing), transient=True) as bar:
        task = bar.add_task("encoding texts", total=len(missing))
        for begin in range(0, len(missing), chunk):
            digests = missing[begin : begin + chunk]
            vectors = np.asarray(encoder.encode([unique[d] for d in digests]),
                                 dtype=np.float32)  # (n, E)
            if vectors.shape[0] != len(digests):
                raise SlimkitError(
                    f"The encoder {type(encoder).__name__} returned {vectors.shape[0]} vectors "
                    f"for {len(digests)} texts.",
                    hint="encode(texts) must return one row per text.",
                )
            for digest, vector in zip(digests, vectors):
                found[digest] = vector
                if records is not None:
                    records.set(f"{prefix}:{digest}", vector.tobytes())
            bar.advance(task, len(digests))

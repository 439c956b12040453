"""encode_cached: per-text vector caching around any encoder (no model needed here)."""

from __future__ import annotations

import numpy as np
import pytest

from slimkit.cache import StageCache
from slimkit.encoders.cached import CHUNK_BATCHES, encode_cached
from slimkit.errors import SlimkitError


class LetterCounts:
    """A deterministic toy encoder that records every call and can fail on demand."""

    dim = 26
    batch_size = 2

    def __init__(self, fail_after_calls: int | None = None):
        self.calls: list[list[str]] = []
        self.fail_after_calls = fail_after_calls

    def encode(self, texts):
        if self.fail_after_calls is not None and len(self.calls) >= self.fail_after_calls:
            raise KeyboardInterrupt  # the user pressed Ctrl-C mid-run
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for char in text.lower():
                if "a" <= char <= "z":
                    out[row, ord(char) - ord("a")] += 1
        return out


TEXTS = [f"item {'x' * n} {chr(97 + n % 26)}" for n in range(40)]


def test_vectors_match_the_encoder_and_duplicates_are_encoded_once(tmp_path):
    encoder = LetterCounts()
    texts = TEXTS[:5] + TEXTS[:2] + [""]
    vectors = encode_cached(encoder, texts, None, identity={})
    assert vectors.dtype == np.float32 and vectors.shape == (8, 26)
    assert np.array_equal(vectors, LetterCounts().encode(texts))
    assert sum(len(c) for c in encoder.calls) == 6  # 5 distinct + the empty text
    # Longest texts first (less padding per batch in a real model).
    flat = [t for call in encoder.calls for t in call]
    assert flat == sorted(flat, key=len, reverse=True)
    assert encode_cached(encoder, [], None, identity={}).shape == (0, 26)


def test_an_interrupted_run_resumes_from_the_last_chunk_written(tmp_path):
    records = StageCache(tmp_path / "cache").records("vectors")
    chunk = LetterCounts.batch_size * CHUNK_BATCHES  # texts per encoder call
    assert len(TEXTS) > 2 * chunk
    with pytest.raises(KeyboardInterrupt):
        encode_cached(LetterCounts(fail_after_calls=2), TEXTS, records, identity={"m": 1})
    resumed, stats = LetterCounts(), {}
    vectors = encode_cached(resumed, TEXTS, records, identity={"m": 1}, stats=stats)
    assert stats["reused"] == 2 * chunk and stats["encoded"] == len(TEXTS) - 2 * chunk
    assert sum(len(c) for c in resumed.calls) == len(TEXTS) - 2 * chunk
    assert np.array_equal(vectors, LetterCounts().encode(TEXTS))


def test_another_identity_never_reuses_vectors(tmp_path):
    records = StageCache(tmp_path / "cache").records("vectors")
    encode_cached(LetterCounts(), TEXTS[:3], records, identity={"model": "a"})
    again, other = LetterCounts(), LetterCounts()
    encode_cached(again, TEXTS[:3], records, identity={"model": "a"})
    encode_cached(other, TEXTS[:3], records, identity={"model": "b"})
    assert again.calls == [] and sum(len(c) for c in other.calls) == 3


def test_an_encoder_returning_the_wrong_number_of_rows_is_a_clear_error():
    class Short(LetterCounts):
        def encode(self, texts):
            return super().encode(texts)[:-1]

    with pytest.raises(SlimkitError, match="returned 2 vectors for 3 texts"):
        encode_cached(Short(), TEXTS[:3], None, identity={})

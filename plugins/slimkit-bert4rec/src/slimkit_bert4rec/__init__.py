"""slimkit-bert4rec: BERT4Rec as a slimkit backbone (``backbone: {kind: bert4rec}``).

This module is what the ``slimkit.backbones`` entry point loads: a light description
(parameters and help) that imports no torch. The model lives in
:mod:`slimkit_bert4rec.model` and is imported only when slimkit builds it.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from slimkit.plugins import BackboneParams, Component

__version__ = "0.1.0"


class BERT4RecParams(BackboneParams):
    """Parameters of the BERT4Rec backbone (``backbone:`` section of a spec)."""

    hidden_size: int = Field(64, ge=1, description="Embedding and model dimension D.")
    num_layers: int = Field(2, ge=1, description="Bidirectional transformer blocks.")
    num_heads: int = Field(2, ge=1, description="Attention heads (must divide hidden_size).")
    inner_size: int = Field(256, ge=1, description="Feed-forward inner dimension.")
    dropout: float = Field(0.2, ge=0, lt=1, description="Dropout on embeddings and block outputs.")
    attention_dropout: float = Field(0.2, ge=0, lt=1, description="Dropout on attention weights.")

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> BERT4RecParams:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"num_heads ({self.num_heads}) must divide hidden_size ({self.hidden_size})"
            )
        return self


# UPPER_CASE: an implementation submodule of the same name could never shadow it.
BERT4REC = Component(
    params=BERT4RecParams,
    impl="slimkit_bert4rec.model:BERT4Rec",
    help="BERT4Rec (Sun et al. 2019): bidirectional transformer read at an appended [MASK].",
)

__all__ = ["BERT4REC", "BERT4RecParams", "__version__"]

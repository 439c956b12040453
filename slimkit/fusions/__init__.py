"""Built-in fusion heads (light descriptors; torch imports on use).

A fusion head turns a backbone plus optional side information (item text vectors,
rationale vectors) into the model the trainer trains. ``needs_item_text`` and
``needs_rationales`` tell the pipeline which upstream stages a head needs.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from slimkit.components import Component
from slimkit.spec import FusionParams


class NoFusionParams(FusionParams):
    """Fusion ``none``: no parameters, no side information."""

    needs_item_text: ClassVar[bool] = False
    needs_rationales: ClassVar[bool] = False


NONE = Component(
    params=NoFusionParams,
    impl="slimkit.fusions.none:build_no_fusion",
    help="No fusion: the backbone alone, scored by dot product with item ID embeddings.",
)


# The item side `slim` shares with `item-text` (one ItemSide in fusions/item_text.py):
# its options are declared once so both heads document them alike.
_TextDropout = Annotated[
    float, Field(ge=0, lt=1, description="Dropout on projected text vectors.")
]
_StandardizeText = Annotated[
    bool,
    Field(
        description="Centre text vectors and scale them to unit mean norm before projecting "
        "(makes the head independent of the encoder's vector scale).",
    ),
]
_FuseInputs = Annotated[
    bool,
    Field(
        description="Also feed the fused item vectors to the backbone (needs its "
        "encode_embedded); false: the backbone reads plain ID embeddings.",
    ),
]


class ItemTextFusionParams(FusionParams):
    needs_item_text: ClassVar[bool] = True
    needs_rationales: ClassVar[bool] = False
    mode: Literal["concat", "add", "gate"] = Field(
        "concat", description="How projected item text and ID vectors are fused."
    )
    dropout: _TextDropout = 0.1
    standardize: _StandardizeText = True
    fuse_inputs: _FuseInputs = True


ITEM_TEXT = Component(
    params=ItemTextFusionParams,
    impl="slimkit.fusions.item_text:build_item_text",
    help="Item feature extension: item ID vectors fused with projected item text vectors.",
)


class SlimFusionParams(FusionParams):
    needs_item_text: ClassVar[bool] = True
    needs_rationales: ClassVar[bool] = True
    mode: Literal["concat", "add", "gate"] = Field(
        "concat", description="How projected text and ID/sequence vectors are fused."
    )
    rationale_source: Literal["student", "teacher"] = Field(
        "student",
        description="student: the student's rationales for every user; teacher: the "
        "teacher's own (users it did not see get none), the paper's ChatGPT feature extension.",
    )
    use_item_text: bool = Field(True, description="Fuse item text vectors into item vectors too.")
    dropout: _TextDropout = 0.1
    standardize: _StandardizeText = True
    fuse_inputs: _FuseInputs = True
    rationale_dropout: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Train this share of rows as if the user had no rationale, so the "
        "sequence path keeps carrying the signal.",
    )


SLIM = Component(
    params=SlimFusionParams,
    impl="slimkit.fusions.slim:build_slim",
    help="SLIM ID-based fusion: sequence + projected rationale vector; items + item text.",
)


class TextMatchParams(FusionParams):
    needs_item_text: ClassVar[bool] = True
    needs_rationales: ClassVar[bool] = True
    step: Literal[1, 2, 3] | None = Field(
        None, description="Use only this rationale step (the paper's ablation); empty: all."
    )
    rationale_source: Literal["student", "teacher"] = Field(
        "student", description="Whose rationales represent users."
    )
    hidden_size: int | None = Field(
        None,
        ge=1,
        description="Dimension of the shared matching space; empty: the backbone's "
        "hidden_size (required to match it with use_history).",
    )
    use_history: bool = Field(
        False,
        description="Also represent users by their history's item texts (no IDs). Off: "
        "the paper's ID-agnostic matching (rationale vector against item text, nothing "
        "else); on: a hybrid of slimkit's own.",
    )
    temperature: float = Field(0.07, gt=0, description="Softmax temperature of cosine scores.")
    standardize: bool = Field(
        True,
        description="Centre text and rationale vectors and scale them to unit mean norm "
        "before the transformation layer.",
    )
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout on transformed rationale vectors.")


TEXT_MATCH = Component(
    params=TextMatchParams,
    impl="slimkit.fusions.text_match:build_text_match",
    help="SLIM ID-agnostic text matching: rationale and item text in one space; no item IDs.",
)

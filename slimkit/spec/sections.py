"""The sections of a pipeline spec: the base ``Params`` of each component kind and the
fixed ``prompt``, ``train``, ``eval`` and ``tracking`` sections.

Component sections (``dataset, teacher, student, encoder, backbone, fusion``) name a
registered component with ``kind:``; the component's own ``Params`` model subclasses the
base of its kind below. The fixed sections are plain strict models.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator

from slimkit.components import Params

SECTION_ORDER = (
    "dataset",
    "teacher",
    "prompt",
    "student",
    "encoder",
    "backbone",
    "fusion",
    "train",
    "eval",
    "tracking",
)

DEFAULT_KINDS = {
    "dataset": "movielens-100k",
    "teacher": "local",
    "student": "hf-lora",
    "encoder": "sentence-transformers",
    "backbone": "sasrec",
    "fusion": "slim",
}
"""The kind a component section gets when the spec leaves ``kind`` out."""


def auto_or_int(minimum: int) -> Any:
    """The type of a field that takes ``auto`` or a whole number of at least ``minimum``
    (one clear error for anything else, not one per alternative)."""

    def check(value: Any) -> Any:
        if value == "auto":
            return value
        if isinstance(value, bool) or not isinstance(value, int):  # pydantic reports ValueError
            raise ValueError(f"expected auto or a whole number >= {minimum}")  # noqa: TRY004
        if value < minimum:
            raise ValueError(f"expected auto or a whole number >= {minimum}")
        return value

    schema = {"anyOf": [{"type": "integer", "minimum": minimum}, {"const": "auto"}]}
    return Annotated[int | Literal["auto"], BeforeValidator(check), WithJsonSchema(schema)]


# ---------------------------------------------------------------------------------
# Base parameters shared by every component of one kind. Components subclass these.
# ---------------------------------------------------------------------------------
class DatasetParams(Params):
    """Options every dataset kind has: how the raw log becomes a prepared dataset."""

    min_user_interactions: int = Field(
        0, ge=0, description="Iterative k-core: drop users with fewer interactions (0: off)."
    )
    min_item_interactions: int = Field(
        0, ge=0, description="Iterative k-core: drop items with fewer interactions (0: off)."
    )
    dedupe: bool = Field(
        True, description="Drop repeated (user, item, timestamp) events, keeping the first."
    )
    max_seq_len: int = Field(
        50, ge=1, description="Keep at most this many most recent items as model input."
    )
    item_text_template: str = Field(
        "{title}; {categories}; {brand}",
        description="Python format template over item fields building each item's text.",
    )
    item_text_max_tokens: int = Field(
        64, ge=1, description="Truncate each item text to this many whitespace tokens."
    )
    skip_bad_lines: bool = Field(
        False, description="Skip (and count) malformed lines instead of stopping."
    )


class TeacherParams(Params):
    """Options every teacher has: which users it writes rationales for."""

    num_users: int = Field(
        1000, ge=1, description="How many users to sample for the teacher (paper: ~1,000)."
    )
    seed: int = Field(0, description="Seed of the user sample.")
    max_malformed_retries: int = Field(
        2, ge=0, description="Ask again this often when a response lacks the three steps."
    )


class StudentParams(Params):
    """Base of student parameters."""


class EncoderParams(Params):
    """Base of text encoder parameters."""

    batch_size: int = Field(64, ge=1, description="Texts encoded per batch.")


class BackboneParams(Params):
    """Base of sequential recommender backbone parameters."""


class FusionParams(Params):
    """Base of fusion head parameters."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class PromptSection(_Strict):
    """Which prompt templates the teacher and the student use."""

    teacher: str = Field("slim-cot", description="Template for the teacher (registry name).")
    student: str = Field("slim-student", description="Template for the student (registry name).")
    max_items: int = Field(
        20, ge=1, description="Show at most this many most recent history items in a prompt."
    )
    max_item_chars: int = Field(
        120, ge=8, description="Cut each item text in a prompt to this many characters."
    )
    rationale_cut: Literal["shared", "separate", "none"] = Field(
        "shared",
        description="Which history rationales are written from, so that no training target "
        "reads a rationale that has seen it (docs/method.md). shared: one rationale per user "
        "from the training sequence minus its last cut_items items, read by the training "
        "targets after that cut and by validation and test (no extra cost); separate: that "
        "rationale for the training targets after the cut, and a second one from the whole "
        "training sequence for validation and test (twice the teacher's and the student's "
        "generation); none: one rationale from the whole training sequence for every "
        "training target (leaky: it has seen the targets it is trained to predict; the "
        "behaviour before this option existed). Training targets before the cut read no "
        "rationale (the fusion head's 'missing' vector).",
    )
    cut_items: int = Field(
        3,
        ge=1,
        description="rationale_cut shared/separate: how many of the last training items "
        "(at most half of a user's training sequence) lie after the cut; they are the "
        "training targets that read the rationale.",
    )


class TrainSection(_Strict):
    """How the recommender (backbone + fusion head) is trained."""

    mode: Literal["auto", "causal", "per-prefix"] = Field(
        "auto",
        description="causal: one forward per training window of up to max_seq_len items, "
        "a loss at every position (SASRec's recipe; several times faster); per-prefix: one "
        "sample per target (RecBole's); auto: causal when the backbone (and fusion head) "
        "give per-position outputs (SASRec, GRU4Rec), else per-prefix (SRGNN). Both "
        "train on the same targets.",
    )
    window_stride: int | None = Field(
        None,
        ge=1,
        description="Causal mode: windows of a user's sequence longer than max_seq_len "
        "start this many items apart; a target keeps at least max_seq_len - stride + 1 "
        "items of context (per-prefix: max_seq_len). Empty: half of max_seq_len; 1: "
        "per-prefix's context exactly, at per-prefix's cost.",
    )
    epochs: int = Field(50, ge=1, description="Maximum number of epochs.")
    batch_size: int = Field(
        256,
        ge=1,
        description="Targets per batch (per-prefix: samples; causal: as many windows as "
        "hold about this many targets on average).",
    )
    lr: float = Field(1e-3, gt=0, description="Adam learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="Adam weight decay.")
    loss: Literal["ce", "bce", "sampled", "in-batch"] = Field(
        "ce",
        description="ce: softmax over the full catalogue; bce: sampled negatives; sampled: "
        "softmax over the target and sampled_negatives items drawn per batch, logQ-corrected "
        "(large catalogues); in-batch: softmax over the batch's targets, logQ-corrected by "
        "their training frequency. Neither sampled nor in-batch scores the whole catalogue.",
    )
    num_negatives: int = Field(1, ge=1, description="Negatives per positive with loss: bce.")
    sampled_negatives: int = Field(
        1024,
        ge=1,
        description="loss: sampled: items drawn (with replacement) per batch, shared by its rows.",
    )
    negative_sampler: Literal["popularity", "uniform"] = Field(
        "popularity",
        description="loss: sampled: draw items by training popularity, (count + 1) ** 0.75, "
        "or uniformly; the loss corrects for either.",
    )
    patience: int = Field(
        10, ge=1, description="Stop after this many epochs without validation improvement."
    )
    valid_metric: str = Field("ndcg@10", description="Validation metric for early stopping.")
    seed: int = Field(42, description="Seed for initialisation and batching.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA when available, else CPU."
    )

    @field_validator("valid_metric")
    @classmethod
    def _metric_form(cls, value: str) -> str:
        name, _, k = value.partition("@")
        if name not in ("hit", "ndcg", "mrr") or not k.isdigit() or int(k) < 1:
            raise ValueError("must look like ndcg@10, hit@10 or mrr@10")
        return value


class EvalSection(_Strict):
    """How the recommender is evaluated."""

    ks: list[int] = Field([5, 10, 20], description="Cut-offs K for hit@K, ndcg@K and mrr@K.")
    protocol: Literal["full", "sampled"] = Field(
        "full",
        description="full: rank every item; sampled: rank the target among num_negatives "
        "sampled items (the paper's protocol).",
    )
    num_negatives: int = Field(100, ge=1, description="Negatives per user with protocol: sampled.")
    mask_history: bool = Field(
        True, description="Never recommend items already in the user's history."
    )
    seeds: list[int] = Field(
        [42], min_length=1, description="Train once per seed; report mean and std."
    )
    tail_share: float = Field(
        0.8, gt=0, lt=1, description="Bottom share of items by popularity counted as tail."
    )

    @field_validator("ks")
    @classmethod
    def _positive_ks(cls, value: list[int]) -> list[int]:
        if not value or any(k < 1 for k in value):
            raise ValueError("must be a non-empty list of positive integers")
        return sorted(set(value))


class TrackingSection(_Strict):
    """Where a run's metrics are logged (TensorBoard, MLflow). Never part of a cache key."""

    backends: list[Literal["tensorboard", "mlflow"]] = Field(
        [],
        description="Tracking backends to log to (empty: no tracking). Needs the extra: "
        'pip install "slimkit[track]".',
    )
    dir: str | None = Field(
        None,
        description="Folder for TensorBoard event files and the local MLflow store "
        "(empty: <cache dir>/tracking).",
    )
    experiment: str | None = Field(
        None, description="Experiment name (empty: the spec file's name, else 'slimkit')."
    )
    run_name: str | None = Field(None, description="Run name (empty: the time the run started).")
    tags: dict[str, str] = Field({}, description="Tags added to every tracked run.")
    mlflow_uri: str | None = Field(
        None,
        description="MLflow tracking URI, e.g. http://127.0.0.1:5000 (empty: a local SQLite "
        "store, <dir>/mlflow.db).",
    )

    @field_validator("backends")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


FIXED_SECTIONS: dict[str, type[BaseModel]] = {
    "prompt": PromptSection,
    "train": TrainSection,
    "eval": EvalSection,
    "tracking": TrackingSection,
}

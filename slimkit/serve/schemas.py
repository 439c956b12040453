"""The service's request and response bodies (pydantic; they make the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from slimkit.serve.service import MAX_K

ItemRef = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class HistoryRequest(BaseModel):
    """A new user, given by their items (item ids or exact titles, oldest first)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"items": ["50", "181", "Fargo (1996)"], "k": 10}]})

    items: list[ItemRef] = Field(min_length=1, max_length=10_000,
                                 description="Item ids as in the dataset's files, or exact titles "
                                             "(case-insensitive), oldest first.")
    k: int = Field(10, ge=1, le=MAX_K, description="How many items to recommend.")
    include_history: bool = Field(False, description="Allow items already in the history.")


class HistoryItem(BaseModel):
    item_id: str
    title: str


class RecommendedItem(BaseModel):
    rank: int
    item_id: str
    title: str
    score: float = Field(description="The model's score (higher is better; comparable within one answer).")
    step: int | None = Field(description="The rationale step (1-3) that names this item, if one does.")
    in_history: bool


class Rationale(BaseModel):
    source: str = Field(description="student or teacher: who wrote it.")
    text: str
    steps: dict[str, str] | None = Field(description="Step number -> text, when well formed.")
    well_formed: bool
    named_items: list[str] = Field([], description="Item ids step 3 names, resolved against "
                                                   "the catalogue (empty when not resolved).")


class Recommendations(BaseModel):
    user: str | None = Field(description="The raw user id; null for a new history.")
    new_user: bool
    history: list[HistoryItem] = Field(description="The last max_seq_len items the model read.")
    history_length: int
    rationale: Rationale | None = Field(description="Null when the fusion head reads no rationale.")
    rationale_cached: bool | None = Field(
        description="False when the student wrote the rationale for this request.")
    items: list[RecommendedItem]
    named_item_ids: list[str] = Field(description="Recommended items the rationale names.")
    k: int
    masked_history: bool


class Health(BaseModel):
    status: str
    model_loaded: bool


class ItemMatch(BaseModel):
    item_id: str
    title: str


class ErrorBody(BaseModel):
    """Every 4xx answer of the service."""

    detail: str
    problems: list[str] = []
    hint: str | None = None
    suggestions: list[str] = Field([], description="Close user ids (unknown user).")
    unknown_items: dict[str, list[ItemMatch]] = Field(
        {}, description="Each unknown history item -> close items (unknown items).")

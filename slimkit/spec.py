"""The pipeline spec: one YAML file describing a whole SLIM pipeline.

Sections, in this order: ``dataset, teacher, prompt, student, encoder, backbone, fusion,
train, eval``. Component sections name a registered component with ``kind:`` and carry
its parameters, validated in two steps: the ``kind`` first, then the component's own
``Params`` model found through the registry, so plugins can add kinds. Every problem of a
spec is collected into one :class:`~slimkit.errors.ConfigError` naming the path
(``backbone.hiden_size``) and suggesting the closest valid name.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from slimkit.components import Params, params_model
from slimkit.errors import ConfigError, SlimkitError, did_you_mean
from slimkit.registry import SECTION_KIND, registry

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


KIND_BASES: dict[str, type[Params]] = {
    "dataset": DatasetParams,
    "teacher": TeacherParams,
    "student": StudentParams,
    "encoder": EncoderParams,
    "backbone": BackboneParams,
    "fusion": FusionParams,
}


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


class TrainSection(_Strict):
    """How the recommender (backbone + fusion head) is trained."""

    epochs: int = Field(50, ge=1, description="Maximum number of epochs.")
    batch_size: int = Field(256, ge=1, description="Users (sequences) per batch.")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="Adam weight decay.")
    loss: Literal["ce", "bce"] = Field(
        "ce", description="ce: softmax over the full catalogue; bce: sampled negatives."
    )
    num_negatives: int = Field(1, ge=1, description="Negatives per positive with loss: bce.")
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


FIXED_SECTIONS: dict[str, type[BaseModel]] = {
    "prompt": PromptSection,
    "train": TrainSection,
    "eval": EvalSection,
}


@dataclass
class PipelineSpec:
    """A validated, fully resolved pipeline spec."""

    dataset: DatasetParams
    teacher: TeacherParams
    prompt: PromptSection
    student: StudentParams
    encoder: EncoderParams
    backbone: BackboneParams
    fusion: FusionParams
    train: TrainSection
    eval: EvalSection
    source: str | None = None

    def section(self, name: str) -> BaseModel:
        return getattr(self, name)

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec as plain data, sections in canonical order."""
        return {name: self.section(name).model_dump(mode="json") for name in SECTION_ORDER}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def replace(self, **sections: Any) -> PipelineSpec:
        """A new spec with some sections replaced by raw dicts (validated again)."""
        raw = self.to_dict()
        raw.update(sections)
        return validate_spec(raw, source=self.source)

    def components(self) -> list[tuple[str, str]]:
        """(registry kind, name) of every component this spec uses."""
        pairs = [(SECTION_KIND[s], self.section(s).kind) for s in SECTION_KIND]
        pairs += [("prompts", self.prompt.teacher), ("prompts", self.prompt.student)]
        return pairs


# ---------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------
def _loc(prefix: str, loc: tuple[Any, ...]) -> str:
    parts = [prefix] + [str(p) for p in loc]
    return ".".join(p for p in parts if p)


def _pydantic_problems(section: str, model: type[BaseModel], exc: ValidationError) -> list[str]:
    problems = []
    fields = list(model.model_fields)
    for err in exc.errors():
        path = _loc(section, err["loc"])
        if err["type"] == "extra_forbidden":
            key = str(err["loc"][-1])
            problems.append(
                f"{path}: unknown key.{did_you_mean(key, fields)} "
                f"Valid keys: {', '.join(f for f in fields if f != 'kind')}."
            )
        else:
            problems.append(f"{path}: {err['msg']} (got {err.get('input')!r})")
    return problems


def _validate_component(section: str, raw: Any, problems: list[str]) -> Params | None:
    kind_name = SECTION_KIND[section]
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append(f"{section}: must be a mapping with a `kind:` key (got {raw!r})")
        return None
    raw = dict(raw)
    kind = raw.setdefault("kind", DEFAULT_KINDS[section])
    reg = registry(kind_name)
    if not isinstance(kind, str) or kind not in reg:
        names = reg.names()
        problems.append(
            f"{section}.kind: unknown {kind_name[:-1]} '{kind}'.{did_you_mean(str(kind), names)} "
            f"Available: {', '.join(names) or 'none'}."
        )
        return None
    try:
        model = params_model(kind_name, kind)
    except SlimkitError as exc:
        problems.append(f"{section}.kind: {exc.message}")
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(section, model, exc))
        return None


def _validate_fixed(section: str, raw: Any, problems: list[str]) -> BaseModel | None:
    model = FIXED_SECTIONS[section]
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append(f"{section}: must be a mapping (got {raw!r})")
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(section, model, exc))
        return None


def _check_prompts(prompt: PromptSection, problems: list[str]) -> None:
    reg = registry("prompts")
    for role in ("teacher", "student"):
        name = getattr(prompt, role)
        if name not in reg:
            problems.append(
                f"prompt.{role}: unknown prompt template '{name}'."
                f"{did_you_mean(name, reg.names())} Available: {', '.join(reg.names()) or 'none'}."
            )
            continue
        template = reg.get(name)
        check = getattr(template, "validate_for", None)
        if check is not None:
            for problem in check(role):
                problems.append(f"prompt.{role}: {problem}")


def validate_spec(raw: Any, *, source: str | None = None) -> PipelineSpec:
    """Validate a raw spec (parsed YAML) into a :class:`PipelineSpec`.

    Every problem is collected; one :class:`ConfigError` lists them all.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source or 'spec'}: the top level must be a mapping of sections.")
    problems: list[str] = []
    for key in raw:
        if key not in SECTION_ORDER:
            problems.append(
                f"{key}: unknown section.{did_you_mean(str(key), SECTION_ORDER)} "
                f"Sections: {', '.join(SECTION_ORDER)}."
            )
    sections: dict[str, Any] = {}
    for name in SECTION_ORDER:
        value = raw.get(name)
        if name in SECTION_KIND:
            sections[name] = _validate_component(name, value, problems)
        else:
            sections[name] = _validate_fixed(name, value, problems)
    if sections["prompt"] is not None:
        _check_prompts(sections["prompt"], problems)
    if sections["eval"] is not None and sections["train"] is not None:
        k = int(sections["train"].valid_metric.split("@")[1])
        if k not in sections["eval"].ks:
            problems.append(
                f"train.valid_metric: cut-off {k} is not in eval.ks {sections['eval'].ks}; "
                f"add {k} to eval.ks or pick another metric."
            )
    if problems:
        where = f" in {source}" if source else ""
        raise ConfigError(
            f"The pipeline spec{where} has {len(problems)} problem"
            f"{'s' if len(problems) > 1 else ''}:",
            problems=problems,
            hint="`slimkit config schema` lists every key; `slimkit plugins list` every kind.",
        )
    return PipelineSpec(**sections, source=source)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"backbone.hidden_size=128"`` -> (["backbone", "hidden_size"], 128)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. train.epochs=5")
    path, _, value = text.partition("=")
    keys = [k for k in path.strip().split(".") if k]
    if not keys:
        raise ConfigError(f"--set {text!r}: the key before '=' is empty")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML: {exc}") from exc
    return keys, parsed


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of ``raw`` with ``--set a.b=value`` overrides applied (values parsed as YAML)."""
    out = copy.deepcopy(raw)
    for text in overrides:
        keys, value = parse_override(text)
        node = out
        for key in keys[:-1]:
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: '{key}' is not a section or mapping")
            node = child
        node[keys[-1]] = value
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a YAML spec file, turning every failure into a ConfigError."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"Config file not found: {path}", hint="Check the path given to -c/--config.")
    if path.is_dir():
        raise ConfigError(f"Config path is a directory, not a YAML file: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections.")
    return raw


def load_spec(path: str | Path | None = None, overrides: list[str] | None = None) -> PipelineSpec:
    """Read, override and validate a spec. ``path=None`` starts from the defaults."""
    raw = read_yaml(path) if path is not None else {}
    raw = apply_overrides(raw, overrides or [])
    return validate_spec(raw, source=str(path) if path is not None else None)


def spec_json_schema() -> dict[str, Any]:
    """JSON Schema of the whole spec, one alternative per registered component kind."""
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "slimkit pipeline spec",
        "type": "object",
        "additionalProperties": False,
        "properties": {},
        "$defs": {},
    }
    for section in SECTION_ORDER:
        if section in FIXED_SECTIONS:
            sub = FIXED_SECTIONS[section].model_json_schema()
            schema["$defs"].update(sub.pop("$defs", {}))
            schema["properties"][section] = sub
            continue
        kind_name = SECTION_KIND[section]
        alternatives = []
        for name in registry(kind_name).names():
            try:
                model = params_model(kind_name, name)
            except SlimkitError:
                continue
            sub = model.model_json_schema()
            schema["$defs"].update(sub.pop("$defs", {}))
            sub["properties"]["kind"] = {"const": name, "description": f"{kind_name[:-1]} kind"}
            sub["title"] = f"{section}: {name}"
            alternatives.append(sub)
        schema["properties"][section] = {
            "description": f"The {kind_name[:-1]} and its parameters (default kind: "
            f"{DEFAULT_KINDS[section]}).",
            "oneOf": alternatives,
        }
    return schema


def spec_reference_markdown() -> str:
    """The config reference as Markdown: every section, kind and key with its default and help."""
    lines: list[str] = []

    def rows(model: type[BaseModel]) -> None:
        lines.append("| key | default | meaning |")
        lines.append("| --- | --- | --- |")
        for name, field in model.model_fields.items():
            if name == "kind":
                continue
            default = "required" if field.is_required() else (
                field.get_default(call_default_factory=True)
            )
            text = (field.description or "").replace("|", "\\|")
            lines.append(f"| `{name}` | `{default!r}` | {text} |".replace("`'", "`").replace("'`", "`"))
        lines.append("")

    for section in SECTION_ORDER:
        lines.append(f"### `{section}`")
        lines.append("")
        if section in FIXED_SECTIONS:
            rows(FIXED_SECTIONS[section])
            continue
        kind_name = SECTION_KIND[section]
        lines.append(f"`kind:` one of the registered {kind_name} (default `{DEFAULT_KINDS[section]}`).")
        lines.append("")
        for name in registry(kind_name).names():
            try:
                model = params_model(kind_name, name)
            except SlimkitError:
                continue
            lines.append(f"#### `{section}.kind: {name}`")
            lines.append("")
            rows(model)
    return "\n".join(lines)

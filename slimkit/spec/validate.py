"""Validation of a raw spec (parsed YAML) into a :class:`PipelineSpec`.

Component sections are validated in two steps: the ``kind`` first, then the component's
own ``Params`` model found through the registry, so plugins can add kinds. Every problem
is collected into one :class:`~slimkit.errors.ConfigError` naming the path
(``backbone.hiden_size``) and suggesting the closest valid name.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from slimkit.components import Params, params_model
from slimkit.errors import ConfigError, SlimkitError, did_you_mean
from slimkit.registry import SECTION_KIND, registry
from slimkit.spec.sections import (
    DEFAULT_KINDS,
    FIXED_SECTIONS,
    SECTION_ORDER,
    BackboneParams,
    DatasetParams,
    EncoderParams,
    EvalSection,
    FusionParams,
    PromptSection,
    StudentParams,
    TeacherParams,
    TrackingSection,
    TrainSection,
)


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
    tracking: TrackingSection
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


def _params_model(section: str, kind: Any, problems: list[str]) -> type[Params] | None:
    """The ``Params`` model of the ``kind`` a component section names; None (and a problem
    added) when no such kind is registered or its model cannot be loaded."""
    kind_name = SECTION_KIND[section]
    reg = registry(kind_name)
    if not isinstance(kind, str) or kind not in reg:
        names = reg.names()
        problems.append(
            f"{section}.kind: unknown {kind_name[:-1]} '{kind}'.{did_you_mean(str(kind), names)} "
            f"Available: {', '.join(names) or 'none'}."
        )
        return None
    try:
        return params_model(kind_name, kind)
    except SlimkitError as exc:
        problems.append(f"{section}.kind: {exc.message}")
        return None


def kind_fields(section: str, kind: Any) -> set[str] | None:
    """The keys a component section of ``kind`` accepts; None when the section is not a
    component section or the kind is unknown."""
    if section not in SECTION_KIND:
        return None
    model = _params_model(section, kind, [])
    return None if model is None else set(model.model_fields)


def _accepts_bool(annotation: Any) -> bool:
    if annotation is bool or annotation is Any:
        return True
    args = typing.get_args(annotation)
    return any(_accepts_bool(a) for a in args) if args else False


def _number_only(annotation: Any) -> bool:
    """Whether a field takes numbers (int/float, optionally None) and no bool."""
    if annotation in (int, float):
        return True
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return bool(args) and all(a in (int, float) for a in args)


def _bool_problems(section: str, model: type[BaseModel], raw: dict[str, Any]) -> list[str]:
    """``epochs: true``: pydantic reads a bool as 1 or 0; a number field must get a number."""
    problems = []
    for name, value in raw.items():
        field = model.model_fields.get(name)
        if isinstance(value, bool) and field is not None and _number_only(field.annotation) \
                and not _accepts_bool(field.annotation):
            problems.append(f"{section}.{name}: expected a number, got {str(value).lower()} "
                            "(a YAML boolean; write the number).")
    return problems


def _validate_section(section: str, raw: Any, problems: list[str]) -> BaseModel | None:
    """One section: a component section by the ``Params`` of its ``kind``, a fixed one by its
    own model; None (and its problems added) when it does not fit."""
    component = section in SECTION_KIND
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        shape = "a mapping with a `kind:` key" if component else "a mapping"
        problems.append(f"{section}: must be {shape} (got {raw!r})")
        return None
    if component:
        raw = dict(raw)
        model = _params_model(section, raw.setdefault("kind", DEFAULT_KINDS[section]), problems)
    else:
        model = FIXED_SECTIONS[section]
    if model is None:
        return None
    wrong_bools = _bool_problems(section, model, raw)
    problems.extend(wrong_bools)
    try:
        validated = model.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(section, model, exc))
        return None
    return None if wrong_bools else validated


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
        sections[name] = _validate_section(name, raw.get(name), problems)
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

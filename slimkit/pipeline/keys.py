"""What each stage reads and its cache key, from the spec alone (nothing is run).

A stage's key hashes its name, the resolved spec sections it reads, the keys of the
stages whose outputs it reads, and the versions of slimkit and of the components
involved, so ``slimkit status`` can tell cached / stale / missing without running.
"""

from __future__ import annotations

from typing import Any

from slimkit.cache import StageCache
from slimkit.data.facts import FACTS_REVISION
from slimkit.factories import fusion_needs
from slimkit.registry import component_versions
from slimkit.spec import SECTION_ORDER, PipelineSpec

PIPELINE = ("data", "teach", "distill", "encode", "train")
"""The stages, in the order they run."""

STAGE_COMPONENTS = {
    "data": ("datasets",),
    "teach": ("teachers", "prompts"),
    "distill": ("students", "prompts"),
    "encode": ("encoders",),
    "train": ("backbones", "fusions"),
}
"""Registry kinds whose versions enter each stage's key."""


def uses_text(spec: PipelineSpec) -> bool:
    """Whether the spec's fusion head reads item-text or rationale vectors."""
    return any(fusion_needs(spec.fusion))


def needed_stages(spec: PipelineSpec) -> dict[str, str | None]:
    """Per stage: ``None`` when the spec needs it, else why it is skipped.

    The encode stage's key covers the teacher's and the student's outputs (it encodes
    their rationales next to the item texts), so any fusion head that reads text vectors
    needs teach and distill as well; the plain backbone (``fusion: none``) needs only
    data and train.
    """
    reason = None if uses_text(spec) else f"fusion '{spec.fusion.kind}' uses neither text nor rationales"
    return {
        "data": None,
        "teach": reason,
        "distill": reason,
        "encode": reason,
        "train": None,
    }


def stage_inputs(spec: PipelineSpec) -> dict[str, dict[str, Any]]:
    """Per stage: the resolved spec sections it reads and the upstream stages it uses."""
    d = spec.to_dict()
    return {
        "data": {"parts": {"dataset": d["dataset"]}, "upstream": []},
        "teach": {"parts": {"teacher": d["teacher"], "prompt": d["prompt"], "facts": FACTS_REVISION},
                  "upstream": ["data"]},
        "distill": {"parts": {"student": d["student"], "prompt": d["prompt"]},
                    "upstream": ["data", "teach"]},
        "encode": {"parts": {"encoder": d["encoder"]}, "upstream": ["data", "teach", "distill"]},
        "train": {"parts": {k: d[k] for k in ("backbone", "fusion", "train", "eval")},
                  "upstream": ["data"] + (["encode"] if uses_text(spec) else [])},
    }


def stage_versions(spec: PipelineSpec, stage: str) -> dict[str, str]:
    """Distribution versions of the components a stage uses."""
    kinds = STAGE_COMPONENTS[stage]
    return component_versions([pair for pair in spec.components() if pair[0] in kinds])


def stage_keys(spec: PipelineSpec, cache: StageCache | None = None,
               incomplete: dict[str, str] | None = None) -> dict[str, str]:
    """The cache key of every stage.

    ``incomplete`` marks stage outputs that finished with failed items (``{"teach":
    "20/30:<users>"}``): a stage reading such an output gets another key, so it is never
    taken for (nor reused as) the stage built on the complete output.
    """
    cache = cache or StageCache()
    inputs = stage_inputs(spec)
    marks = incomplete or {}
    keys: dict[str, str] = {}
    for stage in PIPELINE:
        upstream = [keys[u] + (f"#incomplete:{marks[u]}" if u in marks else "")
                    for u in inputs[stage]["upstream"]]
        keys[stage] = cache.key(stage, inputs[stage]["parts"], upstream, stage_versions(spec, stage))
    return keys


def upstream_closure(spec: PipelineSpec, stage: str) -> list[str]:
    """Every stage whose output ``stage`` depends on, directly or not."""
    inputs = stage_inputs(spec)
    seen: list[str] = []
    todo = list(inputs[stage]["upstream"])
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.append(current)
            todo.extend(inputs[current]["upstream"])
    return [s for s in PIPELINE if s in seen]


def stage_spec(spec: PipelineSpec, stage: str) -> dict[str, Any]:
    """The resolved sections of a stage and of everything upstream (stored beside outputs)."""
    inputs = stage_inputs(spec)
    out: dict[str, Any] = {}
    todo = [stage]
    while todo:
        current = todo.pop()
        out.update(inputs[current]["parts"])
        todo.extend(inputs[current]["upstream"])
    return {k: out[k] for k in SECTION_ORDER if k in out}

"""Pipeline stages: data -> teach -> distill -> encode -> train.

Each stage module exposes ``run_<stage>(spec, cache=None, ...)`` returning a
:class:`StageResult`, taking its output from the cache when its key is known.
:func:`stage_keys` computes every stage's cache key from the spec alone, so
``slimkit status`` can tell cached / stale / missing without running anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimkit.cache import StageCache
from slimkit.components import params_model
from slimkit.registry import component_versions
from slimkit.spec import PipelineSpec

PIPELINE = ("data", "teach", "distill", "encode", "train")


@dataclass
class StageResult:
    """What one stage produced: where, whether it came from the cache, a summary."""

    stage: str
    key: str
    path: Path
    cached: bool
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)


def fusion_needs(spec: PipelineSpec) -> tuple[bool, bool]:
    """(needs item text vectors, needs rationale vectors) of the spec's fusion head."""
    model = params_model("fusions", spec.fusion.kind)
    return bool(getattr(model, "needs_item_text", False)), bool(
        getattr(model, "needs_rationales", False)
    )


def stage_inputs(spec: PipelineSpec) -> dict[str, dict[str, Any]]:
    """Per stage: the resolved spec parts it reads and the upstream stages it uses."""
    d = spec.to_dict()
    needs_text, needs_rationales = fusion_needs(spec)
    train_upstream = ["data"] + (["encode"] if (needs_text or needs_rationales) else [])
    return {
        "data": {"parts": {"dataset": d["dataset"]}, "upstream": []},
        "teach": {
            "parts": {"teacher": d["teacher"], "prompt": d["prompt"]},
            "upstream": ["data"],
        },
        "distill": {
            "parts": {"student": d["student"], "prompt": d["prompt"]},
            "upstream": ["data", "teach"],
        },
        "encode": {"parts": {"encoder": d["encoder"]}, "upstream": ["data", "teach", "distill"]},
        "train": {
            "parts": {k: d[k] for k in ("backbone", "fusion", "train", "eval")},
            "upstream": train_upstream,
        },
    }


_STAGE_COMPONENTS = {
    "data": ["datasets"],
    "teach": ["teachers", "prompts"],
    "distill": ["students", "prompts"],
    "encode": ["encoders"],
    "train": ["backbones", "fusions"],
}


def stage_keys(spec: PipelineSpec, cache: StageCache | None = None) -> dict[str, str]:
    """The cache key of every stage, computed from the spec (nothing is run)."""
    cache = cache or StageCache()
    inputs = stage_inputs(spec)
    pairs = spec.components()
    keys: dict[str, str] = {}
    for stage in PIPELINE:
        kinds = _STAGE_COMPONENTS[stage]
        versions = component_versions([p for p in pairs if p[0] in kinds])
        keys[stage] = cache.key(
            stage,
            inputs[stage]["parts"],
            [keys[u] for u in inputs[stage]["upstream"]],
            versions,
        )
    return keys


def stage_spec(spec: PipelineSpec, stage: str) -> dict[str, Any]:
    """The resolved spec parts of a stage and everything upstream (stored beside outputs)."""
    inputs = stage_inputs(spec)
    out: dict[str, Any] = {}
    todo = [stage]
    while todo:
        current = todo.pop()
        out.update(inputs[current]["parts"])
        todo.extend(inputs[current]["upstream"])
    from slimkit.spec import SECTION_ORDER

    return {k: out[k] for k in SECTION_ORDER if k in out}

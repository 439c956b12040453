"""Which modules LoRA adapts: a default per architecture, or the user's list checked."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slimkit.errors import SlimkitError

# Attention projections LoRA adapts by default, per `config.model_type`: the query and
# value projections, as in the LoRA paper and SLIM. Fused-QKV architectures adapt the
# fused projection. Anything else falls back to peft's own table, then to a search.
DEFAULT_TARGET_MODULES: dict[str, list[str]] = {
    "llama": ["q_proj", "v_proj"],
    "mistral": ["q_proj", "v_proj"],
    "mixtral": ["q_proj", "v_proj"],
    "qwen2": ["q_proj", "v_proj"],
    "qwen3": ["q_proj", "v_proj"],
    "gemma": ["q_proj", "v_proj"],
    "gemma2": ["q_proj", "v_proj"],
    "gemma3_text": ["q_proj", "v_proj"],
    "opt": ["q_proj", "v_proj"],
    "gptj": ["q_proj", "v_proj"],
    "phi": ["q_proj", "v_proj"],
    "starcoder2": ["q_proj", "v_proj"],
    "olmo": ["q_proj", "v_proj"],
    "olmo2": ["q_proj", "v_proj"],
    "phi3": ["qkv_proj"],
    "bloom": ["query_key_value"],
    "gpt_neox": ["query_key_value"],
    "falcon": ["query_key_value"],
    "gpt2": ["c_attn"],
    "gpt_bigcode": ["c_attn"],
    "mpt": ["Wqkv"],
}


def default_target_modules(model_type: str, module_names: Sequence[str]) -> list[str]:
    """LoRA target modules for an architecture: slimkit's table, peft's, then a search."""
    if model_type in DEFAULT_TARGET_MODULES:
        return list(DEFAULT_TARGET_MODULES[model_type])
    try:
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

        found = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model_type)
        if found:
            return list(found)
    except ImportError:  # pragma: no cover - peft moved the table
        pass
    leaves = {name.rsplit(".", 1)[-1] for name in module_names}
    for candidates in (["q_proj", "v_proj"], ["query", "value"], ["query_key_value"], ["c_attn"]):
        if all(c in leaves for c in candidates):
            return candidates
    raise SlimkitError(
        f"slimkit has no default LoRA target modules for model type '{model_type}'.",
        hint="Set student.target_modules to the attention projection names of this model, "
        "e.g. [q_proj, v_proj].",
    )


def resolve_target_modules(model: Any, requested: Sequence[str] | None, model_name: str) -> list[str]:
    """``requested`` checked against ``model``'s module names, or the default for its type."""
    if requested:
        names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
        unknown = [m for m in requested if m not in names]
        if unknown:
            linear = sorted(
                {n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                 if type(m).__name__ in ("Linear", "Conv1D")}
            )
            raise SlimkitError(
                f"student.target_modules: {unknown} not found in {model_name}.",
                hint=f"Linear modules of this model: {', '.join(linear)}.",
            )
        return list(requested)
    model_type = getattr(model.config, "model_type", "")
    return default_target_modules(model_type, [n for n, _ in model.named_modules()])

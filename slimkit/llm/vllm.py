"""Generation on vLLM (GPU): the base model plus a LoRA adapter per request.

Prompts go in as token ids, like :func:`slimkit.llm.generate.generate`, and every
finished prompt is reported through ``on_done`` for resuming. The engine is started with
LoRA enabled (``enable_lora``, ``max_lora_rank`` rounded up to a rank vLLM accepts) and
the fine-tuned student's rationales are asked with a ``LoRARequest`` naming the saved
peft adapter folder; the base student's with none. The arguments are built by
:func:`engine_args` and :func:`lora_request_args` (tested without vLLM); the engine itself
has not run on a GPU in slimkit's tests.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from slimkit.errors import SlimkitError
from slimkit.llm.generate import generation_progress, run_summary

OnDone = Callable[[int, str, int], None]
"""``on_done(index, text, new_tokens)`` per finished prompt."""


def vllm_available() -> bool:
    """Whether the vllm package is installed."""
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def require_vllm() -> None:
    """Raise a clear error when the vllm backend is asked for but not installed."""
    if not vllm_available():
        raise SlimkitError(
            "student.backend is 'vllm' but vLLM is not installed.",
            hint="On a CUDA machine: pip install 'slimkit[vllm]'. Otherwise set "
            "student.backend=transformers.",
        )


VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256)
"""The ``max_lora_rank`` values vLLM (>= 0.6) accepts; newer versions add 320 and 512."""

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
"""What a peft LoRA adapter folder holds for vLLM to load it."""


def vllm_lora_rank(rank: int) -> int:
    """The smallest ``max_lora_rank`` vLLM accepts that fits a LoRA of rank ``rank``."""
    for allowed in VLLM_LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise SlimkitError(
        f"student.lora_r={rank} is larger than vLLM's largest LoRA rank ({VLLM_LORA_RANKS[-1]}).",
        hint=f"Use student.lora_r <= {VLLM_LORA_RANKS[-1]}, or student.backend=transformers.",
    )


def adapter_rank(folder: str | Path) -> int | None:
    """The LoRA rank ``r`` of a peft adapter folder (None when its config says none)."""
    try:
        config = json.loads((Path(folder) / ADAPTER_FILES[0]).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    rank = config.get("r") if isinstance(config, dict) else None
    return int(rank) if isinstance(rank, int) else None


def engine_args(base_model: str, *, lora_rank: int) -> dict[str, Any]:
    """Keyword arguments of ``vllm.LLM``: the base model with LoRA enabled for one adapter
    at a time (base requests need no slot)."""
    return {"model": base_model, "enable_lora": True, "max_lora_rank": vllm_lora_rank(lora_rank),
            "max_loras": 1}


def lora_request_args(adapter: str | Path, lora_id: int) -> dict[str, Any]:
    """Keyword arguments of ``vllm.lora.request.LoRARequest`` for the adapter folder
    ``adapter`` (``lora_id``: a positive id, one per adapter in this engine)."""
    folder = Path(adapter)
    missing = [name for name in ADAPTER_FILES if not (folder / name).is_file()]
    if missing:
        raise SlimkitError(
            f"The LoRA adapter folder {folder} has no {', '.join(missing)}: vLLM cannot load it.",
            hint="Point student.adapter at the adapter/ folder of a finished distill stage.",
        )
    if lora_id < 1:
        raise ValueError("vLLM LoRA ids start at 1")
    return {"lora_name": f"slimkit-student-{lora_id}", "lora_int_id": lora_id,
            "lora_path": str(folder.resolve())}


class VLLMGenerator:
    """Greedy generation on vLLM: the base model, plus the LoRA adapter per request
    (``LoRARequest``), so base and fine-tuned rationales come from one engine.

    Prompts go to the engine in chunks (vLLM batches continuously inside a chunk); each
    chunk's rationales are reported as it finishes, for resuming.
    """

    def __init__(self, base_model: str, *, lora_rank: int = 8):
        require_vllm()
        from vllm import LLM

        self.engine = LLM(**engine_args(base_model, lora_rank=lora_rank))
        self._lora_ids: dict[str, int] = {}

    def lora_request(self, adapter: str | None):
        """The ``LoRARequest`` of the adapter folder ``adapter`` (None: the base model)."""
        if adapter is None:
            return None
        from vllm.lora.request import LoRARequest

        lora_id = self._lora_ids.setdefault(adapter, len(self._lora_ids) + 1)
        return LoRARequest(**lora_request_args(adapter, lora_id))

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        adapter: str | None,
        max_new_tokens: int = 64,
        chunk_size: int = 256,
        on_done: OnDone | None = None,
        progress: bool = True,
        description: str = "Generating (vLLM)",
    ) -> dict[str, Any]:
        """Greedy answers for token-id prompts, with the adapter folder ``adapter`` (or the base)."""
        from vllm import SamplingParams

        sampling = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
        lora = self.lora_request(adapter)
        new_tokens = 0
        started = time.perf_counter()
        bar = generation_progress(progress)
        with bar:
            task = bar.add_task(description, total=len(prompts), tps=0.0)
            for first in range(0, len(prompts), chunk_size):
                chunk = list(range(first, min(first + chunk_size, len(prompts))))
                requests = [{"prompt_token_ids": list(prompts[i])} for i in chunk]
                outputs = self.engine.generate(requests, sampling, lora_request=lora, use_tqdm=False)
                for index, output in zip(chunk, outputs):
                    completion = output.outputs[0]
                    count = len(completion.token_ids)
                    new_tokens += count
                    if on_done is not None:
                        on_done(index, completion.text.strip(), count)
                elapsed = time.perf_counter() - started
                bar.update(task, advance=len(chunk), tps=new_tokens / max(elapsed, 1e-9))
        return run_summary(len(prompts), new_tokens, started, "vllm", chunk_size)

"""Generation on vLLM (GPU): the base model plus a LoRA adapter per request.

Prompts go in as token ids, like :func:`slimkit.llm.generate.generate`, and every
finished prompt is reported through ``on_done`` for resuming.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
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


class VLLMGenerator:
    """Greedy generation on vLLM: the base model, plus the LoRA adapter per request
    (``LoRARequest``), so base and fine-tuned rationales come from one engine.

    Prompts go to the engine in chunks (vLLM batches continuously inside a chunk); each
    chunk's rationales are reported as it finishes, for resuming.
    """

    def __init__(self, base_model: str, *, lora_rank: int = 8):
        require_vllm()
        from vllm import LLM

        self.engine = LLM(model=base_model, enable_lora=True, max_lora_rank=max(lora_rank, 8))
        self._lora_ids: dict[str, int] = {}

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
        lora = None
        if adapter is not None:
            from vllm.lora.request import LoRARequest

            lora_id = self._lora_ids.setdefault(adapter, len(self._lora_ids) + 1)
            lora = LoRARequest(f"slimkit-student-{lora_id}", lora_id, adapter)
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

"""Batched rationale generation: transformers (CPU or GPU) and vLLM (GPU).

Both backends take prompts as token ids (built once by the student, so generation reads
exactly what training read) and call ``on_done(index, text, new_tokens)`` as soon as
each prompt finishes, so the caller can cache every rationale on its own and a killed
run resumes where it stopped.

The transformers backend sorts prompts by length (little padding), pads on the left (so
every row's next token sits in the last column), and decodes greedily with the KV cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from slimkit.errors import SlimkitError
from slimkit.runtime import setup_torch

OnDone = Callable[[int, str, int], None]


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first: fail fast on memory)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int):
    """(input_ids (B, T), attention_mask (B, T)) with every prompt right-aligned."""
    torch = setup_torch()
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)  # (B, T)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
        mask[row, width - len(prompt) :] = 1
    return ids, mask


def _stop_ids(model: Any, tokenizer: Any) -> list[int]:
    ids = set()
    for source in (getattr(model, "generation_config", None), tokenizer):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return sorted(ids)


def _cut_at_stop(tokens: Sequence[int], stop: set[int], pad_id: int) -> tuple[list[int], int]:
    """(content tokens, tokens generated) of one output row; stops at the first stop id."""
    out: list[int] = []
    for n, tok in enumerate(tokens, start=1):
        if tok in stop:
            return out, n
        out.append(int(tok))
    return out, len(tokens)


def _generation_progress(enabled: bool, description: str, total: int):
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[tps]:.1f} tok/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )
    return bar


def generate_transformers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 16,
    workers: int = 1,
    on_done: OnDone | None = None,
    progress: bool = True,
    description: str = "Generating",
) -> dict[str, Any]:
    """Greedy generation with transformers; returns counts and tokens/s.

    ``workers`` threads decode different batches at once, sharing the model (each torch
    op runs on its calling thread when torch has one intra-op thread). On two cores two
    single-threaded workers measured 2.0x one, where two intra-op threads gave 1.3x.
    Batches and their numerics do not depend on ``workers``: the outputs are the same.
    A Ctrl-C stops every worker after its current decoding step; finished prompts have
    been reported through ``on_done`` already.
    """
    import queue
    import threading

    from transformers import StoppingCriteria, StoppingCriteriaList

    torch = setup_torch()
    if not prompts:
        return {"prompts": 0, "new_tokens": 0, "seconds": 0.0, "tokens_per_s": None}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stop = _stop_ids(model, tokenizer)
    stop_set = set(stop)
    device = next(model.parameters()).device
    batches = length_sorted_batches([len(p) for p in prompts], batch_size)  # longest first
    todo: queue.Queue = queue.Queue()  # batches left for the worker threads
    halt = threading.Event()  # Ctrl-C or a worker's error: every worker stops
    lock = threading.Lock()
    errors: list[BaseException] = []
    new_tokens = 0
    started = time.perf_counter()

    class _Halt(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):  # (B, T) -> (B,) bool
            return torch.full((input_ids.shape[0],), halt.is_set(), dtype=torch.bool,
                              device=input_ids.device)

    def decode(batch: list[int]) -> None:
        nonlocal new_tokens
        ids, mask = left_pad([prompts[i] for i in batch], pad_id)
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                use_cache=True,
                pad_token_id=pad_id,
                eos_token_id=stop or None,
                stopping_criteria=StoppingCriteriaList([_Halt()]),
            )  # (B, T + new)
        if halt.is_set():
            return  # cut short: nothing of this batch is reported
        generated = out[:, ids.shape[1] :].tolist()
        with lock:
            for row, index in enumerate(batch):
                content, count = _cut_at_stop(generated[row], stop_set, pad_id)
                new_tokens += count
                text = tokenizer.decode(content, skip_special_tokens=True).strip()
                if on_done is not None:
                    on_done(index, text, count)
            elapsed = time.perf_counter() - started
            bar.update(task, advance=len(batch), tps=new_tokens / max(elapsed, 1e-9))

    def work(finished: threading.Event) -> None:
        try:
            while not halt.is_set():
                try:
                    batch = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    decode(batch)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                    with lock:
                        errors.append(exc)
                    halt.set()
                    return
        finally:
            finished.set()

    bar = _generation_progress(progress, description, len(prompts))
    with bar:
        task = bar.add_task(description, total=len(prompts), tps=0.0)
        count = max(1, min(workers, len(batches)))
        if count == 1:
            for batch in batches:
                decode(batch)
        else:
            for batch in batches:  # an out-of-memory error still comes early
                todo.put(batch)
            # Waiting on events, not Thread.join: a join cut by Ctrl-C can report a live
            # thread as finished, and exiting while a worker is inside torch aborts.
            finished = [threading.Event() for _ in range(count)]
            for n in range(count):
                threading.Thread(target=work, args=(finished[n],), name=f"slimkit-generate-{n}",
                                 daemon=True).start()
            try:
                for event in finished:
                    while not event.wait(0.2):
                        pass
            except KeyboardInterrupt:
                halt.set()  # every worker ends after its current decoding step
                for event in finished:
                    event.wait()
                raise
            if errors:
                raise errors[0]
    summary = _run_summary(len(prompts), new_tokens, started, "transformers", batch_size)
    summary["workers"] = count
    return summary


def _run_summary(prompts: int, new_tokens: int, started: float, backend: str, batch_size: int) -> dict:
    """What one generation run reports: counts, seconds and tokens/s since ``started``."""
    seconds = time.perf_counter() - started
    return {
        "prompts": prompts,
        "new_tokens": new_tokens,
        "seconds": seconds,
        "tokens_per_s": new_tokens / max(seconds, 1e-9),
        "backend": backend,
        "batch_size": batch_size,
    }


def vllm_available() -> bool:
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
        from vllm import SamplingParams

        sampling = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
        lora = None
        if adapter is not None:
            from vllm.lora.request import LoRARequest

            lora_id = self._lora_ids.setdefault(adapter, len(self._lora_ids) + 1)
            lora = LoRARequest(f"slimkit-student-{lora_id}", lora_id, adapter)
        new_tokens = 0
        started = time.perf_counter()
        bar = _generation_progress(progress, description, len(prompts))
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
        return _run_summary(len(prompts), new_tokens, started, "vllm", chunk_size)

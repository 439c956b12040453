"""The LoRA fine-tuning loop: masked negative log-likelihood of the rationale tokens.

The loss of a step is the mean NLL over every rationale token of the step (prompt tokens
carry label ``-100``); with ``grad_accum`` > 1 the gradients of that many batches are
summed before each optimizer step. AdamW, linear warm-up then linear decay to 0,
gradient clipping at 1.0; the batch order is shuffled per epoch with ``seed``.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from slimkit.errors import SlimkitError
from slimkit.runtime import setup_torch
from slimkit.students.hf_lora.examples import IGNORE_INDEX, TrainingExample, collate


@dataclass(frozen=True)
class TrainSettings:
    """The ``hf-lora`` fields training reads."""

    epochs: int = 1
    lr: float = 2e-4
    warmup_ratio: float = 0.05
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int | str = "auto"  # a number once fit_lengths resolved it
    seed: int = 0
    max_steps: int | None = None


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is a CUDA or CPU out-of-memory error."""
    text = str(exc).lower()
    return type(exc).__name__ == "OutOfMemoryError" or any(
        sign in text for sign in ("out of memory", "can't allocate memory", "cannot allocate memory")
    )


def out_of_memory_error(exc: BaseException, settings: TrainSettings, during: str) -> SlimkitError:
    """A SlimkitError saying which knob to turn after an out-of-memory error."""
    batch_size, grad_accum = settings.batch_size, settings.grad_accum
    smaller = max(1, batch_size // 2)
    return SlimkitError(
        f"Out of memory during {during} with student.batch_size={batch_size}, "
        f"student.max_length={settings.max_length}, student.grad_accum={grad_accum} ({exc}).",
        hint=f"Lower the batch: --set student.batch_size={smaller} "
        f"--set student.grad_accum={grad_accum * batch_size // smaller} keeps the effective "
        f"batch; or shorten sequences with student.max_length (or prompt.max_items); for "
        "generation lower student.gen_batch_size.",
    )


def batch_loss(model: Any, batch: Sequence[TrainingExample], pad_id: int, device: str):
    """(sum of token NLLs, number of target tokens) for one batch.

    Logits are computed only from the first rationale position of the batch on: the
    prompt's logits would be masked anyway and cost a vocabulary-sized matmul each.
    """
    torch = setup_torch()
    ids, mask, labels = collate(batch, pad_id, device)  # (B, T) each
    width = ids.shape[1]
    first_target = min(
        next(i for i, label in enumerate(ex.labels) if label != IGNORE_INDEX) for ex in batch
    )
    keep = width - first_target + 1  # positions first_target-1 .. T-1
    try:
        logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits
    except TypeError:  # a model without logits_to_keep
        logits = model(input_ids=ids, attention_mask=mask).logits[:, -keep:, :]
    shift_logits = logits[:, :-1, :].float()  # (B, keep-1, V): position p predicts p+1
    shift_labels = labels[:, width - keep + 1 :]  # (B, keep-1)
    nll = torch.nn.functional.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]),
        shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    return nll, int((shift_labels != IGNORE_INDEX).sum())


def evaluate_loss(model: Any, examples: Sequence[TrainingExample], settings: TrainSettings,
                  pad_id: int, device: str) -> float | None:
    """Mean NLL per rationale token over ``examples`` (None when empty)."""
    if not examples:
        return None
    torch = setup_torch()
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for start in range(0, len(examples), settings.batch_size):
                nll, n = batch_loss(model, examples[start : start + settings.batch_size], pad_id, device)
                total += float(nll)
                count += n
    except RuntimeError as exc:
        if is_out_of_memory(exc):
            raise out_of_memory_error(exc, settings, "validation") from exc
        raise
    finally:
        model.train(was_training)
    return total / max(count, 1)


def train_lora(
    model: Any,
    train: Sequence[TrainingExample],
    valid: Sequence[TrainingExample],
    settings: TrainSettings,
    *,
    pad_id: int,
    device: str,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Fit the trainable (LoRA) parameters of ``model`` on ``train``; returns losses and timings."""
    torch = setup_torch()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    micro_per_epoch = math.ceil(len(train) / settings.batch_size)
    steps_per_epoch = math.ceil(micro_per_epoch / settings.grad_accum)
    total_steps = steps_per_epoch * settings.epochs
    if settings.max_steps is not None:
        total_steps = min(total_steps, settings.max_steps)
    warmup = round(settings.warmup_ratio * total_steps)

    def schedule(step: int) -> float:  # linear warm-up, then linear decay to 0
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    valid_before = evaluate_loss(model, valid, settings, pad_id, device)
    order_rng = random.Random(settings.seed)
    losses: list[float] = []
    valid_losses: list[float] = []
    step = 0
    started = time.perf_counter()
    from slimkit.console import progress_bar

    bar = progress_bar("loss {task.fields[loss]:.3f}", "{task.fields[sps]:.1f} s/step", enabled=progress)
    with bar:
        task = bar.add_task("LoRA fine-tuning", total=total_steps, loss=float("nan"), sps=0.0)
        for _epoch in range(settings.epochs):
            order = list(range(len(train)))
            order_rng.shuffle(order)
            batches = [
                [train[i] for i in order[s : s + settings.batch_size]]
                for s in range(0, len(order), settings.batch_size)
            ]
            for first in range(0, len(batches), settings.grad_accum):
                if step >= total_steps:
                    break
                group = batches[first : first + settings.grad_accum]
                tokens = sum(ex.num_target_tokens for b in group for ex in b)
                step_loss = 0.0
                try:
                    for batch in group:
                        nll, _n = batch_loss(model, batch, pad_id, device)
                        # Mean over every target token of the whole accumulated step.
                        (nll / max(tokens, 1)).backward()
                        step_loss += float(nll.detach()) / max(tokens, 1)
                    torch.nn.utils.clip_grad_norm_(params, 1.0)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                except RuntimeError as exc:
                    if is_out_of_memory(exc):
                        raise out_of_memory_error(exc, settings, "LoRA training") from exc
                    raise
                step += 1
                losses.append(step_loss)
                elapsed = time.perf_counter() - started
                bar.update(task, advance=1, loss=step_loss, sps=elapsed / step)
                if on_step is not None:
                    on_step(step, step_loss)
            valid_loss = evaluate_loss(model, valid, settings, pad_id, device)
            if valid_loss is not None:
                valid_losses.append(valid_loss)
    model.eval()
    seconds = time.perf_counter() - started
    return {
        "steps": step,
        "train_examples": len(train),
        "valid_examples": len(valid),
        "truncated_examples": sum(1 for ex in train if ex.truncated),
        "train_loss": losses,
        "train_loss_first": losses[0] if losses else None,
        "train_loss_last": losses[-1] if losses else None,
        "valid_loss_before": valid_before,
        "valid_loss": valid_losses,
        "seconds": seconds,
        "seconds_per_step": seconds / max(step, 1),
    }

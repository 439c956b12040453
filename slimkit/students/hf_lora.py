"""The ``hf-lora`` student: a Hugging Face causal LM fine-tuned with LoRA through peft.

The student learns to write the teacher's rationale from the simpler student prompt.
Training minimises the negative log-likelihood of the rationale tokens only: the prompt
tokens get label ``-100`` and never count in the loss. Prompts are built the same way for
training and generation (:meth:`HFLoraStudent.prompt_ids`), so what the student sees at
inference is what it was trained on.

The distill stage talks to a student through these methods (a plugin student provides
the same): ``prompt_ids(messages)``, ``generate(prompts, on_done=..., progress=...)``,
``train(train, valid, progress=...)``, ``save_adapter(folder, spec)``,
``load_adapter(folder)``, ``identity()`` (what a cached rationale depends on) and
``generation_params()``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slimkit.errors import SlimkitError
from slimkit.runtime import setup_torch

IGNORE_INDEX = -100
"""Label of tokens that do not count in the loss (the prompt, padding)."""

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
SPEC_FILE = "slimkit_spec.json"

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


def is_out_of_memory(exc: BaseException) -> bool:
    text = str(exc).lower()
    return type(exc).__name__ == "OutOfMemoryError" or any(
        sign in text for sign in ("out of memory", "can't allocate memory", "cannot allocate memory")
    )


def out_of_memory_error(exc: BaseException, *, batch_size: int, max_length: int, grad_accum: int,
                        during: str) -> SlimkitError:
    """A SlimkitError saying which knob to turn after an out-of-memory error."""
    smaller = max(1, batch_size // 2)
    return SlimkitError(
        f"Out of memory during {during} with student.batch_size={batch_size}, "
        f"student.max_length={max_length}, student.grad_accum={grad_accum} ({exc}).",
        hint=f"Lower the batch: --set student.batch_size={smaller} "
        f"--set student.grad_accum={grad_accum * batch_size // smaller} keeps the effective "
        f"batch; or shorten sequences with student.max_length (or prompt.max_items); for "
        "generation lower student.gen_batch_size.",
    )


@dataclass
class TrainingExample:
    """One tokenised (prompt, rationale) pair; ``labels`` is ``-100`` on prompt tokens."""

    user_index: int
    input_ids: list[int]
    labels: list[int]
    truncated: bool = False

    @property
    def num_target_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class HFLoraStudent:
    """A causal LM student with an optional LoRA adapter (train, save, load, generate).

    Arguments are the ``hf-lora`` Params fields (see ``slimkit.students.HFLoraStudentParams``).
    """

    def __init__(
        self,
        *,
        model: str = "smollm2-135m-instruct",
        adapter: str | None = None,
        lora_r: int = 8,
        lora_alpha: int = 16,
        lora_dropout: float = 0.05,
        target_modules: list[str] | None = None,
        quantize_4bit: bool = False,
        epochs: int = 1,
        lr: float = 2e-4,
        warmup_ratio: float = 0.05,
        batch_size: int = 4,
        grad_accum: int = 1,
        max_length: int = 384,
        valid_share: float = 0.1,
        seed: int = 0,
        backend: str = "transformers",
        max_new_tokens: int = 64,
        gen_batch_size: int = 16,
        num_users: int | None = None,
        quality_users: int = 32,
        device: str = "auto",
        max_steps: int | None = None,
        gen_quantize: str = "auto",
        gen_workers: int | None = None,
        **extra: Any,
    ):
        if extra:
            raise SlimkitError(f"student: unknown hf-lora parameters {sorted(extra)}")
        self.model_name = model
        self.adapter_path = adapter
        self.lora_r = lora_r
        self.lora_alpha = lora_alpha
        self.lora_dropout = lora_dropout
        self.target_modules = list(target_modules) if target_modules else None
        self.quantize_4bit = quantize_4bit
        self.epochs = epochs
        self.lr = lr
        self.warmup_ratio = warmup_ratio
        self.batch_size = batch_size
        self.grad_accum = grad_accum
        self.max_length = max_length
        self.valid_share = valid_share
        self.seed = seed
        self.backend = backend
        self.max_new_tokens = max_new_tokens
        self.gen_batch_size = gen_batch_size
        self.num_users = num_users
        self.quality_users = quality_users
        self.device_request = device
        self.max_steps = max_steps
        self.gen_quantize = gen_quantize
        self.gen_workers = gen_workers
        self._gen_model = None  # the (maybe int8) copy generation runs on
        self._vllm = None  # the vLLM engine, created on first use
        self._base_path: str | None = None
        self.model = None
        self.tokenizer = None
        self.device = "cpu"
        self.adapter_digest: str | None = None  # sha256 of the loaded/trained adapter weights
        self._adapter_folder: Path | None = None
        self._merged = False
        self._has_template = False

    # -- loading -------------------------------------------------------------------------
    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, **params: Any) -> HFLoraStudent:
        """A student around an already loaded model and tokenizer (tests, notebooks)."""
        student = cls(**params)
        student._attach(model, tokenizer)
        return student

    def load(self) -> HFLoraStudent:
        """Load the base model and tokenizer (once)."""
        if self.model is not None:
            return self
        torch = setup_torch()
        self._check_quantization()
        from slimkit.models import load_causal_lm

        kwargs: dict[str, Any] = {}
        if self.quantize_4bit:
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_quant_type="nf4"
            )
        model, tokenizer = load_causal_lm(self.model_name, **kwargs)
        self._attach(model, tokenizer)
        return self

    def _check_quantization(self) -> None:
        if not self.quantize_4bit:
            return
        torch = setup_torch()
        missing = []
        if not torch.cuda.is_available():
            missing.append("a CUDA GPU")
        if importlib.util.find_spec("bitsandbytes") is None:
            missing.append("the bitsandbytes package (pip install 'slimkit[qlora]')")
        if missing:
            raise SlimkitError(
                f"student.quantize_4bit (QLoRA) needs {' and '.join(missing)}.",
                hint="Set student.quantize_4bit=false to train LoRA on the full-precision model.",
            )

    def _attach(self, model: Any, tokenizer: Any) -> None:
        from slimkit.runtime import resolve_device

        self.device = resolve_device(self.device_request)
        if not self.quantize_4bit and str(getattr(model, "device", "cpu")) != self.device:
            model = model.to(self.device)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.model = model
        self.tokenizer = tokenizer
        self._has_template = bool(getattr(tokenizer, "chat_template", None))

    def _require_loaded(self) -> None:
        if self.model is None and self._vllm is None:
            self.load()

    # -- prompts -------------------------------------------------------------------------
    def prompt_text(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The prompt as the model reads it (the chat template when the tokenizer has one)."""
        self._require_loaded()
        if self._has_template:
            return self.tokenizer.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=True
            )
        return "\n\n".join(m["content"].strip() for m in messages) + "\n\n"

    def prompt_ids(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        """Token ids of the prompt; identical for training and generation."""
        text = self.prompt_text(messages)
        # A chat template writes its own special tokens; a plain prompt gets the BOS.
        return list(self.tokenizer(text, add_special_tokens=not self._has_template)["input_ids"])

    def target_ids(self, rationale: str) -> list[int]:
        """Token ids of a rationale followed by the end-of-sequence token."""
        ids = list(self.tokenizer(rationale.strip(), add_special_tokens=False)["input_ids"])
        return ids + [self.tokenizer.eos_token_id]

    def build_example(self, user_index: int, prompt: list[int], rationale: str) -> TrainingExample:
        """Prompt + rationale ids with labels masked to the rationale; cut to max_length."""
        target = self.target_ids(rationale)
        room = self.max_length - len(prompt)
        if room < 8:
            raise SlimkitError(
                f"student.max_length={self.max_length} is shorter than the prompt of user "
                f"index {user_index} ({len(prompt)} tokens) plus room for a rationale.",
                hint=f"Raise student.max_length (at least {len(prompt) + 64} for this prompt) "
                "or shorten prompts with prompt.max_items / prompt.max_item_chars.",
            )
        truncated = len(target) > room
        target = target[:room]
        return TrainingExample(
            user_index=user_index,
            input_ids=prompt + target,
            labels=[IGNORE_INDEX] * len(prompt) + target,
            truncated=truncated,
        )

    # -- LoRA ------------------------------------------------------------------------------
    def resolved_target_modules(self) -> list[str]:
        self._require_loaded()
        if self.target_modules:
            names = {n.rsplit(".", 1)[-1] for n, _ in self.model.named_modules()}
            unknown = [m for m in self.target_modules if m not in names]
            if unknown:
                linear = sorted(
                    {n.rsplit(".", 1)[-1] for n, m in self.model.named_modules()
                     if type(m).__name__ in ("Linear", "Conv1D")}
                )
                raise SlimkitError(
                    f"student.target_modules: {unknown} not found in {self.model_name}.",
                    hint=f"Linear modules of this model: {', '.join(linear)}.",
                )
            return list(self.target_modules)
        model_type = getattr(self.model.config, "model_type", "")
        return default_target_modules(model_type, [n for n, _ in self.model.named_modules()])

    def _wrap_lora(self) -> None:
        from peft import LoraConfig, get_peft_model

        if self.quantize_4bit:
            from peft import prepare_model_for_kbit_training

            self.model = prepare_model_for_kbit_training(self.model)
        config = LoraConfig(
            r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            target_modules=self.resolved_target_modules(),
            bias="none",
            task_type="CAUSAL_LM",
        )
        self.model = get_peft_model(self.model, config)

    def trainable_parameters(self) -> tuple[int, int]:
        total = sum(p.numel() for p in self.model.parameters())
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        return trainable, total

    # -- training --------------------------------------------------------------------------
    def _collate(self, batch: Sequence[TrainingExample]):
        torch = setup_torch()
        width = max(len(ex.input_ids) for ex in batch)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(batch), width), pad, dtype=torch.long)  # (B, T)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)  # (B, T)
        mask = torch.zeros((len(batch), width), dtype=torch.long)  # (B, T)
        for row, ex in enumerate(batch):
            n = len(ex.input_ids)
            ids[row, :n] = torch.tensor(ex.input_ids)
            labels[row, :n] = torch.tensor(ex.labels)
            mask[row, :n] = 1
        return ids.to(self.device), mask.to(self.device), labels.to(self.device)

    def _batch_loss(self, batch: Sequence[TrainingExample]):
        """(sum of token NLLs, number of target tokens) for one batch.

        Logits are computed only from the first rationale position of the batch on: the
        prompt's logits would be masked anyway and cost a vocabulary-sized matmul each.
        """
        torch = setup_torch()
        ids, mask, labels = self._collate(batch)  # (B, T) each
        width = ids.shape[1]
        first_target = min(
            next(i for i, label in enumerate(ex.labels) if label != IGNORE_INDEX) for ex in batch
        )
        keep = width - first_target + 1  # positions first_target-1 .. T-1
        try:
            logits = self.model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits
        except TypeError:  # a model without logits_to_keep
            logits = self.model(input_ids=ids, attention_mask=mask).logits[:, -keep:, :]
        shift_logits = logits[:, :-1, :].float()  # (B, keep-1, V): position p predicts p+1
        shift_labels = labels[:, width - keep + 1 :]  # (B, keep-1)
        nll = torch.nn.functional.cross_entropy(
            shift_logits.reshape(-1, shift_logits.shape[-1]),
            shift_labels.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction="sum",
        )
        return nll, int((shift_labels != IGNORE_INDEX).sum())

    def evaluate_loss(self, examples: Sequence[TrainingExample]) -> float | None:
        """Mean NLL per rationale token over ``examples`` (None when empty)."""
        if not examples:
            return None
        torch = setup_torch()
        was_training = self.model.training
        self.model.eval()
        total, count = 0.0, 0
        try:
            with torch.no_grad():
                for start in range(0, len(examples), self.batch_size):
                    nll, n = self._batch_loss(examples[start : start + self.batch_size])
                    total += float(nll)
                    count += n
        except RuntimeError as exc:
            if is_out_of_memory(exc):
                raise out_of_memory_error(exc, batch_size=self.batch_size, max_length=self.max_length,
                                          grad_accum=self.grad_accum, during="validation") from exc
            raise
        finally:
            self.model.train(was_training)
        return total / max(count, 1)

    def train(
        self,
        train: Sequence[TrainingExample],
        valid: Sequence[TrainingExample] = (),
        *,
        progress: bool = True,
        on_step: Callable[[int, float], None] | None = None,
    ) -> dict[str, Any]:
        """Fine-tune a fresh LoRA adapter on ``train``; returns losses and timings.

        The loss is the mean NLL of rationale tokens (prompt tokens are masked); with
        ``grad_accum`` > 1 gradients of that many batches are summed before each step.
        """
        if not train:
            raise SlimkitError("No training examples: the teacher wrote no usable rationale.")
        torch = setup_torch()
        self._require_loaded()
        torch.manual_seed(self.seed)
        if self._merged or self._is_peft():
            raise RuntimeError("train() needs the base model without an adapter")
        self._wrap_lora()
        self._gen_model = None
        model = self.model
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=0.0)
        micro_per_epoch = math.ceil(len(train) / self.batch_size)
        steps_per_epoch = math.ceil(micro_per_epoch / self.grad_accum)
        total_steps = steps_per_epoch * self.epochs
        if self.max_steps is not None:
            total_steps = min(total_steps, self.max_steps)
        warmup = round(self.warmup_ratio * total_steps)

        def schedule(step: int) -> float:  # linear warm-up, then linear decay to 0
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        valid_before = self.evaluate_loss(valid)
        order_rng = random.Random(self.seed)
        losses: list[float] = []
        valid_losses: list[float] = []
        step = 0
        started = time.perf_counter()
        bar = _training_progress(progress)
        with bar:
            task = bar.add_task("LoRA fine-tuning", total=total_steps, loss=float("nan"), sps=0.0)
            for _epoch in range(self.epochs):
                order = list(range(len(train)))
                order_rng.shuffle(order)
                batches = [
                    [train[i] for i in order[s : s + self.batch_size]]
                    for s in range(0, len(order), self.batch_size)
                ]
                for first in range(0, len(batches), self.grad_accum):
                    if step >= total_steps:
                        break
                    group = batches[first : first + self.grad_accum]
                    tokens = sum(ex.num_target_tokens for b in group for ex in b)
                    step_loss = 0.0
                    try:
                        for batch in group:
                            nll, _n = self._batch_loss(batch)
                            # Mean over every target token of the whole accumulated step.
                            (nll / max(tokens, 1)).backward()
                            step_loss += float(nll.detach()) / max(tokens, 1)
                        torch.nn.utils.clip_grad_norm_(params, 1.0)
                        optimizer.step()
                        scheduler.step()
                        optimizer.zero_grad(set_to_none=True)
                    except RuntimeError as exc:
                        if is_out_of_memory(exc):
                            raise out_of_memory_error(
                                exc, batch_size=self.batch_size, max_length=self.max_length,
                                grad_accum=self.grad_accum, during="LoRA training",
                            ) from exc
                        raise
                    step += 1
                    losses.append(step_loss)
                    elapsed = time.perf_counter() - started
                    bar.update(task, advance=1, loss=step_loss, sps=elapsed / step)
                    if on_step is not None:
                        on_step(step, step_loss)
                valid_loss = self.evaluate_loss(valid)
                if valid_loss is not None:
                    valid_losses.append(valid_loss)
        model.eval()
        seconds = time.perf_counter() - started
        trainable, total = self.trainable_parameters()
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
            "trainable_parameters": trainable,
            "total_parameters": total,
            "target_modules": self.resolved_target_modules_of_peft(),
        }

    def _is_peft(self) -> bool:
        return hasattr(self.model, "peft_config")

    def resolved_target_modules_of_peft(self) -> list[str]:
        config = self.model.peft_config["default"]
        return sorted(config.target_modules)

    # -- adapters ----------------------------------------------------------------------------
    def save_adapter(self, folder: str | Path, spec: Mapping[str, Any] | None = None) -> str:
        """Save the LoRA adapter (safetensors), the tokenizer and the resolved spec; returns its digest."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(folder), safe_serialization=True)
        self.tokenizer.save_pretrained(str(folder))
        from slimkit._version import __version__

        meta = {"slimkit_version": __version__, "base_model": self.model_name, "spec": dict(spec or {})}
        (folder / SPEC_FILE).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
        self.adapter_digest = file_digest(folder / ADAPTER_WEIGHTS)
        self._adapter_folder = folder
        return self.adapter_digest

    @staticmethod
    def check_adapter_folder(folder: str | Path, field: str = "student.adapter") -> Path:
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise SlimkitError(
                f"{field}: adapter folder not found: {path}",
                hint="Point it at the adapter/ folder of a finished distill stage "
                "(`slimkit cache info` shows where stages live).",
            )
        for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
            if not (path / name).is_file():
                raise SlimkitError(
                    f"{field}: {path} has no {name}; it is not a peft LoRA adapter folder.",
                    hint="Use the adapter/ folder that `slimkit distill` wrote.",
                )
        return path

    def load_adapter(self, folder: str | Path) -> str:
        """Put a saved LoRA adapter on the base model; returns the adapter's digest."""
        path = self.check_adapter_folder(folder)
        self._require_loaded()
        from peft import PeftModel

        try:
            self.model = PeftModel.from_pretrained(self.model, str(path))
            self._gen_model = None
        except (RuntimeError, ValueError, KeyError) as exc:
            raise SlimkitError(
                f"student.adapter: {path} does not fit the base model {self.model_name} ({exc}).",
                hint="An adapter only loads on the base model it was trained on; set "
                "student.model to that model.",
            ) from exc
        self.model.eval()
        self.adapter_digest = file_digest(path / ADAPTER_WEIGHTS)
        self._adapter_folder = path
        return self.adapter_digest

    def identity(self, adapter: bool = True) -> dict[str, Any]:
        """What a generated rationale depends on besides the prompt: base model and adapter."""
        return {"model": self.model_name, "adapter": (self.adapter_digest if adapter else None) or "base"}

    @property
    def base_after_adapter(self) -> bool:
        """Whether the base model stays available once the adapter is on (vLLM: the adapter
        is a per-request option), so base rationales can be generated after training."""
        return self.backend == "vllm"

    def generation_params(self) -> dict[str, Any]:
        return {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": False,
            "quantize": self.resolved_gen_quantize(),
        }

    def resolved_gen_quantize(self) -> str:
        """What generation runs in: ``bf16``, ``int8`` or ``none`` (see
        :func:`slimkit.models.resolve_precision`); always ``none`` for vLLM and QLoRA."""
        if self.backend != "transformers" or self.quantize_4bit:
            return "none"
        from slimkit.models import resolve_precision

        return resolve_precision(self.gen_quantize, self.device, "student.gen_quantize")

    def resolved_gen_workers(self) -> int:
        """Batches decoded at once: ``gen_workers``, or on CPU one per core torch's own
        threads leave free (2 on a 2-core machine with one torch thread), 1 on a GPU."""
        if self.gen_workers is not None:
            return self.gen_workers
        if self.device != "cpu":
            return 1
        from slimkit.runtime import decoding_workers

        return decoding_workers()

    def _generation_model(self):
        """The model generation runs on: a bf16 copy with a float32 output head or an int8
        copy on CPU when asked (or by ``auto``), else the model itself."""
        if self._gen_model is None:
            from slimkit.models import generation_copy

            self._gen_model = generation_copy(self.model, self.resolved_gen_quantize())
        return self._gen_model

    # -- generation --------------------------------------------------------------------------
    def prepare_for_generation(self) -> None:
        """Merge the LoRA weights into the base (faster decoding; the adapter is saved already)."""
        if self.model is None:
            return
        if self._is_peft() and not self.quantize_4bit and self.backend == "transformers":
            self.model = self.model.merge_and_unload()
            self._merged = True
        self.model.eval()
        self._gen_model = None

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        on_done: Callable[[int, str, int], None] | None = None,
        progress: bool = True,
        description: str = "Generating",
        adapter: bool = True,
    ) -> dict[str, Any]:
        """Greedy rationales for token-id prompts; ``on_done(i, text, new_tokens)`` per prompt.

        ``adapter=False`` asks for the base model: with transformers only before an
        adapter was put on, with vLLM at any time.
        """
        self._require_loaded()
        if self.backend == "vllm":
            from slimkit.students.generation import VLLMGenerator

            if self._vllm is None:
                base = self.base_model_path()
                self._release_model()  # the GPU memory goes to vLLM
                self._vllm = VLLMGenerator(base, lora_rank=self.lora_r)
            return self._vllm.generate(
                prompts,
                adapter=str(self._adapter_folder) if (adapter and self._adapter_folder) else None,
                max_new_tokens=self.max_new_tokens,
                chunk_size=max(self.gen_batch_size, 256),
                on_done=on_done,
                progress=progress,
                description=description,
            )
        if not adapter and (self._is_peft() or self._merged):
            raise RuntimeError("the transformers backend generates base rationales before training")
        from slimkit.students.generation import generate_transformers

        try:
            return generate_transformers(
                self._generation_model(),
                self.tokenizer,
                prompts,
                max_new_tokens=self.max_new_tokens,
                batch_size=self.gen_batch_size,
                workers=self.resolved_gen_workers(),
                on_done=on_done,
                progress=progress,
                description=description,
            )
        except RuntimeError as exc:
            if is_out_of_memory(exc):
                raise SlimkitError(
                    f"Out of memory while generating with student.gen_batch_size="
                    f"{self.gen_batch_size} ({exc}).",
                    hint=f"Lower it: --set student.gen_batch_size={max(1, self.gen_batch_size // 2)}"
                    " (or student.max_new_tokens, prompt.max_items).",
                ) from exc
            raise

    def _release_model(self) -> None:
        """Drop the transformers model (and its GPU memory) once it is no longer needed."""
        self._base_path = self.base_model_path()
        self.model = None
        self._gen_model = None
        if self.device == "cuda":
            setup_torch().cuda.empty_cache()

    def base_model_path(self) -> str:
        """The base model as vLLM loads it: a local Hugging Face folder or a hub id."""
        if getattr(self, "_base_path", None):
            return self._base_path
        model = self.model.get_base_model() if self._is_peft() else self.model
        path = getattr(model, "name_or_path", None) or getattr(model.config, "_name_or_path", None)
        if not path or (str(path).endswith(".gguf")):
            raise SlimkitError(
                f"student.backend=vllm needs the base model as a Hugging Face folder or hub "
                f"id; {self.model_name} resolved to {path!r}.",
                hint="Set student.model to a model folder or hub id.",
            )
        return str(path)


def _training_progress(enabled: bool):
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"),
        TextColumn("{task.fields[sps]:.1f} s/step"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    )

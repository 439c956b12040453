"""``HFLoraStudent``: a Hugging Face causal LM that learns the teacher's rationales with LoRA.

It implements :class:`slimkit.students.protocol.Student`, the methods the distill stage
calls. Prompts are built the same way for training and generation (:meth:`prompt_ids`),
so what the student reads at inference is what it was trained on. The jobs live next
door: :mod:`.targets` (which modules LoRA adapts), :mod:`.examples` (masked training
examples), :mod:`.training` (the fit loop), :mod:`.adapters` (adapter folders);
generation is :func:`slimkit.llm.generate.generate` or :mod:`slimkit.llm.vllm`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from slimkit.errors import SlimkitError
from slimkit.runtime import setup_torch
from slimkit.students.hf_lora import adapters
from slimkit.students.hf_lora.examples import TrainingExample, build_example
from slimkit.students.hf_lora.lengths import AUTO, plan_lengths, raise_problems
from slimkit.students.hf_lora.targets import resolve_target_modules
from slimkit.students.hf_lora.training import TrainSettings, is_out_of_memory, train_lora


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
        precision: str = "auto",
        epochs: int = 1,
        lr: float = 2e-4,
        warmup_ratio: float = 0.05,
        batch_size: int = 4,
        grad_accum: int = 1,
        max_length: int | str = "auto",
        valid_share: float = 0.1,
        seed: int = 0,
        backend: str = "transformers",
        max_new_tokens: int | str = "auto",
        gen_batch_size: int = 16,
        num_users: int | None = None,
        quality_users: int = 32,
        device: str = "auto",
        max_steps: int | None = None,
        gen_workers: int | None = None,
        repetition_penalty: float | None = None,
        no_repeat_ngram_size: int | None = None,
        constrain_items: bool = False,
        constrain_max_items: int = 3,
        constrain_candidates: int | None = None,
        scaffold_steps: bool = False,
        **extra: Any,
    ):
        if extra:
            raise SlimkitError(f"student: unknown hf-lora parameters {sorted(extra)}")
        if backend == "vllm" and (constrain_items or repetition_penalty or no_repeat_ngram_size
                                  or scaffold_steps):
            raise SlimkitError(
                "student.constrain_items, repetition_penalty, no_repeat_ngram_size and "
                "scaffold_steps apply to the transformers backend, not vllm (they are logits "
                "processors with per-row state, which vLLM does not run).",
                hint="Use student.backend=transformers, or leave these settings empty.",
            )
        if backend == "vllm":
            from slimkit.llm.vllm import require_vllm, vllm_lora_rank

            require_vllm()  # before any data or model is loaded
            vllm_lora_rank(lora_r)  # a rank vLLM can serve
        self.model_name = model
        self.adapter_path = adapter
        self.lora_r = lora_r
        self.lora_alpha = lora_alpha
        self.lora_dropout = lora_dropout
        self.target_modules = list(target_modules) if target_modules else None
        self.precision = precision
        self.settings = TrainSettings(epochs=epochs, lr=lr, warmup_ratio=warmup_ratio,
                                      batch_size=batch_size, grad_accum=grad_accum,
                                      max_length=max_length, seed=seed, max_steps=max_steps)
        self.valid_share = valid_share
        self.seed = seed
        self.backend = backend
        self.max_new_tokens = max_new_tokens
        self.gen_batch_size = gen_batch_size
        self.num_users = num_users
        self.quality_users = quality_users
        self.device_request = device
        self.gen_workers = gen_workers
        self.repetition_penalty = repetition_penalty
        self.no_repeat_ngram_size = no_repeat_ngram_size
        self.constrain_items = constrain_items
        self.constrain_max_items = constrain_max_items
        self.constrain_candidates = constrain_candidates
        self._title_trie = None  # (titles, TitleTrie), built on the first constrained run
        self.scaffold_steps = scaffold_steps
        self._scaffold = None  # the StepScaffold, built with the tokenizer
        self._gen_model = None  # the (maybe bf16 or int8) copy generation runs on
        self._vllm = None  # the vLLM engine, created on first use
        self._base_path: str | None = None
        self.model = None
        self.tokenizer = None
        self.context_window: int | None = None  # the model's, once its tokenizer is loaded
        self.lengths: dict[str, Any] | None = None  # what fit_lengths measured
        self.device = "cpu"
        self.adapter_digest: str | None = None  # sha256 of the loaded/trained adapter weights
        self._adapter_folder: Path | None = None
        self._merged = False
        self._has_template = False

    @property
    def qlora(self) -> bool:
        """Whether the base is loaded in 4 bit (``precision: 4bit``)."""
        return self.precision == "4bit"

    # -- loading -------------------------------------------------------------------------
    def load(self) -> HFLoraStudent:
        """Load the base model and tokenizer (once)."""
        if self.model is not None:
            return self
        from slimkit.llm.loading import load_causal_lm
        from slimkit.llm.precision import check_4bit, load_options
        from slimkit.runtime import resolve_device

        setup_torch()
        if self.qlora:
            check_4bit("student.precision")
        self.device = resolve_device(self.device_request)
        model, tokenizer = load_causal_lm(self.model_name, device=self.device,
                                          **load_options(self.precision))
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.model = model
        self.tokenizer = tokenizer
        self._has_template = bool(getattr(tokenizer, "chat_template", None))
        if self.context_window is None:
            context = getattr(model.config, "max_position_embeddings", None)
            self.context_window = context if isinstance(context, int) and context > 0 else None
        return self

    def check_environment(self) -> None:
        """Raise (SlimkitError) what loading would on this machine, before any stage runs:
        4-bit needs CUDA and bitsandbytes (vLLM is checked when the student is built)."""
        if self.qlora:
            from slimkit.llm.precision import check_4bit

            check_4bit("student.precision")

    def load_tokenizer(self, *, fetch: bool = True) -> bool:
        """Load the tokenizer alone (no weights), enough for prompts and lengths; False
        when ``fetch`` is false and the model is not on this machine yet."""
        if self.tokenizer is not None:
            return True
        from slimkit.llm.loading import load_tokenizer

        found = load_tokenizer(self.model_name, fetch=fetch)
        if found is None:
            return False
        self.tokenizer, self.context_window = found
        self._has_template = bool(getattr(self.tokenizer, "chat_template", None))
        return True

    def _require_loaded(self) -> None:
        if self.model is None and self._vllm is None:
            self.load()

    def _require_tokenizer(self) -> None:
        if self.tokenizer is None:
            self.load_tokenizer()

    # -- prompts -------------------------------------------------------------------------
    def prompt_text(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The prompt as the model reads it (the chat template when the tokenizer has one)."""
        from slimkit.llm.generate import chat_prompt

        self._require_tokenizer()
        return chat_prompt(self.tokenizer, messages, strip=True)

    def prompt_ids(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        """Token ids of the prompt; identical for training and generation."""
        text = self.prompt_text(messages)
        # A chat template writes its own special tokens; a plain prompt gets the BOS.
        return list(self.tokenizer(text, add_special_tokens=not self._has_template)["input_ids"])

    def target_ids(self, rationale: str) -> list[int]:
        """Token ids of a rationale followed by the end-of-sequence token."""
        self._require_tokenizer()
        ids = list(self.tokenizer(rationale.strip(), add_special_tokens=False)["input_ids"])
        return ids + [self.tokenizer.eos_token_id]

    def build_example(self, user_index: int, prompt: list[int], rationale: str) -> TrainingExample:
        """Prompt + rationale ids with labels masked to the rationale; cut to max_length."""
        if self.settings.max_length == AUTO:
            raise RuntimeError("student.max_length is auto: call fit_lengths() before build_example()")
        return build_example(user_index, prompt, self.target_ids(rationale), self.settings.max_length)

    def fit_lengths(self, prompts: Mapping[Any, Sequence[Mapping[str, str]]],
                    rationales: Sequence[str] | None, *, fetch: bool = True,
                    user_name: Callable[[Any], str] = str) -> dict[str, Any]:
        """Measure the training prompts (user -> messages) and the teacher's ``rationales``
        (None: not written yet) in this student's tokens, resolve ``auto`` lengths from them
        and check set ones (see :mod:`slimkit.students.hf_lora.lengths`); a
        :class:`SlimkitError` when they cannot fit. Loads the tokenizer only. Returns the
        plan (``checked: False`` when the model is not on this machine and ``fetch`` is off)."""
        if not self.load_tokenizer(fetch=fetch):
            return {"checked": False, "reason": f"the student model {self.model_name} is not on "
                    "this machine yet (it is checked when the distill stage loads it)"}
        plan = plan_lengths(
            max_length=self.settings.max_length, max_new_tokens=self.max_new_tokens,
            prompt_tokens={user: len(self.prompt_ids(m)) for user, m in prompts.items()},
            rationale_tokens=None if rationales is None else [len(self.target_ids(r)) for r in rationales],
            context=self.context_window, user_name=user_name)
        raise_problems(plan)
        if plan.max_length != AUTO:
            self.settings = dataclasses.replace(self.settings, max_length=int(plan.max_length))
        if plan.max_new_tokens != AUTO:
            self.max_new_tokens = int(plan.max_new_tokens)
        self.lengths = {"checked": True, **plan.to_dict()}
        if self.scaffold_steps:
            self.scaffold_per_step()  # too few new tokens for the headers: refused now
            warning = self._scaffold_mismatch(rationales)
            if warning:
                self.lengths["warnings"] = [*self.lengths.get("warnings", []), warning]
        return self.lengths

    # -- the step scaffold ---------------------------------------------------------------
    def _step_scaffold(self):
        """The :class:`~slimkit.llm.scaffold.StepScaffold` of this tokenizer (built once)."""
        if self._scaffold is None:
            from slimkit.llm.scaffold import StepScaffold

            self._require_tokenizer()
            self._scaffold = StepScaffold(self.tokenizer, len(self.tokenizer))
        return self._scaffold

    def scaffold_per_step(self) -> int:
        """Free tokens each step may take under ``scaffold_steps``: an equal share of
        ``max_new_tokens`` once the forced headers are counted, so step 3 is always
        reached; a :class:`SlimkitError` when that share is too small to say anything."""
        from slimkit.llm.scaffold import MIN_STEP_TOKENS

        self._require_lengths()
        scaffold = self._step_scaffold()
        per_step = scaffold.per_step_within(int(self.max_new_tokens))
        if per_step < MIN_STEP_TOKENS:
            need = scaffold.forced_tokens + 3 * MIN_STEP_TOKENS
            raise SlimkitError(
                f"student.max_new_tokens={self.max_new_tokens} is too small for "
                f"student.scaffold_steps: the forced step headers take {scaffold.forced_tokens} "
                f"tokens, leaving {max(per_step, 0)} per step.",
                hint=f"Set student.max_new_tokens to {need} or more (or 'auto'), or turn "
                "student.scaffold_steps off.",
            )
        return per_step

    @staticmethod
    def _scaffold_mismatch(rationales: Sequence[str] | None) -> str | None:
        """A warning when the teacher's rationales (the training targets) do not carry the
        scaffold's headers: the scaffold would force headers the student never learned."""
        from slimkit.llm.scaffold import SCAFFOLD

        if not rationales:
            return None
        headers = [h.strip() for h in SCAFFOLD]
        carried = sum(all(h in r for h in headers) for r in rationales)
        if carried >= len(rationales) / 2:
            return None
        return (f"student.scaffold_steps forces the headers {headers}, but only {carried} of the "
                f"{len(rationales)} teacher rationales the student learns from carry them (the "
                "local teacher writes them with teacher.scaffold_steps on); the student will be "
                "made to write headers it did not learn. Turn student.scaffold_steps off for "
                "this teacher.")

    def _scaffold_prompts(self, prompts: Sequence[Sequence[int]]) -> tuple[list[list[int]], int]:
        """(the prompts with step 1's header appended, the header's tokens). Appended as
        tokens, so prompt + header reads exactly like the start of a training example,
        where the header opens the target; the header is part of the answer for the
        answer-only repetition rules, as when the student writes it itself."""
        from slimkit.llm.scaffold import SCAFFOLD

        header = list(self.tokenizer(SCAFFOLD[0], add_special_tokens=False)["input_ids"])
        return [list(p) + header for p in prompts], len(header)

    def _require_lengths(self) -> None:
        if self.max_new_tokens == AUTO:
            raise RuntimeError("student.max_new_tokens is auto: call fit_lengths() before generating")

    # -- training ------------------------------------------------------------------------
    def _is_peft(self) -> bool:
        return hasattr(self.model, "peft_config")

    def _wrap_lora(self) -> None:
        from peft import LoraConfig, get_peft_model

        if self.qlora:
            from peft import prepare_model_for_kbit_training

            self.model = prepare_model_for_kbit_training(self.model)
        config = LoraConfig(
            r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            target_modules=resolve_target_modules(self.model, self.target_modules, self.model_name),
            bias="none",
            task_type="CAUSAL_LM",
        )
        self.model = get_peft_model(self.model, config)

    def train(
        self,
        train: Sequence[TrainingExample],
        valid: Sequence[TrainingExample] = (),
        *,
        progress: bool = True,
        on_step: Callable[[int, float], None] | None = None,
    ) -> dict[str, Any]:
        """Fine-tune a fresh LoRA adapter on ``train``; returns losses and timings
        (see :mod:`slimkit.students.hf_lora.training`)."""
        if not train:
            raise SlimkitError("No training examples: the teacher wrote no usable rationale.")
        torch = setup_torch()
        self._require_loaded()
        torch.manual_seed(self.seed)  # before the LoRA weights are drawn
        if self._merged or self._is_peft():
            raise RuntimeError("train() needs the base model without an adapter")
        self._wrap_lora()
        self._gen_model = None
        result = train_lora(self.model, train, valid, self.settings, pad_id=self.tokenizer.pad_token_id,
                            device=self.device, progress=progress, on_step=on_step)
        params = list(self.model.parameters())
        result["trainable_parameters"] = sum(p.numel() for p in params if p.requires_grad)
        result["total_parameters"] = sum(p.numel() for p in params)
        result["target_modules"] = sorted(self.model.peft_config["default"].target_modules)
        return result

    # -- adapters ------------------------------------------------------------------------
    def save_adapter(self, folder: str | Path, spec: Mapping[str, Any] | None = None) -> str:
        """Save the LoRA adapter (safetensors), the tokenizer and the resolved spec; returns its digest."""
        folder = Path(folder)
        self.adapter_digest = adapters.save_adapter(self.model, self.tokenizer, folder,
                                                    self.model_name, spec)
        self._adapter_folder = folder
        return self.adapter_digest

    check_adapter_folder = staticmethod(adapters.check_adapter_folder)

    def load_adapter(self, folder: str | Path) -> str:
        """Put a saved LoRA adapter on the base model; returns the adapter's digest."""
        path = adapters.check_adapter_folder(folder)
        self._require_loaded()
        self.model, self.adapter_digest = adapters.load_adapter(self.model, path, self.model_name)
        self._gen_model = None
        self._adapter_folder = path
        return self.adapter_digest

    def identity(self, adapter: bool = True) -> dict[str, Any]:
        """What a generated rationale depends on besides the prompt: base model and adapter."""
        return {"model": self.model_name, "adapter": (self.adapter_digest if adapter else None) or "base"}

    # -- generation ----------------------------------------------------------------------
    @property
    def base_after_adapter(self) -> bool:
        """Whether the base model stays available once the adapter is on (vLLM: the adapter
        is a per-request option), so base rationales can be generated after training."""
        return self.backend == "vllm"

    def generation_params(self) -> dict[str, Any]:
        """What a generated rationale depends on besides prompt and model (part of its cache key)."""
        # "quantize" names the precision here since before the setting was renamed, so
        # rationales cached by earlier versions stay valid.
        self._require_lengths()
        params = {"max_new_tokens": self.max_new_tokens, "do_sample": False,
                  "quantize": self.resolved_precision()}
        # Only when set, so rationales cached before these settings existed stay valid.
        if self.repetition_penalty is not None:  # over the answer, step markers spared
            params["answer_repetition_penalty"] = self.repetition_penalty
        from slimkit.llm.constraints import answer_rule_params

        params.update(answer_rule_params(
            no_repeat_ngram_size=self.no_repeat_ngram_size, constrain_items=self.constrain_items,
            constrain_max_items=self.constrain_max_items,
            constrain_candidates=self.constrain_candidates))
        if self.scaffold_steps:  # a scaffolded rationale is another answer
            params["scaffold_steps"] = True
        return params

    def resolved_precision(self) -> str:
        """What generation runs in: ``bf16``, ``int8``, ``4bit`` or ``none`` (see
        :func:`slimkit.llm.precision.resolve_precision`); ``none`` on vLLM."""
        if self.backend != "transformers":
            return "none"
        from slimkit.llm.precision import resolve_precision

        return resolve_precision(self.precision, self.device, "student.precision")

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
        """The model generation runs on, in the resolved precision (built once)."""
        if self._gen_model is None:
            from slimkit.llm.precision import generation_copy

            self._gen_model = generation_copy(self.model, self.resolved_precision())
        return self._gen_model

    def prepare_for_generation(self) -> None:
        """Merge the LoRA weights into the base (faster decoding; the adapter is saved already)."""
        if self.model is None:
            return
        if self._is_peft() and not self.qlora and self.backend == "transformers":
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
        item_constraint: Any = None,
    ) -> dict[str, Any]:
        """Greedy rationales for token-id prompts; ``on_done(i, text, new_tokens)`` per prompt.

        ``adapter=False`` asks for the base model: with transformers only before an
        adapter was put on, with vLLM at any time. ``item_constraint``
        (:class:`slimkit.llm.constraints.ItemConstraint`, one banned set per prompt)
        restricts step 3 to unseen catalogue titles (``constrain_items``). With
        ``scaffold_steps`` the prompts get step 1's header, the scaffold forces the others
        (:mod:`slimkit.llm.scaffold`) and every text starts with step 1's header.
        """
        self._require_loaded()
        self._require_lengths()
        if self.backend == "vllm":
            return self._generate_vllm(prompts, on_done=on_done, progress=progress,
                                       description=description, adapter=adapter)
        if not adapter and (self._is_peft() or self._merged):
            raise RuntimeError("the transformers backend generates base rationales before training")
        from slimkit.llm.generate import generate, step_marker_tokens

        header, processor, marker, prefix = "", None, None, 0
        if self.scaffold_steps:
            from slimkit.llm.scaffold import MIN_STEP_SHARE, SCAFFOLD

            per_step = self.scaffold_per_step()
            # a constrained step 3 is ended by the constraint (within the budget), never
            # cut mid-title; a free one gets the same share as the others
            last_step = int(self.max_new_tokens) if item_constraint is not None else None
            scaffold = self._step_scaffold()

            def processor(rows: int, width: int):
                return scaffold.processor(rows, width, per_step, last_step,
                                          min_step=int(per_step * MIN_STEP_SHARE))

            prompts, prefix = self._scaffold_prompts(prompts)
            header, marker = SCAFFOLD[0], SCAFFOLD[2].strip()

        def report(done) -> None:
            if on_done is not None:
                on_done(done.index, (header + done.text).strip(), done.new_tokens)

        try:
            return generate(
                self._generation_model(),
                self.tokenizer,
                prompts,
                max_new_tokens=self.max_new_tokens,
                batch_size=self.gen_batch_size,
                workers=self.resolved_gen_workers(),
                order="length",
                answer_repetition_penalty=self.repetition_penalty,
                answer_no_repeat_ngram_size=self.no_repeat_ngram_size,
                repetition_exempt=(step_marker_tokens(self.tokenizer)
                                   if self.repetition_penalty or self.no_repeat_ngram_size else ()),
                answer_prefix=prefix,
                logits_processor=processor,
                constraint=self._constraint(item_constraint, marker),
                on_done=report,
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

    def _constraint(self, item_constraint: Any, marker: str | None = None):
        """The per-batch processor factory of an item constraint (the trie built once);
        ``marker``: where step 3 starts, when not the constraint's own (the scaffold's
        step-3 header, whose words after "Step 3:" are forced, not titles)."""
        if item_constraint is None:
            return None
        from slimkit.llm.constraints import TitleTrie, constraint_factory

        titles = list(item_constraint.titles)
        if self._title_trie is None or self._title_trie[0] != titles:
            self._title_trie = (titles, TitleTrie(self.tokenizer, titles))
        if marker is not None:
            item_constraint = dataclasses.replace(item_constraint, marker=marker)
        return constraint_factory(self._title_trie[1], dataclasses.replace(
            item_constraint, max_items=self.constrain_max_items, max_new_tokens=self.max_new_tokens))

    # -- vLLM ----------------------------------------------------------------------------
    def _generate_vllm(self, prompts, *, on_done, progress, description, adapter) -> dict[str, Any]:
        from slimkit.llm.vllm import VLLMGenerator, adapter_rank

        if adapter and self._adapter_folder is None:
            # Never the base model under the fine-tuned student's name (and cache keys).
            raise RuntimeError("vLLM generation with the adapter needs it saved or loaded first "
                               "(save_adapter / load_adapter)")
        if self._vllm is None:
            base = self.base_model_path()
            rank = (adapter_rank(self._adapter_folder) if self._adapter_folder else None) or self.lora_r
            self._release_model()  # the GPU memory goes to vLLM
            self._vllm = VLLMGenerator(base, lora_rank=rank)
        return self._vllm.generate(
            prompts,
            adapter=str(self._adapter_folder) if adapter else None,
            max_new_tokens=self.max_new_tokens,
            chunk_size=max(self.gen_batch_size, 256),
            on_done=on_done,
            progress=progress,
            description=description,
        )

    def _release_model(self) -> None:
        """Drop the transformers model (and its GPU memory) once it is no longer needed."""
        self._base_path = self.base_model_path()
        self.model = None
        self._gen_model = None
        if self.device == "cuda":
            setup_torch().cuda.empty_cache()

    def base_model_path(self) -> str:
        """The base model as vLLM loads it: a local Hugging Face folder or a hub id."""
        if self._base_path:
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

"""Built-in students (light descriptors; implementations import on use)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from slimkit.components import Component
from slimkit.spec import StudentParams
from slimkit.spec.sections import auto_or_int


class HFLoraStudentParams(StudentParams):
    model: str = Field(
        "smollm2-135m-instruct",
        description="smollm2-135m-instruct (fetched from PyPI), a local model folder, a hub "
        "id, or a .gguf file.",
    )
    adapter: Optional[str] = Field(
        None, description="Use an existing LoRA adapter folder and skip training."
    )
    lora_r: int = Field(8, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(16, ge=1, description="LoRA alpha.")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout.")
    target_modules: Optional[list[str]] = Field(
        None, description="Modules to adapt; empty: a default per architecture (q/v projections)."
    )
    precision: Literal["auto", "none", "bf16", "int8", "4bit"] = Field(
        "auto",
        description="Weights for training and generation. Training: 4bit is QLoRA (the base "
        "loaded in 4 bit, NF4; CUDA + bitsandbytes), every other value trains the model in "
        "its own precision. Generation: auto (bf16 on a CPU with native bfloat16, i.e. "
        "AVX512-BF16 or AMX, else none), none (the model's own precision), bf16 (bfloat16 "
        "body, float32 output head: measured 2.3x float32 on one core with the same "
        "three-step share, 0.77 vs 0.78), int8 (dynamic quantisation, CPU: fast but measured "
        "to erase much of what LoRA taught, 3-step share 0.2), 4bit (the 4-bit model). "
        "Same values and meaning as teacher.precision.",
    )
    epochs: int = Field(1, ge=1, description="Training epochs over the teacher's rationales.")
    lr: float = Field(2e-4, gt=0, description="Learning rate.")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps spent warming up.")
    batch_size: int = Field(4, ge=1, description="Sequences per step.")
    grad_accum: int = Field(1, ge=1, description="Gradient accumulation steps.")
    max_length: auto_or_int(16) = Field(  # type: ignore[valid-type]
        "auto",
        description="Maximum tokens of prompt plus rationale in a training example. auto: the "
        "longest training prompt plus the teacher's 95th-percentile rationale, both counted "
        "with the student's tokenizer, rounded up to a multiple of 8 (so no prompt and at "
        "most 5% of the rationales are cut), capped at the model's context window. A number "
        "is obeyed, but one that cannot hold the longest prompt plus the teacher's median "
        "rationale is refused, with the numbers (by `slimkit config validate` and `slimkit "
        "status`, by `slimkit run` before the teacher runs, and by distill before the model "
        "loads); one that cuts more than 5% of the rationales is warned about.",
    )
    valid_share: float = Field(0.1, ge=0, lt=1, description="Teacher users held out for validation.")
    seed: int = Field(0, description="Seed of training and the held-out split.")
    backend: Literal["transformers", "vllm"] = Field(
        "transformers", description="Generation engine: transformers (CPU/GPU) or vllm (GPU)."
    )
    max_new_tokens: auto_or_int(1) = Field(  # type: ignore[valid-type]
        "auto",
        description="Maximum new tokens per generated rationale. auto: the teacher's "
        "95th-percentile rationale length in the student's tokens, rounded up to a multiple "
        "of 8, measured when the distill stage starts (the resolved value is in its "
        "summary, `student_lengths`). A number below it is obeyed with a warning.",
    )
    repetition_penalty: Optional[float] = Field(
        None, gt=0, description="Penalty on tokens already in the rationale (as transformers' "
        "repetition_penalty, but the prompt's tokens are not penalised: the prompt names the "
        "steps); e.g. 1.3 against a student that says one sentence three times; empty: none. "
        "Transformers backend."
    )
    no_repeat_ngram_size: Optional[int] = Field(
        None, ge=1, description="No token n-gram of this size twice in one rationale (the "
        "prompt not counted; e.g. 4; empty: allowed). Transformers backend."
    )
    constrain_items: bool = Field(
        False, description="Step 3 may name only catalogue titles the user has not seen: after "
        "'Step 3:' every token must continue such a title (a token trie over the catalogue), "
        "titles separated by '; '. Transformers backend."
    )
    constrain_candidates: Optional[int] = Field(
        None, ge=1, description="Under constrain_items, step 3 chooses among the user's N "
        "co-occurrence candidates (unseen items other users' training sequences put next to "
        "the user's latest items) instead of the whole catalogue; empty: any unseen title."
    )
    constrain_max_items: int = Field(
        3, ge=1, description="Titles step 3 names under constrain_items (fewer only when "
        "max_new_tokens would cut the next one)."
    )
    scaffold_steps: bool = Field(
        False, description="The student's generation writes the step headers itself, as the "
        "local teacher's scaffold does (the headers the student learned from it): the prompt "
        "ends with step 1's header, each step is one line of at least half and at most all of "
        "an equal share of max_new_tokens (headers counted), then the next header is "
        "forced, so every rationale reaches step 3. Transformers backend."
    )
    gen_batch_size: int = Field(16, ge=1, description="Prompts decoded together.")
    gen_workers: Optional[int] = Field(
        None,
        ge=1,
        description="Batches decoded at once by threads sharing the model (transformers "
        "backend; empty: on CPU one per core left by torch's threads, on GPU 1). Two "
        "single-threaded workers measured 2.0x one on 2 cores; outputs do not change.",
    )
    num_users: Optional[int] = Field(
        None, ge=1, description="Generate for only this many users (empty: every user)."
    )
    quality_users: int = Field(
        32, ge=0, description="Held-out teacher users the quality report compares (0: none)."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA when available, else CPU."
    )
    max_steps: Optional[int] = Field(
        None, ge=1, description="Stop training after this many optimizer steps (empty: all epochs)."
    )



HF_LORA = Component(
    params=HFLoraStudentParams,
    impl="slimkit.students.hf_lora:HFLoraStudent",
    help="A Hugging Face causal LM fine-tuned with LoRA (peft); default SmolLM2-135M-Instruct.",
)

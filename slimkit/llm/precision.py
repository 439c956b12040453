"""Precision of a causal LM: one setting, ``precision``, for the local teacher and the student.

=========  ==========================================  =====================================
value      training (student)                          generation (student, local teacher)
=========  ==========================================  =====================================
``none``   the model's own dtype (float32 on CPU)      the model's own dtype
``bf16``   the model's own dtype                       a bfloat16 copy, float32 output head
``int8``   the model's own dtype                       dynamic int8 linear layers (CPU only)
``4bit``   QLoRA: the base loaded in 4 bit (NF4,       the same 4-bit model (CUDA +
           CUDA + bitsandbytes)                        bitsandbytes)
``auto``   the model's own dtype                       ``bf16`` on a CPU that multiplies
                                                       bfloat16 natively, else ``none``
=========  ==========================================  =====================================
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

from slimkit.errors import SlimkitError

PRECISIONS = ("auto", "none", "bf16", "int8", "4bit")
"""The values of ``teacher.precision`` and ``student.precision`` (table above)."""


@functools.cache
def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX): there bf16
    generation measured 2.3x float32 (SmolLM2-135M, one core); elsewhere it is emulated
    and slower."""
    from slimkit.runtime import setup_torch

    cpu = getattr(setup_torch(), "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    try:
        return any(bool(getattr(cpu, name)()) for name in checks if hasattr(cpu, name))
    except RuntimeError:
        return False


def resolve_precision(requested: str, device: str, what: str) -> str:
    """``requested`` with ``auto`` made concrete for ``device``: bf16 on a CPU with native
    bf16, else none. int8 runs on CPU only, 4bit on CUDA with bitsandbytes; ``what``
    names the setting in errors."""
    if requested not in PRECISIONS:
        raise SlimkitError(f"{what}={requested!r} is not one of {', '.join(PRECISIONS)}.")
    if requested == "auto":
        return "bf16" if device == "cpu" and native_bf16() else "none"
    if requested == "int8" and device != "cpu":
        raise SlimkitError(
            f"{what}=int8 runs on CPU only (dynamic int8 linear layers).",
            hint=f"Use {what}=auto, none or bf16 on a GPU.",
        )
    if requested == "4bit":
        check_4bit(what)
    return requested


def check_4bit(what: str) -> None:
    """Raise a clear error unless 4-bit loading can work here (a CUDA GPU, bitsandbytes)."""
    from slimkit.runtime import setup_torch

    missing = []
    if not setup_torch().cuda.is_available():
        missing.append("a CUDA GPU")
    if importlib.util.find_spec("bitsandbytes") is None:
        missing.append("the bitsandbytes package (pip install 'slimkit[qlora]')")
    if missing:
        raise SlimkitError(
            f"{what}=4bit (QLoRA) needs {' and '.join(missing)}.",
            hint=f"Set {what}=auto to use the full-precision model.",
        )


def load_options(precision: str) -> dict[str, Any]:
    """Extra :func:`slimkit.llm.loading.load_causal_lm` arguments for a resolved precision:
    a 4-bit NF4 quantisation config (bfloat16 compute) for ``4bit``, else nothing."""
    if precision != "4bit":
        return {}
    from transformers import BitsAndBytesConfig

    from slimkit.runtime import setup_torch

    torch = setup_torch()
    return {"quantization_config": BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_quant_type="nf4")}


def generation_copy(model: Any, precision: str) -> Any:
    """The model to generate with in ``precision`` (a resolved one): ``model`` itself for
    none and 4bit (already loaded in 4 bit), a bf16 copy with a float32 output head, or
    an int8 dynamic-quantised copy."""
    if precision in ("none", "4bit"):
        return model
    if precision == "bf16":
        return bf16_with_float32_head(model)
    if precision == "int8":
        return quantize_int8(model)
    raise ValueError(f"unknown precision {precision!r}")


def bf16_with_float32_head(model: Any) -> Any:
    """A bfloat16 copy of a causal LM whose output head (the vocabulary projection) stays
    float32.

    Measured on the quickstart's LoRA student (96 users, greedy, one core): 2.3x the
    tokens/s of float32 with the three-step share kept (0.77 vs 0.78); an all-bf16 copy
    was slower (2.1x) and lost more (0.70), since near-ties among the vocabulary's logits
    decide greedy decoding.
    """
    import copy

    from slimkit.runtime import setup_torch

    torch = setup_torch()

    class Float32Head(torch.nn.Linear):
        def forward(self, hidden):  # (..., H) bf16 -> (..., V) float32
            return torch.nn.functional.linear(hidden.float(), self.weight, self.bias)

    head = model.get_output_embeddings()
    out = copy.deepcopy(model).to(torch.bfloat16)
    if head is None or not isinstance(head, torch.nn.Linear):
        return out
    new_head = Float32Head(head.in_features, head.out_features, bias=head.bias is not None,
                           device=head.weight.device)
    with torch.no_grad():
        new_head.weight.copy_(head.weight.float())
        if head.bias is not None:
            new_head.bias.copy_(head.bias.float())
    new_head.requires_grad_(False)
    out.set_output_embeddings(new_head)
    if getattr(out.config, "tie_word_embeddings", False):
        out.config.tie_word_embeddings = False  # the head is its own float32 copy now
    return out


def quantize_int8(model: Any) -> Any:
    """A copy of ``model`` with int8 dynamic-quantised linear layers, for CPU generation.

    2-3x faster decoding on one core; measured to erase much of what a LoRA adapter
    taught a small student, so callers use it only when asked.
    """
    import warnings

    from slimkit.runtime import setup_torch

    torch = setup_torch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation notice for torch.ao
        return torch.ao.quantization.quantize_dynamic(
            model, {torch.nn.Linear}, dtype=torch.qint8, inplace=False
        )

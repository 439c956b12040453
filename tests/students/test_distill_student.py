"""The hf-lora student on a tiny random Llama: loss masking, training, adapters, generation."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.tiny_student import build_tiny_student

from slimkit.errors import SlimkitError


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_student(tmp_path_factory.mktemp("tiny-student") / "model")


RATIONALE = (
    "Step 1: The user prefers Comedy and Drama movies. Step 2: Comedy, Drama; brands Acme. "
    "Step 3: Movie 12, Movie 18."
)
MESSAGES = [{"role": "user", "content": "User history (most recent last):\n1. Movie 3; Comedy|Drama; Acme"}]


def make_student(model_dir: Path, **params):
    from slimkit.students.hf_lora import HFLoraStudent

    defaults = {"model": str(model_dir), "max_length": 256, "batch_size": 2, "lr": 1e-2,
                "precision": "none", "max_new_tokens": 12}
    return HFLoraStudent(**{**defaults, **params}).load()


def test_labels_mask_exactly_the_prompt(tiny_model_dir):
    from slimkit.students.hf_lora import IGNORE_INDEX

    student = make_student(tiny_model_dir)
    prompt = student.prompt_ids(MESSAGES)
    text = student.prompt_text(MESSAGES)
    assert text.endswith("<|im_start|>assistant\n")  # the chat template was applied
    example = student.build_example(7, prompt, RATIONALE)
    assert example.input_ids[: len(prompt)] == prompt
    assert example.labels[: len(prompt)] == [IGNORE_INDEX] * len(prompt)
    target = example.labels[len(prompt) :]
    assert IGNORE_INDEX not in target
    assert target == example.input_ids[len(prompt) :]
    assert target[-1] == student.tokenizer.eos_token_id
    assert student.tokenizer.decode(target[:-1]) == RATIONALE


def test_masked_loss_equals_transformers_loss_on_rationale_tokens(tiny_model_dir):
    import torch

    from slimkit.students.hf_lora.examples import collate
    from slimkit.students.hf_lora.training import batch_loss

    student = make_student(tiny_model_dir)
    prompt = student.prompt_ids(MESSAGES)
    batch = [student.build_example(0, prompt, RATIONALE),
             student.build_example(1, prompt[:-3], RATIONALE + " Movie 24.")]
    with torch.no_grad():
        nll, count = batch_loss(student.model, batch, student.tokenizer.pad_token_id, "cpu")
        ids, mask, labels = collate(batch, student.tokenizer.pad_token_id, "cpu")
        reference = student.model(input_ids=ids, attention_mask=mask, labels=labels).loss
    assert count == sum(ex.num_target_tokens for ex in batch)
    assert float(nll) / count == pytest.approx(float(reference), rel=1e-5)


def test_loss_on_rationale_tokens_falls_and_only_lora_weights_change(tiny_model_dir):
    import torch

    student = make_student(tiny_model_dir, epochs=12, warmup_ratio=0.0, lora_r=8, lora_alpha=32)
    prompt = student.prompt_ids(MESSAGES)
    examples = [student.build_example(u, prompt, RATIONALE) for u in range(4)]
    base_before = {n: p.detach().clone() for n, p in student.model.named_parameters()}
    result = student.train(examples, examples[:2], progress=False)
    losses = result["train_loss"]
    assert result["steps"] == len(losses) == 24
    assert losses[-1] < 0.7 * losses[0], losses
    assert result["valid_loss"][-1] < result["valid_loss_before"]
    assert result["target_modules"] == ["q_proj", "v_proj"]
    assert 0 < result["trainable_parameters"] < result["total_parameters"] / 5
    for name, param in student.model.named_parameters():
        if "lora_" in name:
            continue
        base_name = name.replace("base_model.model.", "").replace(".base_layer", "")
        assert torch.equal(param, base_before[base_name]), name


def test_adapter_round_trip_gives_the_same_rationales(tiny_model_dir, tmp_path):
    from slimkit.students.hf_lora import ADAPTER_WEIGHTS, SPEC_FILE

    student = make_student(tiny_model_dir, epochs=3)
    prompt = student.prompt_ids(MESSAGES)
    student.train([student.build_example(u, prompt, RATIONALE) for u in range(4)], progress=False)
    digest = student.save_adapter(tmp_path / "adapter", {"student": {"kind": "hf-lora"}})
    assert (tmp_path / "adapter" / ADAPTER_WEIGHTS).is_file()
    assert (tmp_path / "adapter" / SPEC_FILE).is_file()
    assert (tmp_path / "adapter" / "tokenizer.json").is_file()
    student.prepare_for_generation()  # merged into the base weights
    merged = {}
    student.generate([prompt], on_done=lambda i, t, n: merged.update({i: t}), progress=False)

    again = make_student(tiny_model_dir)
    assert again.identity()["adapter"] == "base"
    assert again.load_adapter(tmp_path / "adapter") == digest
    assert again.identity()["adapter"] == digest
    loaded = {}
    again.generate([prompt], on_done=lambda i, t, n: loaded.update({i: t}), progress=False)
    assert loaded == merged


def test_batched_left_padded_generation_matches_one_by_one(tiny_model_dir):
    student = make_student(tiny_model_dir, max_new_tokens=8)
    prompts = [student.prompt_ids(MESSAGES), student.prompt_ids(MESSAGES)[:-6],
               student.prompt_ids([{"role": "user", "content": "1. Movie 7; Action"}])]
    student.gen_batch_size = 3
    batched: dict[int, tuple[str, int]] = {}
    stats = student.generate(prompts, on_done=lambda i, t, n: batched.update({i: (t, n)}), progress=False)
    assert stats["prompts"] == 3 and stats["new_tokens"] == sum(n for _, n in batched.values())
    student.gen_batch_size = 1
    single: dict[int, tuple[str, int]] = {}
    student.generate(prompts, on_done=lambda i, t, n: single.update({i: (t, n)}), progress=False)
    assert batched == single


@pytest.mark.parametrize("precision", ["none", "bf16", "int8", "auto"])
def test_every_generation_precision_runs_and_is_part_of_the_cache_identity(tiny_model_dir, precision):
    from slimkit.llm.precision import native_bf16

    student = make_student(tiny_model_dir, precision=precision)
    expected = {"auto": "bf16" if student.device == "cpu" and native_bf16() else "none"}
    assert student.generation_params()["quantize"] == expected.get(precision, precision)
    out = {}
    student.generate([student.prompt_ids(MESSAGES)], on_done=lambda i, t, n: out.update({i: n}),
                     progress=False)
    assert 1 <= out[0] <= student.max_new_tokens


def test_bf16_copy_keeps_a_float32_head_and_leaves_the_model_alone(tiny_model_dir):
    import torch

    from slimkit.llm.precision import bf16_with_float32_head

    student = make_student(tiny_model_dir)
    copy = bf16_with_float32_head(student.model)
    assert copy.get_output_embeddings().weight.dtype == torch.float32
    assert copy.get_input_embeddings().weight.dtype == torch.bfloat16
    assert next(student.model.parameters()).dtype == torch.float32  # the original is untouched
    ids = torch.tensor([student.prompt_ids(MESSAGES)])
    with torch.inference_mode():
        full = student.model(input_ids=ids).logits  # (1, T, V)
        half = copy(input_ids=ids).logits
    assert half.dtype == torch.float32
    assert torch.allclose(full, half, atol=0.1 * float(full.abs().max()))


def test_int8_on_a_gpu_is_a_clear_error(tiny_model_dir):
    from slimkit.llm.precision import resolve_precision

    with pytest.raises(SlimkitError, match="CPU only"):
        resolve_precision("int8", "cuda", "student.precision")
    assert resolve_precision("auto", "cuda", "student.precision") == "none"


@pytest.mark.parametrize("precision", ["none", "bf16"])
def test_generation_workers_give_the_same_rationales_as_one(tiny_model_dir, precision):
    student = make_student(tiny_model_dir, max_new_tokens=8, gen_batch_size=1, precision=precision)
    prompts = [student.prompt_ids([{"role": "user", "content": f"1. Movie {i}; Action"}])
               for i in range(7)]
    runs: dict[int, dict[int, tuple[str, int]]] = {1: {}, 3: {}}
    for workers, out in runs.items():
        student.gen_workers = workers
        stats = student.generate(prompts, on_done=lambda i, t, n, out=out: out.update({i: (t, n)}),
                                 progress=False)
        assert stats["workers"] == workers and sorted(out) == list(range(7))
    assert runs[1] == runs[3]


def test_default_generation_workers_follow_the_free_cores(tiny_model_dir, monkeypatch):
    from slimkit import runtime

    student = make_student(tiny_model_dir)
    monkeypatch.setattr(runtime, "cpu_workers", lambda: 4)
    assert student.resolved_gen_workers() == 4 // max(1, __import__("torch").get_num_threads())
    student.gen_workers = 1
    assert student.resolved_gen_workers() == 1


def test_length_sorted_batches_and_left_padding():
    from slimkit.llm.generate import given_order_batches, left_pad, length_sorted_batches

    assert length_sorted_batches([3, 9, 1, 7, 5], 2) == [[1, 3], [4, 0], [2]]
    assert given_order_batches(5, 2) == [[0, 1], [2, 3], [4]]
    ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_plain_prompt_without_chat_template(tmp_path):
    folder = build_tiny_student(tmp_path / "plain", chat_template=False)
    student = make_student(folder)
    assert student.prompt_text(MESSAGES) == MESSAGES[0]["content"] + "\n\n"
    example = student.build_example(0, student.prompt_ids(MESSAGES), RATIONALE)
    assert example.num_target_tokens > 5


def test_max_length_shorter_than_the_prompt_is_a_user_error(tiny_model_dir):
    student = make_student(tiny_model_dir, max_length=16)
    with pytest.raises(SlimkitError, match="max_length"):
        student.build_example(0, student.prompt_ids(MESSAGES), RATIONALE)


def test_long_rationales_are_cut_to_max_length(tiny_model_dir):
    student = make_student(tiny_model_dir, max_length=64)
    prompt = student.prompt_ids(MESSAGES)
    example = student.build_example(0, prompt, RATIONALE * 5)
    assert example.truncated and len(example.input_ids) == 64


def test_out_of_memory_names_the_knobs(tiny_model_dir, monkeypatch):
    student = make_student(tiny_model_dir, batch_size=8, grad_accum=1)
    example = student.build_example(0, student.prompt_ids(MESSAGES), RATIONALE)

    def no_memory(model, batch, pad_id, device):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    from slimkit.students.hf_lora import training

    monkeypatch.setattr(training, "batch_loss", no_memory)
    with pytest.raises(SlimkitError) as info:
        student.train([example], progress=False)
    text = str(info.value)
    assert "student.batch_size=4" in text and "student.grad_accum=2" in text
    assert "max_length" in text


def test_default_target_modules_per_architecture():
    from slimkit.students.hf_lora import default_target_modules

    assert default_target_modules("llama", []) == ["q_proj", "v_proj"]
    assert default_target_modules("qwen2", []) == ["q_proj", "v_proj"]
    assert default_target_modules("bloom", []) == ["query_key_value"]
    assert default_target_modules("gpt2", []) == ["c_attn"]
    assert default_target_modules("made-up", ["layers.0.attn.q_proj", "layers.0.attn.v_proj"]) == [
        "q_proj", "v_proj"]
    with pytest.raises(SlimkitError, match="target_modules"):
        default_target_modules("made-up", ["layers.0.mixer"])


def test_unknown_target_module_is_a_user_error(tiny_model_dir):
    student = make_student(tiny_model_dir, target_modules=["q_proj", "qv_proj"])
    example = student.build_example(0, student.prompt_ids(MESSAGES), RATIONALE)
    with pytest.raises(SlimkitError, match="qv_proj"):
        student.train([example], progress=False)


def test_qlora_without_cuda_or_bitsandbytes_is_a_clear_error(tiny_model_dir):
    import importlib.util

    import torch

    from slimkit.students.hf_lora import HFLoraStudent

    if torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes"):
        pytest.skip("QLoRA is available here")
    with pytest.raises(SlimkitError, match="precision=4bit"):
        HFLoraStudent(model=str(tiny_model_dir), precision="4bit").load()


def test_vllm_backend_without_vllm_is_a_clear_error():
    from slimkit.llm.vllm import require_vllm, vllm_available
    from slimkit.students.hf_lora import HFLoraStudent

    if vllm_available():
        pytest.skip("vLLM is installed here")
    with pytest.raises(SlimkitError, match="vLLM is not installed"):
        require_vllm()
    with pytest.raises(SlimkitError, match="vLLM is not installed"):  # before anything loads
        HFLoraStudent(backend="vllm")


def test_missing_adapter_folder_is_a_user_error(tmp_path):
    from slimkit.students.hf_lora import HFLoraStudent

    with pytest.raises(SlimkitError, match="not found"):
        HFLoraStudent.check_adapter_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SlimkitError, match="adapter_config.json"):
        HFLoraStudent.check_adapter_folder(tmp_path / "empty")


def test_an_error_in_one_generation_worker_stops_them_all_and_reaches_the_caller(tiny_model_dir):
    student = make_student(tiny_model_dir, max_new_tokens=4, gen_batch_size=1, gen_workers=2)
    prompts = [student.prompt_ids([{"role": "user", "content": f"1. Movie {i}"}]) for i in range(12)]
    done: list[int] = []

    def on_done(index: int, text: str, count: int) -> None:
        done.append(index)
        if len(done) == 2:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        student.generate(prompts, on_done=on_done, progress=False)
    assert len(done) < len(prompts)  # the other worker stopped instead of finishing the run


def test_check_student_passes_the_built_in_and_names_a_broken_identity(tiny_model_dir):
    from slimkit.checks._common import ContractError
    from slimkit.checks.student import check_student
    from slimkit.students.hf_lora import HFLoraStudent

    params = {"model": str(tiny_model_dir), "precision": "none", "max_new_tokens": 6,
              "max_length": 320, "batch_size": 2, "lr": 1e-2}
    report = check_student(HFLoraStudent, **params)
    assert report["prompts"] == 4 and report["training"]["steps"] == 2
    assert set(report["tuned"]) == set(report["base"]) == {0, 1, 2, 3}

    class ForgetsTheAdapter(HFLoraStudent):
        def identity(self, adapter: bool = True):
            return {"model": self.model_name}

    with pytest.raises(ContractError, match="identity"):
        check_student(ForgetsTheAdapter, **params)

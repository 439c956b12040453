"""The vLLM path's arguments: LoRA enabled at a rank vLLM accepts, the fine-tuned student's
rationales asked with a LoRARequest naming the saved adapter, the base student's with none,
and a clear error when vLLM is missing.

vLLM itself needs a CUDA GPU and is not installed here: the engine never ran in these
tests. The last test routes the student through a recording stand-in for the ``vllm``
package (three classes that keep what they are given) to check which adapter reaches
the engine; it says nothing about vLLM's own behaviour."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from helpers.tiny_student import build_tiny_student

from slimkit.errors import SlimkitError
from slimkit.llm.vllm import (
    adapter_rank,
    engine_args,
    lora_request_args,
    require_vllm,
    vllm_available,
    vllm_lora_rank,
)


def test_lora_rank_rounds_up_to_a_rank_vllm_accepts():
    assert [vllm_lora_rank(r) for r in (1, 4, 8, 12, 16, 33, 256)] == [8, 8, 8, 16, 16, 64, 256]
    with pytest.raises(SlimkitError, match="lora_r=300"):
        vllm_lora_rank(300)


def write_adapter(folder: Path, rank: int = 12) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": rank, "peft_type": "LORA"}))
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    return folder


def test_engine_and_lora_request_arguments(tmp_path):
    assert engine_args("/models/base", lora_rank=12) == {
        "model": "/models/base", "enable_lora": True, "max_lora_rank": 16, "max_loras": 1}
    adapter = write_adapter(tmp_path / "adapter")
    assert adapter_rank(adapter) == 12 and adapter_rank(tmp_path) is None
    assert lora_request_args(str(adapter), 1) == {
        "lora_name": "slimkit-student-1", "lora_int_id": 1, "lora_path": str(adapter.resolve())}
    (adapter / "adapter_model.safetensors").unlink()
    with pytest.raises(SlimkitError, match="adapter_model.safetensors"):
        lora_request_args(adapter, 1)


def test_missing_vllm_names_the_fix_and_exits_2(tmp_path):
    from slimkit.students.hf_lora import HFLoraStudent

    if vllm_available():
        pytest.skip("vLLM is installed here")
    with pytest.raises(SlimkitError) as info:
        require_vllm()
    assert info.value.exit_code == 2
    assert "pip install 'slimkit[vllm]'" in info.value.hint
    with pytest.raises(SlimkitError, match="vLLM is not installed"):
        HFLoraStudent(backend="vllm", lora_r=4)


RECORDING_VLLM = {
    "vllm/__init__.py": '''
        CALLS = []

        class SamplingParams:
            def __init__(self, **kwargs):
                self.kwargs = kwargs

        class _Completion:
            def __init__(self, ids):
                self.token_ids = ids
                self.text = " Step 1: recorded."

        class _Output:
            def __init__(self, ids):
                self.outputs = [_Completion(ids)]

        class LLM:
            def __init__(self, **kwargs):
                CALLS.append(("LLM", kwargs))

            def generate(self, requests, sampling, lora_request=None, use_tqdm=True):
                CALLS.append(("generate", [r["prompt_token_ids"] for r in requests],
                              sampling.kwargs, lora_request))
                return [_Output([1, 2, 3]) for _ in requests]
    ''',
    "vllm/lora/__init__.py": "",
    "vllm/lora/request.py": '''
        class LoRARequest:
            def __init__(self, lora_name, lora_int_id, lora_path):
                self.lora_name, self.lora_int_id, self.lora_path = lora_name, lora_int_id, lora_path
    ''',
}


@pytest.fixture
def recording_vllm(tmp_path, monkeypatch):
    """The recording ``vllm`` stand-in on sys.path for this test only."""
    if vllm_available():
        pytest.skip("the real vLLM is installed here")
    root = tmp_path / "site"
    for rel, text in RECORDING_VLLM.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(root))
    yield
    for name in [n for n in sys.modules if n == "vllm" or n.startswith("vllm.")]:
        del sys.modules[name]


def test_the_student_sends_its_trained_adapter_to_vllm(tmp_path, recording_vllm):
    from slimkit.students.hf_lora import HFLoraStudent

    model_dir = build_tiny_student(tmp_path / "model")
    student = HFLoraStudent(model=str(model_dir), backend="vllm", lora_r=4, max_length=128,
                            batch_size=2, max_steps=1, max_new_tokens=7).load()
    messages = [{"role": "user", "content": "1. Movie 3; Comedy"}]
    prompt = student.prompt_ids(messages)
    with pytest.raises(RuntimeError, match="adapter"):  # never the base under the adapter's name
        student.generate([prompt], adapter=True, progress=False)
    student.train([student.build_example(0, prompt, "Step 1: Comedy. Step 2: Comedy. Step 3: Movie 7.")],
                  progress=False)
    adapter = tmp_path / "adapter"
    student.save_adapter(adapter)
    student.prepare_for_generation()
    done = []
    student.generate([prompt, prompt], adapter=True, progress=False,
                     on_done=lambda i, text, n: done.append((i, text, n)))
    student.generate([prompt], adapter=False, progress=False)

    import vllm

    (kind, engine), (_, ids, sampling, lora), (_, _, _, base) = vllm.CALLS
    assert kind == "LLM"
    assert engine == {"model": str(model_dir), "enable_lora": True, "max_lora_rank": 8, "max_loras": 1}
    assert ids == [prompt, prompt]
    assert sampling == {"temperature": 0.0, "max_tokens": 7}
    assert lora.lora_path == str(adapter.resolve()) and lora.lora_int_id == 1
    assert base is None  # the base student: no adapter
    assert sorted(done) == [(0, "Step 1: recorded.", 3), (1, "Step 1: recorded.", 3)]
    assert student.model is None  # the transformers copy was released for vLLM

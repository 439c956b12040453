"""Every shipped example config validates, documents what it needs, and keeps its promise."""

from __future__ import annotations

import re

import pytest
import yaml
from helpers import REPO

from slimkit.spec import SECTION_ORDER, load_spec

EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
EXPECTED = {
    "quickstart.yaml",
    "hosted-teacher.yaml",
    "ollama-teacher.yaml",
    "gpu-student-vllm.yaml",
    "amazon-games.yaml",
    "statistics-ablation.yaml",
    "paper-protocol.yaml",
}


def test_every_promised_example_exists():
    assert EXPECTED <= {p.name for p in EXAMPLES}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates(path):
    spec = load_spec(path, [])
    assert spec.source == str(path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    for section, values in raw.items():  # what the file says is what the spec holds
        if isinstance(values, dict) and "kind" in values:
            assert spec.section(section).kind == values["kind"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_header_says_what_it_needs_and_how_to_run(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)
    text = "\n".join(header)
    assert len(header) >= 3, f"{path.name}: a header comment should explain the example"
    assert re.search(r"\bNeeds?\b", text), f"{path.name}: the header should say what it needs"
    assert f"slimkit run -c examples/{path.name}" in text, f"{path.name}: header lacks its run command"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_sections_in_canonical_order(path):
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    keys = list(raw)
    assert keys == [s for s in SECTION_ORDER if s in keys], keys


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_holds_no_secret(path):
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"sk-[A-Za-z0-9]{10,}", text)
    assert "api_key:" not in text  # keys come from the environment (api_key_env)


def _spec(name: str):
    return load_spec(REPO / "examples" / name, [])


def test_quickstart_is_the_offline_default():
    spec = _spec("quickstart.yaml")
    assert spec.dataset.kind == "movielens-100k" and spec.dataset.path is None
    assert spec.teacher.kind == "local"
    assert 32 <= spec.teacher.num_users <= 500  # sized to finish cold in under 15 minutes
    assert spec.student.kind == "hf-lora" and spec.student.model == "smollm2-135m-instruct"
    assert spec.student.backend == "transformers"
    assert spec.encoder.kind == "sentence-transformers"
    assert spec.backbone.kind == "sasrec" and spec.fusion.kind == "slim"


def test_hosted_teacher_reads_its_key_from_the_environment():
    spec = _spec("hosted-teacher.yaml")
    assert spec.teacher.kind == "litellm"
    assert spec.teacher.model == "openai/gpt-4o-mini"
    assert spec.teacher.api_key_env == "OPENAI_API_KEY"
    assert spec.teacher.max_cost_usd is not None


def test_ollama_teacher_points_at_a_local_server():
    spec = _spec("ollama-teacher.yaml")
    assert spec.teacher.kind == "litellm" and spec.teacher.model.startswith("ollama/")
    assert spec.teacher.api_base.startswith("http://localhost")


def test_gpu_student_uses_qlora_and_vllm():
    spec = _spec("gpu-student-vllm.yaml")
    assert spec.student.backend == "vllm"
    assert spec.student.precision == "4bit"
    assert spec.student.model in ("Qwen/Qwen2.5-1.5B-Instruct", "meta-llama/Llama-2-7b-chat-hf")
    assert spec.train.device == "cuda"


def test_amazon_example_uses_2018_files_and_5_core():
    spec = _spec("amazon-games.yaml")
    assert spec.dataset.kind == "amazon"
    assert spec.dataset.reviews.name == "Video_Games.json.gz"
    assert spec.dataset.meta.name == "meta_Video_Games.json.gz"
    assert spec.dataset.min_user_interactions == 5 and spec.dataset.min_item_interactions == 5


def test_statistics_ablation_is_fast():
    spec = _spec("statistics-ablation.yaml")
    assert spec.teacher.kind == "statistics"
    quick = _spec("quickstart.yaml")
    # The same pipeline as the quickstart except the teacher: a clean ablation.
    for section in ("dataset", "prompt", "student", "encoder", "backbone", "fusion", "train", "eval"):
        assert spec.section(section) == quick.section(section), section


def test_paper_protocol_is_the_papers():
    """arXiv 2403.04260 section 3.1: 100 sampled negatives, BCE, 5 runs, NDCG@10/HR@10/HR@20,
    and the quickstart's rationale stages (so its cache is reused)."""
    from slimkit.pipeline import stage_keys

    spec, quick = _spec("paper-protocol.yaml"), _spec("quickstart.yaml")
    assert spec.eval.protocol == "sampled" and spec.eval.num_negatives == 100
    assert spec.train.loss == "bce" and len(spec.eval.seeds) == 5
    assert {10, 20} <= set(spec.eval.ks)
    keys, quick_keys = stage_keys(spec), stage_keys(quick)
    assert all(keys[s] == quick_keys[s] for s in ("data", "teach", "distill", "encode"))

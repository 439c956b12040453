"""Shipped examples run end to end on data of their shape, through `slimkit run -c
examples/<name>.yaml`, with only sizes overridden (tiny models, few users, one epoch), or are
refused up front with the fix.

* ``amazon-games.yaml``: a small Amazon-2018-format category the test writes (gzipped reviews
  and metadata JSON lines); the example's 20-item prompts are longer than the old fixed
  ``student.max_length`` of 384, which is now refused before the teacher runs, while the
  default ``auto`` lengths run through.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import REPO
from helpers.amazon import write_amazon_2018
from helpers.tiny_student import build_tiny_student

from slimkit.cache import StageCache
from slimkit.pipeline import Pipeline
from slimkit.spec import load_spec

TINY_RECOMMENDER = ["backbone.hidden_size=16", "backbone.num_layers=1", "backbone.num_heads=1",
                    "backbone.inner_size=32", "train.epochs=1", "train.patience=1"]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    # 2048 positions: the Amazon example's 20 items make long prompts in the tiny tokenizer
    return build_tiny_student(tmp_path_factory.mktemp("tiny-examples") / "model", context=2048)


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "3000")  # one line per message, whole phrases to match


def _cli(args: list[str]) -> int:
    from slimkit.cli import main

    with pytest.raises(SystemExit) as info:
        main(args)
    return info.value.code or 0


def _sets(overrides: list[str]) -> list[str]:
    return [arg for o in overrides for arg in ("--set", o)]


def amazon_overrides(tmp_path: Path, model_dir: Path) -> list[str]:
    files = write_amazon_2018(tmp_path / "amazon-2018")
    return [f"dataset.reviews={files['reviews']}", f"dataset.meta={files['meta']}",
            f"teacher.model={model_dir}", "teacher.num_users=10", "teacher.precision=none",
            f"student.model={model_dir}", "student.epochs=1", "student.precision=none",
            "student.quality_users=2", *TINY_RECOMMENDER]


@pytest.mark.slow
def test_amazon_example_runs_end_to_end_on_an_amazon_2018_file(tmp_path, tiny_model_dir, capsys):
    example = REPO / "examples" / "amazon-games.yaml"
    overrides = amazon_overrides(tmp_path, tiny_model_dir)
    assert _cli(["run", "-c", str(example), *_sets(overrides)]) == 0, capsys.readouterr().err
    spec = load_spec(example, overrides)
    assert spec.prompt.max_items == 20 and spec.dataset.min_user_interactions == 5  # its shape
    pipeline = Pipeline(spec, StageCache(), progress=False)
    dataset = pipeline.dataset()
    assert dataset.num_users == 24 and dataset.num_items == 30  # the 5-core keeps everyone
    assert "Chronicles" in dataset.item_text[1] and "Video Games" in dataset.item_text[1]
    distill = pipeline.run("distill")
    assert distill.cached
    lengths = distill.summary["student_lengths"]
    # the old fixed default of 384 could not hold these prompts; auto sized past them
    assert lengths["longest_prompt"] > 384 and lengths["max_length"] > lengths["longest_prompt"]
    assert lengths["max_new_tokens"] == -(-lengths["rationale_p95"] // 8) * 8
    metrics = json.loads((pipeline.run("train").path / "metrics.json").read_text())
    assert "test" in json.dumps(metrics)


def test_amazon_example_with_the_old_max_length_is_refused_before_the_teacher(
        tmp_path, tiny_model_dir, capsys):
    """The issue's report: the example taught, then stopped in distill with
    "student.max_length=384 is shorter than the prompt of user index 680"."""
    example = REPO / "examples" / "amazon-games.yaml"
    overrides = [*amazon_overrides(tmp_path, tiny_model_dir), "student.max_length=384"]
    for args in (["config", "validate", str(example)], ["run", "-c", str(example)]):
        if args[0] == "config":
            Pipeline(load_spec(example, overrides), StageCache(), progress=False).run("data")
        assert _cli([*args, *_sets(overrides)]) == 2
        err = capsys.readouterr().err
        assert "student.max_length=384 cannot hold the longest prompt" in err, err
        assert "student.max_length: auto" in err and "Traceback" not in err
    assert Pipeline(load_spec(example, overrides), StageCache(), progress=False).cached("teach") is None


# -- MovieLens-100K examples: a slice of the real ml-100k (the 16 users with at least 400
# ratings), the example's own teacher kind, prompts and fusion, tiny models. --------------
MOVIELENS_SLICE = ["dataset.min_user_interactions=400", "teacher.num_users=6",
                   "student.precision=none", "student.quality_users=2", *TINY_RECOMMENDER]


def movielens_overrides(name: str, model_dir: Path, server_url: str | None) -> list[str]:
    spec = load_spec(REPO / "examples" / name, [])
    extra = [f"student.model={model_dir}", "student.epochs=1"]
    if spec.teacher.kind == "local":
        extra += [f"teacher.model={model_dir}", "teacher.precision=none"]
    elif getattr(spec.teacher, "model", "").startswith("ollama/"):  # the fake server speaks Ollama's protocol too
        extra += [f"teacher.api_base={server_url}"]
    elif spec.teacher.kind == "litellm":  # the fake OpenAI-protocol server stands in
        extra += [f"teacher.api_base={server_url}", "teacher.api_key_env=FAKE_TEACHER_KEY"]
    return [*MOVIELENS_SLICE, *extra]


@pytest.fixture(scope="module")
def movielens_cache(tmp_path_factory) -> Path:
    """One stage cache for the MovieLens examples: they share the data stage, and
    paper-protocol shares the quickstart's rationale stages (as the examples promise)."""
    return tmp_path_factory.mktemp("movielens-examples-cache")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["quickstart.yaml", "statistics-ablation.yaml",
                                  "paper-protocol.yaml", "hosted-teacher.yaml",
                                  "ollama-teacher.yaml"])
def test_movielens_example_runs_end_to_end(name, tiny_model_dir, movielens_cache, capsys,
                                           monkeypatch):
    from helpers.fake_openai_server import FakeOpenAIServer

    monkeypatch.setenv("SLIMKIT_CACHE_DIR", str(movielens_cache))
    example = REPO / "examples" / name
    with FakeOpenAIServer() as server:
        monkeypatch.setenv("FAKE_TEACHER_KEY", "sk-fake-for-tests")
        overrides = movielens_overrides(name, tiny_model_dir, server.url)
        assert _cli(["run", "-c", str(example), *_sets(overrides)]) == 0, capsys.readouterr().err
        if load_spec(example, []).teacher.kind == "litellm":
            assert server.requests >= 6  # the teacher really asked the (fake) hosted model
    spec = load_spec(example, overrides)
    pipeline = Pipeline(spec, StageCache(), progress=False)
    assert pipeline.dataset().num_users == 16
    distill = pipeline.run("distill")
    assert distill.cached and distill.summary["student_lengths"]["checked"]
    metrics = json.loads((pipeline.run("train").path / "metrics.json").read_text())
    assert len(metrics["seeds"]) == len(spec.eval.seeds)


# -- gpu-student-vllm.yaml: needs vLLM, QLoRA (CUDA + bitsandbytes) and a CUDA GPU for
# training; on a machine without them `slimkit run` refuses before any stage runs. --------
def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.parametrize("overrides, needs, message", [
    ([], "vllm", "vLLM"),
    (["student.backend=transformers"], "qlora", "student.precision=4bit (QLoRA) needs"),
    (["student.backend=transformers", "student.precision=auto"], "cuda",
     "train.device is 'cuda' but no CUDA GPU is available"),
])
def test_gpu_example_is_refused_up_front_without_its_gpu_stack(overrides, needs, message, capsys):
    import importlib.util

    if needs == "vllm" and importlib.util.find_spec("vllm"):
        pytest.skip("vLLM is installed here")
    if needs in ("qlora", "cuda") and _has_cuda() and (
            needs == "cuda" or importlib.util.find_spec("bitsandbytes")):
        pytest.skip("this machine has what the example needs")
    example = REPO / "examples" / "gpu-student-vllm.yaml"
    assert _cli(["run", "-c", str(example), *_sets(overrides)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert Pipeline(load_spec(example, overrides), StageCache(), progress=False).cached("data") is None

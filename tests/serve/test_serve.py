"""`slimkit serve`: the real service on a free loopback port, called over real HTTP (httpx).

The trained pipeline is the tiny one of helpers.tiny_pipeline (real stages: statistics
teacher, a tiny random Llama student, the bundled MiniLM encoder, a tiny SASRec + slim
head), built once per module.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from helpers.processes import default_sigint
from helpers.tiny_pipeline import train_tiny_pipeline

from slimkit.cache import StageCache
from slimkit.spec import load_spec


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    spec_path, cache_dir = train_tiny_pipeline(tmp_path_factory.mktemp("serve"))
    return {"spec_path": spec_path, "cache": cache_dir}


@pytest.fixture(scope="module")
def service(trained):
    from slimkit.serve import RecommendationService

    return RecommendationService(load_spec(trained["spec_path"]), StageCache(trained["cache"]))


@pytest.fixture(scope="module")
def client(service):
    from slimkit.serve.server import BackgroundServer

    with BackgroundServer(service) as server:
        assert server.url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=server.url, timeout=120) as http:
            yield http


def test_health_model_and_openapi(client, service):
    assert client.get("/health").json() == {"status": "ok", "model_loaded": True}
    meta = client.get("/model").json()
    assert meta["model"]["backbone"] == "sasrec" and meta["model"]["fusion"] == "slim"
    assert meta["dataset"]["users"] == service.dataset.num_users == 30
    assert meta["dataset"]["items"] == 60 and meta["metrics"]["test"]["ndcg@10"] >= 0
    schema = client.get("/openapi.json").json()
    assert {"/health", "/model", "/users/{user_id}/recommendations", "/recommendations"} <= set(schema["paths"])
    assert "HistoryRequest" in schema["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_known_user(client, trained, service):
    from slimkit.recommend import recommend

    answer = client.get("/users/u3/recommendations", params={"k": 5})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["user"] == "u3" and body["new_user"] is False and body["k"] == 5
    dataset = service.dataset
    history = {dataset.item_ids[i] for i in dataset.sequence(dataset.user_index("u3"))}
    ids = [item["item_id"] for item in body["items"]]
    assert len(ids) == 5 and not history & set(ids)
    assert all(item["title"].startswith("Movie ") for item in body["items"])
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert body["rationale"]["source"] == "student" and body["rationale"]["text"]
    # The service answers exactly what the library (`slimkit recommend`) answers.
    expected = recommend(load_spec(trained["spec_path"]), user="u3", k=5,
                         cache=StageCache(trained["cache"]))
    assert ids == [item["item_id"] for item in expected["items"]]
    assert body["rationale"]["text"] == expected["rationale"]["text"]
    with_history = client.get("/users/u3/recommendations",
                              params={"k": 60, "include_history": True}).json()
    assert history <= {item["item_id"] for item in with_history["items"]}


def test_new_history_by_ids_then_titles_uses_the_cached_rationale(client, service):
    written = service.stats["rationales_written"]
    by_ids = client.post("/recommendations", json={"items": ["i2", "i8", "i14"], "k": 4})
    assert by_ids.status_code == 200, by_ids.text
    first = by_ids.json()
    assert first["new_user"] is True and first["user"] is None
    assert first["rationale_cached"] is False and first["rationale"]["text"]
    assert service.stats["rationales_written"] == written + 1
    assert [h["item_id"] for h in first["history"]] == ["i2", "i8", "i14"]
    assert not {"i2", "i8", "i14"} & {item["item_id"] for item in first["items"]}

    by_titles = client.post("/recommendations",
                            json={"items": ["Movie 2", "movie 8", " MOVIE 14 "], "k": 4}).json()
    assert by_titles["rationale_cached"] is True
    assert by_titles["items"] == first["items"]
    assert by_titles["rationale"] == first["rationale"]
    assert service.stats["rationales_written"] == written + 1


def test_a_new_user_with_a_known_users_history_and_rationale_scores_like_them(client, service):
    """Through the whole path: the student's stored rationale of a known user's history is
    the row it had at training time only if the prompt is the same, so compare the model
    rows instead: the service's new row for that rationale equals the known user's."""
    import torch

    index = service.user_index("u5")
    vector = service.pipeline.vectors(run=False)["student_vectors"][index]
    row = service.model.add_user(vector)
    assert torch.equal(service.model.rationale[row], service.model.rationale[index])


def test_unknown_user_is_404_with_close_ids(client):
    answer = client.get("/users/u300/recommendations")
    assert answer.status_code == 404
    body = answer.json()
    assert "Unknown user 'u300'" in body["detail"]
    assert "u30" in body["suggestions"] and "u3" in body["suggestions"]


def test_unknown_items_are_422_with_close_matches(client):
    answer = client.post("/recommendations", json={"items": ["i1", "Movi 7", "zzzz"]})
    assert answer.status_code == 422
    body = answer.json()
    assert set(body["unknown_items"]) == {"Movi 7", "zzzz"}
    assert body["unknown_items"]["Movi 7"][0] == {"item_id": "i7", "title": "Movie 7"}
    assert len(body["problems"]) == 2


@pytest.mark.parametrize(
    "body",
    [
        {"itemz": ["i1"]},                   # unknown field, items missing
        {"items": []},                       # empty history
        {"items": ["i1"], "k": 0},           # k out of range
        {"items": ["i1"], "k": "ten"},       # k not a number
        {"items": "i1"},                     # not a list
        {"items": ["  "]},                   # blank item
        [1, 2],                              # not an object
    ],
)
def test_malformed_body_is_422(client, body):
    answer = client.post("/recommendations", json=body)
    assert answer.status_code == 422, answer.text
    assert isinstance(answer.json()["detail"], list)  # FastAPI's validation errors


def test_bad_json_and_bad_query_are_422(client):
    answer = client.post("/recommendations", content=b"{not json",
                         headers={"content-type": "application/json"})
    assert answer.status_code == 422
    assert client.get("/users/u3/recommendations", params={"k": -1}).status_code == 422
    assert client.get("/users/u3/recommendations", params={"k": 100_000}).status_code == 422


def test_concurrent_requests(client, service):
    """16 requests in parallel: known users and new histories (two of them the same new
    history, which gets one model row) answer exactly as they do one at a time."""
    requests = [("get", f"u{u}") for u in range(1, 11)]
    requests += [("post", ("i3", "i9", "i21")), ("post", ("i3", "i9", "i21")),
                 ("post", ("i4", "i10")), ("post", ("Movie 5", "Movie 11")),
                 ("post", ("i6",)), ("post", ("i30", "i31", "i32", "i33"))]
    assert len(requests) == 16

    def call(request):
        kind, what = request
        if kind == "get":
            return client.get(f"/users/{what}/recommendations", params={"k": 5})
        return client.post("/recommendations", json={"items": list(what), "k": 5})

    rows_before = int(service.model.rationale.size(0))
    with ThreadPoolExecutor(16) as pool:
        parallel = list(pool.map(call, requests))
    assert [a.status_code for a in parallel] == [200] * 16
    assert int(service.model.rationale.size(0)) == rows_before + 5  # 5 distinct new histories
    one_by_one = [call(r) for r in requests]
    for together, alone in zip(parallel, one_by_one):
        assert together.json()["items"] == alone.json()["items"]
        assert alone.json()["rationale_cached"] in (True, None)


def test_a_head_without_rationales_serves_new_histories(trained, tmp_path):
    """fusion none: no student involved; a new history is scored from its items alone."""
    from slimkit.pipeline import Pipeline
    from slimkit.serve import RecommendationService
    from slimkit.serve.server import BackgroundServer

    spec = load_spec(trained["spec_path"], ["fusion.kind=none"])
    Pipeline(spec, StageCache(trained["cache"]), progress=False).run("train")
    service = RecommendationService(spec, StageCache(trained["cache"]))
    with BackgroundServer(service) as server, httpx.Client(base_url=server.url) as http:
        body = http.post("/recommendations", json={"items": ["i1", "i2"], "k": 3}).json()
        assert body["rationale"] is None and body["rationale_cached"] is None
        assert len(body["items"]) == 3 and body["named_item_ids"] == []
        known = http.get("/users/u1/recommendations", params={"k": 3}).json()
        assert known["rationale"]["text"]  # known users still show their stored rationale
    assert service._writer is None  # the student never loaded


def test_named_item_ids_from_steps_and_resolved_ids():
    from slimkit.serve import named_item_ids

    items = [{"item_id": "1", "step": 3}, {"item_id": "2", "step": None}, {"item_id": "3", "step": 1}]
    assert named_item_ids({"steps": {}}, items) == ["1", "3"]
    assert named_item_ids({"named_items": ["2"]}, items) == ["1", "2", "3"]
    assert named_item_ids({"named_items": ["2"]}, [{"item_id": "2", "step": None}]) == ["2"]
    assert named_item_ids(None, items) == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(cache) -> dict[str, str]:
    return {**os.environ, "SLIMKIT_CACHE_DIR": str(cache), "COLUMNS": "200"}


def test_cli_serves_until_ctrl_c(trained, tmp_path):
    port = _free_port()
    log = tmp_path / "serve.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "slimkit", "serve", "-c", str(trained["spec_path"]),
             "--port", str(port), "--log-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=err, env=_env(trained["cache"]),
            preexec_fn=default_sigint,  # noqa: PLW1509 (see its docstring)
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the service did not start"
                time.sleep(0.3)
        assert health.json()["status"] == "ok"
        answer = httpx.get(f"http://127.0.0.1:{port}/users/u2/recommendations", timeout=60)
        assert answer.status_code == 200 and len(answer.json()["items"]) == 10
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
    assert code == 0, log.read_text()
    text = log.read_text()
    assert f"Serving on http://127.0.0.1:{port}" in text and "Traceback" not in text


def test_cli_before_training_says_what_to_run(trained, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "slimkit", "serve", "-c", str(trained["spec_path"]),
         "--port", str(_free_port())],
        check=False, capture_output=True, text=True, env=_env(tmp_path / "empty-cache"), timeout=120,
    )
    assert result.returncode == 2
    assert "No trained model" in result.stderr and "slimkit run -c" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_port_in_use_is_a_clear_error(trained):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "slimkit", "serve", "-c", str(trained["spec_path"]),
             "--port", str(port)],
            check=False, capture_output=True, text=True, env=_env(trained["cache"]), timeout=120,
        )
    assert result.returncode == 2, result.stderr
    assert f"could not listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_imports_no_extra():
    """`slimkit --help` (and so every command module) loads neither the serve nor the
    export extra: they are imported inside the commands."""
    code = ("import sys\nfrom slimkit.cli import main\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass\n"
            "extras = ('fastapi', 'uvicorn', 'starlette', 'onnx', 'onnxruntime', 'onnxscript', "
            "'rapidfuzz', 'httpx')\n"
            "sys.stderr.write('LOADED=' + ','.join(m for m in extras if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert "serve" in result.stdout and "export" in result.stdout
    assert result.stderr.rsplit("LOADED=", 1)[1].strip() == "", result.stderr

"""A real HTTP server on 127.0.0.1 that speaks OpenAI's files and batches endpoints.

Besides everything :class:`~helpers.fake_openai_server.FakeOpenAIServer` answers (chat
completions, so the online teacher can share one ``api_base`` with the batch teacher),
it serves what a provider batch job needs:

* ``POST /v1/files`` (multipart upload, ``purpose=batch``), ``GET /v1/files/{id}`` and
  ``GET /v1/files/{id}/content``;
* ``POST /v1/batches`` (create), ``GET /v1/batches`` (list), ``GET /v1/batches/{id}``
  (retrieve) and ``POST /v1/batches/{id}/cancel``.

A batch is ``validating`` when created, ``in_progress`` from the first poll, and
``completed`` on the ``complete_after_polls``-th poll unless :attr:`hold_batches` is set (then
it stays ``in_progress``: a test kills its client between submit and fetch). On completion
every line is answered the way the chat endpoint answers, into an output file; prompts
for which ``error_when(prompt)`` holds get an error line in the error file instead, and
``malformed_when(body)`` gives an answer without the three steps. Every create, poll and
answered request is counted, so a test can check that nothing was submitted twice;
``lose_create_answers`` makes a batch and then answers 500, as a dropped connection would.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from helpers.fake_openai_server import FakeOpenAIServer, _Handler, rationale_for


def completion_body(body: dict[str, Any], content: str, request_id: str) -> dict[str, Any]:
    """The chat-completion JSON the chat endpoint would answer ``body`` with."""
    prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
    completion_tokens = len(content.split())
    return {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": completion_tokens,
                  "total_tokens": len(prompt.split()) + completion_tokens},
    }


def body_hash(body: dict[str, Any]) -> str:
    """The same request identity the chat endpoint logs (model, messages, sampling)."""
    canonical = json.dumps(
        {k: body.get(k) for k in ("model", "messages", "temperature", "max_tokens", "seed")}, sort_keys=True
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass
class FakeBatchServer(FakeOpenAIServer):
    complete_after_polls: int = 2
    error_when: Callable[[str], bool] | None = None  # prompt -> an error line instead of an answer
    malformed_when: Callable[[dict], bool] | None = None  # request body -> an answer without steps
    batch_failure: str | None = None  # every new batch fails validation with this message
    lose_create_answers: int = 0  # this many creates make their batch, then answer 500
    batch_key: str | None = None  # files/batches answer 401 unless "Authorization: Bearer <batch_key>"
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self):
        super().__post_init__()
        self.files: dict[str, dict[str, Any]] = {}
        self.hold_batches = threading.Event()  # while set, no batch completes
        self.creates = 0
        self.polls = 0
        self.uploads = 0
        self.batch_answers: list[str] = []  # body hash of every request a batch answered (billed)

    def start(self) -> FakeBatchServer:
        server = self

        class Handler(_BatchHandler):
            fake = server

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self._server.request_queue_size = 256
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    # -- state ------------------------------------------------------------------------
    def _new_file(self, content: bytes, purpose: str, filename: str) -> dict[str, Any]:
        file_id = f"file-{len(self.files) + 1}"
        meta = {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                "filename": filename, "purpose": purpose, "status": "processed"}
        self.files[file_id] = {"meta": meta, "content": content}
        return meta

    def _create(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        file_id = request.get("input_file_id")
        if file_id not in self.files:
            return 400, {"error": {"message": f"No such file: {file_id}", "type": "invalid_request_error"}}
        with self._lock:
            self.creates += 1
            batch_id = f"batch_{self.creates}"
        lines = [json.loads(line) for line in self.files[file_id]["content"].decode().splitlines() if line.strip()]
        now = int(time.time())
        batch = {
            "id": batch_id, "object": "batch", "endpoint": request.get("endpoint"),
            "errors": None, "input_file_id": file_id,
            "completion_window": request.get("completion_window", "24h"),
            "status": "validating", "output_file_id": None, "error_file_id": None,
            "created_at": now, "in_progress_at": None, "expires_at": now + 86400,
            "finalizing_at": None, "completed_at": None, "failed_at": None, "expired_at": None,
            "cancelling_at": None, "cancelled_at": None,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "metadata": request.get("metadata"),
        }
        if self.batch_failure:
            batch.update(status="failed", failed_at=now, errors={"object": "list", "data": [
                {"code": "invalid_request", "message": self.batch_failure, "param": None, "line": 1}]})
        self.batches[batch_id] = {"object": batch, "lines": lines, "polls": 0}
        return 200, batch

    def _retrieve(self, batch_id: str) -> tuple[int, dict[str, Any]]:
        entry = self.batches.get(batch_id)
        if entry is None:
            return 404, {"error": {"message": f"No batch found with id '{batch_id}'."}}
        batch = entry["object"]
        with self._lock:
            self.polls += 1
            entry["polls"] += 1
            if batch["status"] in ("validating", "in_progress"):
                batch["status"] = "in_progress"
                batch["in_progress_at"] = batch["in_progress_at"] or int(time.time())
                if entry["polls"] >= self.complete_after_polls and not self.hold_batches.is_set():
                    self._complete(batch, entry["lines"])
        return 200, batch

    def _complete(self, batch: dict[str, Any], lines: list[dict[str, Any]]) -> None:
        out, errors = [], []
        for n, line in enumerate(lines):
            body = line["body"]
            prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
            request_id = f"{batch['id']}-{n}"
            if self.error_when is not None and self.error_when(prompt):
                errors.append({"id": f"batch_req_{request_id}", "custom_id": line["custom_id"],
                               "response": {"status_code": 400, "request_id": request_id, "body": {
                                   "error": {"message": "This prompt is not allowed.",
                                             "type": "invalid_request_error"}}},
                               "error": None})
                continue
            malformed = self.malformed_when is not None and self.malformed_when(body)
            content = "I think the user likes movies." if malformed else rationale_for(prompt)
            self.batch_answers.append(body_hash(body))
            out.append({"id": f"batch_req_{request_id}", "custom_id": line["custom_id"],
                        "response": {"status_code": 200, "request_id": request_id,
                                     "body": completion_body(body, content, request_id)},
                        "error": None})
        now = int(time.time())
        if out:
            batch["output_file_id"] = self._new_file(_jsonl(out), "batch_output", "output.jsonl")["id"]
        if errors:
            batch["error_file_id"] = self._new_file(_jsonl(errors), "batch_output", "errors.jsonl")["id"]
        batch.update(status="completed", finalizing_at=now, completed_at=now,
                     request_counts={"total": len(lines), "completed": len(out), "failed": len(errors)})


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


class _BatchHandler(_Handler):
    fake: FakeBatchServer

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode())

    def _refused(self, parts: list[str]) -> bool:
        """A 401 for a files/batches call without the expected key (when one is set)."""
        key = self.fake.batch_key
        if key is None or parts[:1] not in (["files"], ["batches"]):
            return False
        if self.headers.get("Authorization", "") == f"Bearer {key}":
            return False
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._json(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                   "code": "invalid_api_key"}})
        return True

    def _parts(self) -> list[str]:
        path = self.path.split("?")[0].rstrip("/")
        return path.split("/")[path.split("/").index("v1") + 1:] if "/v1/" in path + "/" else path.split("/")[1:]

    def do_GET(self) -> None:
        parts = self._parts()
        fake = self.fake
        if self._refused(parts):
            return
        if parts == ["batches"]:  # list, newest first
            listed = [entry["object"] for entry in reversed(fake.batches.values())]
            self._json(200, {"object": "list", "data": listed, "has_more": False,
                             "first_id": listed[0]["id"] if listed else None,
                             "last_id": listed[-1]["id"] if listed else None})
        elif parts[:1] == ["batches"] and len(parts) == 2:
            self._json(*fake._retrieve(parts[1]))
        elif parts[:1] == ["files"] and len(parts) in (2, 3) and parts[1] in fake.files:
            entry = fake.files[parts[1]]
            if len(parts) == 3 and parts[2] == "content":
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(entry["content"])))
                self.end_headers()
                self.wfile.write(entry["content"])
            else:
                self._json(200, entry["meta"])
        else:
            super().do_GET()

    def do_POST(self) -> None:
        parts = self._parts()
        fake = self.fake
        if self._refused(parts):
            return
        if parts == ["files"]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            head = f"Content-Type: {self.headers.get('Content-Type')}\r\n\r\n".encode()
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
            fields = {part.get_param("name", header="content-disposition"): part
                      for part in message.iter_parts()}
            if "file" not in fields:
                self._json(400, {"error": {"message": "no file part"}})
                return
            purpose = fields["purpose"].get_content().strip() if "purpose" in fields else "batch"
            content = fields["file"].get_payload(decode=True)
            with fake._lock:
                fake.uploads += 1
            self._json(200, fake._new_file(content, purpose, fields["file"].get_filename() or "input.jsonl"))
        elif parts == ["batches"]:
            length = int(self.headers.get("Content-Length") or 0)
            status, payload = fake._create(json.loads(self.rfile.read(length) or b"{}"))
            if status == 200 and fake.lose_create_answers > 0:
                fake.lose_create_answers -= 1  # the batch exists; the client never learns its id
                self._json(500, {"error": {"message": "upstream connection reset", "type": "server_error"}})
                return
            self._json(status, payload)
        elif parts[:1] == ["batches"] and len(parts) == 3 and parts[2] == "cancel":
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            entry = fake.batches.get(parts[1])
            if entry is None:
                self._json(404, {"error": {"message": "no such batch"}})
                return
            entry["object"].update(status="cancelled", cancelled_at=int(time.time()))
            self._json(200, entry["object"])
        else:
            super().do_POST()

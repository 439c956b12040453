"""A real HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions protocol.

It answers ``POST /v1/chat/completions`` (and ``/chat/completions``, and Ollama's own
``POST /api/generate``, which litellm's ``ollama/`` models call) with a three-step
rationale built from the prompt's numbered history lines, after ``latency`` seconds, and
can inject faults: 429 (with ``Retry-After``), 500, a timeout (sleeps past the client's
limit), a truncated JSON body, an empty answer, an answer without steps. Faults are drawn
per request from a seeded RNG keyed by (request body, how often that body was seen), and
at most ``max_faults_per_request`` times per body, so every request eventually succeeds.

It logs every request (body hash, outcome, Authorization header, time) so tests can check
that no request was paid for twice and that the key that reached the server is the one
the user exported. An answer is written (and billed) only to a client still connected:
one whose process died while the server worked is logged as ``client_gone``. Chaos tests
can run ``on_request(n, authorization)`` as the n-th request arrives and hold every answer while
``frozen`` is set (e.g. to SIGKILL a client while it has requests in flight). Run it by hand: ``python tests/helpers/fake_openai_server.py --latency 0.5``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

FAULTS = ("429", "500", "timeout", "truncated", "empty", "malformed")


@dataclass
class Logged:
    body_hash: str
    outcome: str  # "ok" or a fault name
    authorization: str
    finished: float  # time.time() when the response was written
    prompt: str


@dataclass
class FakeOpenAIServer:
    latency: float = 0.0
    faults: dict[str, float] = field(default_factory=dict)  # fault name -> probability
    max_faults_per_request: int = 2
    timeout_sleep: float = 3.0
    seed: int = 0
    usd_tokens: bool = True  # report usage so litellm can price known models
    require_key: str | None = None  # answer 401 unless "Authorization: Bearer <require_key>"
    fail_when: Callable[[str], bool] | None = None  # 500 for every prompt it accepts (until unset)
    on_request: Callable[[int, str], None] | None = None  # (n, Authorization) as the n-th arrives
    hold: Callable[[str], bool] | None = None  # answers wait while hold(Authorization) is true
    host: str = "127.0.0.1"
    port: int = 0

    def __post_init__(self):
        unknown = set(self.faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {unknown}; known: {FAULTS}")
        self.log: list[Logged] = []
        self.frozen = threading.Event()  # while set, answers wait (they are not written)
        self.requests = 0
        self._seen: dict[str, int] = {}
        self._faulted: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> FakeOpenAIServer:
        server = self

        class Handler(_Handler):
            fake = server

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self._server.request_queue_size = 256
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # -- accounting -----------------------------------------------------------------------
    def paid(self) -> list[Logged]:
        """Requests that got a complete answer (what a hosted provider would bill)."""
        return [e for e in self.log if e.outcome in ("ok", "empty", "malformed")]

    def paid_per_body(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in self.paid():
            counts[entry.body_hash] = counts.get(entry.body_hash, 0) + 1
        return counts

    def _decide(self, body_hash: str) -> str:
        with self._lock:
            seen = self._seen.get(body_hash, 0)
            self._seen[body_hash] = seen + 1
            if self._faulted.get(body_hash, 0) >= self.max_faults_per_request:
                return "ok"
            rng = random.Random(f"{self.seed}:{body_hash}:{seen}")
            roll = rng.random()
            edge = 0.0
            for name in FAULTS:
                edge += self.faults.get(name, 0.0)
                if roll < edge:
                    self._faulted[body_hash] = self._faulted.get(body_hash, 0) + 1
                    return name
            return "ok"

    def _record(self, body_hash: str, outcome: str, auth: str, prompt: str) -> None:
        with self._lock:
            self.log.append(Logged(body_hash, outcome, auth, time.time(), prompt))


def rationale_for(prompt: str) -> str:
    """A deterministic three-step answer naming the prompt's history items."""
    items = re.findall(r"^\s*\d+\.\s*(.+)$", prompt, flags=re.MULTILINE)
    titles = [item.split(";")[0].strip() for item in items] or ["nothing"]
    return (
        f"Step 1: The user enjoyed {len(titles)} items, most recently {titles[-1]}.\n"
        f"Step 2: Recommend more like {titles[0]}.\n"
        f"Step 3: Recommend the sequel of {titles[-1]}."
    )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeOpenAIServer

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def _client_gone(self) -> bool:
        """Whether the client closed its end (its process died) while we worked."""
        import select
        import socket

        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, json.dumps({"object": "list", "data": [{"id": "fake", "object": "model"}]}).encode())
        else:
            self._send(404, b'{"error": {"message": "not found"}}')

    def do_POST(self) -> None:
        fake = self.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        ollama = self.path.rstrip("/").endswith("/api/generate")  # Ollama's protocol
        if not (ollama or self.path.rstrip("/").endswith("/chat/completions")):
            self._send(404, b'{"error": {"message": "not found"}}')
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._send(400, b'{"error": {"message": "bad json"}}')
            return
        canonical = json.dumps(
            {k: body.get(k) for k in ("model", "messages", "prompt", "temperature", "max_tokens", "seed")},
            sort_keys=True,
        )
        body_hash = hashlib.sha256(canonical.encode()).hexdigest()[:16]
        prompt = str(body.get("prompt", "")) if ollama else "\n".join(
            str(m.get("content", "")) for m in body.get("messages", []))
        with fake._lock:
            fake.requests += 1
            number = fake.requests
        auth = self.headers.get("Authorization", "")
        if fake.on_request is not None:
            fake.on_request(number, auth)
        if fake.require_key is not None and auth != f"Bearer {fake.require_key}":
            fake._record(body_hash, "401", auth, prompt)
            self._send(401, b'{"error": {"message": "Incorrect API key provided", '
                            b'"type": "invalid_request_error", "code": "invalid_api_key"}}')
            return
        outcome = "500" if fake.fail_when is not None and fake.fail_when(prompt) else fake._decide(body_hash)
        if fake.latency:
            time.sleep(fake.latency)
        while fake.frozen.is_set() or (fake.hold is not None and fake.hold(auth)):
            time.sleep(0.01)
        if self._client_gone():
            fake._record(body_hash, "client_gone", auth, prompt)
            self.close_connection = True
            return
        if outcome == "429":
            fake._record(body_hash, outcome, auth, prompt)
            self._send(429, b'{"error": {"message": "rate limited", "type": "rate_limit"}}',
                       {"Retry-After": "0"})
            return
        if outcome == "500":
            fake._record(body_hash, outcome, auth, prompt)
            self._send(500, b'{"error": {"message": "server exploded", "type": "server_error"}}')
            return
        if outcome == "timeout":
            time.sleep(fake.timeout_sleep)
            fake._record(body_hash, outcome, auth, prompt)
            try:
                self._send(504, b'{"error": {"message": "too late"}}')
            except OSError:
                pass
            return
        content = rationale_for(prompt)
        if outcome == "empty":
            content = ""
        elif outcome == "malformed":
            content = "I think the user likes movies."
        completion_tokens = len(content.split())
        payload = json.dumps(
            {
                "id": f"chatcmpl-{body_hash}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": len(prompt.split()),
                    "completion_tokens": completion_tokens,
                    "total_tokens": len(prompt.split()) + completion_tokens,
                },
            }
        ).encode()
        if ollama:
            payload = json.dumps({"model": body.get("model", "fake"), "created_at": "2026-01-01T00:00:00Z",
                                  "response": content, "done": True, "done_reason": "stop",
                                  "prompt_eval_count": len(prompt.split()),
                                  "eval_count": completion_tokens}).encode()
        if outcome == "truncated":
            fake._record(body_hash, outcome, auth, prompt)
            self._send(200, payload[: len(payload) // 2])
            return
        fake._record(body_hash, outcome, auth, prompt)
        self._send(200, payload)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--fault", action="append", default=[], help="name=probability, e.g. 429=0.1")
    args = parser.parse_args()
    faults = {k: float(v) for k, v in (f.split("=") for f in args.fault)}
    server = FakeOpenAIServer(latency=args.latency, faults=faults, port=args.port).start()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()

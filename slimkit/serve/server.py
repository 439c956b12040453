"""Run the service with uvicorn: from the command line (:func:`serve`) or, for tests and
embedding, in a background thread of the current process (:class:`BackgroundServer`)."""

from __future__ import annotations

import threading
import time
from typing import Any

from slimkit.cache import StageCache
from slimkit.errors import SlimkitError
from slimkit.serve.service import RecommendationService

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _config(service: RecommendationService, host: str, port: int, log_level: str) -> Any:
    import uvicorn

    from slimkit.serve.app import create_app

    # One worker process: the model is loaded once and shared by the thread pool.
    return uvicorn.Config(create_app(service), host=host, port=port, log_level=log_level,
                          access_log=log_level in ("debug", "info"))


def serve(spec: Any, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
          cache: StageCache | None = None, on_ready: Any = None) -> None:
    """Load the spec's trained pipeline and serve it on ``host:port`` until interrupted
    (Ctrl-C or SIGTERM: a graceful shutdown, then return)."""
    import uvicorn

    service = RecommendationService(spec, cache)
    if on_ready is not None:
        on_ready(service)
    server = uvicorn.Server(_config(service, host, port, log_level))
    try:
        server.run()
    except KeyboardInterrupt:
        # uvicorn shuts down on Ctrl-C, then raises the signal again for the caller: a
        # server stopped that way has done its job.
        pass
    except SystemExit:
        if server.started:
            raise
        # uvicorn exits when it cannot bind; say why below instead.
    if not server.started:
        raise SlimkitError(f"The service could not listen on {host}:{port}.",
                           hint="Is the port in use? Pick another with --port.")


class BackgroundServer:
    """A uvicorn server for ``service`` in a daemon thread (``with`` starts and stops it)."""

    def __init__(self, service: RecommendationService, host: str = "127.0.0.1", port: int = 0,
                 log_level: str = "warning"):
        import uvicorn

        self.service = service
        self.server = uvicorn.Server(_config(service, host, port, log_level))
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="slimkit-serve")

    @property
    def url(self) -> str:
        """``http://host:port`` the server listens on (the port chosen when given 0)."""
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

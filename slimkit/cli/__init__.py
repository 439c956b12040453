"""The ``slimkit`` command line: a thin layer over the library.

Every command lives in its own module and calls one library function. Heavy libraries
(torch, transformers, litellm, sentence-transformers) are imported inside the commands
that need them, so ``slimkit --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from slimkit._version import __version__
from slimkit.cli import cache as cache_cmd
from slimkit.cli import compare as compare_cmd
from slimkit.cli import config as config_cmd
from slimkit.cli import data as data_cmd
from slimkit.cli import distill as distill_cmd
from slimkit.cli import export as export_cmd
from slimkit.cli import models as models_cmd
from slimkit.cli import plugins as plugins_cmd
from slimkit.cli import recommend as recommend_cmd
from slimkit.cli import run as run_cmd
from slimkit.cli import serve as serve_cmd
from slimkit.cli import status as status_cmd
from slimkit.cli import teach as teach_cmd
from slimkit.cli import train as train_cmd
from slimkit.cli import tune as tune_cmd

app = typer.Typer(
    name="slimkit",
    help=(
        "Add LLM reasoning to sequential recommendation cheaply (the SLIM method).\n\n"
        "A teacher LLM writes step-by-step rationales for a sample of users, a small student "
        "LLM learns to write them for everyone, and the rationales, encoded as vectors, make "
        "SASRec, GRU4Rec or SRGNN better and explainable. Stages: data -> teach -> distill "
        "-> encode -> train; each is cached. Start with: slimkit run -c examples/quickstart.yaml"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"slimkit {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    cache_dir: Path | None = typer.Option(
        None,
        "--cache-dir",
        help="Cache directory for stage outputs and LLM responses (env: SLIMKIT_CACHE_DIR).",
        show_default=False,
    ),
    threads: int | None = typer.Option(
        None,
        "--threads",
        min=1,
        help="CPU threads for torch (env: SLIMKIT_NUM_THREADS; default 1, measured fastest "
        "on a busy 2-core machine).",
        show_default=False,
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    if cache_dir is not None:
        os.environ["SLIMKIT_CACHE_DIR"] = str(cache_dir)
    if threads is not None:
        os.environ["SLIMKIT_NUM_THREADS"] = str(threads)


data_cmd.register(app)
teach_cmd.register(app)
distill_cmd.register(app)
train_cmd.register(app)
compare_cmd.register(app)
recommend_cmd.register(app)
serve_cmd.register(app)
export_cmd.register(app)
run_cmd.register(app)
tune_cmd.register(app)
status_cmd.register(app)
plugins_cmd.register(app)
config_cmd.register(app)
cache_cmd.register(app)
models_cmd.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one panel and exit code 2."""
    from slimkit.runtime import configure_environment

    configure_environment()
    try:
        result = app(args=argv, prog_name="slimkit", standalone_mode=False)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        _interrupted()
    except Exception as exc:  # noqa: BLE001 - sorted below
        code = handle_exception(exc)
        sys.exit(code)
    # typer turns Ctrl-C into Exit(130) and, outside standalone mode, returns the code.
    if result == 130:
        _interrupted()
    if isinstance(result, int) and not isinstance(result, bool) and result:
        sys.exit(result)
    sys.exit(0)


def _interrupted() -> None:
    from slimkit.console import stderr_console

    stderr_console().print(
        "[yellow]Interrupted.[/] Finished work is cached; run the same command again to resume."
    )
    sys.exit(130)


def handle_exception(exc: BaseException) -> int:
    """Print a user error as a panel (exit 2); re-raise anything else as a bug."""
    import typer

    from slimkit.errors import SlimkitError

    # typer vendors its own click; match its exceptions (and plain click's) by shape.
    if isinstance(exc, typer.Exit) or type(exc).__name__ == "Exit":
        return int(getattr(exc, "exit_code", 0))
    if isinstance(exc, typer.Abort) or type(exc).__name__ == "Abort":
        return 130
    if hasattr(exc, "show") and hasattr(exc, "exit_code"):
        exc.show()
        return 2
    if isinstance(exc, SlimkitError):
        from rich.panel import Panel
        from rich.text import Text

        from slimkit.console import stderr_console

        body = Text(exc.message)
        for problem in exc.problems:
            body.append(f"\n  • {problem}")
        if exc.hint:
            body.append(f"\n\n{exc.hint}", style="dim")
        stderr_console().print(Panel(body, title="slimkit: error", border_style="red", expand=False))
        return exc.exit_code
    import sqlite3

    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        # A store damaged while this command ran (damage found on opening is repaired there).
        from slimkit.console import stderr_console
        from slimkit.paths import cache_dir

        stderr_console().print(
            f"[red]slimkit: a cache file under {cache_dir()} was damaged while this command ran "
            f"({exc}).[/] Run the same command again: the damaged store is moved aside and its "
            "readable entries kept.")
        return 1
    raise exc

"""The one place slimkit makes rich consoles, status spinners and progress bars.

Progress and tables go to stderr, so ``--json`` output on stdout stays clean. rich is
imported on first use only (``slimkit --help`` never pays for it).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

NON_TERMINAL_WIDTH = 160
"""Width of the console when stderr is not a terminal (CI logs, ``nohup``) and COLUMNS is
unset: rich's default of 80 cuts progress lines short ("9…")."""


def stderr_console():
    """A rich console on stderr (progress, tables, notes)."""
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console = Console(stderr=True, width=NON_TERMINAL_WIDTH)
    return console


def stdout_console():
    """A rich console on stdout (a command's own result, when not ``--json``)."""
    from rich.console import Console

    return Console()


def status(text: str, enabled: bool = True):
    """A spinner with ``text`` on stderr while the block runs (nothing when disabled)."""
    if not enabled:
        return nullcontext()
    return stderr_console().status(text)


def progress_bar(*fields: str, enabled: bool = True, transient: bool = False) -> Any:
    """A rich ``Progress`` on stderr: description, bar, done/total, then one text column per
    entry of ``fields`` (rich markup such as ``"{task.fields[tps]:.1f} tok/s"``), elapsed
    and remaining time. Disabled, it accepts the same calls and draws nothing."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    columns += [TextColumn(field) for field in fields]
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    return Progress(*columns, console=stderr_console(), disable=not enabled, transient=transient)


@contextmanager
def quiet_libraries(enabled: bool) -> Iterator[None]:
    """Keep library chatter (weight-loading bars, deprecation notices) out of the display.

    The stages draw their own progress; a second tqdm bar or a FutureWarning from
    transformers in the middle of it only makes the view harder to read.
    """
    if not enabled:
        yield
        return
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    with warnings.catch_warnings():
        for module in ("transformers", "peft", "sentence_transformers", "torch", "huggingface_hub"):
            warnings.filterwarnings("ignore", category=FutureWarning, module=module)
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)
        yield

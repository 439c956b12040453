"""`slimkit data`: prepare and inspect the dataset of a spec, fetch the demo dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from slimkit.cli._common import (
    ConfigOption,
    JsonOption,
    SetOption,
    load_spec_from_cli,
    print_json,
)
from slimkit.console import stdout_console

data_app = typer.Typer(
    help="Prepare and inspect datasets (statistics, one user's history); fetch ml-100k.",
    no_args_is_help=True,
)

UserOption = typer.Option(..., "--user", "-u", help="Raw user id, as in the source data.")
LimitOption = typer.Option(0, "--limit", "-n", min=0, help="Show only the last N events (0: all).")
DestOption = typer.Option(
    None,
    "--dest",
    help="Folder for the files (default: <data dir>/ml-100k; env SLIMKIT_DATA_DIR).",
    show_default=False,
)

_LABELS = {
    "users": "users",
    "items": "items",
    "interactions": "interactions",
    "avg_seq_len": "avg sequence length",
    "median_seq_len": "median sequence length",
    "min_seq_len": "shortest sequence",
    "max_seq_len": "longest sequence",
    "density": "density",
    "items_with_text_share": "items with text",
    "model_input_len": "model input length (max_seq_len)",
    "first_event": "first event",
    "last_event": "last event",
    "events_read": "events read",
    "duplicates_dropped": "duplicates dropped",
    "events_dropped_by_filter": "events dropped (k-core, <3 events)",
    "skipped_lines": "malformed lines skipped",
}


def _format(key: str, value: Any) -> str:
    if key == "density":
        return f"{value:.4%}"
    if key == "items_with_text_share":
        return f"{value:.1%}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


@data_app.command("stats")
def stats(
    config: Path | None = ConfigOption,
    overrides: list[str] | None = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Users, items, interactions, sequence lengths, density, share of items with text."""
    from slimkit.cli._common import run_stage

    spec, result = run_stage(config, overrides, "data", progress=not as_json)
    summary = dict(result.summary)
    if as_json:
        print_json(
            {**summary, "cached": result.cached, "key": result.key, "path": str(result.path)}
        )
        return
    from rich.table import Table

    table = Table(
        title=f"dataset {summary.get('name', '')} ({spec.dataset.kind})", show_header=False
    )
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    for key, label in _LABELS.items():
        if key in summary:
            table.add_row(label, _format(key, summary[key]))
    console = stdout_console()
    console.print(table)
    for key in ("source", "item_source", "origin"):
        if summary.get(key):
            console.print(f"[dim]{key.replace('_', ' ')}:[/] {summary[key]}")
    if summary.get("terms"):
        console.print(f"[dim]terms:[/] {summary['terms']}")
    state = "from the cache" if result.cached else f"prepared in {result.seconds:.1f} s"
    console.print(f"[dim]{state}: {result.path}[/]")


@data_app.command("show")
def show(
    user: str = UserOption,
    config: Path | None = ConfigOption,
    overrides: list[str] | None = SetOption,
    limit: int = LimitOption,
    as_json: bool = JsonOption,
) -> None:
    """One user's history: time, item, item text, and which split each event is in."""
    from datetime import datetime, timezone

    from slimkit.errors import SlimkitError
    from slimkit.pipeline import Pipeline

    spec = load_spec_from_cli(config, overrides)
    dataset = Pipeline(spec, progress=not as_json).dataset()
    try:
        index = dataset.user_index(user)
    except KeyError:
        examples = ", ".join(dataset.user_ids[:5])
        raise SlimkitError(
            f"User {user!r} is not in the prepared {dataset.name} dataset "
            f"({dataset.num_users:,} users, e.g. {examples}).",
            hint="Use the raw id from the source file. Users with fewer than 3 events (or "
            "below dataset.min_user_interactions) are dropped during preparation.",
        ) from None
    items = dataset.sequence(index)
    stamps = dataset.sequence_timestamps(index)
    order_only = dataset.info.get("time_unit") == "order"
    length = len(items)
    events = []
    for position, (item, stamp) in enumerate(zip(items.tolist(), stamps.tolist())):
        split = "test" if position == length - 1 else "valid" if position == length - 2 else "train"
        when = (
            None
            if order_only
            else datetime.fromtimestamp(stamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")
        )
        events.append(
            {
                "position": position,
                "item": dataset.item_ids[item],
                "item_index": item,
                "timestamp": stamp,
                "time": when,
                "split": split,
                "text": dataset.item_text[item],
                "has_text": bool(dataset.has_text[item]),
            }
        )
    shown = events[-limit:] if limit else events
    if as_json:
        print_json({"user": user, "user_index": index, "events_total": length, "events": shown})
        return
    from rich.table import Table

    table = Table(
        title=f"user {user} (index {index}): {length} events"
        + (f", last {len(shown)} shown" if len(shown) < length else "")
    )
    table.add_column("#", justify="right")
    table.add_column("time" if not order_only else "order")
    table.add_column("item")
    table.add_column("split")
    table.add_column("item text", overflow="fold")
    styles = {"train": "", "valid": "yellow", "test": "green"}
    for event in shown:
        text = event["text"] if event["has_text"] else f"[dim]{event['text']}[/]"
        table.add_row(
            str(event["position"]),
            event["time"] or str(event["timestamp"]),
            event["item"],
            f"[{styles[event['split']]}]{event['split']}[/]" if styles[event["split"]] else "train",
            text,
        )
    stdout_console().print(table)


@data_app.command("fetch")
def fetch(
    dest: Path | None = DestOption,
    as_json: bool = JsonOption,
) -> None:
    """Fetch MovieLens-100K (RecBole atomic files from the recbole==1.2.1 wheel on PyPI)."""
    from slimkit.assets import source_info
    from slimkit.data.loaders.movielens import TERMS, fetch_ml100k

    folder = fetch_ml100k(dest)
    source = source_info(folder) or {}
    if as_json:
        print_json({"path": str(folder), "source": source, "terms": TERMS})
        return
    console = stdout_console()
    origin = (
        f"{source['package']}=={source['version']} wheel (sha256 {source['sha256'][:12]}...), "
        f"fetched {source['fetched']}"
        if source
        else "files placed by hand"
    )
    console.print(f"MovieLens-100K is in {folder}\n[dim]from:[/] {origin}\n[dim]terms:[/] {TERMS}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")

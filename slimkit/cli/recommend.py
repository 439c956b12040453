"""`slimkit recommend`: top-K items for one user with the rationale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from slimkit.cli._common import ConfigOption, JsonOption, SetOption


def recommend_command(
    config: Path | None = ConfigOption,
    overrides: list[str] | None = SetOption,
    user: str | None = typer.Option(
        None, "--user", "-u", help="Raw user id as in the dataset's files, e.g. 196.",
        show_default=False,
    ),
    history: str | None = typer.Option(
        None,
        "--history",
        help="A new user: their items (raw ids, comma separated, oldest first); the student "
        "writes their rationale on the spot.",
        show_default=False,
    ),
    k: int = typer.Option(10, "--k", "-k", min=1, help="How many items to recommend."),
    include_history: bool = typer.Option(
        False, "--include-history", help="Allow items the user already has."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Recommend top-K items for a user, with the student's rationale beside them.

    Needs a trained model: run `slimkit run -c FILE` first.
    """
    from slimkit.cli._common import load_spec_from_cli, print_json
    from slimkit.errors import SlimkitError
    from slimkit.recommend import recommend

    if (user is None) == (history is None):
        raise SlimkitError(
            "Give either --user ID (a known user) or --history ITEM,ITEM,... (a new user).",
            hint="Example: slimkit recommend -c examples/quickstart.yaml --user 196",
        )
    spec = load_spec_from_cli(config, overrides)
    items = [h.strip() for h in history.split(",")] if history is not None else None
    result = recommend(spec, user=user, history=items, k=k, include_history=include_history)
    if as_json:
        print_json(result)
        return
    show(result)


def show(result: dict[str, Any]) -> None:
    """History, rationale and the ranked items, for a terminal."""
    from rich.table import Table
    from rich.text import Text

    from slimkit.console import stdout_console
    from slimkit.recommend import RECENT_HISTORY

    console = stdout_console()
    who = f"user {result['user']}" if result["user"] is not None else "a new user"
    model = result["model"]
    console.rule(f"[bold]Recommendations for {who}[/] ({model['backbone']} + {model['fusion']})")

    history = result["history"][-RECENT_HISTORY:]
    console.print(
        f"[bold]Recent history[/] (last {len(history)} of {result['history_length']}, "
        "most recent last):"
    )
    for item in history:
        console.print(Text(f"  • {item['title']}"))

    rationale = result.get("rationale")
    if rationale:
        label = "student's" if rationale["source"] == "student" else "teacher's"
        console.print(f"\n[bold]The {label} rationale[/]:")
        steps = rationale.get("steps")
        if steps:
            names = {"1": "preferences", "2": "categories", "3": "items"}
            for number in ("1", "2", "3"):
                text = " ".join(str(steps.get(number, "")).split())
                console.print(Text.assemble((f"  Step {number} ({names[number]}): ", "cyan"), text))
        else:
            console.print(Text("  " + " ".join(rationale["text"].split())))
            console.print("  [dim](not in the three-step format)[/]")
    else:
        console.print("\n[dim]No rationale: this fusion head does not use one.[/]")

    table = Table(title=f"\nTop {result['k']}", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("title")
    table.add_column("item id", justify="right")
    table.add_column("score", justify="right")
    table.add_column("named in", justify="left")
    for item in result["items"]:
        table.add_row(
            str(item["rank"]),
            item["title"],
            str(item["item_id"]),
            f"{item['score']:.3f}",
            f"step {item['step']}" if item["step"] else "",
        )
    console.print(table)
    named = (rationale or {}).get("named_items") or []
    if named:
        shown = sum(item["step"] == 3 for item in result["items"])
        console.print(f"[dim]The rationale's step 3 names {len(named)} catalogue item"
                      f"{'s' if len(named) != 1 else ''}; {shown} of them in this top {result['k']}.[/]")
    masked = "excluded" if result["masked_history"] else "allowed"
    console.print(f"[dim]Items already in the history are {masked}.[/]")


def register(app: typer.Typer) -> None:
    app.command("recommend")(recommend_command)

"""`slimkit cache`: inspect and clear the stage cache and the paid LLM answers."""

from __future__ import annotations

import sys

import typer

from slimkit.cli._common import JsonOption, human_size, print_json

cache_app = typer.Typer(
    help="Inspect or clear cached stage outputs and LLM responses "
    "(location: --cache-dir, SLIMKIT_CACHE_DIR, or the user cache dir).",
    no_args_is_help=True,
)


def _money(value) -> str:
    return "" if not value else f" (${value:.4f} paid)"


@cache_app.command("info")
def info(as_json: bool = JsonOption) -> None:
    """Where the cache is, its size, entries per stage, and the stored LLM answers (paid)."""
    from slimkit.cache import StageCache

    data = StageCache().info()
    if as_json:
        print_json(data)
        return
    from rich.table import Table

    from slimkit.console import stdout_console

    table = Table(title=f"slimkit cache: {data['path']} ({human_size(data['bytes'])})")
    table.add_column("stage / records")
    table.add_column("entries", justify="right")
    table.add_column("size", justify="right")
    for name, row in data["stages"].items():
        table.add_row(name, str(row["entries"]), human_size(row["bytes"]))
    for name, row in data["records"].items():
        label = f"records: {name}" + (" (LLM answers, paid)" if row.get("paid") else "")
        entries = str(row["entries"]) + _money(row.get("cost_usd"))
        table.add_row(label, entries, human_size(row["bytes"]))
    console = stdout_console()
    console.print(table)
    if data.get("moved_aside"):
        console.print("Damaged files moved aside (safe to delete once checked): "
                      + ", ".join(data["moved_aside"]))


@cache_app.command("clear")
def clear(
    stage_arg: str | None = typer.Argument(
        None, metavar="[STAGE]", help="Same as --stage.", show_default=False),
    stage: str | None = typer.Option(
        None, "--stage", help="Only this stage (data, teach, distill, encode, train, compare).",
        show_default=False,
    ),
    llm: bool = typer.Option(
        False, "--llm",
        help="Also delete the cached LLM answers (paid for: a hosted teacher asks again, and "
        "bills again). Without it they are always kept.",
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Remove cached stage outputs (one stage, or all of them and the local record stores).

    LLM answers are kept unless --llm is given. The command lists what it will delete, with
    counts and sizes, and asks first (--yes skips the question; without a terminal, --yes
    is required).
    """
    from slimkit.cache import STAGES, StageCache
    from slimkit.console import stderr_console
    from slimkit.errors import SlimkitError, did_you_mean

    stage = stage or stage_arg
    if stage is not None and stage not in STAGES:
        raise SlimkitError(
            f"Unknown stage '{stage}'.{did_you_mean(stage, STAGES)} Stages: {', '.join(STAGES)}."
        )
    cache = StageCache()
    plan = cache.clear_plan(stage, llm=llm)
    console = stderr_console()
    if not plan:
        console.print(f"Nothing to clear in {cache.root}.")
        return
    console.print(f"This deletes from {cache.root}:")
    for row in plan:
        paid = " [bold red]PAID LLM ANSWERS[/]" + _money(row.get("cost_usd")) if row["paid"] else ""
        console.print(f"  {row['what']}: {row['entries']} entries, {human_size(row['bytes'])}{paid}")
    if not llm and stage is None:
        kept = cache.info()["records"].get("llm")
        if kept:
            console.print(f"Kept: {kept['entries']} cached LLM answers{_money(kept.get('cost_usd'))} "
                          "(add --llm to delete them too).")
    if not yes:
        if not sys.stdin.isatty():
            raise SlimkitError(
                "slimkit cache clear: not deleting without confirmation (no terminal to ask on).",
                hint="Pass --yes to delete what is listed above.",
            )
        if not typer.confirm("Delete these?"):
            console.print("Nothing deleted.")
            raise typer.Exit(1)
    removed = cache.clear(stage, llm=llm)
    console.print(f"Removed {removed} cached {stage or 'stage'} output(s)"
                  + (" and the cached LLM answers." if llm else "; LLM answers kept."))


@cache_app.command("merge")
def merge(
    source: str = typer.Argument(..., metavar="FROM", help="The other cache folder (its "
                                 "SLIMKIT_CACHE_DIR), e.g. copied back from another machine."),
    as_json: bool = JsonOption,
) -> None:
    """Copy into this cache the per-item records (student rationales, adapters, LLM answers,
    vectors) of another cache folder that this one lacks, and its distill shards' progress.

    For `slimkit distill --shard` runs on machines that do not share one cache folder (see
    docs/distill-shards.md); records already here are kept, stage outputs are not copied.
    """
    from pathlib import Path

    from slimkit.cache import StageCache
    from slimkit.console import stdout_console
    from slimkit.errors import SlimkitError
    from slimkit.pipeline.shards import merge_shard_progress

    folder = Path(source).expanduser()
    target = StageCache()
    if not (folder / "records").is_dir() and not (folder / "stages").is_dir():
        raise SlimkitError(f"slimkit cache merge: {folder} is not a slimkit cache folder "
                           "(it has no records/ or stages/).",
                           hint="Give the folder a run used as SLIMKIT_CACHE_DIR (or --cache-dir).")
    if folder.resolve() == target.root.resolve():
        raise SlimkitError(f"slimkit cache merge: {folder} is this cache itself.")
    other = StageCache(folder)
    try:
        records = target.merge_records(other)
        progress = merge_shard_progress(other, target)
    finally:
        other.close()
    if as_json:
        print_json({"from": str(folder), "into": str(target.root), "records": records,
                    "shard_progress_files": progress})
        return
    console = stdout_console()
    for name, row in records.items():
        console.print(f"records: {name}: {row['copied']} copied, {row['kept']} already here")
    console.print(f"distill shard progress files: {progress} copied into {target.root}")


def register(app: typer.Typer) -> None:
    app.add_typer(cache_app, name="cache")

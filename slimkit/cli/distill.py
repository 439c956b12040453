"""`slimkit distill`: fine-tune the student and write every user's rationale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from slimkit.cli._common import ConfigOption, JsonOption, SetOption


def summary_table(summary: dict[str, Any], cached_stage: bool):
    """The rich table `slimkit distill` prints before the quality report."""
    from rich.table import Table

    title = "distill" + (" (stage output from the cache)" if cached_stage else "")
    table = Table(title=title, show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    training = summary.get("training") or {}
    adapter = summary.get("adapter")
    if adapter == "trained":
        first, last = training.get("train_loss_first"), training.get("train_loss_last")
        table.add_row("LoRA adapter", f"trained on {summary.get('train_users', 0)} teacher users")
        table.add_row("optimizer steps", f"{training.get('steps', 0)} "
                      f"({training.get('seconds_per_step', 0):.2f} s/step)")
        if first is not None and last is not None:
            table.add_row("train loss (first -> last step)", f"{first:.3f} -> {last:.3f}")
        valid = training.get("valid_loss") or []
        if training.get("valid_loss_before") is not None and valid:
            table.add_row("held-out loss (before -> after)",
                          f"{training['valid_loss_before']:.3f} -> {valid[-1]:.3f}")
    elif adapter == "restored":
        table.add_row("LoRA adapter", "restored from an earlier run (not trained again)")
    else:
        table.add_row("LoRA adapter", f"given: {training.get('path', '?')}")
    table.add_row("users with a rationale", f"{summary.get('users', 0):,}")
    table.add_row("  generated now / from the cache",
                  f"{summary.get('generated', 0):,} / {summary.get('cached', 0):,}")
    table.add_row("  three-step format", f"{summary.get('well_formed_share', 0):.0%}")
    if summary.get("tokens_per_s"):
        table.add_row("generation speed", f"{summary['tokens_per_s']:.1f} tokens/s "
                      f"({summary.get('backend', '?')})")
    table.add_row("wall time", f"{summary.get('seconds', 0):.1f} s")
    return table


def shard_table(summary: dict[str, Any]):
    """The rich table `slimkit distill --shard I/N` prints."""
    from rich.table import Table

    table = Table(title=f"distill shard {summary['shard']} (not the stage output)", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    adapter = {"trained": "trained here", "restored": "restored (trained by an earlier or "
               "another run)", "given": "given (student.adapter)"}
    table.add_row("LoRA adapter", adapter.get(summary.get("adapter"), str(summary.get("adapter"))))
    table.add_row("users of this shard", f"{summary.get('users', 0):,} of {summary.get('total_users', 0):,}")
    table.add_row("  rationales generated now / from the cache",
                  f"{summary.get('generated', 0):,} / {summary.get('cached', 0):,}")
    if summary.get("base_generated"):
        table.add_row("  of which the base student's (held-out users)", f"{summary['base_generated']:,}")
    if summary.get("tokens_per_s"):
        table.add_row("generation speed", f"{summary['tokens_per_s']:.1f} tokens/s "
                      f"({summary.get('backend', '?')})")
    table.add_row("wall time", f"{summary.get('seconds', 0):.1f} s")
    return table


def _run_shard(config: Path | None, overrides: list[str] | None, shard_text: str | None,
               as_json: bool) -> None:
    from slimkit.cli._common import load_spec_from_cli, print_json
    from slimkit.console import stdout_console
    from slimkit.pipeline.shards import run_distill_shard
    from slimkit.stages.distill_shards import ADAPTER_ONLY, parse_shard

    shard = parse_shard(shard_text) if shard_text is not None else ADAPTER_ONLY
    summary = run_distill_shard(load_spec_from_cli(config, overrides), shard)
    if as_json:
        print_json(summary)
        return
    console = stdout_console()
    if summary.get("stage_complete"):
        console.print(f"The distill stage is already complete for this spec ({summary['path']}): "
                      f"shard {shard} has nothing to do.")
        return
    if shard is ADAPTER_ONLY:
        console.print(f"LoRA adapter {summary.get('adapter')} and kept in the cache; no rationale "
                      "generated. Copy the cache folder to the other machines, then run the shards.")
        return
    console.print(shard_table(summary))
    console.print("When every shard has finished, `slimkit distill` with the same spec (no --shard) "
                  "assembles the stage from the cache; `slimkit status` shows how many users are done.")


def distill_command(
    config: Path | None = ConfigOption,
    overrides: list[str] | None = SetOption,
    shard: str | None = typer.Option(
        None,
        "--shard",
        help="Run as shard I of N (e.g. 1/4): write the rationales of the users whose index % N "
        "== I-1 into the cache (SLIMKIT_CACHE_DIR; processes on one machine share it, other "
        "machines copy it and `slimkit cache merge` back). The LoRA adapter is trained once "
        "(the other shards wait and reuse it); a final run without --shard assembles the "
        "stage from the cache. See docs/distill-shards.md.",
        show_default=False,
    ),
    adapter_only: bool = typer.Option(
        False,
        "--adapter-only",
        help="Train (or restore) the LoRA adapter into the cache and stop: run it once before "
        "copying the cache to machines that share no cache folder (docs/distill-shards.md).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Fine-tune the student LLM with LoRA on the teacher's rationales, then write a rationale for every user."""
    from slimkit.cli._common import print_json, run_stage, stage_json
    from slimkit.console import stdout_console

    if shard is not None or adapter_only:
        if shard is not None and adapter_only:
            from slimkit.errors import SlimkitError

            raise SlimkitError("--shard and --adapter-only do not go together.",
                               hint="Run --adapter-only once first, then each --shard I/N.")
        _run_shard(config, overrides, shard, as_json)
        return
    _, result = run_stage(config, overrides, "distill")
    if as_json:
        print_json(stage_json(result))
        return
    console = stdout_console()
    console.print(summary_table(result.summary, result.cached))
    report = result.summary.get("quality")
    if report:
        from slimkit.students.quality import quality_table

        console.print(quality_table(report))
    else:
        console.print("No quality report: no held-out teacher users (student.valid_share=0 "
                      "or student.quality_users=0).")
    grounding = result.summary.get("grounding")
    if grounding:
        from slimkit.evaluation.grounding import grounding_table

        console.print(grounding_table(grounding))
    for warning in result.summary.get("warnings") or []:
        console.print(f"[yellow]Warning:[/] {warning}")
    console.print(f"Rationales: {result.path / 'rationales.jsonl'}")
    console.print(f"Adapter:    {result.path / 'adapter'}")


def register(app: typer.Typer) -> None:
    app.command("distill")(distill_command)

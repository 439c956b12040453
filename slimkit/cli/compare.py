"""`slimkit compare`: the paper's comparison table."""

from __future__ import annotations

from pathlib import Path

import typer

from slimkit.cli._common import ConfigOption, JsonOption, SetOption, load_spec_from_cli

PlotOption = typer.Option(
    None,
    "--plot",
    help="Also draw how often head and tail items are recommended per method (PNG).",
    show_default=False,
)
BackbonesOption = typer.Option(
    None,
    "--backbones",
    help="Comma list of backbones to compare, e.g. sasrec,gru4rec (default: the spec's).",
    show_default=False,
)
MethodsOption = typer.Option(
    None,
    "--methods",
    help="Comma list of rows: plain, item-text, slim-teacher, slim, text-match, "
    "text-match-teacher, text-match-step1..3, text-match-hybrid (default: all).",
    show_default=False,
)

JobsOption = typer.Option(
    1,
    "--jobs",
    min=1,
    help="Rows trained at once, each in its own process with one torch thread (so one core "
    "each; more jobs than cores only share them). Upstream stages run first, once.",
)


def compare_command(
    config: Path | None = ConfigOption,
    overrides: list[str] | None = SetOption,
    as_json: bool = JsonOption,
    plot: Path | None = PlotOption,
    backbones: str | None = BackbonesOption,
    methods: str | None = MethodsOption,
    jobs: int = JobsOption,
) -> None:
    """Run the paper's comparisons (plain, item-text, SLIM, text-match) on one dataset over seeds.

    Each row is one cached train stage run; rows that ran before are not trained again.
    """
    from slimkit.compare import METHODS, run_compare, table
    from slimkit.compare.display import sparsity_table

    spec = load_spec_from_cli(config, overrides)
    from slimkit.compare import parse_list
    from slimkit.registry import registry

    chosen_backbones = parse_list(backbones, registry("backbones").names(), "backbone")
    chosen_methods = parse_list(methods, list(METHODS), "method")
    if plot is not None and plot.suffix.lower() != ".png":
        from slimkit.errors import SlimkitError

        raise SlimkitError(f"--plot {plot}: give a .png file name.")
    result = run_compare(
        spec,
        backbones=chosen_backbones,
        methods=chosen_methods,
        plot=plot,
        progress=True,
        jobs=jobs,
    )
    if as_json:
        from slimkit.cli._common import print_json

        print_json(result.to_json())
        return
    from slimkit.console import stdout_console

    console = stdout_console()
    console.print(table(result))
    by_length = sparsity_table(result)
    if by_length is not None:
        console.print(by_length)
    note = (
        "Improv.: relative change over the best of plain / item-text / slim-teacher of the "
        "same backbone (slim-teacher only when the teacher covered every user)."
    )
    console.print(f"[dim]{note}[/]")
    console.print(
        "[dim]Δ vs plain: test mean minus plain's, 95% paired bootstrap interval over test "
        "users (pooled over seeds); * = the interval excludes 0. An interval that contains "
        "0 is inside the noise.[/]"
    )
    if result.plot is not None:
        console.print(f"Plot: {result.plot}")
    console.print(f"[dim]Stored in {result.path}[/]")


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_command)

"""`slimkit tune`: an Optuna sweep over spec values, reusing every cached stage."""

from __future__ import annotations

from pathlib import Path

import typer

from slimkit.cli._common import ConfigOption, JsonOption, SetOption


def tune_command(
    config: Path | None = ConfigOption,
    space: Path = typer.Option(
        ..., "--space", "-s",
        help="Search-space YAML: dotted spec keys -> {type: float|int|categorical, ...}.",
    ),
    trials: int = typer.Option(
        20, "--trials", "-n", min=1,
        help="Total finished trials wanted in the study (a resumed study counts earlier ones).",
    ),
    storage: str | None = typer.Option(
        None, "--storage",
        help="Optuna storage URL, e.g. sqlite:///sweep.db (default: study.db beside the results, "
        "under the cache).", show_default=False,
    ),
    study: str | None = typer.Option(
        None, "--study", help="Study name (default: the spec's file name + a digest of the spec, "
        "space and metric).", show_default=False,
    ),
    metric: str | None = typer.Option(
        None, "--metric", help="Validation metric to maximise (default: train.valid_metric).",
        show_default=False,
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Folder for results.csv, results.json and best.yaml (default: "
        "<cache>/tune/<study>).", show_default=False,
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of Optuna's sampler."),
    overrides: list[str] | None = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Sweep spec values with Optuna: each trial is the spec with the trial's values set, run
    through the cached pipeline (only the stages a trial changes run), scored on validation.

    Resumable: run the same command again (or with more --trials) to continue the study.
    """
    from slimkit.cli._common import print_json
    from slimkit.console import stderr_console, stdout_console
    from slimkit.tune import load_space, tune
    from slimkit.tune.results import results_table

    search = load_space(space, config, overrides or [])
    console = stderr_console()

    def show(row: dict) -> None:
        values = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in row["params"].items())
        score = f"valid {row['value']:.4f}" if row["value"] is not None else row["state"].lower()
        ran = ", ".join(row["ran"]) or "nothing"
        console.print(f"trial {row['trial']}: {values}  [bold]{score}[/]  [dim]ran: {ran}"
                      + (f"; {row['error']}" if row["error"] else "") + "[/]")

    report = tune(search, config=config, overrides=overrides or [], trials=trials,
                  metric=metric, storage=storage, study=study, out=out, seed=seed, on_trial=show)
    if as_json:
        print_json(report.to_dict())
        return
    stdout_console().print(results_table(report.trials, report.metric, report.best))
    if report.new_trials == 0:
        console.print(f"[dim]The study already holds {trials} finished trial(s); "
                      "raise --trials to run more.[/]")
    if report.best is not None:
        console.print(f"best: trial {report.best['trial']}, valid {report.metric} "
                      f"{report.best['value']:.4f} -> {report.files.get('best_spec')}")
    console.print(f"[dim]study {report.study} in {report.storage}; results: "
                  f"{report.files['csv']}, {report.files['json']}[/]")


def register(app: typer.Typer) -> None:
    app.command("tune")(tune_command)

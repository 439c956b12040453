"""`slimkit train`: train and evaluate the recommender."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from slimkit.cli._common import ConfigOption, JsonOption, SetOption

NprocOption = typer.Option(
    0,
    "--nproc",
    min=0,
    help="Train on N processes of this machine with DistributedDataParallel (torchrun; "
    "gloo on CPU, NCCL with one GPU per process). 0: one process, no torchrun.",
    show_default=False,
)


def train_command(
    config: Path | None = ConfigOption,
    overrides: list[str] | None = SetOption,
    as_json: bool = JsonOption,
    nproc: int = NprocOption,
) -> None:
    """Train a backbone with its fusion head and evaluate it (full ranking, HR/NDCG/MRR, popularity bias).

    train.mode auto (the default) trains causally, one forward per window
    of up to max_seq_len items with a loss at every position, when the
    backbone supports it (sasrec, gru4rec), else one sample per prefix
    (srgnn); the output says which ran.

    Threads: torch uses one thread (SLIMKIT_NUM_THREADS=N for more). More
    threads help only when N cores are idle (a dedicated machine, large
    batch_size or hidden_size); on a busy or 2-core machine they slow
    training down.

    Distributed: `slimkit train --nproc N -c spec.yaml` runs the upstream
    stages here, then `torchrun --standalone --nproc_per_node N -m slimkit
    train -c spec.yaml` (DistributedDataParallel; gloo on CPU, NCCL on GPU,
    one GPU per process). The global batch is train.batch_size as in one
    process, split between the ranks; rank 0 alone evaluates, prints and
    writes the cache. For several machines, fill the cache first (`slimkit
    run -c spec.yaml --until encode`) and start `torchrun --nnodes M
    --nproc_per_node N --rdzv-backend c10d --rdzv-endpoint HOST:PORT -m
    slimkit train -c spec.yaml` on each machine over a shared
    SLIMKIT_CACHE_DIR. See docs/scaling.md.
    """
    from slimkit.artifacts.trained import read_metrics
    from slimkit.cli._common import load_spec_from_cli, print_json, run_stage
    from slimkit.console import stderr_console, stdout_console
    from slimkit.training.distributed import launched_by_torchrun

    if nproc and launched_by_torchrun():
        from slimkit.errors import SlimkitError

        raise SlimkitError("--nproc starts torchrun itself; inside torchrun, leave it out.")
    if nproc:
        from slimkit.pipeline.distributed import launch_train

        args = ["train", *(["-c", str(config)] if config else []),
                *[part for value in overrides or [] for part in ("--set", value)],
                *(["--json"] if as_json else [])]
        code = launch_train(load_spec_from_cli(config, overrides), nproc, args)
        if code:
            raise typer.Exit(code)
        return
    if launched_by_torchrun():
        result = _train_rank(config, overrides)
        if result is None:  # ranks other than 0 print nothing
            return
        spec, result = result
    else:
        spec, result = run_stage(config, overrides, "train")
    report = read_metrics(result.path)
    report["cached"] = result.cached
    report["path"] = str(result.path)
    report["rationale_hit_rate"] = rationale_hit_rates(spec)
    if as_json:
        print_json(report)
        return
    if result.cached:
        stderr_console().print("[dim]train: taken from the cache (same spec, data and code).[/]")
    stdout_console().print(mode_line(report))
    stdout_console().print(metrics_table(report))
    stdout_console().print(popularity_table(report))
    rates = report["rationale_hit_rate"]
    if rates:
        hit = report["test"].get("hit@10")
        stdout_console().print(
            "The rationales' own hit rate (test item among the items step 3 names): "
            + ", ".join(f"{who} {rate:.4f}" for who, rate in rates.items())
            + (f"; the recommender's test hit@10 {hit:.4f}." if hit is not None else "."))
    stdout_console().print(f"[dim]model and metrics: {result.path}[/]")


ERROR_GRACE_S = 10.0
"""How long a rank other than 0 waits, after a user mistake, before it exits."""


def _train_rank(config: Path | None, overrides: list[str] | None):
    """(spec, StageResult) on rank 0 of a torchrun group, None on the others; a user
    mistake (the same on every rank) is shown by rank 0 alone."""
    from slimkit.cli._common import load_spec_from_cli
    from slimkit.errors import SlimkitError
    from slimkit.pipeline.distributed import run_train_rank
    from slimkit.training.distributed import env_rank

    main = env_rank() == 0
    try:
        spec = load_spec_from_cli(config, overrides)
        result = run_train_rank(spec, progress=main)
    except SlimkitError as exc:
        if main:
            raise
        # torchrun stops every rank once one exits with an error: give rank 0, which
        # meets the same mistake, time to show it before this rank's exit stops it.
        time.sleep(ERROR_GRACE_S)
        raise typer.Exit(exc.exit_code) from None
    return (spec, result) if main else None


def mode_line(report: dict[str, Any]) -> str:
    """Which training mode ran and how long an epoch took."""
    mode = report.get("train_mode", "per-prefix")
    how = ("one forward per window, a loss at every position" if mode == "causal"
           else "one sample per prefix")
    seconds = report.get("seconds_per_epoch")
    timing = f", {seconds:.1f} s per epoch" if seconds else ""
    return f"[dim]trained in {mode} mode ({how}){timing}[/]"


def rationale_hit_rates(spec: Any) -> dict[str, float]:
    """``{"teacher": r, "student": r}``: how often a user's test item is among the items
    their rationale's step 3 names (from the distill stage's grounding; {} without it)."""
    from slimkit.artifacts.files import read_summary
    from slimkit.pipeline import Pipeline

    folder = Pipeline(spec, progress=False).cached("distill")
    if folder is None:
        return {}
    grounding = read_summary(folder).get("grounding") or {}
    return {who: grounding[key]["hit_rate"] for who, key in (("teacher", "teacher"), ("student", "fine_tuned"))
            if (grounding.get(key) or {}).get("hit_rate") is not None}


def _fmt(mean: float, std: float | None) -> str:
    return f"{mean:.4f}" + (f" ± {std:.4f}" if std else "")


def metrics_table(report: dict[str, Any]):
    """Validation and test metrics (mean ± std over seeds) as a rich table."""
    from rich.table import Table

    seeds = [run["seed"] for run in report.get("seeds", [])]
    title = (
        f"{report.get('backbone', '?')} + {report.get('fusion', '?')}: "
        f"{report['protocol']} ranking"
        + (f" (1 target vs {report.get('num_negatives')} sampled)" if report["protocol"] == "sampled" else "")
        + f", history {'masked' if report['masked_history'] else 'not masked'}, "
        f"seeds {seeds}"
    )
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("valid", justify="right")
    table.add_column("test", justify="right")
    for name, value in report["test"].items():
        table.add_row(
            name,
            _fmt(report["valid"].get(name, float("nan")), report.get("valid_std", {}).get(name)),
            _fmt(value, report.get("test_std", {}).get(name)),
        )
    return table


def popularity_table(report: dict[str, Any]):
    """Popularity-bias metrics and sparsity groups as a rich table."""
    from rich.table import Table

    table = Table(title="popularity bias (test, top-10)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in report.get("popularity", {}).items():
        table.add_row(name, f"{value:.4f}")
    for row in report.get("sparsity", []):
        table.add_row(
            f"group {row['group']} (history {row['min_length']}-{row['max_length']}, "
            f"{row['users']} users) ndcg@10",
            f"{row.get('ndcg@10', float('nan')):.4f}",
        )
    return table


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)

"""What one pipeline run did, as data (:class:`PipelineReport`) and as tables on stderr."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class StageOutcome:
    """One stage of one run: ``ran``, ``cached``, ``skipped`` or ``not run`` (after --until)."""

    stage: str
    status: str
    key: str | None = None
    path: str | None = None
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None


@dataclass
class PipelineReport:
    """What one :func:`run_pipeline` call did and produced."""

    spec: str | None
    cache: str
    stages: list[StageOutcome]
    seconds: float
    metrics: dict[str, Any] | None = None
    teacher: dict[str, Any] | None = None
    forced: list[str] = field(default_factory=list)
    recomputed: list[str] = field(default_factory=list)

    def stage(self, name: str) -> StageOutcome:
        return next(s for s in self.stages if s.stage == name)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))


_COST_KEYS = (
    "teacher",
    "done",
    "failed",
    "cached",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "cost_unknown_users",
    "wall_s",
)


def teacher_cost(summary: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The teach stage's usage and cost, as far as its summary reports them."""
    if not summary:
        return None
    flat = dict(summary)
    for nested in ("usage", "tokens", "cost"):
        if isinstance(flat.get(nested), Mapping):
            flat = {**flat, **flat[nested]}
    out = {k: flat[k] for k in _COST_KEYS if k in flat}
    if "cost_usd" not in out:
        # Unknown, not zero: litellm has no price for local or unlisted models.
        out["cost_usd"] = None
    return out


_SHOWN = {
    "data": ("users", "items", "interactions"),
    "teach": ("teacher", "done", "failed", "well_formed", "cached", "completion_tokens"),
    "distill": ("users", "generated", "cached", "well_formed_share", "tokens_per_s", "adapter"),
    "encode": ("dim", "num_items", "num_users", "texts_encoded", "texts_reused"),
    "train": ("ndcg@10", "hit@10"),
}
"""Summary entries worth a glance per stage (others show their first few scalars)."""


def describe(summary: Mapping[str, Any], limit: int = 4, stage: str | None = None) -> str:
    """A few scalar summary entries as ``key=value`` for the one-line stage footer."""
    flat = dict(summary)
    if isinstance(flat.get("test"), Mapping):
        flat = {**flat["test"], **flat}
    wanted = [k for k in _SHOWN.get(stage or "", ()) if k in flat]
    keys = wanted or list(flat)
    parts = []
    for key in keys:
        value = flat[key]
        if value is None or not isinstance(value, (int, float, str)):
            continue
        if isinstance(value, float):
            value = f"{value:.4g}"
        parts.append(f"{key}={value}")
        if len(parts) == max(limit, len(wanted)):
            break
    return ", ".join(parts)


def _fmt_metric(value: Any) -> str:
    if isinstance(value, Mapping) and "mean" in value:
        std = value.get("std")
        return f"{value['mean']:.4f}" + (f" ± {std:.4f}" if std else "")
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def metrics_table(test: Mapping[str, Any], std: Mapping[str, Any] | None = None):
    """Test metrics as a small grid: one row per metric, one column per cut-off K."""
    from rich.table import Table

    names: list[str] = []
    cutoffs: list[str] = []
    for key in test:
        name, _, k = key.partition("@")
        if name not in names:
            names.append(name)
        if k and k not in cutoffs:
            cutoffs.append(k)
    cutoffs.sort(key=lambda k: int(k) if k.isdigit() else 0)
    table = Table(title="test metrics", title_justify="left")
    table.add_column("metric")
    for k in cutoffs:
        table.add_column(f"@{k}", justify="right")
    for name in names:
        cells = []
        for k in cutoffs:
            value = test.get(f"{name}@{k}")
            spread = (std or {}).get(f"{name}@{k}")
            text = "" if value is None else _fmt_metric(value)
            if spread:
                text += f" ± {spread:.4f}"
            cells.append(text)
        table.add_row(name, *cells)
    return table


def print_report(report: PipelineReport, console) -> None:
    """The final tables: stages (status, time, what was cached), metrics, teacher cost."""
    from rich.table import Table

    table = Table(title="slimkit run", title_justify="left")
    table.add_column("stage")
    table.add_column("status")
    table.add_column("time", justify="right")
    table.add_column("details", overflow="fold")
    styles = {"ran": "green", "cached": "cyan", "skipped": "dim", "not run": "dim"}
    for outcome in report.stages:
        detail = outcome.reason or describe(outcome.summary, limit=5, stage=outcome.stage)
        time_text = f"{outcome.seconds:.1f} s" if outcome.status in ("ran", "cached") else ""
        table.add_row(
            outcome.stage,
            f"[{styles.get(outcome.status, '')}]{outcome.status}[/]",
            time_text,
            detail,
        )
    table.add_row("total", "", f"{report.seconds:.1f} s", "", style="bold")
    console.print(table)

    if report.teacher:
        cost = report.teacher.get("cost_usd")
        parts = [f"{k}={v}" for k, v in report.teacher.items() if k != "cost_usd"]
        cost_text = "unknown (no price for this model)" if cost is None else f"${cost:.4f}"
        console.print(f"Teacher cost: {cost_text}" + (f"  [dim]{', '.join(parts)}[/]" if parts else ""))

    test = (report.metrics or {}).get("test")
    if isinstance(test, Mapping) and test:
        console.print(metrics_table(test, report.metrics.get("test_std")))
        protocol = report.metrics.get("protocol")
        masked = report.metrics.get("masked_history")
        if protocol is not None:
            console.print(
                f"[dim]protocol: {protocol} ranking; items in the history "
                f"{'masked' if masked else 'not masked'}[/]"
            )
    for line in report.recomputed:
        console.print(f"[yellow]corrupted cache entry recomputed:[/] {line}")
    if report.forced:
        console.print(f"[dim]forced: dropped cached {', '.join(report.forced)}[/]")



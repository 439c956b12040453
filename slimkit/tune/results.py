"""A study's results: one row per trial (values, validation and test metrics, which stages
ran and which came from the cache), written as CSV and JSON, shown as a table; the best
trial's spec as YAML."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

from slimkit.spec import load_spec


def result_row(trial: Any, interrupted: set[int] = frozenset()) -> dict[str, Any]:
    """One Optuna ``FrozenTrial`` as a plain row (``interrupted``: numbers of trials
    stopped by Ctrl-C or a kill, queued again)."""
    attrs = trial.user_attrs
    state = trial.state.name
    return {
        "trial": trial.number,
        "state": "INTERRUPTED" if state == "FAIL" and trial.number in interrupted else state,
        "value": trial.value if trial.state.name == "COMPLETE" else None,
        "params": dict(trial.params),
        "valid": attrs.get("valid", {}),
        "test": attrs.get("test", {}),
        "ran": attrs.get("ran", []),
        "cached": attrs.get("cached", []),
        "seconds": attrs.get("seconds"),
        "error": attrs.get("error"),
        "overrides": attrs.get("overrides", []),
    }


def write_results(folder: Path, rows: list[dict[str, Any]]) -> dict[str, str]:
    """``results.json`` (rows as they are) and ``results.csv`` (flattened columns)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(rows, indent=2, default=str) + "\n",
                                         encoding="utf-8")
    params = list(dict.fromkeys(k for r in rows for k in r["params"]))
    valid = list(dict.fromkeys(k for r in rows for k in r["valid"]))
    test = list(dict.fromkeys(k for r in rows for k in r["test"]))
    header = (["trial", "state", "value"] + params + [f"valid.{k}" for k in valid]
              + [f"test.{k}" for k in test] + ["ran", "cached", "seconds", "error"])
    with open(folder / "results.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for r in rows:
            writer.writerow([r["trial"], r["state"], r["value"]]
                            + [r["params"].get(k) for k in params]
                            + [r["valid"].get(k) for k in valid] + [r["test"].get(k) for k in test]
                            + [" ".join(r["ran"]), " ".join(r["cached"]), r["seconds"],
                               r["error"] or ""])
    return {"csv": str(folder / "results.csv"), "json": str(folder / "results.json")}


def best_spec_yaml(config: str | Path | None, overrides: list[str], best: dict[str, Any],
                   study: str, metric: str) -> str:
    """The best trial's whole resolved spec as YAML, with a header saying where it came from."""
    spec = load_spec(config, overrides + list(best["overrides"]))
    raw = spec.to_dict()
    header = [
        (f"# Best trial of slimkit tune study {study}: trial {best['trial']}, "
         f"valid {metric} = {best['value']:.4f}, test {metric} = "
         f"{best['test'].get(metric, float('nan')):.4f}."),
        f"# Spec: {config or '(defaults)'}; values: {', '.join(best['overrides'])}.",
        f"# Written {time.strftime('%Y-%m-%d %H:%M:%S')}. Run it: slimkit run -c <this file>",
    ]
    import yaml

    return "\n".join(header) + "\n" + yaml.safe_dump(raw, sort_keys=False)


def results_table(rows: list[dict[str, Any]], metric: str, best: dict[str, Any] | None):
    """The trials as a rich table (best row in bold)."""
    from rich.table import Table

    params = list(dict.fromkeys(k for r in rows for k in r["params"]))
    table = Table(title=f"slimkit tune: {len(rows)} trial(s), maximising valid {metric}",
                  title_justify="left")
    table.add_column("trial", justify="right")
    table.add_column("state")
    for key in params:
        table.add_column(key, justify="right")
    table.add_column(f"valid {metric}", justify="right")
    table.add_column(f"test {metric}", justify="right")
    table.add_column("ran")
    table.add_column("cached")
    table.add_column("time", justify="right")
    for r in rows:
        cells = [str(r["trial"]), r["state"]]
        cells += [_fmt(r["params"].get(k)) for k in params]
        cells += [_fmt(r["valid"].get(metric)), _fmt(r["test"].get(metric))]
        cells += [", ".join(r["ran"]) or "-", ", ".join(r["cached"]) or "-",
                  f"{r['seconds']:.1f} s" if r["seconds"] is not None else ""]
        style = "bold" if best is not None and r["trial"] == best["trial"] else None
        table.add_row(*cells, style=style)
    return table


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)

"""The numbers a tracker logs for one pipeline run, from plain data (a report dict).

Names use ``/`` between parts: ``stage/teach/seconds``, ``teach/cost_usd``,
``distill/quality/fine_tuned/cosine``, ``valid/ndcg@10``, ``test/hit@10``; per epoch
``train/loss`` and ``train/valid_ndcg@10`` (``train/seed_<n>/...`` when the spec trains
several seeds).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

STAGE_SUMMARIES = ("teach", "distill", "encode")
"""Stages whose summary numbers are logged: the teacher's spend (tokens, cost, requests),
the distillation quality (format share, cosine, ROUGE-L of base and fine-tuned student)
and the encoder's reuse."""


def numbers(data: Any, prefix: str) -> dict[str, float]:
    """Every finite int/float (bools as 0/1) inside nested mappings, keyed ``prefix/a/b``."""
    out: dict[str, float] = {}
    if isinstance(data, Mapping):
        for key, value in data.items():
            out.update(numbers(value, f"{prefix}/{key}"))
    elif isinstance(data, bool) or isinstance(data, (int, float)) and math.isfinite(data):
        out[prefix] = float(data)
    return out


def epoch_figures(figures: Mapping[str, float], valid_metric: str, *,
                  per_seed: bool) -> dict[str, float]:
    """One epoch's ``{"loss", <valid metric>, "seconds", "seed"}`` as tracker names."""
    base = f"train/seed_{int(figures['seed'])}" if per_seed else "train"
    out = {f"{base}/loss": float(figures["loss"]),
           f"{base}/epoch_seconds": float(figures["seconds"])}
    if valid_metric in figures:
        out[f"{base}/valid_{valid_metric}"] = float(figures[valid_metric])
    return out


def run_figures(report: Mapping[str, Any]) -> dict[str, float]:
    """The figures of a finished run (``PipelineReport.to_dict()``): every stage's time and
    whether it came from the cache, the teach/distill/encode summaries, the teacher's cost,
    and the validation, test and popularity metrics."""
    out: dict[str, float] = {}
    for stage in report.get("stages", []):
        name, status = stage["stage"], stage["status"]
        if status not in ("ran", "cached"):
            continue
        out[f"stage/{name}/seconds"] = float(stage.get("seconds") or 0.0)
        out[f"stage/{name}/cached"] = 1.0 if status == "cached" else 0.0
        if name in STAGE_SUMMARIES:
            out.update(numbers(stage.get("summary") or {}, name))
    teacher = report.get("teacher") or {}
    out.update(numbers({k: v for k, v in teacher.items() if k != "teacher"}, "teacher"))
    metrics = report.get("metrics") or {}
    for part in ("valid", "test", "popularity"):
        out.update(numbers(metrics.get(part) or {}, part))
    if report.get("seconds") is not None:
        out["pipeline/seconds"] = float(report["seconds"])
    return out


def run_tags(report: Mapping[str, Any]) -> dict[str, str]:
    """Per stage ``stage.<name>``: ran / cached / skipped / not run; and the cache keys."""
    tags = {}
    for stage in report.get("stages", []):
        tags[f"stage.{stage['stage']}"] = stage["status"]
        if stage.get("key"):
            tags[f"key.{stage['stage']}"] = stage["key"]
    return tags

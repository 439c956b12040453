"""``rationales.jsonl``: the teacher's rationales (teach stage) and the student's (distill).

Teach rows (one per sampled user): ``user``, ``user_index``, ``messages``, ``rationale``,
``steps`` ({"1", "2", "3"} or null), ``well_formed``, ``model``, ``prompt_tokens``,
``completion_tokens``, ``cost_usd``, ``latency_s``, ``status`` ("done" | "failed"),
``error``. Distill rows (one per user): ``user``, ``user_index``, ``rationale``, ``steps``,
``well_formed``, ``new_tokens``. Both may carry ``named_items``: the raw ids of the
catalogue items step 3 names (resolved by :mod:`slimkit.evaluation.grounding`; absent in
files written before it existed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from slimkit.artifacts.files import read_jsonl, write_jsonl
from slimkit.rationale import parse_steps

RATIONALES_FILE = "rationales.jsonl"
CUT_RATIONALES_FILE = "cut_rationales.jsonl"
"""``prompt.rationale_cut: separate`` only: the same rows written from each user's history
before the cut (:mod:`slimkit.data.rationale_cut`), read by training targets after it."""
STEPS = (1, 2, 3)


def write_rationales(folder: Path, rows: Iterable[dict[str, Any]], *,
                     name: str = RATIONALES_FILE) -> None:
    """Write a stage folder's ``rationales.jsonl`` (or ``cut_rationales.jsonl``)."""
    write_jsonl(Path(folder) / name, rows)


def read_rationales(folder: str | Path, *, done_only: bool = False,
                    name: str = RATIONALES_FILE) -> list[dict[str, Any]]:
    """Every row of a stage folder's ``rationales.jsonl`` (or ``name``; ``done_only``:
    answered rows)."""
    rows = read_jsonl(Path(folder) / name)
    if done_only:
        rows = [row for row in rows if row.get("status", "done") == "done"]
    return rows


def steps_of(row: Mapping[str, Any]) -> dict[int, str] | None:
    """The three steps of a row: its stored ``steps`` when complete, else parsed from its
    ``rationale`` (None when the answer is not in the three-step format)."""
    stored = row.get("steps")
    if isinstance(stored, Mapping) and stored:
        steps = {int(k): str(v) for k, v in stored.items() if str(v).strip()}
        if all(k in steps for k in STEPS):
            return steps
    return parse_steps(row.get("rationale") or "")


def rationale_view(row: Mapping[str, Any], source: str) -> dict[str, Any]:
    """What ``recommend`` shows of a row: source, text, steps (string keys), well_formed,
    named_items (raw ids of the step-3 items, [] when unknown)."""
    steps = steps_of(row)
    return {
        "source": source,
        "text": row.get("rationale", ""),
        "steps": {str(k): v for k, v in steps.items()} if steps else None,
        "well_formed": bool(row.get("well_formed", steps is not None)),
        "named_items": [str(i) for i in row.get("named_items") or []],
    }

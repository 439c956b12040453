"""The ``statistics`` teacher: a non-LLM baseline that writes the three steps from counts.

For each sampled user it reads the items before the validation and test targets and
writes, in the same "Step 1/2/3" form an LLM would:

1. the dominant categories and brands of the history (the item text fields after the
   title, e.g. "Comedy", "Drama", "Acme"), and a recent shift when the last few items
   lean elsewhere;
2. those categories/brands as the recommendation;
3. the most popular items of those categories that the user has not interacted with
   (popularity counted over every user's training items only, so nothing leaks).

It calls no model and costs nothing: use it to measure what an LLM teacher adds, and to
run the pipeline in seconds. Every row is labelled ``statistics (non-LLM baseline)``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from slimkit.data.facts import item_attributes, training_popularity
from slimkit.teachers.base import TeachContext, TeacherJob, make_row

__all__ = ["LABEL", "StatisticsTeacher", "item_attributes", "training_popularity"]

LABEL = "statistics (non-LLM baseline)"


class StatisticsTeacher:
    """Writes the three steps from the user's own history; not an LLM (a baseline)."""

    uses_records = False
    label = LABEL

    def __init__(
        self,
        *,
        popular_items: int = 5,
        top_attributes: int = 3,
        recent_items: int = 5,
        num_users: int | None = None,
        seed: int | None = None,
        max_malformed_retries: int | None = None,
    ):
        self.popular_items = popular_items
        self.top_attributes = top_attributes
        self.recent_items = recent_items

    def _prepare(self, dataset) -> None:
        self.popularity = training_popularity(dataset)
        self.attributes = [
            item_attributes(dataset.item_text[i], dataset.item_titles[i]) if i else []
            for i in range(dataset.num_items + 1)
        ]
        by_attribute: dict[str, list[int]] = {}
        for item, attrs in enumerate(self.attributes):
            for attr in attrs:
                by_attribute.setdefault(attr, []).append(item)
        order = self.popularity
        self.by_attribute = {
            attr: sorted(items, key=lambda i: (-order[i], i)) for attr, items in by_attribute.items()
        }
        self.overall = [i for i in np.argsort(-order, kind="stable") if i > 0]

    def rationale(self, dataset, user: int) -> str:
        """The three-step text for one user."""
        history = [int(i) for i in dataset.train_items(user)]
        counts = Counter(a for item in history for a in self.attributes[item])
        recent = history[-self.recent_items :]
        recent_counts = Counter(a for item in recent for a in self.attributes[item])
        top = [a for a, _ in counts.most_common(self.top_attributes)]
        n = len(history)

        if top:
            shares = ", ".join(f"{a} ({100 * counts[a] / n:.0f}% of items)" for a in top)
            step1 = f"Across {n} items, this user mostly chose {shares}."
        else:
            step1 = f"This user interacted with {n} items; their texts name no categories or brands."
        shift = None
        if recent and len(history) > len(recent):
            gains = {
                a: recent_counts[a] / len(recent) - counts[a] / n for a in recent_counts
            }
            best = max(gains, key=lambda a: (gains[a], recent_counts[a]), default=None)
            if best is not None and gains[best] >= 0.15:
                shift = best
        if shift and shift not in top:
            step1 += f" Recently ({len(recent)} latest items) the user turned toward {shift}."
        elif top:
            step1 += f" The latest {len(recent)} items stay close to {top[0]}."

        wanted = top + ([shift] if shift and shift not in top else [])
        step2 = (
            f"Recommend the categories/brands {', '.join(wanted)}."
            if wanted
            else "Recommend the most popular items overall (no categories are known)."
        )

        seen = set(history)
        picks: list[int] = []
        pools = [self.by_attribute.get(a, []) for a in wanted] or [self.overall]
        for pool in pools + [self.overall]:
            for item in pool:
                if len(picks) >= self.popular_items:
                    break
                if item not in seen and item not in picks:
                    picks.append(item)
        titles = "; ".join(str(dataset.item_titles[i] or dataset.item_ids[i]) for i in picks)
        step3 = f"Recommend popular items of these categories the user has not seen: {titles}."
        return f"Step 1: {step1}\nStep 2: {step2}\nStep 3: {step3}"

    def teach(self, jobs: Sequence[TeacherJob], ctx: TeachContext) -> list[dict[str, Any]]:
        self._prepare(ctx.dataset)
        rows = []
        for job in jobs:
            start = time.perf_counter()
            text = self.rationale(ctx.dataset, job.user_index)
            row = make_row(job, model=LABEL, text=text, status="done", cost_usd=0.0,
                           latency_s=time.perf_counter() - start)
            ctx.progress.update(status="done")
            rows.append(row)
        return rows

"""Groundedness of rationales: do they speak of the user's real tastes and real items?

Format, ROUGE-L and cosine to the teacher say nothing about whether a rationale is true to
the user or names items that exist. These metrics do, for any set of three-step
rationales (teacher, base student, fine-tuned student), from the data alone:

* ``reach_step3``: share of rationales in the three-step format (they reach step 3);
* step 2: ``category_precision`` (named categories/brands that occur in the user's own
  training items' texts, over all named categories) and ``category_recall`` (mean share
  of the user's top categories that step 2 names);
* step 3: ``resolution_share`` (names that resolve to catalogue items, over all names in
  step 3: items, categories and unknown names), ``hallucination_rate`` (names that
  resolve to nothing, neither a catalogue title nor a known category/brand, over the
  same), ``in_history_share`` (resolved items the user has already seen),
  ``names_item_share`` (rationales whose step 3 names at least one catalogue item) and
  ``hit_rate`` (the user's test item is among the step-3 items: the rationale's own
  hit rate);
* ``step2_unknown_rate``: names in step 2 that are no known category/brand nor title
  ("Thrillery", "Actor John Cadey"), over all names in step 2;
* repetition: ``distinct_2`` (distinct word bigrams over bigrams, mean per rationale)
  and ``repeated_sentence_rate`` (sentences that repeat an earlier one of the same
  rationale);
* collapse: ``identical_share`` and ``near_identical_share`` (the largest share of users
  whose rationales are the same text, or within rapidfuzz ratio
  :data:`NEAR_IDENTICAL` of one rationale), with the most shared text.

What counts as a "name": steps are cut into segments (lines, ``;``, commas, "and"/"or",
list numbers); titles and categories found as whole words are taken out first, so "Sense
and Sensibility" and "Matrix, The" stay whole. A leftover segment of at most
:data:`MAX_NAME_WORDS` words with a capitalised or quoted word is a name that resolves
to nothing; longer prose is not a name.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slimkit.data.facts import CatalogueFacts
from slimkit.data.titles import TitleIndex, scan_words, word_key
from slimkit.rationale import parse_steps

NEAR_IDENTICAL = 90.0
"""rapidfuzz ratio (0-100) at or above which two rationales count as near-identical."""
MAX_NAME_WORDS = 6
COLLAPSE_WARNING = 0.05
"""Share of users sharing one (near-)identical rationale above which distill warns."""
TOP_CATEGORIES = 3

_SEGMENT = re.compile(r"\s*(?:[\n;|•]|,|\.(?:\s|$)|\s[-–—]\s|\band\b|\bor\b|(?:^|\s)\d+[.)]\s)\s*",
                      re.IGNORECASE)
_LEAD = re.compile(
    r"^(?:(?:recommended|recommend|recommending|suggested|suggest|try|watch|items?|movies?|films?|"
    r"products?|categories|category|brands?|genres?|such as|like|including|e\.g\.|i|we|would|"
    r"also|then|next|more|other|similar|the user(?:'s)?|user|you|might|may|could|enjoy|love|"
    r"next|to|of|in|from)\b[\s:,\-]*)+",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    return _WORD.findall((text or "").lower())


def distinct_n(text: str, n: int = 2) -> float | None:
    """Distinct word n-grams over all word n-grams of one text (None when it has none)."""
    tokens = words(text)
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None


def repeated_sentence_rate(text: str) -> float | None:
    """Share of a text's sentences that repeat an earlier sentence of it (None: no sentence).

    "Step N:" markers are dropped first, so three steps saying one thing count as repeats."""
    body = re.sub(r"(?i)\bstep\s*[1-9]\s*[:.)-]?", "\n", text or "")
    sentences = [" ".join(words(s)) for s in _SENTENCE.split(body)]
    sentences = [s for s in sentences if s]
    if not sentences:
        return None
    seen: set[str] = set()
    repeats = 0
    for sentence in sentences:
        repeats += sentence in seen
        seen.add(sentence)
    return repeats / len(sentences)


def collapse(texts: Sequence[str], threshold: float = NEAR_IDENTICAL) -> dict[str, Any]:
    """Largest share of texts that are identical (after lower-casing and dropping
    punctuation) and near-identical (rapidfuzz ratio >= ``threshold`` to one text)."""
    keys = [" ".join(words(t)) for t in texts]
    if not keys:
        return {"identical_share": None, "near_identical_share": None, "near_identical_users": 0,
                "most_shared": None}
    counts = Counter(keys)
    top_key, top_count = counts.most_common(1)[0]
    distinct = list(counts)
    near = top_count
    if len(distinct) > 1:
        import numpy as np
        from rapidfuzz import fuzz, process

        close = process.cdist(distinct, distinct, scorer=fuzz.ratio, score_cutoff=threshold,
                              dtype=np.uint8, workers=1)  # (D, D), 0 below the cutoff
        weights = np.array([counts[k] for k in distinct])  # (D,)
        near = int(((close > 0) * weights[None, :]).sum(axis=1).max())
    most = next(t for t, k in zip(texts, keys) if k == top_key)
    return {"identical_share": top_count / len(keys), "near_identical_share": near / len(keys),
            "near_identical_users": near, "most_shared": most}


def segments(text: str) -> list[str]:
    """Candidate names of a step's text: cut at separators, lead-in words stripped."""
    out = []
    for part in _SEGMENT.split(text or ""):
        part = part.strip(" \t\"'“”‘’*_`()[]:.!?")
        part = _LEAD.sub("", part).strip(" \t\"'“”‘’*_`()[]:.!?")
        if part and re.search(r"[A-Za-z]{2}", part) and part.lower() not in ("the", "a", "an"):
            out.append(part)
    return out


def _is_name(segment: str, quoted: bool) -> bool:
    tokens = segment.split()
    return 0 < len(tokens) <= MAX_NAME_WORDS and (quoted or any(t[:1].isupper() for t in tokens))


@dataclass
class StepNames:
    """What one step names."""

    items: list[int] = field(default_factory=list)  # catalogue items, in order
    categories: list[str] = field(default_factory=list)  # known categories/brands
    unresolved: list[str] = field(default_factory=list)  # names that resolve to nothing


class Grounder:
    """Checks rationales against one dataset: its titles, categories and users' histories."""

    def __init__(self, dataset: Any, facts: CatalogueFacts | None = None,
                 titles: TitleIndex | None = None):
        self.dataset = dataset
        self.facts = facts or CatalogueFacts(dataset)
        self.titles = titles or TitleIndex(dataset.item_titles)
        self.category_keys: dict[str, str] = {}
        for category in sorted(self.facts.vocabulary):
            key = word_key(category)
            if key:
                self.category_keys.setdefault(key, category)
                if not key.endswith("s"):
                    self.category_keys.setdefault(key + "s", category)  # "Comedies" no, "Thrillers" yes
        self._category_longest = max((len(k.split()) for k in self.category_keys), default=0)

    def names(self, text: str) -> StepNames:
        """Items, categories and unresolved names of one step's text."""
        out = StepNames()
        spans = [(("item", item), start, end) for item, start, end in self.titles.find_spans(text)]
        rest = _blank(text, spans)
        spans += [(("category", c), s, e)
                  for c, s, e in scan_words(rest, self.category_keys, self._category_longest)]
        for (kind, value), _, _ in sorted(spans, key=lambda x: x[1]):
            bucket = out.items if kind == "item" else out.categories
            if value not in bucket:
                bucket.append(value)
        rest = _blank(text, spans)
        quoted = {q.strip() for q in re.findall(r"[\"“]([^\"”]+)[\"”]", text or "")}
        for segment in segments(rest):
            item = self.titles.resolve(segment) if len(segment.split()) <= 12 else None
            if item is not None:
                if item not in out.items:
                    out.items.append(item)
            elif _is_name(segment, segment in quoted):
                out.unresolved.append(segment)
        return out

    def check(self, user: int, text: str | Mapping[Any, str] | None) -> dict[str, Any]:
        """One rationale's grounding: what steps 2 and 3 name, checked against the user."""
        steps = _steps(text)
        if steps is None:
            return {"well_formed": False}
        facts = self.facts.user_facts(user, top=TOP_CATEGORIES, recent=0, candidates=0)
        step2, step3 = self.names(steps[2]), self.names(steps[3])
        top = [c for c, _ in facts.top_categories]
        return {
            "well_formed": True,
            "step2_categories": step2.categories,
            "step2_in_history": sum(c in facts.history_categories for c in step2.categories),
            "step2_top_named": sum(c in step2.categories for c in top),
            "step2_top": len(top),
            "step2_unresolved": step2.unresolved,
            "step3_items": step3.items,
            "step3_categories": len(step3.categories),
            "step3_in_history": sum(i in facts.history_items for i in step3.items),
            "step3_unresolved": step3.unresolved,
            "step3_hit": int(self.dataset.test_target(user)) in step3.items,
        }

    def metrics(self, rationales: Mapping[int, str | Mapping[Any, str] | None]) -> dict[str, Any]:
        """Aggregate metrics over ``{user index: rationale text or steps}`` (module docstring)."""
        checks = {u: self.check(u, t) for u, t in rationales.items()}
        return summarize(checks, {u: _text(t) for u, t in rationales.items()})


def _blank(text: str, spans) -> str:
    """``text`` with the character spans replaced by separators."""
    chars = list(text or "")
    for _, start, end in spans:
        chars[start:end] = list(";" + " " * (end - start - 1))
    return "".join(chars)


def _steps(text) -> dict[int, str] | None:
    if text is None:
        return None
    if isinstance(text, Mapping):
        steps = {int(k): str(v) for k, v in text.items()}
        return steps if all(k in steps for k in (1, 2, 3)) else None
    return parse_steps(text)


def _text(text) -> str:
    if isinstance(text, Mapping):
        return "\n".join(f"Step {k}: {v}" for k, v in sorted((int(k), v) for k, v in text.items()))
    return text or ""


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def summarize(checks: Mapping[int, dict[str, Any]], texts: Mapping[int, str]) -> dict[str, Any]:
    """Aggregate per-rationale :meth:`Grounder.check` results and texts into the metrics."""
    formed = [c for c in checks.values() if c.get("well_formed")]
    named2 = sum(len(c["step2_categories"]) for c in formed)
    unresolved2 = sum(len(c["step2_unresolved"]) for c in formed)
    items3 = sum(len(c["step3_items"]) for c in formed)
    unresolved3 = sum(len(c["step3_unresolved"]) for c in formed)
    named3 = items3 + unresolved3 + sum(c["step3_categories"] for c in formed)
    recalls = [c["step2_top_named"] / c["step2_top"] for c in formed if c["step2_top"]]
    distinct = [d for d in (distinct_n(t) for t in texts.values()) if d is not None]
    repeats = [r for r in (repeated_sentence_rate(t) for t in texts.values()) if r is not None]
    shared = collapse(list(texts.values()))
    return {
        "users": len(checks),
        "reach_step3": _ratio(len(formed), len(checks)),
        "category_precision": _ratio(sum(c["step2_in_history"] for c in formed), named2),
        "category_recall": sum(recalls) / len(recalls) if recalls else None,
        "step2_unknown_rate": _ratio(unresolved2, named2 + unresolved2),
        "resolution_share": _ratio(items3, named3),
        "in_history_share": _ratio(sum(c["step3_in_history"] for c in formed), items3),
        "names_item_share": _ratio(sum(bool(c["step3_items"]) for c in formed), len(checks)),
        "hallucination_rate": _ratio(unresolved3, named3),
        "hit_rate": _ratio(sum(c["step3_hit"] for c in formed), len(checks)),
        "distinct_2": sum(distinct) / len(distinct) if distinct else None,
        "repeated_sentence_rate": sum(repeats) / len(repeats) if repeats else None,
        **shared,
    }


def collapse_warning(metrics: Mapping[str, Any], who: str = "student",
                     threshold: float = COLLAPSE_WARNING) -> str | None:
    """A warning with what to change when one rationale is shared by too many users."""
    share = metrics.get("near_identical_share")
    if share is None or share <= threshold or metrics.get("near_identical_users", 2) < 2:
        return None  # one user alone shares nothing
    return (
        f"The {who} collapsed: {share:.0%} of users get the same or a near-identical "
        f"rationale (identical: {metrics.get('identical_share') or 0:.0%}), so their "
        "rationale vectors carry almost no information. Try student.repetition_penalty "
        "(e.g. 1.3), student.no_repeat_ngram_size (e.g. 4), more student.epochs, "
        "student.constrain_items: true, or a grounded prompt (prompt.student: "
        "slim-student-grounded)."
    )


GROUNDING_ROWS = (
    ("reach_step3", "reach step 3", True),
    ("category_precision", "step 2: category precision", True),
    ("category_recall", "step 2: top-category recall", True),
    ("resolution_share", "step 3: names resolved", True),
    ("names_item_share", "step 3: names a catalogue item", True),
    ("in_history_share", "step 3: already in history", True),
    ("hallucination_rate", "step 3: hallucinated names", True),
    ("step2_unknown_rate", "step 2: unknown names", True),
    ("hit_rate", "rationale hit rate (test item named)", True),
    ("distinct_2", "distinct-2", False),
    ("repeated_sentence_rate", "repeated sentences", True),
    ("identical_share", "largest identical share", True),
    ("near_identical_share", "largest near-identical share", True),
)


SOURCE_LABELS = {"teacher": "teacher", "base": "base", "fine_tuned": "tuned",
                 "fine_tuned_teacher_users": "tuned*"}


def grounding_table(grounding: Mapping[str, Mapping[str, Any] | None]):
    """A rich table of grounding metrics, one column per rationale source."""
    from rich.table import Table

    sources = [(name, m) for name, m in grounding.items() if m]
    table = Table(title="Grounding of the rationales (every user that has one)")
    if any(name == "fine_tuned_teacher_users" for name, _ in sources):
        table.caption = ("base / tuned: the student before and after fine-tuning; tuned*: the "
                         "fine-tuned student on the teacher's users only (like for like)")
    table.add_column("metric", no_wrap=True)
    for name, metrics in sources:
        label = SOURCE_LABELS.get(name, name.replace("_", "-"))
        table.add_column(f"{label} ({metrics['users']})", justify="right")
    for key, label, pct in GROUNDING_ROWS:
        cells = []
        for _, metrics in sources:
            value = metrics.get(key)
            cells.append("-" if value is None else (f"{value:.0%}" if pct else f"{value:.3f}"))
        table.add_row(label, *cells)
    return table

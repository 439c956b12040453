"""Which rationale step names an item: title variants and a fuzzy word-level match (rapidfuzz)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

_YEAR = re.compile(r"\s*\((?:\d{4}|\d{4}\s*-\s*\d{0,4})\)\s*$")
_PAREN = re.compile(r"\s*\([^)]*\)")
_ARTICLE = re.compile(r"^(.*),\s*(the|a|an|les|la|le|il|el|das|der|die)$", re.IGNORECASE)
_NON_WORD = re.compile(r"[^0-9a-z]+")


def _words(text: str) -> list[str]:
    return [w for w in _NON_WORD.split(text.lower()) if w]


def title_variants(title: str) -> list[list[str]]:
    """Word lists a rationale may use for a title.

    "Matrix, The (1999)" -> [["the", "matrix"], ["matrix"]]; "Shanghai Triad (Yao a yao
    yao dao waipo qiao) (1995)" -> [["shanghai", "triad", "yao", ...], ["shanghai",
    "triad"]]. Years and bracketed alternative titles are optional.
    """
    base = _YEAR.sub("", title.strip())
    variants: list[str] = []
    short = _PAREN.sub("", base)
    for text in (base, short, short.split(":")[0]):
        text = text.strip()
        moved = _ARTICLE.match(text)
        if moved:
            variants.append(f"{moved.group(2)} {moved.group(1)}")
            variants.append(moved.group(1))
        variants.append(text)
    out: list[list[str]] = []
    for text in variants:
        words = _words(text)
        if words and words not in out:
            out.append(words)
    return out


def _mentions(step_words: list[str], title_words: list[str]) -> bool:
    n = len(title_words)
    if n == 0 or len(step_words) < n:
        return False
    joined = " ".join(title_words)
    if n == 1 and len(joined) < 4:
        return False  # "It", "M": too short to tell a title from a word
    text = " ".join(step_words)
    if re.search(rf"(?:^| ){re.escape(joined)}(?: |$)", text):
        return True
    if len(joined) < 8:
        return False  # short titles must match exactly
    from rapidfuzz import fuzz

    for size in {max(1, n - 1), n, n + 1}:
        for start in range(len(step_words) - size + 1):
            window = " ".join(step_words[start : start + size])
            if fuzz.ratio(window, joined, score_cutoff=88) >= 88:
                return True
    return False


def mentioning_step(title: str, steps: Mapping[Any, str] | None, *, item: Any = None,
                    named_items: Sequence[Any] = ()) -> int | None:
    """The rationale step (3, then 2, then 1) that names ``title``, or ``None``; an ``item``
    among the rationale's resolved step-3 items (``named_items``) is named in step 3."""
    if item is not None and item in set(named_items or ()):
        return 3
    if not steps or not title:
        return None
    variants = title_variants(title)
    for number in (3, 2, 1):
        text = steps.get(number) or steps.get(str(number))
        if not text:
            continue
        step_words = _words(text)
        if any(_mentions(step_words, v) for v in variants):
            return number
    return None

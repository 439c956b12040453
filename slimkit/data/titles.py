"""Item titles as a model writes them, resolved to catalogue items (rapidfuzz).

A rationale names "The Matrix", "matrix (1999)" or "Matrix, The" where the catalogue
says "Matrix, The (1999)". :func:`title_key` reduces a title to a comparison key (case,
punctuation, a year or alternative title in brackets, and a leading or trailing article
dropped); :class:`TitleIndex` resolves a name by its key, then by fuzzy similarity
(rapidfuzz's normalised Levenshtein ratio) for misspellings, and finds titles inside
free text. Grounding metrics, ``recommend``'s "named in" column, ``--history`` titles and
the constrained decoder's title list all go through here, so "names a catalogue item"
means the same thing everywhere.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import Any

_BRACKETS = re.compile(r"\s*[(\[][^)\]]*(?:[)\]]|$)")  # an unclosed "(1994" at the end too
_YEAR = re.compile(r"\s*\(\s*\d{4}(?:\s*-\s*\d{0,4})?\s*\)")
_TRAILING_ARTICLE = re.compile(
    r"^(.*?),\s*(the|a|an|les|la|le|l'|il|el|das|der|die|los|las)$", re.IGNORECASE
)
_LEADING_ARTICLE = re.compile(r"^(the|a|an)\s+", re.IGNORECASE)
_NON_WORD = re.compile(r"[^0-9a-z]+")
_WORD_SPAN = re.compile(r"[0-9A-Za-z\u00C0-\u024F][0-9A-Za-z\u00C0-\u024F'’]*|&")
# What may follow a title in text and still belong to it: ", The" and "(1999)".
_TITLE_TAIL = re.compile(r"(?:,\s*(?:the|a|an)\b)?(?:\s*\([^()]*\)?)*", re.IGNORECASE)

FUZZY_CUTOFF = 88.0
"""Smallest rapidfuzz ratio (0-100) at which a misspelled name still resolves."""
MIN_FUZZY_CHARS = 6
"""Keys shorter than this resolve exactly or not at all ("Heat" must not become "Heal")."""


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def _words(text: str) -> list[str]:
    text = _ascii(text).lower().replace("&", " and ").replace("'", "").replace("’", "")
    return [w for w in _NON_WORD.split(text) if w]


def title_key(title: str, *, keep_brackets: bool = False) -> str:
    """The comparison key of a title: lower case, words only, no year or bracketed
    alternative title, no leading or trailing article.

    >>> title_key("Matrix, The (1999)") == title_key("the matrix") == "matrix"
    True
    """
    text = " ".join(str(title).split())
    text = _YEAR.sub("", text) if keep_brackets else _BRACKETS.sub("", text)
    text = text.strip(" \t\"'“”‘’*_.")
    moved = _TRAILING_ARTICLE.match(text)
    if moved:
        text = moved.group(1)
    text = _LEADING_ARTICLE.sub("", text)
    return " ".join(_words(text))


def title_keys(title: str) -> list[str]:
    """Every key a title answers to: without brackets, with them (an alternative title
    kept), and each bracketed alternative on its own ("Shanghai Triad (Yao a yao ...)")."""
    keys = [title_key(title)]
    whole = title_key(title, keep_brackets=True)
    keys.append(whole)
    for inner in re.findall(r"\(([^)]*)\)", str(title)):
        if not re.fullmatch(r"\s*\d{4}(\s*-\s*\d{0,4})?\s*", inner):
            keys.append(title_key(inner))
    out: list[str] = []
    for key in keys:
        if key and key not in out:
            out.append(key)
    return out


def word_key(text: str) -> str:
    """Words only, lower case, ASCII: the key a category or a title phrase is compared by."""
    return " ".join(_words(text))


def scan_words(text: str, table: dict[str, Any], longest: int,
               accept: Callable[[str, str, int], bool] | None = None) -> list[tuple[Any, int, int]]:
    """``(table[key], start, end)`` for every run of words in ``text`` whose key is in
    ``table``: longest run first, not overlapping, in text order; a leading article is
    skipped (matched from the next word). ``accept(key, first word as written, n words)``
    may refuse a match."""
    spans = [(word_key(m.group(0)), m.start(), m.end(), m.group(0)) for m in _WORD_SPAN.finditer(str(text))]
    found: list[tuple[Any, int, int]] = []
    i = 0
    while i < len(spans):
        hit = None
        for n in range(min(longest, len(spans) - i), 0, -1):
            window = [w for w, _, _, _ in spans[i : i + n] if w]
            if not window or (n > 1 and window[0] in ("the", "a", "an")):
                continue
            key = " ".join(window)
            if key in table and (accept is None or accept(key, spans[i][3], n)):
                hit = (n, table[key])
                break
        if hit is None:
            i += 1
            continue
        found.append((hit[1], spans[i][1], spans[i + hit[0] - 1][2]))
        i += hit[0]
    return found


class TitleIndex:
    """Catalogue titles (item index -> title; empty titles are skipped) by key."""

    def __init__(self, titles: Sequence[str], *, start: int = 1, cutoff: float = FUZZY_CUTOFF):
        self.titles = list(titles)
        self.cutoff = cutoff
        self.by_key: dict[str, list[int]] = {}
        for index in range(start, len(self.titles)):
            if not self.titles[index]:
                continue
            for key in title_keys(self.titles[index]):
                self.by_key.setdefault(key, []).append(index)
        self._keys = list(self.by_key)
        self.longest = max((len(k.split()) for k in self._keys), default=0)

    def resolve(self, name: str) -> int | None:
        """The item a name refers to (the lowest index among equal titles), or None."""
        key = title_key(name)
        if not key:
            return None
        found = self.by_key.get(title_key(name, keep_brackets=True)) or self.by_key.get(key)
        if found:
            return self._by_year(found, name)
        if len(key) < MIN_FUZZY_CHARS:
            return None
        from rapidfuzz import fuzz, process

        best = process.extractOne(key, self._keys, scorer=fuzz.ratio, score_cutoff=self.cutoff)
        if best:
            return self.by_key[best[0]][0]
        if ":" in name:  # "Star Wars: Episode IV - A New Hope" for "Star Wars (1977)"
            head = self.by_key.get(title_key(name.split(":", 1)[0]))
            return head[0] if head else None
        return None

    def _by_year(self, items: list[int], name: str) -> int:
        """Of equal titles ("Hamlet (1990)", "Hamlet (1996)"), the one with the name's year."""
        years = re.findall(r"\((\d{4})\)", name)
        if len(items) > 1 and years:
            for item in items:
                if f"({years[-1]})" in self.titles[item]:
                    return item
        return items[0]

    def find_spans(self, text: str, *, min_single_word: int = 4) -> list[tuple[int, int, int]]:
        """``(item, start, end)`` of every title that occurs in ``text`` as whole words
        (exact keys, longest first, not overlapping), in text order. A one-word title counts
        only when capitalised in the text and at least ``min_single_word`` letters long
        ("Heat", not "heat" or "It")."""

        def accept(key: str, first: str, n: int) -> bool:
            return n > 1 or (len(key) >= min_single_word and first[:1].isupper())

        out = []
        for items, start, end in scan_words(text, self.by_key, self.longest, accept):
            end += _TITLE_TAIL.match(str(text), end).end() - end  # ", The (1996)" is the title's
            out.append((self._by_year(items, str(text)[start:end]), start, end))
        return out

    def find(self, text: str, *, min_single_word: int = 4) -> list[int]:
        """Items whose titles occur in ``text`` (see :meth:`find_spans`), each once."""
        out: list[int] = []
        for item, _, _ in self.find_spans(text, min_single_word=min_single_word):
            if item not in out:
                out.append(item)
        return out

    def resolve_all(self, names: Iterable[str]) -> list[int | None]:
        """:meth:`resolve` of each name."""
        return [self.resolve(n) for n in names]

"""Item text: one clean string per item, built from a template over the item's fields.

Metadata fields come in many shapes (a string, a list of category paths, a dict of
details, HTML in descriptions). :func:`field_text` flattens any of them to one string;
:class:`ItemTextTemplate` fills a template such as ``"{title}; {categories}; {brand}"``,
dropping the text around fields an item lacks, so an item without a brand does not end
in ``"; "``; :func:`clean_text` removes HTML and extra whitespace; :func:`truncate_tokens`
keeps the first whitespace tokens.
"""

from __future__ import annotations

import html
import math
import re
import string
from collections.abc import Iterable, Mapping
from typing import Any

from slimkit.errors import ConfigError

_TAG = re.compile(r"<[^>]{0,500}>")
_SPACE = re.compile(r"\s+")
_EDGE = re.compile(r"^[\s;,|.:/\-–]+|[\s;,|:/\-–]+$")  # separators left by dropped fields


def clean_text(text: str) -> str:
    """Unescape HTML entities, drop tags, collapse whitespace."""
    if not text:
        return ""
    if "&" in text:
        text = html.unescape(html.unescape(text))  # Amazon dumps hold "&amp;amp;" too
    if "<" in text:
        text = _TAG.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def truncate_tokens(text: str, max_tokens: int) -> str:
    """The first ``max_tokens`` whitespace-separated tokens of ``text``."""
    tokens = text.split()
    if len(tokens) <= max_tokens:
        return text
    return " ".join(tokens[:max_tokens])


def _flatten(value: Any, out: list[str]) -> None:
    if value is None:
        return
    if isinstance(value, float):
        if math.isnan(value):
            return
        out.append(str(int(value)) if value.is_integer() else str(value))
    elif isinstance(value, str):
        if value.strip():
            out.append(value.strip())
    elif isinstance(value, Mapping):
        for key, sub in value.items():
            parts: list[str] = []
            _flatten(sub, parts)
            if parts:
                out.append(f"{key}: {' '.join(parts)}")
    elif isinstance(value, Iterable) and not isinstance(value, bytes):
        for sub in value:
            _flatten(sub, out)
    else:
        out.append(str(value))


def field_text(value: Any, sep: str = ", ") -> str:
    """Any metadata value as one string: lists flattened, repeats dropped, NaN empty."""
    parts: list[str] = []
    _flatten(value, parts)
    if len(parts) == 1:
        return parts[0]
    seen: dict[str, None] = {}
    for part in parts:
        seen.setdefault(part, None)
    return sep.join(seen)


class ItemTextTemplate:
    """A ``str.format``-style template over named item fields.

    Literal text belongs to the field right after it: it is dropped with that field when
    the item lacks it. Separators left at either end are stripped.
    """

    def __init__(self, template: str, *, where: str = "dataset.item_text_template"):
        self.template = template
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise ConfigError(
                f"{where}: {template!r} is not a valid template ({exc}).",
                hint="Use field names in braces, e.g. '{title}; {categories}; {brand}'; "
                "write a literal brace as '{{' or '}}'.",
            ) from exc
        self.parts: list[tuple[str, str | None, str, str | None]] = []
        for literal, name, spec, conversion in parsed:
            if name is not None and (not name.isidentifier()):
                raise ConfigError(
                    f"{where}: field {{{name}}} in {template!r} is not a plain field name.",
                    hint="Use names such as {title}, {categories}, {brand}.",
                )
            self.parts.append((literal, name, spec or "", conversion))
        self.fields = [name for _, name, _, _ in self.parts if name is not None]
        if not self.fields:
            raise ConfigError(
                f"{where}: {template!r} names no field, so every item would get the same text.",
                hint="Use e.g. '{title}; {categories}; {brand}'.",
            )

    def check_fields(self, available: Iterable[str], *, source: str) -> None:
        """A :class:`ConfigError` when the template names a field the data never has."""
        available = sorted(set(available))
        unknown = [f for f in self.fields if f not in available]
        if unknown:
            from slimkit.errors import did_you_mean

            hints = "".join(did_you_mean(f, available) for f in unknown)
            raise ConfigError(
                f"dataset.item_text_template: {', '.join('{' + f + '}' for f in unknown)} "
                f"is not a field of {source}.{hints} Fields: {', '.join(available) or 'none'}."
            )

    def render(self, fields: Mapping[str, str]) -> str:
        """The filled template; ``""`` when the item has none of the fields."""
        out: list[str] = []
        emitted = False
        for literal, name, spec, _conversion in self.parts:
            if name is None:
                if emitted:
                    out.append(literal)
                continue
            value = fields.get(name) or ""
            if not value:
                continue
            if spec:
                value = format(value, spec)
            out.append(literal)
            out.append(value)
            emitted = True
        if not emitted:
            return ""
        return _EDGE.sub("", "".join(out))

"""Three-step rationales: parse an LLM's answer into steps, and write steps back as text.

A SLIM rationale has three steps: (1) the user's preferences, (2) categories or brands
that fit, (3) specific items. Teachers, the student and the encoders share these two
functions so that "well formed" means the same thing everywhere.

:func:`parse_steps` is tolerant of how models actually write: ``Step 1: ...``,
``**Step 1:** ...``, ``### Step 1 - ...``, ``Step 1.``, all three steps on one line, and,
when no ``Step`` marker is present, a plain numbered list ``1. ... 2. ... 3. ...``. It
returns ``None`` when a step is missing or empty, or when the answer is a refusal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

NUM_STEPS = 3

# "Step 2", "**Step 2**", "### Step 2:", "STEP 2 -", "Step two" is not accepted.
_STEP_MARKER = re.compile(r"\bstep\s*([1-9])\b\s*(?:\*\*|__)?\s*(?:[:.)\-–—]\s*)?(?:\*\*|__)?", re.IGNORECASE)
# Same marker, but required at the start of a line (after markdown decoration).
_LINE_STEP_MARKER = re.compile(
    r"^[ \t]*(?:[#>*_\-][ \t#>*_\-]*)?step\s*([1-9])\b\s*(?:\*\*|__)?\s*(?:[:.)\-–—]\s*)?(?:\*\*|__)?",
    re.IGNORECASE | re.MULTILINE,
)
# "1." / "1)" / "**1.**" at the start of a line: the fallback when no "Step" marker exists.
_NUMBERED_MARKER = re.compile(
    r"^[ \t]*(?:\*\*|__)?[ \t]*([1-9])[.)](?:\*\*|__)?(?=\s)", re.MULTILINE
)
_REFUSAL = re.compile(
    r"^\W*(?:i'?m sorry|i am sorry|sorry,|i apologi[sz]e|i cannot|i can'?t|i can not|"
    r"i'?m unable|i am unable|i'?m not able|i am not able|i won'?t|as an ai\b|"
    r"unfortunately,? i)",
    re.IGNORECASE,
)
# What may surround a step's text without being content.
_STRIP = " \t\r\n*_#:-–—>.`"


def is_refusal(text: str) -> bool:
    """Whether the answer opens like a refusal ("I'm sorry, but I can't ...")."""
    return bool(_REFUSAL.match(text or ""))


def _split(text: str, markers: list[tuple[int, int, int]]) -> dict[int, str] | None:
    """Steps 1..3 from (step number, marker start, marker end) found in text order."""
    chosen: list[tuple[int, int, int]] = []
    want = 1
    for number, start, end in markers:
        if want <= NUM_STEPS and number == want:
            chosen.append((number, start, end))
            want += 1
        elif want > NUM_STEPS and number > NUM_STEPS:
            # A "Step 4" after step 3 ends step 3 (extra steps are dropped).
            chosen.append((number, start, end))
            break
    if want <= NUM_STEPS:
        return None
    steps: dict[int, str] = {}
    for i in range(NUM_STEPS):
        _, _, end = chosen[i]
        stop = chosen[i + 1][1] if i + 1 < len(chosen) else len(text)
        body = text[end:stop].strip(_STRIP)
        if not re.search(r"\w", body):
            return None
        steps[i + 1] = body
    return steps


def parse_steps(text: str | None) -> dict[int, str] | None:
    """Split an answer into ``{1: ..., 2: ..., 3: ...}``; ``None`` when malformed.

    Malformed: empty, a refusal, or any of the three steps missing or without content.
    Steps must appear in order; text before step 1 (a preamble) is ignored.
    """
    if not text or not text.strip() or is_refusal(text):
        return None
    for pattern in (_LINE_STEP_MARKER, _STEP_MARKER, _NUMBERED_MARKER):
        markers = [(int(m.group(1)), m.start(), m.end()) for m in pattern.finditer(text)]
        if pattern is _NUMBERED_MARKER and any(
            True for _ in _STEP_MARKER.finditer(text)
        ):
            # Text that names steps but not all three must not be rescued by a list
            # inside one of them.
            return None
        steps = _split(text, markers)
        if steps is not None:
            return steps
    return None


def format_steps(steps: Mapping[int | str, str]) -> str:
    """``"Step 1: ...\\nStep 2: ...\\nStep 3: ..."`` from a steps mapping (int or str keys)."""
    lines = []
    for number in range(1, NUM_STEPS + 1):
        body = steps.get(number, steps.get(str(number)))  # type: ignore[arg-type]
        if body is None:
            raise ValueError(f"steps lack step {number}: {dict(steps)!r}")
        lines.append(f"Step {number}: {' '.join(str(body).split())}")
    return "\n".join(lines)


def steps_to_json(steps: Mapping[int, str] | None) -> dict[str, str] | None:
    """Steps with string keys, as stored in ``rationales.jsonl`` (``None`` stays ``None``)."""
    return None if steps is None else {str(k): v for k, v in sorted(steps.items())}

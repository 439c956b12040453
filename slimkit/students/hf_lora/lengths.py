"""Student lengths that fit the teacher: ``max_length`` and ``max_new_tokens`` from the
measured lengths of the student's prompts and of the teacher's rationales, in student tokens.

``auto`` (the default of both fields) means:

* ``max_new_tokens``: the 95th percentile of the teacher's rationale lengths (each counted
  with the student's tokenizer, end-of-sequence token included), rounded up to a multiple
  of 8, so the student may write as much as the teacher usually did;
* ``max_length``: the longest training prompt plus that same number, rounded up to a
  multiple of 8 and capped at the model's context window, so no prompt is cut and at most
  5% of the rationales are.

A set number is obeyed, but a ``max_length`` that cannot hold the longest prompt plus the
teacher's median rationale (so most rationales would lose their end; before the teacher has
run: the prompt plus :data:`MIN_ROOM` tokens), or lengths beyond the model's context window,
are refused with the numbers and the setting that fixes them; one that cuts more than 5% of
the rationales, or a ``max_new_tokens`` below the 95th percentile, is warned about.
Everything here is plain arithmetic on token counts: no model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from slimkit.errors import SlimkitError

AUTO = "auto"
SHARE = 0.95
"""The share of the teacher's rationales ``auto`` leaves uncut."""
MIN_ROOM = 8
"""Rationale tokens a training example needs at least besides its prompt."""
MULTIPLE = 8


def round_up(n: int, multiple: int = MULTIPLE) -> int:
    """``n`` rounded up to a multiple of ``multiple``."""
    return int(math.ceil(n / multiple) * multiple)


def percentile_tokens(lengths: Sequence[int], share: float = SHARE) -> int:
    """The nearest-rank percentile of ``lengths`` (the smallest length at least ``share`` of
    them do not exceed)."""
    ordered = sorted(int(n) for n in lengths)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass
class LengthPlan:
    """The student's lengths as resolved, what they were measured from, and any problem."""

    max_length: int | str
    max_new_tokens: int | str
    auto: list[str] = field(default_factory=list)  # the fields that were ``auto``
    prompts: int = 0  # prompts measured
    longest_prompt: int = 0
    longest_prompt_user: str | None = None
    rationales: int = 0  # teacher rationales measured (0: the teacher has not run)
    rationale_p50: int | None = None
    rationale_p95: int | None = None
    rationale_max: int | None = None
    context: int | None = None  # the model's context window, when known
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_lengths(
    *,
    max_length: int | str,
    max_new_tokens: int | str,
    prompt_tokens: Mapping[Any, int],
    rationale_tokens: Sequence[int] | None,
    context: int | None = None,
    user_name: Callable[[Any], str] = str,
) -> LengthPlan:
    """Resolve ``auto`` lengths and check set ones against the measured token counts.

    ``prompt_tokens``: user -> prompt length of every training user; ``rationale_tokens``:
    the teacher's rationale lengths (None before the teacher has run: ``auto`` stays
    ``auto`` and only the prompts are checked). Problems are collected in the plan, not
    raised (:func:`raise_problems` does that).
    """
    plan = LengthPlan(max_length=max_length, max_new_tokens=max_new_tokens,
                      auto=[n for n, v in (("max_length", max_length),
                                           ("max_new_tokens", max_new_tokens)) if v == AUTO],
                      prompts=len(prompt_tokens), context=context)
    if prompt_tokens:
        user, longest = max(prompt_tokens.items(), key=lambda kv: (kv[1], str(kv[0])))
        plan.longest_prompt, plan.longest_prompt_user = int(longest), user_name(user)
    where = (f"the longest prompt ({plan.longest_prompt} tokens, of user "
             f"{plan.longest_prompt_user}; {plan.prompts} prompts measured)")
    shorten = "shorten the prompts with prompt.max_items / prompt.max_item_chars"
    if rationale_tokens:
        plan.rationales = len(rationale_tokens)
        plan.rationale_p50 = percentile_tokens(rationale_tokens, 0.5)
        plan.rationale_p95 = percentile_tokens(rationale_tokens)
        plan.rationale_max = max(int(n) for n in rationale_tokens)
        rationale, what = plan.rationale_p95, (f"the teacher's 95th-percentile rationale "
                                               f"({plan.rationale_p95} student tokens)")
        least, least_what = plan.rationale_p50, (f"the teacher's median rationale "
                                                 f"({plan.rationale_p50} student tokens)")
    else:
        rationale, what = MIN_ROOM, f"room for a rationale ({MIN_ROOM} tokens)"
        least, least_what = rationale, what
    fits = plan.longest_prompt + rationale  # what one training example needs
    needed = plan.longest_prompt + least  # below this, most rationales would lose their end
    if context is not None and fits > context:
        plan.problems.append(
            f"{where} plus {what} needs {fits} tokens, more than the student model's context "
            f"window ({context} tokens). {shorten.capitalize()}, or pick a student model with "
            "a longer context.")
    if plan.rationale_p95 is not None:
        need = round_up(plan.rationale_p95)
        if max_new_tokens == AUTO:
            plan.max_new_tokens = need
        elif int(max_new_tokens) < plan.rationale_p95:
            plan.warnings.append(
                f"student.max_new_tokens={max_new_tokens} is below the teacher's 95th-percentile "
                f"rationale ({plan.rationale_p95} student tokens; longest {plan.rationale_max}): "
                f"the student will stop before the end of many rationales. Set "
                f"student.max_new_tokens: auto (here {need}) to follow the teacher.")
        if max_length == AUTO:
            plan.max_length = round_up(fits) if context is None else min(round_up(fits), context)
    elif max_new_tokens == AUTO and rationale_tokens is not None:  # measured, but none usable
        plan.problems.append(
            "student.max_new_tokens: auto follows the teacher's rationales, but there is none "
            "to measure. Set student.max_new_tokens to a number.")
    if max_length != AUTO and prompt_tokens and int(max_length) < needed:
        plan.problems.append(
            f"student.max_length={max_length} cannot hold {where} plus {least_what}: {needed} "
            f"tokens are needed at the least. Set student.max_length: auto (it follows the "
            f"prompts and the teacher's rationales"
            + (f"; here {round_up(fits)}) or at least {fits}" if plan.rationale_p95 is not None
               else ")") + f", or {shorten}.")
    elif max_length != AUTO and prompt_tokens and int(max_length) < fits:
        plan.warnings.append(
            f"student.max_length={max_length} cuts the end of more than 5% of the teacher's "
            f"rationales for the longest prompts ({where} plus {what} is {fits} tokens). Set "
            f"student.max_length: auto (here {round_up(fits)}) to keep them whole.")
    return plan


def raise_problems(plan: LengthPlan) -> None:
    """A :class:`SlimkitError` (exit code 2) listing the plan's problems, if it has any."""
    if plan.problems:
        raise SlimkitError(
            "The student's prompt and rationale do not fit its lengths:",
            problems=plan.problems,
            hint="`student.max_length: auto` and `student.max_new_tokens: auto` (the defaults) "
            "follow the teacher's measured rationale lengths.",
        )


def describe(plan: LengthPlan | Mapping[str, Any]) -> str:
    """One line saying what the lengths are and what they were measured from."""
    p = plan.to_dict() if isinstance(plan, LengthPlan) else dict(plan)
    parts = []
    for name in ("max_length", "max_new_tokens"):
        value = p[name]
        tag = " (auto)" if name in p.get("auto", []) else ""
        parts.append(f"{name}={'auto (sized after teach)' if value == AUTO else f'{value}{tag}'}")
    measured = f"longest of {p['prompts']} prompts: {p['longest_prompt']} tokens"
    if p.get("rationale_p95") is not None:
        measured += (f"; {p['rationales']} teacher rationales: median {p['rationale_p50']}, "
                     f"p95 {p['rationale_p95']}, max {p['rationale_max']} tokens")
    else:
        measured += "; teacher rationales not measured yet (checked after teach)"
    return f"student {', '.join(parts)} ({measured})"

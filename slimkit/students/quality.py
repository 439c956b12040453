"""Distillation quality: how close the student's rationales come to the teacher's.

Measured on teacher users held out from training, for the base student (before
fine-tuning) and the fine-tuned one:

* ``format_share``: share of rationales that follow the three-step format
  (:func:`slimkit.rationale.parse_steps` accepts them);
* ``cosine``: mean cosine similarity of the encoder's vectors of student and teacher
  rationale (the encoder the spec uses downstream);
* ``rouge_l``: mean ROUGE-L F-measure (longest common subsequence of words, the
  ``rouge-score`` package) of student against teacher rationale;
* ``grounding`` (added by the distill stage): :mod:`slimkit.evaluation.grounding` of the
  teacher, base and fine-tuned rationales.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from slimkit.rationale import parse_steps

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """Lower-cased alphanumeric words (punctuation and markup dropped)."""
    return _WORD.findall((text or "").lower())


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F-measure of ``candidate`` against ``reference`` over words (0 when either is
    empty), as the ``rouge-score`` package computes it (no stemming)."""
    if not words(candidate) or not words(reference):
        return 0.0
    return float(_scorer().score(reference, candidate)["rougeL"].fmeasure)


@functools.lru_cache(maxsize=1)
def _scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def format_share(texts: Sequence[str]) -> float | None:
    """Share of texts that parse into the three steps (None for no texts)."""
    if not texts:
        return None
    return sum(parse_steps(t) is not None for t in texts) / len(texts)


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean cosine similarity of paired rows of ``a`` and ``b`` ``(n, E)``; zero rows give 0."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)  # (n,)
    dots = (a * b).sum(axis=1)  # (n,)
    cos = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
    return float(cos.mean()) if len(cos) else float("nan")


def score(
    student: Sequence[str],
    teacher: Sequence[str],
    encode: Callable[[list[str]], np.ndarray] | None = None,
) -> dict[str, Any]:
    """Format share, cosine (when ``encode`` is given) and ROUGE-L of paired rationales."""
    if len(student) != len(teacher):
        raise ValueError("student and teacher rationales must be paired")
    out: dict[str, Any] = {
        "users": len(student),
        "format_share": format_share(student),
        "rouge_l": float(np.mean([rouge_l(s, t) for s, t in zip(student, teacher)]))
        if student
        else None,
        "cosine": None,
        "mean_words": float(np.mean([len(words(s)) for s in student])) if student else None,
    }
    if encode is not None and student:
        vectors = encode(list(student) + list(teacher))  # (2n, E)
        out["cosine"] = mean_cosine(vectors[: len(student)], vectors[len(student) :])
    return out


def quality_report(
    teacher: Sequence[str],
    base: Sequence[str] | None,
    fine_tuned: Sequence[str],
    encode: Callable[[list[str]], np.ndarray] | None = None,
    *,
    encoder: str | None = None,
    held_out: bool = True,
) -> dict[str, Any]:
    """``{"base": {...}, "fine_tuned": {...}}`` scores against the teacher's rationales."""
    return {
        "users": len(teacher),
        "held_out": held_out,
        "encoder": encoder,
        "teacher_format_share": format_share(teacher),
        "base": score(base, teacher, encode) if base is not None else None,
        "fine_tuned": score(fine_tuned, teacher, encode),
    }


def quality_table(report: dict[str, Any]):
    """A rich table of a quality report (base vs fine-tuned)."""
    from rich.table import Table

    held = "held-out" if report.get("held_out", True) else "seen"
    table = Table(title=f"Distillation quality on {report['users']} {held} teacher users")
    table.add_column("student")
    table.add_column("3-step format", justify="right")
    table.add_column("cosine", justify="right")
    table.add_column("ROUGE-L", justify="right")

    def cell(value: float | None, pct: bool = False) -> str:
        if value is None:
            return "-"
        return f"{value:.0%}" if pct else f"{value:.3f}"

    for name in ("base", "fine_tuned"):
        row = report.get(name)
        if row is None:
            continue
        table.add_row(
            name.replace("_", "-"),
            cell(row["format_share"], pct=True),
            cell(row["cosine"]),
            cell(row["rouge_l"]),
        )
    return table

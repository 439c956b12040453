"""Stage ``encode``: item texts and rationales (the student's and the teacher's) -> vectors.

Writes the arrays of :mod:`slimkit.artifacts.vectors` and ``summary.json``. Vectors are
cached per text (:func:`slimkit.encoders.cached.encode_cached`), so a changed rationale or
item text re-encodes that text only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from slimkit.artifacts.files import write_summary
from slimkit.artifacts.rationales import steps_of
from slimkit.artifacts.vectors import CUT_VECTOR_FILES, STEPS, VECTOR_FILES, write_vectors
from slimkit.encoders.cached import RECORD_NAMESPACE, encode_cached
from slimkit.errors import SlimkitError
from slimkit.factories import build_encoder, encoder_identity


def _rationale_texts(records: list[dict[str, Any]], num_users: int,
                     who: str) -> tuple[dict[int, str], dict[int, dict[int, str]], set[int]]:
    """user index -> whole rationale, user index -> steps (well-formed answers only), and
    the users whose answer was empty (they have a record, so they are not missing)."""
    whole: dict[int, str] = {}
    steps: dict[int, dict[int, str]] = {}
    empty: set[int] = set()
    stage = "teach" if who == "teacher" else "distill"
    for record in records:
        if record.get("status", "done") != "done":
            continue
        text = (record.get("rationale") or "").strip()
        user = int(record["user_index"])
        if not text:
            empty.add(user)
            continue
        if not 0 <= user < num_users:
            raise SlimkitError(
                f"The {who} rationales name user index {user}, but the dataset has "
                f"{num_users} users: they were made for another dataset.",
                hint=f"Re-run the {stage} stage (`slimkit cache clear {stage}`, then `slimkit run`).",
            )
        whole[user] = text
        parsed = steps_of(record)
        if parsed is not None:
            steps[user] = parsed
    return whole, steps, empty - set(whole)


def encode_all(data: Any, teacher_records: list[dict[str, Any]], student_records: list[dict[str, Any]],
               encoder: Any, records: Any = None, *, identity: dict[str, Any] | None = None,
               progress: bool = False, cut_teacher_records: list[dict[str, Any]] | None = None,
               cut_student_records: list[dict[str, Any]] | None = None,
               ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Every array of the stage (file name -> array) and counts for ``vectors.json``.

    All texts go to the encoder in one call (duplicates encoded once, cached per text in
    ``records`` when given). Every user must have a student record; one whose answer was
    empty gets zero vectors, like the steps of a malformed answer, and is counted. The
    teacher's vectors cover whom it saw. With ``cut_student_records`` (``rationale_cut:
    separate``) the rationales from the cut become the ``cut_*`` arrays the same way.
    """
    num_users = data.num_users
    student_whole, student_steps, student_empty = _student_texts(data, student_records, "")
    teacher_whole, teacher_steps, _ = _rationale_texts(teacher_records, num_users, "teacher")
    sets = [("student", student_whole, student_steps), ("teacher", teacher_whole, teacher_steps)]
    cut_counts: dict[str, int] = {}
    if cut_student_records is not None:
        cut_whole, cut_steps, cut_empty = _student_texts(data, cut_student_records, "cut ")
        cut_teacher, cut_teacher_steps, _ = _rationale_texts(cut_teacher_records or [], num_users,
                                                             "teacher")
        sets += [("cut_student", cut_whole, cut_steps), ("cut_teacher", cut_teacher, cut_teacher_steps)]
        cut_counts = {"cut_student_users": len(cut_whole), "cut_student_empty": len(cut_empty),
                      "cut_teacher_users": len(cut_teacher)}

    # (file name, row) for every text, in one list for one encoder call.
    slots: list[tuple[str, int]] = []
    texts: list[str] = []

    def add(name: str, rows: dict[int, str]) -> None:
        for row in sorted(rows):
            slots.append((name, row))
            texts.append(rows[row])

    add("item_vectors.npy", {i: data.item_text[i] for i in range(1, data.num_items + 1)})
    for who, whole, steps in sets:
        add(f"{who}_vectors.npy", whole)
        for step in STEPS:
            add(f"{who}_step{step}_vectors.npy", {u: s[step] for u, s in steps.items()})

    identity = dict(identity if identity is not None else getattr(encoder, "identity", {}) or {})
    stats: dict[str, Any] = {}
    vectors = encode_cached(encoder, texts, records, identity=identity, progress=progress,
                            stats=stats)  # (T, E)
    dim = int(vectors.shape[1]) if len(texts) else int(encoder.dim)
    names = [n for n in VECTOR_FILES if n != "teacher_mask.npy"]
    if cut_student_records is not None:
        names += list(CUT_VECTOR_FILES)
    arrays: dict[str, np.ndarray] = {
        name: np.zeros((data.num_items + 1 if name == "item_vectors.npy" else num_users, dim),
                       dtype=np.float32)
        for name in names
    }
    for (name, row), vector in zip(slots, vectors):
        arrays[name][row] = vector
    mask = np.zeros(num_users, dtype=bool)
    mask[sorted(teacher_whole)] = True
    arrays["teacher_mask.npy"] = mask
    summary = {
        "encoder": identity,
        "dim": dim,
        "num_items": data.num_items,
        "num_users": num_users,
        "student_users": len(student_whole),
        "student_empty": len(student_empty),
        "student_malformed": num_users - len(student_steps),
        "teacher_users": int(mask.sum()),
        "teacher_malformed": len(teacher_whole) - len(teacher_steps),
        **cut_counts,
        "texts": len(texts),
        "texts_encoded": int(stats.get("encoded", 0)),
        "texts_reused": int(stats.get("reused", 0)),
    }
    order = list(VECTOR_FILES) + (list(CUT_VECTOR_FILES) if cut_student_records is not None else [])
    return {name: arrays[name] for name in order}, summary


def _student_texts(data: Any, records: list[dict[str, Any]], which: str):
    """:func:`_rationale_texts` of the student, which must cover every user."""
    num_users = data.num_users
    whole, steps, empty = _rationale_texts(records, num_users, "student")
    missing = [u for u in range(num_users) if u not in whole and u not in empty]
    if missing:
        shown = ", ".join(str(data.user_ids[u]) for u in missing[:5])
        raise SlimkitError(
            f"The distill stage has {which}rationales for {num_users - len(missing)} of {num_users} "
            f"users; {len(missing)} have none (e.g. user {shown}). Every user needs the "
            "student's rationale before the encode stage.",
            hint="Re-run the distill stage for every user: leave student.num_users empty "
            "(`--set student.num_users=null`) and run `slimkit distill` (finished users are "
            "cached).",
        )
    return whole, steps, empty


def encode(spec: Any, dataset: Any, teacher_records: list[dict[str, Any]],
           student_records: list[dict[str, Any]], out: Path, *, records: Callable[[str], Any],
           progress: bool = True, cut_teacher_records: list[dict[str, Any]] | None = None,
           cut_student_records: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Encode item texts and rationales (and, under ``rationale_cut: separate``, the
    rationales from the cut) with the spec's encoder into ``out``; returns the summary
    (also written as ``vectors.json``)."""
    from slimkit.runtime import resolve_device

    start = time.perf_counter()
    encoder = build_encoder(spec.encoder, device=resolve_device("auto"))
    identity = encoder_identity(spec.encoder, encoder)
    arrays, summary = encode_all(dataset, teacher_records, student_records, encoder,
                                 records(RECORD_NAMESPACE), identity=identity, progress=progress,
                                 cut_teacher_records=cut_teacher_records,
                                 cut_student_records=cut_student_records)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    write_vectors(out, arrays, summary)
    write_summary(out, summary)
    return summary

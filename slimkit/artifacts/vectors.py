"""The encode stage's output: item-text and rationale vectors as ``.npy`` arrays.

* ``item_vectors.npy``  ``(N + 1, E)`` float32, row 0 (padding) zeros;
* ``student_vectors.npy`` ``(U, E)``: the student's whole rationale per user;
* ``student_step{1,2,3}_vectors.npy`` ``(U, E)``: each step alone (zeros where the
  student's answer was malformed);
* ``teacher_vectors.npy`` ``(U, E)`` + ``teacher_mask.npy`` ``(U,)`` bool: the teacher's
  rationale for the users it saw, zeros elsewhere; ``teacher_step{1,2,3}_vectors.npy``;
* ``cut_*`` (``prompt.rationale_cut: separate`` only): the same four student and four
  teacher arrays for the rationales written from the history before each user's cut
  (``cut_rationales.jsonl``), read by training targets after the cut;
* ``vectors.json``: the encoder identity, dim and counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from slimkit.artifacts.files import read_json, write_json
from slimkit.errors import SlimkitError, StageMissingError

STEPS = (1, 2, 3)
INFO_FILE = "vectors.json"
VECTOR_FILES = (
    "item_vectors.npy",
    "student_vectors.npy",
    *(f"student_step{k}_vectors.npy" for k in STEPS),
    "teacher_vectors.npy",
    "teacher_mask.npy",
    *(f"teacher_step{k}_vectors.npy" for k in STEPS),
)
CUT_VECTOR_FILES = tuple(
    f"cut_{name}" for name in VECTOR_FILES if name not in ("item_vectors.npy", "teacher_mask.npy")
)
"""Arrays of the rationales from the cut (``rationale_cut: separate``); absent otherwise."""
RERUN_HINT = "Re-run the encode stage: `slimkit cache clear encode`, then `slimkit run`."


def write_vectors(folder: Path, arrays: Mapping[str, np.ndarray], info: dict[str, Any]) -> None:
    """Every array (file name -> array, names of :data:`VECTOR_FILES`, and of
    :data:`CUT_VECTOR_FILES` when given) and ``vectors.json``."""
    for name in VECTOR_FILES + tuple(n for n in CUT_VECTOR_FILES if n in arrays):
        np.save(Path(folder) / name, arrays[name])
    write_json(Path(folder) / INFO_FILE, info)


def read_vector_info(folder: Path) -> dict[str, Any]:
    """``vectors.json`` of an encode stage folder."""
    return read_json(Path(folder) / INFO_FILE)


def read_vectors(folder: str | Path, encoder: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The arrays of an encode stage folder by name (``item_vectors``, ``student_vectors``,
    ...) plus ``info`` (``vectors.json``). With ``encoder`` (the identity the spec asks for:
    kind, model, ...), vectors made by another encoder are refused."""
    folder = Path(folder)
    if not (folder / INFO_FILE).is_file():
        raise StageMissingError(f"{folder} is not an encode stage output (no {INFO_FILE}).",
                                hint=RERUN_HINT)
    info = read_vector_info(folder)
    if encoder is not None:
        made = info.get("encoder", {})
        diff = [f"{k}: {made.get(k)!r} (spec: {v!r})" for k, v in encoder.items() if made.get(k) != v]
        if diff:
            raise SlimkitError(
                f"The vectors in {folder} were made by another encoder than the spec's "
                f"`encoder` section: {'; '.join(diff)}.",
                hint="Re-run the encode stage with this spec: `slimkit cache clear encode`, "
                "then `slimkit run` (unchanged texts come from the per-text cache).",
            )
    out: dict[str, Any] = {"info": info}
    for name in VECTOR_FILES + CUT_VECTOR_FILES:
        file = folder / name
        if file.is_file():
            out[name[: -len(".npy")]] = np.load(file)
    if "item_vectors" not in out or "student_vectors" not in out:
        raise StageMissingError(f"{folder} lacks item_vectors.npy or student_vectors.npy.",
                                hint=RERUN_HINT)
    return out


def select_rationale_vectors(vectors: Mapping[str, Any], source: str = "student",
                             step: int | None = None, *, cut: bool = False) -> np.ndarray:
    """``(U, E)`` rationale vectors a fusion head asks for (zero rows: no rationale).

    ``source`` is ``student`` or ``teacher`` (users the teacher did not see are zeros);
    ``step`` 1, 2 or 3 takes that step alone, ``None`` the whole rationale; ``cut``: the
    rationales from the cut (``rationale_cut: separate``).
    """
    if source not in ("student", "teacher"):
        raise SlimkitError(f"fusion.rationale_source must be student or teacher, got {source!r}")
    name = f"{source}_vectors" if step is None else f"{source}_step{int(step)}_vectors"
    name = f"cut_{name}" if cut else name
    if name not in vectors:
        raise StageMissingError(f"The encode stage output has no {name}.npy.", hint=RERUN_HINT)
    return vectors[name]

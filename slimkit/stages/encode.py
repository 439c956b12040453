"""Stage ``encode``: item texts and rationales (student's and teacher's) -> vectors.

Files written (see docs/architecture.md):

* ``item_vectors.npy``  ``(N + 1, E)`` float32, row 0 (padding) zeros;
* ``student_vectors.npy`` ``(U, E)``: the student's whole rationale per user;
* ``student_step{1,2,3}_vectors.npy`` ``(U, E)``: each step alone (zeros where the
  student's answer was malformed; counted in ``vectors.json``);
* ``teacher_vectors.npy`` ``(U, E)`` + ``teacher_mask.npy`` ``(U,)`` bool: the teacher's
  rationale for the users it saw, zeros elsewhere; ``teacher_step{1,2,3}_vectors.npy``
  likewise per step;
* ``vectors.json``: the encoder identity (kind, model, fingerprint, normalize,
  max_seq_length), dim, counts.

Vectors are cached per text, so a changed rationale or item text re-encodes that text only.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from slimkit.cache import StageCache
from slimkit.errors import SlimkitError, StageMissingError
from slimkit.stages import StageResult, stage_keys, stage_spec

STEPS = (1, 2, 3)
VECTOR_FILES = (
    "item_vectors.npy",
    "student_vectors.npy",
    *(f"student_step{k}_vectors.npy" for k in STEPS),
    "teacher_vectors.npy",
    "teacher_mask.npy",
    *(f"teacher_step{k}_vectors.npy" for k in STEPS),
)


def build_encoder(spec, device: str = "cpu"):
    """The encoder the spec names, built from its parameters."""
    from slimkit.components import implementation

    impl = implementation("encoders", spec.encoder.kind)
    params = spec.encoder.model_dump(exclude={"kind"})
    try:
        return impl(device=device, **params)
    except TypeError:  # a plugin encoder without a device argument
        return impl(**params)


def encoder_identity(spec) -> dict[str, Any]:
    """What the spec's encoder section says vectors must have been made with."""
    params = spec.encoder.model_dump(mode="json")
    return {k: params[k] for k in ("kind", "model", "normalize", "max_seq_length") if k in params}


def _steps_of(record: dict[str, Any]) -> dict[int, str] | None:
    steps = record.get("steps")
    if steps:
        out = {int(k): str(v) for k, v in steps.items() if str(v).strip()}
        if all(k in out for k in STEPS):
            return out
    from slimkit.rationale import parse_steps

    return parse_steps(record.get("rationale") or "")


def _rationale_texts(
    records: list[dict[str, Any]], num_users: int, who: str
) -> tuple[dict[int, str], dict[int, dict[int, str]], set[int]]:
    """user index -> whole rationale, user index -> steps (well-formed answers only), and
    the users whose answer was empty (they have a record, so they are not missing)."""
    whole: dict[int, str] = {}
    steps: dict[int, dict[int, str]] = {}
    empty: set[int] = set()
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
                hint=f"Re-run the {'teach' if who == 'teacher' else 'distill'} stage "
                "(`slimkit cache clear "
                f"{'teach' if who == 'teacher' else 'distill'}`, then `slimkit run`).",
            )
        whole[user] = text
        parsed = _steps_of(record)
        if parsed is not None:
            steps[user] = parsed
    return whole, steps, empty - set(whole)


def encode_all(
    data,
    teacher_records: list[dict[str, Any]],
    student_records: list[dict[str, Any]],
    encoder,
    cache: StageCache | None = None,
    *,
    progress: bool = False,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Every array of the stage (file name -> array) and counts for ``vectors.json``.

    All texts go to the encoder in one call (duplicates encoded once, cached per text).
    Every user must have a student record; one whose answer was empty gets zero vectors,
    like the steps of a malformed answer, and is counted. The teacher's cover whom it saw.
    """
    num_users = data.num_users
    student_whole, student_steps, student_empty = _rationale_texts(
        student_records, num_users, "student"
    )
    missing = [u for u in range(num_users) if u not in student_whole and u not in student_empty]
    if missing:
        shown = ", ".join(str(data.user_ids[u]) for u in missing[:5])
        raise SlimkitError(
            f"The distill stage has rationales for {num_users - len(missing)} of {num_users} "
            f"users; {len(missing)} have none (e.g. user {shown}). Every user needs the "
            "student's rationale before the encode stage.",
            hint="Re-run the distill stage for every user: leave student.num_users empty "
            "(`--set student.num_users=null`) and run `slimkit distill` (finished users are "
            "cached).",
        )
    teacher_whole, teacher_steps, _ = _rationale_texts(teacher_records, num_users, "teacher")

    # (file name, row) for every text, in one list for one encoder call.
    slots: list[tuple[str, int]] = []
    texts: list[str] = []

    def add(name: str, rows: dict[int, str]) -> None:
        for row in sorted(rows):
            slots.append((name, row))
            texts.append(rows[row])

    add("item_vectors.npy", {i: data.item_text[i] for i in range(1, data.num_items + 1)})
    for who, whole, steps in (
        ("student", student_whole, student_steps),
        ("teacher", teacher_whole, teacher_steps),
    ):
        add(f"{who}_vectors.npy", whole)
        for step in STEPS:
            add(f"{who}_step{step}_vectors.npy", {u: s[step] for u, s in steps.items()})

    vectors = encoder.encode(texts, cache, progress=progress)  # (T, E)
    dim = int(vectors.shape[1]) if len(texts) else int(encoder.dim)
    arrays: dict[str, np.ndarray] = {
        "item_vectors.npy": np.zeros((data.num_items + 1, dim), dtype=np.float32)
    }
    for who in ("student", "teacher"):
        arrays[f"{who}_vectors.npy"] = np.zeros((num_users, dim), dtype=np.float32)
        for step in STEPS:
            arrays[f"{who}_step{step}_vectors.npy"] = np.zeros((num_users, dim), dtype=np.float32)
    for (name, row), vector in zip(slots, vectors):
        arrays[name][row] = vector
    mask = np.zeros(num_users, dtype=bool)
    mask[sorted(teacher_whole)] = True
    arrays["teacher_mask.npy"] = mask
    arrays = {name: arrays[name] for name in VECTOR_FILES}

    stats = getattr(encoder, "stats", {})
    summary = {
        "encoder": dict(getattr(encoder, "identity", {})),
        "dim": dim,
        "num_items": data.num_items,
        "num_users": num_users,
        "student_users": len(student_whole),
        "student_empty": len(student_empty),
        "student_malformed": num_users - len(student_steps),
        "teacher_users": int(mask.sum()),
        "teacher_malformed": len(teacher_whole) - len(teacher_steps),
        "texts": len(texts),
        "texts_encoded": int(stats.get("encoded", 0)),
        "texts_reused": int(stats.get("reused", 0)),
    }
    return arrays, summary


def check_fine_tune(spec) -> None:
    """``encoder.fine_tune`` needs a GPU and a train stage that trains the encoder's text
    tower (``SentenceTransformersEncoder.text_tower``) with the recommender; refuse rather
    than silently train on frozen vectors."""
    from slimkit.encoders.sentence_transformers_encoder import check_fine_tune_device
    from slimkit.runtime import resolve_device

    check_fine_tune_device(resolve_device(spec.train.device))
    from slimkit.stages import train

    if not getattr(train, "SUPPORTS_ENCODER_FINE_TUNE", False):
        raise SlimkitError(
            "encoder.fine_tune is true, but this slimkit's train stage trains on frozen "
            "vectors only; fine-tuning would be silently skipped.",
            hint="Set encoder.fine_tune=false (the paper's setting: a frozen encoder).",
        )


def run_encode(spec, cache: StageCache | None = None, *, progress: bool = True) -> StageResult:
    """Encode item texts and rationales (or take them from the cache)."""
    cache = cache or StageCache()
    key = stage_keys(spec, cache)["encode"]
    hit = cache.get("encode", key)
    if hit is not None:
        summary = json.loads((hit / "vectors.json").read_text())
        return StageResult("encode", key, hit, cached=True, summary=summary)

    from slimkit.runtime import resolve_device
    from slimkit.stages.data import load_prepared
    from slimkit.stages.distill import load_student_rationales
    from slimkit.stages.teach import load_teacher_rationales

    start = time.perf_counter()
    if getattr(spec.encoder, "fine_tune", False):
        check_fine_tune(spec)
    data = load_prepared(spec, cache)
    teacher_records = list(load_teacher_rationales(spec, cache))
    student_records = list(load_student_rationales(spec, cache))
    encoder = build_encoder(spec, device=resolve_device("auto"))
    arrays, summary = encode_all(
        data, teacher_records, student_records, encoder, cache, progress=progress
    )
    summary["encoder"] = {**encoder_identity(spec), **summary["encoder"]}
    summary["seconds"] = round(time.perf_counter() - start, 2)
    with cache.write("encode", key, stage_spec(spec, "encode"), _versions(spec), summary) as out:
        for name, array in arrays.items():
            np.save(out / name, array)
        (out / "vectors.json").write_text(json.dumps(summary, indent=2))
    folder = cache.get("encode", key)
    return StageResult(
        "encode", key, folder, cached=False, seconds=summary["seconds"], summary=summary
    )


def _versions(spec) -> dict[str, str]:
    from slimkit.registry import component_versions

    return component_versions([("encoders", spec.encoder.kind)])


def load_vectors(spec, cache: StageCache | None = None, *, run: bool = True) -> dict[str, Any]:
    """The encode stage's arrays by name (``item_vectors``, ``student_vectors``, ...).

    Runs the stage when it is not cached (``run=False``: raise instead). Checks that the
    vectors were made by the spec's encoder and fit the dataset. ``info`` holds
    ``vectors.json``.
    """
    cache = cache or StageCache()
    key = stage_keys(spec, cache)["encode"]
    folder = cache.get("encode", key)
    if folder is None:
        if not run:
            raise StageMissingError(
                "The encode stage has not run for this spec.",
                hint="Run `slimkit run -c <spec>` (it encodes item texts and rationales).",
            )
        folder = run_encode(spec, cache, progress=False).path
    return read_vectors(folder, spec)


def read_vectors(folder: str | Path, spec=None) -> dict[str, Any]:
    """Read an encode stage folder; with ``spec``, refuse vectors of another encoder."""
    folder = Path(folder)
    info_file = folder / "vectors.json"
    if not info_file.is_file():
        raise StageMissingError(
            f"{folder} is not an encode stage output (no vectors.json).",
            hint="Re-run the encode stage: `slimkit cache clear encode`, then `slimkit run`.",
        )
    info = json.loads(info_file.read_text())
    if spec is not None:
        wanted = encoder_identity(spec)
        made = info.get("encoder", {})
        diff = [f"{k}: {made.get(k)!r} (spec: {v!r})" for k, v in wanted.items() if made.get(k) != v]
        if diff:
            raise SlimkitError(
                f"The vectors in {folder} were made by another encoder than the spec's "
                f"`encoder` section: {'; '.join(diff)}.",
                hint="Re-run the encode stage with this spec: `slimkit cache clear encode`, "
                "then `slimkit run` (unchanged texts come from the per-text cache).",
            )
    out: dict[str, Any] = {"info": info}
    for name in VECTOR_FILES:
        file = folder / name
        if file.is_file():
            out[name[: -len(".npy")]] = np.load(file)
    if "item_vectors" not in out or "student_vectors" not in out:
        raise StageMissingError(
            f"{folder} lacks item_vectors.npy or student_vectors.npy.",
            hint="Re-run the encode stage: `slimkit cache clear encode`, then `slimkit run`.",
        )
    return out


def select_rationale_vectors(vectors: dict[str, Any], source: str = "student", step: int | None = None):
    """``(U, E)`` rationale vectors the fusion Params ask for (zero rows: no rationale).

    ``source`` is ``student`` or ``teacher`` (users the teacher did not see are zeros);
    ``step`` 1, 2 or 3 takes that step alone, ``None`` the whole rationale.
    """
    if source not in ("student", "teacher"):
        raise SlimkitError(f"fusion.rationale_source must be student or teacher, got {source!r}")
    name = f"{source}_vectors" if step is None else f"{source}_step{int(step)}_vectors"
    if name not in vectors:
        raise StageMissingError(
            f"The encode stage output has no {name}.npy.",
            hint="Re-run the encode stage: `slimkit cache clear encode`, then `slimkit run`.",
        )
    return vectors[name]

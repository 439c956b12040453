"""Stage ``distill``: fine-tune the student on the teacher's rationales, then have it
write a rationale for every user.

Steps, each resumable:

1. the teacher's well-formed rationales are split (seeded) into training users and
   held-out users (``student.valid_share``);
2. the base student writes rationales for the held-out users (for the quality report);
3. a LoRA adapter is trained on the training users (or ``student.adapter`` is loaded and
   training skipped). A trained adapter is kept in ``cache.records("student-adapters")``
   under a key of everything training depends on, so a run killed later does not train
   again;
4. the fine-tuned student writes a rationale for every user (or the first
   ``student.num_users``), from the items before their validation and test targets
   only. Each rationale is cached on its own in ``cache.records("rationales")`` under
   (base model, adapter digest, prompt, generation parameters), so a killed run resumes
   without regenerating finished users;
5. the quality report compares base and fine-tuned student with the teacher.

Files (docs/architecture.md): ``adapter/`` (peft safetensors, tokenizer, resolved spec),
``rationales.jsonl``, ``quality.json``, plus ``training.json`` (losses) and
``summary.json``.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slimkit.cache import StageCache, hash_key
from slimkit.errors import SlimkitError
from slimkit.stages import StageResult, stage_keys, stage_spec

RATIONALES_FILE = "rationales.jsonl"
QUALITY_FILE = "quality.json"
TRAINING_FILE = "training.json"
SUMMARY_FILE = "summary.json"
ADAPTER_FOLDER = "adapter"

GENERATION_ONLY_FIELDS = frozenset(
    {"backend", "max_new_tokens", "gen_batch_size", "gen_quantize", "gen_workers", "num_users",
     "quality_users", "device", "adapter"}
)
"""Student parameters that do not change the trained adapter."""


# -- prompts ---------------------------------------------------------------------------------
def student_messages(spec, dataset, user: int) -> list[dict[str, str]]:
    """Chat messages of the student prompt for one user: the history the teacher saw
    (the same truncation rules, :func:`slimkit.stages.teach.user_history`)."""
    from slimkit.registry import registry
    from slimkit.stages.teach import user_history

    template = registry("prompts").get(spec.prompt.student)
    history = user_history(dataset, user, spec.prompt.max_items, spec.prompt.max_item_chars)
    return template.render(history)


# -- helpers ---------------------------------------------------------------------------------
def _console():
    from rich.console import Console

    return Console(stderr=True)


def _versions(spec) -> dict[str, str]:
    from slimkit.registry import component_versions

    return component_versions([("students", spec.student.kind), ("prompts", spec.prompt.student)])


def usable_teacher_records(records: Sequence[dict[str, Any]], num_users: int) -> list[dict[str, Any]]:
    """Teacher records that can be training targets: done, non-empty and three-step."""
    from slimkit.rationale import parse_steps

    out = []
    for record in records:
        if record.get("status", "done") != "done":
            continue
        text = (record.get("rationale") or "").strip()
        if not text or not record.get("well_formed", parse_steps(text) is not None):
            continue
        user = int(record["user_index"])
        if not 0 <= user < num_users:
            raise SlimkitError(
                f"The teacher's rationales name user index {user}, but the dataset has "
                f"{num_users} users: they were written for another dataset.",
                hint="Re-run the teach stage: `slimkit cache clear teach`, then `slimkit teach`.",
            )
        out.append(record)
    return out


def split_held_out(
    records: Sequence[dict[str, Any]], share: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training, held-out) teacher records, a seeded split by user."""
    ordered = sorted(records, key=lambda r: int(r["user_index"]))
    random.Random(seed).shuffle(ordered)
    n_valid = round(share * len(ordered))
    if share > 0 and len(ordered) >= 2:
        n_valid = min(max(n_valid, 1), len(ordered) - 1)
    else:
        n_valid = 0
    return ordered[n_valid:], ordered[:n_valid]


def _training_key(spec, keys: dict[str, str]) -> str:
    student = spec.student.model_dump(mode="json")
    parts = {k: v for k, v in student.items() if k not in GENERATION_ONLY_FIELDS}
    return hash_key("student-adapter", parts, spec.prompt.model_dump(mode="json"),
                    keys["data"], keys["teach"], _versions(spec))


def _store_adapter(cache: StageCache, key: str, folder: Path, training: dict[str, Any]) -> None:
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    cache.records("student-adapters").set(key, {"files": files, "training": training})


def _restore_adapter(cache: StageCache, key: str, folder: Path) -> dict[str, Any] | None:
    stored = cache.records("student-adapters").get(key)
    if stored is None:
        return None
    for rel, data in stored["files"].items():
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return stored["training"]


class _RationaleGenerator:
    """Generate (or take from the cache) the student's rationale for a list of users."""

    def __init__(self, student, cache: StageCache, prompt_of, *, adapter: bool = True):
        self.student = student
        self.adapter = adapter
        self.store = cache.records("rationales")
        self.prompt_of = prompt_of
        self.generated = 0
        self.cached = 0
        self.stats: list[dict[str, Any]] = []

    def record_key(self, user: int) -> str:
        return hash_key(
            "student-rationale",
            self.student.identity(self.adapter),
            self.student.prompt_text(self.prompt_of(user)),
            self.student.generation_params(),
        )

    def __call__(self, users: Sequence[int], *, progress: bool, description: str) -> dict[int, dict]:
        out: dict[int, dict] = {}
        todo: list[int] = []
        keys: dict[int, str] = {}
        for user in users:
            keys[user] = self.record_key(user)
            found = self.store.get(keys[user])
            if found is None:
                todo.append(user)
            else:
                out[user] = found
        self.cached += len(users) - len(todo)
        if todo:
            prompts = [self.student.prompt_ids(self.prompt_of(u)) for u in todo]

            def on_done(index: int, text: str, new_tokens: int) -> None:
                user = todo[index]
                value = {"rationale": text, "new_tokens": int(new_tokens)}
                self.store.set(keys[user], value)
                out[user] = value

            if progress:
                _console().print(
                    f"{description}: {len(todo)} to generate, {len(users) - len(todo)} cached"
                )
            stats = self.student.generate(prompts, on_done=on_done, progress=progress,
                                          description=description, adapter=self.adapter)
            self.stats.append({"what": description, **stats})
            self.generated += len(todo)
        return out


# -- the stage -------------------------------------------------------------------------------
def run_distill(spec, cache: StageCache | None = None, *, progress: bool = True) -> StageResult:
    """Fine-tune the student and write every user's rationale (or take them from the cache)."""
    cache = cache or StageCache()
    keys = stage_keys(spec, cache)
    key = keys["distill"]
    hit = cache.get("distill", key)
    if hit is not None:
        summary = json.loads((hit / SUMMARY_FILE).read_text(encoding="utf-8"))
        return StageResult("distill", key, hit, cached=True, summary=summary)

    started = time.perf_counter()
    from slimkit.components import implementation
    from slimkit.rationale import parse_steps, steps_to_json
    from slimkit.stages.data import load_prepared
    from slimkit.stages.teach import load_teacher_rationales
    from slimkit.students import quality

    params = spec.student
    student = implementation("students", params.kind)(**params.model_dump(exclude={"kind"}))
    adapter_given = getattr(params, "adapter", None)
    if adapter_given:
        student.check_adapter_folder(adapter_given)
    if getattr(params, "backend", "transformers") == "vllm":
        from slimkit.students.generation import require_vllm

        require_vllm()

    dataset = load_prepared(spec, cache)
    teacher_records = list(load_teacher_rationales(spec, cache))
    usable = usable_teacher_records(teacher_records, dataset.num_users)
    if not usable and not adapter_given:
        raise SlimkitError(
            f"The teach stage produced no usable rationale ({len(teacher_records)} records, "
            "none done, non-empty and in the three-step format): there is nothing to "
            "train the student on.",
            hint="Check the teacher (`slimkit teach -c <spec>` shows failures), or point "
            "student.adapter at an adapter trained elsewhere.",
        )
    train_records, held_out = split_held_out(usable, params.valid_share, params.seed)
    eval_records = held_out if held_out else ([] if not adapter_given else usable)
    eval_records = eval_records[: params.quality_users]

    messages_cache: dict[int, list[dict[str, str]]] = {}

    def prompt_of(user: int) -> list[dict[str, str]]:
        if user not in messages_cache:
            messages_cache[user] = student_messages(spec, dataset, user)
        return messages_cache[user]

    console = _console()
    if progress:
        console.print(f"Loading the student model {params.model} ...")
    student.load()
    generator = _RationaleGenerator(student, cache, prompt_of)
    base_generator = _RationaleGenerator(student, cache, prompt_of, adapter=False)
    eval_users = [int(r["user_index"]) for r in eval_records]

    # 1. The base student on the held-out users, for the quality report (with vLLM the
    #    base stays available after training, so it waits until the engine is up).
    base_later = bool(getattr(student, "base_after_adapter", False))
    if not base_later:
        base_out = base_generator(eval_users, progress=progress, description="Base student (quality)")

    # 2. The adapter: given, restored from an earlier run, or trained now.
    workdir = Path(tempfile.mkdtemp(prefix="slimkit-distill-"))
    training: dict[str, Any]
    try:
        adapter_dir = workdir / ADAPTER_FOLDER
        if adapter_given:
            shutil.copytree(student.check_adapter_folder(adapter_given), adapter_dir)
            student.load_adapter(adapter_dir)
            training = {"adapter": "given", "path": str(adapter_given)}
        else:
            train_key = _training_key(spec, keys)
            restored = _restore_adapter(cache, train_key, adapter_dir)
            if restored is not None:
                student.load_adapter(adapter_dir)
                training = {**restored, "adapter": "restored"}
                if progress:
                    console.print("LoRA adapter restored from an earlier run (training skipped).")
            else:
                train_examples = [
                    student.build_example(int(r["user_index"]),
                                          student.prompt_ids(prompt_of(int(r["user_index"]))),
                                          r["rationale"])
                    for r in train_records
                ]
                valid_examples = [
                    student.build_example(int(r["user_index"]),
                                          student.prompt_ids(prompt_of(int(r["user_index"]))),
                                          r["rationale"])
                    for r in held_out
                ]
                training = student.train(train_examples, valid_examples, progress=progress)
                training["adapter"] = "trained"
                student.save_adapter(adapter_dir, stage_spec(spec, "distill"))
                _store_adapter(cache, train_key, adapter_dir, training)
        student.prepare_for_generation()

        # 3. Every user (or the first num_users), plus the held-out users for quality.
        num_users = dataset.num_users
        if params.num_users is not None:
            num_users = min(num_users, params.num_users)
        users = list(range(num_users))
        student_out = generator(users, progress=progress, description="Student rationales")
        missing_eval = [u for u in eval_users if u not in student_out]
        if missing_eval:
            student_out.update(
                generator(missing_eval, progress=progress, description="Held-out users")
            )
        if base_later:
            base_out = base_generator(eval_users, progress=progress,
                                      description="Base student (quality)")

        # 4. Quality on the held-out teacher users.
        report = None
        if eval_records:
            encode, encoder_name = _quality_encoder(spec, cache)
            report = quality.quality_report(
                [r["rationale"] for r in eval_records],
                [base_out[u]["rationale"] for u in eval_users],
                [student_out[u]["rationale"] for u in eval_users],
                encode,
                encoder=encoder_name,
                held_out=bool(held_out),
            )

        rows = []
        for user in users:
            text = student_out[user]["rationale"]
            steps = parse_steps(text)
            rows.append({
                "user": dataset.user_ids[user],
                "user_index": user,
                "rationale": text,
                "steps": steps_to_json(steps),
                "well_formed": steps is not None,
                "new_tokens": student_out[user]["new_tokens"],
            })
        gen_stats = generator.stats + base_generator.stats
        gen_seconds = sum(s["seconds"] for s in gen_stats)
        gen_tokens = sum(s["new_tokens"] for s in gen_stats)
        summary = {
            "users": len(rows),
            "generated": generator.generated + base_generator.generated,
            "cached": generator.cached + base_generator.cached,
            "well_formed_share": sum(r["well_formed"] for r in rows) / max(len(rows), 1),
            "new_tokens": gen_tokens,
            "generation_seconds": round(gen_seconds, 2),
            "tokens_per_s": round(gen_tokens / gen_seconds, 2) if gen_seconds > 0 else None,
            "teacher_records": len(teacher_records),
            "teacher_usable": len(usable),
            "train_users": len(train_records) if not adapter_given else 0,
            "held_out_users": len(held_out),
            "adapter": training.get("adapter"),
            "training": {k: v for k, v in training.items() if k not in ("train_loss",)},
            "quality": report,
            "backend": params.backend,
            "seconds": round(time.perf_counter() - started, 2),
        }
        with cache.write("distill", key, stage_spec(spec, "distill"), _versions(spec),
                         {k: summary[k] for k in ("users", "generated", "cached", "adapter")}) as out:
            shutil.copytree(adapter_dir, out / ADAPTER_FOLDER)
            with open(out / RATIONALES_FILE, "w", encoding="utf-8") as handle:
                handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
            (out / QUALITY_FILE).write_text(json.dumps(report, indent=2), encoding="utf-8")
            (out / TRAINING_FILE).write_text(json.dumps(training, indent=2, default=str),
                                             encoding="utf-8")
            (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str),
                                            encoding="utf-8")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    folder = cache.get("distill", key)
    return StageResult("distill", key, folder, cached=False, seconds=summary["seconds"],
                       summary=summary)


def _quality_encoder(spec, cache: StageCache):
    """(encode function, name) of the spec's encoder, for the report's cosine."""
    from slimkit.stages.encode import build_encoder

    encoder = build_encoder(spec)

    def encode(texts: list[str]):
        return encoder.encode(texts, cache)

    name = getattr(spec.encoder, "model", None) or spec.encoder.kind
    return encode, f"{spec.encoder.kind}:{name}"


def read_student_rationales(folder: str | Path) -> list[dict[str, Any]]:
    """The records of a distill stage folder's ``rationales.jsonl``."""
    path = Path(folder) / RATIONALES_FILE
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_student_rationales(spec, cache: StageCache | None = None) -> list[dict[str, Any]]:
    """Every user's student rationale (runs the distill stage when it is not cached)."""
    cache = cache or StageCache()
    key = stage_keys(spec, cache)["distill"]
    folder = cache.get("distill", key)
    if folder is None:
        folder = run_distill(spec, cache).path
    return read_student_rationales(folder)

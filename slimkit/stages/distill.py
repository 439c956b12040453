"""Stage ``distill``: fine-tune the student on the teacher's rationales, then have it write a
rationale for every user.

Steps, each resumable:

1. the teacher's usable rationales are split (seeded) into training and held-out users
   (``student.valid_share``);
2. the base student writes rationales for every teacher user: the held-out ones feed the
   quality report, all of them the grounding metrics (teacher, base and fine-tuned student
   compared on the same users);
3. a LoRA adapter is trained on the training users (or ``student.adapter`` is loaded and
   training skipped). A trained adapter is kept in the ``student-adapters`` record store
   under a hash of everything training reads, so a run killed later does not train again;
4. the fine-tuned student writes a rationale for every user (or the first
   ``student.num_users``), from the items before their validation and test targets only,
   each cached on its own (:class:`RationaleGenerator`), so a killed run resumes;
5. the quality report compares base and fine-tuned student with the teacher, and the
   grounding metrics (:mod:`slimkit.evaluation.grounding`) check the teacher's, the base
   student's and the fine-tuned student's rationales against the data, on every user
   that has one; a collapsed student (many users sharing one rationale) is warned about.

Files: ``adapter/`` (peft safetensors, tokenizer, resolved spec), ``rationales.jsonl``
(:mod:`slimkit.artifacts.rationales`), ``quality.json``, ``training.json`` (losses) and
``summary.json``.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from slimkit.artifacts.files import write_json, write_summary
from slimkit.artifacts.rationales import CUT_RATIONALES_FILE, write_rationales
from slimkit.cache import hash_key
from slimkit.console import stderr_console
from slimkit.data.rationale_cut import views_of
from slimkit.errors import SlimkitError
from slimkit.factories import build_student, cached_text_encoder, prompt_template
from slimkit.prompts.history import user_messages
from slimkit.rationale import parse_steps, steps_to_json
from slimkit.registry import component_versions

QUALITY_FILE = "quality.json"
TRAINING_FILE = "training.json"
ADAPTER_FOLDER = "adapter"
ADAPTER_STORE = "student-adapters"
RATIONALE_STORE = "rationales"

GENERATION_ONLY_FIELDS = frozenset(
    {"backend", "max_new_tokens", "gen_batch_size", "precision", "gen_workers", "num_users",
     "quality_users", "device", "adapter", "repetition_penalty", "no_repeat_ngram_size",
     "constrain_items", "constrain_max_items", "constrain_candidates", "scaffold_steps"}
)
"""Student parameters that do not change the trained adapter."""


def student_messages(spec: Any, dataset: Any, user: int) -> list[dict[str, str]]:
    """Chat messages of the student prompt for user index ``user``: the history the teacher
    saw, under the same truncation rules."""
    return user_messages(prompt_template(spec.prompt.student), dataset, user, spec.prompt)


def usable_teacher_records(records: Sequence[dict[str, Any]], num_users: int) -> list[dict[str, Any]]:
    """Teacher records that can be training targets: done, non-empty and three-step."""
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


def split_held_out(records: Sequence[dict[str, Any]], share: float,
                   seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training, held-out) teacher records, a seeded split by user."""
    ordered = sorted(records, key=lambda r: int(r["user_index"]))
    random.Random(seed).shuffle(ordered)
    n_valid = round(share * len(ordered))
    if share > 0 and len(ordered) >= 2:
        n_valid = min(max(n_valid, 1), len(ordered) - 1)
    else:
        n_valid = 0
    return ordered[n_valid:], ordered[:n_valid]


class RationaleGenerator:
    """The student's rationale for users (or new histories): from the ``rationales`` record
    store when written before, else generated and stored one by one as each finishes."""

    def __init__(self, student: Any, store: Any, prompt_of: Callable[[Any], list[dict[str, str]]],
                 *, adapter: bool = True, titles: Sequence[str] | None = None,
                 history_of: Callable[[Any], Collection[int]] | None = None):
        self.student = student
        # student.constrain_items: step 3 names only catalogue ``titles`` outside history_of(who)
        self.constrain = bool(getattr(student, "constrain_items", False)) and titles is not None \
            and history_of is not None
        self.titles = titles
        self.history_of = history_of
        self.adapter = adapter
        self.store = store
        self.prompt_of = prompt_of
        self.generated = 0
        self.cached = 0
        self.stats: list[dict[str, Any]] = []

    def record_key(self, who: Any) -> str:
        """Store key: base model, adapter, the prompt as the model reads it, decoding (and,
        when step 3 is constrained, the items it may not name)."""
        parts = [self.student.identity(self.adapter), self.student.prompt_text(self.prompt_of(who)),
                 self.student.generation_params()]
        if self.constrain:
            parts.append(sorted(int(i) for i in self.history_of(who)))
        return hash_key("student-rationale", *parts)

    def __call__(self, users: Sequence[Any], *, progress: bool, description: str) -> dict[Any, dict]:
        out: dict[Any, dict] = {}
        keys = {user: self.record_key(user) for user in users}
        todo = []
        for user in users:
            found = self.store.get(keys[user])
            if found is None:
                todo.append(user)
            else:
                out[user] = found
        self.cached += len(users) - len(todo)
        if not todo:
            return out
        prompts = [self.student.prompt_ids(self.prompt_of(u)) for u in todo]

        def on_done(index: int, text: str, new_tokens: int) -> None:
            value = {"rationale": text, "new_tokens": int(new_tokens)}
            self.store.set(keys[todo[index]], value)
            out[todo[index]] = value

        if progress:
            stderr_console().print(f"{description}: {len(todo)} to generate, "
                                   f"{len(users) - len(todo)} cached")
        extra: dict[str, Any] = {}
        if self.constrain:
            from slimkit.llm.constraints import ItemConstraint

            extra["item_constraint"] = ItemConstraint(
                titles=self.titles, banned=[set(self.history_of(u)) for u in todo])
        stats = self.student.generate(prompts, on_done=on_done, progress=progress,
                                      description=description, adapter=self.adapter, **extra)
        self.stats.append({"what": description, **stats})
        self.generated += len(todo)
        return out


def fit_student_lengths(student: Any, dataset: Any, records: Sequence[dict[str, Any]] | None,
                        users: Sequence[int], prompt_of: Callable[[int], list[dict[str, str]]], *,
                        fetch: bool = True) -> dict[str, Any] | None:
    """Size the student's lengths from the prompts of the training ``users`` and the teacher
    ``records`` they learn from (None: the teacher has not run; only the prompts are
    checked), when the student sizes its own (``fit_lengths``: ``hf-lora``'s ``auto``).
    A SlimkitError names the fix when they cannot fit; nothing but a tokenizer is loaded.
    Returns what was measured (None for a student without ``fit_lengths``)."""
    fit = getattr(student, "fit_lengths", None)
    if fit is None:
        return None
    rationales = None if records is None else [r["rationale"] for r in records]
    return fit({int(u): prompt_of(int(u)) for u in users}, rationales, fetch=fetch,
               user_name=lambda u: f"{dataset.user_ids[int(u)]}, index {int(u)}")


def student_lengths_as_run(student: Any, summary: dict[str, Any]) -> Any:
    """A ``student`` section with the lengths its distill run resolved from ``auto`` (read
    from that run's summary), so a later generation (a new user's rationale) matches it."""
    lengths = summary.get("student_lengths") or {}
    resolved = {name: lengths[name] for name in lengths.get("auto", [])
                if isinstance(lengths.get(name), int)}
    return student.model_copy(update=resolved) if resolved else student


def _adapter_key(spec: Any, train_records, held_out, prompt_of) -> str:
    """Store key of a trained adapter: what training reads (student training settings, the
    prompts and rationales of the training and held-out users) and the code versions."""
    student = spec.student.model_dump(mode="json")
    settings = {k: v for k, v in student.items() if k not in GENERATION_ONLY_FIELDS}
    settings["qlora"] = student.get("precision") == "4bit"  # 4-bit changes training too
    examples = [[prompt_of(int(r["user_index"])), r["rationale"]] for r in (*train_records, *held_out)]
    versions = component_versions([("students", spec.student.kind), ("prompts", spec.prompt.student)])
    return hash_key("student-adapter", settings, len(train_records), examples, versions)


def _train_or_restore(student, spec, train_records, held_out, prompt_of, adapter_dir: Path,
                      store, progress: bool) -> dict[str, Any]:
    """Put the adapter on the student: given, restored from the store, or trained now."""
    given = getattr(spec.student, "adapter", None)
    if given:
        shutil.copytree(student.check_adapter_folder(given), adapter_dir)
        student.load_adapter(adapter_dir)
        return {"adapter": "given", "path": str(given)}
    key = _adapter_key(spec, train_records, held_out, prompt_of)
    stored = store.get(key)
    if stored is not None:
        for rel, data in stored["files"].items():
            (adapter_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (adapter_dir / rel).write_bytes(data)
        student.load_adapter(adapter_dir)
        if progress:
            stderr_console().print("LoRA adapter restored from an earlier run (training skipped).")
        return {**stored["training"], "adapter": "restored"}

    def examples(records):
        return [student.build_example(int(r["user_index"]),
                                      student.prompt_ids(prompt_of(int(r["user_index"]))),
                                      r["rationale"]) for r in records]

    training = student.train(examples(train_records), examples(held_out), progress=progress)
    training["adapter"] = "trained"
    resolved = spec.to_dict()
    student.save_adapter(adapter_dir, {k: resolved[k] for k in ("dataset", "teacher", "prompt", "student")})
    files = {p.relative_to(adapter_dir).as_posix(): p.read_bytes()
             for p in adapter_dir.rglob("*") if p.is_file()}
    store.set(key, {"files": files, "training": training})
    return training


ADAPTER_WAIT_POLL_S = 1.0
"""How often a process waiting for another one's adapter training checks the lock."""


def train_or_restore_once(student, spec, train_records, held_out, prompt_of, adapter_dir: Path,
                          store, progress: bool) -> dict[str, Any]:
    """:func:`_train_or_restore` with the adapter trained by one process only: several
    runs of one spec (``distill --shard`` processes, on one machine or sharing the cache
    folder) take a file lock on the adapter's store key; the first trains and stores the
    adapter, the others wait for the lock and then restore it. A killed holder releases
    the lock at once (an OS file lock)."""
    if getattr(spec.student, "adapter", None):
        return _train_or_restore(student, spec, train_records, held_out, prompt_of, adapter_dir,
                                 store, progress)
    from slimkit.cache import RequestLock, request_lock_path

    key = _adapter_key(spec, train_records, held_out, prompt_of)
    lock = RequestLock(store, f"train-{key}")
    told = False
    while not lock.try_acquire():
        if progress and not told:
            stderr_console().print("Another process is training this LoRA adapter; waiting for "
                                   f"it (lock: {request_lock_path(store, f'train-{key}')}).")
        told = True
        time.sleep(ADAPTER_WAIT_POLL_S)
    try:
        return _train_or_restore(student, spec, train_records, held_out, prompt_of, adapter_dir,
                                 store, progress)
    finally:
        lock.release(answered=key in store)


def _quality(spec, records, eval_records, base_out, student_out, held_out: bool):
    """The quality report on the held-out teacher users (None when there are none)."""
    if not eval_records:
        return None
    from slimkit.encoders.cached import RECORD_NAMESPACE
    from slimkit.students import quality

    encode = cached_text_encoder(spec.encoder, records(RECORD_NAMESPACE))
    users = [int(r["user_index"]) for r in eval_records]
    name = getattr(spec.encoder, "model", None) or spec.encoder.kind
    return quality.quality_report(
        [r["rationale"] for r in eval_records],
        [base_out[u]["rationale"] for u in users],
        [student_out[u]["rationale"] for u in users],
        encode,
        encoder=f"{spec.encoder.kind}:{name}",
        held_out=held_out,
    )


def distill(spec: Any, dataset: Any, teacher_records: Sequence[dict[str, Any]], out: Path, *,
            records: Callable[[str], Any], progress: bool = True, shard: Any = None,
            cut_teacher_records: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Fine-tune the spec's student on ``teacher_records`` and write every user's rationale
    into ``out``; returns the summary. ``records(namespace)`` gives a per-item store.

    Prompts show the history ``prompt.rationale_cut`` allows (:mod:`slimkit.data.rationale_cut`).
    Under ``separate`` the student learns from ``cut_teacher_records`` (the teacher's
    rationales from the cut, so the adapter never sees an item after a cut), writes every
    user's rationale from the cut into ``cut_rationales.jsonl`` and from the whole
    training sequence into ``rationales.jsonl`` (:func:`separate_rationales`).

    With ``shard`` (a :class:`slimkit.stages.distill_shards.ShardRun`) only that shard's
    users get their rationales (into the record store) and the shard's summary is returned:
    nothing is written into ``out`` but the adapter (:mod:`slimkit.stages.distill_shards`).
    Under ``separate`` the second set (from the whole training sequence) is written by the
    final, assembling run.
    """
    started = time.perf_counter()
    views = views_of(dataset, spec.prompt)
    dataset = views.train
    if views.cut is not None:
        teacher_records = list(cut_teacher_records or [])
    params = spec.student
    student = build_student(params)
    adapter_given = getattr(params, "adapter", None)
    if adapter_given:
        student.check_adapter_folder(adapter_given)
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
    messages: dict[int, list[dict[str, str]]] = {}

    def prompt_of(user: int) -> list[dict[str, str]]:
        if user not in messages:
            messages[user] = student_messages(spec, dataset, user)
        return messages[user]

    training_users = [] if adapter_given else [int(r["user_index"]) for r in (*train_records, *held_out)]
    lengths = fit_student_lengths(student, dataset, usable, training_users, prompt_of)
    for warning in (lengths or {}).get("warnings", []):
        stderr_console().print(f"[yellow]Warning:[/] {warning}")
    if progress:
        stderr_console().print(f"Loading the student model {params.model} ...")
    student.load()
    from slimkit.prompts.history import catalogue_facts

    def history_of(user: int) -> set[int]:  # what a constrained step 3 may not name
        return catalogue_facts(dataset).banned_items(user, getattr(params, "constrain_candidates", None))

    generator = RationaleGenerator(student, records(RATIONALE_STORE), prompt_of,
                                   titles=dataset.item_titles, history_of=history_of)
    base_generator = RationaleGenerator(student, records(RATIONALE_STORE), prompt_of, adapter=False,
                                        titles=dataset.item_titles, history_of=history_of)
    eval_users = [int(r["user_index"]) for r in eval_records]
    # The base student on every teacher user: the held-out ones for the quality report, all
    # of them for grounding (teacher, base and fine-tuned on the same users).
    teacher_users = [int(r["user_index"]) for r in usable]
    base_users = list(dict.fromkeys(eval_users + teacher_users))
    if shard is not None:  # this shard's share of the held-out and base users
        eval_users, base_users = shard.take(eval_users), shard.take(base_users)

    # With vLLM the base stays available after training, so it waits until the engine is up.
    base_later = bool(getattr(student, "base_after_adapter", False))
    if not base_later:
        base_out = base_generator(base_users, progress=progress, description="Base student (grounding)")
    adapter_dir = out / ADAPTER_FOLDER
    training = train_or_restore_once(student, spec, train_records, held_out, prompt_of, adapter_dir,
                                     records(ADAPTER_STORE), progress)
    student.prepare_for_generation()
    num_users = dataset.num_users if params.num_users is None else min(dataset.num_users, params.num_users)
    users = list(range(num_users))
    student_out = (shard.generate(generator, users, progress=progress, description="Student rationales")
                   if shard is not None else
                   generator(users, progress=progress, description="Student rationales"))
    missing_eval = [u for u in eval_users if u not in student_out]
    if missing_eval:
        student_out.update(generator(missing_eval, progress=progress, description="Held-out users"))
    if base_later:
        base_out = base_generator(base_users, progress=progress, description="Base student (grounding)")
    if shard is not None:  # the quality report and the stage files wait for the whole run
        return shard.finish([generator, base_generator], training, getattr(params, "backend", None))
    report = _quality(spec, records, eval_records, base_out, student_out, bool(held_out))

    from slimkit.evaluation.grounding import Grounder, collapse_warning, summarize

    grounder = Grounder(dataset)
    rows, checks = student_rows(dataset, users, student_out, grounder)
    grounding = {
        "teacher": grounder.metrics({int(r["user_index"]): r.get("rationale") or ""
                                     for r in teacher_records if r.get("status", "done") == "done"}),
        "base": grounder.metrics({u: base_out[u]["rationale"] for u in base_users if u in base_out}),
        "fine_tuned": summarize(checks, {u: student_out[u]["rationale"] for u in users}),
        # the fine-tuned student on the teacher's users only: like for like with the two above
        "fine_tuned_teacher_users": summarize(
            {u: checks[u] for u in teacher_users if u in checks},
            {u: student_out[u]["rationale"] for u in teacher_users if u in checks}),
    }
    warnings = [w for w in (collapse_warning(grounding["fine_tuned"], "fine-tuned student"),) if w]
    if report is not None:
        report["grounding"] = grounding
    for warning in warnings:
        stderr_console().print(f"[yellow]Warning:[/] {warning}")
    warnings += (lengths or {}).get("warnings", [])  # printed before the model loaded
    cut_rows, generators = None, [generator, base_generator]
    if views.cut is not None:
        cut_rows = rows
        main = separate_rationales(student, spec, views.main, users, records, progress)
        rows = main["rows"]
        generators.append(main["generator"])
        grounding["fine_tuned_whole_history"] = main["grounding"]
    gen_stats = [s for g in generators for s in g.stats]
    gen_seconds = sum(s["seconds"] for s in gen_stats)
    gen_tokens = sum(s["new_tokens"] for s in gen_stats)
    summary = {
        "users": len(rows),
        "generated": sum(g.generated for g in generators),
        "cached": sum(g.cached for g in generators),
        "well_formed_share": sum(r["well_formed"] for r in rows) / max(len(rows), 1),
        "new_tokens": gen_tokens,
        "generation_seconds": round(gen_seconds, 2),
        "tokens_per_s": round(gen_tokens / gen_seconds, 2) if gen_seconds > 0 else None,
        "teacher_records": len(teacher_records),
        "teacher_usable": len(usable),
        "train_users": len(train_records) if not adapter_given else 0,
        "held_out_users": len(held_out),
        "adapter": training.get("adapter"),
        "training": {k: v for k, v in training.items() if k != "train_loss"},
        "quality": report,
        "grounding": grounding,
        "warnings": warnings,
        "backend": getattr(params, "backend", None),
        "student_lengths": lengths,
        "seconds": round(time.perf_counter() - started, 2),
    }
    write_rationales(out, rows)
    if cut_rows is not None:
        write_rationales(out, cut_rows, name=CUT_RATIONALES_FILE)
    summary["rationale_cut"] = views.mode
    write_json(out / QUALITY_FILE, report)
    write_json(out / TRAINING_FILE, training)
    write_summary(out, summary)
    return summary


def student_rows(dataset: Any, users: Sequence[int], outputs: dict[int, dict[str, Any]],
                 grounder: Any) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    """``rationales.jsonl`` rows of ``users`` from the student's ``outputs``, and each
    user's grounding check (against the history the rationale was written from)."""
    rows, checks = [], {}
    for user in users:
        text = outputs[user]["rationale"]
        steps = parse_steps(text)
        checks[user] = grounder.check(user, steps)
        named = [dataset.item_ids[i] for i in checks[user].get("step3_items", [])]
        rows.append({"user": dataset.user_ids[user], "user_index": user, "rationale": text,
                     "steps": steps_to_json(steps), "well_formed": steps is not None,
                     "named_items": named, "new_tokens": outputs[user]["new_tokens"]})
    return rows, checks


def separate_rationales(student: Any, spec: Any, dataset: Any, users: Sequence[int],
                        records: Callable[[str], Any], progress: bool) -> dict[str, Any]:
    """``rationale_cut: separate``: the fine-tuned student (adapter loaded) writes each of
    ``users``' rationale from the whole training sequence (``dataset``: the full view),
    the one validation and test read. Returns ``rows``, the ``generator`` (its counts) and
    the ``grounding`` summary of these rationales."""
    from slimkit.evaluation.grounding import Grounder, summarize
    from slimkit.prompts.history import catalogue_facts

    messages: dict[int, list[dict[str, str]]] = {}

    def prompt_of(user: int) -> list[dict[str, str]]:
        if user not in messages:
            messages[user] = student_messages(spec, dataset, user)
        return messages[user]

    def history_of(user: int) -> set[int]:
        return catalogue_facts(dataset).banned_items(
            user, getattr(spec.student, "constrain_candidates", None))

    generator = RationaleGenerator(student, records(RATIONALE_STORE), prompt_of,
                                   titles=dataset.item_titles, history_of=history_of)
    out = generator(list(users), progress=progress,
                    description="Student rationales (whole training sequence)")
    rows, checks = student_rows(dataset, users, out, Grounder(dataset))
    return {"rows": rows, "generator": generator,
            "grounding": summarize(checks, {u: out[u]["rationale"] for u in users})}

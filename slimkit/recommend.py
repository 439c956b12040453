"""Top-K items for one user, with the student's rationale beside them.

:func:`recommend` loads the trained recommender of a spec (the ``train`` stage output),
scores every item for a known user (or for a new user given by a short history, whose
rationale the fine-tuned student writes on the spot), drops items the user already has
unless asked, and returns the items with their title, score and the rationale step that
mentions them (fuzzy title match), where one does.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from slimkit.cache import StageCache
from slimkit.errors import SlimkitError, StageMissingError
from slimkit.stages import fusion_needs, stage_keys

RECENT_HISTORY = 10
"""How many of the most recent history items the CLI shows."""


# ---------------------------------------------------------------------------------------
# Which rationale step mentions an item
# ---------------------------------------------------------------------------------------
_YEAR = re.compile(r"\s*\((?:\d{4}|\d{4}\s*-\s*\d{0,4})\)\s*$")
_PAREN = re.compile(r"\s*\([^)]*\)")
_ARTICLE = re.compile(r"^(.*),\s*(the|a|an|les|la|le|il|el|das|der|die)$", re.I)
_NON_WORD = re.compile(r"[^0-9a-z]+")


def _words(text: str) -> list[str]:
    return [w for w in _NON_WORD.split(text.lower()) if w]


def title_variants(title: str) -> list[list[str]]:
    """Word lists a rationale may use for a title.

    "Matrix, The (1999)" -> [["the", "matrix"], ["matrix"]]; "Shanghai Triad (Yao a yao
    yao dao waipo qiao) (1995)" -> [["shanghai", "triad", "yao", ...], ["shanghai",
    "triad"]]. Years and bracketed alternative titles are optional.
    """
    base = _YEAR.sub("", title.strip())
    variants: list[str] = []
    short = _PAREN.sub("", base)
    for text in (base, short, short.split(":")[0]):
        text = text.strip()
        moved = _ARTICLE.match(text)
        if moved:
            variants.append(f"{moved.group(2)} {moved.group(1)}")
            variants.append(moved.group(1))
        variants.append(text)
    out: list[list[str]] = []
    for text in variants:
        words = _words(text)
        if words and words not in out:
            out.append(words)
    return out


def _mentions(step_words: list[str], title_words: list[str]) -> bool:
    n = len(title_words)
    if n == 0 or len(step_words) < n:
        return False
    joined = " ".join(title_words)
    if n == 1 and len(joined) < 4:
        return False  # "It", "M": too short to tell a title from a word
    text = " ".join(step_words)
    if re.search(rf"(?:^| ){re.escape(joined)}(?: |$)", text):
        return True
    if len(joined) < 8:
        return False  # short titles must match exactly
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(joined)
    for size in {max(1, n - 1), n, n + 1}:
        for start in range(0, len(step_words) - size + 1):
            matcher.set_seq1(" ".join(step_words[start : start + size]))
            if matcher.real_quick_ratio() >= 0.88 and matcher.ratio() >= 0.88:
                return True
    return False


def mentioning_step(title: str, steps: Mapping[Any, str] | None) -> int | None:
    """The rationale step (3, then 2, then 1) that names ``title``, or ``None``."""
    if not steps or not title:
        return None
    variants = title_variants(title)
    for number in (3, 2, 1):
        text = steps.get(number) or steps.get(str(number))
        if not text:
            continue
        step_words = _words(text)
        if any(_mentions(step_words, v) for v in variants):
            return number
    return None


# ---------------------------------------------------------------------------------------
# Users, items, rationales
# ---------------------------------------------------------------------------------------
def close_ids(wanted: str, ids: Sequence[str], n: int = 5) -> list[str]:
    """Ids that look like ``wanted``: spelled alike, or numerically near for numbers."""
    out = difflib.get_close_matches(str(wanted), list(ids), n=n, cutoff=0.6)
    if str(wanted).strip().lstrip("-").isdigit():
        target = int(wanted)
        numeric = sorted((abs(int(i) - target), i) for i in ids if str(i).isdigit())
        for _, candidate in numeric[:n]:
            if candidate not in out:
                out.append(candidate)
    return out[:n]


def user_index(dataset, user: str) -> int:
    """Index of raw user id ``user``; an unknown id is a SlimkitError suggesting close ids."""
    try:
        return dataset.user_index(str(user))
    except KeyError:
        close = close_ids(str(user), dataset.user_ids)
        raise SlimkitError(
            f"Unknown user '{user}': dataset {dataset.name} has no such user id "
            f"({dataset.num_users} users after preparation).",
            hint=(f"Close ids: {', '.join(close)}. " if close else "")
            + "Users with fewer than 3 interactions (or removed by k-core filtering) are not "
            "in the prepared dataset; `--history ITEM,ITEM,...` recommends for a new user.",
        ) from None


def item_indices(dataset, items: Sequence[str]) -> list[int]:
    """Item indices of raw item ids (or exact titles); unknown ones are one SlimkitError."""
    by_title: dict[str, int] = {}
    for index, title in enumerate(dataset.item_titles):
        if index and title:
            by_title.setdefault(title.strip().lower(), index)
    out, problems = [], []
    for raw in items:
        raw = str(raw).strip()
        if not raw:
            continue
        try:
            out.append(dataset.item_index(raw))
            continue
        except KeyError:
            pass
        if raw.lower() in by_title:
            out.append(by_title[raw.lower()])
            continue
        close = close_ids(raw, dataset.item_ids[1:], n=3)
        problems.append(
            f"'{raw}' is neither an item id nor a title"
            + (f" (close ids: {', '.join(close)})" if close else "")
        )
    if problems:
        raise SlimkitError(
            f"--history: {len(problems)} unknown item{'s' if len(problems) > 1 else ''} in "
            f"dataset {dataset.name}:",
            problems=problems,
            hint="Give raw item ids as in the dataset's files, separated by commas.",
        )
    if not out:
        raise SlimkitError("--history is empty: give at least one item id, e.g. --history 50,181")
    return out


def _steps_dict(record: Mapping[str, Any]) -> dict[str, str] | None:
    steps = record.get("steps")
    if isinstance(steps, Mapping) and steps:
        return {str(k): str(v) for k, v in steps.items()}
    from slimkit.rationale import parse_steps

    parsed = parse_steps(record.get("rationale") or "")
    return {str(k): v for k, v in parsed.items()} if parsed else None


def _rationale_of(spec, cache: StageCache, user: int) -> dict[str, Any] | None:
    """The student's rationale for a known user (the teacher's when the student has none)."""
    keys = stage_keys(spec, cache)
    distill = cache.get("distill", keys["distill"])
    if distill is not None:
        from slimkit.stages.distill import read_student_rationales

        for record in read_student_rationales(distill):
            if int(record["user_index"]) == user:
                return {
                    "source": "student",
                    "text": record.get("rationale", ""),
                    "steps": _steps_dict(record),
                    "well_formed": bool(record.get("well_formed", False)),
                }
    teach = cache.get("teach", keys["teach"])
    if teach is not None:
        from slimkit.stages.teach import load_teacher_rationales

        for record in load_teacher_rationales(spec, cache):
            if int(record["user_index"]) == user and record.get("status", "done") == "done":
                return {
                    "source": "teacher",
                    "text": record.get("rationale", ""),
                    "steps": _steps_dict(record),
                    "well_formed": bool(record.get("well_formed", False)),
                }
    return None


def _history_texts(spec, dataset, items: Sequence[int]) -> list[str]:
    """Item texts of a new user's prompt, cut as the teach and distill stages cut them."""
    limit = spec.prompt.max_item_chars
    texts = []
    for item in list(items)[-spec.prompt.max_items :]:
        text = " ".join(str(dataset.item_text[int(item)]).split())
        if len(text) > limit:
            text = text[: limit - 1].rstrip() + "…"
        texts.append(text)
    return texts


def write_rationale(spec, dataset, items: Sequence[int], cache: StageCache, *, progress: bool = False) -> dict[str, Any]:
    """The fine-tuned student's rationale for a new user's history (cached per prompt)."""
    from slimkit.cache import hash_key
    from slimkit.components import implementation
    from slimkit.rationale import parse_steps
    from slimkit.registry import registry
    from slimkit.stages.distill import ADAPTER_FOLDER

    keys = stage_keys(spec, cache)
    distill = cache.get("distill", keys["distill"])
    if distill is None:
        raise StageMissingError(
            "A new user's rationale needs the fine-tuned student, but the distill stage has "
            "not run for this spec.",
            hint=f"Run `slimkit run -c {spec.source or '<spec>'}` first.",
        )
    template = registry("prompts").get(spec.prompt.student)
    messages = template.render(_history_texts(spec, dataset, items))
    params = spec.student
    student = implementation("students", params.kind)(**params.model_dump(exclude={"kind"}))
    student.load()
    student.load_adapter(distill / ADAPTER_FOLDER)
    prompt = student.prompt_text(messages)
    store = cache.records("rationales")
    key = hash_key("student-rationale", student.identity(), prompt, student.generation_params())
    found = store.get(key)
    if found is None:
        student.prepare_for_generation()
        texts: dict[int, str] = {}

        def on_done(index: int, text: str, new_tokens: int) -> None:
            texts[index] = text
            store.set(key, {"rationale": text, "new_tokens": int(new_tokens)})

        student.generate(
            [student.prompt_ids(messages)], on_done=on_done, progress=progress,
            description="Student rationale",
        )
        found = {"rationale": texts.get(0, "")}
    text = found["rationale"]
    steps = parse_steps(text)
    return {
        "source": "student",
        "text": text,
        "steps": {str(k): v for k, v in steps.items()} if steps else None,
        "well_formed": steps is not None,
    }


# ---------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------
def _trained_folder(spec, cache: StageCache):
    key = stage_keys(spec, cache)["train"]
    folder = cache.get("train", key)
    if folder is None:
        raise StageMissingError(
            "No trained model for this spec yet"
            + (f" ({spec.source})" if spec.source else "")
            + ".",
            hint=f"Run `slimkit run -c {spec.source or '<spec>'}` first; then recommend again.",
        )
    return key, folder


def load_model(spec, cache: StageCache):
    """The trained Recommender of a spec, in eval mode; a broken entry is dropped."""
    key, folder = _trained_folder(spec, cache)
    from slimkit.stages.train import load_trained

    try:
        loaded = load_trained(spec, cache)
    except SlimkitError:
        raise
    except Exception as exc:  # a file that passed its checksum but does not load
        cache.invalidate("train", key, f"the trained model failed to load: {exc}")
        raise SlimkitError(
            f"The cached trained model in {folder} failed to load ({type(exc).__name__}: "
            f"{exc}); the entry was dropped.",
            hint=f"Run `slimkit run -c {spec.source or '<spec>'}` to train it again.",
        ) from exc
    model = getattr(loaded, "model", loaded)
    model.eval()
    return model


def _with_new_user(model, rationale_vectors, new_vector):
    """The model's per-user rationale table with one more row (the new user's); its index.

    Heads keep rationale vectors as a ``rationale`` buffer (U, E), possibly standardised
    (centred on the users' mean, scaled to unit mean norm) and a ``has_rationale`` mask.
    The new row gets the same transform as the users' rows.
    """
    torch = __import__("torch")
    table = getattr(model, "rationale", None)
    present = getattr(model, "has_rationale", None)
    if table is None or present is None:
        raise SlimkitError(
            f"The fusion head {type(model).__name__} keeps no per-user rationale table, so it "
            "cannot score a new user from a rationale.",
            hint="Use fusion kind slim or text-match for --history.",
        )
    raw = torch.as_tensor(rationale_vectors, dtype=torch.float32)
    new = torch.as_tensor(new_vector, dtype=torch.float32).reshape(1, -1)
    mask = raw.abs().sum(dim=-1) > 0
    rows = raw[mask]
    mean = rows.mean(dim=0, keepdim=True)
    scale = (rows - mean).norm(dim=-1).mean().clamp(min=1e-8)
    candidates = {"standardised": ((new - mean) / scale), "raw": new}
    expected = {"standardised": (raw - mean) / scale, "raw": raw}
    for name, full in expected.items():
        full = torch.where(mask[:, None], full, torch.zeros_like(full))
        if full.shape == table.shape and torch.allclose(full, table.float(), atol=1e-4):
            row = candidates[name].to(table.dtype)
            break
    else:
        raise SlimkitError(
            f"Cannot tell how {type(model).__name__} transforms rationale vectors, so a new "
            "user's rationale cannot be placed beside the known users'."
        )
    model.rationale = torch.cat([table, row.to(table.device)], dim=0)
    model.has_rationale = torch.cat([present, torch.ones(1, dtype=present.dtype, device=present.device)])
    return table.shape[0]


def _scores(model, items: Sequence[int], user: int, max_seq_len: int):
    torch = __import__("slimkit.runtime", fromlist=["setup_torch"]).setup_torch()
    seq = [int(i) for i in items][-max_seq_len:]
    device = next(model.parameters()).device
    item_seq = torch.tensor([seq], dtype=torch.long, device=device)  # (1, L)
    lengths = torch.tensor([len(seq)], dtype=torch.long, device=device)  # (1,)
    users = torch.tensor([user], dtype=torch.long, device=device)  # (1,)
    with torch.no_grad():
        return model.score_all(item_seq, lengths, users)[0].float().cpu()  # (N + 1,)


# ---------------------------------------------------------------------------------------
# recommend
# ---------------------------------------------------------------------------------------
def recommend(
    spec,
    user: str | None = None,
    history: Sequence[str] | None = None,
    k: int = 10,
    include_history: bool = False,
    cache: StageCache | None = None,
) -> dict[str, Any]:
    """Top-``k`` items for a known ``user`` (raw id) or a new user given by ``history``.

    Returns ``{"user", "history", "rationale", "items": [{"item_id", "title", "score",
    "step"}, ...], ...}``; ``step`` is the rationale step that names the item, or None.
    """
    if (user is None) == (history is None):
        raise SlimkitError("Give either a user id (--user) or a new user's history (--history).")
    if k < 1:
        raise SlimkitError(f"--k must be at least 1, got {k}.")
    cache = cache or StageCache()
    _trained_folder(spec, cache)  # fail early, before loading anything heavy
    from slimkit.stages.data import load_prepared

    dataset = load_prepared(spec, cache)
    from slimkit.pipeline import _quiet_libraries

    with _quiet_libraries(True):
        if user is not None:
            index = user_index(dataset, user)
            items = [int(i) for i in dataset.sequence(index)]
            rationale = _rationale_of(spec, cache, index)
            model = load_model(spec, cache)
            model_user = index
        else:
            items = item_indices(dataset, history)
            _, needs_rationales = fusion_needs(spec)
            rationale = write_rationale(spec, dataset, items, cache) if needs_rationales else None
            model = load_model(spec, cache)
            model_user = 0
            if needs_rationales:
                model_user = _new_user_row(spec, cache, model, rationale["text"])

    scores = _scores(model, items, model_user, spec.dataset.max_seq_len)
    scores[0] = float("-inf")
    if not include_history:
        scores[sorted(set(items))] = float("-inf")
    k = min(k, int((scores > float("-inf")).sum()))
    top = scores.topk(k)
    steps = (rationale or {}).get("steps")
    ranked = []
    for rank, (score, item) in enumerate(zip(top.values.tolist(), top.indices.tolist()), 1):
        title = dataset.item_titles[item] or dataset.item_ids[item]
        ranked.append({
            "rank": rank,
            "item_id": dataset.item_ids[item],
            "title": title,
            "score": round(float(score), 6),
            "step": mentioning_step(title, steps),
            "in_history": item in set(items),
        })
    recent = items[-spec.dataset.max_seq_len :]
    return {
        "user": str(user) if user is not None else None,
        "new_user": user is None,
        "history": [
            {"item_id": dataset.item_ids[i], "title": dataset.item_titles[i] or dataset.item_ids[i]}
            for i in recent
        ],
        "history_length": len(items),
        "rationale": rationale,
        "items": ranked,
        "k": k,
        "masked_history": not include_history,
        "model": {"backbone": spec.backbone.kind, "fusion": spec.fusion.kind},
    }


def _new_user_row(spec, cache: StageCache, model, text: str) -> int:
    """Encode a new user's rationale and add it to the model's rationale table."""
    from slimkit.stages.encode import build_encoder, load_vectors, select_rationale_vectors

    vectors = load_vectors(spec, cache, run=False)
    source = getattr(spec.fusion, "rationale_source", "student")
    step = getattr(spec.fusion, "step", None)
    known = select_rationale_vectors(vectors, source, step)
    if step is not None:
        from slimkit.rationale import parse_steps

        steps = parse_steps(text) or {}
        text = steps.get(int(step), "")
    encoder = build_encoder(spec)
    new_vector = encoder.encode([text], cache, progress=False)[0] if text else known[0] * 0
    return _with_new_user(model, known, new_vector)

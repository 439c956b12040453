"""Top-K items for one user, with the student's rationale beside them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slimkit.artifacts.rationales import rationale_view
from slimkit.cache import StageCache
from slimkit.console import quiet_libraries
from slimkit.errors import SlimkitError
from slimkit.factories import fusion_needs
from slimkit.pipeline import Pipeline
from slimkit.recommend.lookup import item_indices, user_index
from slimkit.recommend.new_user import new_user_row, write_rationale
from slimkit.recommend.titles import mentioning_step

RECENT_HISTORY = 10
"""How many of the most recent history items the CLI shows."""


def known_rationales(pipeline: Pipeline) -> dict[int, dict[str, Any]]:
    """Every known user's rationale by user index: the student's, the teacher's where the
    student has none; from cached stage outputs only."""
    views: dict[int, dict[str, Any]] = {}
    if pipeline.cached("teach") is not None:
        for row in pipeline.teacher_rationales():
            views[int(row["user_index"])] = rationale_view(row, "teacher")
    if pipeline.cached("distill") is not None:
        for row in pipeline.student_rationales():
            views[int(row["user_index"])] = rationale_view(row, "student")
    return views


def known_rationale(pipeline: Pipeline, user: int) -> dict[str, Any] | None:
    """The student's rationale for a known user index (the teacher's when the student has
    none), from cached stage outputs only."""
    return known_rationales(pipeline).get(user)


def load_model(pipeline: Pipeline) -> Any:
    """The trained Recommender of the pipeline's spec, in eval mode; an entry whose files
    passed their checksums but do not load is dropped."""
    try:
        return pipeline.trained().model
    except SlimkitError:
        raise
    except Exception as exc:
        spec = pipeline.spec
        folder = pipeline.cache.path("train", pipeline.keys["train"])
        pipeline.cache.invalidate("train", pipeline.keys["train"], f"the trained model failed to load: {exc}")
        raise SlimkitError(
            f"The cached trained model in {folder} failed to load ({type(exc).__name__}: "
            f"{exc}); the entry was dropped.",
            hint=f"Run `slimkit run -c {spec.source or '<spec>'}` to train it again.",
        ) from exc


def _scores(model: Any, items: Sequence[int], user: int, max_seq_len: int):
    from slimkit.runtime import setup_torch

    torch = setup_torch()
    seq = [int(i) for i in items][-max_seq_len:]
    device = next(model.parameters()).device
    item_seq = torch.tensor([seq], dtype=torch.long, device=device)  # (1, L)
    lengths = torch.tensor([len(seq)], dtype=torch.long, device=device)  # (1,)
    users = torch.tensor([user], dtype=torch.long, device=device)  # (1,)
    with torch.no_grad():
        return model.score_all(item_seq, lengths, users)[0].float().cpu()  # (N + 1,)


def recommend(spec: Any, user: str | None = None, history: Sequence[str] | None = None, k: int = 10,
              include_history: bool = False, cache: StageCache | None = None) -> dict[str, Any]:
    """Top-``k`` items for a known ``user`` (raw id) or a new user given by ``history``.

    Returns ``{"user", "history", "rationale", "items": [{"item_id", "title", "score",
    "step"}, ...], ...}``; ``step`` is the rationale step that names the item, or None.
    """
    if (user is None) == (history is None):
        raise SlimkitError("Give either a user id (--user) or a new user's history (--history).")
    if k < 1:
        raise SlimkitError(f"--k must be at least 1, got {k}.")
    pipeline = Pipeline(spec, cache, progress=False)
    pipeline.trained_folder(command="run")  # fail early, before loading anything heavy
    dataset = pipeline.dataset()
    with quiet_libraries(True):
        if user is not None:
            model_user = user_index(dataset, user)
            items = [int(i) for i in dataset.sequence(model_user)]
            rationale = known_rationale(pipeline, model_user)
            model = load_model(pipeline)
        else:
            items = item_indices(dataset, history)
            needs_rationales = fusion_needs(spec.fusion)[1]
            rationale = write_rationale(pipeline, items) if needs_rationales else None
            model = load_model(pipeline)
            model_user = new_user_row(pipeline, model, rationale["text"]) if needs_rationales else 0

    ranked = top_items(model, dataset, items, model_user, k=k, max_seq_len=spec.dataset.max_seq_len,
                       include_history=include_history, rationale=rationale)
    return {
        "user": str(user) if user is not None else None,
        "new_user": user is None,
        "history": history_view(dataset, items, spec.dataset.max_seq_len),
        "history_length": len(items),
        "rationale": rationale,
        "items": ranked,
        "k": len(ranked),
        "masked_history": not include_history,
        "model": {"backbone": spec.backbone.kind, "fusion": spec.fusion.kind},
    }


def top_items(model: Any, dataset: Any, items: Sequence[int], model_user: int, *, k: int,
              max_seq_len: int, include_history: bool = False,
              rationale: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The top-``k`` items for one row of ``model`` (user index ``model_user``, history
    ``items``): ``[{"rank", "item_id", "title", "score", "step", "in_history"}, ...]``;
    ``step`` is the rationale step that names the item, or None."""
    scores = _scores(model, items, model_user, max_seq_len)
    scores[0] = float("-inf")
    if not include_history:
        scores[sorted(set(items))] = float("-inf")
    k = min(k, int((scores > float("-inf")).sum()))
    top = scores.topk(k)
    steps = (rationale or {}).get("steps")
    named = (rationale or {}).get("named_items") or ()
    seen = set(items)
    ranked = []
    for rank, (score, item) in enumerate(zip(top.values.tolist(), top.indices.tolist()), 1):
        title = dataset.item_titles[item] or dataset.item_ids[item]
        step = mentioning_step(title, steps, item=dataset.item_ids[item], named_items=named)
        ranked.append({"rank": rank, "item_id": dataset.item_ids[item], "title": title,
                       "score": round(float(score), 6), "step": step, "in_history": item in seen})
    return ranked


def history_view(dataset: Any, items: Sequence[int], max_seq_len: int) -> list[dict[str, str]]:
    """The last ``max_seq_len`` history items (what the model reads) as ids and titles."""
    return [{"item_id": dataset.item_ids[i], "title": dataset.item_titles[i] or dataset.item_ids[i]}
            for i in items[-max_seq_len:]]

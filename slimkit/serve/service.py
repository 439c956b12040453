"""The trained pipeline of a spec, loaded once, answering recommendation requests.

Everything a request needs is loaded at start (dataset, trained model, every known
user's rationale), except the student and the encoder, which load on the first new
history. A new history's rationale is cached twice: in the ``rationales`` record store
(per prompt, shared with the distill stage and `slimkit recommend --history`, so it
survives restarts) and in memory with the model row it got (per history), so a repeated
history costs one forward pass.

Thread safety: requests are answered from several threads. Reads (scoring) take no lock;
writing a rationale (the student) and adding a user row (``Recommender.add_user``
replaces the head's user table) are serialised, and a row is published to readers only
after it is added, so a reader only ever indexes rows that exist.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from slimkit._version import __version__
from slimkit.artifacts.trained import read_metrics
from slimkit.cache import StageCache
from slimkit.console import quiet_libraries
from slimkit.errors import SlimkitError
from slimkit.factories import fusion_needs
from slimkit.pipeline import Pipeline
from slimkit.recommend.core import history_view, known_rationales, load_model, top_items
from slimkit.recommend.lookup import close_ids
from slimkit.recommend.new_user import RationaleWriter, new_user_vector, rationale_encoder

MAX_K = 1000
"""The largest ``k`` a request may ask for."""


class UnknownUserError(SlimkitError):
    """A user id the prepared dataset does not have; ``suggestions`` holds close ids."""

    def __init__(self, user: str, suggestions: list[str], num_users: int):
        super().__init__(
            f"Unknown user '{user}': the prepared dataset has no such user id ({num_users} users).",
            hint="POST the user's items to /recommendations to recommend for a new user.",
        )
        self.user = user
        self.suggestions = suggestions


class UnknownItemsError(SlimkitError):
    """Items of a history that are neither item ids nor titles of the dataset;
    ``unknown`` maps each one to close matches (``[{"item_id", "title"}, ...]``)."""

    def __init__(self, unknown: dict[str, list[dict[str, str]]]):
        problems = [
            f"'{raw}' is neither an item id nor a title"
            + (f" (close: {', '.join(repr(m['title']) + ' = ' + m['item_id'] for m in close)})"
               if close else "")
            for raw, close in unknown.items()
        ]
        super().__init__(f"{len(unknown)} unknown item(s) in the history.", problems=problems,
                         hint="Give item ids as in the dataset's files, or exact titles.")
        self.unknown = unknown


def named_item_ids(rationale: dict[str, Any] | None, items: Sequence[dict[str, Any]]) -> list[str]:
    """Ids of the recommended ``items`` the rationale names (in rank order).

    An item is named when it is among the rationale's resolved step-3 items
    (``named_items``: raw ids, where the rationale carries them) or when a rationale step
    mentions its title (``recommend.titles.mentioning_step``, already in each item's
    ``step``). The one place that decides it for the service.
    """
    if not rationale:
        return []
    resolved = {str(i) for i in rationale.get("named_items") or ()}
    return [item["item_id"] for item in items
            if item.get("step") or str(item["item_id"]) in resolved]


def close_items(dataset: Any, raw: str, n: int = 5) -> list[dict[str, str]]:
    """Items whose title or id looks like ``raw`` (rapidfuzz WRatio), best first."""
    from rapidfuzz import fuzz, process, utils

    titles = {index: title for index, title in enumerate(dataset.item_titles) if index and title}
    found: dict[int, float] = {}
    for _, score, index in process.extract(raw, titles, scorer=fuzz.WRatio, limit=n,
                                           processor=utils.default_process, score_cutoff=60):
        found[index] = max(found.get(index, 0.0), score)
    ids = dataset.item_ids
    for candidate in close_ids(raw, ids[1:], n=n):
        index = ids.index(candidate)
        found.setdefault(index, 50.0)
    best = sorted(found, key=lambda i: -found[i])[:n]
    return [{"item_id": ids[i], "title": dataset.item_titles[i] or ids[i]} for i in best]


class RecommendationService:
    """A spec's trained pipeline, loaded once: top-K for known users and new histories."""

    def __init__(self, spec: Any, cache: StageCache | None = None):
        started = time.perf_counter()
        self.spec = spec
        self.pipeline = Pipeline(spec, cache, progress=False)
        self.trained_path = self.pipeline.trained_folder(command="run")  # fails before loading
        self.dataset = self.pipeline.dataset()
        self.needs_rationales = fusion_needs(spec.fusion)[1]
        self.max_seq_len = spec.dataset.max_seq_len
        with quiet_libraries(True):
            self.model = load_model(self.pipeline)
        self.metrics = read_metrics(self.trained_path)
        self.rationales = known_rationales(self.pipeline)
        self._by_title: dict[str, int] = {}
        for index, title in enumerate(self.dataset.item_titles):
            if index and title:
                self._by_title.setdefault(title.strip().lower(), index)
        self._writer: RationaleWriter | None = None
        self._encode = None
        self._student_lock = threading.Lock()  # the student and the encoder, one at a time
        self._rows_lock = threading.Lock()  # the head's user table
        self._new_rows: dict[tuple[int, ...], tuple[int, dict[str, Any] | None]] = {}
        self.load_seconds = time.perf_counter() - started
        self.stats = {"known_user_requests": 0, "history_requests": 0, "rationales_written": 0}

    # -- lookups -----------------------------------------------------------------------------
    def user_index(self, user: str) -> int:
        """Index of raw user id ``user``; UnknownUserError with close ids otherwise."""
        try:
            return self.dataset.user_index(str(user))
        except KeyError:
            raise UnknownUserError(str(user), close_ids(str(user), self.dataset.user_ids),
                                   self.dataset.num_users) from None

    def item_indices(self, items: Sequence[str]) -> list[int]:
        """Item indices of raw ids or titles (case-insensitive); UnknownItemsError with
        close matches for every one that is neither."""
        out: list[int] = []
        unknown: dict[str, list[dict[str, str]]] = {}
        for raw in items:
            raw = str(raw).strip()
            try:
                out.append(self.dataset.item_index(raw))
                continue
            except KeyError:
                pass
            if raw.lower() in self._by_title:
                out.append(self._by_title[raw.lower()])
            else:
                unknown[raw] = close_items(self.dataset, raw)
        if unknown:
            raise UnknownItemsError(unknown)
        return out

    # -- answers -------------------------------------------------------------------------------
    def for_user(self, user: str, *, k: int = 10, include_history: bool = False) -> dict[str, Any]:
        """Top-``k`` for known user ``user`` (raw id), with their stored rationale."""
        index = self.user_index(user)
        items = [int(i) for i in self.dataset.sequence(index)]
        rationale = self.rationales.get(index)
        self.stats["known_user_requests"] += 1
        return self._answer(items, index, rationale, k=k, include_history=include_history,
                            user=str(user), rationale_cached=True)

    def for_history(self, history: Sequence[str], *, k: int = 10,
                    include_history: bool = False) -> dict[str, Any]:
        """Top-``k`` for a new user given by ``history`` (item ids or titles, oldest first);
        the student writes their rationale (cached by history)."""
        if not history:
            raise SlimkitError("The history is empty: give at least one item id or title.")
        items = self.item_indices(history)
        row, rationale, cached = self._new_user(items)
        self.stats["history_requests"] += 1
        return self._answer(items, row, rationale, k=k, include_history=include_history,
                            user=None, rationale_cached=cached)

    def _new_user(self, items: list[int]) -> tuple[int, dict[str, Any] | None, bool]:
        """(model row, rationale, whether it was cached) for a new history."""
        if not self.needs_rationales:
            return 0, None, True  # the head reads no user features: any row scores alike
        key = tuple(items)
        found = self._new_rows.get(key)
        if found is not None:
            return found[0], found[1], True
        with self._student_lock:
            found = self._new_rows.get(key)  # written while this request waited
            if found is not None:
                return found[0], found[1], True
            with quiet_libraries(True):
                if self._writer is None:
                    self._writer = RationaleWriter(self.pipeline)
                    self._encode = rationale_encoder(self.pipeline)
                cached = self._writer.is_stored(items)
                rationale = self._writer(items)
                vector = new_user_vector(self.pipeline, rationale["text"], self._encode)
            if not cached:
                self.stats["rationales_written"] += 1
            with self._rows_lock:
                row = self.model.add_user(vector)
            self._new_rows[key] = (row, rationale)
        return row, rationale, cached

    def _answer(self, items: list[int], row: int, rationale: dict[str, Any] | None, *, k: int,
                include_history: bool, user: str | None, rationale_cached: bool) -> dict[str, Any]:
        if not 1 <= k <= MAX_K:
            raise SlimkitError(f"k must be between 1 and {MAX_K}, got {k}.")
        ranked = top_items(self.model, self.dataset, items, row, k=k, max_seq_len=self.max_seq_len,
                           include_history=include_history, rationale=rationale)
        return {
            "user": user,
            "new_user": user is None,
            "history": history_view(self.dataset, items, self.max_seq_len),
            "history_length": len(items),
            "rationale": rationale,
            "rationale_cached": rationale_cached if rationale is not None else None,
            "items": ranked,
            "named_item_ids": named_item_ids(rationale, ranked),
            "k": len(ranked),
            "masked_history": not include_history,
        }

    def metadata(self) -> dict[str, Any]:
        """What is served: spec, model, dataset sizes, test metrics, versions."""
        spec = self.spec
        return {
            "slimkit_version": __version__,
            "spec": str(spec.source) if spec.source else None,
            "dataset": {"name": self.dataset.name, "users": self.dataset.num_users,
                        "items": self.dataset.num_items, "max_seq_len": self.max_seq_len},
            "model": {"backbone": spec.backbone.kind, "fusion": spec.fusion.kind,
                      "backbone_params": spec.backbone.model_dump(mode="json"),
                      "fusion_params": spec.fusion.model_dump(mode="json"),
                      "uses_rationales": self.needs_rationales,
                      "train_key": self.pipeline.keys["train"], "path": str(self.trained_path)},
            "metrics": {"valid": self.metrics.get("valid"), "test": self.metrics.get("test")},
            "known_rationales": len(self.rationales),
            "new_users": len(self._new_rows),
            "load_seconds": round(self.load_seconds, 3),
            "requests": dict(self.stats),
        }

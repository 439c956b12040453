"""The pipeline: the one place that decides which stage runs, and feeds each stage its
upstream outputs.

:class:`Pipeline` runs a stage only when the cache has no usable output for its key,
reads every stage output through its format's owner (:mod:`slimkit.artifacts`), and
hands stages plain inputs: a stage never runs or reads another stage.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimkit.artifacts.files import read_summary, write_summary
from slimkit.artifacts.rationales import CUT_RATIONALES_FILE, read_rationales
from slimkit.artifacts.trained import load_weights, read_metrics, read_model_info
from slimkit.artifacts.vectors import read_vectors
from slimkit.cache import StageCache
from slimkit.errors import IncompleteStageError, StageMissingError
from slimkit.factories import encoder_identity
from slimkit.pipeline.keys import (
    stage_keys,
    stage_spec,
    stage_versions,
    upstream_closure,
    uses_text,
)
from slimkit.spec import PipelineSpec
from slimkit.stages import data, distill, encode, teach, train


@dataclass
class StageResult:
    """What one stage produced: where, whether it came from the cache, a summary."""

    stage: str
    key: str
    path: Path
    cached: bool
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainedModel:
    """A trained recommender rebuilt from the cache, ready to score (eval mode, CPU)."""

    model: Any  # Recommender
    dataset: Any  # PreparedDataset
    metrics: dict[str, Any]
    info: dict[str, Any]
    path: Path

    def recommend(self, user: int, k: int = 10, *, mask_history: bool = True) -> list[tuple[int, float]]:
        """Top-``k`` ``(item index, score)`` for user index ``user`` from their whole
        sequence (the last ``max_seq_len`` items), history items excluded by default."""
        from slimkit.runtime import setup_torch

        torch = setup_torch()
        seq = self.dataset.sequence(user)
        window = torch.as_tensor(seq[-self.info["max_seq_len"] :], dtype=torch.long)  # (L,)
        with torch.no_grad():
            scores = self.model.score_all(window.unsqueeze(0), torch.tensor([len(window)]),
                                          torch.tensor([user]))[0].float()  # (N + 1,)
        scores[0] = -torch.inf
        if mask_history:
            scores[torch.as_tensor(seq, dtype=torch.long)] = -torch.inf
        top = scores.topk(min(k, self.dataset.num_items))
        return [(int(i), float(s)) for i, s in zip(top.indices, top.values) if s > -torch.inf]


class Pipeline:
    """A spec's stages over one cache: each stage runs at most once, and only when the
    cache holds no usable output for its key; upstream stages run first, as needed.

    A teach output with failed users is used downstream only with ``allow_partial``
    (else :class:`IncompleteStageError`, exit code 1); the stages built on it then get
    keys of their own and ``built_on_incomplete`` in their summary, so once the missing
    users are answered they are computed again rather than reused.
    """

    def __init__(self, spec: PipelineSpec, cache: StageCache | None = None, *, progress: bool = True,
                 allow_partial: bool = False):
        self.spec = spec
        self.cache = cache or StageCache()
        self.progress = progress
        self.allow_partial = allow_partial
        self.incomplete: dict[str, str] = {}  # stage -> "20/30:<users>" of outputs with failures
        self.keys = stage_keys(spec, self.cache)
        self._results: dict[str, StageResult] = {}
        self._loaded: dict[str, Any] = {}

    # -- which output can be used ----------------------------------------------------------
    def cached(self, stage: str) -> Path | None:
        """The folder of a usable output of ``stage`` in the cache, or None (nothing is run).

        An entry is dropped when its summary cannot be read or, for the data stage, when an
        input file changed since; a teach output with failed users is kept (its answers are
        cached per request) but not used, so the stage runs again for those users. An entry
        found usable is remembered, so its checksums are verified once per pipeline.
        """
        if stage not in self._results:
            found = self._usable(stage)
            if found is None:
                return None
            self._results[stage] = found
        return self._results[stage].path

    def _usable(self, stage: str) -> StageResult | None:
        key = self.keys[stage]
        folder = self.cache.get(stage, key)
        if folder is None:
            return None
        if stage == "data":
            changed = data.changed_inputs(folder, self.spec.dataset)
            if changed:
                self.cache.invalidate(stage, key, f"input file(s) changed since: {', '.join(changed)}")
                return None
        try:
            summary = read_summary(folder)
        except (OSError, ValueError) as exc:
            self.cache.invalidate(stage, key, f"summary.json unreadable: {exc}")
            return None
        if stage == "teach" and not teach.reusable(summary):
            return None
        return StageResult(stage, key, folder, cached=True, summary=summary)

    def run(self, stage: str) -> StageResult:
        """The output of ``stage``: from the cache, or computed now (upstream first)."""
        if self.cached(stage) is not None:
            return self._results[stage]
        compute = self._compute(stage)  # loads upstream outputs (running them if needed)
        if self.cached(stage) is not None:  # its key changed: built on an incomplete upstream
            return self._results[stage]
        key = self.keys[stage]
        built_on = {u: self.incomplete[u].split(":")[0] for u in upstream_closure(self.spec, stage)
                    if u in self.incomplete}
        started = time.perf_counter()
        with self.cache.write(stage, key, stage_spec(self.spec, stage),
                              stage_versions(self.spec, stage)) as out:
            summary = compute(out)
            if built_on:
                summary = {**summary, "built_on_incomplete": built_on}
                write_summary(out, summary)
        result = StageResult(stage, key, self.cache.path(stage, key), cached=False,
                             seconds=time.perf_counter() - started, summary=summary)
        self._results[stage] = result
        return result

    def _check_complete(self, stage: str, rows: list[dict[str, Any]]) -> None:
        """Stop (IncompleteStageError) or, with ``allow_partial``, continue on an upstream
        output with failed items; continuing gives every later stage its own key."""
        summary = self._results[stage].summary
        mark = teach.incomplete_mark(summary, rows) if stage == "teach" else None
        if mark is None or self.incomplete.get(stage) == mark:
            return
        if not self.allow_partial:
            failed, users = summary.get("failed", 0), summary.get("users", 0)
            kinds = ", ".join(f"{k}: {n}" for k, n in (summary.get("failures") or {}).items())
            raise IncompleteStageError(
                f"teach: {failed} of {users} users failed" + (f" ({kinds})" if kinds else "")
                + f"; only {users - failed} have a rationale, so the later stages did not run.",
                hint="Run the same command again to retry the failed users (answered users "
                "are not asked again), or pass --allow-partial to continue with the "
                f"{users - failed} answered users (what is built on them is marked incomplete "
                "and rebuilt once every user is answered).",
            )
        self.incomplete[stage] = mark
        self.keys = stage_keys(self.spec, self.cache, self.incomplete)
        for later in [s for s in self._results if stage in upstream_closure(self.spec, s)]:
            self._results.pop(later, None)
            self._loaded.pop(later, None)

    def _compute(self, stage: str) -> Callable[[Path], dict[str, Any]]:
        """A function of the output folder that computes ``stage`` from its upstream outputs."""
        spec, progress, records = self.spec, self.progress, self.cache.records
        if stage == "data":
            return lambda out: data.prepare_data(spec.dataset, out, progress=progress)
        dataset = self.dataset()
        if stage == "train":
            vectors = self.vectors() if uses_text(spec) else None
            return lambda out: train.train(spec, dataset, vectors, out, progress=progress)
        if stage == "teach":
            from slimkit.pipeline.lengths import check_before_teach

            check_before_teach(spec, dataset)  # a student that cannot fit: before any teacher call
            return lambda out: teach.teach(spec, dataset, out, records=records, progress=progress)
        teacher_rows = self.teacher_rationales()
        separate = spec.prompt.rationale_cut == "separate"
        cut_teacher = self.cut_rationales("teach") if separate else None
        if stage == "distill":
            return lambda out: distill.distill(spec, dataset, teacher_rows, out, records=records,
                                               progress=progress, cut_teacher_records=cut_teacher)
        if stage == "encode":
            student_rows = self.student_rationales()
            cut_student = self.cut_rationales("distill") if separate else None
            return lambda out: encode.encode(spec, dataset, teacher_rows, student_rows, out,
                                             records=records, progress=progress,
                                             cut_teacher_records=cut_teacher,
                                             cut_student_records=cut_student)
        raise ValueError(f"no stage named {stage!r}")

    # -- stage outputs -----------------------------------------------------------------------
    def _read(self, stage: str, reader: Callable[[Path], Any]) -> Any:
        """``reader`` over the stage's folder; an unreadable output is dropped and made again."""
        if stage not in self._loaded:
            result = self.run(stage)
            try:
                self._loaded[stage] = reader(result.path)
            except (OSError, ValueError, KeyError) as exc:
                self.cache.invalidate(stage, result.key, f"the output failed to load: {exc}")
                self._results.pop(stage, None)
                self._loaded[stage] = reader(self.run(stage).path)
        return self._loaded[stage]

    def dataset(self) -> Any:
        """The prepared dataset (:class:`slimkit.data.dataset.PreparedDataset`)."""
        from slimkit.data.dataset import PreparedDataset

        return self._read("data", PreparedDataset.load)

    def teacher_rationales(self) -> list[dict[str, Any]]:
        """The teach stage's answered rows (a cached output with failed users is used only
        after the stage ran again for them, and with failures left only when partial
        results are allowed)."""
        rows = self._read("teach", lambda folder: read_rationales(folder, done_only=True))
        if self._results["teach"].summary.get("failed"):
            self._check_complete("teach", rows)
        return rows

    def student_rationales(self) -> list[dict[str, Any]]:
        """Every user's student rationale row."""
        return self._read("distill", read_rationales)

    def cut_rationales(self, stage: str) -> list[dict[str, Any]]:
        """``prompt.rationale_cut: separate``: the answered rows of ``stage``'s (teach or
        distill) rationales from the cut, read by training targets after each user's cut."""
        name = f"{stage}:cut"
        if name not in self._loaded:
            if stage == "teach":
                self.teacher_rationales()  # the same completeness rules as the main rows
            folder = self.run(stage).path
            self._loaded[name] = read_rationales(folder, done_only=True, name=CUT_RATIONALES_FILE)
        return self._loaded[name]

    def vectors(self, *, run: bool = True) -> dict[str, Any]:
        """The encode stage's arrays by name; ``run=False``: StageMissingError when not cached."""
        if not run and "encode" not in self._loaded and self.cached("encode") is None:
            raise StageMissingError("The encode stage has not run for this spec.",
                                    hint="Run `slimkit run -c <spec>` (it encodes item texts and rationales).")
        identity = encoder_identity(self.spec.encoder)
        return self._read("encode", lambda folder: read_vectors(folder, identity))

    def trained_folder(self, command: str = "train") -> Path:
        """The train stage's cached folder; StageMissingError saying to run ``slimkit
        COMMAND`` first when the spec has no trained model yet (nothing heavy is loaded)."""
        folder = self.cached("train")
        if folder is None:
            source = self.spec.source
            raise StageMissingError(
                "No trained model for this spec yet" + (f" ({source})" if source else "") + ".",
                hint=f"Run `slimkit {command} -c {source or '<spec>'}` first.",
            )
        return folder

    def trained(self) -> TrainedModel:
        """The spec's trained model from the cache (StageMissingError when not trained yet)."""
        folder = self.trained_folder()
        info, metrics = read_model_info(folder), read_metrics(folder)
        side = train.side_info(self.spec, self.vectors(run=False) if uses_text(self.spec) else None)
        model = train.recommender_for(self.spec, num_users=info["num_users"], num_items=info["num_items"],
                                      max_seq_len=info["max_seq_len"], side=side)
        return TrainedModel(model=load_weights(model, folder), dataset=self.dataset(),
                            metrics=metrics, info=info, path=folder)

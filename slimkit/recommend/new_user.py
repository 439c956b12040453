"""A new user, given only a history: the student writes their rationale, the encoder turns
it into a vector, and the trained head takes it as one more user row."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from slimkit.artifacts.files import read_summary
from slimkit.artifacts.rationales import rationale_view
from slimkit.artifacts.vectors import select_rationale_vectors
from slimkit.encoders.cached import RECORD_NAMESPACE
from slimkit.errors import StageMissingError
from slimkit.factories import build_student, cached_text_encoder, prompt_template
from slimkit.prompts.history import item_texts, render_with_facts
from slimkit.rationale import parse_steps
from slimkit.stages.distill import (
    ADAPTER_FOLDER,
    RATIONALE_STORE,
    RationaleGenerator,
    student_lengths_as_run,
)


class RationaleWriter:
    """The fine-tuned student of a pipeline's spec, loaded once, writing the rationale of
    new histories (cached per prompt, in the same store as the distill stage's)."""

    def __init__(self, pipeline: Any):
        spec = pipeline.spec
        distill = pipeline.cached("distill")
        if distill is None:
            raise StageMissingError(
                "A new user's rationale needs the fine-tuned student, but the distill stage has "
                "not run for this spec.",
                hint=f"Run `slimkit run -c {spec.source or '<spec>'}` first.",
            )
        template = prompt_template(spec.prompt.student)
        dataset = pipeline.dataset()

        def prompt_of(history: tuple[int, ...]) -> list[dict[str, str]]:
            return render_with_facts(template, item_texts(dataset, history, spec.prompt.max_items,
                                                          spec.prompt.max_item_chars), dataset, history)

        # the lengths its distill run resolved from ``auto``, so the rationale matches it
        student = build_student(student_lengths_as_run(spec.student, read_summary(distill)))
        student.load()
        student.load_adapter(distill / ADAPTER_FOLDER)
        student.prepare_for_generation()
        self.generator = RationaleGenerator(student, pipeline.cache.records(RATIONALE_STORE),
                                            prompt_of, titles=dataset.item_titles, history_of=set)

    def is_stored(self, items: Sequence[int]) -> bool:
        """Whether the rationale of this history is in the store already (no generation)."""
        history = tuple(int(i) for i in items)
        return self.generator.store.get(self.generator.record_key(history)) is not None

    def __call__(self, items: Sequence[int], *, progress: bool = False) -> dict[str, Any]:
        history = tuple(int(i) for i in items)
        row = self.generator([history], progress=progress, description="Student rationale")[history]
        return rationale_view(row, "student")


def write_rationale(pipeline: Any, items: Sequence[int], *, progress: bool = False) -> dict[str, Any]:
    """The fine-tuned student's rationale for a history of item indices (cached per prompt,
    in the same store as the distill stage's)."""
    return RationaleWriter(pipeline)(items, progress=progress)


def rationale_encoder(pipeline: Any) -> Callable[[list[str]], Any]:
    """``encode(texts) -> (T, E)`` with the spec's encoder and the pipeline's vector store."""
    return cached_text_encoder(pipeline.spec.encoder, pipeline.cache.records(RECORD_NAMESPACE))


def new_user_vector(pipeline: Any, text: str, encode: Callable[[list[str]], Any] | None = None) -> Any:
    """The raw rationale vector (E,) a new user with rationale ``text`` gets: the step the
    head reads, when it reads one, encoded; zeros when there is no text."""
    spec = pipeline.spec
    step = getattr(spec.fusion, "step", None)
    known = select_rationale_vectors(pipeline.vectors(run=False),
                                     getattr(spec.fusion, "rationale_source", "student"), step)  # (U, E)
    if step is not None:
        text = (parse_steps(text) or {}).get(int(step), "")
    if not text:
        return known[0] * 0  # (E,) zeros: no rationale
    encode = encode or rationale_encoder(pipeline)
    return encode([text])[0]  # (E,)


def new_user_row(pipeline: Any, model: Any, text: str,
                 encode: Callable[[list[str]], Any] | None = None) -> int:
    """Encode a new user's rationale ``text`` (the step the head reads, when it reads one)
    and add it to ``model`` as a user row; returns the row's index."""
    return model.add_user(new_user_vector(pipeline, text, encode))

"""The Student Protocol: what the distill stage calls on a student.

A student is built from its spec parameters (plain keyword arguments, the fields of its
``Params``). The stage then, in this order: checks a given adapter folder, loads the
model, builds prompts and training examples, trains (or loads) an adapter and saves it,
prepares for generation and generates a rationale per user, keying every cached
rationale by :meth:`Student.identity`, :meth:`Student.prompt_text` and
:meth:`Student.generation_params`. A student may also have ``fit_lengths(prompts,
rationales, *, fetch=True, user_name=str) -> dict``: the stage calls it before loading
the model, with every training user's prompt messages and the teacher's rationales, so the
student can size (and check) its lengths from them (``hf-lora``'s ``auto`` lengths).
:func:`slimkit.plugins.check_student` exercises one;
``slimkit.students.hf_lora.HFLoraStudent`` is the built-in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

Messages = Sequence[Mapping[str, str]]
"""Chat messages: ``[{"role": ..., "content": ...}, ...]``."""

OnDone = Callable[[int, str, int], None]
"""``on_done(index, text, new_tokens)``: one finished prompt (its index in the prompts)."""


@runtime_checkable
class Student(Protocol):
    """A small language model that learns to write the teacher's rationales."""

    @property
    def base_after_adapter(self) -> bool:
        """Whether ``generate(..., adapter=False)`` still works once an adapter is on (else
        the stage generates the base model's rationales before training)."""
        ...

    def load(self) -> Student:
        """Load the base model (once); returns the student."""
        ...

    @staticmethod
    def check_adapter_folder(folder: str | Path, field: str = "student.adapter") -> Path:
        """The folder as a Path when it holds an adapter this student can load, else a
        :class:`~slimkit.errors.SlimkitError` naming ``field`` (called before loading)."""
        ...

    def load_adapter(self, folder: str | Path) -> str:
        """Put a saved adapter on the base model; returns its digest."""
        ...

    def prompt_text(self, messages: Messages) -> str:
        """The prompt as the model reads it (part of every cached rationale's key)."""
        ...

    def prompt_ids(self, messages: Messages) -> list[int]:
        """Token ids of the prompt, the same for training and generation."""
        ...

    def build_example(self, user_index: int, prompt: list[int], rationale: str) -> Any:
        """One training example (opaque to the stage) from prompt ids and the teacher's rationale."""
        ...

    def train(self, train: Sequence[Any], valid: Sequence[Any] = (), *,
              progress: bool = True) -> dict[str, Any]:
        """Train a fresh adapter on the examples; returns JSON-able numbers (losses, steps,
        seconds) written to ``training.json``."""
        ...

    def save_adapter(self, folder: str | Path, spec: Mapping[str, Any] | None = None) -> str:
        """Write the trained adapter (and ``spec``, the resolved stage spec) to ``folder``;
        returns its digest."""
        ...

    def prepare_for_generation(self) -> None:
        """Called once after the adapter is on and saved, before the rationales (e.g. merge it)."""
        ...

    def generate(self, prompts: Sequence[Sequence[int]], *, on_done: OnDone | None = None,
                 progress: bool = True, description: str = "Generating",
                 adapter: bool = True) -> dict[str, Any]:
        """Write a rationale per token-id prompt, calling ``on_done`` as each one finishes
        (so the stage caches it at once and a killed run resumes); ``adapter=False`` asks
        for the base model. Returns at least ``prompts``, ``new_tokens``, ``seconds``.
        A student with a true ``constrain_items`` attribute also receives
        ``item_constraint=`` (:class:`slimkit.llm.constraints.ItemConstraint`: catalogue
        titles and one banned item set per prompt); others are never passed it."""
        ...

    def identity(self, adapter: bool = True) -> dict[str, Any]:
        """What a rationale depends on besides the prompt (base model, adapter digest)."""
        ...

    def generation_params(self) -> dict[str, Any]:
        """Generation settings a rationale depends on (part of its cache key)."""
        ...

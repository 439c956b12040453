"""``check_student``: a student class against slimkit's student contract, on a tiny example.

The contract is :class:`slimkit.students.protocol.Student` (re-exported as
``slimkit.plugins.Student``): the methods the distill stage calls, in the order it calls
them. The check runs them the same way on a handful of prompts built from a tiny
dataset, with the student's own (small) parameters, and says what broke.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slimkit.checks._common import fail, name_of, tiny_dataset

__all__ = ["check_student"]

RATIONALE = (
    "Step 1: The user likes Category 1 items from Nintendo.\n"
    "Step 2: Recommended categories or brands: Category 1, Nintendo.\n"
    "Step 3: Recommended items: Item 4, Item 7."
)


def _json_dict(component: str, method: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(component, f"{method} must return a dict, got {type(value).__name__}")
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise fail(component, f"{method} must return JSON-able values ({exc})",
                   "it is written to a JSON file or hashed into a cache key") from exc
    return value


def _generate(student: Any, component: str, prompts: list[list[int]], adapter: bool) -> dict[int, str]:
    """Texts by prompt index; checks on_done once per prompt and the returned numbers."""
    texts: dict[int, str] = {}

    def on_done(index: int, text: str, new_tokens: int) -> None:
        if index in texts or not 0 <= index < len(prompts):
            raise fail(component, f"generate called on_done twice or with index {index}")
        if not isinstance(text, str) or not isinstance(new_tokens, int) or new_tokens < 0:
            raise fail(component, f"on_done(index, text, new_tokens) got ({index!r}, {text!r}, "
                       f"{new_tokens!r})")
        texts[index] = text

    stats = student.generate(prompts, on_done=on_done, progress=False,
                             description="check", adapter=adapter)
    if sorted(texts) != list(range(len(prompts))):
        raise fail(component, f"generate reported {len(texts)} of {len(prompts)} prompts",
                   "call on_done(index, text, new_tokens) once per prompt, as it finishes")
    stats = _json_dict(component, "generate", stats)
    for key in ("prompts", "new_tokens", "seconds"):
        if key not in stats:
            raise fail(component, f"generate's result lacks {key!r} (it has {sorted(stats)})")
    return texts


def check_student(
    cls: Callable[..., Any],
    *,
    users: int = 4,
    **params: Any,
) -> dict[str, Any]:
    """Check a student class on a tiny example, the way the distill stage uses it.

    ``cls(**params)`` must build a student (pass small settings: a tiny model, few new
    tokens, one epoch). In the stage's order: ``check_adapter_folder`` rejects a missing
    folder, ``load``, ``prompt_text`` / ``prompt_ids`` (stable), base rationales, then
    ``build_example`` and ``train``, ``save_adapter`` (a digest that
    ``check_adapter_folder`` and a second student's ``load_adapter`` agree on),
    ``prepare_for_generation`` and rationales with the adapter; ``identity`` and
    ``generation_params`` must be JSON-able and ``identity`` must change with the adapter.
    Returns a small report.
    """
    from slimkit.errors import SlimkitError
    from slimkit.prompts import slim_student
    from slimkit.students.protocol import Student

    component = f"student {name_of(cls)}"
    student = cls(**params)
    missing = [name for name in dir(Student) if not name.startswith("_") and not hasattr(student, name)]
    if missing:
        raise fail(component, f"lacks {', '.join(missing)}",
                   "implement every method of slimkit.plugins.Student")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            student.check_adapter_folder(Path(tmp) / "missing")
        except SlimkitError:
            pass
        else:
            raise fail(component, "check_adapter_folder accepted a folder that does not exist",
                       "raise slimkit.errors.SlimkitError naming the field")
    if student.load() is not student:
        raise fail(component, "load() must return the student itself")

    dataset = tiny_dataset(num_users=users)
    messages = [slim_student.render([dataset.item_text[i] for i in dataset.train_items(u)])
                for u in range(users)]
    text = student.prompt_text(messages[0])
    if not isinstance(text, str) or not text:
        raise fail(component, f"prompt_text returned {text!r}")
    prompts = [student.prompt_ids(m) for m in messages]
    if prompts[0] != student.prompt_ids(messages[0]) or not all(
            isinstance(p, list) and p and all(isinstance(t, int) for t in p) for p in prompts):
        raise fail(component, "prompt_ids must return the same non-empty list of ints each time")

    if hasattr(student, "fit_lengths"):  # the stage fits lengths before it generates or trains
        student.fit_lengths(dict(enumerate(messages)), [RATIONALE] * users)
    base_identity = _json_dict(component, "identity(adapter=False)", student.identity(False))
    _json_dict(component, "generation_params", student.generation_params())
    base = _generate(student, component, prompts, adapter=False)

    examples = [student.build_example(u, prompts[u], RATIONALE) for u in range(users)]
    training = _json_dict(component, "train", student.train(examples[1:], examples[:1], progress=False))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "adapter"
        digest = student.save_adapter(folder, {"student": {"check": True}})
        if not isinstance(digest, str) or not digest:
            raise fail(component, f"save_adapter must return the adapter's digest, got {digest!r}")
        student.check_adapter_folder(folder)  # what it wrote must pass its own check
        tuned_identity = _json_dict(component, "identity()", student.identity())
        if tuned_identity == base_identity:
            raise fail(component, "identity() is the same with and without the adapter",
                       "put the adapter's digest in it: cached rationales depend on it")
        student.prepare_for_generation()
        tuned = _generate(student, component, prompts, adapter=True)
        reloaded = cls(**params).load()
        if reloaded.load_adapter(folder) != digest:
            raise fail(component, "load_adapter returned another digest than save_adapter")
        if reloaded.identity() != tuned_identity:
            raise fail(component, "identity() differs between the trained and the reloaded adapter")
    return {"component": component, "prompts": len(prompts), "base": base, "tuned": tuned,
            "training": training}

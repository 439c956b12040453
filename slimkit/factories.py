"""Components built from spec sections: the one place a stage turns its spec into objects.

Library code receives plain arguments (STYLE.md 7): each factory unpacks a validated Params
section into keyword arguments of the registered implementation.
"""

from __future__ import annotations

import inspect
from typing import Any

from slimkit.components import Params, implementation
from slimkit.registry import registry


def _kwargs(params: Params) -> dict[str, Any]:
    return params.model_dump(exclude={"kind"})


def fusion_needs(fusion: Params) -> tuple[bool, bool]:
    """(needs item text vectors, needs rationale vectors) of a fusion section."""
    model = type(fusion)
    return bool(getattr(model, "needs_item_text", False)), bool(getattr(model, "needs_rationales", False))


def prompt_template(name: str) -> Any:
    """The registered prompt template ``name``."""
    return registry("prompts").get(name)


def build_teacher(teacher: Params) -> Any:
    """The teacher a ``teacher`` section names."""
    return implementation("teachers", teacher.kind)(**_kwargs(teacher))


def build_student(student: Params) -> Any:
    """The student a ``student`` section names (not loaded yet)."""
    return implementation("students", student.kind)(**_kwargs(student))


def build_encoder(encoder: Params, device: str = "cpu") -> Any:
    """The encoder an ``encoder`` section names, on ``device`` when it takes one."""
    impl = implementation("encoders", encoder.kind)
    kwargs = _kwargs(encoder)
    try:
        takes_device = "device" in inspect.signature(impl).parameters
    except (TypeError, ValueError):  # a builtin or C callable: assume no device argument
        takes_device = False
    if takes_device:
        kwargs["device"] = device
    return impl(**kwargs)


def cached_text_encoder(encoder: Params, records: Any, device: str = "cpu") -> Any:
    """``encode(texts) -> (T, E)`` for an ``encoder`` section: the encoder built once, each
    text's vector read from (or written to) the ``records`` store of vectors."""
    from functools import partial

    from slimkit.encoders.cached import encode_cached

    built = build_encoder(encoder, device=device)
    return partial(encode_cached, built, records=records, identity=encoder_identity(encoder, built))


def encoder_identity(encoder: Params, built: Any = None) -> dict[str, Any]:
    """What an ``encoder`` section says vectors must have been made with; with ``built``
    (the encoder itself), completed by what it reports (``identity``: a model fingerprint)."""
    params = encoder.model_dump(mode="json")
    identity = {k: params[k] for k in ("kind", "model", "normalize", "max_seq_length") if k in params}
    return {**identity, **dict(getattr(built, "identity", None) or {})}


def build_recommender(backbone: Params, fusion: Params, *, num_users: int, num_items: int,
                      max_seq_len: int, item_vectors: Any = None, rationale_vectors: Any = None) -> Any:
    """A backbone inside its fusion head, as a :class:`slimkit.fusions.base.Recommender`."""
    model = implementation("backbones", backbone.kind)(
        num_items=num_items, max_seq_len=max_seq_len, **_kwargs(backbone)
    )
    build = implementation("fusions", fusion.kind)
    return build(model, num_users=num_users, num_items=num_items, item_vectors=item_vectors,
                 rationale_vectors=rationale_vectors, **_kwargs(fusion))


def load_dataset(dataset: Params) -> Any:
    """Run the loader a ``dataset`` section names: its raw interactions and item texts."""
    return implementation("datasets", dataset.kind)(dataset)

"""Stage ``train``: build backbone + fusion head, train, evaluate, keep the best model.

Writes :mod:`slimkit.artifacts.trained` (``model.safetensors``, ``model.json``,
``metrics.json``) and ``summary.json``.

Under a leakage-free ``prompt.rationale_cut`` (:mod:`slimkit.data.rationale_cut`) the
head's per-user table gets training-only rows (:func:`rationale_table`) and each training
target reads the row it may (:func:`rationale_rows`); validation and test read row ``u``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from slimkit.artifacts.files import write_summary
from slimkit.artifacts.trained import write_per_user, write_trained
from slimkit.artifacts.vectors import RERUN_HINT, select_rationale_vectors
from slimkit.errors import SlimkitError, StageMissingError
from slimkit.factories import build_recommender, fusion_needs


def side_info(spec: Any, vectors: dict[str, Any] | None) -> dict[str, Any]:
    """``{"item_vectors": (N+1, E) | None, "rationale_vectors": (U, E) | None}`` float32
    tensors the spec's fusion head needs, taken from the encode stage's ``vectors``."""
    needs_text, needs_rationales = fusion_needs(spec.fusion)
    side: dict[str, Any] = {"item_vectors": None, "rationale_vectors": None}
    if not (needs_text or needs_rationales):
        return side
    if vectors is None:
        raise StageMissingError(
            f"The fusion head '{spec.fusion.kind}' needs the encode stage's vectors.",
            hint="Run `slimkit run -c <spec>` (it teaches, distills and encodes first).",
        )
    from slimkit.runtime import setup_torch

    torch = setup_torch()
    if needs_text:
        side["item_vectors"] = torch.as_tensor(vectors["item_vectors"], dtype=torch.float32)
    if needs_rationales:
        source, step = getattr(spec.fusion, "rationale_source", "student"), getattr(spec.fusion, "step", None)
        chosen = select_rationale_vectors(vectors, source, step)
        side["users"] = int(chosen.shape[0])
        table = rationale_table(spec.prompt.rationale_cut, chosen,
                                lambda: select_rationale_vectors(vectors, source, step, cut=True))
        side["rationale_vectors"] = torch.as_tensor(table, dtype=torch.float32)
    return side


def rationale_table(mode: str, rationales: Any, cut_rationales: Callable[[], Any]) -> Any:
    """The per-user table a fusion head keeps, ``(R, E)``, under ``prompt.rationale_cut``
    ``mode``: rows ``0..U-1`` are the users' rationales (what validation, test, recommend
    and export read); ``shared`` appends one all-zero row (``U``: what training targets
    before a cut read), ``separate`` the rationales from the cut (rows ``U..2U-1``, from
    ``cut_rationales()``) and then the zero row (``2U``); ``none`` appends nothing.
    :func:`rationale_rows` says which row each training target reads."""
    import numpy as np

    if mode == "none":
        return rationales
    parts = [np.asarray(rationales, dtype=np.float32)]
    if mode == "separate":
        parts.append(np.asarray(cut_rationales(), dtype=np.float32))
    parts.append(np.zeros((1, parts[0].shape[1]), dtype=np.float32))
    return np.concatenate(parts)


def rationale_rows(spec: Any, dataset: Any) -> Any:
    """The :class:`~slimkit.training.samples.RationaleRows` of the spec's leakage-free
    ``prompt.rationale_cut`` for the table of :func:`rationale_table` (None under ``none``
    or for a head that reads no rationale): a target after user ``u``'s cut reads ``u``'s
    rationale from the cut, one before it the zero row."""
    import numpy as np

    from slimkit.data.rationale_cut import cut_positions
    from slimkit.training.samples import RationaleRows

    mode = spec.prompt.rationale_cut
    if mode == "none" or not fusion_needs(spec.fusion)[1]:
        return None
    users = np.arange(dataset.num_users, dtype=np.int64)
    cut = cut_positions(dataset.offsets, spec.prompt.cut_items)
    if mode == "shared":
        return RationaleRows(cut=cut, rows=users, missing=dataset.num_users)
    return RationaleRows(cut=cut, rows=users + dataset.num_users, missing=2 * dataset.num_users)


def check_side_info(side: dict[str, Any], num_users: int, num_items: int) -> None:
    """Refuse vectors made for another dataset (row counts that do not fit)."""
    items, rationales = side.get("item_vectors"), side.get("rationale_vectors")
    if items is not None and items.shape[0] != num_items + 1:
        raise SlimkitError(
            f"item_vectors has {items.shape[0]} rows but the dataset has {num_items} "
            "items (+1 padding row): the vectors belong to another dataset.", hint=RERUN_HINT)
    rows = side.get("users", None if rationales is None else rationales.shape[0])
    if rationales is not None and rows != num_users:
        raise SlimkitError(
            f"rationale vectors have {rows} rows but the dataset has "
            f"{num_users} users: they belong to another dataset.", hint=RERUN_HINT)


def recommender_for(spec: Any, *, num_users: int, num_items: int, max_seq_len: int,
                    side: dict[str, Any]) -> Any:
    """The spec's backbone inside its fusion head, as a Recommender (its ``num_users``: the
    rows of the per-user rationale table, see :func:`rationale_table`)."""
    if side.get("rationale_vectors") is not None:
        num_users = int(side["rationale_vectors"].shape[0])
    return build_recommender(spec.backbone, spec.fusion, num_users=num_users, num_items=num_items,
                             max_seq_len=max_seq_len, item_vectors=side.get("item_vectors"),
                             rationale_vectors=side.get("rationale_vectors"))


def options_from_spec(spec: Any, device: str, max_seq_len: int):
    """The spec's train and eval sections as the trainer's plain option objects."""
    from slimkit.training import EvalOptions, TrainOptions

    t, e = spec.train, spec.eval
    train = TrainOptions(epochs=t.epochs, batch_size=t.batch_size, lr=t.lr,
                         weight_decay=t.weight_decay, loss=t.loss, num_negatives=t.num_negatives,
                         sampled_negatives=t.sampled_negatives,
                         negative_sampler=t.negative_sampler,
                         patience=t.patience, valid_metric=t.valid_metric, seed=t.seed,
                         device=device, max_seq_len=max_seq_len, mode=t.mode,
                         window_stride=t.window_stride or 0)
    evaluation = EvalOptions(ks=tuple(e.ks), protocol=e.protocol, num_negatives=e.num_negatives,
                             mask_history=e.mask_history, tail_share=e.tail_share)
    return train, evaluation


def summarize(metrics: dict[str, Any], valid_metric: str) -> dict[str, Any]:
    """The short summary of a train run: test metrics at 10, the validation metric, seeds."""
    return {
        "test": {k: v for k, v in metrics["test"].items() if k.endswith("@10")},
        valid_metric: metrics["test"].get(valid_metric),
        "seeds": [run["seed"] for run in metrics["seeds"]],
        "train_mode": metrics.get("train_mode"),
        "protocol": metrics["protocol"],
        "masked_history": metrics["masked_history"],
    }


def max_seq_len_of(spec: Any, dataset: Any) -> int:
    """The window the model reads: the prepared dataset's, else the spec's."""
    return int(getattr(dataset, "max_seq_len", 0) or spec.dataset.max_seq_len)


def _fit(spec: Any, dataset: Any, vectors: dict[str, Any] | None, *, progress: bool):
    """``(result, build, device)``: the spec's recommender fitted and evaluated (result is
    None on a distributed run's ranks other than 0), and the function that builds it."""
    from slimkit.runtime import resolve_device
    from slimkit.training import train_and_evaluate

    device = resolve_device(spec.train.device)
    side = side_info(spec, vectors)
    check_side_info(side, dataset.num_users, dataset.num_items)
    max_seq_len = max_seq_len_of(spec, dataset)
    train_opts, eval_opts = options_from_spec(spec, device, max_seq_len)

    def build():
        return recommender_for(spec, num_users=dataset.num_users, num_items=dataset.num_items,
                               max_seq_len=max_seq_len, side=side)

    result = train_and_evaluate(build, dataset, train_opts, eval_opts, list(spec.eval.seeds),
                                progress=progress, rationale_rows=rationale_rows(spec, dataset))
    return result, build, device


def train_worker(spec: Any, dataset: Any, vectors: dict[str, Any] | None) -> None:
    """A distributed run's rank other than 0: the same fits as rank 0 (each on its share
    of every batch, :mod:`slimkit.training.distributed`); it writes and prints nothing."""
    _fit(spec, dataset, vectors, progress=False)


def train(spec: Any, dataset: Any, vectors: dict[str, Any] | None, out: Path, *,
          progress: bool = True) -> dict[str, Any]:
    """Train and evaluate the spec's recommender on ``dataset`` (with the encode stage's
    ``vectors`` when its fusion head needs them), save the best into ``out``; returns the
    summary. In a distributed run this is rank 0's part (the others run
    :func:`train_worker`)."""
    from slimkit.training import distributed

    result, build, device = _fit(spec, dataset, vectors, progress=progress)
    max_seq_len = max_seq_len_of(spec, dataset)
    group = distributed.current()
    metrics = result.report
    metrics.update(
        processes=group.world if group is not None else 1,
        backbone=spec.backbone.kind,
        fusion=spec.fusion.kind,
        dataset={"name": dataset.name, "users": dataset.num_users, "items": dataset.num_items,
                 "interactions": dataset.num_interactions},
        device=device,
        rationale_cut=spec.prompt.rationale_cut if fusion_needs(spec.fusion)[1] else None,
    )
    model = build()
    model.load_state_dict(result.state_dict)
    info = {
        "backbone": spec.backbone.model_dump(mode="json"),
        "fusion": spec.fusion.model_dump(mode="json"),
        "num_users": dataset.num_users,
        "num_items": dataset.num_items,
        "max_seq_len": max_seq_len,
        "best_seed": result.best_seed,
        "needs": dict(zip(("item_text", "rationales"), fusion_needs(spec.fusion))),
        "rationale_cut": spec.prompt.rationale_cut if fusion_needs(spec.fusion)[1] else None,
    }
    write_trained(out, model, info, metrics)
    write_per_user(out, result.per_user_test)
    summary = summarize(metrics, spec.train.valid_metric)
    write_summary(out, summary)
    return summary

"""Stage ``train``: build backbone + fusion head, train, evaluate, cache the best model.

Files written (see docs/architecture.md):

* ``model.safetensors``: the state of the run with the best validation metric;
* ``model.json``: what :func:`load_trained` needs to rebuild it (kinds, params, sizes);
* ``metrics.json``: ``{"valid": {...}, "test": {...}, "valid_std", "test_std",
  "popularity": {...}, "sparsity": [...], "seeds": [...], "masked_history": bool,
  "protocol": "full" | "sampled", ...}`` (means over ``eval.seeds``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slimkit.cache import StageCache
from slimkit.errors import SlimkitError, StageMissingError
from slimkit.stages import StageResult, fusion_needs, stage_keys, stage_spec

MODEL_FILE = "model.safetensors"


def _versions(spec) -> dict[str, str]:
    from slimkit.registry import component_versions

    return component_versions(
        [("backbones", spec.backbone.kind), ("fusions", spec.fusion.kind)]
    )


def load_dataset(spec, cache: StageCache):
    """The prepared dataset of the spec (runs or loads the data stage)."""
    try:
        from slimkit.stages.data import load_prepared
    except ImportError as exc:  # pragma: no cover - the data stage ships with slimkit
        raise StageMissingError(f"The data stage is not available: {exc}") from exc
    return load_prepared(spec, cache)


def load_side_info(spec, cache: StageCache | None = None, *, run: bool = True) -> dict[str, Any]:
    """``{"item_vectors": (N+1, E) | None, "rationale_vectors": (U, E) | None}`` float32
    tensors the spec's fusion head needs, read from the encode stage (run first when
    missing and ``run``; a StageMissingError otherwise)."""
    needs_text, needs_rationales = fusion_needs(spec)
    side: dict[str, Any] = {"item_vectors": None, "rationale_vectors": None}
    if not (needs_text or needs_rationales):
        return side
    cache = cache or StageCache()
    try:
        from slimkit.stages.encode import load_vectors, select_rationale_vectors
    except ImportError as exc:
        raise StageMissingError(
            f"The fusion head '{spec.fusion.kind}' needs item text / rationale vectors, but "
            f"the encode stage is not available ({exc}).",
            hint="Run `slimkit distill` and the encode stage first (`slimkit run` does all).",
        ) from exc
    try:
        vectors = load_vectors(spec, cache, run=run)
    except StageMissingError as exc:
        raise StageMissingError(
            f"The fusion head '{spec.fusion.kind}' needs the encode stage's vectors: "
            f"{exc.message}",
            hint=exc.hint or "Run `slimkit distill`/encode first (`slimkit run` does all).",
        ) from exc
    torch = _torch()
    if needs_text:
        side["item_vectors"] = torch.as_tensor(vectors["item_vectors"], dtype=torch.float32)
    if needs_rationales:
        source = getattr(spec.fusion, "rationale_source", "student")
        step = getattr(spec.fusion, "step", None)
        side["rationale_vectors"] = torch.as_tensor(
            select_rationale_vectors(vectors, source, step), dtype=torch.float32
        )
    return side


def _torch():
    from slimkit.runtime import setup_torch

    return setup_torch()


def build_recommender(
    spec, *, num_users: int, num_items: int, max_seq_len: int, side: dict[str, Any]
):
    """The spec's backbone inside its fusion head, as a Recommender."""
    from slimkit.components import implementation

    backbone_cls = implementation("backbones", spec.backbone.kind)
    backbone = backbone_cls(
        num_items=num_items,
        max_seq_len=max_seq_len,
        **spec.backbone.model_dump(exclude={"kind"}),
    )
    build = implementation("fusions", spec.fusion.kind)
    return build(
        backbone,
        num_users=num_users,
        num_items=num_items,
        item_vectors=side.get("item_vectors"),
        rationale_vectors=side.get("rationale_vectors"),
        **spec.fusion.model_dump(exclude={"kind"}),
    )


def options_from_spec(spec, device: str, max_seq_len: int):
    """The spec's train and eval sections as the trainer's plain option objects."""
    from slimkit.training.trainer import EvalOptions, TrainOptions

    t, e = spec.train, spec.eval
    train = TrainOptions(
        epochs=t.epochs,
        batch_size=t.batch_size,
        lr=t.lr,
        weight_decay=t.weight_decay,
        loss=t.loss,
        num_negatives=t.num_negatives,
        patience=t.patience,
        valid_metric=t.valid_metric,
        seed=t.seed,
        device=device,
        max_seq_len=max_seq_len,
    )
    evaluation = EvalOptions(
        ks=tuple(e.ks),
        protocol=e.protocol,
        num_negatives=e.num_negatives,
        mask_history=e.mask_history,
        tail_share=e.tail_share,
    )
    return train, evaluation


def _summary(report: dict[str, Any], metric: str) -> dict[str, Any]:
    return {
        "test": {k: report["test"][k] for k in report["test"] if k.endswith("@10")},
        metric: report["test"].get(metric),
        "seeds": [run["seed"] for run in report["seeds"]],
        "protocol": report["protocol"],
        "masked_history": report["masked_history"],
    }


def run_train(spec, cache: StageCache | None = None, *, progress: bool = True) -> StageResult:
    """Train and evaluate the spec's recommender, or take it from the cache."""
    cache = cache or StageCache()
    keys = stage_keys(spec, cache)
    key = keys["train"]
    hit = cache.get("train", key)
    if hit is not None:
        try:
            report = json.loads((hit / "metrics.json").read_text())
            return StageResult(
                "train", key, hit, cached=True, summary=_summary(report, spec.train.valid_metric)
            )
        except (OSError, ValueError, KeyError) as exc:
            cache.invalidate("train", key, f"metrics.json unreadable: {exc}")
    started = time.perf_counter()
    from slimkit.runtime import resolve_device

    device = resolve_device(spec.train.device)
    dataset = load_dataset(spec, cache)
    side = load_side_info(spec, cache)
    _check_side_info(side, dataset)
    max_seq_len = int(getattr(dataset, "max_seq_len", 0) or spec.dataset.max_seq_len)
    from safetensors.torch import save_model

    from slimkit.training.trainer import train_and_evaluate

    train_opts, eval_opts = options_from_spec(spec, device, max_seq_len)

    def build():
        return build_recommender(
            spec,
            num_users=dataset.num_users,
            num_items=dataset.num_items,
            max_seq_len=max_seq_len,
            side=side,
        )

    result = train_and_evaluate(
        build, dataset, train_opts, eval_opts, list(spec.eval.seeds), progress=progress
    )
    report = result.report
    report["backbone"] = spec.backbone.kind
    report["fusion"] = spec.fusion.kind
    report["dataset"] = {
        "name": dataset.name,
        "users": dataset.num_users,
        "items": dataset.num_items,
        "interactions": dataset.num_interactions,
    }
    report["device"] = device
    summary = _summary(report, spec.train.valid_metric)
    with cache.write("train", key, stage_spec(spec, "train"), _versions(spec), summary) as out:
        model = build()
        model.load_state_dict(result.state_dict)
        save_model(model, str(out / MODEL_FILE))
        model_info = {
            "backbone": spec.backbone.model_dump(mode="json"),
            "fusion": spec.fusion.model_dump(mode="json"),
            "num_users": dataset.num_users,
            "num_items": dataset.num_items,
            "max_seq_len": max_seq_len,
            "best_seed": result.best_seed,
            "needs": dict(zip(("item_text", "rationales"), fusion_needs(spec))),
        }
        (out / "model.json").write_text(json.dumps(model_info, indent=2))
        (out / "metrics.json").write_text(json.dumps(report, indent=2))
    path = cache.path("train", key)
    return StageResult(
        "train", key, path, cached=False, seconds=time.perf_counter() - started, summary=summary
    )


def _check_side_info(side: dict[str, Any], dataset) -> None:
    items, rationales = side.get("item_vectors"), side.get("rationale_vectors")
    if items is not None and items.shape[0] != dataset.num_items + 1:
        raise SlimkitError(
            f"item_vectors has {items.shape[0]} rows but the dataset has {dataset.num_items} "
            "items (+1 padding row): the vectors belong to another dataset.",
            hint="Re-run the encode stage (`slimkit cache clear encode`, then `slimkit run`).",
        )
    if rationales is not None and rationales.shape[0] != dataset.num_users:
        raise SlimkitError(
            f"rationale vectors have {rationales.shape[0]} rows but the dataset has "
            f"{dataset.num_users} users: they belong to another dataset.",
            hint="Re-run the encode stage (`slimkit cache clear encode`, then `slimkit run`).",
        )


@dataclass
class TrainedModel:
    """A trained recommender rebuilt from the cache, ready to score (eval mode, CPU)."""

    model: Any  # Recommender
    dataset: Any  # PreparedDataset
    metrics: dict[str, Any]
    info: dict[str, Any]
    path: Path

    def recommend(self, user: int, k: int = 10, *, mask_history: bool = True):
        """Top-``k`` ``(item index, score)`` for user index ``user`` from their whole
        sequence (the last ``max_seq_len`` items), history items excluded by default."""
        torch = _torch()
        seq = self.dataset.sequence(user)
        window = torch.as_tensor(seq[-self.info["max_seq_len"] :], dtype=torch.long)
        with torch.no_grad():
            scores = self.model.score_all(
                window.unsqueeze(0), torch.tensor([len(window)]), torch.tensor([user])
            )[0].float()  # (N + 1,)
        scores[0] = -torch.inf
        if mask_history:
            scores[torch.as_tensor(seq, dtype=torch.long)] = -torch.inf
        top = scores.topk(min(k, self.dataset.num_items))
        return [(int(i), float(s)) for i, s in zip(top.indices, top.values) if s > -torch.inf]


def load_trained(spec, cache: StageCache | None = None) -> TrainedModel:
    """The spec's trained model from the cache (StageMissingError when not trained yet)."""
    cache = cache or StageCache()
    key = stage_keys(spec, cache)["train"]
    folder = cache.get("train", key)
    if folder is None:
        raise StageMissingError(
            "No trained model for this spec yet"
            + (f" ({spec.source})" if spec.source else "")
            + ".",
            hint=f"Run `slimkit train -c {spec.source or '<spec>'}` first.",
        )
    info = json.loads((folder / "model.json").read_text())
    metrics = json.loads((folder / "metrics.json").read_text())
    dataset = load_dataset(spec, cache)
    side = load_side_info(spec, cache, run=False)
    model = build_recommender(
        spec,
        num_users=info["num_users"],
        num_items=info["num_items"],
        max_seq_len=info["max_seq_len"],
        side=side,
    )
    from safetensors.torch import load_model

    load_model(model, str(folder / MODEL_FILE))
    model.eval()
    return TrainedModel(model=model, dataset=dataset, metrics=metrics, info=info, path=folder)

"""The trained recommender of a spec as an ONNX model.

The exported graph computes ``scores (B, N + 1) = f(item_seq (B, L), lengths (B,)
[, rationale (B, E)])``:

* ``item_seq``: int64 item indices (1..N, as in ``<out>.json``'s ``item_ids``),
  right-padded with 0, at most ``max_seq_len`` long (the most recent items);
* ``lengths``: int64 real lengths (>= 1);
* ``rationale`` (only for heads that read one, ``slim`` and ``text-match``): the user's
  raw rationale vector as the spec's encoder writes it (zeros: no rationale). The
  standardisation the head applied to its known users is part of the graph, so a vector
  from ``<out>.rationales.npy`` (known users) or a new rationale, encoded, goes in as is;
* ``scores``: one score per item; column 0 is padding and never a recommendation.

Beside the model go ``<out>.json`` (ids, titles, shapes, the spec, the check's figures)
and, for heads with rationales, ``<out>.rationales.npy`` (every known user's raw vector,
row = the user's index in ``user_ids``).
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from slimkit._version import __version__
from slimkit.artifacts.vectors import select_rationale_vectors
from slimkit.cache import StageCache
from slimkit.console import quiet_libraries
from slimkit.errors import SlimkitError
from slimkit.factories import encoder_identity, fusion_needs
from slimkit.pipeline import Pipeline
from slimkit.recommend.core import load_model

OPSET = 18
TOLERANCE = 1e-3
"""Largest |ONNX - PyTorch| score difference the check accepts (float32 kernels differ)."""
CHECK_K = 10


def _scorer(model: Any, uses_rationale: bool, max_seq_len: int) -> Any:
    """``model`` (a Recommender) as a module of tensors only: (item_seq, lengths[,
    rationale]) -> scores. The raw rationale rows replace the head's user table for the
    call (``torch.func.functional_call``), standardised as ``add_user`` would. Sequences
    are right-padded to ``max_seq_len`` inside (padding never changes a backbone's output),
    so the graph has one sequence shape whatever length a caller sends."""
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch.func import functional_call

    class ScoreAll(nn.Module):
        def __init__(self, model: nn.Module):
            super().__init__()
            self.model = model

        def forward(self, item_seq, lengths, users):
            return self.model.score_all(item_seq, lengths, users)  # (B, N+1)

    class Scorer(nn.Module):
        def __init__(self, model: nn.Module):
            super().__init__()
            self.inner = ScoreAll(model)

        def forward(self, item_seq, lengths, rationale=None):
            item_seq = F.pad(item_seq, (0, max_seq_len - item_seq.size(1)))  # (B, max_seq_len)
            users = torch.arange(item_seq.size(0), device=item_seq.device)  # (B,) row b = user b
            if rationale is None:
                return self.inner(item_seq, lengths, users * 0)  # (B, N+1)
            head = self.inner.model
            present = rationale.abs().sum(dim=-1) > 0  # (B,)
            rows = (rationale - head.rationale_mean) / head.rationale_scale  # (B, E)
            rows = torch.where(present.unsqueeze(-1), rows, torch.zeros_like(rows))
            return functional_call(self.inner, {"model.rationale": rows,
                                                "model.has_rationale": present},
                                   (item_seq, lengths, users), strict=False)  # (B, N+1)

    if uses_rationale:
        missing = [name for name in ("rationale", "has_rationale", "rationale_mean",
                                     "rationale_scale") if not hasattr(model, name)]
        if missing:
            raise SlimkitError(
                f"The fusion head {type(model).__name__} reads rationale vectors but keeps no "
                f"{', '.join(missing)} buffers, so its user rows cannot become an ONNX input.",
                hint="Heads that register their rationale table with "
                "slimkit.fusions.user_rationales.register_rationales export.",
            )
    return Scorer(model).eval()


def user_inputs(dataset: Any, max_seq_len: int, users: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """``(item_seq (U, L), lengths (U,))`` int64: each user's last ``max_seq_len`` items,
    right-padded (the input `slimkit recommend --user` scores)."""
    users = range(dataset.num_users) if users is None else users
    seqs = [np.asarray(dataset.sequence(u), dtype=np.int64)[-max_seq_len:] for u in users]
    width = max(len(s) for s in seqs)
    item_seq = np.zeros((len(seqs), width), dtype=np.int64)
    for row, seq in enumerate(seqs):
        item_seq[row, : len(seq)] = seq
    return item_seq, np.array([len(s) for s in seqs], dtype=np.int64)


def _translations() -> dict[Any, Any]:
    """ONNX functions for aten operations torch.onnx has none for.

    ``aten.sort.stable`` (SR-GNN's session graphs sort each sequence's items): ONNX
    ``TopK`` with k = the whole axis and ``sorted=1`` is a sort, and keeps equal values in
    index order (the ONNX operator spec), i.e. a stable sort.
    """
    import torch
    from onnxscript import opset18 as op

    def sort_stable(self, stable=None, dim: int = -1, descending: bool = False):
        k = op.Gather(op.Shape(self), op.Constant(value_ints=[dim]), axis=0)  # (1,) axis size
        values, indices = op.TopK(self, k, axis=dim, largest=descending, sorted=True)
        return values, indices

    return {torch.ops.aten.sort.stable: sort_stable}


def _export(scorer: Any, example: tuple, names: list[str], out: Path, spec: Any) -> None:
    """torch.onnx.export with a dynamic batch and sequence length; unsupported operations
    become a SlimkitError naming the backbone and fusion head."""
    import torch

    batch = torch.export.Dim("batch", min=1)
    length = torch.export.Dim("length", min=1, max=spec.dataset.max_seq_len)
    shapes = {"item_seq": {0: batch, 1: length}, "lengths": {0: batch}}
    if "rationale" in names:
        shapes["rationale"] = {0: batch}
    try:
        with torch.no_grad(), quiet_libraries(True), _quiet_exporter():
            program = torch.onnx.export(scorer, example, input_names=names,
                                        output_names=["scores"], dynamic_shapes=shapes,
                                        opset_version=OPSET, dynamo=True, external_data=False,
                                        custom_translation_table=_translations(),
                                        optimize=True, verbose=False)
            program.save(str(out))
    except Exception as exc:
        raise SlimkitError(
            f"The {spec.backbone.kind} backbone with the {spec.fusion.kind} fusion head cannot "
            f"be exported to ONNX: {_reason(exc)}",
            hint="Serve it with `slimkit serve` instead. A plugin backbone exports when "
            "torch.export can trace it and torch.onnx can translate each of its operations.",
        ) from exc


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """torch.onnx's own chatter (skipped torchvision ops, shape-name notes) off the display."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _reason(exc: BaseException) -> str:
    """The line of torch.onnx's error (or of its causes) that names what failed."""
    texts = []
    while exc is not None:
        texts.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    for text in texts:
        for line in text.splitlines():
            if "No ONNX function found" in line or "Unsupported" in line or "not supported" in line:
                return line.strip()[:400]
    return texts[-1].strip().splitlines()[0][:400]


def _check(out: Path, scorer: Any, item_seq: np.ndarray, lengths: np.ndarray,
           rationale: np.ndarray | None, k: int = CHECK_K) -> dict[str, Any]:
    """onnxruntime (CPU) against PyTorch on the same inputs: score gap and top-k agreement."""
    import onnxruntime
    import torch

    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    feeds = {"item_seq": item_seq, "lengths": lengths}
    args = [torch.from_numpy(item_seq), torch.from_numpy(lengths)]
    if rationale is not None:
        feeds["rationale"] = rationale.astype(np.float32)
        args.append(torch.from_numpy(feeds["rationale"]))
    (onnx_scores,) = session.run(["scores"], feeds)  # (U, N+1)
    with torch.no_grad():
        torch_scores = scorer(*args).numpy()  # (U, N+1)
    onnx_scores, torch_scores = onnx_scores[:, 1:], torch_scores[:, 1:]  # column 0 is padding
    k = min(k, onnx_scores.shape[1])
    top_onnx = np.argsort(-onnx_scores, axis=1, kind="stable")[:, :k]
    top_torch = np.argsort(-torch_scores, axis=1, kind="stable")[:, :k]
    same = (top_onnx == top_torch).all(axis=1)
    return {"users": len(item_seq), "max_abs_diff": float(np.abs(onnx_scores - torch_scores).max()),
            f"top{k}_equal_users": int(same.sum()), "k": k}


def export_onnx(spec: Any, out: Path, *, cache: StageCache | None = None,
                check: bool = True) -> dict[str, Any]:
    """Export the spec's trained recommender to ``out`` (ONNX) with its ``.json`` (and
    ``.rationales.npy``) beside it; with ``check``, onnxruntime's scores are compared with
    PyTorch's for every user of the dataset (a SlimkitError when they disagree)."""
    import torch

    started = time.perf_counter()
    out = Path(out)
    if out.suffix != ".onnx":
        raise SlimkitError(f"-o {out}: give a file name ending in .onnx.")
    pipeline = Pipeline(spec, cache, progress=False)
    folder = pipeline.trained_folder(command="run")
    dataset = pipeline.dataset()
    uses_rationale = fusion_needs(spec.fusion)[1]
    with quiet_libraries(True):
        model = load_model(pipeline)
    max_seq_len = spec.dataset.max_seq_len
    scorer = _scorer(model, uses_rationale, max_seq_len)

    vectors = None
    if uses_rationale:
        vectors = np.asarray(select_rationale_vectors(
            pipeline.vectors(run=False), getattr(spec.fusion, "rationale_source", "student"),
            getattr(spec.fusion, "step", None)), dtype=np.float32)  # (U, E)
    item_seq, lengths = user_inputs(dataset, max_seq_len)
    example_users = list(range(min(2, dataset.num_users)))
    example = (torch.from_numpy(item_seq[example_users]), torch.from_numpy(lengths[example_users]))
    names = ["item_seq", "lengths"]
    if uses_rationale:
        example += (torch.from_numpy(vectors[example_users]),)
        names.append("rationale")
    out.parent.mkdir(parents=True, exist_ok=True)
    _export(scorer, example, names, out, spec)

    report: dict[str, Any] = {
        "format": "onnx", "opset": OPSET, "path": str(out),
        "inputs": {"item_seq": ["batch", "length"], "lengths": ["batch"],
                   **({"rationale": ["batch", int(vectors.shape[1])]} if uses_rationale else {})},
        "outputs": {"scores": ["batch", dataset.num_items + 1]},
        "max_seq_len": max_seq_len, "num_items": dataset.num_items, "num_users": dataset.num_users,
        "backbone": spec.backbone.model_dump(mode="json"),
        "fusion": spec.fusion.model_dump(mode="json"),
        "encoder": encoder_identity(spec.encoder) if uses_rationale else None,
        "train_key": pipeline.keys["train"], "trained": str(folder),
        "slimkit_version": __version__,
        "dataset": dataset.name,
        "item_ids": list(dataset.item_ids), "item_titles": list(dataset.item_titles),
        "user_ids": list(dataset.user_ids),
    }
    if uses_rationale:
        np.save(out.with_name(out.name + ".rationales.npy"), vectors)
        report["rationales"] = str(out.with_name(out.name + ".rationales.npy"))
    if check:
        report["check"] = _check(out, scorer, item_seq, lengths, vectors)
        if report["check"]["max_abs_diff"] > TOLERANCE:
            raise SlimkitError(
                f"The exported model's scores differ from PyTorch's by up to "
                f"{report['check']['max_abs_diff']:.2g} (tolerance {TOLERANCE}).",
                hint="Report it with the backbone and fusion kinds; the file is at " + str(out),
            )
    report["seconds"] = round(time.perf_counter() - started, 2)
    out.with_name(out.name + ".json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    return report

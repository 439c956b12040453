"""The paper's comparison on one dataset: each backbone plain, with item text, with the
teacher's rationales and with the student's (SLIM), then ID-agnostic text matching with
the whole rationale and with each step alone.

Every row is one train stage run of the spec with its ``fusion`` (and ``backbone``)
section replaced, so rows come from the cache when they ran before and upstream stages
(data, teach, distill, encode) are shared. Metrics are means and standard deviations
over ``eval.seeds`` as the train stage reports them (sample sd, none for one seed), and
each row's difference from ``plain`` with a 95 % paired-bootstrap interval over test
users (:mod:`slimkit.evaluation.statistics`). The paper's analyses come with each row:
``sparsity`` (test metrics per history-length group; one model per row, sliced by group,
not one model trained per group) and ``popularity_curve`` (share of recommendations per
item-popularity decile).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimkit.artifacts.files import write_json
from slimkit.artifacts.trained import read_metrics, read_per_user
from slimkit.cache import StageCache, hash_key
from slimkit.compare.display import draw_popularity
from slimkit.console import stderr_console
from slimkit.errors import ConfigError, SlimkitError, did_you_mean
from slimkit.evaluation.popularity import recommendation_curve

METHODS: dict[str, dict[str, Any]] = {
    "plain": {"kind": "none"},
    "item-text": {"kind": "item-text"},
    "slim-teacher": {"kind": "slim", "rationale_source": "teacher"},
    "slim": {"kind": "slim", "rationale_source": "student"},
    "text-match": {"kind": "text-match", "step": None, "rationale_source": "student",
                   "use_history": False},
    "text-match-teacher": {"kind": "text-match", "step": None, "rationale_source": "teacher",
                           "use_history": False},
    "text-match-step1": {"kind": "text-match", "step": 1, "rationale_source": "student",
                         "use_history": False},
    "text-match-step2": {"kind": "text-match", "step": 2, "rationale_source": "student",
                         "use_history": False},
    "text-match-step3": {"kind": "text-match", "step": 3, "rationale_source": "student",
                         "use_history": False},
    "text-match-hybrid": {"kind": "text-match", "step": None, "rationale_source": "student",
                          "use_history": True},
}
"""Method name -> the fusion section it trains with (over the spec's own, same kind).

The paper's rows (arXiv 2403.04260, Tables 2-4): ``plain`` is the backbone, ``item-text``
its "+" row (item text added to item IDs), ``slim-teacher`` the teacher feature extension,
``slim`` SLIM, and the ``text-match*`` rows the ID-agnostic recommendation: a rationale
vector against item-text vectors and nothing else (``use_history: false``), with the
student's, the teacher's, or one step's rationale. ``text-match-hybrid`` adds the history
encoded from item texts; it is slimkit's own row, not the paper's."""

PER_BACKBONE = ("plain", "item-text", "slim-teacher", "slim")
TEXT_MATCH = ("text-match", "text-match-teacher", "text-match-step1", "text-match-step2",
              "text-match-step3", "text-match-hybrid")
BASELINES = ("plain", "item-text", "slim-teacher")
"""Rows SLIM is measured against: the best of them per metric (the paper's "Improv.").
``slim-teacher`` counts only when the teacher wrote a rationale for every user."""
TEACHER_ROWS = ("slim-teacher", "text-match-teacher")
"""Rows that read the teacher's rationales: labelled with the teacher's coverage."""


@dataclass
class CompareResult:
    """Rows of the comparison, where it was stored, and the plot when one was drawn."""

    rows: list[dict[str, Any]]
    meta: dict[str, Any]
    path: Path | None = None
    plot: Path | None = None
    seconds: float = 0.0
    trained: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**self.meta, "rows": self.rows}


def parse_list(text: str | None, valid: list[str] | tuple[str, ...], what: str) -> list[str] | None:
    """``"a,b"`` -> ``["a", "b"]``, every name checked against ``valid``."""
    if text is None or not text.strip():
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in valid]
    if bad:
        raise ConfigError(
            f"Unknown {what}: {', '.join(bad)}.{did_you_mean(bad[0], valid)} "
            f"Available: {', '.join(valid)}."
        )
    return list(dict.fromkeys(names))


def backbone_section(spec, name: str) -> dict[str, Any]:
    """The spec's backbone section for ``name``: the spec's own when it is that kind,
    else that kind's defaults with the spec's ``hidden_size`` (rows stay comparable)."""
    from slimkit.components import params_model

    own = spec.backbone.model_dump(mode="json")
    if own["kind"] == name:
        return own
    section: dict[str, Any] = {"kind": name}
    model = params_model("backbones", name)
    if "hidden_size" in own and "hidden_size" in model.model_fields:
        section["hidden_size"] = own["hidden_size"]
    return section


def fusion_section(spec, method: str) -> dict[str, Any]:
    """The fusion section of a method: the spec's own parameters when it names the same
    kind (so a tuned ``slim`` section carries over), with the method's fields on top."""
    wanted = METHODS[method]
    own = spec.fusion.model_dump(mode="json")
    base = own if own["kind"] == wanted["kind"] else {"kind": wanted["kind"]}
    return {**base, **wanted}


def plan(spec, backbones: list[str] | None = None, methods: list[str] | None = None):
    """``[(backbone, method, row spec)]`` in table order."""
    from slimkit.registry import registry

    backbones = backbones or [spec.backbone.kind]
    for name in backbones:
        if name not in registry("backbones"):
            names = registry("backbones").names()
            raise ConfigError(
                f"--backbones: unknown backbone '{name}'.{did_you_mean(name, names)} "
                f"Available: {', '.join(names)}."
            )
    methods = methods or list(METHODS)
    rows = []
    for backbone in backbones:
        for method in PER_BACKBONE:
            if method in methods:
                rows.append((backbone, method))
    # ID-agnostic rows once, with the first backbone encoding the text history.
    for method in TEXT_MATCH:
        if method in methods:
            rows.append((backbones[0], method))
    out = []
    for backbone, method in rows:
        row_spec = spec.replace(
            backbone=backbone_section(spec, backbone), fusion=fusion_section(spec, method)
        )
        out.append((backbone, method, row_spec))
    return out


DIFF_METRICS = ("ndcg@10", "hit@10", "hit@20")
"""Metrics whose difference against ``plain`` gets a paired-bootstrap interval."""


def _metric_block(report: dict[str, Any], split: str) -> dict[str, dict[str, Any]]:
    """``{metric: {"mean", "std", "n"}}``; ``std`` is the sample sd over seeds, None with
    one seed (no spread to show)."""
    means = report.get(split, {})
    stds = report.get(f"{split}_std", {})
    n = len(report.get("seeds", [])) or 1
    return {
        k: {"mean": float(v), "std": float(stds[k]) if n > 1 and k in stds else None, "n": n}
        for k, v in means.items()
    }


def reference_row(rows: list[dict[str, Any]], row: dict[str, Any]) -> dict[str, Any] | None:
    """The ``plain`` row a row is measured against: the same backbone's (text-match rows:
    the backbone that encoded their history, as in :func:`add_improvements`)."""
    return next(
        (r for r in rows if r["method"] == "plain" and r["backbone"] == row["backbone"]), None
    )


def add_differences(
    rows: list[dict[str, Any]],
    per_user: list[dict[int, dict[str, Any]] | None],
    metrics: tuple[str, ...] = DIFF_METRICS,
) -> None:
    """``vs_plain[metric]``: the row's test mean minus plain's, with a 95 % paired
    bootstrap interval over test users (pooled over the seeds both ran). None for the
    plain row itself, when no plain row was run, or when a row was trained before
    slimkit kept per-user metrics (``vs_plain_note`` says which)."""
    from slimkit.evaluation.statistics import paired_difference, seeds_of

    values = {id(row): users for row, users in zip(rows, per_user)}
    for row in rows:
        row["vs_plain"] = None
        plain = reference_row(rows, row)
        if row["method"] == "plain" or plain is None:
            continue
        mine, theirs = values[id(row)], values[id(plain)]
        if mine is None or theirs is None:
            row["vs_plain_note"] = "trained before per-user metrics were kept; clear its train stage"
            continue
        out = {}
        for metric in metrics:
            a, b = seeds_of(mine, metric), seeds_of(theirs, metric)
            if a and b and set(a) & set(b):
                out[metric] = paired_difference(a, b).to_json()
        row["vs_plain"] = out


def add_improvements(rows: list[dict[str, Any]]) -> None:
    """``improvement[metric]``: relative change over the best baseline row of the same
    backbone (text-match rows: of the backbone that encoded their history)."""
    for row in rows:
        row["baseline"] = row["method"] in BASELINES and not row.get("partial_coverage", False)
    for row in rows:
        baselines = [r for r in rows if r["backbone"] == row["backbone"] and r["baseline"]]
        improvement: dict[str, float | None] = {}
        for metric, value in row["test"].items():
            best = max((b["test"][metric]["mean"] for b in baselines if metric in b["test"]), default=None)
            improvement[metric] = (
                (value["mean"] - best) / best if best not in (None, 0.0) else None
            )
        row["improvement"] = improvement


def popularity_counts(dataset: Any) -> Any:
    """Training popularity of every item (distinct users), for the per-item curve."""
    from slimkit.evaluation.popularity import item_popularity

    return item_popularity(dataset.offsets, dataset.items, dataset.num_items)


def teacher_coverage(pipeline: Any) -> dict[str, int]:
    """``{"users": users with a teacher rationale, "of": users in the dataset}``."""
    summary = pipeline.run("teach").summary
    users = int(pipeline.dataset().num_users)
    done = int(summary.get("done", summary.get("users", 0)))
    return {"users": done, "of": users}


def _train_row(row_spec, root: str) -> float:
    """A worker process's row: train it into the shared cache; its seconds."""
    from slimkit.pipeline import Pipeline

    return Pipeline(row_spec, StageCache(root), progress=False).run("train").seconds


def train_in_parallel(planned, cache: StageCache, jobs: int, console) -> dict[int, float]:
    """Train the rows of ``planned`` that are not cached, ``jobs`` at a time in separate
    processes (one torch thread each); ``{row index: seconds}`` of those that finished.

    Upstream stages (teach, distill, encode) run first, here, once: rows only share them.
    A row that fails in a worker is left untrained, and the caller's sequential pass
    trains it again and reports the error with the row's name.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from slimkit.pipeline import Pipeline
    from slimkit.pipeline.keys import uses_text

    todo = [i for i, (_, _, row_spec) in enumerate(planned)
            if Pipeline(row_spec, cache, progress=False).cached("train") is None]
    if len(todo) < 2:
        return {}
    for i in todo:  # upstream once, in this process, with its progress
        row_spec = planned[i][2]
        pipeline = Pipeline(row_spec, cache, progress=console is not None)
        if uses_text(row_spec):
            pipeline.vectors()
        else:
            pipeline.dataset()
    if console is not None:
        console.print(f"[bold]training {len(todo)} rows, {jobs} at a time[/]")
    done: dict[int, float] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=context) as pool:
        futures = {pool.submit(_train_row, planned[i][2], str(cache.root)): i for i in todo}
        for future in as_completed(futures):
            i = futures[future]
            backbone, method, _ = planned[i]
            try:
                done[i] = future.result()
            except Exception as exc:  # noqa: BLE001 - the sequential pass reports it properly
                if console is not None:
                    console.print(f"    {backbone} · {method}: failed in its worker ({exc}); "
                                  "trying it again on its own")
                continue
            if console is not None:
                console.print(f"    {backbone} · {method}: trained in {done[i]:.0f} s")
    return done


def run_compare(
    spec,
    cache: StageCache | None = None,
    *,
    backbones: list[str] | None = None,
    methods: list[str] | None = None,
    plot: str | Path | None = None,
    progress: bool = True,
    jobs: int = 1,
) -> CompareResult:
    """Train (or take from the cache) every row and collect the table; ``jobs`` > 1 trains
    the missing rows that many at a time in separate processes."""
    from slimkit.pipeline import Pipeline

    cache = cache or StageCache()
    started = time.perf_counter()
    planned = plan(spec, backbones, methods)
    console = stderr_console() if progress else None
    parallel = train_in_parallel(planned, cache, jobs, console) if jobs > 1 else {}
    rows: list[dict[str, Any]] = []
    per_user: list[dict[int, dict[str, Any]] | None] = []
    counts = None
    trained: list[str] = []
    meta: dict[str, Any] = {}
    for number, (backbone, method, row_spec) in enumerate(planned, 1):
        label = f"[{number}/{len(planned)}] {backbone} · {method}"
        if console is not None:
            console.print(f"[bold]{label}[/]")
        try:
            result = Pipeline(row_spec, cache, progress=progress).run("train")
        except SlimkitError as exc:
            exc.message = f"compare row {backbone} · {method}: {exc.message}"
            raise
        if number - 1 in parallel:
            result.cached, result.seconds = False, parallel[number - 1]
        report = read_metrics(result.path)
        users = read_per_user(result.path)
        per_user.append(users)
        if counts is None:
            counts = popularity_counts(Pipeline(row_spec, cache, progress=False).dataset())
        coverage = None
        if method in TEACHER_ROWS:
            coverage = teacher_coverage(Pipeline(row_spec, cache, progress=False))
        if not result.cached:
            trained.append(f"{backbone}/{method}")
        if console is not None:
            note = "cached" if result.cached else f"trained in {result.seconds:.0f} s"
            console.print(f"    {note}; test ndcg@10 {report['test'].get('ndcg@10', float('nan')):.4f}")
        meta = meta or {
            "dataset": report.get("dataset"),
            "seeds": [run.get("seed") for run in report.get("seeds", [])],
            "protocol": report.get("protocol"),
            "masked_history": report.get("masked_history"),
            "num_negatives": report.get("num_negatives"),
            "rationale_cut": row_spec.prompt.rationale_cut,
        }
        rows.append(
            {
                "backbone": backbone,
                "method": method,
                "fusion": row_spec.fusion.model_dump(mode="json"),
                "test": _metric_block(report, "test"),
                "valid": _metric_block(report, "valid"),
                "popularity": {k: float(v) for k, v in report.get("popularity", {}).items()},
                "popularity_curve": (
                    recommendation_curve([u["top10"] for u in users.values() if "top10" in u], counts)
                    if users else None
                ),
                "sparsity": report.get("sparsity", []),
                "train_key": result.key,
                "cached": bool(result.cached),
                **({"teacher_coverage": coverage,
                    "partial_coverage": coverage["users"] < coverage["of"]} if coverage else {}),
            }
        )
    add_improvements(rows)
    add_differences(rows, per_user)
    out = CompareResult(rows=rows, meta=meta, trained=trained)
    out.seconds = round(time.perf_counter() - started, 2)
    key = hash_key("compare", [r["train_key"] for r in rows])
    folder = cache.get("compare", key)
    if folder is None:
        summary = {"rows": len(rows), "seeds": meta.get("seeds")}
        with cache.write("compare", key, {"rows": [[r["backbone"], r["method"], r["train_key"]] for r in rows]}, summary=summary) as tmp:
            write_json(tmp / "compare.json", out.to_json())
            draw_popularity(rows, tmp / "popularity.png")
        folder = cache.get("compare", key)
    out.path = folder
    if plot is not None:
        out.plot = draw_popularity(rows, Path(plot))
    return out

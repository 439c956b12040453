"""The paper's comparison on one dataset: each backbone plain, with item text, with the
teacher's rationales and with the student's (SLIM), then ID-agnostic text matching with
the whole rationale and with each step alone.

Every row is one train stage run of the spec with its ``fusion`` (and ``backbone``)
section replaced, so rows come from the cache when they ran before and upstream stages
(data, teach, distill, encode) are shared. Metrics are means and standard deviations
over ``eval.seeds`` as the train stage reports them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimkit.cache import StageCache, hash_key
from slimkit.errors import ConfigError, SlimkitError, did_you_mean

METHODS: dict[str, dict[str, Any]] = {
    "plain": {"kind": "none"},
    "item-text": {"kind": "item-text"},
    "slim-teacher": {"kind": "slim", "rationale_source": "teacher"},
    "slim": {"kind": "slim", "rationale_source": "student"},
    "text-match": {"kind": "text-match", "step": None},
    "text-match-step1": {"kind": "text-match", "step": 1},
    "text-match-step2": {"kind": "text-match", "step": 2},
    "text-match-step3": {"kind": "text-match", "step": 3},
}
"""Method name -> the fusion section it trains with (over the spec's own, same kind)."""

PER_BACKBONE = ("plain", "item-text", "slim-teacher", "slim")
TEXT_MATCH = ("text-match", "text-match-step1", "text-match-step2", "text-match-step3")
BASELINES = ("plain", "item-text", "slim-teacher")
"""Rows SLIM is measured against: the best of them per metric (the paper's "Improv.")."""

TABLE_METRICS = ("ndcg@10", "hit@10", "hit@20")
POPULARITY_METRICS = ("efd@10", "epc@10")


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


def _metric_block(report: dict[str, Any], split: str) -> dict[str, dict[str, float]]:
    means = report.get(split, {})
    stds = report.get(f"{split}_std", {})
    return {k: {"mean": float(v), "std": float(stds.get(k, 0.0))} for k, v in means.items()}


def add_improvements(rows: list[dict[str, Any]]) -> None:
    """``improvement[metric]``: relative change over the best baseline row of the same
    backbone (text-match rows: of the backbone that encoded their history)."""
    for row in rows:
        baselines = [
            r for r in rows if r["backbone"] == row["backbone"] and r["method"] in BASELINES
        ]
        improvement: dict[str, float | None] = {}
        for metric, value in row["test"].items():
            best = max((b["test"][metric]["mean"] for b in baselines if metric in b["test"]), default=None)
            improvement[metric] = (
                (value["mean"] - best) / best if best not in (None, 0.0) else None
            )
        row["improvement"] = improvement
        row["baseline"] = row["method"] in BASELINES


def run_compare(
    spec,
    cache: StageCache | None = None,
    *,
    backbones: list[str] | None = None,
    methods: list[str] | None = None,
    plot: str | Path | None = None,
    progress: bool = True,
) -> CompareResult:
    """Train (or take from the cache) every row and collect the table."""
    from slimkit.stages.train import run_train

    cache = cache or StageCache()
    started = time.perf_counter()
    planned = plan(spec, backbones, methods)
    console = _console() if progress else None
    rows: list[dict[str, Any]] = []
    trained: list[str] = []
    meta: dict[str, Any] = {}
    for number, (backbone, method, row_spec) in enumerate(planned, 1):
        label = f"[{number}/{len(planned)}] {backbone} · {method}"
        if console is not None:
            console.print(f"[bold]{label}[/]")
        try:
            result = run_train(row_spec, cache, progress=progress)
        except SlimkitError as exc:
            exc.message = f"compare row {backbone} · {method}: {exc.message}"
            raise
        report = json.loads((result.path / "metrics.json").read_text())
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
        }
        rows.append(
            {
                "backbone": backbone,
                "method": method,
                "fusion": row_spec.fusion.model_dump(mode="json"),
                "test": _metric_block(report, "test"),
                "valid": _metric_block(report, "valid"),
                "popularity": {k: float(v) for k, v in report.get("popularity", {}).items()},
                "train_key": result.key,
                "cached": bool(result.cached),
            }
        )
    add_improvements(rows)
    out = CompareResult(rows=rows, meta=meta, trained=trained)
    out.seconds = round(time.perf_counter() - started, 2)
    key = hash_key("compare", [r["train_key"] for r in rows])
    folder = cache.get("compare", key)
    if folder is None:
        summary = {"rows": len(rows), "seeds": meta.get("seeds")}
        with cache.write("compare", key, {"rows": [[r["backbone"], r["method"], r["train_key"]] for r in rows]}, summary=summary) as tmp:
            (tmp / "compare.json").write_text(json.dumps(out.to_json(), indent=2))
            draw_popularity(rows, tmp / "popularity.png")
        folder = cache.get("compare", key)
    out.path = folder
    if plot is not None:
        out.plot = draw_popularity(rows, Path(plot))
    return out


def _console():
    from rich.console import Console

    return Console(stderr=True)


# -- output ----------------------------------------------------------------------------------
def _fmt(block: dict[str, float] | None) -> str:
    if block is None:
        return "–"
    return f"{block['mean']:.4f} ± {block['std']:.4f}"


def table(result: CompareResult):
    """A rich Table of the comparison."""
    from rich.table import Table

    seeds = result.meta.get("seeds") or []
    dataset = (result.meta.get("dataset") or {}).get("name", "")
    title = (
        f"SLIM comparison on {dataset}: test, mean ± std over {len(seeds)} seed"
        f"{'s' if len(seeds) != 1 else ''} ({result.meta.get('protocol')} ranking"
        f"{', history masked' if result.meta.get('masked_history') else ''})"
    )
    tab = Table(title=title)
    tab.add_column("backbone")
    tab.add_column("method")
    for metric in TABLE_METRICS:
        tab.add_column(metric.upper().replace("HIT", "Hit").replace("NDCG", "NDCG"), justify="right")
    tab.add_column("Improv. NDCG@10", justify="right")
    for metric in POPULARITY_METRICS:
        tab.add_column(metric.upper(), justify="right")
    previous = None
    for row in result.rows:
        if previous is not None and row["backbone"] != previous:
            tab.add_section()
        previous = row["backbone"]
        gain = row["improvement"].get("ndcg@10")
        gain_text = "–" if gain is None or row["baseline"] else f"{gain * 100:+.1f}%"
        cells = [_fmt(row["test"].get(m)) for m in TABLE_METRICS]
        pops = [
            f"{row['popularity'][m]:.4f}" if m in row["popularity"] else "–"
            for m in POPULARITY_METRICS
        ]
        tab.add_row(row["backbone"], row["method"], *cells, gain_text, *pops)
    return tab


def draw_popularity(rows: list[dict[str, Any]], path: Path) -> Path:
    """Bar chart per method: share of top-10 recommendations from head and tail items,
    and hit@10 of users whose target is a head or a tail item (the paper's figure 4)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.parent and not path.parent.exists():
        raise SlimkitError(f"--plot: the folder {path.parent} does not exist.")
    labels = [f"{r['backbone']}\n{r['method']}" for r in rows]
    tail = [r["popularity"].get("tail_share@10", 0.0) for r in rows]
    head = [1.0 - t for t in tail]
    hit_head = [r["popularity"].get("hit@10_head", 0.0) for r in rows]
    hit_tail = [r["popularity"].get("hit@10_tail", 0.0) for r in rows]
    x = list(range(len(rows)))
    width = max(6.0, 1.1 * len(rows))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(width, 7), sharex=True)
    ax1.bar(x, head, label="head items", color="#4c72b0")
    ax1.bar(x, tail, bottom=head, label="tail items", color="#dd8452")
    ax1.set_ylabel("share of top-10 lists")
    ax1.set_ylim(0, 1)
    ax1.legend(loc="upper right", fontsize=8)
    ax1.set_title("How often head and tail items are recommended")
    bar = 0.4
    ax2.bar([i - bar / 2 for i in x], hit_head, bar, label="target is a head item", color="#4c72b0")
    ax2.bar([i + bar / 2 for i in x], hit_tail, bar, label="target is a tail item", color="#dd8452")
    ax2.set_ylabel("Hit@10")
    ax2.legend(loc="upper right", fontsize=8)
    ax2.set_xticks(x)
    ax2.set_xticklabels(labels, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

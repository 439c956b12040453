"""The comparison as a table (rich) and the popularity figure (matplotlib, PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slimkit.errors import SlimkitError

TABLE_METRICS = ("ndcg@10", "hit@10", "hit@20")
POPULARITY_METRICS = ("efd@10", "epc@10")


def _fmt(block: dict[str, Any] | None) -> str:
    """``mean ± sd`` over seeds; the mean alone with one seed (no "± 0")."""
    if block is None:
        return "–"
    if block.get("std") is None:
        return f"{block['mean']:.4f}"
    return f"{block['mean']:.4f} ± {block['std']:.4f}"


def fmt_difference(diff: dict[str, Any] | None) -> str:
    """``+0.0070 [+0.0012, +0.0128]``, starred when the interval excludes zero."""
    if not diff:
        return "–"
    star = " *" if diff.get("excludes_zero") else ""
    return f"{diff['diff']:+.4f} [{diff['low']:+.4f}, {diff['high']:+.4f}]{star}"


def method_label(row: dict[str, Any]) -> str:
    """The row's method, with the teacher's coverage when it did not cover every user."""
    coverage = row.get("teacher_coverage")
    if coverage and row.get("partial_coverage"):
        return f"{row['method']} (teacher: {coverage['users']}/{coverage['of']} users)"
    return row["method"]


def table(result: Any):
    """A rich Table of the comparison."""
    from rich.table import Table

    seeds = result.meta.get("seeds") or []
    dataset = (result.meta.get("dataset") or {}).get("name", "")
    spread = "mean ± sample sd over" if len(seeds) > 1 else "one run,"
    title = (
        f"SLIM comparison on {dataset}: test, {spread} n={len(seeds)} seed"
        f"{'s' if len(seeds) != 1 else ''} ({result.meta.get('protocol')} ranking"
        f"{', history masked' if result.meta.get('masked_history') else ''}"
        f"{_rationale_note(result.meta.get('rationale_cut'))})"
    )
    tab = Table(title=title)
    tab.add_column("backbone")
    tab.add_column("method")
    for metric in TABLE_METRICS:
        tab.add_column(metric.upper().replace("HIT", "Hit").replace("NDCG", "NDCG"), justify="right")
    tab.add_column("Improv. NDCG@10", justify="right")
    tab.add_column("Δ NDCG@10 vs plain [95% CI]", justify="right")
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
        diff = fmt_difference((row.get("vs_plain") or {}).get("ndcg@10"))
        tab.add_row(row["backbone"], method_label(row), *cells, gain_text, diff, *pops)
    return tab


def sparsity_table(result: Any, metric: str = "ndcg@10"):
    """Test ``metric`` per history-length group (one model per row, sliced by group), one
    line per row: SLIM against the backbone for sparse and dense users."""
    from rich.table import Table

    rows = [r for r in result.rows if r.get("sparsity")]
    if not rows:
        return None
    groups = rows[0]["sparsity"]
    tab = Table(title=f"test {metric.upper()} by training history length (users in each group)")
    tab.add_column("backbone")
    tab.add_column("method")
    for g in groups:
        tab.add_column(f"{g['min_length']}–{g['max_length']} ({g['users']})", justify="right")
    for r in rows:
        cells = [f"{g[metric]:.4f}" if metric in g else "–" for g in r["sparsity"]]
        tab.add_row(r["backbone"], method_label(r), *cells)
    return tab


def draw_popularity(rows: list[dict[str, Any]], path: Path) -> Path:
    """Bar chart per method: share of top-10 recommendations from head and tail items,
    and hit@10 of users whose target is a head or a tail item (the paper's figure 4); with
    the rows' ``popularity_curve``, the per-item curve below them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.parent and not path.parent.exists():
        raise SlimkitError(f"--plot: the folder {path.parent} does not exist.")
    # short (the table has coverage); long method names break at their last hyphen
    labels = [f"{r['backbone']}\n" + "-\n".join(r["method"].rsplit("-", 1)) if len(r["method"]) > 12
              else f"{r['backbone']}\n{r['method']}" for r in rows]
    tail = [r["popularity"].get("tail_share@10", 0.0) for r in rows]
    head = [1.0 - t for t in tail]
    hit_head = [r["popularity"].get("hit@10_head", 0.0) for r in rows]
    hit_tail = [r["popularity"].get("hit@10_tail", 0.0) for r in rows]
    x = list(range(len(rows)))
    width = max(6.0, 1.3 * len(rows))
    curves = [r for r in rows if r.get("popularity_curve")]
    fig = plt.figure(figsize=(width, 10.5 if curves else 7))
    grid = fig.add_gridspec(3 if curves else 2, 1)
    ax1 = fig.add_subplot(grid[0])
    ax2 = fig.add_subplot(grid[1], sharex=ax1)
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
    if curves:
        ax3 = fig.add_subplot(grid[2])
        first = curves[0]["popularity_curve"]
        groups = [g["group"] for g in first]
        ax3.plot(groups, [g["item_share"] for g in first], color="grey", linestyle=":",
                 label="share of the catalogue")
        for r in curves:
            ax3.plot(groups, [g["share"] for g in r["popularity_curve"]], marker="o",
                     label=f"{r['backbone']} · {r['method']}")
        ax3.set_yscale("log")
        ax3.set_xticks(groups)
        ax3.set_xlabel("items by training popularity, in equal groups (1 = most popular)")
        ax3.set_ylabel("share of top-10 slots")
        ax3.set_title("Per-item popularity: where the recommendations go")
        ax3.legend(loc="upper right", fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _rationale_note(mode: str | None) -> str:
    """The title's note on which rationales training read (prompt.rationale_cut)."""
    if not mode:
        return ""
    if mode == "none":
        return ", training rationales: none (leaky: written from the targets' history)"
    return f", training rationales: {mode} cut (leakage-free)"

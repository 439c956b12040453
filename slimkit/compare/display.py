"""The comparison as a table (rich) and the popularity figure (matplotlib, PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slimkit.errors import SlimkitError

TABLE_METRICS = ("ndcg@10", "hit@10", "hit@20")
POPULARITY_METRICS = ("efd@10", "epc@10")


def _fmt(block: dict[str, float] | None) -> str:
    if block is None:
        return "–"
    return f"{block['mean']:.4f} ± {block['std']:.4f}"


def table(result: Any):
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

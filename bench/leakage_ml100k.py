"""Leakage-free against leaky training rationales on MovieLens-100K, with seeds and CIs.

Usage:
    python bench/leakage_ml100k.py --teacher statistics [--seeds 42,43,44]
        [--backbones sasrec,gru4rec] [--modes none,shared]
    python bench/leakage_ml100k.py --teacher pipeline -c examples/quickstart.yaml ...

Two sources of rationales (issue 17's tables):

* ``statistics``: the ``statistics`` teacher writes a rationale for every user (seconds,
  no LLM), and its rationales are the ones the rows read (``slim-teacher`` and
  ``text-match-teacher`` with full coverage). The student is not run: this isolates what
  the cut does from what a student adds. Teach and encode run here, outside the stage
  cache; the trained rows are kept under ``--work`` so a rerun trains only what is missing.
* ``pipeline``: the spec's own teacher and student (the quickstart: SmolLM2 teacher on 64
  users, SmolLM2 student for all 943), every stage through the cache, as
  ``slimkit compare`` runs it; rows ``slim`` and ``text-match`` read the student's
  rationales. Under ``none`` the teacher and the student run again on the whole training
  sequence (a second distill).

For every row: test NDCG@10 / Hit@10 / Hit@20 as mean and sample sd over the seeds, the
difference from ``plain`` with a 95 % paired bootstrap over test users (pooled over the
seeds), and for every rationale row the difference between the modes (``shared`` minus
``none``) the same way. The table is printed; JSON goes to bench/results/<name>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
METRICS = ("ndcg@10", "hit@10", "hit@20")
ROWS = {"statistics": ("plain", "slim-teacher", "text-match-teacher"),
        "pipeline": ("plain", "slim", "text-match")}


def statistics_vectors(spec: Any, dataset: Any, cache: Any, work: Path) -> dict[str, Any]:
    """Teach every user with the statistics teacher under the spec's rationale cut and
    encode the rationales (as both teacher and student rows: no student runs)."""
    from slimkit.artifacts.rationales import read_rationales
    from slimkit.encoders.cached import RECORD_NAMESPACE
    from slimkit.factories import build_encoder, encoder_identity
    from slimkit.stages import teach as teach_stage
    from slimkit.stages.encode import encode_all

    out = work / f"teach-{spec.prompt.rationale_cut}"
    out.mkdir(parents=True, exist_ok=True)
    teach_stage.teach(spec, dataset, out, records=cache.records, progress=False)
    rows = read_rationales(out, done_only=True)
    if len(rows) != dataset.num_users:
        raise SystemExit(f"the statistics teacher answered {len(rows)} of {dataset.num_users} users")
    encoder = build_encoder(spec.encoder, device="cpu")
    arrays, _ = encode_all(dataset, rows, rows, encoder, cache.records(RECORD_NAMESPACE),
                           identity=encoder_identity(spec.encoder, encoder))
    return {name[:-4]: array for name, array in arrays.items()}


def train_row(row_spec: Any, dataset: Any, vectors: dict[str, Any] | None, folder: Path) -> Path:
    """Train ``row_spec`` into ``folder`` unless a finished run is there already."""
    from slimkit.stages import train as train_stage

    if not (folder / "metrics.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        train_stage.train(row_spec, dataset, vectors, folder, progress=False)
    return folder


def summarize(folder: Path) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    from slimkit.artifacts.trained import read_metrics, read_per_user

    report = read_metrics(folder)
    n = len(report.get("seeds", []))
    block = {m: {"mean": report["test"][m], "sd": report.get("test_std", {}).get(m) if n > 1 else None,
                 "n": n} for m in METRICS}
    block["valid_ndcg@10"] = report["valid"]["ndcg@10"]
    block["epochs"] = [s.get("epochs") for s in report.get("seeds", [])]
    return block, read_per_user(folder) or {}


def difference(a: dict[int, dict[str, Any]], b: dict[int, dict[str, Any]]) -> dict[str, Any]:
    from slimkit.evaluation.statistics import paired_difference, seeds_of

    return {m: paired_difference(seeds_of(a, m), seeds_of(b, m)).to_json() for m in METRICS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", choices=sorted(ROWS), default="statistics")
    parser.add_argument("-c", "--config", default=None,
                        help="Spec (default: statistics-ablation.yaml / quickstart.yaml).")
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--backbones", default="sasrec,gru4rec")
    parser.add_argument("--modes", default="none,shared", help="prompt.rationale_cut values.")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--work", default=None, help="Folder for the statistics rows' runs.")
    parser.add_argument("--name", default=None, help="Output file stem.")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from slimkit.cache import StageCache
    from slimkit.compare.run import backbone_section, fusion_section
    from slimkit.paths import home_dir
    from slimkit.pipeline import Pipeline
    from slimkit.runtime import num_threads
    from slimkit.spec import load_spec

    default = "statistics-ablation.yaml" if args.teacher == "statistics" else "quickstart.yaml"
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    backbones = [b.strip() for b in args.backbones.split(",") if b.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    name = args.name or f"leakage_{args.teacher}"
    work = Path(args.work) if args.work else home_dir() / "bench" / name
    cache = StageCache()
    console = Console(stderr=True)
    started = time.perf_counter()

    results: dict[tuple[str, str, str], dict[str, Any]] = {}
    per_user: dict[tuple[str, str, str], dict[int, dict[str, Any]]] = {}
    for mode in modes:
        extra = [f"prompt.rationale_cut={mode}", f"eval.seeds={seeds}"]
        if args.teacher == "statistics":
            extra.append("teacher.num_users=100000")  # every user
        spec = load_spec(args.config or str(HERE.parent / "examples" / default), [*args.overrides, *extra])
        dataset = Pipeline(spec, cache, progress=False).dataset()
        vectors = None
        for backbone in backbones:
            for method in ROWS[args.teacher]:
                if method.startswith("text-match") and backbone != backbones[0]:
                    continue  # ID-agnostic: no backbone in the score, one row is enough
                key = (backbone, method, "-" if method == "plain" else mode)
                if key in results:
                    continue
                row_spec = spec.replace(backbone=backbone_section(spec, backbone),
                                        fusion=fusion_section(spec, method))
                console.print(f"[bold]{backbone} · {method} · {key[2]}[/]")
                t0 = time.perf_counter()
                if args.teacher == "pipeline":
                    folder = Pipeline(row_spec, cache, progress=True).run("train").path
                else:
                    if vectors is None and method != "plain":
                        vectors = statistics_vectors(spec, dataset, cache, work)
                    folder = train_row(row_spec, dataset, None if method == "plain" else vectors,
                                       work / key[2] / f"{backbone}-{method}")
                results[key], per_user[key] = summarize(folder)
                results[key]["seconds"] = round(time.perf_counter() - t0, 1)
                console.print(f"    test ndcg@10 {results[key]['ndcg@10']['mean']:.4f} "
                              f"({results[key]['seconds']:.0f} s)")

    rows = []
    for (backbone, method, mode), block in results.items():
        row = {"backbone": backbone, "method": method, "rationale_cut": mode, **block}
        plain = per_user.get((backbone, "plain", "-"))
        if method != "plain" and plain:
            row["vs_plain"] = difference(per_user[(backbone, method, mode)], plain)
        if method != "plain" and mode != "none" and (backbone, method, "none") in per_user:
            row["vs_none"] = difference(per_user[(backbone, method, mode)], per_user[(backbone, method, "none")])
        rows.append(row)

    def ci(d: dict[str, Any] | None) -> str:
        if not d:
            return ""
        m = d["ndcg@10"]
        mark = "" if m["excludes_zero"] else " (noise)"
        return f"{m['diff']:+.4f} ({m['low']:+.4f}, {m['high']:+.4f}){mark}"

    table = Table(title=f"ml-100k, {args.teacher} rationales, seeds {seeds}: test NDCG@10")
    for column in ("backbone", "row", "cut", "NDCG@10 mean ± sd", "Hit@10", "− plain (95% CI)",
                   "− none (95% CI)"):
        table.add_column(column)
    for row in rows:
        m = row["ndcg@10"]
        sd = f" ± {m['sd']:.4f}" if m["sd"] is not None else ""
        table.add_row(row["backbone"], row["method"], row["rationale_cut"], f"{m['mean']:.4f}{sd}",
                      f"{row['hit@10']['mean']:.4f}", ci(row.get("vs_plain")), ci(row.get("vs_none")))
    Console().print(table)
    out = {
        "teacher": args.teacher, "seeds": seeds, "backbones": backbones, "modes": modes,
        "config": args.config or f"examples/{default}", "overrides": args.overrides,
        "rows": rows,
        "machine": f"{platform.machine()} 2-core CPU, no GPU, {num_threads()} torch thread(s)",
        "wall_s": round(time.perf_counter() - started, 1),
        "date": time.strftime("%Y-%m-%d"),
    }
    path = HERE / "results" / f"{name}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

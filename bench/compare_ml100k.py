"""The paper's comparison on MovieLens-100K with offline models, written to bench/results.

Usage:
    python bench/compare_ml100k.py [-c SPEC] [--seeds 1,2,3] [--methods plain,slim,...]
        [--set key=value ...]

Defaults: examples/statistics-ablation.yaml (statistics teacher, SmolLM2 student, MiniLM
encoder, SASRec). Every row is a cached train stage, so re-running only trains what is
missing. Prints the table and writes bench/results/compare_ml100k.json (+ .png).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", default=str(HERE.parent / "examples/statistics-ablation.yaml"))
    parser.add_argument("--seeds", default="42", help="Comma list of seeds (eval.seeds).")
    parser.add_argument("--methods", default=None, help="Comma list of rows (default: all).")
    parser.add_argument("--backbones", default=None, help="Comma list of backbones.")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--name", default="compare_ml100k", help="Output file stem.")
    args = parser.parse_args()

    from rich.console import Console

    from slimkit.compare import METHODS, parse_list, run_compare, table
    from slimkit.registry import registry
    from slimkit.runtime import num_threads
    from slimkit.spec import load_spec

    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    spec = load_spec(args.config, [*args.overrides, f"eval.seeds={seeds}"])
    started = time.perf_counter()
    result = run_compare(
        spec,
        backbones=parse_list(args.backbones, registry("backbones").names(), "backbone"),
        methods=parse_list(args.methods, list(METHODS), "method"),
        plot=HERE / "results" / f"{args.name}.png",
        progress=True,
    )
    Console().print(table(result))
    out = {
        **result.to_json(),
        "spec": spec.to_dict(),
        "machine": f"{platform.machine()} 2-core shared CPU, no GPU, {num_threads()} torch thread(s); "
        "other engineers' processes were running",
        "wall_s": round(time.perf_counter() - started, 1),
        "trained_now": result.trained,
    }
    (HERE / "results").mkdir(exist_ok=True)
    path = HERE / "results" / f"{args.name}.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

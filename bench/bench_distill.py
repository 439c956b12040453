"""Benchmark the distill stage's student on this machine (default: SmolLM2-135M-Instruct).

* training: seconds per optimizer step at batch 4 x 256 tokens (LoRA r=8 on q/v), peak RSS;
* generation: the student prompt for ml-100k users, 64 new tokens each, greedy:
  - slimkit's batched generator (length-sorted batches, left padding, KV cache; int8
    dynamic quantisation on CPU, the default) over ``--users`` users;
  - the same batched generator in fp32 over a subset (``--fp32-users``);
  - a naive loop calling ``model.generate`` one user at a time on the fp32 model over a
    subset (``--naive-users``), extrapolated to ``--users``.

Each phase runs in its own process so its peak RSS is its own. Prints a table and writes
bench/results/distill.json.

    python bench/bench_distill.py                      # 943 users (~15 min on 2 cores)
    python bench/bench_distill.py --users 64 --naive-users 8 --fp32-users 16   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # kB -> GB


def _spec(users: int):
    from slimkit.spec import validate_spec

    return validate_spec({
        "dataset": {"kind": "movielens-100k"},
        "teacher": {"kind": "statistics", "num_users": users},
        "student": {"max_length": 256, "batch_size": 4, "max_new_tokens": 64},
    })


def _prompts(student, spec, users: int):
    from slimkit.pipeline import Pipeline
    from slimkit.stages.distill import student_messages

    dataset = Pipeline(spec, progress=False).dataset()
    chosen = list(range(min(users, dataset.num_users)))
    return dataset, chosen, [student.prompt_ids(student_messages(spec, dataset, u)) for u in chosen]


def phase_train(args) -> dict:
    from slimkit.stages.distill import student_messages, usable_teacher_records
    from slimkit.students.hf_lora import HFLoraStudent

    spec = _spec(64)
    student = HFLoraStudent(max_length=256, batch_size=4, lr=1e-3, lora_r=8,
                            max_steps=args.steps + 1, warmup_ratio=0.0).load()
    from slimkit.pipeline import Pipeline

    dataset = Pipeline(spec, progress=False).dataset()
    records = usable_teacher_records(Pipeline(spec, progress=False).teacher_rationales(), dataset.num_users)
    examples = []
    for r in records:
        prompt = student.prompt_ids(student_messages(spec, dataset, int(r["user_index"])))
        # Long histories fill 256 tokens with prompt alone: keep the prompt's tail so
        # every example is exactly 256 tokens with a real rationale to learn.
        target = student.target_ids(r["rationale"])[:128]
        prompt = prompt[-(256 - len(target)):]
        examples.append(student.build_example(int(r["user_index"]), prompt, r["rationale"]))
    examples = [e for e in examples if len(e.input_ids) == 256][: 4 * (args.steps + 1)]
    times = []
    last = [time.perf_counter()]

    def on_step(step, loss):
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    result = student.train(examples, progress=False, on_step=on_step)
    per_step = times[1:]  # the first step warms up
    return {
        "batch": "4 x 256 tokens",
        "steps_timed": len(per_step),
        "seconds_per_step": sum(per_step) / len(per_step),
        "loss_first": result["train_loss_first"],
        "loss_last": result["train_loss_last"],
        "peak_rss_gb": _peak_rss_gb(),
    }


def phase_generate(args) -> dict:
    from slimkit.students.hf_lora import HFLoraStudent

    spec = _spec(8)
    student = HFLoraStudent(max_new_tokens=64, gen_batch_size=args.batch_size,
                            precision=args.precision).load()
    _, users, prompts = _prompts(student, spec, args.count)
    student.generate(prompts[:2], progress=False)  # warm-up
    if args.naive:
        torch = __import__("torch")
        model, tok = student.model, student.tokenizer
        started = time.perf_counter()
        new_tokens = 0
        for prompt in prompts:
            ids = torch.tensor([prompt])
            with torch.inference_mode():
                out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=64,
                                     do_sample=False, pad_token_id=tok.pad_token_id)
            new_tokens += out.shape[1] - ids.shape[1]
        seconds = time.perf_counter() - started
        stats = {"prompts": len(prompts), "new_tokens": new_tokens, "seconds": seconds,
                 "tokens_per_s": new_tokens / seconds}
    else:
        stats = student.generate(prompts, progress=not args.quiet)
    return {**stats, "precision": student.resolved_precision() if not args.naive else "none",
            "mean_prompt_tokens": sum(map(len, prompts)) / len(prompts),
            "peak_rss_gb": _peak_rss_gb()}


def _run_phase(argv: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"phase {argv} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=943)
    parser.add_argument("--naive-users", type=int, default=16)
    parser.add_argument("--fp32-users", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--phase", choices=["train", "generate"])
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--naive", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if args.phase == "train":
        print(json.dumps(phase_train(args)))
        return
    if args.phase == "generate":
        print(json.dumps(phase_generate(args)))
        return

    common = ["--batch-size", str(args.batch_size), "--quiet"]
    results = {
        "machine": f"{os.cpu_count()}-core shared CPU, no GPU ({platform.processor() or platform.machine()}); "
        "other engineers' processes were running",
        "threads": os.environ.get("SLIMKIT_NUM_THREADS", "1"),
    }
    print("training ...", file=sys.stderr)
    results["train"] = _run_phase(["--phase", "train", "--steps", str(args.steps)])
    print("naive loop ...", file=sys.stderr)
    results["naive"] = _run_phase(["--phase", "generate", "--naive", "--count", str(args.naive_users),
                                   "--precision", "none", *common])
    print("batched fp32 ...", file=sys.stderr)
    results["batched_fp32"] = _run_phase(["--phase", "generate", "--count", str(args.fp32_users),
                                          "--precision", "none", *common])
    print(f"batched (default) for {args.users} users ...", file=sys.stderr)
    results["batched"] = _run_phase(["--phase", "generate", "--count", str(args.users), *common])
    naive_tps = results["naive"]["tokens_per_s"]
    results["speedup_vs_naive"] = results["batched"]["tokens_per_s"] / naive_tps
    results["speedup_fp32_vs_naive"] = results["batched_fp32"]["tokens_per_s"] / naive_tps
    per_user = results["naive"]["seconds"] / results["naive"]["prompts"]
    results["naive_extrapolated_seconds"] = per_user * args.users

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"distill bench ({results['machine']}, {results['threads']} torch thread)")
    table.add_column("what")
    table.add_column("value", justify="right")
    tr = results["train"]
    table.add_row("LoRA step, batch 4 x 256 tokens", f"{tr['seconds_per_step']:.2f} s/step")
    table.add_row("  loss first -> last step", f"{tr['loss_first']:.2f} -> {tr['loss_last']:.2f}")
    table.add_row("  peak RSS (training)", f"{tr['peak_rss_gb']:.2f} GB")
    for name, label in (("naive", "naive loop, batch 1, fp32"),
                        ("batched_fp32", f"batched {args.batch_size}, fp32, "
                                         f"{results['batched_fp32'].get('workers', 1)} workers"),
                        ("batched", f"batched {args.batch_size}, {results['batched']['precision']}, "
                                    f"{results['batched'].get('workers', 1)} workers (default)")):
        row = results[name]
        table.add_row(f"{label}: {row['prompts']} users",
                      f"{row['tokens_per_s']:.1f} tok/s, {row['seconds']:.0f} s, "
                      f"peak {row['peak_rss_gb']:.2f} GB")
    table.add_row("speedup vs naive (default / fp32)",
                  f"{results['speedup_vs_naive']:.1f}x / {results['speedup_fp32_vs_naive']:.1f}x")
    table.add_row(f"naive loop extrapolated to {args.users} users",
                  f"{results['naive_extrapolated_seconds']:.0f} s")
    Console().print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "distill.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""The ``data`` stage: load the dataset the spec names and prepare it, once.

Output (``PreparedDataset.save``): ``interactions.npz``, ``dataset.json``, plus
``summary.json`` (what ``slimkit data stats`` prints) and ``inputs.json`` (size and
modification time of every input file). The key covers the dataset section of the spec;
``inputs.json`` catches the one thing the key cannot see, an input file edited in place,
and recomputes the stage then.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from slimkit.cache import StageCache
from slimkit.components import implementation
from slimkit.data.dataset import PreparedDataset
from slimkit.registry import component_versions
from slimkit.spec import PipelineSpec
from slimkit.stages import StageResult, stage_keys, stage_spec

log = logging.getLogger(__name__)

STAGE = "data"


def input_files(params: Any) -> list[Path]:
    """Every existing file a dataset section points to (files inside named folders too)."""
    files: list[Path] = []
    for name in type(params).model_fields:
        value = getattr(params, name)
        if not isinstance(value, Path):
            continue
        path = value.expanduser()
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.is_file()))
    return files


def fingerprint(params: Any) -> dict[str, list[int]]:
    """``{absolute path: [size, mtime_ns]}`` of the input files."""
    out = {}
    for path in input_files(params):
        stat = path.stat()
        out[str(path.resolve())] = [stat.st_size, stat.st_mtime_ns]
    return out


def _changed_inputs(folder: Path, params: Any) -> list[str]:
    try:
        recorded = json.loads((folder / "inputs.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    current = fingerprint(params)
    # A path read now but not then: the spec's (relative) path names other files.
    changed = [path for path in current if path not in recorded]
    for path, stamp in recorded.items():
        if path in current and current[path] != stamp:
            changed.append(path)
        elif path not in current and not changed:
            log.warning("input %s is gone; using the dataset prepared from it earlier", path)
    return changed


def _status(progress: bool, text: str):
    from contextlib import nullcontext

    if not progress:
        return nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(text)


def run_data(
    spec: PipelineSpec, cache: StageCache | None = None, *, progress: bool = True
) -> StageResult:
    """Prepare the spec's dataset, or take it from the cache."""
    cache = cache or StageCache()
    key = stage_keys(spec, cache)[STAGE]
    params = spec.dataset
    hit = cache.get(STAGE, key)
    if hit is not None:
        changed = _changed_inputs(hit, params)
        if changed:
            cache.invalidate(STAGE, key, f"input file(s) changed since: {', '.join(changed)}")
        else:
            summary = json.loads((hit / "summary.json").read_text(encoding="utf-8"))
            return StageResult(STAGE, key, hit, cached=True, summary=summary)
    from slimkit.data.prepare import prepare
    from slimkit.data.stats import dataset_stats

    start = time.perf_counter()
    loader = implementation("datasets", params.kind)
    with _status(progress, f"Reading the {params.kind} dataset ..."):
        raw = loader(params)
    with _status(progress, f"Preparing {raw.num_events:,} interactions ..."):
        dataset = prepare(raw, params)
    summary = dataset_stats(dataset)
    seconds = time.perf_counter() - start
    versions = component_versions([("datasets", params.kind)])
    with cache.write(STAGE, key, stage_spec(spec, STAGE), versions, summary) as out:
        dataset.save(out)
        (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        (out / "inputs.json").write_text(
            json.dumps(fingerprint(params), indent=2), encoding="utf-8"
        )
    return StageResult(
        STAGE, key, cache.path(STAGE, key), cached=False, seconds=seconds, summary=summary
    )


def load_prepared(
    spec: PipelineSpec, cache: StageCache | None = None, *, progress: bool = True
) -> PreparedDataset:
    """The prepared dataset of the spec: from the cache, or prepared now."""
    cache = cache or StageCache()
    result = run_data(spec, cache, progress=progress)
    try:
        return PreparedDataset.load(result.path)
    except (OSError, ValueError, KeyError) as exc:
        cache.invalidate(STAGE, result.key, f"cannot load the prepared dataset: {exc}")
        result = run_data(spec, cache, progress=progress)
        return PreparedDataset.load(result.path)

"""Stage ``data``: load the dataset the spec names and prepare it.

Writes (``PreparedDataset.save``) ``interactions.npz`` and ``dataset.json``, plus
``summary.json`` (what ``slimkit data stats`` prints) and ``inputs.json`` (size and
modification time of every input file). The stage key covers the dataset section;
``inputs.json`` catches what the key cannot see, an input file edited in place:
:func:`changed_inputs` names such files and the pipeline prepares the data again.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from slimkit.artifacts.files import read_json, write_json, write_summary
from slimkit.console import status
from slimkit.factories import load_dataset

log = logging.getLogger(__name__)

INPUTS_FILE = "inputs.json"


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


def changed_inputs(folder: Path, params: Any) -> list[str]:
    """Input files that changed since the data in ``folder`` was prepared from them."""
    try:
        recorded = read_json(Path(folder) / INPUTS_FILE)
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


def prepare_data(params: Any, out: Path, *, progress: bool = True) -> dict[str, Any]:
    """Read the dataset a ``dataset`` section names, prepare it and save it into ``out``;
    returns the summary (users, items, interactions, ...)."""
    from slimkit.data.prepare import prepare
    from slimkit.data.stats import dataset_stats

    with status(f"Reading the {params.kind} dataset ...", progress):
        raw = load_dataset(params)
    with status(f"Preparing {raw.num_events:,} interactions ...", progress):
        dataset = prepare(raw, params)
    summary = dataset_stats(dataset)
    dataset.save(out)
    write_summary(out, summary)
    write_json(out / INPUTS_FILE, fingerprint(params))
    return summary

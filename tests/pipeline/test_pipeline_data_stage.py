"""The data stage through the pipeline: done once, redone when an input file changes.

These test the pipeline's cache decisions for the data stage.
"""

from __future__ import annotations

import os

import numpy as np
from helpers.data import FIXTURES, write_spec

from slimkit.cache import StageCache
from slimkit.pipeline.runner import Pipeline
from slimkit.spec import load_spec


def run_data(spec, progress=False):
    return Pipeline(spec, StageCache(), progress=progress).run("data")


def load_prepared(spec, progress=False):
    return Pipeline(spec, StageCache(), progress=progress).dataset()


def test_data_stage_does_the_work_once(tmp_path, monkeypatch, isolated_cache):
    from slimkit.data.loaders import movielens

    calls = []
    original = movielens.read_movielens_folder

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(movielens, "read_movielens_folder", counting)
    spec = load_spec(write_spec(tmp_path, {"kind": "movielens-100k", "path": FIXTURES / "ml-100k"}))
    first = run_data(spec, progress=False)
    second = run_data(spec, progress=False)
    assert (first.cached, second.cached) == (False, True)
    assert first.key == second.key and len(calls) == 1
    assert second.summary["interactions"] == 14
    assert (first.path / "spec.yaml").is_file() and (first.path / "inputs.json").is_file()
    a, b = load_prepared(spec, progress=False), load_prepared(spec, progress=False)
    assert len(calls) == 1 and np.array_equal(a.items, b.items) and a.item_text == b.item_text
    # A different preparation option is a different entry.
    other = run_data(
        spec.replace(dataset={**spec.to_dict()["dataset"], "max_seq_len": 7}), progress=False
    )
    assert not other.cached and other.key != first.key and len(calls) == 2


def test_data_stage_notices_an_input_edited_in_place(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text((FIXTURES / "csv" / "log.csv").read_text())
    spec = load_spec(write_spec(tmp_path, {"kind": "csv", "path": log}))
    assert run_data(spec, progress=False).summary["interactions"] == 6
    with open(log, "a") as handle:
        handle.write("carol,sku-9,2023-03-01T00:00:00Z,5\n")
    stamp = log.stat().st_mtime_ns + 5_000_000_000
    os.utime(log, ns=(stamp, stamp))
    again = run_data(spec, progress=False)
    assert not again.cached and again.summary["interactions"] == 9


def test_relative_path_from_another_folder_is_not_mistaken_for_the_cached_one(
    tmp_path, monkeypatch
):
    for name, extra in (("a", ""), ("b", "dave,sku-1,1\ndave,sku-2,2\ndave,sku-3,3\n")):
        folder = tmp_path / name
        folder.mkdir()
        text = "user_id,item_id,timestamp\nx,sku-1,1\nx,sku-2,2\nx,sku-3,3\n" + extra
        (folder / "log.csv").write_text(text)
    spec = load_spec(None, ["dataset.kind=csv", "dataset.path=log.csv"])
    monkeypatch.chdir(tmp_path / "a")
    assert run_data(spec, progress=False).summary["users"] == 1
    monkeypatch.chdir(tmp_path / "b")
    again = run_data(spec, progress=False)
    assert not again.cached and again.summary["users"] == 2

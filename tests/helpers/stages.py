"""Put a stage's output into a cache by hand, so tests give a pipeline synthetic inputs
through the cache's own door (no patching of stage internals)."""

from __future__ import annotations

from slimkit.artifacts.files import write_summary
from slimkit.cache import StageCache
from slimkit.pipeline import stage_keys, stage_spec


def cache_with_dataset(spec, dataset, cache: StageCache | None = None) -> StageCache:
    """A cache whose data stage output for ``spec`` is ``dataset`` (a PreparedDataset)."""
    from slimkit.data.stats import dataset_stats

    cache = cache or StageCache()
    key = stage_keys(spec, cache)["data"]
    with cache.write("data", key, stage_spec(spec, "data")) as out:
        dataset.save(out)
        write_summary(out, dataset_stats(dataset))
    return cache

"""The train stage's output: the best model's weights, what rebuilds it, and its metrics.

* ``model.safetensors``: the state of the run with the best validation metric;
* ``model.json``: ``backbone`` / ``fusion`` sections, ``num_users``, ``num_items``,
  ``max_seq_len``, ``best_seed``, ``needs`` ({"item_text", "rationales"});
* ``metrics.json``: ``{"valid", "test", "valid_std", "test_std", "popularity",
  "sparsity", "seeds", "masked_history", "protocol", ...}`` (means over ``eval.seeds``);
* ``per_user_test.npz``: every seed's per-user test metrics (``"<seed>/<metric>"`` ->
  ``(U,)`` float32, users in dataset order), what paired comparisons resample, and its
  top-10 lists (``"<seed>/top10"`` -> ``(U, 10)`` int32 items).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slimkit.artifacts.files import read_json, write_json

MODEL_FILE = "model.safetensors"
INFO_FILE = "model.json"
METRICS_FILE = "metrics.json"
PER_USER_FILE = "per_user_test.npz"


def write_trained(folder: Path, model: Any, info: dict[str, Any], metrics: dict[str, Any]) -> None:
    """Save a trained Recommender's weights, ``model.json`` and ``metrics.json``."""
    from safetensors.torch import save_model

    save_model(model, str(Path(folder) / MODEL_FILE))
    write_json(Path(folder) / INFO_FILE, info)
    write_json(Path(folder) / METRICS_FILE, metrics)


def write_per_user(folder: Path, per_user: dict[int, dict[str, Any]]) -> None:
    """Save ``{seed: {metric: (U,)}}`` (and ``"top10"`` lists) as ``per_user_test.npz``."""
    import numpy as np

    def packed(values: Any) -> Any:
        values = np.asarray(values)
        return values.astype(np.float32) if values.dtype.kind == "f" else values.astype(np.int32)

    arrays = {f"{seed}/{metric}": packed(values)
              for seed, metrics in per_user.items() for metric, values in metrics.items()}
    np.savez_compressed(Path(folder) / PER_USER_FILE, **arrays)


def read_per_user(folder: Path) -> dict[int, dict[str, Any]] | None:
    """``{seed: {metric: (U,)}}`` of a train stage folder; None for a folder trained
    before slimkit kept them."""
    import numpy as np

    path = Path(folder) / PER_USER_FILE
    if not path.exists():
        return None
    out: dict[int, dict[str, Any]] = {}
    with np.load(path) as data:
        for key in data.files:
            seed, _, metric = key.partition("/")
            out.setdefault(int(seed), {})[metric] = data[key]
    return out


def read_metrics(folder: Path) -> dict[str, Any]:
    """``metrics.json`` of a train stage folder."""
    return read_json(Path(folder) / METRICS_FILE)


def read_model_info(folder: Path) -> dict[str, Any]:
    """``model.json`` of a train stage folder: what :func:`load_weights` needs rebuilt."""
    return read_json(Path(folder) / INFO_FILE)


def load_weights(model: Any, folder: Path) -> Any:
    """Load a train stage folder's weights into ``model`` (built as ``model.json`` says);
    returns it in eval mode."""
    from safetensors.torch import load_model

    load_model(model, str(Path(folder) / MODEL_FILE))
    model.eval()
    return model

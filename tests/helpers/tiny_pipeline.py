"""A fully trained pipeline on tiny data, built offline in seconds: the tiny CSV log of
the teach tests, the statistics teacher, a tiny random Llama student, the bundled MiniLM
encoder and a tiny backbone + fusion head trained for one epoch. Real stages only, run
through the real Pipeline; the serve and export tests read its cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from helpers.teach_fixtures import tiny_spec
from helpers.tiny_student import build_tiny_student

SMALL = {"hidden_size": 16, "inner_size": 32, "gru_size": 16, "num_layers": 1, "num_heads": 1}


def tiny_backbone(name: str) -> dict[str, Any]:
    """A spec section for registered backbone ``name``: its defaults, small where it has
    the usual size fields (built-ins and plugins alike)."""
    from slimkit.components import params_model

    defaults = params_model("backbones", name)(kind=name).model_dump(exclude={"kind"})
    return {"kind": name, **{k: v for k, v in SMALL.items() if k in defaults}}


def tiny_raw_spec(folder: Path, model_dir: Path, *, backbone: str = "sasrec",
                  fusion: str = "slim") -> dict[str, Any]:
    """The raw spec (a dict) of the tiny trained pipeline."""
    raw = tiny_spec(folder / "data", {"kind": "statistics", "num_users": 12})
    raw["prompt"] = {"max_items": 5, "max_item_chars": 60}
    raw["student"] = {"model": str(model_dir), "batch_size": 4, "lr": 2e-2,
                      "epochs": 1, "max_new_tokens": 12, "gen_batch_size": 16,
                      "quality_users": 2, "valid_share": 0.2, "precision": "none"}
    raw["encoder"] = {"batch_size": 32}
    raw["backbone"] = tiny_backbone(backbone)
    raw["fusion"] = {"kind": fusion}
    raw["train"] = {"epochs": 1, "batch_size": 32, "patience": 1}
    raw["eval"] = {"ks": [5, 10], "seeds": [7]}
    return raw


def write_tiny_spec(folder: Path, model_dir: Path, **kwargs: Any) -> Path:
    """The tiny spec as a YAML file in ``folder`` (what `slimkit -c` reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(tiny_raw_spec(folder, model_dir, **kwargs), sort_keys=False),
                    encoding="utf-8")
    return path


def train_tiny_pipeline(folder: Path, *, model_dir: Path | None = None,
                        **kwargs: Any) -> tuple[Path, Path]:
    """Run every stage of the tiny spec into ``folder/cache``; (spec path, cache folder)."""
    from slimkit.cache import StageCache
    from slimkit.pipeline import Pipeline
    from slimkit.spec import load_spec

    model_dir = model_dir or build_tiny_student(folder / "student")
    spec_path = write_tiny_spec(folder, model_dir, **kwargs)
    cache_dir = folder / "cache"
    Pipeline(load_spec(spec_path), StageCache(cache_dir), progress=False).run("train")
    return spec_path, cache_dir

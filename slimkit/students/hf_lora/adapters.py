"""LoRA adapter folders: what distill writes (peft safetensors, tokenizer, resolved spec)
and how they are checked and identified (the sha256 of the weights)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from slimkit.cache import file_sha256
from slimkit.errors import SlimkitError

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
SPEC_FILE = "slimkit_spec.json"


def check_adapter_folder(folder: str | Path, field: str = "student.adapter") -> Path:
    """``folder`` as a Path when it holds a peft LoRA adapter, else a SlimkitError naming ``field``."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise SlimkitError(
            f"{field}: adapter folder not found: {path}",
            hint="Point it at the adapter/ folder of a finished distill stage "
            "(`slimkit cache info` shows where stages live).",
        )
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (path / name).is_file():
            raise SlimkitError(
                f"{field}: {path} has no {name}; it is not a peft LoRA adapter folder.",
                hint="Use the adapter/ folder that `slimkit distill` wrote.",
            )
    return path


def save_adapter(model: Any, tokenizer: Any, folder: Path, base_model: str,
                 spec: Mapping[str, Any] | None) -> str:
    """Write the adapter (safetensors), the tokenizer and the resolved spec; returns the digest."""
    from slimkit._version import __version__

    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    meta = {"slimkit_version": __version__, "base_model": base_model, "spec": dict(spec or {})}
    (folder / SPEC_FILE).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
    return file_sha256(folder / ADAPTER_WEIGHTS)


def load_adapter(model: Any, folder: str | Path, base_model: str) -> tuple[Any, str]:
    """(``model`` with the adapter in ``folder`` on it, the adapter's digest)."""
    from peft import PeftModel

    path = check_adapter_folder(folder)
    try:
        model = PeftModel.from_pretrained(model, str(path))
    except (RuntimeError, ValueError, KeyError) as exc:
        raise SlimkitError(
            f"student.adapter: {path} does not fit the base model {base_model} ({exc}).",
            hint="An adapter only loads on the base model it was trained on; set "
            "student.model to that model.",
        ) from exc
    model.eval()
    return model, file_sha256(path / ADAPTER_WEIGHTS)

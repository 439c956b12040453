"""One lazy registry per component kind, filled from entry points.

Built-in components and third-party plugins register the same way: an entry point in
the group ``slimkit.<kind>`` (``slimkit.backbones``, ``slimkit.prompts``, ...) whose
value is ``"module:attr"``. Listing reads package metadata only; a component's module is
imported on the first :meth:`Registry.get` of its name. A plugin that fails to import is
recorded and reported, never fatal for other components.

``SLIMKIT_LOAD_PLUGINS`` (a comma list of distribution names; empty loads none) chooses
which third-party distributions are considered. slimkit's own entry points always load.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from slimkit.errors import ConfigError, SlimkitError, did_you_mean

KINDS = ("datasets", "teachers", "prompts", "students", "encoders", "backbones", "fusions")
"""Component kinds, in pipeline order. Entry point groups are ``slimkit.<kind>``."""

SECTION_KIND = {
    "dataset": "datasets",
    "teacher": "teachers",
    "student": "students",
    "encoder": "encoders",
    "backbone": "backbones",
    "fusion": "fusions",
}
"""Spec section -> registry kind, for sections that name one component with ``kind:``."""

BUILTIN_DISTRIBUTION = "slimkit"


@dataclass
class Entry:
    """One registered name: where it comes from and, once loaded, what it is."""

    kind: str
    name: str
    target: str  # "module:attr"
    distribution: str
    version: str
    obj: Any = None
    error: str | None = None
    duplicates: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.error:
            return "failed"
        return "ok" if self.obj is not None else "not loaded"

    def load(self) -> Any:
        if self.obj is not None or self.error is not None:
            return self.obj
        if self.duplicates:
            dists = ", ".join([self.distribution, *self.duplicates])
            self.error = f"name '{self.name}' is claimed by several distributions: {dists}"
            return None
        module_name, _, attr = self.target.partition(":")
        try:
            import importlib

            module = importlib.import_module(module_name)
            obj = module
            for part in attr.split(".") if attr else []:
                obj = getattr(obj, part)
        except (Exception, SystemExit) as exc:  # a broken plugin must never break slimkit
            self.error = f"{type(exc).__name__}: {exc}"
            return None
        self.obj = obj
        return obj


def _allowed_distributions() -> set[str] | None:
    """Third-party distributions allowed by SLIMKIT_LOAD_PLUGINS; ``None`` means all."""
    raw = os.environ.get("SLIMKIT_LOAD_PLUGINS")
    if raw is None:
        return None
    return {part.strip().lower().replace("_", "-") for part in raw.split(",") if part.strip()}


def _normalise(dist: str) -> str:
    return dist.lower().replace("_", "-")


_WARNED_PLUGINS: set[str] = set()


def _warn_unmatched(allowed: set[str], found: set[str]) -> None:
    """Warn once per name of SLIMKIT_LOAD_PLUGINS that names no installed plugin."""
    import logging

    for name in sorted(allowed - found - _WARNED_PLUGINS):
        _WARNED_PLUGINS.add(name)
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            why = "is not installed"
        else:
            why = "is installed but registers no slimkit components"
        logging.getLogger(__name__).warning(
            "SLIMKIT_LOAD_PLUGINS names '%s', which %s; `slimkit plugins list` shows what is "
            "available.", name, why)


class Registry:
    """Names of one component kind mapped to lazily imported objects."""

    def __init__(self, kind: str):
        if kind not in KINDS:
            raise ValueError(f"unknown component kind {kind!r}; kinds: {', '.join(KINDS)}")
        self.kind = kind
        self.group = f"slimkit.{kind}"
        self._entries: dict[str, Entry] | None = None
        self._lock = threading.Lock()

    # -- discovery -----------------------------------------------------------------
    def _discover(self) -> dict[str, Entry]:
        if self._entries is not None:
            return self._entries
        with self._lock:
            if self._entries is not None:
                return self._entries
            allowed = _allowed_distributions()
            entries: dict[str, Entry] = {}
            plugins: set[str] = set()
            for dist in metadata.distributions():
                dist_name = dist.metadata["Name"] or "?"
                if any(ep.group.startswith("slimkit.") for ep in dist.entry_points):
                    plugins.add(_normalise(dist_name))
                eps = [ep for ep in dist.entry_points if ep.group == self.group]
                if not eps:
                    continue
                norm = _normalise(dist_name)
                if norm != BUILTIN_DISTRIBUTION and allowed is not None and norm not in allowed:
                    continue
                for ep in eps:
                    if ep.name in entries:
                        existing = entries[ep.name]
                        if existing.distribution != dist_name and dist_name not in existing.duplicates:
                            existing.duplicates.append(dist_name)
                        continue
                    entries[ep.name] = Entry(
                        self.kind, ep.name, ep.value, dist_name, dist.version or "?"
                    )
            if allowed:
                _warn_unmatched(allowed, plugins)
            self._entries = dict(sorted(entries.items()))
            return self._entries

    def register(self, name: str, obj: Any, *, distribution: str = "<runtime>") -> None:
        """Register ``obj`` under ``name`` at runtime (tests, notebooks)."""
        entries = self._discover()
        entries[name] = Entry(self.kind, name, f"<object {obj!r}>", distribution, "", obj=obj)

    def unregister(self, name: str) -> None:
        self._discover().pop(name, None)

    # -- lookup ----------------------------------------------------------------------
    def names(self) -> list[str]:
        return list(self._discover())

    def entries(self) -> list[Entry]:
        return list(self._discover().values())

    def entry(self, name: str) -> Entry:
        entries = self._discover()
        if name not in entries:
            available = ", ".join(entries) or "none"
            raise ConfigError(
                f"Unknown {self.kind[:-1]} '{name}'.{did_you_mean(name, entries)} "
                f"Available: {available}.",
                hint="Run `slimkit plugins list` to see every registered component.",
            )
        return entries[name]

    def get(self, name: str) -> Any:
        """The object registered as ``name``, imported on first use."""
        entry = self.entry(name)
        obj = entry.load()
        if obj is None:
            raise SlimkitError(
                f"The {self.kind[:-1]} '{name}' from {entry.distribution} failed to load: "
                f"{entry.error}",
                hint="Fix or uninstall that plugin; `slimkit plugins list` shows its status.",
            )
        return obj

    def __contains__(self, name: object) -> bool:
        return name in self._discover()

    def reset(self) -> None:
        """Forget what was discovered (entry points are read again on next use)."""
        self._entries = None


_REGISTRIES: dict[str, Registry] = {}


def registry(kind: str) -> Registry:
    """The process-wide registry of one kind (``"backbones"``, ``"teachers"``, ...)."""
    if kind not in _REGISTRIES:
        _REGISTRIES[kind] = Registry(kind)
    return _REGISTRIES[kind]


def reset_registries() -> None:
    for reg in _REGISTRIES.values():
        reg.reset()


def plugin_rows(load: bool = True) -> list[dict[str, Any]]:
    """One row per registered component, as ``slimkit plugins list --json`` prints them.

    With ``load=True`` each component is imported to report ``ok``/``failed``; the
    import happens inside this call only, never at ``slimkit --help``.
    """
    rows = []
    for kind in KINDS:
        for entry in registry(kind).entries():
            if load:
                entry.load()
            rows.append(
                {
                    "kind": kind,
                    "name": entry.name,
                    "distribution": entry.distribution,
                    "version": entry.version,
                    "status": "failed" if entry.error else ("ok" if load else "not loaded"),
                    "error": entry.error,
                }
            )
    return rows


def component_versions(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """``{"distribution": "version"}`` for the components named by (kind, name) pairs."""
    out: dict[str, str] = {}
    for kind, name in pairs:
        reg = registry(kind)
        if name in reg:
            entry = reg.entry(name)
            out[entry.distribution] = entry.version
    return out

"""How a component (built-in or plugin) describes itself to slimkit.

An entry point in ``slimkit.<kind>`` points at either

* a :class:`Component`: a light description (its pydantic ``params`` model, help text
  and ``"module:attr"`` of the implementation, imported only when the component is
  built). This keeps ``slimkit plugins list`` and ``slimkit config validate`` free of
  torch imports. Every built-in uses this form; or
* any object with a ``Params`` attribute (a class, typically): the simple form for
  plugins that do not mind importing their dependencies at discovery time.

Prompt templates register a :class:`slimkit.prompts.PromptTemplate` instead.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from slimkit.errors import SlimkitError
from slimkit.registry import registry


class Params(BaseModel):
    """Base of every component's parameters: strict, unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    kind: str


@dataclass(frozen=True)
class Component:
    """A light description of one component; ``impl`` is imported on :meth:`load`."""

    params: type[Params]
    impl: str
    help: str = ""

    def load(self) -> Any:
        module_name, _, attr = self.impl.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split(".") if attr else []:
                obj = getattr(obj, part)
        except ImportError as exc:
            raise SlimkitError(
                f"Cannot import {self.impl}: {exc}",
                hint="Install the missing package (see README's install section).",
            ) from exc
        except (Exception, SystemExit) as exc:  # a plugin's module raising on import
            raise SlimkitError(
                f"Importing {self.impl} failed: {type(exc).__name__}: {exc}",
                hint="Fix or uninstall the plugin that provides it (`slimkit plugins list`).",
            ) from exc
        return obj


def params_model(kind: str, name: str) -> type[Params]:
    """The pydantic model validating the spec section of component ``name``."""
    obj = registry(kind).get(name)
    model = obj.params if isinstance(obj, Component) else getattr(obj, "Params", None)
    if model is None or not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise SlimkitError(
            f"The {kind[:-1]} '{name}' has no Params model; a plugin must register a "
            "slimkit.components.Component or a class with a pydantic `Params` attribute."
        )
    return model


def implementation(kind: str, name: str) -> Any:
    """The implementation object (class or factory) of component ``name``."""
    obj = registry(kind).get(name)
    return obj.load() if isinstance(obj, Component) else obj


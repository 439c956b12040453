"""The search-space file of ``slimkit tune``: dotted spec keys, each with a distribution.

.. code-block:: yaml

    train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
    train.batch_size: {type: int, low: 64, high: 256, step: 64}
    backbone.hidden_size: {type: categorical, choices: [32, 64]}

Every key must be a key of the spec (checked by applying the extreme values and every
choice through the same ``--set`` machinery the command line uses); every problem of the
file is reported at once, naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from slimkit.errors import ConfigError, SlimkitError
from slimkit.spec import load_spec, read_yaml

Scalar = str | int | float | bool | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FloatParam(_Strict):
    """A float between ``low`` and ``high`` (log-uniform with ``log: true``)."""

    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _range(self) -> FloatParam:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("log: true needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("step and log: true cannot be combined")
        return self


class IntParam(_Strict):
    """An integer from ``low`` to ``high`` inclusive, every ``step``."""

    type: Literal["int"]
    low: int
    high: int
    step: int = Field(1, ge=1)
    log: bool = False

    @model_validator(mode="after")
    def _range(self) -> IntParam:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and (self.low < 1 or self.step != 1):
            raise ValueError("log: true needs low >= 1 and step 1")
        return self


class CategoricalParam(_Strict):
    """One of ``choices`` (numbers, strings, booleans or null)."""

    type: Literal["categorical"]
    choices: list[Scalar] = Field(min_length=1)


Distribution = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]
_ADAPTER = TypeAdapter(Distribution)


@dataclass(frozen=True)
class SearchSpace:
    """The validated space: ``{dotted spec key: distribution}``, in file order."""

    params: dict[str, FloatParam | IntParam | CategoricalParam]
    source: str | None = None

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {k: v.model_dump(exclude_none=True) for k, v in self.params.items()}

    def optuna_distributions(self) -> dict[str, Any]:
        """The same space as Optuna distributions (Optuna imported here)."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        out: dict[str, Any] = {}
        for key, p in self.params.items():
            if isinstance(p, FloatParam):
                out[key] = FloatDistribution(p.low, p.high, log=p.log, step=p.step)
            elif isinstance(p, IntParam):
                out[key] = IntDistribution(p.low, p.high, log=p.log, step=p.step)
            else:
                out[key] = CategoricalDistribution(p.choices)
        return out


def yaml_value(value: Any) -> str:
    """``value`` as the YAML text ``--set key=...`` parses back to the same value
    (``1.0e-05``, not ``1e-05``, which YAML 1.1 reads as a string)."""
    text = yaml.safe_dump(value, default_flow_style=True)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def override(key: str, value: Any) -> str:
    """The ``--set`` text that puts ``value`` at ``key``."""
    return f"{key}={yaml_value(value)}"


def _shape_problems(raw: Any) -> tuple[dict[str, Any], list[str]]:
    if not isinstance(raw, dict) or not raw:
        return {}, [("the file must be a non-empty mapping of dotted spec keys to distributions, "
                     "e.g. `train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}`")]
    params, problems = {}, []
    for key, value in raw.items():
        if not isinstance(key, str) or "." not in key:
            problems.append(f"{key}: a space key is a dotted spec key such as train.lr")
            continue
        if key.split(".", 1)[0] == "tracking":
            problems.append(f"{key}: tracking settings are not searchable (they change no result)")
            continue
        try:
            params[key] = _ADAPTER.validate_python(value)
        except ValidationError as exc:
            for err in exc.errors():
                tags = ("float", "int", "categorical")  # the union member pydantic tried
                where = ".".join(str(p) for p in err["loc"] if p not in tags)
                message = err["msg"].removeprefix("Value error, ")
                if err["type"] == "union_tag_invalid" or err["type"] == "union_tag_not_found":
                    message = "`type` must be float, int or categorical"
                elif err["type"] == "model_attributes_type":
                    message = "must be a mapping such as {type: float, low: 0.1, high: 1.0}"
                problems.append(f"{key}{'.' + where if where else ''}: {message}"
                                + (f" (got {err['input']!r})" if err["type"] not in (
                                    "missing", "union_tag_invalid", "union_tag_not_found") else ""))
    return params, problems


def _values_to_check(p: FloatParam | IntParam | CategoricalParam) -> list[Any]:
    if isinstance(p, CategoricalParam):
        return list(p.choices)
    return [p.low, p.high]


def load_space(path: str | Path, config: str | Path | None = None,
               overrides: list[str] | None = None) -> SearchSpace:
    """Read and validate a search-space file against the spec (``config`` + ``--set``
    ``overrides``): every key must exist in the spec and every value it can take must
    make a valid spec. One ConfigError lists every problem, each naming its key."""
    path = Path(path)
    try:
        raw = read_yaml(path)
    except ConfigError as exc:
        raise ConfigError(exc.message.replace("Config file", "Search-space file"),
                          hint="Give the search-space YAML with --space.") from exc
    base = list(overrides or [])
    load_spec(config, base)  # the spec itself first: its own problems are not the space's
    params, problems = _shape_problems(raw)
    for key, param in params.items():
        seen: set[str] = set()
        for value in _values_to_check(param):
            try:
                load_spec(config, base + [override(key, value)])
            except SlimkitError as exc:
                for line in exc.problems or [exc.message]:
                    text = line if line.startswith(key) else f"{key}: {line}"
                    if text not in seen:
                        seen.add(text)
                        problems.append(f"{text} (value {value!r})")
    if problems:
        raise ConfigError(f"The search space {path} has {len(problems)} problem"
                          f"{'s' if len(problems) > 1 else ''}:", problems=problems,
                          hint="Keys are dotted spec keys (`slimkit config schema` lists them); "
                          "types: float, int, categorical.")
    return SearchSpace(params, source=str(path))

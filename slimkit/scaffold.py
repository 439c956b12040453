"""Scaffold a new plugin package: ``slimkit plugins new backbone NAME`` calls :func:`new_plugin`.

The generated package installs with ``pip install -e`` and passes its own tests as
generated: a pyproject with the entry point, a light module with the params model (what
the entry point loads), the implementation, a README and a test running
:mod:`slimkit.plugins`' contract checks. Replace the implementation, keep the tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

from slimkit._version import __version__ as SLIMKIT_VERSION
from slimkit.errors import SlimkitError

SCAFFOLD_KINDS = ("backbone", "prompt")
_NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")


@dataclass
class Scaffold:
    """What :func:`new_plugin` wrote."""

    kind: str
    name: str
    distribution: str
    package: str
    root: Path
    files: list[Path]
    entry_points: list[str]


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


def new_plugin(kind: str, name: str, directory: str | Path = ".") -> Scaffold:
    """Write a new ``slimkit-<name>`` plugin package of ``kind`` into ``directory``."""
    if kind not in SCAFFOLD_KINDS:
        raise SlimkitError(
            f"Cannot scaffold a '{kind}' plugin; kinds: {', '.join(SCAFFOLD_KINDS)}."
        )
    name = name.removeprefix("slimkit-")
    if not _NAME.match(name):
        raise SlimkitError(
            f"Plugin name {name!r} is not valid: use lower-case letters, digits and single "
            "hyphens, starting with a letter (e.g. my-model).",
        )
    from slimkit.registry import registry

    registered = registry("backbones" if kind == "backbone" else "prompts")
    taken = [n for n in ([name] if kind == "backbone" else [f"{name}-teacher", f"{name}-student"])
             if n in registered]
    if taken:
        entry = registered.entry(taken[0])
        raise SlimkitError(
            f"A {kind} named '{taken[0]}' is already registered by {entry.distribution}; two "
            "distributions claiming one name make both fail to load.",
            hint="Pick another NAME.",
        )
    distribution = f"slimkit-{name}"
    package = distribution.replace("-", "_")
    root = Path(directory).expanduser() / distribution
    if root.exists() and any(root.iterdir()):
        raise SlimkitError(
            f"{root} already exists and is not empty; nothing was written.",
            hint="Choose another --dir or NAME, or remove that folder.",
        )
    values = {
        "name": name,
        "distribution": distribution,
        "package": package,
        "cls": _class_name(name),
        "attr": package.removeprefix("slimkit_"),
        # UPPER_CASE so that an implementation submodule of the same name (a plugin named
        # "model") can never shadow the descriptor the entry point names.
        "component": package.removeprefix("slimkit_").upper(),
        "slimkit_version": SLIMKIT_VERSION,
        "test_module": f"test_{package}_contract",
    }
    if kind == "backbone":
        values["description"] = f"The {name} sequential recommender as a slimkit backbone plugin."
        files = {
            "pyproject.toml": _BACKBONE_PYPROJECT,
            "README.md": _BACKBONE_README,
            f"src/{package}/__init__.py": _BACKBONE_INIT,
            f"src/{package}/model.py": _BACKBONE_MODEL,
            f"tests/{values['test_module']}.py": _BACKBONE_TEST,
        }
        entry_points = [f"slimkit.backbones: {name} = {package}:{values['component']}"]
    else:
        from slimkit.prompts import slim_cot, slim_student

        values["description"] = f"The {name} prompt templates for slimkit."
        files = {
            "pyproject.toml": _PROMPT_PYPROJECT,
            "README.md": _PROMPT_README,
            f"src/{package}/__init__.py": _PROMPT_INIT,
            f"src/{package}/templates/{name}-teacher.txt": Template(_template_text(slim_cot)),
            f"src/{package}/templates/{name}-student.txt": Template(_template_text(slim_student)),
            f"tests/{values['test_module']}.py": _PROMPT_TEST,
        }
        entry_points = [f"slimkit.prompts: {name}-teacher = {package}:TEACHER",
                        f"slimkit.prompts: {name}-student = {package}:STUDENT"]
    written = []
    for relative, template in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        text = template.safe_substitute(values) if isinstance(template, Template) else template
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return Scaffold(kind, name, distribution, package, root, written, entry_points)


def _template_text(template) -> str:
    """A built-in PromptTemplate as the text file format (``$`` escaped for Template)."""
    text = (f"### system\n{template.system}\n### user\n{template.user}" if template.system
            else f"### user\n{template.user}")
    return text.replace("$", "$$")


# ---------------------------------------------------------------------------------------
# every kind
# ---------------------------------------------------------------------------------------
# The start of every generated pyproject.toml; each kind appends its entry points.
_PYPROJECT_PROJECT = '''\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "${distribution}"
version = "0.1.0"
description = "${description}"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["slimkit>=${slimkit_version}"]

[project.optional-dependencies]
test = ["pytest>=8"]
'''

# ---------------------------------------------------------------------------------------
# backbone
# ---------------------------------------------------------------------------------------
_BACKBONE_PYPROJECT = Template(_PYPROJECT_PROJECT + '''
# slimkit finds backbones through this entry point group: `backbone: {kind: ${name}}`.
[project.entry-points."slimkit.backbones"]
${name} = "${package}:${component}"

[tool.setuptools.packages.find]
where = ["src"]
''')

_BACKBONE_INIT = Template('''\
"""${distribution}: the ${name} backbone for slimkit (``backbone: {kind: ${name}}``).

The ``slimkit.backbones`` entry point loads this module, so keep it light: the params
model and a Component naming the implementation, which slimkit imports only when it
builds a model (torch is not imported by ``slimkit plugins list``).
"""

from __future__ import annotations

from pydantic import Field
from slimkit.plugins import BackboneParams, Component


class ${cls}Params(BackboneParams):
    """Parameters of the ${name} backbone; every field needs a description (help text)."""

    hidden_size: int = Field(64, ge=1, description="Embedding and representation dimension D.")
    dropout: float = Field(0.2, ge=0, lt=1, description="Dropout on item embeddings.")


# UPPER_CASE: an implementation submodule can never shadow it.
${component} = Component(
    params=${cls}Params,
    impl="${package}.model:${cls}",
    help="${cls}: attention pooling over the history (replace with your model).",
)
''')

_BACKBONE_MODEL = Template('''\
"""The ${name} backbone: replace the body with your model, keep the contract.

slimkit's backbone contract (``slimkit.plugins.Backbone``):

* built as ``${cls}(num_items, max_seq_len, **params)``;
* ``item_embedding = nn.Embedding(num_items + 1, hidden_size, padding_idx=0)``;
* ``hidden_size``: the dimension D of the representation;
* ``forward(item_seq (B, L) right-padded with 0, lengths (B,)) -> (B, D)``;
* optional ``encode_embedded(emb (B, L, D), item_seq, lengths) -> (B, D)`` for fusion heads
  that enrich item embeddings with text (implement it: then every fusion head works).

Padded positions must never change the output; ``slimkit.plugins.check_backbone``
checks that and the rest.
"""

from __future__ import annotations

import torch
from torch import nn


class ${cls}(nn.Module):
    """Attention pooling: a learned query attends over position-aware item embeddings."""

    def __init__(self, num_items: int, max_seq_len: int, hidden_size: int = 64,
                 dropout: float = 0.2):
        super().__init__()
        self.hidden_size = hidden_size
        self.item_embedding = nn.Embedding(num_items + 1, hidden_size, padding_idx=0)
        # Position 0 is the most recent item, so recency means the same for every length.
        self.recency_embedding = nn.Embedding(max_seq_len, hidden_size)
        self.query = nn.Parameter(torch.randn(hidden_size) * 0.02)  # (D,)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_size, hidden_size)

    def encode_embedded(self, emb: torch.Tensor, item_seq: torch.Tensor,
                        lengths: torch.Tensor) -> torch.Tensor:
        steps = torch.arange(item_seq.size(1), device=item_seq.device)  # (L,)
        real = steps.unsqueeze(0) < lengths.unsqueeze(1)  # (B, L) True at real items
        recency = (lengths.unsqueeze(1) - 1 - steps.unsqueeze(0)).clamp(min=0)  # (B, L)
        x = self.dropout(emb + self.recency_embedding(recency))  # (B, L, D)
        scores = x @ self.query  # (B, L)
        scores = scores.masked_fill(~real, float("-inf"))  # padding gets no weight
        weights = torch.softmax(scores, dim=1).unsqueeze(-1)  # (B, L, 1)
        pooled = (weights * x.masked_fill(~real.unsqueeze(-1), 0.0)).sum(dim=1)  # (B, D)
        return self.output(pooled)  # (B, D)

    def forward(self, item_seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # item_seq: (B, L) right-padded with 0; lengths: (B,) number of real items
        return self.encode_embedded(self.item_embedding(item_seq), item_seq, lengths)  # (B, D)
''')

_BACKBONE_TEST = Template('''\
"""${distribution}'s tests: slimkit's backbone contract, the entry point, the params."""

import pytest
from slimkit.plugins import check_backbone, implementation, registry, validate_spec
from ${package}.model import ${cls}


@pytest.mark.parametrize("params", [dict(hidden_size=16), dict(hidden_size=8, dropout=0.0)])
def test_${attr}_meets_the_backbone_contract(params):
    check_backbone(${cls}, **params)


def test_${attr}_is_registered_through_its_entry_point():
    assert registry("backbones").entry("${name}").distribution == "${distribution}"
    assert implementation("backbones", "${name}") is ${cls}


def test_${attr}_params_validate_in_a_spec():
    spec = validate_spec({"backbone": {"kind": "${name}", "hidden_size": 32}})
    assert spec.backbone.hidden_size == 32
''')

_BACKBONE_README = Template('''\
# ${distribution}

The `${name}` backbone for [slimkit](https://pypi.org/project/slimkit/).

```bash
pip install -e .                   # then: slimkit plugins list
python -m pytest tests -q          # slimkit's backbone contract checks
```

```yaml
backbone:
  kind: ${name}
  hidden_size: 64
```

* `src/${package}/__init__.py`: the params model and the entry point's target (light).
* `src/${package}/model.py`: the model; replace its body, keep the contract.
* `tests/${test_module}.py`: runs `slimkit.plugins.check_backbone`.
''')

# ---------------------------------------------------------------------------------------
# prompt
# ---------------------------------------------------------------------------------------
_PROMPT_PYPROJECT = Template(_PYPROJECT_PROJECT + '''
# `prompt: {teacher: ${name}-teacher, student: ${name}-student}` selects them.
[project.entry-points."slimkit.prompts"]
${name}-teacher = "${package}:TEACHER"
${name}-student = "${package}:STUDENT"

[tool.setuptools.packages.find]
where = ["src"]

[tool.setuptools.package-data]
${package} = ["templates/*.txt"]
''')

_PROMPT_INIT = Template('''\
"""${distribution}: prompt templates for slimkit's teacher and student.

Edit the text files in ``templates/``: ``{history}`` (required) becomes the user's
numbered item texts, most recent last; ``{num_items}`` their count. The teacher must ask
for "Step 1:", "Step 2:" and "Step 3:" lines, which slimkit parses.
"""

from pathlib import Path

from slimkit.plugins import PromptTemplate

TEMPLATES = Path(__file__).parent / "templates"

TEACHER = PromptTemplate.from_file(TEMPLATES / "${name}-teacher.txt", name="${name}-teacher",
                                   description="Teacher prompt (three steps).")
STUDENT = PromptTemplate.from_file(TEMPLATES / "${name}-student.txt", name="${name}-student",
                                   description="Student prompt.")
''')

_PROMPT_TEST = Template('''\
"""${distribution}'s tests: slimkit's prompt contract and the entry points."""

from slimkit.plugins import check_prompt, registry, validate_spec
from ${package} import STUDENT, TEACHER


def test_templates_meet_the_prompt_contract():
    check_prompt(TEACHER, role="teacher")
    check_prompt(STUDENT, role="student")


def test_templates_are_selectable_in_a_spec():
    assert registry("prompts").entry("${name}-teacher").distribution == "${distribution}"
    spec = validate_spec({"prompt": {"teacher": "${name}-teacher", "student": "${name}-student"}})
    assert spec.prompt.teacher == "${name}-teacher"
''')

_PROMPT_README = Template('''\
# ${distribution}

Prompt templates for [slimkit](https://pypi.org/project/slimkit/): `${name}-teacher` and
`${name}-student`, started from slimkit's own `slim-cot` and `slim-student`.

```bash
pip install -e .
python -m pytest tests -q
```

```yaml
prompt:
  teacher: ${name}-teacher
  student: ${name}-student
```
''')

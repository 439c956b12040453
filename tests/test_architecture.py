"""slimkit's imports run one way: no import cycle, and no layer imports a layer above it.

Read from the source (AST), not from a running interpreter, so every import counts:
module level, inside functions, under `if TYPE_CHECKING:`, absolute and relative.
`from pkg import name` counts as importing the submodule `pkg.name` when there is one,
otherwise `pkg` itself. A submodule's implicit import of its parent package's
`__init__` is not an edge (Python runs it first, whatever the order), but an explicit
`from slimkit.pkg import helper` inside `slimkit/pkg/x.py` is. Lazy loading through the
registry ("module:attr" strings) is not an import.

The import budget of the CLI (`slimkit --help` and `slimkit plugins list` load no torch,
transformers, litellm or sentence-transformers) is guarded by
tests/cli/test_cli_foundation.py::test_import_budget.
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pytest

import slimkit

PACKAGE_DIR = Path(slimkit.__file__).resolve().parent

# The layers of the architecture (cli -> serve/export -> pipeline -> stages -> factories/artifacts ->
# components -> foundation), lowest first, as packages or modules under slimkit/. A
# module may import its own layer and the layers below it, never a layer above. Modules
# in none of them (the package root, plugins.py, scaffold.py, ...) are not ranked; the
# cycle test still covers them.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("spec", "registry", "components", "cache", "console", "errors", "paths",
                    "runtime", "_version")),
    ("components", ("teachers", "students", "encoders", "backbones", "fusions", "llm", "data",
                    "prompts", "training", "evaluation", "checks", "tracking")),
    ("factories and artifacts", ("factories", "artifacts")),
    ("stages", ("stages",)),
    ("pipeline, compare, recommend, tune", ("pipeline", "compare", "recommend", "tune")),
    ("serve, export", ("serve", "export")),
    ("cli", ("cli",)),
]


@dataclass(frozen=True)
class Import:
    """One import statement of `source` that loads slimkit module `target`."""

    source: str
    target: str
    line: int

    def __str__(self) -> str:
        path = MODULES.get(self.source)
        where = path.relative_to(PACKAGE_DIR.parent) if path else self.source
        return f"{self.source} -> {self.target}  ({where}:{self.line})"


def _module_files() -> dict[str, Path]:
    """`{"slimkit.stages.teach": path, "slimkit.stages": .../__init__.py, ...}`."""
    modules = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


MODULES = _module_files()


def _nearest_module(name: str) -> str | None:
    """The module that `import name` loads last: `slimkit.a.b.C` -> `slimkit.a.b`."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_in(module: str, source: str, *, is_package: bool = False) -> list[Import]:
    """Every import of a slimkit module in `source`, the text of `module`."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: `from ..x import y` inside package a.b is a.x
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.append(submodule if submodule in MODULES else base)
        for name in targets:
            if name == "slimkit" or name.startswith("slimkit."):
                target = _nearest_module(name)
                if target and target != module:
                    found.append(Import(module, target, node.lineno))
    return found


def import_graph() -> dict[str, dict[str, Import]]:
    """`{module: {imported module: the first statement importing it}}` over slimkit."""
    graph: dict[str, dict[str, Import]] = {}
    for module in MODULES:
        edges: dict[str, Import] = {}
        path = MODULES[module]
        source = path.read_text(encoding="utf-8")
        for found in imports_in(module, source, is_package=path.name == "__init__.py"):
            edges.setdefault(found.target, found)
        graph[module] = edges
    return graph


def shortest_cycle_through(graph: dict[str, dict[str, Import]], start: str) -> list[Import]:
    """The shortest chain of imports from `start` back to itself; [] when there is none."""
    reached_by: dict[str, Import] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target, edge in sorted(graph.get(node, {}).items()):
            if target == start:
                cycle = [edge]
                while cycle[0].source != start:
                    cycle.insert(0, reached_by[cycle[0].source])
                return cycle
            if target not in reached_by:
                reached_by[target] = edge
                queue.append(target)
    return []


def import_cycles(graph: dict[str, dict[str, Import]]) -> list[list[Import]]:
    """One shortest cycle through each module that is not yet on a cycle found before."""
    cycles: list[list[Import]] = []
    on_a_cycle: set[str] = set()
    for module in sorted(graph):
        cycle = [] if module in on_a_cycle else shortest_cycle_through(graph, module)
        if cycle:
            cycles.append(cycle)
            on_a_cycle.update(edge.source for edge in cycle)
    return cycles


def _layer_of(module: str) -> int | None:
    for rank, (_, packages) in enumerate(LAYERS):
        if any(module == f"slimkit.{p}" or module.startswith(f"slimkit.{p}.") for p in packages):
            return rank
    return None


def upward_imports(graph: dict[str, dict[str, Import]]) -> list[tuple[Import, str, str]]:
    """Every import of a module of a higher layer: (the import, its layer, the higher one)."""
    upward = []
    for module, edges in sorted(graph.items()):
        rank = _layer_of(module)
        for target, edge in sorted(edges.items()):
            target_rank = _layer_of(target)
            if rank is not None and target_rank is not None and target_rank > rank:
                upward.append((edge, LAYERS[rank][0], LAYERS[target_rank][0]))
    return upward


def test_every_kind_of_import_is_an_edge():
    """The walker itself, on a made-up text of slimkit/stages/teach.py."""
    source = (
        "from __future__ import annotations\n"
        "import slimkit.errors as errors\n"
        "from slimkit import paths\n"                  # a submodule: slimkit.paths
        "from slimkit.spec import PipelineSpec\n"      # a name: its module, slimkit.spec
        "from . import teach\n"                        # itself: no edge
        "from .. import cache\n"                       # relative, two levels
        "def run():\n"
        "    from ..registry import get\n"             # inside a function
        "    import torch\n"                           # not slimkit
    )
    edges = imports_in("slimkit.stages.teach", source)
    assert [(edge.target, edge.line) for edge in edges] == [
        ("slimkit.errors", 2), ("slimkit.paths", 3), ("slimkit.spec", 4), ("slimkit.cache", 6),
        ("slimkit.registry", 8),
    ]
    # In a package's __init__, `.` is the package itself.
    edges = imports_in("slimkit.stages", "from . import teach\nfrom .teach import run\n",
                       is_package=True)
    assert [edge.target for edge in edges] == ["slimkit.stages.teach", "slimkit.stages.teach"]


def test_a_cycle_is_found_with_its_lines():
    a_b, b_c, c_a = (Import("slimkit.a", "slimkit.b", 3), Import("slimkit.b", "slimkit.c", 7),
                     Import("slimkit.c", "slimkit.a", 9))
    graph = {
        "slimkit.a": {"slimkit.b": a_b},
        "slimkit.b": {"slimkit.c": b_c},
        "slimkit.c": {"slimkit.a": c_a},
        "slimkit.d": {"slimkit.a": Import("slimkit.d", "slimkit.a", 1)},  # leads in, not round
    }
    assert import_cycles(graph) == [[a_b, b_c, c_a]]
    del graph["slimkit.c"]["slimkit.a"]
    assert import_cycles(graph) == []


def test_an_upward_import_is_reported():
    down = Import("slimkit.stages.teach", "slimkit.teachers", 3)
    unranked = Import("slimkit.teachers.local", "slimkit.plugins", 6)
    component_to_stage = Import("slimkit.teachers.local", "slimkit.stages.distill", 5)
    pipeline_to_cli = Import("slimkit.pipeline.run", "slimkit.cli.run", 8)
    graph = {
        "slimkit.stages.teach": {"slimkit.teachers": down},
        "slimkit.teachers.local": {"slimkit.stages.distill": component_to_stage,
                                   "slimkit.plugins": unranked},
        "slimkit.pipeline.run": {"slimkit.cli.run": pipeline_to_cli},
    }
    assert upward_imports(graph) == [
        (pipeline_to_cli, "pipeline, compare, recommend, tune", "cli"),
        (component_to_stage, "components", "stages"),
    ]


def test_no_import_cycle_among_slimkit_modules():
    cycles = import_cycles(import_graph())
    if cycles:
        shown = ["\n".join(f"  {edge}" for edge in cycle) for cycle in cycles]
        pytest.fail("import cycles among slimkit modules:\n" + "\n\n".join(shown), pytrace=False)


def test_no_layer_imports_a_layer_above_it():
    upward = upward_imports(import_graph())
    if upward:
        lines = [f"  {edge}   [{layer} imports {higher}]" for edge, layer, higher in upward]
        pytest.fail("imports against the layering:\n" + "\n".join(lines), pytrace=False)

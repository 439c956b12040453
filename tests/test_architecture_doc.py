"""docs/architecture.md matches the code: every module its layout names exists, and every
package and top-level module of slimkit/ is named there."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"


def _layout() -> dict[str, list[str]]:
    """``{entry: [files named on its lines]}`` from the layout block of the page."""
    text = DOC.read_text(encoding="utf-8")
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    entries: dict[str, list[str]] = {}
    current = None
    for line in block.splitlines()[1:]:
        match = re.match(r"^  (\S+)\s", line + " ")
        if match and not line.startswith("   "):
            current = match.group(1)
            entries[current] = []
        if current is not None:
            entries[current] += re.findall(r"\b([a-z_]+(?:\.py|/))", line[len(current) + 2 :])
    return entries


def test_every_module_the_layout_names_exists():
    root = REPO / "slimkit"
    missing = []
    for entry, names in _layout().items():
        if not (root / entry).exists():
            missing.append(entry)
            continue
        base = root / entry if entry.endswith("/") else root
        for name in names:
            if not any(p.name == name.rstrip("/") for p in base.rglob(name.rstrip("/"))):
                missing.append(f"{entry} {name}")
    assert not missing, f"docs/architecture.md names what does not exist: {missing}"


def test_every_package_and_module_is_on_the_map():
    named = set(_layout())
    root = REPO / "slimkit"
    on_disk = {p.name + "/" for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    on_disk |= {p.name for p in root.glob("*.py") if not p.name.startswith("_")}
    assert on_disk - named == set(), f"add these to docs/architecture.md: {sorted(on_disk - named)}"

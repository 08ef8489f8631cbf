"""The layers of lems/ point one way (DESIGN.md "The house").

Every import in the package is read with ``ast`` (at module level, inside
functions and under ``TYPE_CHECKING`` alike: a type is a dependency too) and
checked against the order below.  A module may import its own layer and the
layers beneath it, never one above.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lems

PACKAGE = Path(lems.__file__).parent

# Bottom first.  A layer may import any layer at its own rank or lower.
ORDER = ["base", "store", "wire", "files", "traffic", "core", "admin", "net", "tools", "cli"]
# The package's own top-level modules and the layer they stand in.
TOP = {"__init__": "base", "__main__": "cli", "cli": "cli"}
RANK = {name: i for i, name in enumerate(ORDER)}
# The core is sans-IO: these layers never import Twisted (DESIGN.md).
NO_TWISTED = {"base", "store", "wire", "files", "traffic", "core", "admin"}


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name inside lems (None outside it)."""
    parts = module.split(".")
    if parts[0] != "lems":
        return None
    if len(parts) == 1:
        return "base"
    if parts[1] in RANK:
        return parts[1]
    # A top-level module, or a name the package root defines (``from lems import __version__``).
    return TOP.get(parts[1], "base")


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in a file, relative ones resolved."""
    return imports_in(path.read_text(), module_name(path), path.name == "__init__.py")


def imports_in(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    tree = ast.parse(source)
    here = module.split(".")
    if not is_package:
        here = here[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module == "lems":  # from lems import x: x is the module imported
                out += [(node.lineno, f"lems.{alias.name}") for alias in node.names]
            else:
                out.append((node.lineno, module))
    return out


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_in_a_known_layer():
    unknown = [name for name in map(module_name, sources())
               if name != "lems" and name.split(".")[1] not in RANK and name.split(".")[1] not in TOP]
    assert not unknown, f"modules outside the layers of {ORDER}: {unknown}"


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_climbs(path: Path):
    source_layer = layer_of(module_name(path))
    climbs = []
    for line, target in imports(path):
        target_layer = layer_of(target)
        if target_layer is not None and RANK[target_layer] > RANK[source_layer]:
            climbs.append(f"{path.relative_to(PACKAGE)}:{line} ({source_layer}) imports {target} ({target_layer})")
        if source_layer in NO_TWISTED and target.split(".")[0] in ("twisted", "zope"):
            climbs.append(f"{path.relative_to(PACKAGE)}:{line} ({source_layer}) imports {target}: sans-IO layer")
    assert not climbs, "\n".join(climbs)


@pytest.mark.parametrize("source", [
    "from lems.core import switch",
    "from lems.core.switch import Switch",
    "import lems.net.link",
    "from ..core import session",
    "def f():\n    from lems.tools import bench",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from lems.core.session import Session",
])
def test_the_checker_sees_a_climb(source: str):
    """The test itself can fail: an upward import written into a lower layer is found."""
    found = [target for _, target in imports_in(source, "lems.store.probe") if target.startswith("lems")]
    assert found and all(RANK[layer_of(t)] > RANK["store"] for t in found), found

"""The map of the house holds: packages import only what `docs/architecture.md` allows, and the map lists every module.

The allowed imports below are the table of the document's section "Packages"; a change to either is a change of
the architecture and must be made to both.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"

LEAVES = frozenset({"bot.catalog", "bot.clock", "bot.money", "bot.errors", "bot.exit_codes", "bot.log", "bot.heap"})
"""Modules that import nothing of the project: anything may import them."""

ALLOWED: dict[str, frozenset[str]] = {
    "bot.settings": frozenset(),
    "bot.observability": frozenset(),
    "bot.storage": frozenset(),
    "bot.images": frozenset(),
    "bot.runware": frozenset({"bot.settings", "bot.observability"}),
    "bot.runbase": frozenset({"bot.settings", "bot.observability", "bot.runware"}),
    "bot.providers": frozenset({"bot.settings", "bot.storage", "bot.observability", "bot.runware", "bot.runbase"}),
    "bot.billing": frozenset({"bot.settings", "bot.storage", "bot.observability"}),
    "bot.moderation": frozenset({"bot.settings", "bot.storage", "bot.observability"}),
    "bot.jobs": frozenset(
        {
            "bot.settings",
            "bot.storage",
            "bot.billing",
            "bot.moderation",
            "bot.images",
            "bot.runware",
            "bot.providers",
            "bot.observability",
        }
    ),
    "bot.discord": frozenset(
        {
            "bot.settings",
            "bot.storage",
            "bot.billing",
            "bot.moderation",
            "bot.images",
            "bot.jobs",
            "bot.observability",
        }
    ),
    "cogs": frozenset(
        {"bot.settings", "bot.storage", "bot.billing", "bot.moderation", "bot.images", "bot.jobs", "bot.discord"}
    ),
    "bot.app": frozenset(
        {
            "bot.settings",
            "bot.storage",
            "bot.billing",
            "bot.moderation",
            "bot.images",
            "bot.runware",
            "bot.runbase",
            "bot.providers",
            "bot.jobs",
            "bot.discord",
            "bot.observability",
        }
    ),
    "bot.cli": frozenset(
        {
            "bot",
            "bot.settings",
            "bot.storage",
            "bot.billing",
            "bot.images",
            "bot.runware",
            "bot.runbase",
            "bot.providers",
            "bot.discord",
            "bot.app",
        }
    ),
    "bot.__main__": frozenset({"bot.cli"}),
}
"""Package -> the project's packages it may import besides the leaves (`bot` is the package's own `__init__`)."""


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for top in ("bot", "cogs"):
        for path in sorted((ROOT / top).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "bot" and len(parts) > 1 else parts[0]


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The project's modules that `module` imports (at any level of the file, so lazy imports count too)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
    return targets


MODULES = _modules()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_what_its_package_may(module: str) -> None:
    """Every import of the project's own modules follows the one-way table of docs/architecture.md."""
    package = _package(module)
    if package in LEAVES or package == "bot":
        allowed: frozenset[str] = frozenset()
    else:
        assert package in ALLOWED, f"{package} is not in the architecture's table"
        allowed = ALLOWED[package]
    for target in _imports(module, MODULES[module], set(MODULES)):
        other = _package(target)
        if other == package or other in LEAVES:
            continue
        assert other in allowed, f"{module} imports {target}: {package} may not depend on {other}"


def test_no_extension_imports_another() -> None:
    """Extensions (cogs modules with a top-level setup()) are loaded independently, so none imports another."""
    extensions = {
        name
        for name, path in MODULES.items()
        if name.startswith("cogs.")
        and any(
            isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef) and node.name == "setup"
            for node in ast.parse(path.read_text(encoding="utf-8")).body
        )
    }
    assert extensions
    for name in extensions:
        assert not _imports(name, MODULES[name], set(MODULES)) & extensions, f"{name} imports another extension"


def test_the_map_lists_every_module_and_no_other() -> None:
    """docs/architecture.md names every module under bot/ and cogs/ (as `bot.x.y`), and nothing that is gone."""
    named = set(re.findall(r"`((?:bot|cogs)(?:\.[a-z_]+)+)`", DOC.read_text(encoding="utf-8")))
    listed = {name for name in named if name in MODULES or _looks_like_a_module(name)}
    real = {name for name in MODULES if name not in {"bot", "cogs"}}
    assert real - listed == set(), "modules missing from docs/architecture.md"
    assert listed - real == set(), "docs/architecture.md names modules that do not exist"


def _looks_like_a_module(name: str) -> bool:
    """A dotted name whose last part is lower case and whose parent is a real package (not `bot.x.SomeClass`)."""
    parent = name.rpartition(".")[0]
    return parent in MODULES and MODULES[parent].name == "__init__.py"
